"""Upstream TTS providers: orate as a gateway in front of OpenAI, ElevenLabs and Hume.

A model can be served by remote providers instead of (or besides) a local
engine. This module is the client side of that: it reads the providers file,
opens one streamed request to one provider, and fails over between providers.

The split between *opening* a stream and *reading* it is deliberate: every way a
provider can refuse (unreachable, timeout before headers, non-2xx) surfaces from
``open_stream`` before a single byte has been handed to the caller, so the caller
can try the next provider without having promised its own client anything.
Once ``open_stream`` returns, the status is 2xx and the audio is streamed through
chunk by chunk, never buffered whole.

API keys are read from the environment on every request, never stored, never
logged, so rotating a key needs no restart and a provider's repr is safe to log.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import tomllib
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType, TracebackType
from typing import Any, Final
from urllib.parse import quote, urlsplit

import httpx

from orate.config import Price

log = logging.getLogger("orate.remote")

KINDS: Final = ("openai", "elevenlabs", "hume")
FORMATS: Final = ("mp3", "wav", "pcm", "opus", "aac", "flac")

# What each kind can return at all; ``formats`` in the file narrows this further.
NATIVE_FORMATS: Final[Mapping[str, tuple[str, ...]]] = MappingProxyType({
    "openai": FORMATS,
    "elevenlabs": ("mp3", "pcm", "opus"),
    "hume": ("mp3", "wav", "pcm"),
})

CONTENT_TYPES: Final[Mapping[str, str]] = MappingProxyType({
    "mp3": "audio/mpeg", "wav": "audio/wav", "pcm": "audio/pcm",
    "opus": "audio/ogg", "aac": "audio/aac", "flac": "audio/flac",
})

DEFAULT_TIMEOUT: Final = 30.0
MAX_TIMEOUT: Final = 600.0
CONNECT_TIMEOUT_MAX: Final = 5.0
"""A provider that takes longer than this to accept a TCP connection is treated as down."""

ERROR_MESSAGE_MAX: Final = 300
_ERROR_BODY_MAX: Final = 64 * 1024  # read no more than this of an error body

FAILOVER_4XX: Final = frozenset({401, 403, 408, 429})
"""4xx statuses that say something about *this provider*, not about the caller's request.

429 (rate limit) and 408 (upstream timed out) are transient. 401/403 concern orate's
own key for that provider (missing, revoked, out of quota): the caller authenticated
against orate, not against the provider, so another provider can well succeed. Every
other 4xx (400 bad input, 404 unknown voice, 413 too long, 422 invalid body) means the
caller's request is bad; the next provider would refuse it too and only add latency and
cost, so ``synthesize`` stops and raises it.
"""

_KNOWN_FIELDS: Final = frozenset({
    "name", "type", "kind", "base_url", "api_key_env", "models", "upstream_model",
    "timeout", "formats", "price",
})


# --------------------------------------------------------------------------- providers


@dataclass(frozen=True)
class Provider:
    """One upstream TTS service, as declared in the providers file.

    Holds the *name* of the environment variable with the key, never the key
    itself, so a Provider can be logged, compared and hashed freely.
    ``formats`` empty means "everything this kind can return natively".
    """

    name: str
    kind: str
    base_url: str
    models: tuple[str, ...]
    type: str = "tts"
    api_key_env: str | None = None
    upstream_model: Mapping[str, str] = field(default_factory=dict, hash=False)
    timeout: float = DEFAULT_TIMEOUT
    formats: tuple[str, ...] = ()
    price: Price | None = field(default=None, hash=False)  # what its models cost callers

    def __post_init__(self) -> None:
        # Frozen, so normalise through object.__setattr__: lists from TOML become
        # tuples and the model map becomes read-only, keeping the instance immutable.
        object.__setattr__(self, "models", tuple(self.models))
        object.__setattr__(self, "upstream_model", MappingProxyType(dict(self.upstream_model)))
        formats = tuple(self.formats) or NATIVE_FORMATS.get(self.kind, ())
        object.__setattr__(self, "formats", formats)
        object.__setattr__(self, "timeout", float(self.timeout))

    def api_key(self) -> str | None:
        """The key, read now (not at load time) so a rotated key takes effect at once."""
        if not self.api_key_env:
            return None
        return os.environ.get(self.api_key_env) or None

    def model_id(self, model: str) -> str:
        """The provider's own id for the orate model id ``model``."""
        return self.upstream_model.get(model, model)

    def http_timeout(self) -> httpx.Timeout:
        """``timeout`` for reads/writes between bytes; connecting gets at most 5 s."""
        return httpx.Timeout(self.timeout, connect=min(CONNECT_TIMEOUT_MAX, self.timeout))

    def native(self, fmt: str) -> bool:
        """Whether this provider can hand back ``fmt`` itself (no re-encode by orate)."""
        return fmt in self.formats and fmt in NATIVE_FORMATS.get(self.kind, ())


