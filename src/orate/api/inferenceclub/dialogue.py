"""inference.club's ``POST /v1/voice/generations``: a ``[S1]``/``[S2]`` script → one file.

Translation only: the body becomes dialogue turns (speech/dialogue.py), the answer
is the raw audio exactly like ``/v1/audio/speech`` (same headers), and the
generation lands in history with word timestamps, so each line's times (and
captions) can be read back. Voice samples (cloning) are refused with a clear 4xx:
no local engine here clones a voice.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from orate.api.http.deps import SpeechDep
from orate.api.http.errors import ApiError, audio_response, documented
from orate.api.http.owners import context
from orate.api.http.speech import DictionaryLocator, locators, speech_headers
from orate.api.http.streaming import audio_bytes, primed
from orate.audio.formats import FORMATS
from orate.speech.dialogue import DEFAULT_GAP, MAX_GAP, dialogue_request, script_turns

router = APIRouter(tags=["inference.club"], responses=documented(400, 404, 413, 502))
DEFAULT_VOICES = ("alloy", "onyx", "nova", "echo", "shimmer", "fable")


class DialogueBody(BaseModel):
    """A tagged script and who speaks each tag; unknown fields are ignored."""

    model_config = ConfigDict(extra="allow")

    model: str | None = None
    text: str | None = Field(
        None,
        description="the script: '[S1] Hi. [S2] Hello!' (also accepted as 'script' or 'input')",
    )
    script: str | None = None
    input: str | None = None
    voices: dict[str, Any] | None = Field(
        None, description="speaker → voice: {'S1': 'alloy', 'S2': 'my saved voice'}"
    )
    voice_samples: dict[str, Any] | None = Field(
        None, description="speaker → a voice sample to clone (refused: no engine here clones)"
    )
    gap: float | None = Field(
        None,
        ge=0.0,
        le=MAX_GAP,
        description=f"seconds of silence between turns (default {DEFAULT_GAP})",
    )
    speed: float | None = Field(None, ge=0.25, le=4.0)
    response_format: str | None = None
    normalize: bool | None = None
    pronunciation_dictionary_locators: list[DictionaryLocator] | None = Field(None, max_length=3)


def _refuse_cloning(body: DialogueBody, model: str) -> None:
    samples = dict(body.voice_samples or {})
    samples.update({k: v for k, v in (body.voices or {}).items() if isinstance(v, dict)})
    if samples:
        raise ApiError(
            400,
            "cloning_unavailable",
            f"voice cloning from a sample is not "
            f"available for the model {model!r} (speakers "
            f"{', '.join(sorted(samples))}); give each speaker a built-in or saved "
            "voice name",
            "voice_samples",
        )


@router.post(
    "/v1/voice/generations",
    summary="Multi-speaker dialogue (inference.club)",
    responses=audio_response(),
)
async def create_dialogue(
    body: DialogueBody, request: Request, service: SpeechDep
) -> StreamingResponse:
    model = body.model or service.settings.default_model
    _refuse_cloning(body, model)
    script = body.text or body.script or body.input or ""
    fmt = body.response_format or "wav"  # inference.club's default
    if fmt not in FORMATS:
        raise ApiError(
            400,
            "invalid_format",
            f"unsupported response_format {fmt!r}; use one of {', '.join(FORMATS)}",
            "response_format",
        )
    turns = script_turns(script, body.voices or {}, DEFAULT_VOICES)
    req = dialogue_request(
        model,
        turns,
        gap=DEFAULT_GAP if body.gap is None else body.gap,
        format=fmt,
        timestamps=frozenset({"word"}),
        normalize=body.normalize is not False,
        lexicons=locators(body.pronunciation_dictionary_locators),
    )
    if body.speed:
        for utt in req.utterances:
            utt.speed = body.speed
    plan = await service.plan(req, context(request, "inference.club"))
    speech = await service.speak(plan)
    headers = speech_headers(speech)
    headers["X-Orate-Turns"] = str(len(turns))
    events = await primed(speech.events)
    return StreamingResponse(
        audio_bytes(events), media_type=plan.format.content_type, headers=headers
    )
