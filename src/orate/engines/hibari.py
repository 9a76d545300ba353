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
import unicodedata
from bisect import bisect_right
from pathlib import Path
from typing import Any

import numpy as np

from orate.engines.base import Sink, SynthesisResult, UnknownVoice, VoiceInfo, VoiceParams
from orate.engines.onnx_base import LazySession, open_session, push, symbol_events, to_pcm

SAMPLE_RATE = 24000
MAX_PHONEMES = 400  # hibari's own limit per model run; longer sentences split at clauses
# the phoneme alphabet's punctuation: it takes time in the audio but is no phoneme
_PUNCT = frozenset(';:,.!?—…"()“”')
# hibari's sound runs ahead of the frame times its durations give (its vocoder's 50 ms
# window is centred on each frame, and the model moves between phonemes early): measured
# against pocketsphinx's forced alignment of ten plain sentences, word starts and ends
# were both a median 45 ms late (benchmarks/reading.py)
LEAD_MS = 45.0


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


# misaki's shorthand (hibari's phoneme alphabet) as IPA, for phoneme timestamps
MISAKI_IPA = {"A": "eɪ", "I": "aɪ", "O": "oʊ", "Q": "əʊ", "W": "aʊ", "Y": "ɔɪ", "T": "ɾ",
              "ʤ": "dʒ", "ʧ": "tʃ", "ᵊ": "ə"}
# IPA → misaki, longest first: what a pronunciation rule's IPA becomes for hibari
_IPA_MISAKI = {"eɪ": "A", "aɪ": "I", "oʊ": "O", "əʊ": "Q", "aʊ": "W", "ɔɪ": "Y", "dʒ": "ʤ",
               "tʃ": "ʧ", "d͡ʒ": "ʤ", "t͡ʃ": "ʧ", "ɝ": "ɜɹ", "r": "ɹ", "g": "ɡ", "ɫ": "l",
               "ɾ": "T", "ʍ": "w", "ɚ": "əɹ", "ɜ": "ɜɹ", "ɜː": "ɜɹ", "ɑː": "ɑ", "iː": "i",
               "uː": "u", "ɔː": "ɔ", "e": "ɛ", "o": "O", "ɡ": "ɡ"}
_IPA_SKIP = frozenset(".‿/[]()")
# a token's phonemes may come from phoneme input: [[IPA]] in the spoken text
_MARK = re.compile(r"\[\[([^\[\]]{0,2000})\]\]")


def ipa_to_misaki(ipa: str, vocab: dict[str, int]) -> tuple[str, list[str]]:
    """IPA in hibari's alphabet, and the symbols it has no phoneme for (reported to the
    caller by the pipeline, never dropped silently)."""
    out: list[str] = []
    missing: list[str] = []
    i = 0
    text = unicodedata.normalize("NFC", ipa.strip())
    while i < len(text):
        ch = text[i]
        if ch in _IPA_SKIP:
            i += 1
            continue
        if ch.isspace():
            out.append(" ")
            i += 1
            continue
        for size in (3, 2, 1):
            piece = text[i:i + size]
            if piece in _IPA_MISAKI:
                out.append(_IPA_MISAKI[piece])
                i += size
                break
        else:
            if ch in vocab:
                out.append(ch)
            elif ch not in missing:
                missing.append(ch)
            i += 1
    return "".join(out), missing


