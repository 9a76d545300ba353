"""libespeak-ng driven in-process through ctypes.

The shared library and its data come from the ``espeakng-loader`` wheel, so
no system package and no subprocess is involved. libespeak-ng keeps global
state and crashes when two threads enter it, so every call goes through one
process-wide lock; parallelism comes from worker processes (runtime/pool.py).
"""

from __future__ import annotations

import ctypes as C
import re
import threading
from functools import cached_property

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
    shorten,
)

# espeak_AUDIO_OUTPUT / initialise options / synth flags / parameters / events
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INIT_PHONEME_EVENTS = 0x0001
_INIT_PHONEME_IPA = 0x0002
_CHARS_UTF8 = 1
_SSML = 0x10
_PHONEME_INPUT = 0x100  # espeakPHONEMES: [[…]] in the text are phoneme mnemonics
_ENDPAUSE = 0x1000
_RATE, _VOLUME, _PITCH, _RANGE = 1, 2, 3, 4
_EV_LIST_TERMINATED, _EV_WORD, _EV_PHONEME = 0, 1, 7
_POS_CHARACTER = 1
_PHONEMES_IPA = 0x02

DEFAULT_WPM = 175
MIN_WPM = 80  # espeak clamps slower rates silently
MAX_WPM = 875  # above 450 espeak speeds up with sonic; 5x the default is plenty
DEFAULT_PITCH = 50  # espeak's default pitch and pitch range (0-100)
BUFFER_MS = 60  # audio per callback: small enough for ~1 ms time to first audio


class _Voice(C.Structure):
    # ``languages`` is not a C string but a list of strings, each after a priority byte
    # and ended by a NUL; ctypes would copy a c_char_p field up to the first NUL, losing
    # the rest, so it is declared as a raw address and walked by ``_languages``.
    _fields_ = [
        ("name", C.c_char_p),
        ("languages", C.c_void_p),
        ("identifier", C.c_char_p),
        ("gender", C.c_ubyte),
        ("age", C.c_ubyte),
        ("variant", C.c_ubyte),
        ("xx1", C.c_ubyte),
        ("score", C.c_int),
        ("spare", C.c_void_p),
    ]


class _EventId(C.Union):
    _fields_ = [("number", C.c_int), ("name", C.c_char_p), ("string", C.c_char * 8)]


class _Event(C.Structure):
    _fields_ = [
        ("type", C.c_int),
        ("unique_identifier", C.c_uint),
        ("text_position", C.c_int),
        ("length", C.c_int),
        ("audio_position", C.c_int),
        ("sample", C.c_int),
        ("user_data", C.c_void_p),
        ("id", _EventId),
    ]


_Callback = C.CFUNCTYPE(C.c_int, C.POINTER(C.c_short), C.c_int, C.POINTER(_Event))
_GENDERS: dict[int, Gender] = {1: "male", 2: "female"}

_lock = threading.RLock()  # guards every call into libespeak-ng
_create_lock = threading.Lock()
_instance: EspeakEngine | None = None


def _languages(addr: int | None) -> tuple[tuple[str, int], ...]:
    """Decode espeak's ``(priority byte, language, NUL)*`` list, ended by a 0 byte.

    ``addr`` is the address of ``espeak_VOICE.languages`` in espeak's own memory
    (valid until the next ListVoices call). Returns (language, priority) pairs in
    espeak's order; a lower priority number is a better match for that language.
    """
    out: list[tuple[str, int]] = []
    while addr:
        priority = C.string_at(addr, 1)[0]
        if priority == 0:
            break
        lang = C.string_at(addr + 1)  # up to its NUL
        out.append((lang.decode("utf-8", "replace"), priority))
        addr += len(lang) + 2
    return tuple(out)


