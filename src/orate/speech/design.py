"""Voice design: a free-text description becomes voice parameters, deterministically.

"a deep, slow, older British man" is read word by word against small tables
(accent → language voice, gender and age → variant and pitch, pace → rate,
manner → whisper/croak variants, energy → pitch range). The same description
always gives the same voice; a ``seed`` (or a generation index) picks another
variant and nudges the pitch, so variations are distinct but stay in character.
Acting directions ("whisper", "excited", "slower") adjust an existing voice.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import replace

from orate.engines.base import Engine, UnknownVoice, VoiceParams

_ACCENTS: dict[str, str] = {
    "american": "en-us",
    "us": "en-us",
    "usa": "en-us",
    "yankee": "en-us",
    "new york": "en-us-nyc",
    "new yorker": "en-us-nyc",
    "nyc": "en-us-nyc",
    "british": "en-gb",
    "english": "en-gb",
    "uk": "en-gb",
    "london": "en-gb",
    "posh": "en-gb-x-rp",
    "received pronunciation": "en-gb-x-rp",
    "rp": "en-gb-x-rp",
    "scottish": "en-gb-scotland",
    "scots": "en-gb-scotland",
    "lancashire": "en-gb-x-gbclan",
    "northern": "en-gb-x-gbclan",
    "midlands": "en-gb-x-gbcwmd",
    "brummie": "en-gb-x-gbcwmd",
    "caribbean": "en-029",
    "jamaican": "en-029",
    "french": "fr-fr",
    "parisian": "fr-fr",
    "belgian": "fr-be",
    "swiss": "fr-ch",
    "german": "de",
    "spanish": "es",
    "mexican": "es-419",
    "latin american": "es-419",
    "italian": "it",
    "portuguese": "pt",
    "brazilian": "pt-br",
    "dutch": "nl",
    "russian": "ru",
    "polish": "pl",
    "japanese": "ja",
    "chinese": "cmn",
    "mandarin": "cmn",
    "cantonese": "yue",
    "korean": "ko",
    "hindi": "hi",
    "indian": "en-gb-x-rp",
    "arabic": "ar",
    "turkish": "tr",
    "greek": "el",
    "swedish": "sv",
    "norwegian": "nb",
    "danish": "da",
    "finnish": "fi",
    "irish": "ga",
    "welsh": "cy",
    "vietnamese": "vi",
}
_MALE = {
    "man",
    "male",
    "men",
    "boy",
    "gentleman",
    "guy",
    "he",
    "him",
    "father",
    "dad",
    "grandfather",
    "grandpa",
    "king",
    "sir",
    "masculine",
    "baritone",
    "bass",
}
_FEMALE = {
    "woman",
    "female",
    "women",
    "girl",
    "lady",
    "she",
    "her",
    "mother",
    "mom",
    "mum",
    "grandmother",
    "grandma",
    "queen",
    "feminine",
    "soprano",
    "alto",
}
_OLD = {
    "old",
    "older",
    "elderly",
    "aged",
    "ancient",
    "grandfather",
    "grandmother",
    "grandpa",
    "grandma",
    "senior",
    "wise",
}
_YOUNG = {
    "young",
    "younger",
    "youthful",
    "child",
    "kid",
    "teen",
    "teenage",
    "teenager",
    "little",
    "boy",
    "girl",
}
_CHILD = {"child", "kid", "little"}

# (words, field, delta): applied in order; "very"/"extremely" before a word doubles it
_ADJUST: list[tuple[frozenset[str], str, float]] = [
    (frozenset({"deep", "low", "bass", "baritone", "booming", "gravelly"}), "pitch", -18),
    (frozenset({"high", "squeaky", "shrill", "soprano", "bright", "light"}), "pitch", 15),
    (
        frozenset(
            {
                "slow",
                "slowly",
                "measured",
                "deliberate",
                "relaxed",
                "unhurried",
                "slower",
                "drawling",
            }
        ),
        "rate",
        -0.15,
    ),
    (
        frozenset(
            {
                "fast",
                "quick",
                "quickly",
                "rapid",
                "rapidly",
                "hurried",
                "brisk",
                "faster",
                "energetic",
            }
        ),
        "rate",
        0.2,
    ),
    (
        frozenset(
            {
                "monotone",
                "flat",
                "calm",
                "calmly",
                "serious",
                "robotic",
                "steady",
                "soothing",
                "gentle",
            }
        ),
        "pitch_range",
        -22,
    ),
    (
        frozenset(
            {
                "lively",
                "expressive",
                "excited",
                "excitedly",
                "animated",
                "cheerful",
                "enthusiastic",
                "dramatic",
                "bubbly",
                "happy",
                "energetic",
            }
        ),
        "pitch_range",
        25,
    ),
    (frozenset({"loud", "loudly", "booming", "shouting", "louder", "projecting"}), "volume", 45),
    (
        frozenset({"quiet", "quietly", "soft", "softly", "gentle", "quieter", "hushed"}),
        "volume",
        -30,
    ),
    (
        frozenset(
            {"sad", "sadly", "tired", "melancholy", "depressed", "somber", "sombre", "gloomy"}
        ),
        "rate",
        -0.12,
    ),
    (
        frozenset(
            {"sad", "sadly", "tired", "melancholy", "depressed", "somber", "sombre", "gloomy"}
        ),
        "pitch",
        -8,
    ),
    (
        frozenset(
            {"sad", "sadly", "tired", "melancholy", "depressed", "somber", "sombre", "gloomy"}
        ),
        "pitch_range",
        -15,
    ),
    (frozenset({"angry", "angrily", "furious", "stern"}), "volume", 25),
    (frozenset({"angry", "angrily", "furious", "stern"}), "pitch_range", 15),
    (frozenset({"higher"}), "pitch", 12),
    (frozenset({"lower"}), "pitch", -12),
]
_WHISPER = {"whisper", "whispering", "whispered", "whispers", "breathy", "breathless", "airy"}
_CROAK = {"croaky", "croak", "raspy", "hoarse", "husky", "rough", "gravelly", "smoker"}
_INTENSIFIERS = {"very", "extremely", "really", "super", "quite", "much"}
_MALE_VARIANTS = ("m1", "m2", "m3", "m4", "m5", "m6", "m7")
_FEMALE_VARIANTS = ("f1", "f2", "f3", "f4", "f5")
_WORD = re.compile(r"[a-z]+")


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def _pick(options: tuple[str, ...], description: str, seed: int) -> str:
    digest = hashlib.sha256(f"{description.strip().lower()}|{seed}".encode()).digest()
    return options[digest[0] % len(options)]


def _accent(text: str, engine: Engine) -> str | None:
    lowered = text.lower()
    known = {v.id for v in engine.voices()}
    for phrase in sorted(_ACCENTS, key=len, reverse=True):
        if re.search(rf"\b{re.escape(phrase)}\b", lowered) and _ACCENTS[phrase] in known:
            return _ACCENTS[phrase]
    return None


def _age(
    pitch: int,
    params: VoiceParams,
    wordset: set[str],
    description: str,
    seed: int,
    shifts: tuple[int, int, int],
) -> tuple[int, VoiceParams]:
    """Age words and the variation seed on a design's pitch (``shifts``: older, child,
    young, in the engine's pitch steps); older also slows the pace."""
    old, child, young = shifts
    if wordset & _OLD:
        pitch += old
        params = replace(params, rate=round(max(params.rate - 0.08, 0.5), 3))
    if wordset & _CHILD:
        pitch += child
    elif wordset & _YOUNG:
        pitch += young
    if seed:
        # variations of one description: a different nudge of pitch per seed
        pitch += (hashlib.sha256(f"{description}|pitch|{seed}".encode()).digest()[0] % 15) - 7
    return pitch, params


