"""OpenAI's voice names: on espeak-ng, on the natural palette, on neural engines."""

from __future__ import annotations

from orate.catalog.natural import palette_voice
from orate.engines.base import VoiceParams

# OpenAI's built-in voice names → distinct espeak voices (accent + variant).
OPENAI_VOICES: dict[str, VoiceParams] = {
    "alloy": VoiceParams(voice="en-us", variant="f2"),
    "ash": VoiceParams(voice="en-us", variant="m3"),
    "ballad": VoiceParams(voice="en-gb-x-rp", variant="m2"),
    "coral": VoiceParams(voice="en-us", variant="f4"),
    "echo": VoiceParams(voice="en-us", variant="m1"),
    "fable": VoiceParams(voice="en-gb", variant="m4"),
    "onyx": VoiceParams(voice="en-us", variant="m7"),
    "nova": VoiceParams(voice="en-us", variant="f5"),
    "sage": VoiceParams(voice="en-gb", variant="f3"),
    "shimmer": VoiceParams(voice="en-us", variant="f1"),
    "verse": VoiceParams(voice="en-us", variant="m5"),
    "marin": VoiceParams(voice="en-gb-scotland", variant="f2"),
    "cedar": VoiceParams(voice="en-us", variant="m6"),
}


# OpenAI's names as genders, so a neural engine can answer each with a voice of its own
OPENAI_GENDERS: dict[str, str] = {
    "alloy": "female",
    "ash": "male",
    "ballad": "male",
    "coral": "female",
    "echo": "male",
    "fable": "male",
    "onyx": "male",
    "nova": "female",
    "sage": "female",
    "shimmer": "female",
    "verse": "male",
    "marin": "female",
    "cedar": "male",
}
# OpenAI's voice names → Kokoro voices of the same name or character
OPENAI_TO_KOKORO = {
    "alloy": "af_alloy",
    "ash": "am_adam",
    "ballad": "bm_fable",
    "coral": "af_heart",
    "echo": "am_echo",
    "fable": "bm_fable",
    "onyx": "am_onyx",
    "nova": "af_nova",
    "sage": "af_sarah",
    "shimmer": "af_sky",
    "verse": "am_michael",
    "marin": "bf_emma",
    "cedar": "am_eric",
}

# OpenAI's names on the natural voices: each name its own palette voice, of the vendor
# voice's gender and manner; its 13 names take the 13 palette voices one each.
OPENAI_NATURAL: dict[str, VoiceParams] = {
    "alloy": palette_voice("heart"),
    "coral": palette_voice("wren"),
    "nova": palette_voice("finch"),
    "sage": palette_voice("linnet"),
    "shimmer": palette_voice("dove"),
    "marin": palette_voice("lark"),
    "ash": palette_voice("crow"),
    "ballad": palette_voice("owl"),
    "echo": palette_voice("heron"),
    "fable": palette_voice("rook"),
    "onyx": palette_voice("raven"),
    "verse": palette_voice("hawk"),
    "cedar": palette_voice("joe"),
}