def load_providers(path: Path) -> list[Provider]:
    """Parse and validate a providers TOML file; return its ``type = "tts"`` entries.

    Entries of other types belong to other pipelines and may have another
    schema, so they are skipped without validation. Everything wrong with a tts
    entry raises ``ValueError`` naming the file, the entry and the field, so an
    operator can fix it from the message alone: a bad file should stop startup,
    not turn into a 502 at the first request.
    """
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path}: not valid TOML: {exc}") from exc
    entries = data.get("provider", [])
    if not isinstance(entries, list):
        raise ValueError(f"{path}: 'provider' must be an array of tables ([[provider]])")
    providers: list[Provider] = []
    seen: set[str] = set()
    for index, entry in enumerate(entries, start=1):
        where = f"{path}: provider #{index}"
        if not isinstance(entry, dict):
            raise ValueError(f"{where}: must be a table")
        if entry.get("type", "tts") != "tts":
            continue
        provider = _parse_entry(entry, where)
        if provider.name in seen:
            raise ValueError(f"{where} ({provider.name!r}): field 'name': duplicate provider "
                             "name (names must be unique)")
        seen.add(provider.name)
        providers.append(provider)
    return providers


def providers_for(model: str, providers: Iterable[Provider]) -> list[Provider]:
    """The tts providers that declare ``model``, in the given (file) order.

    File order is the fail-over order: the operator lists the preferred provider first.
    """
    return [p for p in providers if p.type == "tts" and model in p.models]


def _parse_entry(entry: dict[str, Any], where: str) -> Provider:
    """Validate one ``[[provider]]`` table into a Provider."""
    name = _required_str(entry, "name", where)
    where = f"{where} ({name!r})"
    unknown = sorted(set(entry) - _KNOWN_FIELDS)
    if unknown:
        # Warn rather than fail: newer files may carry fields for other components.
        log.warning("%s: ignoring unknown field(s) %s", where, ", ".join(unknown))
    kind = _required_str(entry, "kind", where)
    if kind not in KINDS:
        raise ValueError(f"{where}: field 'kind': unknown kind {kind!r} "
                         f"(expected one of {', '.join(KINDS)})")
    models = _str_list(entry, "models", where, required=True)
    formats = _str_list(entry, "formats", where, required=False)
    bad = [f for f in formats if f not in FORMATS]
    if bad:
        raise ValueError(f"{where}: field 'formats': unknown format(s) {', '.join(bad)} "
                         f"(expected any of {', '.join(FORMATS)})")
    return Provider(
        name=name,
        kind=kind,
        base_url=_base_url(entry, where),
        models=tuple(models),
        api_key_env=_api_key_env(entry, where),
        upstream_model=_upstream_model(entry, where, models),
        timeout=_timeout(entry, where),
        formats=tuple(formats),
        price=_price(entry, where),
    )


