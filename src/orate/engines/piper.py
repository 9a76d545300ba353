"""Piper voices (the ``piper-tts`` format: ``NAME.onnx`` + ``NAME.onnx.json``) on onnxruntime.

The config gives the sample rate, the phoneme → id map, the inference scales
and the speakers; espeak-ng (already in process) turns text into the IPA the
voice was trained on. Speed is Piper's ``length_scale``; a multi-speaker
voice offers one voice per speaker. If the export also outputs per-phoneme
durations, they become phoneme and word timestamps.
"""

from __future__ import annotations

import json
import unicodedata
from pathlib import Path
from typing import Any

import numpy as np

from orate.engines.base import (
    Engine,
    Sink,
    SynthesisResult,
    UnknownVoice,
    VoiceInfo,
    VoiceParams,
)
from orate.engines.espeak import phonemize_words
from orate.engines.onnx_base import (
    LazySession,
    push,
    symbol_events,
    thread_budget,
    to_pcm,
)

BOS, EOS, PAD = "^", "$", "_"
_PUNCT = frozenset(".,:;!?—…")  # clause punctuation: time in the audio, no phoneme
DEFAULT_VOICE = "default"


class PiperEngine(Engine):
    """One Piper voice file; ``name`` is ``piper:NAME``."""

    phoneme_input = "espeak"  # reads espeak [[…]] phoneme mnemonics (see synthesize)

    def __init__(self, model: Path, config: Path, *, idle: float = 300.0) -> None:
        self.model_path = model
        cfg = json.loads(config.read_text(encoding="utf-8"))
        self.config = cfg
        stem = model.name.removesuffix(".onnx")
        self.name = f"piper:{stem}"
        self.version = f"piper/{cfg.get('piper_version') or cfg.get('dataset') or stem}"
        self.sample_rate: int = int(cfg.get("audio", {}).get("sample_rate", 22050))
        inference = cfg.get("inference", {})
        self.noise_scale = float(inference.get("noise_scale", 0.667))
        self.length_scale = float(inference.get("length_scale", 1.0))
        self.noise_w = float(inference.get("noise_w", 0.8))
        self.id_map: dict[str, list[int]] = cfg["phoneme_id_map"]
        self.espeak_voice = (cfg.get("espeak", {}).get("voice") or "en-us").lower()
        self.language = cfg.get("language", {}).get("code") or self.espeak_voice
        speakers = cfg.get("speaker_id_map") or {}
        self.speakers: dict[str, int] = {str(k): int(v) for k, v in speakers.items()}
        self.multi_speaker = int(cfg.get("num_speakers", 1)) > 1
        self.speed_range = (0.25, 4.0)
        # a voice alone on an idle machine runs on every core (see LazySession)
        self.session = LazySession(model, idle, wide=True)
        # word and phoneme times come from the model's durations (onnx_graph exposes them)
        self.timestamp_kinds = ("word", "phoneme")

    def sweep(self) -> bool:
        """Unload the voice's model when idle past its time."""
        return self.session.sweep()

    def voices(self) -> list[VoiceInfo]:
        names = (
            sorted(self.speakers, key=self.speakers.__getitem__)
            if self.multi_speaker
            else [DEFAULT_VOICE]
        )
        return [
            VoiceInfo(
                id=n,
                name=n,
                engine=self.name,
                language=self.language,
                languages=(self.language,),
                description=f"Piper {self.name} {n}",
            )
            for n in names
        ]

    def check_voice(self, params: VoiceParams) -> VoiceParams:
        voice = params.voice.strip()
        known = {v.id for v in self.voices()}
        if voice not in known:
            raise UnknownVoice(
                f"{self.name} has no voice {voice!r}; it has {', '.join(sorted(known)[:20])}"
            )
        return VoiceParams(engine=self.name, voice=voice, rate=params.rate)

    def phonemes(self, text: str, phoneme_input: bool = False) -> str:
        """piper-tts's phonemes for ``text``: espeak IPA per clause, language-switch marks
        removed, each clause followed by its punctuation (and a space after it), NFD."""
        pieces, _ = phonemize_words(text, self.espeak_voice, phoneme_input)
        return unicodedata.normalize("NFD", "".join(p for p, _ in pieces))

    def _ids(self, pieces: str | list[tuple[str, int]]) -> tuple[list[int], list[str], list[int]]:
        """Phoneme ids with Piper's padding, the symbol each id stands for (``""`` for
        pads and punctuation, which take time but are no phoneme) and the word of each
        (``pieces`` from ``phonemize_words``, or a phoneme string of no known words)."""
        if isinstance(pieces, str):
            pieces = [(pieces, -1)]
        ids: list[int] = []
        symbols: list[str] = []
        owners: list[int] = []

        def add(symbol: str, owner: int = -1) -> None:
            for i in self.id_map.get(symbol, []):
                ids.append(i)
                symbols.append("" if symbol in (BOS, EOS, PAD) or symbol in _PUNCT else symbol)
                owners.append(owner)

        add(BOS)
        add(PAD)
        for piece, owner in pieces:
            for ch in unicodedata.normalize("NFD", piece):
                if ch in self.id_map:
                    add(ch, owner)
                    add(PAD, owner)
        add(EOS)
        return ids, symbols, owners

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
        # ``phonemes``: [[…]] (lexicon IPA, SSML <phoneme>) pass through espeak as phonemes
        pieces, spans = phonemize_words(text, self.espeak_voice, phonemes)
        ids, symbols, owners = self._ids(pieces)
        if len(ids) <= 3:
            return SynthesisResult()
        session = self.session.get(thread_budget())
        names = {i.name for i in session.get_inputs()}
        feeds: dict[str, Any] = {
            "input": np.array([ids], dtype=np.int64),
            "input_lengths": np.array([len(ids)], dtype=np.int64),
            "scales": np.array(
                [self.noise_scale, self.length_scale / (speed * params.rate), self.noise_w],
                dtype=np.float32,
            ),
        }
        if "sid" in names:
            feeds["sid"] = np.array([self.speakers.get(params.voice, 0)], dtype=np.int64)
        outputs = session.run(None, feeds)
        pcm = to_pcm(outputs[0])
        events = (
            symbol_events(text, symbols, outputs[1], len(pcm), self.sample_rate, owners, spans)
            if len(outputs) > 1
            else []
        )
        return push(pcm, events, self.sample_rate, sink)
