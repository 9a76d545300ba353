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
wheel; hibari's other voices (emma, fenrir, fable, kore) download on first use,
which a server must never do, so they install into the model store instead:
``orate models pull hibari:NAME`` on a connected machine, or the file copied by
hand to ``<models_dir>/hibari/<file>`` (the file names are hibari's, e.g.
``am_fenrir_v2.int8.onnx``). hibari's own cache (``HIBARI_HOME``) is a second
place to find them. Every file found is checked against the sha256 in hibari's
registry before it is offered: a file that does not match is reported with its
path and refused (503), never used and never replaced by another voice.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import unicodedata
from bisect import bisect_right
from pathlib import Path
from typing import Any

import numpy as np

from orate.engines.base import (
    Engine,
    Gender,
    PhonemeCheck,
    Sink,
    SynthesisResult,
    UnknownVoice,
    VoiceInfo,
    VoiceParams,
    VoiceUnavailable,
)
from orate.engines.onnx_base import LazySession, open_session, push, symbol_events, to_pcm
from orate.engines.voicefx import Transform, transform_features

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


# the model store's folder for hibari's voices: <models_dir>/hibari/<hibari's file name>
STORE_FOLDER = "hibari"
# For tests only: "voice=SHA256[,voice=SHA256]" replaces the registry's checksum of those
# voices, so a test can install a file it made (a copy of heart under fenrir's name)
# through the real pull and scan paths without the network. Never set it in production:
# it is how a file that is not hibari's voice would pass the check.
SHA256_OVERRIDE_ENV = "ORATE_TEST_HIBARI_SHA256"
_HEX64 = re.compile(r"[0-9a-f]{64}")


def registry() -> dict[str, dict[str, Any]]:
    """hibari's voice registry (name → kokoro, language, accent, gender, file, bytes,
    sha256, british), with the tests' checksum override applied."""
    from hibari.voices import VOICES

    overrides: dict[str, str] = {}
    for item in filter(None, os.environ.get(SHA256_OVERRIDE_ENV, "").split(",")):
        name, _, digest = item.strip().partition("=")
        if name not in VOICES or not _HEX64.fullmatch(digest.strip().lower()):
            raise ValueError(
                f"{SHA256_OVERRIDE_ENV}: expected voice=SHA256 with a voice of "
                f"{', '.join(VOICES)}, got {item!r}"
            )
        overrides[name] = digest.strip().lower()
    return {
        name: {**meta, "sha256": overrides.get(name, meta["sha256"])}
        for name, meta in VOICES.items()
    }


def store_file(store: Path | None, meta: dict[str, Any]) -> str:
    """Where a voice's file goes in the model store, as the user should read it."""
    folder = str(store) if store is not None else f"<models_dir>/{STORE_FOLDER}"
    return f"{folder}/{meta['file']}"


def _sha256(path: Path) -> str:
    hasher = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            hasher.update(chunk)
    return hasher.hexdigest()


def _find(voice: str, meta: dict[str, Any], store: Path | None) -> tuple[Path | None, str | None]:
    """A voice's model file (the wheel, the model store, then hibari's cache) and, if that
    file is not the one hibari's registry names, why not. (None, None): not installed."""
    from hibari.voices import ASSETS, cache_dir

    if meta.get("bundled"):
        return Path(ASSETS) / meta["file"], None  # in the wheel pip verified
    if Path(meta["file"]).name != meta["file"]:  # the registry's names are plain files
        return None, None
    places = [*([store] if store is not None else []), Path(cache_dir())]
    for folder in places:
        path = folder / meta["file"]
        if path.is_file():
            actual = _sha256(path)
            if actual != meta["sha256"]:
                return path, (
                    f"{path} is not hibari's voice file (its sha256 is "
                    f"{actual[:16]}…, hibari's registry says {meta['sha256'][:16]}…):"
                    f" it is damaged or another file; delete it and run "
                    f"`orate models pull hibari:{voice}`"
                )
            return path, None
    return None, None


class _Loaded:
    """A voice's session and the G2P it needs, loaded together and dropped together."""

    def __init__(self, path: Path, british: bool, voice: str = "") -> None:
        from orate.engines.hibari_g2p import load_g2p

        try:
            self.session = open_session(path)
        except Exception as exc:  # a file that passed its checksum yet will not load
            raise VoiceUnavailable(
                f"hibari's voice {voice!r} did not load from {path}: {type(exc).__name__}: {exc}"
            ) from exc
        self.g2p = load_g2p(british)


