"""The nano-gpt ``/api/tts`` dialect (docs/wire.md, "nano-gpt"): sync JSON or audio, or a job.

A request answers synchronously with JSON whose ``audioUrl`` is this server's
stored file (or with the audio itself when ``Accept`` asks for audio), or,
for an asynchronous model, ``Prefer: respond-async`` or a long text, with 202
and a ``runId`` to poll at ``/api/tts/status``. Jobs are durable (library/jobs.py).
"""

from __future__ import annotations

import math
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from orate.api.http.deps import SpeechDep, library_of, speech_service
from orate.api.http.errors import ApiError, audio_response, documented, fields
from orate.api.http.owners import context, owner_of, reader_of
from orate.api.http.speech import DictionaryLocator, locators
from orate.api.http.streaming import CLIENT_GONE, audio_bytes, primed, while_connected
from orate.audio.formats import FORMATS
from orate.catalog.models import Model
from orate.engines.base import VoiceParams
from orate.library.jobs import COMPLETED, FAILED, PENDING
from orate.speech.pipeline import Plan, Speech, SpeechError, SpeechRequest, Utterance
from orate.speech.service import SpeechService
from orate.speech.style import style_voice
from orate.speech.types import request_to_dict

router = APIRouter(tags=["nano-gpt"], responses=documented(400, 404, 413, 502))
DEFAULT_MODEL = "Kokoro-82m"


class TtsBody(BaseModel):
    """``POST /api/tts``; unknown fields are accepted and ignored."""

    model_config = ConfigDict(extra="allow")

    text: str
    model: str | None = None
    voice: str | None = None
    speed: float | None = Field(None, ge=0.1, le=5.0)
    response_format: str | None = None
    instructions: str | None = Field(None, max_length=1000)
    stability: float | None = Field(None, ge=0.0, le=1.0)
    similarity_boost: float | None = Field(None, ge=0.0, le=1.0)
    style: float | None = Field(None, ge=0.0, le=1.0)
    normalize: bool | None = Field(
        None, description="orate extension: false reads the text as written"
    )
    pronunciation_dictionary_locators: list[DictionaryLocator] | None = Field(
        None, max_length=3, description="orate extension (ElevenLabs' shape)"
    )


async def _request(body: TtsBody, request: Request, limit: int) -> tuple[SpeechRequest, Any]:
    service = speech_service(request)
    fmt = body.response_format or "mp3"
    if fmt not in FORMATS:
        raise ApiError(
            400,
            "invalid_format",
            f"unsupported response_format {fmt!r}; use one of {', '.join(FORMATS)}",
            "response_format",
        )
    model_id = body.model or DEFAULT_MODEL
    model = service.catalog.model(model_id)
    if model is None:
        raise ApiError(
            400,
            "invalid_model",
            f"unknown model {model_id!r}; models: {', '.join(service.catalog.models)}",
            "model",
        )
    voice: str | VoiceParams = body.voice or service.settings.default_voice
    if body.stability is not None or body.style is not None:
        try:
            resolved, _ = await service.resolve_voice(model, voice, owner_of(request))
        except ValueError as exc:
            raise ApiError(400, "invalid_voice", str(exc), "voice") from None
        voice = style_voice(resolved, body.stability, body.style)
    req = SpeechRequest(
        model=model_id,
        utterances=[Utterance(body.text, voice, body.speed or 1.0, description=body.instructions)],
        format=fmt,
        max_chars=limit,
        normalize=body.normalize is not False,
        lexicons=locators(body.pronunciation_dictionary_locators),
    )
    return req, model


def payment_source(cost: float, currency: str) -> str:
    """nano-gpt names what paid (``"USD"`` in its docs); a free request was paid by
    nothing, so it says ``"none"`` rather than pretend a currency was charged."""
    return currency if cost > 0 else "none"


def _is_async(request: Request, body: TtsBody, model: Model, threshold: int) -> bool:
    prefer = request.headers.get("prefer", "").lower()
    return model.asynchronous or "respond-async" in prefer or len(body.text) > threshold


def _wants_audio(request: Request) -> bool:
    accept = request.headers.get("accept", "").lower()
    return any(part.strip().startswith("audio/") for part in accept.split(","))


