"""The ElevenLabs dialect (docs/wire.md, "ElevenLabs"), for the official ``elevenlabs`` SDK.

Translation only: the body and ``output_format`` become one ``SpeechRequest``;
service events come back as audio bytes, JSON with per-character alignment, or
NDJSON lines. Every route lives under ``/elevenlabs``; ``dispatch.py`` says which
other paths are sent there.

Errors are ElevenLabs' (``errors.py``).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import json
import zipfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request, WebSocket
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import HTTPConnection

from orate.api.elevenlabs.dispatch import PREFIX
from orate.api.http.deps import SpeechDep, library_of, speech_service
from orate.api.http.errors import ApiError, audio_response, documented
from orate.api.http.owners import context, owner_of, reader_of
from orate.api.http.speech import DictionaryLocator, locators, warning_headers
from orate.api.http.streaming import audio_bytes, primed
from orate.audio.output_formats import (
    DEFAULT_OUTPUT_FORMAT,
    OutputFormat,
    output_format,
    valid_names,
)
from orate.catalog.elevenlabs import ELEVENLABS_VOICE_IDS, ELEVENLABS_VOICES, MODEL_ALIASES
from orate.catalog.models import Model
from orate.engines.base import UnknownVoice, VoiceParams, VoiceUnavailable
from orate.library.tables import Generation
from orate.runtime.timestamps import Timestamp
from orate.speech.alignment import CharAlignment, char_alignment
from orate.speech.pipeline import Speech, SpeechEvent, SpeechRequest
from orate.speech.service import SpeechService
from orate.speech.style import style_voice
from orate.speech.types import Utterance

DEFAULT_MODEL = "eleven_multilingual_v2"
MAX_TEXT = {
    "eleven_multilingual_v2": 10_000,
    "eleven_v3": 5_000,
    "eleven_multilingual_v1": 10_000,
    "eleven_monolingual_v1": 10_000,
}  # others (flash, turbo): 40,000
PREVIEW_TEXT = "Hello! This is a short sample of my voice."

router = APIRouter(
    prefix=PREFIX, tags=["elevenlabs"], responses=documented(400, 401, 404, 422, 429)
)

# -- request bodies -----------------------------------------------------------------------


class VoiceSettings(BaseModel):
    """Per-request voice settings; ranges as ElevenLabs documents them (422 outside)."""

    model_config = ConfigDict(extra="allow")

    stability: float | None = Field(None, ge=0.0, le=1.0)
    similarity_boost: float | None = Field(None, ge=0.0, le=1.0)
    style: float | None = Field(None, ge=0.0, le=1.0)
    use_speaker_boost: bool | None = None
    speed: float | None = Field(None, ge=0.7, le=1.2)


class TtsBody(BaseModel):
    """The body of every ``/v1/text-to-speech/{voice_id}`` route; ``null`` means absent."""

    model_config = ConfigDict(extra="allow")

    text: str
    model_id: str | None = None
    language_code: str | None = Field(None, pattern=r"^[A-Za-z]{2,3}([-_][A-Za-z0-9]+)?$")
    voice_settings: VoiceSettings | None = None
    pronunciation_dictionary_locators: list[DictionaryLocator] | None = Field(None, max_length=3)
    seed: int | None = Field(None, ge=0, le=4_294_967_295)
    previous_text: str | None = None
    next_text: str | None = None
    previous_request_ids: list[str] | None = Field(None, max_length=3)
    next_request_ids: list[str] | None = Field(None, max_length=3)
    apply_text_normalization: Literal["auto", "on", "off"] | None = None
    apply_language_text_normalization: bool | None = None


def pick_format(name: str | None, *, stream: bool) -> OutputFormat:
    """An ``output_format`` this route can serve, or a 400 naming the valid values."""
    name = name or DEFAULT_OUTPUT_FORMAT
    row = output_format(name, stream=stream)
    if row is None:
        hint = " (wav_* is for non-stream routes only)" if name.startswith("wav_") else ""
        valid = ", ".join(valid_names(stream=stream))
        raise ApiError(
            400,
            "invalid_output_format",
            f"output_format {name!r} is not supported here{hint}; valid values: {valid}",
            "output_format",
        )
    return row


async def build_request(
    conn: HTTPConnection,
    voice_id: str,
    text: str,
    model_id: str | None,
    fmt: OutputFormat,
    settings: VoiceSettings | None = None,
    *,
    seed: int | None = None,
    language: str | None = None,
    previous: list[str] | None = None,
    timestamps: bool = False,
    whole_file: bool = False,
    normalize: bool = True,
    lexicons: tuple[tuple[str, str | None], ...] = (),
    inline_tags: bool | None = None,
) -> SpeechRequest:
    """One ``SpeechRequest`` from ElevenLabs' terms (shared with the WebSocket).

    ``inline_tags``: ``<break time="1.5s"/>`` and ``<phoneme>`` in the text are read as a
    pause and as phonemes. ``None`` follows ElevenLabs: on for the HTTP routes, off on the
    WebSocket unless it passes its ``enable_ssml_parsing``. ``lexicons``: the request's
    ``pronunciation_dictionary_locators`` through ``locators`` (both routes)."""
    if inline_tags is None:
        inline_tags = not isinstance(conn, WebSocket)
    service = speech_service(conn)
    model_name = model_id or DEFAULT_MODEL
    model = service.catalog.model(model_name)
    if model is None:
        raise ApiError(
            400,
            "model_not_found",
            f"model_id {model_name!r} does not exist; "
            f"models: {', '.join([*MODEL_ALIASES, *service.catalog.models])}",
            "model_id",
        )
    limit = min(MAX_TEXT.get(model_name, 40_000), service.settings.max_request_chars)
    if len(text) > limit:
        raise ApiError(
            400,
            "text_too_long",
            f"text is {len(text)} characters; the limit for {model_name} on this server is {limit}",
            "text",
        )
    voice = await resolve(conn, voice_id, model)
    carried = await _previous_voice(conn, previous, voice) if previous else None
    if carried is not None and seed is None and settings is None:
        voice = carried  # continue exactly as the previous request spoke (Hume-like context)
    if language:
        voice = _with_language(service, model, voice, language)
    if settings is not None:
        voice = style_voice(voice, settings.stability, settings.style)
    speed = settings.speed if settings is not None and settings.speed is not None else 1.0
    return SpeechRequest(
        model=model_name,
        utterances=[Utterance(text, voice, speed)],
        format=fmt.format,
        sample_rate=fmt.sample_rate,
        bitrate=fmt.bitrate,
        timestamps=frozenset({"word"}) if timestamps else frozenset(),
        seed=seed or 0,
        max_chars=limit,
        whole_file=whole_file,
        normalize=normalize,
        lexicons=lexicons,
        inline_tags=inline_tags,
    )


async def resolve(conn: HTTPConnection, voice_id: str, model: Model) -> VoiceParams:
    """A voice by ElevenLabs id or name, engine voice or saved voice; 404 when unknown."""
    try:
        params, _ = await speech_service(conn).resolve_voice(model, voice_id, owner_of(conn))
    except VoiceUnavailable as exc:  # it exists, but this server cannot speak with it now
        raise ApiError(503, VoiceUnavailable.code, str(exc), "voice_id") from None
    except (UnknownVoice, ValueError):
        raise ApiError(
            404, "voice_not_found", f"A voice with voice_id {voice_id!r} was not found.", "voice_id"
        ) from None
    return params


async def _previous_voice(
    conn: HTTPConnection, ids: list[str], voice: VoiceParams
) -> VoiceParams | None:
    """The voice the newest of ``previous_request_ids`` spoke with, if it is this voice."""
    lib = library_of(conn)
    for rid in reversed(ids):
        gen = await lib.generations.get(rid, reader_of(conn))
        if gen is not None and gen.voice_params:
            last = VoiceParams(**gen.voice_params[-1])
            if (last.engine, last.voice, last.variant) == (
                voice.engine,
                voice.voice,
                voice.variant,
            ):
                return last
    return None


def _with_language(
    service: SpeechService, model: Model, voice: VoiceParams, code: str
) -> VoiceParams:
    """Speak ``language_code`` with the voice's variant, when the engine has that language."""
    lang = code.lower().replace("_", "-")
    if voice.voice.lower().startswith(lang.split("-")[0]):
        return voice
    base = lang.split("-")[0]
    ranked = sorted(
        service.catalog.voices(model),
        key=lambda v: (v.id != lang, v.id != f"{base}-{base}", v.id != base, v.id),
    )
    for info in ranked:
        if any(x.lower().startswith(lang) for x in (info.id, info.language, *info.languages)):
            return replace(voice, voice=info.id)
    raise ApiError(
        400,
        "unsupported_language",
        f"language_code {code!r} is not one this server's {model.id} voices speak",
        "language_code",
    )