# misaki's shorthand (hibari's phoneme alphabet) as IPA, for phoneme timestamps
MISAKI_IPA = {
    "A": "eɪ",
    "I": "aɪ",
    "O": "oʊ",
    "Q": "əʊ",
    "W": "aʊ",
    "Y": "ɔɪ",
    "T": "ɾ",
    "ʤ": "dʒ",
    "ʧ": "tʃ",
    "ᵊ": "ə",
}
# IPA → misaki, longest first: what a pronunciation rule's IPA becomes for hibari
_IPA_MISAKI = {
    "eɪ": "A",
    "aɪ": "I",
    "oʊ": "O",
    "əʊ": "Q",
    "aʊ": "W",
    "ɔɪ": "Y",
    "dʒ": "ʤ",
    "tʃ": "ʧ",
    "d͡ʒ": "ʤ",
    "t͡ʃ": "ʧ",
    "ɝ": "ɜɹ",
    "r": "ɹ",
    "g": "ɡ",
    "ɫ": "l",
    "ɾ": "T",
    "ʍ": "w",
    "ɚ": "əɹ",
    "ɜ": "ɜɹ",
    "ɜː": "ɜɹ",
    "ɑː": "ɑ",
    "iː": "i",
    "uː": "u",
    "ɔː": "ɔ",
    "e": "ɛ",
    "o": "O",
    "ɡ": "ɡ",
}
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
            piece = text[i : i + size]
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


