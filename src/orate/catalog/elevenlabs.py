"""ElevenLabs' premade voices (names and ids) and model ids.

nano-gpt's ElevenLabs models speak the same names, so these are the catalog's, not the
ElevenLabs dialect's alone.
"""

from __future__ import annotations

from orate.catalog.natural import palette_voice
from orate.engines.base import VoiceParams

# ElevenLabs' premade voice names (nano-gpt's Elevenlabs models and the ElevenLabs
# dialect) → distinct espeak voices (Domi and Elli share a variant with Bella and Emily,
# so a pitch tells them apart)
ELEVENLABS_VOICES: dict[str, VoiceParams] = {
    name: VoiceParams(voice=voice, variant=variant, pitch=pitch)
    for name, voice, variant, pitch in (
        ("rachel", "en-us", "f2", None),
        ("adam", "en-us", "m3", None),
        ("bella", "en-us", "f4", None),
        ("brian", "en-us", "m1", None),
        ("sarah", "en-us", "f5", None),
        ("michael", "en-us", "m5", None),
        ("emily", "en-us", "f1", None),
        ("james", "en-gb", "m2", None),
        ("nicole", "en-us", "f3", None),
        ("antoni", "en-us", "m4", None),
        ("domi", "en-us", "f4", 68),
        ("elli", "en-us", "f1", 66),
        ("josh", "en-us", "m6", None),
        ("arnold", "en-us", "m7", None),
        ("sam", "en-us", "m2", None),
        ("charlotte", "en-gb", "f3", None),
        ("george", "en-gb", "m3", None),
        ("daniel", "en-gb", "m1", None),
        ("lily", "en-gb", "f2", None),
        ("alice", "en-gb", "f5", None),
    )
}
# ElevenLabs' real premade voice ids → the names above, so an SDK caller passing
# "21m00Tcm4TlvDq8ikWAM" gets the same voice as a nano-gpt caller passing "Rachel"
ELEVENLABS_VOICE_IDS: dict[str, str] = {
    "21m00Tcm4TlvDq8ikWAM": "rachel",
    "pNInz6obpgDQGcFmaJgB": "adam",
    "hpp4J3VqNfWAUOO0d1Us": "bella",
    "nPczCjzI2devNBz1zQrb": "brian",
    "EXAVITQu4vr4xnSDxMaL": "sarah",
    "flq6f7yk4E4fJM5XTYuZ": "michael",
    "LcfcDJNUP1GQjkzn1xUU": "emily",
    "ZQe5CZNOzWyzPSCn5a3c": "james",
    "piTKgcLEGmPE4e6mEKli": "nicole",
    "ErXwobaYiN019PkySvjV": "antoni",
    "AZnzlk1XvdvUeBnXmlld": "domi",
    "MF3mGyEYCl7XYWbV9V6O": "elli",
    "TxGEqnHWrfWFTfGW9XjX": "josh",
    "VR6AewLTigWG4xSOukaG": "arnold",
    "yoZ06aMxZJJ28mfd3POQ": "sam",
    "XB0fDUnXU5powFXDhCwa": "charlotte",
    "JBFqnCBsd6RMkjVDRZzb": "george",
    "onwK4e9ZLuTAKqWW03F9": "daniel",
    "pFZP5JQG7iQjIQuC4Bku": "lily",
    "Xb7hH8MSUJpSbSDYk0k2": "alice",
}
# ElevenLabs model ids → the catalog model that serves them (nano-gpt's ElevenLabs model),
# so both dialects follow whatever engine the catalog puts behind that one id
MODEL_ALIASES: dict[str, str] = {
    alias: "Elevenlabs-Turbo-V2.5"
    for alias in (
        "eleven_multilingual_v2",
        "eleven_turbo_v2_5",
        "eleven_flash_v2_5",
        "eleven_v3",
        "eleven_turbo_v2",
        "eleven_flash_v2",
        "eleven_monolingual_v1",
        "eleven_multilingual_v1",
    )
}

# ElevenLabs' premade voices, by the character ElevenLabs gives each (Nicole whispers,
# Adam is deep, Michael is old …); twenty names over thirteen voices, so some are a
# palette voice with an adjustment of their own
ELEVENLABS_NATURAL: dict[str, VoiceParams] = {
    "rachel": palette_voice("heart"),
    "bella": palette_voice("dove"),
    "sarah": palette_voice("lark"),
    "emily": palette_voice("linnet"),
    "nicole": palette_voice("dove", breath=0.45, f0=1.05),
    "domi": palette_voice("wren"),
    "elli": palette_voice("finch"),
    "charlotte": palette_voice("linnet", f0=1.08, breath=0.15),
    "lily": palette_voice("heart", f0=0.93, formant=0.98),
    "alice": palette_voice("lark", f0=1.1),
    "adam": palette_voice("raven"),
    "brian": palette_voice("crow"),
    "michael": palette_voice("owl"),
    "james": palette_voice("crow", f0=1.08, rate=0.95),
    "antoni": palette_voice("heron"),
    "josh": palette_voice("rook", f0=0.92),
    "arnold": palette_voice("hawk"),
    "sam": palette_voice("heron", breath=0.2, f0=0.94),
    "george": palette_voice("joe"),
    "daniel": palette_voice("raven", f0=1.08, rate=1.04),
}
