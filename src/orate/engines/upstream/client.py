"""The upstream client: one streamed request to one provider, and failover between them.

A model can be served by remote providers instead of (or besides) a local
engine. This module is the client side of that (the providers file is read by
``providers.py``, each vendor's request shaped by ``vendors.py``): it opens one
streamed request to one provider, and fails over between providers.

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
from collections.abc import AsyncIterator, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final

from orate.audio.formats import FORMATS
from orate.engines.upstream.providers import CONNECT_TIMEOUT_MAX, Provider, providers_for
from orate.engines.upstream.vendors import PLANNERS

if TYPE_CHECKING:  # httpx is imported where a provider is first called (~4 MiB)
    import httpx

log = logging.getLogger("orate.remote")

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

    def __init__(
        self, provider: Provider, response: httpx.Response, *, format: str, sample_rate: int | None
    ) -> None:
        self.provider = provider
        self.format = format
        self.sample_rate = sample_rate
        known = FORMATS.get(format)
        self.content_type = known.content_type if known else "application/octet-stream"
        self._response = response
        self._started = False

    async def chunks(self) -> AsyncIterator[bytes]:
        """Yield the audio as it arrives; pcm chunks always hold whole 16-bit samples."""
        if self._started:
            raise RuntimeError("UpstreamAudio.chunks() can only be iterated once")
        self._started = True
        carry = b""
        import httpx

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

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


# --------------------------------------------------------------------------- requests


async def open_stream(
    provider: Provider,
    *,
    model: str,
    text: str,
    voice: str,
    speed: float = 1.0,
    fmt: str,
    client: httpx.AsyncClient,
) -> UpstreamAudio:
    """Send one synthesis request to one provider and return once headers are in.

    Raises ``ProviderUnreachable`` (connection failure, timeout before headers, or
    its key variable is declared but empty) or ``ProviderError`` (non-2xx) before
    returning, so nothing has been streamed when it fails. The body is not read:
    the caller pulls it through ``UpstreamAudio.chunks()``.
    """
    planner = PLANNERS.get(provider.kind)
    if planner is None:
        raise ValueError(f"provider {provider.name!r}: unknown kind {provider.kind!r}")
    key = provider.api_key()
    if provider.api_key_env and key is None:
        # Without its key the provider would only answer 401; skip the round trip.
        raise ProviderUnreachable(
            provider, f"environment variable {provider.api_key_env} (its API key) is not set"
        )
    plan = planner(provider, key, model, text, voice, speed, fmt)
    request = client.build_request(
        "POST",
        provider.base_url + plan.path,
        params=plan.params or None,
        json=plan.body,
        headers={"User-Agent": "orate", **plan.headers},
        timeout=provider.http_timeout(),
    )
    response = await _send(provider, client, request)
    if not 200 <= response.status_code < 300:
        raise await _error_from(provider, response, key)
    return UpstreamAudio(provider, response, format=plan.format, sample_rate=plan.sample_rate)


async def _send(
    provider: Provider, client: httpx.AsyncClient, request: httpx.Request
) -> httpx.Response:
    """``client.send(stream=True)`` with every pre-header failure as ProviderUnreachable.

    httpx's read timeout restarts with each byte, so an overall deadline also
    bounds a server that trickles its headers out.
    """
    import httpx

    deadline = min(CONNECT_TIMEOUT_MAX, provider.timeout) + provider.timeout
    try:
        async with asyncio.timeout(deadline):
            return await client.send(request, stream=True)
    except TimeoutError as exc:
        raise ProviderUnreachable(provider, f"no response within {deadline:g} s") from exc
    except httpx.TransportError as exc:
        raise ProviderUnreachable(provider, _describe(exc)) from exc


async def _error_from(
    provider: Provider, response: httpx.Response, key: str | None
) -> ProviderError:
    """Read (a bounded part of) an error body and turn it into a ProviderError."""
    import httpx

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
        message = message[: ERROR_MESSAGE_MAX - 1] + "…"
    return message


def _find_message(data: Any) -> str | None:
    if isinstance(data, str):
        return data.strip() or None
    if isinstance(data, list):
        parts = [m for m in (_find_message(item) for item in data) if m]
        return "; ".join(parts) or None
    if isinstance(data, dict):
        for key in ("message", "msg"):
            value = data.get(key)
            if isinstance(value, str) and value.strip():
                return value.strip()
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


async def synthesize(
    providers: Sequence[Provider],
    *,
    model: str,
    text: str,
    voice: str,
    speed: float = 1.0,
    fmt: str,
    client: httpx.AsyncClient,
) -> tuple[Provider, UpstreamAudio]:
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
            audio = await open_stream(
                provider, model=model, text=text, voice=voice, speed=speed, fmt=fmt, client=client
            )
        except ProviderUnreachable as exc:
            attempts.append(exc)
            log.warning(
                "model %s: provider %s unreachable (%s); failing over",
                model,
                provider.name,
                exc.reason,
            )
            continue
        except ProviderError as exc:
            if not exc.failover:
                raise
            attempts.append(exc)
            last_error = exc
            log.warning(
                "model %s: provider %s answered %d (%s); failing over",
                model,
                provider.name,
                exc.status,
                exc.message,
            )
            continue
        return provider, audio
    if last_error is not None:
        raise last_error
    raise NoProvider(model, attempts)