class HibariEngine:
    """hibari's installed voices; ``name`` is ``hibari``."""

    name = "hibari"
    sample_rate = SAMPLE_RATE
    speed_range = (0.5, 2.0)
    timestamp_kinds = ("word", "phoneme")
    phoneme_input = "ipa"  # reads [[IPA]] as phonemes when asked (see phoneme_words)

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

    def unsupported_phonemes(self, ipa: str) -> list[str]:
        """IPA symbols of a pronunciation rule this engine has no phoneme for."""
        return ipa_to_misaki(ipa, self.vocab)[1]

    def _tokens(self, g2p: Any, text: str, phonemes: bool) -> list[Any]:
        """hibari's tokens for the spoken text, each tagged, phonemized in context by its
        lexicon and OOV net, but never normalized again: orate's text layer already made
        the words, and a second rewrite would move words away from their timestamps (and
        drop signs orate reads). Phoneme input ``[[IPA]]`` becomes a token with those
        phonemes, so pronunciation rules reach hibari's own alphabet directly."""
        from hibari.g2p.token import Tok

        toks: list[Any] = []
        pos = 0
        for m in [*(_MARK.finditer(text) if phonemes else ()), None]:
            end = m.start() if m is not None else len(text)
            if text[pos:end].strip():
                toks += g2p._tokens(text[pos:end])
            if m is not None:
                ps, _ = ipa_to_misaki(m.group(1), self.vocab)
                space = " " if m.end() < len(text) and text[m.end()].isspace() else ""
                toks.append(Tok(m.group(), "NN", space, phonemes=ps, rating=5))
                pos = m.end()
        return toks

    def _phonemized(self, g2p: Any, toks: list[Any]) -> list[Any]:
        """Tokens with their phonemes; a token hibari's reader fails on (its number reader
        stops at 10^33) costs that token, never the sentence."""
        try:
            return list(g2p.phonemize_tokens(toks))
        except Exception:
            out = []
            for tok in toks:
                try:
                    out += g2p.phonemize_tokens([tok])
                except Exception:
                    tok.phonemes = ""
                    out.append(tok)
            return out

    def phoneme_words(self, text: str, voice: str, phonemes: bool = False
                      ) -> tuple[list[tuple[str, int]], list[tuple[int, int]]]:
        """hibari's phonemes of ``text`` as pieces that each belong to one word of it:
        (phonemes, index into spans), ``(" ", -1)`` between words; spans are the text's
        words. Each token hibari's tokenizer made is found in the text, so a word's
        phonemes are known exactly, whatever hibari's tokenizer splits or joins."""
        from orate.engines.onnx_base import spoken_words

        g2p = self.sessions[voice].get().g2p
        spans = spoken_words(text)
        starts = [s for s, _ in spans]
        pieces: list[tuple[str, int]] = []
        cursor = 0
        for tok in self._phonemized(g2p, self._tokens(g2p, text, phonemes)):
            found = text.find(tok.text, cursor, cursor + len(tok.text) + 64) \
                if tok.text else -1
            at = found if found >= 0 else cursor
            if found >= 0:
                cursor = found + len(tok.text)
            k = bisect_right(starts, at) - 1
            owner = k if 0 <= k < len(spans) and at < spans[k][1] else -1
            if tok.phonemes:
                pieces.append((tok.phonemes, owner))
            if tok.whitespace and pieces and pieces[-1][0] != " ":
                pieces.append((" ", -1))
        while pieces and pieces[-1][0] == " ":
            pieces.pop()
        return pieces, spans

    def phonemes(self, text: str, voice: str, phonemes: bool = False) -> list[str]:
        """The phoneme strings of one sentence, each short enough for one model run."""
        return ["".join(p for p, _ in chunk)
                for chunk in self._chunks(self.phoneme_words(text, voice, phonemes)[0])]

    def _chunks(self, pieces: list[tuple[str, int]]) -> list[list[tuple[str, int]]]:
        """Pieces cut into runs of at most ``MAX_PHONEMES`` symbols, at clause punctuation
        where one is near, else between words."""
        chunks: list[list[tuple[str, int]]] = []
        cur: list[tuple[str, int]] = []
        size = 0
        last_clause = -1  # index in cur just after the last clause mark
        for piece in pieces:
            if cur and size + len(piece[0]) > MAX_PHONEMES:
                cut = last_clause if last_clause > 0 else len(cur)
                chunks.append(cur[:cut])
                cur = cur[cut:]
                while cur and cur[0][0] == " ":
                    cur.pop(0)
                size = sum(len(p[0]) for p in cur)
                last_clause = -1
            cur.append(piece)
            size += len(piece[0])
            if piece[0] and piece[0][-1] in ",;:—":
                last_clause = len(cur)
        if cur:
            chunks.append(cur)
        return [[p for p in c if p[0]] for c in chunks if any(p[0].strip() for p in c)]

    def synthesize(self, text: str, params: VoiceParams, speed: float, sink: Sink,
                   *, ssml: bool = False, phonemes: bool = False) -> SynthesisResult:
        from hibari import dsp

        loaded = self.sessions[params.voice].get()
        rng = np.random.default_rng(0)  # the same text gives the same audio (cache, tests)
        pcm_parts: list[np.ndarray] = []
        symbols: list[str] = []
        owners: list[int] = []
        durations: list[np.ndarray] = []
        pieces, spans = self.phoneme_words(text, params.voice, phonemes)
        for chunk in self._chunks(pieces):
            kept = [(ch, owner) for ps, owner in chunk for ch in ps if ch in self.vocab]
            if not kept:
                continue
            ids = [0, *(self.vocab[ch] for ch, _ in kept), 0]
            out = loaded.session.run(None, {
                "ids": np.asarray([ids], np.int64),
                "speed": np.asarray([speed * params.rate], np.float32)})
            lh, th, ln, lr, phi, f0 = (o[0] for o in out[:6])
            pcm_parts.append(to_pcm(dsp.synth(lh, th, ln, lr, phi, f0, rng)))
            if len(out) > 6:
                # a word break between chunks, pads and punctuation take time, no phoneme
                symbols += ["", *("" if ch in _PUNCT else MISAKI_IPA.get(ch, ch)
                                  for ch, _ in kept), "", " "]
                owners += [-1, *(owner for _, owner in kept), -1, -1]
                durations.append(np.concatenate([np.asarray(out[6]).ravel(), [0]]))
        if not pcm_parts:
            return SynthesisResult()
        pcm = np.concatenate(pcm_parts)
        events = symbol_events(text, symbols, np.concatenate(durations), len(pcm),
                               self.sample_rate, owners, spans, LEAD_MS) if durations else []
        return push(pcm, events, self.sample_rate, sink)
