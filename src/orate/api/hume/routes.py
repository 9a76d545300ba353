"""The Hume Octave TTS dialect (docs/wire.md, "Hume"), for the official ``hume`` SDK.

Translation only: ``PostedTts`` becomes one ``SpeechRequest`` per generation,
and the events come back as Hume JSON, NDJSON, raw files or WebSocket frames
(``frames.py``). Errors: FastAPI's 422 list for invalid bodies, and
``{code, error, message}`` otherwise.
"""

from __future__ import annotations

import asyncio
import base64
import json
import math
import uuid
from collections.abc import AsyncIterator
from http import HTTPStatus
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator

from orate.api.http.deps import SpeechDep, library_of, speech_service
from orate.api.http.errors import ApiError, audio_response, documented
from orate.api.http.owners import context, owner_of, reader_of
from orate.api.http.speech import DictionaryLocator, locators
from orate.api.http.streaming import CLIENT_GONE, primed, while_connected
from orate.api.hume.frames import Chunk, HumeGeneration, TimestampFrame
from orate.audio.formats import FORMATS
from orate.catalog.openai import OPENAI_GENDERS
from orate.engines.base import UnknownVoice, VoiceParams
from orate.library.voices import VoiceExists
from orate.speech.pipeline import Context, Speech, SpeechError, SpeechRequest, Utterance
from orate.speech.service import GenerationNotFound, SpeechService, UnknownEngine, VoiceSource

PREFIX = "/v0/"  # every Hume route; errors under it use Hume's envelope


def envelope(err: SpeechError) -> JSONResponse:
    """Hume's ``ErrorResponse``: ``{code (a string), error, message}``."""
    reason = (
        HTTPStatus(err.status).phrase if err.status in HTTPStatus._value2member_map_ else "Error"
    )
    return JSONResponse(
        {"code": err.code, "error": reason, "message": err.message},
        status_code=err.status,
        headers=err.headers,
    )


router = APIRouter(tags=["hume"], responses=documented(400, 404, 409, 413, 502))

HUME_SAMPLE_RATE = 48000
MAX_TEXT = 5000
MAX_DESCRIPTION = 1000
Provider = Literal["HUME_AI", "CUSTOM_VOICE"]


class VoiceById(BaseModel):
    id: str = Field(min_length=1, max_length=256)
    provider: Provider | None = None


class VoiceByName(BaseModel):
    name: str = Field(min_length=1, max_length=256)
    provider: Provider | None = None


class PostedUtterance(BaseModel):
    text: str = Field(max_length=MAX_TEXT)
    description: str | None = Field(None, max_length=MAX_DESCRIPTION)
    voice: VoiceById | VoiceByName | None = None
    speed: float | None = Field(None, ge=0.5, le=2.0)
    trailing_silence: float | None = Field(None, ge=0.0, le=5.0)


class ContextGeneration(BaseModel):
    generation_id: str = Field(min_length=1, max_length=128)


class ContextUtterances(BaseModel):
    utterances: list[PostedUtterance]


class Format(BaseModel):
    type: Literal["mp3", "wav", "pcm"]


class PostedTts(BaseModel):
    """Hume's request body; unknown fields are ignored, ``null`` means absent."""

    model_config = ConfigDict(extra="allow")

    utterances: list[PostedUtterance] = Field(min_length=1, max_length=100)
    context: ContextGeneration | ContextUtterances | None = None
    format: Format | None = None
    include_timestamp_types: list[Literal["word", "phoneme"]] | None = None
    num_generations: int | None = Field(None, ge=1, le=5)
    split_utterances: bool | None = None
    strip_headers: bool | None = None
    temperature: float | None = Field(None, ge=0.0, le=2.0)
    version: str | None = None
    instant_mode: bool | None = None
    normalize: bool | None = Field(
        None,
        description="orate extension: false reads the text "
        "as written (no number, money or date expansion)",
    )
    pronunciation_dictionary_locators: list[DictionaryLocator] | None = Field(
        None,
        max_length=3,
        description="orate extension (ElevenLabs' shape): pronunciation dictionaries to apply",
    )

    @field_validator("version", mode="before")
    @classmethod
    def _version(cls, value: Any) -> str | None:
        if value is None:
            return None
        if str(value) not in ("1", "2"):
            raise ValueError("version must be 1 or 2")
        return str(value)


def invalid(field: str, message: str) -> JSONResponse:
    """A Hume 422 in FastAPI's shape, for rules pydantic cannot express."""
    return JSONResponse(
        {"detail": [{"loc": ["body", field], "msg": message, "type": "value_error"}]},
        status_code=422,
    )


class Invalid(Exception):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.response = invalid(field, message)


def _is_chunk(frame: Chunk | TimestampFrame) -> bool:
    """Hume's first audio: the frame a response may not start before."""
    return isinstance(frame, Chunk)


