"""The engine protocol: the one small surface every synthesizer implements.

An engine turns one sentence into PCM frames plus word and phoneme events and
knows nothing of HTTP, formats or storage. Synthesis is push-style (the engine
calls a sink per chunk) because the embedded engine delivers audio from a C
callback; pushing each chunk onward as it arrives is what keeps time to first
audio at a few milliseconds instead of a whole sentence.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

import numpy as np

Gender = Literal["male", "female", "neutral"]


@dataclass(frozen=True)
class VoiceInfo:
    """A voice an engine offers, as listed to callers."""

    id: str
    name: str
    engine: str
    language: str
    languages: tuple[str, ...] = ()
    gender: Gender = "neutral"
    description: str = ""


@dataclass(frozen=True)
class VoiceParams:
    """Everything about a voice that changes the audio, independent of the text.

    The library stores these for custom voices and generations, and the cache
    key hashes them, so they must be plain values.
    """

    engine: str = "espeak"
    voice: str = "en-us"
    variant: str | None = None
    pitch: int | None = None
    pitch_range: int | None = None
    rate: float = 1.0
    volume: int | None = None
    # natural voices only (the palette): adjustments on the voice's own transform
    f0: float = 1.0  # pitch level as a factor (``pitch`` moves it too)
    formant: float = 1.0  # vocal-tract scale: <1 lowers the formants
    breath: float = 0.0  # 0 modal voice .. 1 whisper

    def label(self) -> str:
        return f"{self.voice}+{self.variant}" if self.variant else self.voice


@dataclass(frozen=True)
class EngineEvent:
    """A word or phoneme boundary reported by the engine during synthesis.

    ``text_pos`` is a 0-based code-point offset into the sentence passed to
    ``synthesize``; ``time_ms`` counts from the start of that call's audio.
    """

    kind: Literal["word", "phoneme"]
    text_pos: int
    length: int
    time_ms: float
    text: str = ""


Sink = Callable[[np.ndarray, Sequence[EngineEvent]], bool]
"""Receives int16 mono PCM and the events within it; returns False to stop."""


@dataclass
class SynthesisResult:
    samples: int = 0
    stopped: bool = False
    events: list[EngineEvent] = field(default_factory=list)


class Engine(Protocol):
    """What the pipeline needs from a synthesizer."""

    name: str
    version: str
    sample_rate: int
    #: speeds the engine renders natively; the audio stage time-stretches the rest
    speed_range: tuple[float, float]

    def voices(self) -> list[VoiceInfo]: ...

    def check_voice(self, params: VoiceParams) -> VoiceParams:
        """Return canonical params or raise ``UnknownVoice`` with a useful message."""
        ...

    def synthesize(
        self, text: str, params: VoiceParams, speed: float, sink: Sink, *, ssml: bool = False
    ) -> SynthesisResult: ...


def runs_upstream(engine: Engine) -> bool:
    """Whether an engine's audio comes from upstream providers over HTTP (the gateway
    adapter) rather than from synthesis in a worker process."""
    return bool(getattr(engine, "runs_upstream", False))


def designs_voices(engine: Engine) -> bool:
    """Whether voice descriptions and acting directions are designed into this engine's
    parameters here (an upstream provider reads its own)."""
    return bool(getattr(engine, "designs_voices", True))


def version_of(engine: Engine, model_id: str) -> str:
    """What a model's audio depends on, for cache keys: the engine's version, or per
    model where one engine serves models that sound different (the upstream adapter)."""
    per_model = getattr(engine, "version_of", None)
    return str(per_model(model_id)) if per_model is not None else engine.version


def shorten(value: str, limit: int = 80) -> str:
    """A caller's string cut for an error message: a 100 kB voice name is not echoed."""
    return value if len(value) <= limit else value[:limit] + f"… ({len(value)} characters)"


class UnknownVoice(ValueError):
    """The caller named a voice or variant the engine does not have."""


class VoiceUnavailable(UnknownVoice):
    """The voice exists but this server cannot speak with it right now: its model file is
    corrupt or will not load, or a package its language needs is missing. The server's
    fault, not the caller's, so dialects answer 503 with this reason; never a reason to
    fall back to another voice (a caller asking for a male voice must not get the female
    one silently). A subclass of ``UnknownVoice`` so every place that already refuses a
    voice still refuses this one."""

    code = "voice_unavailable"