def response_headers(speech: Speech) -> dict[str, str]:
    """ElevenLabs' headers: ``request-id`` is also the ``history-item-id`` (one generation)."""
    plan = speech.plan
    headers = {
        "request-id": speech.id,
        "character-cost": str(plan.characters),
        "X-Orate-Generation-Id": speech.id,
        **warning_headers(plan.warnings),
    }
    if plan.context.record:
        headers["history-item-id"] = speech.id
    return headers


async def _speak(
    request: Request,
    voice_id: str,
    body: TtsBody,
    fmt: OutputFormat,
    enable_logging: bool,
    *,
    timestamps: bool = False,
    whole_file: bool = False,
) -> Speech:
    service = speech_service(request)
    req = await build_request(
        request,
        voice_id,
        body.text,
        body.model_id,
        fmt,
        body.voice_settings,
        seed=body.seed,
        language=body.language_code,
        previous=body.previous_request_ids,
        timestamps=timestamps,
        whole_file=whole_file,
        normalize=body.apply_text_normalization != "off",
        lexicons=locators(body.pronunciation_dictionary_locators),
    )
    # enable_logging=false: zero retention, no history record and no stored audio
    ctx = context(request, "elevenlabs", store=enable_logging, record=enable_logging)
    plan = await service.plan(req, ctx)
    return await service.speak(plan)


