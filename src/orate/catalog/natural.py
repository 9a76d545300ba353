"""The natural palette as the catalog names it: its engine, and a palette voice."""

from __future__ import annotations

from orate.engines.base import VoiceParams
from orate.engines.palette import NATURAL as NATURAL_ENGINE
from orate.engines.registry import hibari_available


def palette_voice(
    voice: str,
    *,
    pitch_range: int | None = None,
    volume: int | None = None,
    rate: float = 1.0,
    f0: float = 1.0,
    formant: float = 1.0,
    breath: float = 0.0,
) -> VoiceParams:
    """A palette voice, with adjustments of its own (the defaults are VoiceParams')."""
    return VoiceParams(
        engine=NATURAL_ENGINE,
        voice=voice,
        pitch_range=pitch_range,
        volume=volume,
        rate=rate,
        f0=f0,
        formant=formant,
        breath=breath,
    )


def natural_engine() -> str:
    """The natural palette when its base voice (hibari, a dependency) is installed, else
    espeak."""
    return NATURAL_ENGINE if hibari_available() else "espeak"
