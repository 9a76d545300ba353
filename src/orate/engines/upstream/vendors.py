"""Per-vendor request planners: one function per provider kind turns (model, text,
voice, speed, format) into that vendor's path, headers and body, and says what format
the bytes will come back in. Adding a vendor is one planner here plus its kind in
``providers.KINDS``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final
from urllib.parse import quote

from orate.engines.upstream.providers import Provider


@dataclass(frozen=True)
class VendorRequest:
    """Everything kind-specific about one request: where, what, and what comes back."""

    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    format: str
    sample_rate: int | None
    params: dict[str, str] = field(default_factory=dict)


def _clamp(value: float, low: float, high: float) -> float:
    return max(low, min(high, value))


def _plan_openai(
    p: Provider, key: str | None, model: str, text: str, voice: str, speed: float, fmt: str
) -> VendorRequest:
    """``POST {base}/audio/speech``; base_url already includes ``/v1``."""
    out = fmt if p.native(fmt) else "wav"
    body = {
        "model": p.model_id(model),
        "input": text,
        "voice": voice,
        "response_format": out,
        "speed": _clamp(speed, 0.25, 4.0),
    }
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return VendorRequest("/audio/speech", headers, body, out, 24000 if out == "pcm" else None)


_ELEVENLABS_OUTPUT: Final[Mapping[str, tuple[str, str, int | None]]] = MappingProxyType(
    {
        # fmt -> (output_format, format of the bytes, sample_rate)
        "mp3": ("mp3_44100_128", "mp3", None),
        "pcm": ("pcm_24000", "pcm", 24000),
        "opus": ("opus_48000_64", "opus", None),
    }
)


def _plan_elevenlabs(
    p: Provider, key: str | None, model: str, text: str, voice: str, speed: float, fmt: str
) -> VendorRequest:
    """``POST {base}/v1/text-to-speech/{voice}/stream``; anything not native comes as pcm.

    pcm rather than wav because ElevenLabs offers wav only on non-stream endpoints.
    """
    output, out, rate = _ELEVENLABS_OUTPUT[fmt if p.native(fmt) else "pcm"]
    body = {
        "text": text,
        "model_id": p.model_id(model),
        "voice_settings": {"speed": _clamp(speed, 0.7, 1.2)},
    }
    headers = {"xi-api-key": key} if key else {}
    path = f"/v1/text-to-speech/{quote(voice, safe='')}/stream"
    return VendorRequest(path, headers, body, out, rate, params={"output_format": output})


def _plan_hume(
    p: Provider, key: str | None, model: str, text: str, voice: str, speed: float, fmt: str
) -> VendorRequest:
    """``POST {base}/v0/tts/stream/file``; anything not native comes as wav.

    ``strip_headers`` makes the chunks one continuous file instead of one file per
    snippet. An upstream model id of "1" or "2" selects the Octave version.
    """
    out = fmt if p.native(fmt) else "wav"
    utterance = {
        "text": text,
        "voice": {"name": voice, "provider": "HUME_AI"},
        "speed": _clamp(speed, 0.5, 2.0),
    }
    body: dict[str, Any] = {
        "utterances": [utterance],
        "format": {"type": out},
        "strip_headers": True,
    }
    if p.model_id(model) in ("1", "2"):
        body["version"] = p.model_id(model)
    headers = {"X-Hume-Api-Key": key} if key else {}
    return VendorRequest("/v0/tts/stream/file", headers, body, out, 48000 if out == "pcm" else None)


PLANNERS: Final[Mapping[str, Callable[..., VendorRequest]]] = MappingProxyType(
    {
        "openai": _plan_openai,
        "elevenlabs": _plan_elevenlabs,
        "hume": _plan_hume,
    }
)
