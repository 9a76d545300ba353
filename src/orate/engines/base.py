"""The engine protocol: the one small surface every synthesizer implements.

An engine turns one sentence into PCM frames plus word and phoneme events and
knows nothing of HTTP, formats or storage. Synthesis is push-style (the engine
calls a sink per chunk) because the embedded engine delivers audio from a C
callback; pushing each chunk onward as it arrives is what keeps time to first
audio at a few milliseconds instead of a whole sentence.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

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


PhonemeAlphabet = Literal["espeak", "ipa"]
"""What an engine reads between ``[[…]]``: espeak mnemonics, or IPA it maps itself."""

TimestampKind = Literal["word", "phoneme"]

PhonemeCheck = Callable[[str], list[str]]
"""An engine's test of an IPA transcription: the symbols it has no phoneme for."""


class Engine:
    """What the pipeline needs from a synthesizer: the protocol, and what each engine
    can do, declared.

    Every engine subclasses this class. The attributes below the first four are its
    abilities, with the default most engines have; an engine that differs sets the
    attribute (or overrides the method), so the speech layer, the catalog and the
    dialects read a typed declaration instead of probing for attributes.
    """

    name: str
    version: str
    sample_rate: int
    #: speeds the engine renders natively; the audio stage time-stretches the rest
    speed_range: tuple[float, float]

    #: kinds of timestamps the engine measures (its own events, or model durations)
    timestamp_kinds: tuple[TimestampKind, ...] = ("word", "phoneme")
    #: the phoneme alphabet it reads between ``[[…]]`` (lexicon IPA, SSML <phoneme>);
    #: ``None``: none, brackets are read as text
    phoneme_input: PhonemeAlphabet | None = None
    #: its audio comes from upstream providers over HTTP, never from a worker
    runs_upstream: bool = False
    #: voice descriptions and acting directions are designed into its parameters here
    #: (an upstream provider reads its own)
    designs_voices: bool = True
    #: voice design picks among its palette voices and transform values
    palette: bool = False
    #: its voices sound natural (Home Assistant lists espeak-ng's as not)
    natural: bool = True
    #: every voice name it knows, installed or not (never aliased to another voice)
    known: tuple[str, ...] = ()
    #: what a caller is told when the voice is empty
    empty_voice: str = "voice is empty; name a voice such as 'alloy' or 'en-us'"

    def voices(self) -> list[VoiceInfo]:
        raise NotImplementedError

    def check_voice(self, params: VoiceParams) -> VoiceParams:
        """Return canonical params or raise ``UnknownVoice`` with a useful message."""
        raise NotImplementedError

    def synthesize(
        self,
        text: str,
        params: VoiceParams,
        speed: float,
        sink: Sink,
        *,
        ssml: bool = False,
        phonemes: bool = False,
    ) -> SynthesisResult:
        """Speak one sentence into ``sink``; ``phonemes`` lets ``[[…]]`` be read in the
        engine's ``phoneme_input`` alphabet (off: the brackets are text)."""
        raise NotImplementedError

    @property
    def variants(self) -> Mapping[str, tuple[str, Gender]]:
        """espeak-style variants (name → file, gender); empty: the engine has none."""
        return {}

    @property
    def phoneme_check(self) -> PhonemeCheck | None:
        """Its test of a transcription, when it maps IPA itself; ``None``: no test."""
        return None

    def phoneme_input_of(self, voice: str) -> PhonemeAlphabet | None:
        """The alphabet one voice reads (the palette answers per base engine)."""
        return self.phoneme_input

    def gender_of(self, params: VoiceParams) -> Gender | None:
        """The gender of a voice as rendered, when params decide it (espeak's variants);
        ``None``: the voice's listed gender."""
        return None

    def version_of(self, model_id: str) -> str:
        """What a model's audio depends on, for cache keys: the engine's version, or per
        model where one engine serves models that sound different (the upstream adapter)."""
        return self.version

    def listing(self, model_id: str) -> dict[str, Any] | None:
        """A model's facts for catalogs when the engine describes them itself; ``None``:
        the catalog lists its voices, languages and rate."""
        return None

    def store_voices(self) -> dict[str, Any]:
        """For model listings: voices installable into the model store, and their state."""
        return {}

    def sweep(self) -> bool:
        """Unload models idle past their time; True when one was."""
        return False

    def fallback(self) -> Engine:
        """The engine that speaks what this one does not (the palette: espeak-ng for
        other languages); itself for most."""
        return self


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