VoiceId = Annotated[str, Path(min_length=1, max_length=256)]
Latency = Annotated[int | None, Query(ge=0, le=4, description="deprecated; accepted")]
OutputQuery = Annotated[str | None, Query(description="codec_samplerate_kbps, e.g. mp3_44100_128")]


@router.post(
    "/v1/text-to-speech/{voice_id}",
    summary="Text to speech (ElevenLabs)",
    responses=audio_response("audio/basic"),
)
async def convert(
    voice_id: VoiceId,
    body: TtsBody,
    request: Request,
    output_format: OutputQuery = None,
    enable_logging: bool = True,
    optimize_streaming_latency: Latency = None,
) -> Response:
    fmt = pick_format(output_format, stream=False)
    speech = await _speak(
        request, voice_id, body, fmt, enable_logging, whole_file=fmt.format == "wav"
    )
    events = await primed(speech.events)
    return StreamingResponse(
        audio_bytes(events),
        media_type=speech.plan.format.content_type,
        headers=response_headers(speech),
    )


@router.post(
    "/v1/text-to-speech/{voice_id}/stream",
    summary="Streamed text to speech (ElevenLabs)",
    responses=audio_response("audio/basic"),
)
async def stream(
    voice_id: VoiceId,
    body: TtsBody,
    request: Request,
    output_format: OutputQuery = None,
    enable_logging: bool = True,
    optimize_streaming_latency: Latency = None,
) -> Response:
    fmt = pick_format(output_format, stream=True)
    speech = await _speak(request, voice_id, body, fmt, enable_logging)
    events = await primed(speech.events)
    return StreamingResponse(
        audio_bytes(events),
        media_type=speech.plan.format.content_type,
        headers=response_headers(speech),
    )


# -- alignment ----------------------------------------------------------------------------


@dataclass
class AlignedChunk:
    """Audio with the alignment of the characters it speaks (times absolute, in ms)."""

    audio: bytes
    alignment: CharAlignment | None
    lo: int = 0  # index in the text of the alignment's first character
    end_ms: float = 0.0  # where this chunk's audio ends, absolute