def _language_asked(text: str) -> str | None:
    """The language voice a description's accent word names (any engine's), if any."""
    lowered = text.lower()
    for phrase in sorted(_ACCENTS, key=len, reverse=True):
        if re.search(rf"\b{re.escape(phrase)}\b", lowered):
            return _ACCENTS[phrase]
    return None


def _adjust(params: VoiceParams, words: list[str]) -> VoiceParams:
    pitch = 50 if params.pitch is None else params.pitch
    pitch_range = 50 if params.pitch_range is None else params.pitch_range
    rate = params.rate
    volume = 100 if params.volume is None else params.volume
    values = {
        "pitch": float(pitch),
        "pitch_range": float(pitch_range),
        "rate": rate,
        "volume": float(volume),
    }
    for i, word in enumerate(words):
        boost = 2.0 if i and words[i - 1] in _INTENSIFIERS else 1.0
        for group, name, delta in _ADJUST:
            if word in group:
                values[name] += delta * boost
    return replace(
        params,
        pitch=int(min(max(values["pitch"], 0), 100)),
        pitch_range=int(min(max(values["pitch_range"], 0), 100)),
        rate=round(min(max(values["rate"], 0.5), 2.0), 3),
        volume=int(min(max(values["volume"], 10), 200)),
    )


def design_voice(
    description: str, engine: Engine, *, seed: int = 0, default_voice: str = "en-us"
) -> VoiceParams:
    """Voice parameters for a description; the same text and seed give the same voice."""
    words = _words(description)
    wordset = set(words)
    voice = _accent(description, engine) or default_voice
    female = bool(wordset & _FEMALE) and not (
        wordset & _MALE
        and words.index(next(w for w in words if w in _MALE))
        < words.index(next(w for w in words if w in _FEMALE))
    )
    male = bool(wordset & _MALE) and not female
    if engine.palette:
        language = _language_asked(description)
        if language is not None and not language.startswith("en"):
            # the palette speaks English: another language is designed on espeak-ng's
            return design_voice(
                description,
                engine.fallback(),
                seed=seed,
                default_voice=default_voice,
            )
        return _design_natural(description, engine, words, female, male, seed)
    if not engine.variants:
        # a neural engine has no espeak variants or pitch: the description picks one of
        # its voices by gender, and the pace words still apply
        voices = engine.voices()
        want = "female" if female else "male" if male else None
        ranked = sorted(voices, key=lambda v: v.gender != want)
        if not ranked:
            raise UnknownVoice(f"{engine.name} has no voices installed")
        return engine.check_voice(
            _adjust(VoiceParams(engine=engine.name, voice=ranked[0].id), words)
        )
    if wordset & _WHISPER:
        variant = "whisperf" if female else "whisper"
    elif wordset & _CROAK:
        variant = "croak"
    elif female:
        variant = _pick(_FEMALE_VARIANTS, description, seed)
    elif male:
        variant = _pick(_MALE_VARIANTS, description, seed)
    else:
        variant = _pick(_MALE_VARIANTS + _FEMALE_VARIANTS, description, seed)
    params = engine.check_voice(VoiceParams(engine=engine.name, voice=voice, variant=variant))
    params = _adjust(params, words)
    pitch = 50 if params.pitch is None else params.pitch
    pitch, params = _age(pitch, params, wordset, description, seed, (-10, 25, 8))
    return replace(params, pitch=int(min(max(pitch, 0), 100)))


