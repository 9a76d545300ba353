"""Dialogue: turns of (text, voice) become one speech, speakers alternating.

This is the one path for every multi-voice request: inference.club's
``/v1/voice/generations`` scripts (``[S1] … [S2] …``), ElevenLabs'
text-to-dialogue (inputs of text + voice_id) and Hume's multi-utterance bodies all
end up as a ``SpeechRequest`` with one utterance per turn, so the pipeline renders
them as consecutive segments (streamed turn by turn: a long script's first turn
plays while the next is synthesized), with one silence between turns and the
usual timestamps, cache key and history record.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from orate.engines.base import VoiceParams
from orate.speech.types import SpeechError, SpeechRequest, Utterance

MAX_TURNS = 200
MAX_GAP = 5.0
DEFAULT_GAP = 0.3
_TAG = re.compile(r"\[(S\d{1,2})\]", re.I)


@dataclass(frozen=True)
class Turn:
    """One line of a dialogue: its text, its speaker's voice, and the speaker's tag."""

    text: str
    voice: str | VoiceParams
    speaker: str = ""


def parse_script(script: str) -> list[tuple[str, str]]:
    """``[S1] Hi. [S2] Hello!`` → [("S1", "Hi."), ("S2", "Hello!")]; text before the
    first tag is refused (whose line would it be?)."""
    parts = _TAG.split(script)
    head = parts[0].strip()
    if head:
        raise SpeechError(
            400,
            "invalid_script",
            f"the script must start with a speaker tag such as [S1]; it starts with {head[:40]!r}",
            "text",
        )
    lines = [(parts[i].upper(), parts[i + 1].strip()) for i in range(1, len(parts) - 1, 2)]
    lines = [(s, t) for s, t in lines if t]
    if not lines:
        raise SpeechError(
            400,
            "missing_input",
            "the script has no lines; write '[S1] Hello. [S2] Hi there.'",
            "text",
        )
    if len(lines) > MAX_TURNS:
        raise SpeechError(
            413,
            "request_too_large",
            f"the script has {len(lines)} lines; the limit is {MAX_TURNS}",
            "text",
        )
    return lines


def script_turns(
    script: str, voices: Mapping[str, Any], default_voices: Sequence[str]
) -> list[Turn]:
    """Turns of a tagged script, each speaker with the voice ``voices`` names for it
    (keys "S1", "[S1]" or "1"), else the next of ``default_voices`` by speaker number."""
    normalized = {re.sub(r"[\[\]\s]", "", str(k)).upper().lstrip("S"): v for k, v in voices.items()}
    turns = []
    for speaker, text in parse_script(script):
        number = speaker.lstrip("S")
        voice = normalized.get(number)
        if voice is None:
            voice = default_voices[(int(number) - 1) % len(default_voices)]
        turns.append(Turn(text, voice, speaker))
    return turns


def dialogue_request(
    model: str, turns: Sequence[Turn], *, gap: float = DEFAULT_GAP, format: str = "mp3", **kw: Any
) -> SpeechRequest:
    """One request for the whole dialogue: an utterance per turn, ``gap`` seconds of
    silence between turns (none after the last). ``kw`` passes on to SpeechRequest
    (timestamps, normalize, lexicons, sample_rate …)."""
    if not turns:
        raise SpeechError(400, "missing_input", "a dialogue needs at least one turn", "inputs")
    if not 0 <= gap <= MAX_GAP:
        raise SpeechError(400, "invalid_gap", f"gap must be between 0 and {MAX_GAP} seconds", "gap")
    utterances = [
        Utterance(t.text, t.voice, trailing_silence=gap if n < len(turns) - 1 else 0.0)
        for n, t in enumerate(turns)
    ]
    return SpeechRequest(model=model, utterances=utterances, format=format, **kw)