def _price(entry: Mapping[str, Any], where: str) -> Price | None:
    """``price = {per_1k_chars = 0.015, per_second = 0.0}``: what each of this provider's
    models costs callers (either part may be left out; absent means 0)."""
    value = entry.get("price")
    if value is None:
        return None
    if not isinstance(value, dict) or not value or set(value) - {"per_1k_chars", "per_second"}:
        raise ValueError(f"{where}: field 'price' must be a table with per_1k_chars and/or "
                         f"per_second, got {value!r}")
    for key, amount in value.items():
        if isinstance(amount, bool) or not isinstance(amount, int | float) \
                or not math.isfinite(amount) or amount < 0:
            raise ValueError(f"{where}: field 'price.{key}' must be a number >= 0, "
                             f"got {amount!r}")
    return Price(**value)


def _required_str(entry: Mapping[str, Any], key: str, where: str) -> str:
    value = entry.get(key)
    if value is None:
        raise ValueError(f"{where}: field {key!r} is missing")
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{where}: field {key!r} must be a non-empty string, got {value!r}")
    return value.strip()


def _str_list(entry: Mapping[str, Any], key: str, where: str, *, required: bool) -> list[str]:
    value = entry.get(key)
    if value is None:
        if required:
            raise ValueError(f"{where}: field {key!r} is missing")
        return []
    if (not isinstance(value, list) or not value
            or not all(isinstance(v, str) and v.strip() for v in value)):
        raise ValueError(f"{where}: field {key!r} must be a non-empty list of strings, "
                         f"got {value!r}")
    return [v.strip() for v in value]


def _base_url(entry: Mapping[str, Any], where: str) -> str:
    url = _required_str(entry, "base_url", where)
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"{where}: field 'base_url' must be an http(s) URL, got {url!r}")
    if parts.query or parts.fragment:
        raise ValueError(f"{where}: field 'base_url' must not have a query or fragment")
    return url.rstrip("/")


def _api_key_env(entry: Mapping[str, Any], where: str) -> str | None:
    if entry.get("api_key_env") is None:
        return None
    return _required_str(entry, "api_key_env", where)


def _upstream_model(entry: Mapping[str, Any], where: str, models: Sequence[str]) -> dict[str, str]:
    value = entry.get("upstream_model")
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(
            isinstance(k, str) and isinstance(v, str) and v for k, v in value.items()):
        raise ValueError(f"{where}: field 'upstream_model' must be a table of "
                         f"model id = upstream model id strings, got {value!r}")
    stray = [k for k in value if k not in models]
    if stray:
        # A mapping for a model the provider does not declare can never apply:
        # almost certainly a typo in one of the two places.
        raise ValueError(f"{where}: field 'upstream_model': {', '.join(map(repr, stray))} "
                         f"not listed in 'models'")
    return dict(value)


def _timeout(entry: Mapping[str, Any], where: str) -> float:
    value = entry.get("timeout", DEFAULT_TIMEOUT)
    if (isinstance(value, bool) or not isinstance(value, int | float)
            or not math.isfinite(value) or not 0 < value <= MAX_TIMEOUT):
        raise ValueError(f"{where}: field 'timeout' must be a number of seconds in "
                         f"(0, {MAX_TIMEOUT:g}], got {value!r}")
    return float(value)


# --------------------------------------------------------------------------- errors


class RemoteError(Exception):
    """Base class of everything this module raises about upstream providers."""


class ProviderUnreachable(RemoteError):
    """No usable HTTP answer: connection refused/reset, timeout before headers, no key.

    Raised before anything was streamed, so failing over is always safe.
    """

    def __init__(self, provider: Provider, reason: str) -> None:
        super().__init__(f"provider {provider.name!r} unreachable: {reason}")
        self.provider = provider
        self.reason = reason


class ProviderError(RemoteError):
    """The provider answered with a non-2xx status.

    ``message`` is the upstream's own error message from its JSON envelope when it
    has one, else the start of the body; ``failover`` says whether another
    provider might succeed (5xx, 429, and the 4xx in ``FAILOVER_4XX``).
    """

    def __init__(self, provider: Provider, status: int, message: str) -> None:
        super().__init__(f"provider {provider.name!r} answered {status}: {message}")
        self.provider = provider
        self.status = status
        self.message = message

    @property
    def failover(self) -> bool:
        return not 400 <= self.status < 500 or self.status in FAILOVER_4XX