# words that pick a palette voice's character, beyond gender (see engines/palette.py)
_CHARACTER = {
    "deep": "deep",
    "bass": "deep",
    "booming": "deep",
    "resonant": "deep",
    "calm": "calm",
    "soothing": "calm",
    "serene": "calm",
    "even": "calm",
    "bright": "bright",
    "lively": "lively",
    "cheerful": "lively",
    "expressive": "expressive",
    "animated": "animated",
    "dramatic": "expressive",
    "soft": "soft",
    "gentle": "gentle",
    "breathy": "breathy",
    "warm": "warm",
    "old": "older",
    "older": "older",
    "elderly": "older",
    "wise": "older",
    "mature": "mature",
    "young": "young",
    "youthful": "young",
    "firm": "firm",
    "authoritative": "firm",
    "stern": "firm",
    "friendly": "friendly",
    "baritone": "baritone",
    "tenor": "tenor",
    "light": "light",
    "alto": "alto",
}


def _design_natural(
    description: str, engine: Engine, words: list[str], female: bool, male: bool, seed: int
) -> VoiceParams:
    """A description on the natural palette: the palette voice of that gender whose
    character fits best, then the same pace, pitch, energy and manner words as any voice
    (as transform values: F0, range, formants, breathiness), and age: older lowers F0 and
    formants a little and slows down, a child raises F0."""
    from orate.engines.palette import closest

    wanted = {_CHARACTER[w] for w in words if w in _CHARACTER}
    available = [v.id for v in engine.voices()]
    voice = closest(
        "female" if female else "male" if male else None, words=wanted, available=available
    )
    if not female and not male and seed:  # no gender asked: variations may cross it
        voice = closest(
            _pick(("female", "male"), description, seed), words=wanted, available=available
        )
    params = _adjust(VoiceParams(engine=engine.name, voice=voice.id), words)
    wordset = set(words)
    formant = 1.0
    pitch = 50 if params.pitch is None else params.pitch
    if wordset & {"deep", "bass", "booming", "baritone", "gravelly"}:
        formant *= 0.96
    if wordset & _OLD:
        formant *= 0.97
    pitch, params = _age(pitch, params, wordset, description, seed, (-8, 20, 5))
    if seed:  # variations also nudge the vocal tract a little
        digest = hashlib.sha256(f"{description}|pitch|{seed}".encode()).digest()
        formant *= 1 + (digest[1] % 7 - 3) / 100
    breath = (
        1.0
        if wordset & _WHISPER - {"breathy", "airy", "breathless"}
        else 0.35
        if wordset & _WHISPER
        else 0.2
        if wordset & _CROAK
        else 0.0
    )
    return engine.check_voice(
        replace(
            params, pitch=int(min(max(pitch, 0), 100)), formant=round(formant, 3), breath=breath
        )
    )