class EspeakEngine(Engine):
    """The embedded default engine; one per process (the C library is global)."""

    name = "espeak"
    phoneme_input = "espeak"  # reads [[…]] phoneme mnemonics when asked (see synthesize)
    natural = False  # formant synthesis: Home Assistant lists it as not natural

    def __init__(self) -> None:
        import espeakng_loader

        self._lib = C.CDLL(espeakng_loader.get_library_path())
        lib = self._lib
        lib.espeak_Initialize.restype = C.c_int
        lib.espeak_Initialize.argtypes = [C.c_int, C.c_int, C.c_char_p, C.c_int]
        lib.espeak_ListVoices.restype = C.POINTER(C.POINTER(_Voice))
        lib.espeak_ListVoices.argtypes = [C.POINTER(_Voice)]
        lib.espeak_SetVoiceByName.argtypes = [C.c_char_p]
        lib.espeak_SetParameter.argtypes = [C.c_int, C.c_int, C.c_int]
        lib.espeak_Synth.argtypes = [
            C.c_char_p,
            C.c_size_t,
            C.c_uint,
            C.c_int,
            C.c_uint,
            C.c_uint,
            C.c_void_p,
            C.c_void_p,
        ]
        lib.espeak_Info.restype = C.c_char_p
        lib.espeak_Info.argtypes = [C.c_void_p]
        lib.espeak_TextToPhonemes.restype = C.c_char_p
        lib.espeak_TextToPhonemes.argtypes = [C.POINTER(C.c_char_p), C.c_int, C.c_int]
        data = espeakng_loader.get_data_path().encode()
        with _lock:
            rate = lib.espeak_Initialize(
                _AUDIO_OUTPUT_SYNCHRONOUS, BUFFER_MS, data, _INIT_PHONEME_EVENTS | _INIT_PHONEME_IPA
            )
            if rate <= 0:
                raise RuntimeError("libespeak-ng failed to initialise")
            self.sample_rate: int = rate
            self.version: str = lib.espeak_Info(None).decode()
            self._callback = _Callback(self._on_audio)
            lib.espeak_SetSynthCallback(self._callback)
        self.speed_range = (MIN_WPM / DEFAULT_WPM, MAX_WPM / DEFAULT_WPM)
        self._sink: Sink | None = None
        self._result: SynthesisResult | None = None
        self._current: tuple[object, ...] | None = None
        _ = self._aliases, self.variants  # build the voice tables now, outside any synthesis

    # -- voices --------------------------------------------------------------

    def _list(self, spec: _Voice | None) -> list[tuple[str, str, int, tuple[str, ...]]]:
        """(name, identifier, gender, languages) per voice, decoded while espeak's list is
        still valid: the next ListVoices call may free it. Gender is espeak's number
        (0 none, 1 male, 2 female); languages keep espeak's order, priorities dropped."""
        out = []
        with _lock:
            arr = self._lib.espeak_ListVoices(C.byref(spec) if spec is not None else None)
            i = 0
            while arr[i]:
                v = arr[i].contents
                langs = tuple(lang for lang, _ in _languages(v.languages))
                out.append(
                    (v.name.decode("utf-8", "replace"), v.identifier.decode(), v.gender, langs)
                )
                i += 1
        return out

    @cached_property
    def _voice_table(self) -> dict[str, tuple[VoiceInfo, str]]:
        """Voice id (the language code, e.g. ``en-us``) → (info, espeak identifier)."""
        table: dict[str, tuple[VoiceInfo, str]] = {}
        for name, ident, gender, langs in self._list(None):
            vid = (langs[0] if langs else ident).lower()
            if vid in table:  # two files claim one language: fall back to the file id
                vid = ident.lower()
            info = VoiceInfo(
                id=vid,
                name=name,
                engine=self.name,
                language=langs[0] if langs else vid,
                languages=langs,
                gender=_GENDERS.get(gender, "neutral"),
                description=f"espeak-ng {name} ({ident})",
            )
            table[vid] = (info, ident)
        return table

    @cached_property
    def _aliases(self) -> dict[str, str]:
        """Every accepted spelling of a voice (id, file id, display name) → id."""
        out: dict[str, str] = {}
        for vid, (info, ident) in self._voice_table.items():
            for alias in (vid, ident.lower(), info.name.lower()):
                out.setdefault(alias, vid)
        return out

    @cached_property
    def variants(self) -> dict[str, tuple[str, Gender]]:
        """Variant name (lower case) → (file name, gender); e.g. ``f3``, ``whisper``."""
        spec = _Voice()
        wanted = C.create_string_buffer(b"variant")  # a plain C string in a query
        spec.languages = C.cast(wanted, C.c_void_p).value
        out: dict[str, tuple[str, Gender]] = {}
        for _name, ident, gender, _langs in self._list(spec):
            fname = ident.split("/", 1)[-1]
            out[fname.lower()] = (fname, _GENDERS.get(gender, "neutral"))
        return out

    def voices(self) -> list[VoiceInfo]:
        return [info for info, _ in self._voice_table.values()]

    def gender_of(self, params: VoiceParams) -> Gender:
        """The gender of a voice as espeak will render it: a variant carries its own
        (``f1``..``f5`` female, ``m1``..``m8`` male, per espeak's variant files), and
        replaces the base voice's formants, so it wins over the base voice's gender."""
        if params.variant:
            found = self.variants.get(params.variant.lower())
            if found is not None:
                return found[1]
        entry = self._voice_table.get(params.voice)
        return entry[0].gender if entry else "neutral"

    def check_voice(self, params: VoiceParams) -> VoiceParams:
        name = params.voice.strip().lower()
        variant = params.variant
        if "+" in name:
            name, inline = name.split("+", 1)
            variant = variant or inline
        vid = self._aliases.get(name)
        if vid is None:
            raise UnknownVoice(
                f"espeak has no voice {shorten(params.voice)!r}; list voices "
                "with GET /v1/audio/voices or `orate voices`"
            )
        canon_variant = None
        if variant:
            found = self.variants.get(variant.strip().lower())
            if found is None:
                raise UnknownVoice(
                    f"espeak has no voice variant {shorten(variant)!r}; variants "
                    "include f1-f5, m1-m7, whisper, croak, klatt"
                )
            canon_variant = found[0]
        for field, value, hi in (
            ("pitch", params.pitch, 100),
            ("pitch_range", params.pitch_range, 100),
            ("volume", params.volume, 200),
        ):
            if value is not None and not 0 <= value <= hi:
                raise UnknownVoice(f"{field} must be between 0 and {hi}, got {value}")
        if not 0.1 <= params.rate <= 10:
            raise UnknownVoice(f"rate must be between 0.1 and 10, got {params.rate}")
        return VoiceParams(
            engine=self.name,
            voice=vid,
            variant=canon_variant,
            pitch=params.pitch,
            pitch_range=params.pitch_range,
            rate=params.rate,
            volume=params.volume,
        )

    # -- synthesis -----------------------------------------------------------

    def _on_audio(self, wav: C._Pointer[C.c_short], n: int, events: C._Pointer[_Event]) -> int:
        result, sink = self._result, self._sink
        if result is None or sink is None or result.stopped:
            return 1
        evs: list[EngineEvent] = []
        i = 0
        while True:
            e = events[i]
            if e.type == _EV_LIST_TERMINATED:
                break
            if e.type == _EV_WORD:
                evs.append(
                    EngineEvent("word", e.text_position - 1, e.length, float(e.audio_position))
                )
            elif e.type == _EV_PHONEME:
                evs.append(
                    EngineEvent(
                        "phoneme",
                        e.text_position - 1,
                        0,
                        float(e.audio_position),
                        e.id.string.decode("utf-8", "replace"),
                    )
                )
            i += 1
        pcm = (
            np.frombuffer(C.string_at(wav, n * 2), dtype=np.int16)
            if n > 0
            else np.empty(0, dtype=np.int16)
        )
        result.samples += len(pcm)
        if not pcm.size and not evs:
            return 0
        if not sink(pcm, evs):
            result.stopped = True
            return 1
        return 0

    def _apply(self, params: VoiceParams, speed: float) -> None:
        """Set voice and prosody, skipping the calls when nothing changed since last time.

        espeak keeps pitch, range and volume across voice loads, so all of them
        are set on every change (espeak's default is 50 for pitch and range):
        one request's pitch must never leak into the next.
        """
        ident = self._voice_table[params.voice][1].encode()
        if params.variant:
            ident += b"+" + params.variant.encode()
        wpm = round(min(max(DEFAULT_WPM * speed * params.rate, MIN_WPM), MAX_WPM))
        pitch = DEFAULT_PITCH if params.pitch is None else params.pitch
        pitch_range = DEFAULT_PITCH if params.pitch_range is None else params.pitch_range
        key = (ident, wpm, pitch, pitch_range, params.volume or 100)
        if key == self._current:
            return
        lib = self._lib
        if (self._current is None or self._current[0] != ident) and lib.espeak_SetVoiceByName(
            ident
        ) != 0:
            raise UnknownVoice(f"espeak could not load voice {params.label()!r}")
        lib.espeak_SetParameter(_RATE, wpm, 0)
        lib.espeak_SetParameter(_PITCH, pitch, 0)
        lib.espeak_SetParameter(_RANGE, pitch_range, 0)
        lib.espeak_SetParameter(_VOLUME, params.volume or 100, 0)
        self._current = key

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
        """``phonemes`` lets ``[[…]]`` in the text be read as espeak phoneme mnemonics
        (lexicon IPA and SSML <phoneme>, converted by speech/phonemes.py); off otherwise,
        so a caller's brackets are read as text."""
        data = text.encode("utf-8", "replace") + b"\0"
        flags = (
            _CHARS_UTF8 | _ENDPAUSE | (_SSML if ssml else 0) | (_PHONEME_INPUT if phonemes else 0)
        )
        result = SynthesisResult()
        with _lock:
            self._apply(params, speed)
            self._sink, self._result = sink, result
            try:
                self._lib.espeak_Synth(data, len(data), 0, _POS_CHARACTER, 0, flags, None, None)
            finally:
                self._sink, self._result = None, None
        return result


