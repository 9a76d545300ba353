"""The names the dialects import from the speech layer, in one place.

The speech service composes planning (speech/planning.py), delivery
(speech/delivery.py) and recording (speech/recording.py); the request, plan and event
types are in speech/types.py. Dialect modules import these names from here.
"""

from __future__ import annotations

from orate.speech.events import file_bytes
from orate.speech.types import (
    Context,
    Plan,
    Speech,
    SpeechError,
    SpeechEvent,
    SpeechRequest,
    SynthesisFailed,
    Utterance,
)

__all__ = [
    "Context",
    "Plan",
    "Speech",
    "SpeechError",
    "SpeechEvent",
    "SpeechRequest",
    "SynthesisFailed",
    "Utterance",
    "file_bytes",
]
