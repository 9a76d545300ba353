"""orate's own routes over the library: history, voices, usage and the cache.

These are not any vendor's dialect; they use the OpenAI error envelope like
the rest of ``/v1``. Every query is scoped to the caller (``owner_of``).
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from orate.api.http.deps import SpeechDep, library_of, speech_service
from orate.api.http.errors import ApiError, clip, documented
from orate.api.http.owners import is_admin, owner_of, reader_of
from orate.catalog.openai import OPENAI_VOICES
from orate.engines.base import UnknownVoice, VoiceParams
from orate.library.tables import Generation
from orate.library.voices import VoiceExists, voice_json
from orate.speech.service import GenerationNotFound, UnknownEngine, VoiceSource

router = APIRouter(tags=["library"], responses=documented(400, 404, 409))
MAX_OFFSET = 1 << 31  # paging deeper than this is a mistake (and overflows 64-bit SQL)
FLUSH_WAIT = 2.0  # seconds a listing waits for the caller's records to be written (then lists
#                  them from memory)


def engines_of(request: Request) -> set[str]:
    return {m.engine for m in speech_service(request).catalog.models.values()}


def require_admin(request: Request) -> None:
    """Server-wide routes (cache, metrics) are for admin keys; to anyone else they do not
    exist (404, the same answer for every method, so nothing tells them apart)."""
    if not is_admin(request):
        raise ApiError(404, "not_found", f"no route {request.method} {request.url.path}")


def generation_json(row: Generation, request: Request) -> dict[str, Any]:
    # a record whose audio could not be stored keeps its URL: it answers 410 with the reason
    audio_url = (
        str(request.url_for("get_file", gen_id=row.id)) if row.blob_key or row.audio_error else None
    )
    return {
        "id": row.id,
        "object": "generation",
        "created_at": row.created_at.isoformat(),
        "dialect": row.dialect,
        "model": row.model,
        "engine": row.engine,
        "voice": row.voice,
        "voice_params": row.voice_params,
        "text": row.text,
        "characters": row.characters,
        "speed": row.speed,
        "format": row.format,
        "content_type": row.content_type,
        "sample_rate": row.sample_rate,
        "duration": round(row.duration, 4),
        "bytes": row.bytes,
        "cost": row.cost,
        "currency": row.currency,
        "cache_hit": row.cache_hit,
        "audio_url": audio_url,
        "audio_error": row.audio_error,
        **({"lines": row.meta["lines"]} if row.meta and row.meta.get("lines") else {}),
    }


@router.get("/v1/history", summary="Your generations, newest first")
async def list_history(
    request: Request,
    limit: Annotated[int, Query(ge=1, le=200)] = 20,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
    q: Annotated[str | None, Query(max_length=200, description="part of the text")] = None,
    model: str | None = None,
    voice: Annotated[str | None, Query(max_length=200)] = None,
) -> JSONResponse:
    generations = library_of(request).generations
    # read-your-writes: a response that has ended is in the writer's queue; wait (briefly)
    # for this caller's records to be written so the list shows them
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(FLUSH_WAIT):
            await generations.flushed(reader_of(request))
    rows, total = await generations.list(
        reader_of(request), limit, offset=offset, text=q, model=model, voice=voice
    )
    return JSONResponse(
        {
            "object": "list",
            "data": [generation_json(r, request) for r in rows],
            "total": total,
            "limit": limit,
            "offset": offset,
            "has_more": offset + len(rows) < total,
        }
    )


@router.get("/v1/history/{gen_id}", summary="One generation")
async def get_history(gen_id: str, request: Request) -> JSONResponse:
    row = await library_of(request).generations.get(gen_id, reader_of(request))
    if row is None:
        raise ApiError(404, "not_found", f"no generation {gen_id!r}", "id")
    return JSONResponse(generation_json(row, request))


@router.get(
    "/v1/history/{gen_id}/captions",
    summary="SRT or WebVTT captions of a generation",
    responses={200: {"content": {"text/vtt": {}, "application/x-subrip": {}}}},
)
async def get_captions(
    gen_id: str, request: Request, format: Literal["srt", "vtt"] = "vtt"
) -> Response:
    from orate.speech.captions import CONTENT_TYPES, captions, recorded_words

    row = await library_of(request).generations.get(gen_id, reader_of(request))
    if row is None:
        raise ApiError(404, "not_found", f"no generation {gen_id!r}", "id")
    words = recorded_words(row.meta)
    if not words:
        raise ApiError(
            409,
            "no_timestamps",
            f"generation {gen_id!r} was made without word "
            'timestamps; ask for captions (OpenAI: "captions": "vtt") or '
            "word timestamps when generating",
            "id",
        )
    return Response(captions(words, format, row.text), media_type=CONTENT_TYPES[format])


@router.delete("/v1/history/{gen_id}", summary="Delete a generation and its audio")
async def delete_history(gen_id: str, request: Request) -> JSONResponse:
    if not await library_of(request).generations.delete(gen_id, reader_of(request)):
        raise ApiError(404, "not_found", f"no generation {gen_id!r}", "id")
    return JSONResponse({"id": gen_id, "object": "generation", "deleted": True})


class VoiceSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    engine: str = "espeak"
    voice: str = Field("en-us", description="the engine's base voice, e.g. en-gb")
    variant: str | None = None
    pitch: int | None = Field(None, ge=0, le=100)
    pitch_range: int | None = Field(None, ge=0, le=100)
    rate: float = Field(1.0, ge=0.25, le=4.0)
    volume: int | None = Field(None, ge=0, le=200)


class CreateVoice(BaseModel):
    """Exactly one source: a generation, explicit parameters, or a description."""

    name: str = Field(min_length=1, max_length=200)
    generation_id: str | None = None
    params: VoiceSettings | None = None
    description: str | None = Field(None, max_length=1000)
    seed: int = 0


@router.post(
    "/v1/voices",
    summary="Save a voice: from a generation, parameters or a description",
    status_code=201,
)
async def create_voice(body: CreateVoice, request: Request, speech: SpeechDep) -> JSONResponse:
    sources = [s for s in (body.generation_id, body.params, body.description) if s is not None]
    if len(sources) != 1:
        raise ApiError(
            400,
            "invalid_value",
            "give exactly one of generation_id, params or description",
            "generation_id",
        )
    params = VoiceParams(**body.params.model_dump()) if body.params is not None else None
    source = VoiceSource(body.generation_id, params, body.description, body.seed)
    try:
        row = await speech.save_voice(owner_of(request), reader_of(request), body.name, source)
    except GenerationNotFound:
        raise ApiError(
            404, "not_found", f"no generation {body.generation_id!r}", "generation_id"
        ) from None
    except UnknownEngine as exc:
        raise ApiError(
            400,
            "invalid_engine",
            f"no engine {clip(str(exc.args[0]))!r}; engines: "
            f"{', '.join(sorted(engines_of(request)))}",
            "params.engine",
        ) from None
    except UnknownVoice as exc:
        raise ApiError(400, "invalid_voice", str(exc), "params") from None
    except VoiceExists as exc:
        raise ApiError(409, "voice_exists", str(exc), "name") from None
    return JSONResponse(voice_json(row), status_code=201)


def _builtin_json(info: Any) -> dict[str, Any]:
    return {
        "id": info.id,
        "voice_id": info.id,
        "name": info.name,
        "engine": info.engine,
        "language": info.language,
        "gender": info.gender,
        "provider": "builtin",
        "description": info.description,
    }


@router.get("/v1/voices", summary="Built-in and saved voices (paginated, filterable)")
async def list_voices(
    request: Request,
    provider: Literal["builtin", "custom"] | None = None,
    engine: str | None = None,
    language: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> JSONResponse:
    lib = library_of(request)
    items: list[dict[str, Any]] = []
    custom_total = 0
    if provider in (None, "custom"):
        rows, custom_total = await lib.voices.list(
            reader_of(request), engine=engine, language=language, limit=offset + limit
        )
        items += [{**voice_json(r), "provider": "custom"} for r in rows]
    builtin: list[dict[str, Any]] = []
    if provider in (None, "builtin"):
        service = speech_service(request)
        engines = {m.engine for m in service.catalog.models.values()}
        for name in sorted(engines):
            if engine and name != engine:
                continue
            # OpenAI's names first, flagged, each with the language and gender it maps to
            builtin += [
                {**_builtin_json(v), "alias": v.id in OPENAI_VOICES}
                for v in service.builtin_voices(name)
                if not language or any(lang.startswith(language.lower()) for lang in v.languages)
            ]
    items += builtin
    total = custom_total + len(builtin)
    page = items[offset : offset + limit]
    return JSONResponse(
        {
            "object": "list",
            "voices": page,
            "total": total,
            "limit": limit,
            "offset": offset,
            "has_more": offset + len(page) < total,
        }
    )


@router.get("/v1/voices/{ref}", summary="A voice by id or name")
async def get_voice(ref: str, request: Request) -> JSONResponse:
    row = await library_of(request).voices.find(reader_of(request), ref)
    if row is not None:
        return JSONResponse({**voice_json(row), "provider": "custom"})
    for info in speech_service(request).builtin_voices("espeak"):
        if info.id == ref.lower():
            return JSONResponse(_builtin_json(info))
    raise ApiError(404, "not_found", f"no voice {ref!r}", "voice")


class RenameVoice(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)


@router.patch("/v1/voices/{ref}", summary="Rename a saved voice")
async def rename_voice(ref: str, body: RenameVoice, request: Request) -> JSONResponse:
    try:
        row = await library_of(request).voices.rename(reader_of(request), ref, body.name)
    except VoiceExists as exc:
        raise ApiError(409, "voice_exists", str(exc), "name") from None
    except ValueError as exc:
        raise ApiError(400, "invalid_value", str(exc), "name") from None
    if row is None:
        raise ApiError(404, "not_found", f"no saved voice {ref!r}", "voice")
    return JSONResponse({**voice_json(row), "provider": "custom"})


@router.delete("/v1/voices/{ref}", summary="Delete a saved voice")
async def delete_voice(ref: str, request: Request) -> JSONResponse:
    if not await library_of(request).voices.delete(reader_of(request), ref):
        raise ApiError(404, "not_found", f"no saved voice {ref!r}", "voice")
    return JSONResponse({"id": ref, "object": "voice", "deleted": True})


def _day(value: str | None, name: str) -> datetime | None:
    if not value:
        return None
    try:
        parsed = (
            datetime.fromisoformat(value)
            if "T" in value
            else datetime.combine(date.fromisoformat(value), datetime.min.time())
        )
    except ValueError:
        raise ApiError(
            400,
            "invalid_value",
            f"{name} must be a date (2026-11-21) or an ISO timestamp, got {value!r}",
            name,
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@router.get("/v1/usage", summary="Requests, characters, audio seconds and cost")
async def usage(
    request: Request,
    group_by: Literal["day", "model"] = "day",
    start: Annotated[str | None, Query(alias="from")] = None,
    end: Annotated[str | None, Query(alias="to")] = None,
) -> JSONResponse:
    lib = library_of(request)
    groups = await lib.generations.usage(
        reader_of(request), _day(start, "from"), _day(end, "to"), group_by
    )
    totals = {
        "requests": sum(g["requests"] for g in groups),
        "characters": sum(g["characters"] for g in groups),
        "audio_seconds": round(sum(g["audio_seconds"] for g in groups), 3),
        "cost": round(sum(g["cost"] for g in groups), 8),
        "currency": lib.settings.currency,
    }
    return JSONResponse({"object": "usage", "group_by": group_by, "data": groups, "total": totals})


@router.get("/v1/cache", summary="Pre-render cache statistics (admin keys only)")
async def cache_stats(request: Request) -> JSONResponse:
    require_admin(request)
    return JSONResponse(await library_of(request).cache.stats())


@router.delete("/v1/cache", summary="Empty the pre-render cache (admin keys only)")
async def cache_clear(request: Request) -> Response:
    require_admin(request)
    removed = await library_of(request).cache.clear()
    return JSONResponse({"deleted": removed})