@router.post(
    "/api/tts",
    summary="Text to speech (nano-gpt)",
    responses={
        **audio_response("application/json"),
        202: {
            "description": "queued as a job: poll /api/tts/status",
            "content": {"application/json": {"schema": {"type": "object"}}},
        },
    },
)
async def tts(body: TtsBody, request: Request, service: SpeechDep) -> Response:
    req, model, asynchronous = await _checked(body, request, service)
    plan = await _plan(req, request, service)  # validates all before a 202
    if asynchronous:
        # the characters' part of the cost; the finished job says all
        job, cost = await service.submit_job(
            plan, request_to_dict(req), owner=owner_of(request), dialect="nanogpt"
        )
        return JSONResponse(
            {
                "status": PENDING,
                "runId": job.id,
                "model": model.id,
                "charged": cost > 0,
                "cost": cost,
                "paymentSource": payment_source(cost, service.settings.currency),
                "isApiRequest": True,
            },
            status_code=202,
        )
    speech = await service.speak(plan)
    if _wants_audio(request):
        events = await primed(speech.events)
        return StreamingResponse(
            audio_bytes(events),
            media_type=plan.format.content_type,
            headers={"X-Orate-Generation-Id": speech.id},
        )
    duration = await _drained(request, speech)
    if duration is None:  # the client left: synthesis stopped
        return Response(status_code=CLIENT_GONE)
    voice = body.voice or (plan.voices[0].label() if plan.voices else "")
    return JSONResponse(
        {
            "audioUrl": str(request.url_for("get_file", gen_id=speech.id)),
            "contentType": plan.format.content_type,
            "model": model.id,
            "text": body.text,
            "voice": voice,
            "speed": body.speed or 1.0,
            "duration": round(duration, 4),
            "cost": service.cost(plan, duration, speech.cache),
            "currency": service.settings.currency,
        }
    )


async def _checked(
    body: TtsBody, request: Request, service: SpeechService
) -> tuple[SpeechRequest, Any, bool]:
    """The body as a request, its model, and whether it runs as a job (by size, model or
    the caller's ``Prefer: respond-async``)."""
    settings = service.settings
    if not body.text.strip():
        raise ApiError(400, "missing_text", "text is required: the words to speak", "text")
    if len(body.text) > settings.max_job_chars:
        raise ApiError(
            413,
            "text_too_long",
            f"text is {len(body.text)} characters; this server's limit is {settings.max_job_chars}",
            "text",
        )
    req, model = await _request(body, request, settings.max_job_chars)
    asynchronous = _is_async(request, body, model, settings.async_threshold_chars)
    req.max_chars = settings.max_job_chars if asynchronous else settings.async_threshold_chars
    if asynchronous:  # a job's output goes to storage, not to a waiting response
        req.framing = None
    return req, model, asynchronous


async def _plan(req: SpeechRequest, request: Request, service: SpeechService) -> Plan:
    """Plan in nano-gpt's words: its fields' names, and its answer to nothing speakable."""
    try:
        with fields({"input": "text", "description": "instructions"}):
            return await service.plan(req, context(request, "nanogpt"))
    except SpeechError as exc:
        if exc.code == "missing_input":  # nothing speakable: as an empty text is answered
            raise ApiError(
                400,
                "missing_text",
                "text has nothing to speak (only spaces, punctuation or invisible characters)",
                "text",
            ) from None
        raise


async def _drained(request: Request, speech: Speech) -> float | None:
    """Run the synthesis to its end (the audio goes to storage): its duration, or None if
    the client left first (which stops it)."""
    duration = 0.0

    async def drain() -> None:
        nonlocal duration
        try:
            async for event in speech.events:
                if event.kind == "done":
                    duration = float(event.info.get("duration", 0.0))
        finally:
            await speech.events.aclose()

    return duration if await while_connected(request, drain()) else None


@router.get("/api/tts/status", summary="Poll an asynchronous job (nano-gpt)")
async def status(
    request: Request,
    run_id: Annotated[str | None, Query(alias="runId")] = None,
    model: str | None = None,
) -> JSONResponse:
    if not run_id:
        raise ApiError(
            400,
            "missing_run_id",
            "runId is required: the runId that POST /api/tts returned with its 202",
            "runId",
        )
    lib = library_of(request)
    # This process's progress is read before the database row: a job that finishes
    # between the two reads is then already final in the row, so a poll never goes
    # back from what an earlier poll saw.
    running = speech_service(request).running_progress(run_id)
    job = await lib.jobs.get(run_id, reader_of(request))
    if job is None:
        raise ApiError(
            404,
            "run_not_found",
            f"no job {run_id!r}: it does not exist, belongs to another key, or expired",
            "runId",
        )
    out: dict[str, Any] = {
        "status": job.status,
        "runId": job.id,
        "model": job.model,
        "charged": job.cost > 0,
        "cost": job.cost,
        "paymentSource": payment_source(job.cost, job.currency),
        "isApiRequest": True,
    }
    if job.status == COMPLETED and job.generation_id:
        gen = await lib.generations.get(job.generation_id, None)
        out.update(
            {
                "audioUrl": str(request.url_for("get_file", gen_id=job.generation_id)),
                "contentType": gen.content_type if gen else None,
                "duration": round(gen.duration, 4) if gen else None,
                "currency": job.currency,
            }
        )
    elif job.status == FAILED:
        out["error"] = job.error or "the job failed"
    else:
        progress = job.progress if running is None else max(running, job.progress)
        out["progress"] = round(progress if not math.isnan(progress) else 0.0, 4)
    return JSONResponse(out)