# Hume's voice providers → the library's
VOICE_PROVIDERS = {"HUME_AI": "builtin", "CUSTOM_VOICE": "custom"}


def voice_provider(name: str | None) -> str:
    """Where to look a Hume voice up: built-in, saved, or either when unnamed."""
    return VOICE_PROVIDERS.get(name or "", "any")


def _utterance(u: PostedUtterance) -> Utterance:
    voice: str | None = None
    provider = "any"
    if u.voice is not None:
        voice = u.voice.id if isinstance(u.voice, VoiceById) else u.voice.name
        provider = voice_provider(u.voice.provider)
    return Utterance(
        u.text,
        voice,
        u.speed or 1.0,
        u.trailing_silence or 0.0,
        description=u.description,
        voice_provider=provider,
    )


async def _context_voice(body: PostedTts, request: Request) -> VoiceParams | None:
    service = speech_service(request)
    if isinstance(body.context, ContextGeneration):
        gen = await library_of(request).generations.get(
            body.context.generation_id, reader_of(request)
        )
        if gen is None or not gen.voice_params:
            raise ApiError(
                400,
                "generation_not_found",
                f"context.generation_id "
                f"{body.context.generation_id!r} is not one of your generations",
            )
        return VoiceParams(**gen.voice_params[-1])
    if isinstance(body.context, ContextUtterances) and body.context.utterances:
        # the context sets voice and style; its text is not spoken
        probe = SpeechRequest(
            model=_model(body),
            utterances=[_utterance(u) for u in body.context.utterances],
            format="pcm",
        )
        plan = await service.plan(probe, Context(owner=owner_of(request), cache=False))
        return plan.voices[-1] if plan.voices else None
    return None


def _model(body: PostedTts) -> str:
    return "octave-1" if body.version == "1" else "octave-2"


def _check_instant(body: PostedTts, streaming: bool, context_voice: VoiceParams | None) -> None:
    if body.instant_mode is not True:
        return
    if not streaming:
        raise Invalid(
            "instant_mode",
            "instant_mode works only on the streaming endpoints "
            "(/v0/tts/stream/json, /v0/tts/stream/file); omit it or set it to false",
        )
    if (body.num_generations or 1) != 1:
        raise Invalid("instant_mode", "instant_mode needs num_generations to be 1")
    if body.utterances[0].voice is None and context_voice is None:
        raise Invalid(
            "instant_mode",
            "instant_mode needs a voice on the first utterance (or a "
            "context); set utterances[0].voice or set instant_mode to false",
        )


# response bytes per audio byte, for the response-size bound: JSON carries base64 (4/3),
# and /v0/tts carries each generation twice (the whole file and its snippets)
JSON_FRAMING, NDJSON_FRAMING, FILE_FRAMING = 8 / 3, 4 / 3, 1.0


async def _speeches(
    body: PostedTts, request: Request, *, streaming: bool, framing: float
) -> list[Speech]:
    """Plan every generation (validating everything first, the request's total work and
    response size included), then start them."""
    service = speech_service(request)
    context_voice = await _context_voice(body, request)
    _check_instant(body, streaming, context_voice)
    fmt = body.format.type if body.format else "mp3"
    timestamps = frozenset(body.include_timestamp_types or ())
    ctx = context(request, "hume")
    plans = []
    for n in range(body.num_generations or 1):
        req = SpeechRequest(
            model=_model(body),
            utterances=[_utterance(u) for u in body.utterances],
            format=fmt,
            sample_rate=HUME_SAMPLE_RATE,
            timestamps=timestamps,
            seed=n,
            variation=body.temperature if body.temperature is not None else 1.0,
            context_voice=context_voice,
            max_chars=service.settings.max_request_chars,
            generations=body.num_generations or 1,
            framing=framing,
            normalize=body.normalize is not False,
            lexicons=locators(body.pronunciation_dictionary_locators),
        )
        try:
            plans.append(await service.plan(req, ctx))
        except BaseException:
            # refused part way (a quota that covers only some generations): give back
            # what the earlier generations reserved, none of them will be spoken
            for plan in plans:
                if plan.reservation is not None:
                    await plan.reservation.release()
            raise
    speeches: list[Speech] = []
    try:
        for plan in plans:
            speeches.append(await service.speak(plan))
    except BaseException:
        for started in speeches:  # their synthesis has begun: stop it
            await started.events.aclose()
        raise
    return speeches


def _frames(body: PostedTts, speech: Speech, request_id: str, keep: bool) -> HumeGeneration:
    return HumeGeneration(
        speech,
        request_id,
        split=body.split_utterances is not False,
        strip_headers=bool(body.strip_headers),
        keep=keep,
    )


