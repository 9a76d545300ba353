"""The OpenAI ``audio.speech`` dialect (docs/wire.md, "OpenAI").

Translation only: the body becomes a ``SpeechRequest``, service events become
raw audio bytes or SSE frames. Served under ``/v1`` and at the root, because
the SDK without ``/v1`` in its base URL posts to ``/audio/speech``.
"""

from __future__ import annotations

import base64
import json
import math
import re
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from orate.api.http.deps import SpeechDep
from orate.api.http.errors import ApiError, audio_response, documented, fields
from orate.api.http.owners import context
from orate.api.http.speech import DictionaryLocator, locators, speech_headers
from orate.api.http.streaming import audio_bytes, primed
from orate.audio.formats import FORMATS
from orate.catalog.kokoro import KOKORO_LANGUAGES
from orate.catalog.models import model_voice_names
from orate.engines.base import VoiceInfo
from orate.speech.pipeline import (
    Plan,
    SpeechEvent,
    SpeechRequest,
    Utterance,
)
from orate.speech.service import SpeechService

MIN_SPEED, MAX_SPEED = 0.25, 4.0
_TOKEN = re.compile(r"\w+|[^\w\s]")

router = APIRouter(tags=["openai"], responses=documented(400, 404, 413, 502))


class VoiceRef(BaseModel):
    id: str


class SpeechBody(BaseModel):
    """``POST /v1/audio/speech``. Unknown fields are accepted and ignored, as gateways do."""

    model_config = ConfigDict(extra="allow")

    model: str
    input: str
    voice: str | VoiceRef | None = None
    instructions: str | None = None
    response_format: str | None = None
    speed: float | None = None
    stream_format: Literal["audio", "sse"] | None = None
    language: str | None = Field(None, description="language hint (inference.club); unused")
    include_timestamp_types: list[Literal["word", "phoneme"]] | None = Field(
        None,
        description="orate extension: with stream_format=sse, adds speech.audio.timestamps events",
    )
    store: bool | None = Field(
        None,
        description="orate extension: false keeps no copy of the audio (history keeps the record)",
    )
    normalize: bool | None = Field(
        None,
        description="orate extension: false reads the text "
        'as written (no "$4.50" → "four dollars fifty")',
    )
    pronunciation_dictionary_locators: list[DictionaryLocator] | None = Field(
        None,
        description="orate extension (ElevenLabs' shape): pronunciation dictionaries "
        "to apply, by id and optional version",
        max_length=3,
    )
    captions: Literal["srt", "vtt"] | None = Field(
        None,
        description="orate extension: word timestamps are kept so that "
        "GET /v1/history/{id}/captions works (the X-Orate-Captions-Url header); with "
        "stream_format=sse a speech.audio.captions event precedes speech.audio.done",
    )


def _usage(plan: Plan, duration: float) -> dict[str, int]:
    """Token counts in OpenAI's shape: words and marks in, 20 ms audio frames out."""
    text = "".join(u.text for u in plan.request.utterances)
    input_tokens = len(_TOKEN.findall(text))
    output_tokens = math.ceil(duration * 50)
    return {
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "total_tokens": input_tokens + output_tokens,
    }


def _build(body: SpeechBody, service: SpeechService) -> SpeechRequest:
    fmt = body.response_format or service.settings.default_format
    if fmt not in FORMATS:
        raise ApiError(
            400,
            "invalid_format",
            f"unsupported response_format {fmt!r}; use one of {', '.join(FORMATS)}",
            "response_format",
        )
    speed = 1.0 if body.speed is None else body.speed
    if not (MIN_SPEED <= speed <= MAX_SPEED) or math.isnan(speed):
        raise ApiError(
            400,
            "invalid_speed",
            f"speed must be between {MIN_SPEED} and {MAX_SPEED}, got {body.speed}",
            "speed",
        )
    voice = body.voice.id if isinstance(body.voice, VoiceRef) else body.voice
    timestamps = (
        frozenset(body.include_timestamp_types or ())
        if body.stream_format == "sse"
        else frozenset()
    )
    if body.captions:
        timestamps |= {"word"}
    utterance = Utterance(
        body.input,
        voice if voice is not None else service.settings.default_voice,
        speed,
        description=body.instructions,
    )
    return SpeechRequest(
        model=body.model,
        utterances=[utterance],
        format=fmt,
        timestamps=timestamps,
        normalize=body.normalize is not False,
        lexicons=locators(body.pronunciation_dictionary_locators),
        framing=4 / 3 if body.stream_format == "sse" else 1.0,
    )  # SSE: base64


async def _sse(
    plan: Plan,
    events: AsyncIterator[SpeechEvent],
    captions: str | None = None,
    asked: frozenset[str] = frozenset(),
) -> AsyncIterator[bytes]:
    duration = 0.0
    words: list[Any] = []
    async for event in events:
        if event.kind == "audio":
            data = base64.b64encode(event.audio).decode()
            yield b'data: {"type":"speech.audio.delta","audio":"' + data.encode() + b'"}\n\n'
        elif event.kind == "timestamps":
            if captions:
                words.extend(event.timestamps)
            stamps = [t.to_dict() for t in event.timestamps if t.type in asked or t.type == "mark"]
            if stamps:
                frame = {"type": "speech.audio.timestamps", "timestamps": stamps}
                yield f"data: {json.dumps(frame)}\n\n".encode()
        elif event.kind == "done":
            duration = float(event.info.get("duration", 0.0))
    if captions:
        from orate.speech.captions import captions as make_captions

        text = plan.job.text
        frame = {
            "type": "speech.audio.captions",
            "format": captions,
            "captions": make_captions(words, captions, text),
        }
        yield f"data: {json.dumps(frame)}\n\n".encode()
    done = {"type": "speech.audio.done", "usage": _usage(plan, duration)}
    yield f"data: {json.dumps(done)}\n\n".encode()