async def aligned_chunks(
    events: AsyncIterator[SpeechEvent], text: str, offset_ms: float = 0.0, *, eager: bool = False
) -> AsyncIterator[AlignedChunk]:
    """One chunk per sentence: its audio and its characters (spaces after it included);
    the last chunk takes the encoder's tail and any characters after the last sentence.

    ``eager`` sends audio the moment it is made (alignment ``None``) and the sentence's
    alignment with whatever audio is left at its end: first audio does not wait for
    the end of the first sentence (the WebSocket, where latency is the point)."""
    audio: list[bytes] = []  # joined once per chunk: no regrowing of a buffer
    stamps: list[Timestamp] = []
    cursor, clock = 0, 0.0
    duration_ms = 0.0
    async for event in events:
        if event.kind == "audio":
            if eager and event.audio:
                yield AlignedChunk(event.audio, None, cursor, clock + offset_ms)
                continue
            audio.append(event.audio)
        elif event.kind == "timestamps":
            stamps += event.timestamps
        elif event.kind == "sentence":
            hi = max(int(event.info.get("char_end", cursor)), cursor)
            while hi < len(text) and text[hi].isspace():  # spaces after it belong to it
                hi += 1
            end_ms = float(event.info.get("end_ms", clock))
            align = char_alignment(text, cursor, hi, stamps, clock, end_ms)
            yield AlignedChunk(
                b"".join(audio), _shift(align, offset_ms), cursor, max(end_ms, clock) + offset_ms
            )
            audio.clear()
            stamps.clear()
            cursor, clock = hi, max(end_ms, clock)
        elif event.kind == "done":
            duration_ms = float(event.info.get("duration", 0.0)) * 1000
    tail = (
        char_alignment(text, cursor, len(text), (), clock, max(clock, duration_ms))
        if cursor < len(text)
        else None
    )
    if any(audio) or tail is not None:
        yield AlignedChunk(
            b"".join(audio),
            _shift(tail, offset_ms) if tail else None,
            cursor,
            max(clock, duration_ms) + offset_ms,
        )


def _shift(align: CharAlignment, ms: float) -> CharAlignment:
    if not ms:
        return align
    return CharAlignment(
        align.characters, [s + ms for s in align.starts], [e + ms for e in align.ends]
    )


def alignment_seconds(align: CharAlignment | None) -> dict[str, Any] | None:
    """The HTTP shape: characters with start and end times in seconds."""
    if align is None:
        return None
    return {
        "characters": align.characters,
        "character_start_times_seconds": [round(s / 1000, 4) for s in align.starts],
        "character_end_times_seconds": [round(e / 1000, 4) for e in align.ends],
    }


def _merge(parts: list[CharAlignment | None]) -> CharAlignment:
    out = CharAlignment()
    for p in parts:
        if p is not None:
            out.characters += p.characters
            out.starts += p.starts
            out.ends += p.ends
    return out


@router.post(
    "/v1/text-to-speech/{voice_id}/with-timestamps",
    summary="Text to speech with per-character timing (ElevenLabs)",
)
async def convert_with_timestamps(
    voice_id: VoiceId,
    body: TtsBody,
    request: Request,
    output_format: OutputQuery = None,
    enable_logging: bool = True,
    optimize_streaming_latency: Latency = None,
) -> Response:
    fmt = pick_format(output_format, stream=False)
    speech = await _speak(
        request,
        voice_id,
        body,
        fmt,
        enable_logging,
        timestamps=True,
        whole_file=fmt.format == "wav",
    )
    audio: list[bytes] = []
    parts: list[CharAlignment | None] = []
    async for chunk in aligned_chunks(speech.events, body.text):
        audio.append(chunk.audio)
        parts.append(chunk.alignment)
    align = alignment_seconds(_merge(parts))
    normalized = None
    if align is not None:  # the text orate spoke: one for one with the input for now
        normalized = {**align, "characters": list(speech.plan.job.text)}
    # assembled by hand: json.dumps would scan megabytes of base64 for characters to escape
    payload = b"".join(
        (
            b'{"audio_base64":"',
            base64.b64encode(b"".join(audio)),
            b'","alignment":',
            json.dumps(align, separators=(",", ":")).encode(),
            b',"normalized_alignment":',
            json.dumps(normalized, separators=(",", ":")).encode(),
            b"}",
        )
    )
    return Response(payload, media_type="application/json", headers=response_headers(speech))


async def _ndjson(speech: Speech, text: str) -> AsyncIterator[bytes]:
    spoken = speech.plan.job.text
    async for chunk in aligned_chunks(speech.events, text):
        align = alignment_seconds(chunk.alignment)
        normalized = None
        if align is not None:  # the text orate spoke: one for one with the input for now
            n = len(align["characters"])
            normalized = {**align, "characters": list(spoken[chunk.lo : chunk.lo + n])}
        yield b"".join(
            (
                b'{"audio_base64":"',
                base64.b64encode(chunk.audio),
                b'","alignment":',
                json.dumps(align, separators=(",", ":")).encode(),
                b',"normalized_alignment":',
                json.dumps(normalized, separators=(",", ":")).encode(),
                b"}\n",
            )
        )