async def _run(
    body: PostedTts, request: Request, streaming: bool, framing: float
) -> list[Speech] | Response:
    try:
        return await _speeches(body, request, streaming=streaming, framing=framing)
    except Invalid as exc:
        return exc.response


async def _generations(
    body: PostedTts, request: Request, streaming: bool
) -> list[HumeGeneration] | Response:
    """Every generation of a request under one request id, or the response refusing it."""
    speeches = await _run(
        body, request, streaming=streaming, framing=NDJSON_FRAMING if streaming else JSON_FRAMING
    )
    if isinstance(speeches, Response):
        return speeches
    request_id = str(uuid.uuid4())
    return [_frames(body, s, request_id, keep=not streaming) for s in speeches]


@router.post("/v0/tts", summary="Text-to-speech, JSON (Hume)")
async def synthesize_json(body: PostedTts, request: Request) -> Response:
    gens = await _generations(body, request, streaming=False)
    if isinstance(gens, Response):
        return gens

    async def drain(gen: HumeGeneration) -> None:
        frames = gen.frames()
        try:
            async for _ in frames:
                pass
        finally:
            await frames.aclose()  # stops this generation's synthesis if it did not end

    async def drain_all() -> None:
        tasks = [asyncio.ensure_future(drain(g)) for g in gens]
        try:
            await asyncio.gather(*tasks)
        finally:
            # one generation failed (or the client left): the others stop too, now
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    if not await while_connected(request, drain_all()):
        return Response(status_code=CLIENT_GONE)
    out = []
    for gen in gens:
        whole = gen.whole_file()
        per_utterance: list[list[dict[str, Any]]] = [[] for _ in body.utterances]
        for snip in gen.snippets:
            per_utterance[snip.utterance_index].append(
                {
                    "audio": _b64(gen.snippet_file(snip)),
                    "generation_id": gen.generation_id,
                    "id": snip.id,
                    "text": snip.text,
                    "timestamps": snip.timestamps,
                    "transcribed_text": None,
                    "utterance_index": snip.utterance_index,
                }
            )
        out.append(
            {
                "audio": _b64(whole),
                "duration": round(gen.duration, 5),
                "encoding": {"format": gen.format, "sample_rate": gen.rate},
                "file_size": len(whole),
                "generation_id": gen.generation_id,
                "snippets": per_utterance,
            }
        )
    return JSONResponse({"generations": out, "request_id": gens[0].request_id})


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


async def _one_file(
    body: PostedTts, request: Request, streaming: bool
) -> HumeGeneration | Response:
    """The single generation a file endpoint answers with, or the response refusing it."""
    if (body.num_generations or 1) > 1:
        return invalid(
            "num_generations",
            "a file response holds one generation; use "
            "/v0/tts or /v0/tts/stream/json for num_generations above 1",
        )
    speeches = await _run(body, request, streaming=streaming, framing=FILE_FRAMING)
    if isinstance(speeches, Response):
        return speeches
    return _frames(body, speeches[0], str(uuid.uuid4()), keep=not streaming)


@router.post(
    "/v0/tts/file", summary="Text-to-speech, one audio file (Hume)", responses=audio_response()
)
async def synthesize_file(body: PostedTts, request: Request) -> Response:
    gen = await _one_file(body, request, streaming=False)
    if isinstance(gen, Response):
        return gen

    async def drain() -> None:
        frames = gen.frames()
        try:
            async for _ in frames:
                pass
        finally:
            await frames.aclose()

    if not await while_connected(request, drain()):
        return Response(status_code=CLIENT_GONE)
    return Response(
        gen.whole_file(),
        media_type=FORMATS[gen.format].content_type,
        headers={"X-Orate-Generation-Id": gen.generation_id},
    )


@router.post(
    "/v0/tts/stream/file",
    summary="Text-to-speech, streamed audio (Hume)",
    responses=audio_response(),
)
async def stream_file(body: PostedTts, request: Request) -> Response:
    gen = await _one_file(body, request, streaming=True)
    if isinstance(gen, Response):
        return gen
    frames = await primed(gen.frames(), _is_chunk)

    async def audio() -> AsyncIterator[bytes]:
        async for frame in frames:
            if isinstance(frame, Chunk) and frame.data:
                yield frame.data

    return StreamingResponse(
        audio(),
        media_type=FORMATS[gen.format].content_type,
        headers={"X-Orate-Generation-Id": gen.generation_id},
    )


@router.post(
    "/v0/tts/stream/json",
    summary="Text-to-speech, streamed NDJSON (Hume)",
    responses={
        200: {
            "description": "one JSON object per line",
            "content": {"application/x-ndjson": {"schema": {"type": "string"}}},
        }
    },
)
async def stream_json(body: PostedTts, request: Request) -> Response:
    gens = await _generations(body, request, streaming=True)
    if isinstance(gens, Response):
        return gens
    first = await primed(gens[0].frames(), _is_chunk)

    async def lines() -> AsyncIterator[bytes]:
        try:
            sources = [first] + [g.frames() for g in gens[1:]]
            for source in sources:
                async for frame in source:
                    yield json.dumps(frame.message, separators=(",", ":")).encode() + b"\n"
        finally:  # the client left early: the generations not yet read stop too
            for gen in gens:
                await gen.speech.events.aclose()

    return StreamingResponse(lines(), media_type="application/x-ndjson")