def apply_directions(params: VoiceParams, directions: str, engine: Engine) -> VoiceParams:
    """Acting directions on an existing voice: prosody changes, whisper/croak manner."""
    words = _words(directions)
    if not words:
        return params
    adjusted = _adjust(params, words)
    wordset = set(words)
    if engine.palette:  # natural voices: manner as breathiness
        if wordset & {"deep", "deeper", "older", "old", "elderly"}:
            adjusted = replace(adjusted, formant=round(adjusted.formant * 0.96, 3))
        if wordset & _WHISPER - {"breathy", "airy", "breathless"}:
            adjusted = replace(adjusted, breath=1.0)
        elif wordset & _WHISPER or wordset & _CROAK:
            adjusted = replace(adjusted, breath=max(adjusted.breath, 0.35))
        return engine.check_voice(adjusted)
    if wordset & _WHISPER:
        female = engine_variant_gender(engine, params.variant) == "female"
        adjusted = replace(adjusted, variant="whisperf" if female else "whisper")
    elif wordset & _CROAK:
        adjusted = replace(adjusted, variant="croak")
    return engine.check_voice(adjusted)


def engine_variant_gender(engine: Engine, variant: str | None) -> str:
    found = engine.variants.get((variant or "").lower())
    return found[1] if found else "neutral"


def vary(params: VoiceParams, seed: int, amount: float = 1.0) -> VoiceParams:
    """Another take of the same voice: pitch, range and pace nudged by the seed.

    ``amount`` scales the nudge (Hume's temperature); seed 0 is the voice itself.
    """
    if not seed or amount <= 0:
        return params
    digest = hashlib.sha256(f"{params}|{seed}".encode()).digest()

    def nudge(byte: int, span: float) -> float:
        return (byte / 255 * 2 - 1) * span * amount

    pitch = 50 if params.pitch is None else params.pitch
    pitch_range = 50 if params.pitch_range is None else params.pitch_range
    return replace(
        params,
        pitch=int(min(max(round(pitch + nudge(digest[0], 8)), 0), 100)),
        pitch_range=int(min(max(round(pitch_range + nudge(digest[1], 12)), 0), 100)),
        rate=round(min(max(params.rate * (1 + nudge(digest[2], 0.06)), 0.5), 2.0), 3),
    )


def voice_notes(voices: list[VoiceParams]) -> list[str]:
    """What a natural voice's synthesis will clamp (a saved voice or voice settings with a
    transform value out of range), one note per value, each voice once."""
    from orate.engines.palette import NATURAL, clamp_notes

    notes: list[str] = []
    for params in dict.fromkeys(v for v in voices if v.engine == NATURAL):
        notes += [f"voice {params.voice}: {n}" for n in clamp_notes(params)[1]]
    return notes