@router.post(
    "/v1/text-to-speech/{voice_id}/stream/with-timestamps",
    summary="Streamed text to speech with per-character timing, NDJSON (ElevenLabs)",
)
async def stream_with_timestamps(
    voice_id: VoiceId,
    body: TtsBody,
    request: Request,
    output_format: OutputQuery = None,
    enable_logging: bool = True,
    optimize_streaming_latency: Latency = None,
) -> StreamingResponse:
    fmt = pick_format(output_format, stream=True)
    speech = await _speak(request, voice_id, body, fmt, enable_logging, timestamps=True)
    speech.events = await primed(speech.events)
    return StreamingResponse(
        _ndjson(speech, body.text),
        media_type="application/x-ndjson",
        headers=response_headers(speech),
    )


# -- voices -------------------------------------------------------------------------------

_NAME_OF_ID = {name: vid for vid, name in ELEVENLABS_VOICE_IDS.items()}
DEFAULT_SETTINGS = {
    "stability": 0.5,
    "similarity_boost": 0.75,
    "style": 0.0,
    "use_speaker_boost": True,
    "speed": 1.0,
}


def _labels(params: VoiceParams) -> dict[str, str]:
    accent = {"en-us": "american", "en-gb": "british"}.get(params.voice, params.voice)
    gender = "female" if (params.variant or "").startswith("f") else "male"
    return {
        "accent": accent,
        "gender": gender,
        "age": "middle_aged",
        "language": params.voice.split("-")[0],
        "use_case": "general",
    }


def premade_json(conn: HTTPConnection, name: str) -> dict[str, Any]:
    params = ELEVENLABS_VOICES[name]
    vid = _NAME_OF_ID[name]
    return {
        "voice_id": vid,
        "name": name.capitalize(),
        "category": "premade",
        "labels": _labels(params),
        "description": f"orate's {name.capitalize()}: espeak-ng {params.label()}",
        "preview_url": str(conn.url_for("voice_preview", voice_id=vid)),
        "settings": DEFAULT_SETTINGS,
        "samples": None,
        "available_for_tiers": [],
        "high_quality_base_model_ids": list(MODEL_ALIASES),
    }


def saved_json(conn: HTTPConnection, row: Any) -> dict[str, Any]:
    params = VoiceParams(**row.params)
    return {
        "voice_id": row.id,
        "name": row.name,
        "category": "generated",
        "labels": {**_labels(params), "gender": row.gender or "neutral"},
        "description": row.description or None,
        "preview_url": str(conn.url_for("voice_preview", voice_id=row.id)),
        "settings": DEFAULT_SETTINGS,
        "samples": None,
        "created_at_unix": int(row.created_at.timestamp()),
    }


async def _all_voices(request: Request) -> list[dict[str, Any]]:
    rows, _ = await library_of(request).voices.list(reader_of(request), limit=1000)
    return [
        *[premade_json(request, n) for n in ELEVENLABS_VOICES],
        *[saved_json(request, r) for r in rows],
    ]


@router.get("/v1/voices", summary="Voices (ElevenLabs)")
async def get_voices(request: Request, show_legacy: bool | None = None) -> JSONResponse:
    return JSONResponse({"voices": await _all_voices(request)})


@router.get("/v2/voices", summary="Search voices, paged (ElevenLabs)")
async def search_voices(
    request: Request,
    page_size: Annotated[int, Query(ge=1, le=100)] = 10,
    next_page_token: str | None = None,
    search: str | None = None,
    voice_type: str | None = None,
    category: str | None = None,
    include_total_count: bool = True,
) -> JSONResponse:
    voices = await _all_voices(request)
    if search:
        needle = search.lower()
        voices = [
            v
            for v in voices
            if needle in v["name"].lower()
            or needle in (v.get("description") or "").lower()
            or any(needle in str(x).lower() for x in v["labels"].values())
        ]
    kind = {
        "default": "premade",
        "saved": "generated",
        "personal": "generated",
        "generated": "generated",
        "premade": "premade",
    }.get(voice_type or category or "")
    if kind:
        voices = [v for v in voices if v["category"] == kind]
    try:
        start = int(next_page_token) if next_page_token else 0
    except ValueError:
        raise ApiError(
            400,
            "invalid_page_token",
            "next_page_token is not one this server gave out",
            "next_page_token",
        ) from None
    page = voices[start : start + page_size]
    more = start + page_size < len(voices)
    return JSONResponse(
        {
            "voices": page,
            "has_more": more,
            "total_count": len(voices),
            "next_page_token": str(start + page_size) if more else None,
        }
    )