def _input_mode(engine: EspeakEngine, phonemes: bool) -> None:
    """espeak_TextToPhonemes takes no flags: phoneme input ([[…]]) is a global that the
    last espeak_Synth call set, so an empty synthesis sets it to what the next call needs."""
    flags = _CHARS_UTF8 | (_PHONEME_INPUT if phonemes else 0)
    engine._sink, engine._result = (lambda pcm, evs: True), SynthesisResult()
    try:
        engine._lib.espeak_Synth(b"\0", 1, 0, _POS_CHARACTER, 0, flags, None, None)
    finally:
        engine._sink, engine._result = None, None


def _phonemize_locked(
    engine: EspeakEngine, text: str, voice: str, phonemes: bool = False
) -> list[str]:
    lib = engine._lib
    ident = engine._voice_table[voice][1].encode()
    if lib.espeak_SetVoiceByName(ident) != 0:
        raise UnknownVoice(f"espeak could not load voice {shorten(voice)!r} for phonemes")
    engine._current = None  # synthesis must set its own voice again
    _input_mode(engine, phonemes)
    data = C.c_char_p(text.encode("utf-8", "replace"))
    pointer = C.pointer(data)
    clauses: list[str] = []
    while data.value:
        out = lib.espeak_TextToPhonemes(pointer, _CHARS_UTF8, _PHONEMES_IPA)
        if out:
            clauses.append(out.decode("utf-8", "replace").strip())
    return [c for c in clauses if c]