class NoProvider(RemoteError):
    """No provider could be reached for ``model``.

    ``attempts`` holds one exception per provider tried, in order (empty when no
    provider serves the model at all).
    """

    def __init__(self, model: str, attempts: Sequence[RemoteError]) -> None:
        detail = "; ".join(str(a) for a in attempts) or "no provider serves this model"
        super().__init__(f"no provider available for model {model!r}: {detail}")
        self.model = model
        self.attempts = list(attempts)


class StreamInterrupted(RemoteError):
    """The upstream connection failed after audio had started flowing.

    Raised from ``UpstreamAudio.chunks()``; by then part of the audio may have
    reached the caller's client, so failing over is the caller's call, not ours.
    """

    def __init__(self, provider: Provider, reason: str) -> None:
        super().__init__(f"provider {provider.name!r} stream interrupted: {reason}")
        self.provider = provider
        self.reason = reason


# --------------------------------------------------------------------------- audio


class UpstreamAudio:
    """An open 2xx response from a provider whose body is the audio.

    ``format`` is what the bytes actually are (may differ from what the caller
    asked for, when orate has to re-encode), ``sample_rate`` is set for headerless
    pcm and None for self-describing containers. Iterate ``chunks()`` once, or call
    ``aclose()`` to drop the connection early; usable as ``async with``.
    """

    def __init__(self, provider: Provider, response: httpx.Response, *, format: str,
                 sample_rate: int | None) -> None:
        self.provider = provider
        self.format = format
        self.sample_rate = sample_rate
        self.content_type = CONTENT_TYPES.get(format, "application/octet-stream")
        self._response = response
        self._started = False

    async def chunks(self) -> AsyncIterator[bytes]:
        """Yield the audio as it arrives; pcm chunks always hold whole 16-bit samples."""
        if self._started:
            raise RuntimeError("UpstreamAudio.chunks() can only be iterated once")
        self._started = True
        carry = b""
        try:
            async for data in self._response.aiter_bytes():
                if self.format == "pcm":
                    # Never split a sample: a re-encoder fed an odd byte count
                    # would shift every later sample by one byte (loud noise).
                    data = carry + data
                    cut = len(data) - len(data) % 2
                    data, carry = data[:cut], data[cut:]
                if data:
                    yield data
        except httpx.TransportError as exc:
            raise StreamInterrupted(self.provider, _describe(exc)) from exc
        finally:
            await self.aclose()
        if carry:
            log.debug("provider %s: dropped a trailing odd pcm byte", self.provider.name)

    async def aclose(self) -> None:
        await self._response.aclose()

    async def __aenter__(self) -> UpstreamAudio:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.aclose()


# --------------------------------------------------------------------------- requests


@dataclass(frozen=True)
class _Plan:
    """Everything kind-specific about one request: where, what, and what comes back."""

    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    format: str
    sample_rate: int | None
    params: dict[str, str] = field(default_factory=dict)


def _clamp(value: float, low: float, high: float) -> float:
    return max(low, min(high, value))


def _plan_openai(p: Provider, key: str | None, model: str, text: str, voice: str,
                 speed: float, fmt: str) -> _Plan:
    """``POST {base}/audio/speech``; base_url already includes ``/v1``."""
    out = fmt if p.native(fmt) else "wav"
    body = {"model": p.model_id(model), "input": text, "voice": voice,
            "response_format": out, "speed": _clamp(speed, 0.25, 4.0)}
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return _Plan("/audio/speech", headers, body, out, 24000 if out == "pcm" else None)


_ELEVENLABS_OUTPUT: Final[Mapping[str, tuple[str, str, int | None]]] = MappingProxyType({
    # fmt -> (output_format, format of the bytes, sample_rate)
    "mp3": ("mp3_44100_128", "mp3", None),
    "pcm": ("pcm_24000", "pcm", 24000),
    "opus": ("opus_48000_64", "opus", None),
})


