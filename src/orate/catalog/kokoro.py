"""Kokoro's voice names (``af_bella``, ``bm_george`` …) where no Kokoro model serves them:
on espeak-ng by language and gender, and on the natural palette by character."""

from __future__ import annotations

import hashlib
import re

from orate.catalog.natural import palette_voice
from orate.engines.base import VoiceParams
from orate.engines.palette import PALETTE, spread

# Kokoro's voice names are <language><gender>_<name>: af_bella, bm_george, jf_alpha …
KOKORO_LANGUAGES = {
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
KOKORO_NAME = re.compile(r"^([abefhijpz])([fm])_([a-z0-9]+)$")


def kokoro_voice(name: str) -> VoiceParams | None:
    """A Kokoro-style name as an espeak voice: its language, and a variant of its gender
    and a pitch both picked from the name, so af_bella and af_sky stay distinct and
    stable (five female variants alone would collide)."""
    m = KOKORO_NAME.match(name.lower())
    if not m:
        return None
    variants = (
        ("f1", "f2", "f3", "f4", "f5")
        if m.group(2) == "f"
        else ("m1", "m2", "m3", "m4", "m5", "m6", "m7")
    )
    digest = hashlib.sha256(m.group(3).encode()).digest()
    return VoiceParams(
        voice=KOKORO_LANGUAGES[m.group(1)],
        variant=variants[digest[0] % len(variants)],
        pitch=38 + digest[1] % 25,
    )


# Kokoro's voices by the character Kokoro gives them, where a palette voice fits
KOKORO_NATURAL = {
    "heart": "heart",
    "bella": "dove",
    "nicole": "dove",
    "sky": "wren",
    "sarah": "lark",
    "nova": "finch",
    "alloy": "heart",
    "aoede": "linnet",
    "kore": "wren",
    "jessica": "finch",
    "river": "linnet",
    "emma": "linnet",
    "isabella": "lark",
    "alice": "lark",
    "lily": "heart",
    "adam": "raven",
    "michael": "owl",
    "echo": "heron",
    "eric": "crow",
    "onyx": "raven",
    "fenrir": "rook",
    "liam": "heron",
    "puck": "rook",
    "santa": "owl",
    "george": "joe",
    "fable": "rook",
    "lewis": "crow",
    "daniel": "raven",
}


def natural_kokoro_name(name: str, available: set[str]) -> VoiceParams | None:
    """An English Kokoro-style name (af_bella, bm_george) as a palette voice of its gender:
    the Kokoro voice's own character where the palette has it, else a stable pick."""
    m = KOKORO_NAME.match(name)
    if m is None or m.group(1) not in "ab":
        return None
    gender = "female" if m.group(2) == "f" else "male"
    pick = KOKORO_NATURAL.get(m.group(3))
    if pick is None or pick not in available:
        pool = [v for v in PALETTE if v.gender == gender and v.id in available]
        if not pool:
            return None
        pick = spread(name, pool).id
    return palette_voice(pick)