class HibariEngine(Engine):
    """hibari's installed voices; ``name`` is ``hibari``."""

    name = "hibari"
    sample_rate = SAMPLE_RATE
    speed_range = (0.5, 2.0)
    timestamp_kinds = ("word", "phoneme")
    phoneme_input = "ipa"  # reads [[IPA]] as phonemes when asked (see phoneme_words)

    def __init__(self, *, idle: float = 300.0, store: Path | None = None) -> None:
        """Find every voice of hibari's registry that is on disk; ``store`` is the model
        store's hibari folder (``<models_dir>/hibari``). Each file found outside the wheel
        is hashed here (about 12 ms per voice, once per process), so a damaged file is
        refused before any request is planned on it."""
        import json

        import hibari

        self.version = f"hibari/{hibari.__version__}"
        assets = Path(hibari.__file__).parent / "assets"
        self.vocab: dict[str, int] = json.loads((assets / "vocab.json").read_text("utf-8"))
        self.store = store
        self.meta: dict[str, dict[str, Any]] = {}  # installed: offered to callers
        self.paths: dict[str, Path] = {}
        self.sessions: dict[str, LazySession] = {}
        self.missing: dict[str, dict[str, Any]] = {}  # installable, not on disk
        self.broken: dict[str, str] = {}  # on disk but not hibari's file: the reason
        voices = registry()
        for voice, meta in voices.items():
            path, problem = _find(voice, meta, store)
            if path is None:
                self.missing[voice] = meta
            elif problem is not None:
                self.broken[voice] = problem
            else:
                british = bool(meta.get("british"))
                self.meta[voice] = meta
                self.paths[voice] = path
                self.sessions[voice] = LazySession(
                    path, idle, functools.partial(_Loaded, british=british, voice=voice)
                )
        self.known = tuple(voices)  # every voice hibari names, installed or not

    def voices(self) -> list[VoiceInfo]:
        out = []
        for voice, meta in self.meta.items():
            lang = str(meta.get("language", "en-US")).lower()
            said = meta.get("gender")
            gender: Gender = (
                "male" if said == "male" else "female" if said == "female" else "neutral"
            )
            out.append(
                VoiceInfo(
                    id=voice,
                    name=voice,
                    engine=self.name,
                    language=lang,
                    languages=(lang,),
                    gender=gender,
                    description=f"hibari {voice}: {meta.get('accent', '')} "
                    f"English, distilled from Kokoro {meta.get('kokoro', '')}",
                )
            )
        return out

    def store_voices(self) -> dict[str, Any]:
        """For model listings: the voices installed, those that can be installed (and how),
        and any whose file is damaged (and why)."""
        return {
            "installed_voices": list(self.meta),
            "installable_voices": [
                {
                    "id": voice,
                    "gender": meta.get("gender", "neutral"),
                    "language": str(meta.get("language", "en-US")).lower(),
                    "accent": meta.get("accent", ""),
                    "file": meta["file"],
                    "bytes": meta.get("bytes"),
                    "install": f"orate models pull hibari:{voice}",
                    "or_copy_to": store_file(self.store, meta),
                }
                for voice, meta in self.missing.items()
            ],
            "broken_voices": [
                {"id": voice, "reason": reason} for voice, reason in self.broken.items()
            ],
        }

    def check_voice(self, params: VoiceParams) -> VoiceParams:
        """Canonical params; espeak-only knobs (variant, pitch) have no meaning here and
        are dropped, so designed voices and directions keep only the pace."""
        voice = params.voice.strip().lower()
        if voice in self.broken:
            raise VoiceUnavailable(f"hibari's voice {voice!r} cannot be used: {self.broken[voice]}")
        if voice not in self.meta:
            installed = ", ".join(self.meta) or "none"
            if voice in self.missing:
                meta = self.missing[voice]
                raise UnknownVoice(
                    f"hibari's voice {voice!r} is not installed (installed: "
                    f"{installed}); install it on a connected machine with "
                    f"`orate models pull hibari:{voice}`, or copy its file to "
                    f"{store_file(self.store, meta)}"
                )
            raise UnknownVoice(f"hibari has no voice {params.voice!r}; installed: {installed}")
        return VoiceParams(engine=self.name, voice=voice, rate=params.rate)

    def sweep(self) -> bool:
        """Unload voices idle past their time; True when one was."""
        return any([session.sweep() for session in self.sessions.values()])

    @property
    def loaded(self) -> bool:
        return any(s.loaded for s in self.sessions.values())

    @property
    def phoneme_check(self) -> PhonemeCheck:
        """hibari maps IPA to its own symbols: a rule's symbol it lacks is reported."""
        return self.unsupported_phonemes

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

    def phoneme_words(
        self, text: str, voice: str, phonemes: bool = False
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
            found = text.find(tok.text, cursor, cursor + len(tok.text) + 64) if tok.text else -1
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
        return [
            "".join(p for p, _ in chunk)
            for chunk in self._chunks(self.phoneme_words(text, voice, phonemes)[0])
        ]

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

    def synthesize(
        self,
        text: str,
        params: VoiceParams,
        speed: float,
        sink: Sink,
        *,
        ssml: bool = False,
        phonemes: bool = False,
        transform: Transform | None = None,
    ) -> SynthesisResult:
        """``transform`` (the palette's derived voices) changes the vocoder features
        between the model and the DSP: pitch, formants, breathiness at no extra cost."""
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
            out = loaded.session.run(
                None,
                {
                    "ids": np.asarray([ids], np.int64),
                    "speed": np.asarray([speed * params.rate], np.float32),
                },
            )
            lh, th, ln, lr, phi, f0 = (o[0] for o in out[:6])
            if transform is not None and not transform.identity:
                lh, th, ln, lr, phi, f0 = transform_features(lh, th, ln, lr, phi, f0, transform)
            pcm_parts.append(to_pcm(dsp.synth(lh, th, ln, lr, phi, f0, rng)))
            if len(out) > 6:
                # a word break between chunks, pads and punctuation take time, no phoneme
                symbols += [
                    "",
                    *("" if ch in _PUNCT else MISAKI_IPA.get(ch, ch) for ch, _ in kept),
                    "",
                    " ",
                ]
                owners += [-1, *(owner for _, owner in kept), -1, -1]
                durations.append(np.concatenate([np.asarray(out[6]).ravel(), [0]]))
        if not pcm_parts:
            return SynthesisResult()
        pcm = np.concatenate(pcm_parts)
        events = (
            symbol_events(
                text,
                symbols,
                np.concatenate(durations),
                len(pcm),
                self.sample_rate,
                owners,
                spans,
                LEAD_MS,
            )
            if durations
            else []
        )
        return push(pcm, events, self.sample_rate, sink)