def _plan_elevenlabs(p: Provider, key: str | None, model: str, text: str, voice: str,
                     speed: float, fmt: str) -> _Plan:
    """``POST {base}/v1/text-to-speech/{voice}/stream``; anything not native comes as pcm.

    pcm rather than wav because ElevenLabs offers wav only on non-stream endpoints.
    """
    output, out, rate = _ELEVENLABS_OUTPUT[fmt if p.native(fmt) else "pcm"]
    body = {"text": text, "model_id": p.model_id(model),
            "voice_settings": {"speed": _clamp(speed, 0.7, 1.2)}}
    headers = {"xi-api-key": key} if key else {}
    path = f"/v1/text-to-speech/{quote(voice, safe='')}/stream"
    return _Plan(path, headers, body, out, rate, params={"output_format": output})


def _plan_hume(p: Provider, key: str | None, model: str, text: str, voice: str,
               speed: float, fmt: str) -> _Plan:
    """``POST {base}/v0/tts/stream/file``; anything not native comes as wav.

    ``strip_headers`` makes the chunks one continuous file instead of one file per
    snippet. An upstream model id of "1" or "2" selects the Octave version.
    """
    out = fmt if p.native(fmt) else "wav"
    utterance = {"text": text, "voice": {"name": voice, "provider": "HUME_AI"},
                 "speed": _clamp(speed, 0.5, 2.0)}
    body: dict[str, Any] = {"utterances": [utterance], "format": {"type": out},
                            "strip_headers": True}
    if p.model_id(model) in ("1", "2"):
        body["version"] = p.model_id(model)
    headers = {"X-Hume-Api-Key": key} if key else {}
    return _Plan("/v0/tts/stream/file", headers, body, out, 48000 if out == "pcm" else None)


_PLANNERS: Final[Mapping[str, Callable[..., _Plan]]] = MappingProxyType({
    "openai": _plan_openai, "elevenlabs": _plan_elevenlabs, "hume": _plan_hume,
})


async def open_stream(provider: Provider, *, model: str, text: str, voice: str,
                      speed: float = 1.0, fmt: str, client: httpx.AsyncClient) -> UpstreamAudio:
    """Send one synthesis request to one provider and return once headers are in.

    Raises ``ProviderUnreachable`` (connection failure, timeout before headers, or
    its key variable is declared but empty) or ``ProviderError`` (non-2xx) before
    returning, so nothing has been streamed when it fails. The body is not read:
    the caller pulls it through ``UpstreamAudio.chunks()``.
    """
    planner = _PLANNERS.get(provider.kind)
    if planner is None:
        raise ValueError(f"provider {provider.name!r}: unknown kind {provider.kind!r}")
    key = provider.api_key()
    if provider.api_key_env and key is None:
        # Without its key the provider would only answer 401; skip the round trip.
        raise ProviderUnreachable(provider, f"environment variable {provider.api_key_env} "
                                            "(its API key) is not set")
    plan = planner(provider, key, model, text, voice, speed, fmt)
    request = client.build_request(
        "POST", provider.base_url + plan.path, params=plan.params or None, json=plan.body,
        headers={"User-Agent": "orate", **plan.headers}, timeout=provider.http_timeout())
    response = await _send(provider, client, request)
    if not 200 <= response.status_code < 300:
        raise await _error_from(provider, response, key)
    return UpstreamAudio(provider, response, format=plan.format, sample_rate=plan.sample_rate)


async def _send(provider: Provider, client: httpx.AsyncClient,
                request: httpx.Request) -> httpx.Response:
    """``client.send(stream=True)`` with every pre-header failure as ProviderUnreachable.

    httpx's read timeout restarts with each byte, so an overall deadline also
    bounds a server that trickles its headers out.
    """
    deadline = min(CONNECT_TIMEOUT_MAX, provider.timeout) + provider.timeout
    try:
        async with asyncio.timeout(deadline):
            return await client.send(request, stream=True)
    except TimeoutError as exc:
        raise ProviderUnreachable(provider, f"no response within {deadline:g} s") from exc
    except httpx.TransportError as exc:
        raise ProviderUnreachable(provider, _describe(exc)) from exc