# -- voices ------------------------------------------------------------------


def _builtin_voices(service: SpeechService) -> list[dict[str, Any]]:
    """The voices Octave 1 and 2 can speak, as their models are served here: only voices
    that will synthesize (the catalog's names), each tagged with its engine."""
    catalog = service.catalog
    out: dict[str, dict[str, Any]] = {}
    for version in ("1", "2"):
        model = catalog.model(f"octave-{version}")
        if model is None:
            continue
        infos = {v.id: v for v in (*catalog.named_voices(model), *catalog.voices(model))}
        for name in catalog.voice_names(model):
            if name in out:
                out[name]["compatible_octave_models"].append(version)
                continue
            info = infos.get(name)
            tags = (
                {"language": info.language, "gender": info.gender, "engine": info.engine}
                if info
                else {
                    "language": "en",
                    "gender": OPENAI_GENDERS.get(name, "neutral"),
                    "engine": model.engine,
                }
            )
            out[name] = {
                "id": name,
                "name": name.capitalize() if info is None else info.name,
                "provider": "HUME_AI",
                "compatible_octave_models": [version],
                "tags": tags,
            }
    return list(out.values())


def _matches(voice: dict[str, Any], filters: list[str]) -> bool:
    for f in filters:
        tag, _, value = f.partition(":")
        have = str(voice.get("tags", {}).get(tag.lower(), "")).lower()
        if not value or not have.startswith(value.lower()):
            return False
    return True


@router.get("/v0/tts/voices", summary="List voices (Hume)")
async def list_voices(
    request: Request,
    provider: Provider,
    page_number: Annotated[int, Query(ge=0)] = 0,
    page_size: Annotated[int, Query(ge=1, le=100)] = 10,
    ascending_order: bool | None = None,
    filter_tag: Annotated[list[str] | None, Query()] = None,
) -> JSONResponse:
    if provider == "HUME_AI":
        voices = _builtin_voices(speech_service(request))
    else:
        rows, _ = await library_of(request).voices.list(reader_of(request), limit=100_000)
        voices = [
            {
                "id": r.id,
                "name": r.name,
                "provider": "CUSTOM_VOICE",
                "compatible_octave_models": ["1", "2"],
                "tags": {"language": r.language, "gender": r.gender, "engine": r.engine},
            }
            for r in rows
        ]
    voices = [v for v in voices if _matches(v, filter_tag or [])]
    if ascending_order is not None:
        voices.sort(key=lambda v: v["name"].lower(), reverse=not ascending_order)
    total_pages = math.ceil(len(voices) / page_size)
    page = voices[page_number * page_size : (page_number + 1) * page_size]
    return JSONResponse(
        {
            "page_number": page_number,
            "page_size": page_size,
            "total_pages": total_pages,
            "voices_page": page,
        }
    )


class PostedVoice(BaseModel):
    generation_id: str = Field(min_length=1, max_length=128)
    name: str = Field(min_length=1, max_length=200)


@router.post("/v0/tts/voices", summary="Save the voice of a generation (Hume)")
async def create_voice(body: PostedVoice, request: Request, speech: SpeechDep) -> JSONResponse:
    try:
        row = await speech.save_voice(
            owner_of(request),
            reader_of(request),
            body.name,
            VoiceSource(generation_id=body.generation_id),
        )
    except GenerationNotFound:
        raise ApiError(
            404,
            "generation_not_found",
            f"no generation {body.generation_id!r}; "
            "pass the generation_id of one of your generations",
        ) from None
    except (UnknownVoice, UnknownEngine) as exc:
        raise ApiError(400, "invalid_voice", str(exc)) from None
    except VoiceExists as exc:
        raise ApiError(409, "voice_exists", str(exc)) from None
    return JSONResponse(
        {
            "id": row.id,
            "name": row.name,
            "provider": "CUSTOM_VOICE",
            "compatible_octave_models": ["1", "2"],
        }
    )


@router.delete(
    "/v0/tts/voices",
    summary="Delete a saved voice by name (Hume)",
    status_code=204,
    responses={204: {"description": "deleted"}},
)
async def delete_voice(request: Request, name: Annotated[str, Query(min_length=1)]) -> Response:
    if not await library_of(request).voices.delete(reader_of(request), name):
        raise ApiError(400, "voice_not_found", f"you have no saved voice named {name!r}")
    return Response(status_code=204)