def _clauses_locked(
    engine: EspeakEngine, text: str, voice: str, phonemes: bool = False
) -> list[tuple[str, str]]:
    lib = engine._lib
    ident = engine._voice_table[voice][1].encode()
    if lib.espeak_SetVoiceByName(ident) != 0:
        raise UnknownVoice(f"espeak could not load voice {shorten(voice)!r} for phonemes")
    engine._current = None
    _input_mode(engine, phonemes)
    raw = text.encode("utf-8", "replace")
    data = C.c_char_p(raw)
    pointer = C.pointer(data)
    out: list[tuple[str, str]] = []
    consumed = 0
    while data.value:
        ipa = lib.espeak_TextToPhonemes(pointer, _CHARS_UTF8, _PHONEMES_IPA)
        left = len(data.value) if data.value else 0
        # espeak reads a few characters past the clause's end before it stops, so the
        # clause's punctuation is the last one in what it consumed that ends a clause
        chunk = raw[consumed : len(raw) - left].decode("utf-8", "replace")
        consumed = len(raw) - left
        ends = _TERMINATOR.findall(chunk + (" " if not left else ""))
        terminator = ends[-1] if ends else ""
        if ipa:
            out.append((ipa.decode("utf-8", "replace").strip(), terminator))
    return out


_TERMINATOR = re.compile(r"[.,:;!?](?=[\"')\]}”’]*(?:\s|$))")


def phonemize_clauses(text: str, voice: str, phonemes: bool = False) -> list[tuple[str, str]]:
    """IPA phonemes per clause with the punctuation that ended it (``.``, ``,``, ``?``…).

    libespeak-ng 1.52's ``TextToPhonemes`` drops the clause's punctuation, which
    Piper voices were trained with (piper-tts reads it with a newer call); the
    text each call consumed tells which punctuation ended the clause.
    """
    engine = get_engine()
    check = engine.check_voice(VoiceParams(voice=voice))
    with _lock:
        return _clauses_locked(engine, text, check.voice, phonemes)


def phonemize(text: str, voice: str, phonemes: bool = False) -> list[str]:
    """IPA phonemes of ``text`` as espeak-ng reads it in ``voice``, one string per clause.

    This is the front end of Piper and Kokoro (both trained on espeak-ng IPA); it
    takes the same process-wide lock as synthesis, since it is the same library.
    """
    engine = get_engine()
    check = engine.check_voice(VoiceParams(voice=voice))
    with _lock:
        return _phonemize_locked(engine, text, check.voice, phonemes)


def get_engine() -> EspeakEngine:
    """The process's espeak engine, created on first use."""
    global _instance
    with _create_lock:
        if _instance is None:
            _instance = EspeakEngine()
    return _instance


def _ipa_length(ipa: str) -> int:
    """Phonemes in an IPA string, roughly: characters without stress and length marks."""
    return sum(1 for ch in ipa if ch not in "ˈˌːˑ-‿ \u0329")


