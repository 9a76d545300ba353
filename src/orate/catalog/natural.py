"""The natural palette as the catalog names it: its engine, and a palette voice."""

from __future__ import annotations

from orate.engines.base import VoiceParams
from orate.engines.palette import NATURAL as NATURAL_ENGINE
from orate.engines.registry import hibari_available


def palette_voice(voice: str, **adjust: float) -> VoiceParams:
    """A palette voice, with adjustments of its own (f0, breath, rate …)."""
    return VoiceParams(engine=NATURAL_ENGINE, voice=voice, **adjust)  # type: ignore[arg-type]


def natural_engine() -> str:
    """The natural palette when its base voice (hibari, a dependency) is installed, else
    espeak."""
    return NATURAL_ENGINE if hibari_available() else "espeak"