@router.get("/v1/voices/settings/default", summary="Default voice settings (ElevenLabs)")
async def default_settings() -> JSONResponse:
    return JSONResponse(DEFAULT_SETTINGS)


async def _voice_json(request: Request, voice_id: str) -> dict[str, Any]:
    name = ELEVENLABS_VOICE_IDS.get(voice_id, voice_id.lower())
    if name in ELEVENLABS_VOICES:
        return premade_json(request, name)
    row = await library_of(request).voices.find(reader_of(request), voice_id)
    if row is None:
        raise ApiError(
            404, "voice_not_found", f"A voice with voice_id {voice_id!r} was not found.", "voice_id"
        )
    return saved_json(request, row)


@router.get("/v1/voices/{voice_id}", summary="One voice (ElevenLabs)")
async def get_voice(
    voice_id: VoiceId, request: Request, with_settings: bool | None = None
) -> JSONResponse:
    return JSONResponse(await _voice_json(request, voice_id))


@router.get("/v1/voices/{voice_id}/settings", summary="A voice's settings (ElevenLabs)")
async def voice_settings(voice_id: VoiceId, request: Request) -> JSONResponse:
    return JSONResponse((await _voice_json(request, voice_id))["settings"])


@router.get(
    "/v1/voices/{voice_id}/preview",
    summary="A short sample of a voice (mp3)",
    responses=audio_response(),
)
async def voice_preview(voice_id: VoiceId, request: Request, service: SpeechDep) -> Response:
    await _voice_json(request, voice_id)  # 404 for unknown or another owner's voice
    fmt = pick_format("mp3_22050_32", stream=True)
    req = await build_request(request, voice_id, PREVIEW_TEXT, None, fmt)
    plan = await service.plan(req, context(request, "elevenlabs", record=False))
    speech = await service.speak(plan)  # cached after the first time
    audio = b"".join([chunk async for chunk in audio_bytes(speech.events)])
    return Response(
        audio, media_type="audio/mpeg", headers={"Cache-Control": "public, max-age=86400"}
    )


# -- models and user ----------------------------------------------------------------------

_MODEL_NAMES = {
    "eleven_multilingual_v2": "Eleven Multilingual v2",
    "eleven_turbo_v2_5": "Eleven Turbo v2.5",
    "eleven_flash_v2_5": "Eleven Flash v2.5",
    "eleven_v3": "Eleven v3",
    "eleven_turbo_v2": "Eleven Turbo v2",
    "eleven_flash_v2": "Eleven Flash v2",
    "eleven_monolingual_v1": "Eleven English v1",
    "eleven_multilingual_v1": "Eleven Multilingual v1",
}


@router.get("/v1/models", summary="Models, as a bare array (ElevenLabs)")
async def list_models(request: Request, service: SpeechDep) -> JSONResponse:
    out = []
    for alias, target in service.catalog.aliases.items():
        model = service.catalog.model(target)
        if model is None or not alias.startswith("eleven_"):
            continue
        facts = service.catalog.describe(model)
        languages = [{"language_id": lang, "name": lang} for lang in facts["languages"]]
        out.append(
            {
                "model_id": alias,
                "name": _MODEL_NAMES.get(alias, alias),
                "description": f"served by orate's {model.id} ({facts['engine']})",
                "can_do_text_to_speech": True,
                "can_do_voice_conversion": False,
                "can_use_style": True,
                "can_use_speaker_boost": True,
                "serves_pro_voices": False,
                "token_cost_factor": 1.0,
                "max_characters_request_free_user": MAX_TEXT.get(alias, 40_000),
                "max_characters_request_subscribed_user": MAX_TEXT.get(alias, 40_000),
                "languages": languages,
            }
        )
    return JSONResponse(out)


