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
from pathlib import Path
from typing import Any

import numpy as np

from orate.engines.base import (
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
_CLAUSE = re.compile(r"(?<=[,;:—])\s+")
# the phoneme alphabet's punctuation: it takes time in the audio but is no phoneme
_PUNCT = frozenset(';:,.!?—…"()“”')


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
            raise ValueError(f"{SHA256_OVERRIDE_ENV}: expected voice=SHA256 with a voice of "
                             f"{', '.join(VOICES)}, got {item!r}")
        overrides[name] = digest.strip().lower()
    return {name: {**meta, "sha256": overrides.get(name, meta["sha256"])}
            for name, meta in VOICES.items()}


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


def _find(voice: str, meta: dict[str, Any], store: Path | None
          ) -> tuple[Path | None, str | None]:
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
                return path, (f"{path} is not hibari's voice file (its sha256 is "
                              f"{actual[:16]}…, hibari's registry says {meta['sha256'][:16]}…):"
                              f" it is damaged or another file; delete it and run "
                              f"`orate models pull hibari:{voice}`")
            return path, None
    return None, None


class _Loaded:
    """A voice's session and the G2P it needs, loaded together and dropped together."""

    def __init__(self, path: Path, british: bool, voice: str = "") -> None:
        from orate.engines.hibari_g2p import load_g2p

        try:
            self.session = open_session(path)
        except Exception as exc:  # a file that passed its checksum yet will not load
            raise VoiceUnavailable(f"hibari's voice {voice!r} did not load from {path}: "
                                   f"{type(exc).__name__}: {exc}") from exc
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
                    path, idle, functools.partial(_Loaded, british=british, voice=voice))
        self.known = tuple(voices)  # every voice hibari names, installed or not

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

    def store_voices(self) -> dict[str, Any]:
        """For model listings: the voices installed, those that can be installed (and how),
        and any whose file is damaged (and why)."""
        return {
            "installed_voices": list(self.meta),
            "installable_voices": [
                {"id": voice, "gender": meta.get("gender", "neutral"),
                 "language": str(meta.get("language", "en-US")).lower(),
                 "accent": meta.get("accent", ""), "file": meta["file"],
                 "bytes": meta.get("bytes"), "install": f"orate models pull hibari:{voice}",
                 "or_copy_to": store_file(self.store, meta)}
                for voice, meta in self.missing.items()],
            "broken_voices": [{"id": voice, "reason": reason}
                              for voice, reason in self.broken.items()],
        }

    def check_voice(self, params: VoiceParams) -> VoiceParams:
        """Canonical params; espeak-only knobs (variant, pitch) have no meaning here and
        are dropped, so designed voices and directions keep only the pace."""
        voice = params.voice.strip().lower()
        if voice in self.broken:
            raise VoiceUnavailable(f"hibari's voice {voice!r} cannot be used: "
                                   f"{self.broken[voice]}")
        if voice not in self.meta:
            installed = ", ".join(self.meta) or "none"
            if voice in self.missing:
                meta = self.missing[voice]
                raise UnknownVoice(f"hibari's voice {voice!r} is not installed (installed: "
                                   f"{installed}); install it on a connected machine with "
                                   f"`orate models pull hibari:{voice}`, or copy its file to "
                                   f"{store_file(self.store, meta)}")
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