def align_groups(groups: list[int], refs: list[int]) -> list[int]:
    """For each phoneme-group (its length in phonemes), the word it belongs to.

    espeak runs short words into their neighbour ("was a" is the one group ``wʌzɐ``)
    and may split one word in two; each word's phonemes read alone (``refs``) say how
    long it is, and a monotone alignment (a group may hold up to four words, a word up
    to three groups; a band keeps it linear) matches them. A group's word is the first
    it holds, as espeak's own word events do for the words it runs together.
    """
    n, m = len(refs), len(groups)
    if not m:
        return []
    if not n:
        return [-1] * m
    inf = float("inf")
    band = 10
    cost: dict[tuple[int, int], float] = {(0, 0): 0.0}
    back: dict[tuple[int, int], tuple[int, int]] = {}
    ref_sum = [0]
    for r in refs:
        ref_sum.append(ref_sum[-1] + r)

    def relax(a: tuple[int, int], b: tuple[int, int], c: float) -> None:
        if c < cost.get(b, inf):
            cost[b] = c
            back[b] = a

    for i in range(n + 1):
        centre = i * m // n
        for j in range(max(0, centre - band), min(m, centre + band) + 1):
            here = cost.get((i, j))
            if here is None:
                continue
            if j < m:
                for a in range(1, 5):  # words i..i+a-1 in group j
                    if i + a > n:
                        break
                    words = ref_sum[i + a] - ref_sum[i]
                    relax((i, j), (i + a, j + 1), here + abs(groups[j] - words) + 0.5 * (a - 1))
                if i < n:
                    for b in range(2, 4):  # word i spread over groups j..j+b-1
                        if j + b > m:
                            break
                        relax(
                            (i, j),
                            (i + 1, j + b),
                            here + abs(sum(groups[j : j + b]) - refs[i]) + 0.5 * (b - 1),
                        )
                relax((i, j), (i, j + 1), here + groups[j] + 2)  # a group of no word
            if i < n:
                relax((i, j), (i + 1, j), here + refs[i] + 0.5)  # a word read as nothing
    if (n, m) not in cost:  # outside the band: spread evenly
        return [min(n - 1, k * n // m) for k in range(m)]
    owners = [-1] * m
    state = (n, m)
    while state != (0, 0):
        prev = back[state]
        (pi, pj), (si, sj) = prev, state
        for j in range(pj, sj):
            owners[j] = pi if si > pi else -1
        state = prev
    return owners


def phonemize_words(
    text: str, voice: str, phonemes: bool = False
) -> tuple[list[tuple[str, int]], list[tuple[int, int]]]:
    """espeak's IPA of ``text`` as it reads the whole text (clause by clause, as Piper
    and Kokoro were trained), cut into pieces that each belong to one word of the text.

    Returns ``(pieces, spans)``: pieces are (IPA, index into ``spans``) for each
    phoneme-group, ``(" ", -1)`` between groups and ``(punctuation, -1)`` where a clause
    ended; spans are the text's words (``onnx_base.spoken_words``). With this map,
    word timestamps come from the frames of the model's own phonemes, not an estimate.
    """
    from orate.engines.onnx_base import spoken_words

    engine = get_engine()
    check = engine.check_voice(VoiceParams(voice=voice))
    spans = spoken_words(text)
    with _lock:
        clauses = _clauses_locked(engine, text, check.voice, phonemes)
        lib = engine._lib
        refs = []
        for s, e in spans:  # the same voice and input mode are still set
            data = C.c_char_p(text[s:e].encode("utf-8", "replace"))
            pointer = C.pointer(data)
            length = 0
            while data.value:
                out = lib.espeak_TextToPhonemes(pointer, _CHARS_UTF8, _PHONEMES_IPA)
                if out:
                    length += _ipa_length(out.decode("utf-8", "replace"))
            refs.append(length)
    groups: list[str] = []
    ends: list[str] = []  # the punctuation after each group ("" inside a clause)
    for clause, terminator in clauses:
        words = _SWITCH.sub("", clause).split()
        for k, word in enumerate(words):
            groups.append(word)
            ends.append(terminator if k == len(words) - 1 else "")
    owners = align_groups([_ipa_length(g) for g in groups], refs)
    pieces: list[tuple[str, int]] = []
    for group, owner, end in zip(groups, owners, ends, strict=True):
        if pieces:
            pieces.append((" ", -1))
        pieces.append((group, owner))
        if end:
            pieces.append((end, -1))
    return pieces, spans


_SWITCH = re.compile(r"\([^)]+\)")  # espeak's language-switch marks: "(en)"