@router.post(
    "/v1/audio/speech",
    summary="Create speech (OpenAI)",
    responses=audio_response("text/event-stream"),
)
@router.post("/audio/speech", include_in_schema=False)
async def create_speech(body: SpeechBody, request: Request, service: SpeechDep) -> Response:
    store = body.store if body.store is not None else True
    with fields({"description": "instructions"}):
        plan = await service.plan(_build(body, service), context(request, "openai", store=store))
    speech = await service.speak(plan)
    headers = speech_headers(speech)
    if body.captions:
        headers["X-Orate-Captions-Url"] = f"/v1/history/{speech.id}/captions?format={body.captions}"
    if speech.cache == "hit" and body.stream_format != "sse":
        # all of it is in memory already: one plain response, no streaming machinery
        audio = b"".join([chunk async for chunk in audio_bytes(speech.events)])
        return Response(audio, media_type=plan.format.content_type, headers=headers)
    events = await primed(speech.events)
    if body.stream_format == "sse":
        asked = frozenset(body.include_timestamp_types or ())
        return StreamingResponse(
            _sse(plan, events, body.captions, asked),
            media_type="text/event-stream",
            headers={**headers, "Cache-Control": "no-cache"},
        )
    return StreamingResponse(
        audio_bytes(events), media_type=plan.format.content_type, headers=headers
    )


def _model_json(model: Any, service: SpeechService) -> dict[str, Any]:
    price = service.price(model.id)
    return {
        "id": model.id,
        "object": "model",
        "created": model.created,
        "owned_by": model.owned_by,
        "description": model.description,
        **service.catalog.describe(model),
        "voices": model_voice_names(service.catalog, model),
        "max_input_chars": service.settings.max_input_chars,
        "price": {
            "per_1k_chars": price.per_1k_chars,
            "per_second": price.per_second,
            "currency": service.settings.currency,
        },
    }


@router.get("/v1/models", summary="List models (OpenAI)")
@router.get("/models", include_in_schema=False)
async def list_models(request: Request, service: SpeechDep) -> JSONResponse:
    return JSONResponse(
        {
            "object": "list",
            "data": [_model_json(m, service) for m in service.catalog.models.values()],
        }
    )


@router.get("/v1/models/{model_id}", summary="Retrieve a model (OpenAI)")
@router.get("/models/{model_id}", include_in_schema=False)
async def get_model(model_id: str, request: Request, service: SpeechDep) -> JSONResponse:
    model = service.catalog.model(model_id)
    if model is None:
        raise ApiError(404, "no_provider", f"no provider serves the model {model_id!r}", "model")
    return JSONResponse(_model_json(model, service))


VoiceListing = Literal["names", "objects"]


def _kokoro_language(name: str) -> str:
    """``af_heart`` → ``en-us``: a Kokoro name's first letter is its language."""
    return KOKORO_LANGUAGES.get(name[:1].lower(), "en-us") if "_" in name else "en-us"


def _kokoro_gender(name: str) -> Literal["female", "male", "neutral"]:
    tag = name[1:2].lower() if "_" in name else ""
    return "female" if tag == "f" else "male" if tag == "m" else "neutral"


def voice_listing(request: Request, asked: str | None) -> VoiceListing:
    """Which shape of ``/audio/voices`` this caller reads.

    inference.club documents ``{"voices": ["alloy", …]}`` (names); Open WebUI reads
    ``data["voices"]`` as objects and keeps ``{voice["id"]: voice["name"]}``, so a
    list of names fills its dropdown with nothing. Open WebUI sends no key, no query
    and no Accept of its own, only aiohttp's User-Agent (``Python/3.x aiohttp/3.x``),
    so that is the default rule; ``?format=names|objects`` overrides it for anyone.
    """
    if asked == "names":
        return "names"
    if asked == "objects":
        return "objects"
    agent = request.headers.get("user-agent", "").lower()
    return "objects" if "aiohttp/" in agent else "names"


@router.get(
    "/v1/audio/voices",
    summary="List a model's voices (inference.club extension; objects for Open WebUI)",
)
@router.get("/audio/voices", include_in_schema=False)
async def list_voices(
    request: Request,
    service: SpeechDep,
    model: Annotated[str | None, Query()] = None,
    format: Annotated[
        VoiceListing | None,
        Query(
            description="names: a list of voice ids (inference.club); objects: "
            "{id, name, language, gender} (Open WebUI). Default: objects for "
            "aiohttp clients (Open WebUI), names otherwise"
        ),
    ] = None,
) -> JSONResponse:
    model_id = model or service.settings.default_model
    found = service.catalog.model(model_id)
    if found is None:
        raise ApiError(404, "no_provider", f"no provider serves the model {model_id!r}", "model")
    if voice_listing(request, format) == "names":
        return JSONResponse({"voices": model_voice_names(service.catalog, found)})
    voices = [*service.catalog.named_voices(found), *service.catalog.voices(found)]
    own = model_voice_names(service.catalog, found)
    listed = {v.id for v in voices}
    voices += [
        VoiceInfo(
            id=n,
            name=n,
            engine=found.engine,
            language=_kokoro_language(n),
            gender=_kokoro_gender(n),
        )
        for n in own
        if n not in listed
    ]
    return JSONResponse(
        {
            "voices": [
                {
                    "id": v.id,
                    "name": f"{v.name} ({v.language}, {v.gender})",
                    "language": v.language,
                    "gender": v.gender,
                }
                for v in voices
            ]
        }
    )