async def _error_from(provider: Provider, response: httpx.Response,
                      key: str | None) -> ProviderError:
    """Read (a bounded part of) an error body and turn it into a ProviderError."""
    body = bytearray()
    try:
        async for data in response.aiter_bytes():
            body += data
            if len(body) >= _ERROR_BODY_MAX:
                break
    except httpx.TransportError as exc:
        log.debug("provider %s: error body unreadable: %s", provider.name, _describe(exc))
    finally:
        await response.aclose()
    message = error_message(bytes(body)) or response.reason_phrase or "error"
    if key:
        message = message.replace(key, "***")  # some upstreams echo the key back
    return ProviderError(provider, response.status_code, message)


def error_message(body: bytes) -> str:
    """The upstream's error message from its JSON envelope, else the body text.

    Understands OpenAI ``{"error":{"message"}}``, ElevenLabs
    ``{"detail":{"status","message"}}``, FastAPI ``{"detail":[{"msg"}]}`` and Hume
    ``{"message"}``. Truncated to 300 characters either way.
    """
    text = body.decode("utf-8", "replace").strip()
    try:
        found = _find_message(json.loads(text))
    except ValueError:
        found = None
    message = found or text
    if len(message) > ERROR_MESSAGE_MAX:
        message = message[:ERROR_MESSAGE_MAX - 1] + "…"
    return message


def _find_message(data: Any) -> str | None:
    if isinstance(data, str):
        return data.strip() or None
    if isinstance(data, list):
        parts = [m for m in (_find_message(item) for item in data) if m]
        return "; ".join(parts) or None
    if isinstance(data, dict):
        for key in ("message", "msg"):
            if isinstance(data.get(key), str) and data[key].strip():
                return data[key].strip()
        for key in ("error", "detail"):
            found = _find_message(data.get(key))
            if found:
                return found
    return None


def _describe(exc: BaseException) -> str:
    """A short reason for logs: the exception type plus its message, if any."""
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


# --------------------------------------------------------------------------- fail-over


async def synthesize(providers: Sequence[Provider], *, model: str, text: str, voice: str,
                     speed: float = 1.0, fmt: str,
                     client: httpx.AsyncClient) -> tuple[Provider, UpstreamAudio]:
    """Open a stream from the first provider serving ``model`` that answers 2xx.

    Providers are tried in order (those not serving ``model`` are skipped, so
    passing the whole list is fine). Unreachable providers, 5xx, 429 and the
    provider-specific 4xx of ``FAILOVER_4XX`` move on to the next one. Any other
    4xx is raised at once: it means the caller's input is bad (bad voice, text
    too long, invalid parameter), which another provider would reject as well,
    and trying them all would multiply latency and cost for a certain failure.

    When every provider failed: ``NoProvider`` if none gave an HTTP answer, else
    the last ``ProviderError`` (its status says more than "unreachable").
    """
    attempts: list[RemoteError] = []
    last_error: ProviderError | None = None
    for provider in providers_for(model, providers):
        try:
            audio = await open_stream(provider, model=model, text=text, voice=voice,
                                      speed=speed, fmt=fmt, client=client)
        except ProviderUnreachable as exc:
            attempts.append(exc)
            log.warning("model %s: provider %s unreachable (%s); failing over",
                        model, provider.name, exc.reason)
            continue
        except ProviderError as exc:
            if not exc.failover:
                raise
            attempts.append(exc)
            last_error = exc
            log.warning("model %s: provider %s answered %d (%s); failing over",
                        model, provider.name, exc.status, exc.message)
            continue
        return provider, audio
    if last_error is not None:
        raise last_error
    raise NoProvider(model, attempts)