async def _subscription(request: Request) -> dict[str, Any]:
    now = datetime.now(UTC)
    month = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    store = library_of(request).generations
    await store.flushed()  # count what was just spoken, not only what is written
    groups = await store.usage(reader_of(request), month, None, "day")
    used = sum(g["characters"] for g in groups)
    key = getattr(request.state, "key", None)
    limit = key.quota_chars if key is not None and key.quota_chars is not None else None
    if key is not None and key.quota_chars is not None:
        used = max(used, key.used_chars)
    reset = month.replace(year=month.year + month.month // 12, month=month.month % 12 + 1)
    return {
        "tier": "orate",
        "character_count": used,
        "character_limit": limit if limit is not None else 1_000_000_000,
        "can_extend_character_limit": False,
        "allowed_to_extend_character_limit": False,
        "next_character_count_reset_unix": int(reset.timestamp()),
        "voice_limit": 1000,
        "professional_voice_limit": 0,
        "can_use_instant_voice_cloning": False,
        "can_use_professional_voice_cloning": False,
        "currency": "usd",
        "status": "active",
    }


@router.get("/v1/user/subscription", summary="Character usage this month (ElevenLabs)")
async def user_subscription(request: Request) -> JSONResponse:
    return JSONResponse(await _subscription(request))


@router.get("/v1/user", summary="The caller (ElevenLabs)")
async def user(request: Request) -> JSONResponse:
    return JSONResponse(
        {
            "user_id": owner_of(request),
            "subscription": await _subscription(request),
            "is_new_user": False,
            "xi_api_key": None,
            "can_use_delayed_payment_methods": False,
            "is_onboarding_completed": True,
            "first_name": None,
        }
    )


# -- history ------------------------------------------------------------------------------


@router.delete("/v1/voices/{voice_id}", summary="Delete a saved voice (ElevenLabs)")
async def delete_voice(voice_id: VoiceId, request: Request) -> JSONResponse:
    if ELEVENLABS_VOICE_IDS.get(voice_id, voice_id.lower()) in ELEVENLABS_VOICES:
        raise ApiError(
            400,
            "cannot_delete_premade",
            f"{voice_id!r} is a premade voice; only saved voices can be deleted",
            "voice_id",
        )
    if not await library_of(request).voices.delete(reader_of(request), voice_id):
        raise ApiError(
            404, "voice_not_found", f"A voice with voice_id {voice_id!r} was not found.", "voice_id"
        )
    return JSONResponse({"status": "ok"})


_PREMADE_BY_PARAMS = {(p.voice, p.variant, p.pitch): n for n, p in ELEVENLABS_VOICES.items()}


def _voice_ref(row: Generation) -> tuple[str, str, str | None]:
    """(voice_id, name, category) of a generation, in ElevenLabs' terms where possible
    (history records a voice's parameters, not the name it was asked for)."""
    if row.voice_params:
        p = row.voice_params[0]
        name = _PREMADE_BY_PARAMS.get((p.get("voice"), p.get("variant"), p.get("pitch")))
        if name is not None:
            return _NAME_OF_ID[name], name.capitalize(), "premade"
    return row.voice, row.voice, None


def history_json(row: Generation) -> dict[str, Any]:
    vid, name, category = _voice_ref(row)
    return {
        "history_item_id": row.id,
        "request_id": row.id,
        "voice_id": vid,
        "model_id": row.model,
        "voice_name": name,
        "voice_category": category,
        "text": row.text,
        "date_unix": int(row.created_at.timestamp()),
        "character_count_change_from": 0,
        "character_count_change_to": row.characters,
        "content_type": row.content_type,
        "state": "created",
        "settings": None,
        "feedback": None,
        "share_link_id": None,
        "source": "TTS",
        "output_format": row.format,
    }


@router.get("/v1/history", summary="Generated items (ElevenLabs)")
async def list_history(
    request: Request,
    page_size: Annotated[int, Query(ge=1, le=1000)] = 100,
    start_after_history_item_id: str | None = None,
    voice_id: str | None = None,
) -> JSONResponse:
    lib = library_of(request)
    reader = reader_of(request)
    await lib.generations.flushed()  # a request just answered is listed
    before = None
    if start_after_history_item_id:
        anchor = await lib.generations.get(start_after_history_item_id, reader)
        if anchor is None:
            raise ApiError(
                404,
                "history_item_not_found",
                f"no history item {start_after_history_item_id!r}",
                "start_after_history_item_id",
            )
        before = anchor.created_at
    wanted: set[str] = set()
    premade = ELEVENLABS_VOICE_IDS.get(voice_id or "", (voice_id or "").lower())
    if premade in ELEVENLABS_VOICES:  # recognised by its exact parameters (_voice_ref)
        wanted.add(_NAME_OF_ID[premade])
    elif voice_id:  # another voice: by the label the generation recorded
        wanted.add(voice_id)
        model = speech_service(request).catalog.model(DEFAULT_MODEL)
        if model is not None:  # a catalog without the default model: the label alone
            with contextlib.suppress(ApiError):  # an unknown voice has no history: empty page
                wanted.add((await resolve(request, voice_id, model)).label())
    items: list[dict[str, Any]] = []
    offset = 0
    for _ in range(50):  # a voice filter may skip rows: read on until full (bounded)
        if len(items) > page_size:
            break
        rows, _ = await lib.generations.list(reader, page_size + 1, before=before, offset=offset)
        offset += len(rows)
        for row in rows:
            item = history_json(row)
            if wanted and not wanted & {item["voice_id"], row.voice}:
                continue
            items.append(item)
        if len(rows) < page_size + 1:
            break
    more = len(items) > page_size
    items = items[:page_size]
    return JSONResponse(
        {
            "history": items,
            "has_more": more,
            "last_history_item_id": items[-1]["history_item_id"] if items else None,
            "scanned_until": items[-1]["date_unix"] if items else None,
        }
    )


async def _item(request: Request, history_item_id: str) -> Generation:
    row = await library_of(request).generations.get(history_item_id, reader_of(request))
    if row is None:
        raise ApiError(
            404, "history_item_not_found", f"no history item {history_item_id!r}", "history_item_id"
        )
    return row


@router.get("/v1/history/{history_item_id}", summary="One history item (ElevenLabs)")
async def get_history(history_item_id: str, request: Request) -> JSONResponse:
    return JSONResponse(history_json(await _item(request, history_item_id)))


async def _file(request: Request, row: Generation) -> bytes:
    from orate.speech.pipeline import file_bytes

    try:
        return file_bytes(row, await library_of(request).generations.audio(row))
    except FileNotFoundError:
        raise ApiError(
            404,
            "audio_not_found",
            f"history item {row.id!r} has no stored audio (kept without audio, or pruned)",
            "history_item_id",
        ) from None


@router.get(
    "/v1/history/{history_item_id}/audio",
    summary="A history item's audio (ElevenLabs)",
    responses=audio_response(),
)
async def history_audio(history_item_id: str, request: Request) -> Response:
    row = await _item(request, history_item_id)
    return Response(await _file(request, row), media_type=row.content_type)


@router.delete("/v1/history/{history_item_id}", summary="Delete a history item (ElevenLabs)")
async def delete_history(history_item_id: str, request: Request) -> JSONResponse:
    if not await library_of(request).generations.delete(history_item_id, reader_of(request)):
        raise ApiError(
            404, "history_item_not_found", f"no history item {history_item_id!r}", "history_item_id"
        )
    return JSONResponse({"status": "ok"})


class DownloadBody(BaseModel):
    history_item_ids: list[str] = Field(min_length=1, max_length=100)
    output_format: str | None = None


def _zip(files: list[tuple[str, bytes]]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:  # audio does not deflate
        for name, data in files:
            zf.writestr(name, data)
    return buf.getvalue()


@router.post(
    "/v1/history/download",
    summary="One item's audio, or a zip of several (ElevenLabs)",
    responses=audio_response("application/zip"),
)
async def download_history(body: DownloadBody, request: Request) -> Response:
    rows = [await _item(request, i) for i in dict.fromkeys(body.history_item_ids)]
    files = [(f"{r.id}.{r.format}", await _file(request, r)) for r in rows]
    if len(files) == 1:
        return Response(files[0][1], media_type=rows[0].content_type)
    data = await asyncio.to_thread(_zip, files)
    return Response(
        data,
        media_type="application/zip",
        headers={"Content-Disposition": 'attachment; filename="history.zip"'},
    )
