"""The providers file: which upstream TTS services serve which model ids, and how.

Read once at start (``load_providers``); a mistake in it fails the start in one line
naming the entry and field, never a request later.
"""

from __future__ import annotations

import logging
import math
import os
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlsplit

from orate.config import Price

if TYPE_CHECKING:
    import httpx

log = logging.getLogger("orate.upstream")

KINDS: Final = ("openai", "elevenlabs", "hume")
UPSTREAM_FORMATS: Final = ("mp3", "wav", "pcm", "opus", "aac", "flac")

# What each kind can return at all; ``formats`` in the file narrows this further.
NATIVE_FORMATS: Final[Mapping[str, tuple[str, ...]]] = MappingProxyType(
    {
        "openai": UPSTREAM_FORMATS,
        "elevenlabs": ("mp3", "pcm", "opus"),
        "hume": ("mp3", "wav", "pcm"),
    }
)

DEFAULT_TIMEOUT: Final = 30.0
MAX_TIMEOUT: Final = 600.0
CONNECT_TIMEOUT_MAX: Final = 5.0
"""A provider that takes longer than this to accept a TCP connection is treated as down."""

_KNOWN_FIELDS: Final = frozenset(
    {
        "name",
        "type",
        "kind",
        "base_url",
        "api_key_env",
        "models",
        "upstream_model",
        "timeout",
        "formats",
        "price",
    }
)


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
        import httpx

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
            raise ValueError(
                f"{where} ({provider.name!r}): field 'name': duplicate provider "
                "name (names must be unique)"
            )
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
        raise ValueError(
            f"{where}: field 'kind': unknown kind {kind!r} (expected one of {', '.join(KINDS)})"
        )
    models = _str_list(entry, "models", where, required=True)
    formats = _str_list(entry, "formats", where, required=False)
    bad = [f for f in formats if f not in UPSTREAM_FORMATS]
    if bad:
        raise ValueError(
            f"{where}: field 'formats': unknown format(s) {', '.join(bad)} "
            f"(expected any of {', '.join(UPSTREAM_FORMATS)})"
        )
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
        raise ValueError(
            f"{where}: field 'price' must be a table with per_1k_chars and/or "
            f"per_second, got {value!r}"
        )
    for key, amount in value.items():
        if (
            isinstance(amount, bool)
            or not isinstance(amount, int | float)
            or not math.isfinite(amount)
            or amount < 0
        ):
            raise ValueError(f"{where}: field 'price.{key}' must be a number >= 0, got {amount!r}")
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
    if (
        not isinstance(value, list)
        or not value
        or not all(isinstance(v, str) and v.strip() for v in value)
    ):
        raise ValueError(
            f"{where}: field {key!r} must be a non-empty list of strings, got {value!r}"
        )
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
        isinstance(k, str) and isinstance(v, str) and v for k, v in value.items()
    ):
        raise ValueError(
            f"{where}: field 'upstream_model' must be a table of "
            f"model id = upstream model id strings, got {value!r}"
        )
    stray = [k for k in value if k not in models]
    if stray:
        # A mapping for a model the provider does not declare can never apply:
        # almost certainly a typo in one of the two places.
        raise ValueError(
            f"{where}: field 'upstream_model': {', '.join(map(repr, stray))} not listed in 'models'"
        )
    return dict(value)


def _timeout(entry: Mapping[str, Any], where: str) -> float:
    value = entry.get("timeout", DEFAULT_TIMEOUT)
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or not 0 < value <= MAX_TIMEOUT
    ):
        raise ValueError(
            f"{where}: field 'timeout' must be a number of seconds in "
            f"(0, {MAX_TIMEOUT:g}], got {value!r}"
        )
    return float(value)
