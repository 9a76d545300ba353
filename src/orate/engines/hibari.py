"""hibari: the natural English voice that ships inside its wheel (``hibari-tts``).

The package's ONNX model maps phoneme ids to vocoder features and its
``dsp.synth`` turns those into 24 kHz audio; its G2P (lexicons plus an
out-of-vocabulary net, no espeak) makes the phonemes. This engine runs the
same three steps per sentence, but opens the model itself so that
onnxruntime gets orate's thread settings and the model's rounded phoneme
durations come out as an extra output (``onnx_graph``): each duration unit is
a fixed number of feature frames, so word and phoneme times are the ones the
audio was built from, not estimates.

Only voices whose model file is on disk are offered: ``heart`` is in the
wheel; hibari's other voices download on first use, which a server here must
never do, so they appear only once someone has put them in hibari's cache.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from orate.engines.base import Sink, SynthesisResult, UnknownVoice, VoiceInfo, VoiceParams
from orate.engines.onnx_base import LazySession, open_session, push, symbol_events, to_pcm
from orate.engines.voicefx import Transform, transform_features

SAMPLE_RATE = 24000
MAX_PHONEMES = 400  # hibari's own limit per model run; longer sentences split at clauses
_CLAUSE = re.compile(r"(?<=[,;:—])\s+")
# the phoneme alphabet's punctuation: it takes time in the audio but is no phoneme
_PUNCT = frozenset(';:,.!?—…"()“”')


def available() -> bool:
    """True when the ``hibari-tts`` package is importable (it is a dependency, but a
    trimmed install should fall back to espeak rather than fail)."""
    import importlib.util

    return importlib.util.find_spec("hibari") is not None


class _Loaded:
    """A voice's session and the G2P it needs, loaded together and dropped together."""

    def __init__(self, path: Path, british: bool) -> None:
        from orate.engines.hibari_g2p import load_g2p

        self.session = open_session(path)
        self.g2p = load_g2p(british)


def _robust_g2p(g2p: Any, text: str) -> str:
    """hibari's G2P, falling back word by word where it fails (its number reader stops at
    10^33): one odd word must cost that word, never the request."""
    try:
        return str(g2p(text))
    except Exception:
        parts = []
        for word in text.split():
            spelled = " ".join(word) if any(ch.isdigit() for ch in word) else word
            try:
                ps = g2p(spelled)
            except Exception:
                continue
            if ps:
                parts.append(ps)
        return " ".join(parts)


class HibariEngine:
    """hibari's installed voices; ``name`` is ``hibari``."""

    name = "hibari"
    sample_rate = SAMPLE_RATE
    speed_range = (0.5, 2.0)
    timestamp_kinds = ("word", "phoneme")

    def __init__(self, *, idle: float = 300.0) -> None:
        import json

        import hibari
        from hibari.voices import VOICES, voice_path

        self.version = f"hibari/{hibari.__version__}"
        assets = Path(hibari.__file__).parent / "assets"
        self.vocab: dict[str, int] = json.loads((assets / "vocab.json").read_text("utf-8"))
        self.meta: dict[str, dict[str, Any]] = {}
        self.sessions: dict[str, LazySession] = {}
        for voice, meta in VOICES.items():
            try:
                path = Path(voice_path(voice, download_missing=False))
            except (FileNotFoundError, ValueError):
                continue
            if path.exists():
                british = bool(meta.get("british"))
                self.meta[voice] = meta
                self.sessions[voice] = LazySession(
                    path, idle, lambda p, b=british: _Loaded(p, b))
        self.known = tuple(VOICES)  # every voice hibari names, installed or not

    def voices(self) -> list[VoiceInfo]:
        out = []
        for voice, meta in self.meta.items():
            lang = str(meta.get("language", "en-US")).lower()
            gender = meta.get("gender") if meta.get("gender") in ("male", "female") \
                else "neutral"
            out.append(VoiceInfo(id=voice, name=voice, engine=self.name, language=lang,
                                 languages=(lang,), gender=gender,  # type: ignore[arg-type]
                                 description=f"hibari {voice}: {meta.get('accent', '')} "
                                 f"English, distilled from Kokoro {meta.get('kokoro', '')}"))
        return out

    def check_voice(self, params: VoiceParams) -> VoiceParams:
        """Canonical params; espeak-only knobs (variant, pitch) have no meaning here and
        are dropped, so designed voices and directions keep only the pace."""
        voice = params.voice.strip().lower()
        if voice not in self.meta:
            installed = ", ".join(self.meta) or "none"
            if voice in self.known:
                raise UnknownVoice(f"hibari's voice {voice!r} is not installed (hibari "
                                   f"downloads it on first use, which this server does not "
                                   f"do); installed: {installed}")
            raise UnknownVoice(f"hibari has no voice {params.voice!r}; installed: {installed}")
        return VoiceParams(engine=self.name, voice=voice, rate=params.rate)

    def sweep(self) -> bool:
        """Unload voices idle past their time; True when one was."""
        return any([session.sweep() for session in self.sessions.values()])

    @property
    def loaded(self) -> bool:
        return any(s.loaded for s in self.sessions.values())

    def phonemes(self, text: str, voice: str) -> list[str]:
        """The phoneme strings of one sentence, each short enough for one model run."""
        ps = _robust_g2p(self.sessions[voice].get().g2p, text)
        if not ps:
            return []
        if len(ps) <= MAX_PHONEMES:
            return [ps]
        chunks, cur = [], ""
        for part in _CLAUSE.split(ps):
            if cur and len(cur) + len(part) + 1 > MAX_PHONEMES:
                chunks.append(cur)
                cur = part
            else:
                cur = f"{cur} {part}" if cur else part
        return [*chunks, cur] if cur else chunks

    def synthesize(self, text: str, params: VoiceParams, speed: float, sink: Sink,
                   *, ssml: bool = False, transform: Transform | None = None
                   ) -> SynthesisResult:
        """``transform`` (the palette's derived voices) changes the vocoder features
        between the model and the DSP: pitch, formants, breathiness at no extra cost."""
        from hibari import dsp

        loaded = self.sessions[params.voice].get()
        rng = np.random.default_rng(0)  # the same text gives the same audio (cache, tests)
        pcm_parts: list[np.ndarray] = []
        symbols: list[str] = []
        durations: list[np.ndarray] = []
        for ps in self.phonemes(text, params.voice):
            kept = [ch for ch in ps if ch in self.vocab]
            if not kept:
                continue
            ids = [0, *(self.vocab[ch] for ch in kept), 0]
            out = loaded.session.run(None, {
                "ids": np.asarray([ids], np.int64),
                "speed": np.asarray([speed * params.rate], np.float32)})
            lh, th, ln, lr, phi, f0 = (o[0] for o in out[:6])
            if transform is not None and not transform.identity:
                lh, th, ln, lr, phi, f0 = transform_features(lh, th, ln, lr, phi, f0,
                                                             transform)
            pcm_parts.append(to_pcm(dsp.synth(lh, th, ln, lr, phi, f0, rng)))
            if len(out) > 6:
                # a word break between chunks, pads and punctuation take time, no phoneme
                symbols += ["", *("" if ch in _PUNCT else ch for ch in kept), "", " "]
                durations.append(np.concatenate([np.asarray(out[6]).ravel(), [0]]))
        if not pcm_parts:
            return SynthesisResult()
        pcm = np.concatenate(pcm_parts)
        events = symbol_events(text, symbols, np.concatenate(durations), len(pcm),
                               self.sample_rate) if durations else []
        return push(pcm, events, self.sample_rate, sink)
