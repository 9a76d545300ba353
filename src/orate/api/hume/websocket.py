"""Hume's ``/v0/tts/stream/input`` WebSocket: text in as it is written, audio out as made.

Text frames accumulate exactly as sent in the shared text-stream session
(speech/textstream.py). Complete sentences are synthesized as
soon as they are in (an LLM streaming tokens gets audio sentence by sentence);
``flush`` synthesizes whatever is buffered; ``close`` finishes everything and
then closes with 1000, the only code Hume's clients treat as a clean end.
Errors close with 1008 (bad input) or 1011 (internal) and a reason: Hume's
clients validate every JSON frame strictly, so an error frame would break them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from pydantic import BaseModel, Field, ValidationError
from starlette.types import Message

from orate.api.http.deps import SpeechDep
from orate.api.http.owners import context
from orate.api.hume.frames import Chunk, HumeGeneration
from orate.api.hume.routes import (
    HUME_SAMPLE_RATE,
    MAX_DESCRIPTION,
    MAX_TEXT,
    VoiceById,
    VoiceByName,
    voice_provider,
)
from orate.runtime.pool import EngineBusy
from orate.speech.pipeline import (
    SpeechError,
    SpeechRequest,
    SynthesisFailed,
    Utterance,
)
from orate.speech.service import SpeechService
from orate.speech.textstream import SpeakerStopped, TextStreamOverflow

log = logging.getLogger("orate.api")
router = APIRouter(tags=["hume"])

POLICY, INTERNAL, NORMAL, TRY_AGAIN = 1008, 1011, 1000, 1013


class PublishTts(BaseModel):
    text: str | None = Field(None, max_length=MAX_TEXT)
    description: str | None = Field(None, max_length=MAX_DESCRIPTION)
    voice: VoiceById | VoiceByName | None = None
    speed: float | None = Field(None, ge=0.25, le=3.0)
    trailing_silence: float | None = Field(None, ge=0.0, le=5.0)
    flush: bool | None = None
    close: bool | None = None


def _bool(value: str | None, default: bool) -> bool:
    """Query booleans: Python's SDK sends True/False, TypeScript's true/false."""
    if value is None:
        return default
    return value.strip().lower() in ("true", "1", "yes")


@dataclass(frozen=True)
class PieceSettings:
    """The voice settings in force when a piece was taken from the buffer."""

    voice: str | None = None
    provider: str = "any"
    description: str | None = None
    speed: float = 1.0
    trailing_silence: float = 0.0


class Closing(Exception):
    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason[:120]  # a close reason must fit in a control frame


MAX_MESSAGE = 64 * 1024  # characters of one JSON message (a text piece is ≤ 5,000)


def _parse(message: Message) -> PublishTts:
    """One client message as ``PublishTts``, or ``Closing(1008)`` saying what is wrong.

    Only text frames carry JSON; a binary frame, a message nested past the JSON
    parser's recursion limit, or anything else malformed is the client's mistake
    (1008 with a reason), never an internal error.
    """
    if message.get("type") == "websocket.disconnect":
        raise WebSocketDisconnect(int(message.get("code") or 1000))
    raw = message.get("text")
    if not isinstance(raw, str):
        raise Closing(
            POLICY, "binary frames are not accepted: send each message as a JSON text frame"
        )
    if len(raw) > MAX_MESSAGE:
        raise Closing(POLICY, f"message of {len(raw)} characters; the limit is {MAX_MESSAGE}")
    try:
        return PublishTts.model_validate(json.loads(raw))
    except RecursionError:
        raise Closing(POLICY, "invalid message: JSON nested too deeply") from None
    except (json.JSONDecodeError, ValidationError) as exc:
        detail = exc.errors()[0]["msg"] if isinstance(exc, ValidationError) else str(exc)
        raise Closing(POLICY, f"invalid message: {detail}") from None


@dataclass(frozen=True)
class StreamQuery:
    """The session's query parameters, as Hume's SDKs send them."""

    fmt: str
    no_binary: bool
    strip_headers: bool
    timestamps: frozenset[str]
    model: str

    @classmethod
    def of(cls, ws: WebSocket) -> StreamQuery:
        q = ws.query_params
        return cls(
            fmt=(q.get("format_type") or "mp3").lower(),
            no_binary=_bool(q.get("no_binary"), False),
            strip_headers=_bool(q.get("strip_headers"), False),
            timestamps=frozenset(
                t for t in q.getlist("include_timestamp_types") if t in ("word", "phoneme")
            ),
            model="octave-1" if q.get("version") == "1" else "octave-2",
        )


def _speaker(
    ws: WebSocket, service: SpeechService, query: StreamQuery
) -> Callable[[str, PieceSettings], Awaitable[None]]:
    """How one piece of text is spoken: a request in, Hume's frames out."""
    base = context(ws, "hume")
    request_id = str(uuid.uuid4())

    async def speak(text: str, piece: PieceSettings) -> None:
        req = SpeechRequest(
            model=query.model,
            utterances=[
                Utterance(
                    text,
                    piece.voice,
                    piece.speed,
                    piece.trailing_silence,
                    description=piece.description,
                    voice_provider=piece.provider,
                )
            ],
            format=query.fmt,
            sample_rate=HUME_SAMPLE_RATE,
            timestamps=query.timestamps,
            max_chars=service.settings.max_request_chars,
        )
        try:
            plan = await service.plan(req, base)
        except SpeechError as exc:
            if exc.code == "missing_input":
                return  # a flush of punctuation or spaces: nothing to say
            # each piece reserves its characters: an exhausted quota ends the stream here
            raise Closing(POLICY, f"{exc.code}: {exc.message}") from None
        gen = HumeGeneration(
            await service.speak(plan), request_id, split=True, strip_headers=query.strip_headers
        )
        stall = service.settings.stall_timeout
        async for frame in gen.frames():
            try:  # a client that takes nothing for the stall timeout frees its worker
                async with asyncio.timeout(stall):
                    await ws.send_text(json.dumps(frame.message, separators=(",", ":")))
                    if isinstance(frame, Chunk) and not query.no_binary:
                        await ws.send_bytes(frame.data)
            except TimeoutError:
                raise Closing(
                    POLICY, f"the client read nothing for {stall:g} s (stall_timeout)"
                ) from None

    return speak


@router.websocket("/v0/tts/stream/input")
async def stream_input(ws: WebSocket, service: SpeechDep) -> None:
    query = StreamQuery.of(ws)
    await ws.accept()
    if query.fmt not in ("mp3", "wav", "pcm"):
        await ws.close(POLICY, f"format_type must be mp3, wav or pcm, not {query.fmt!r}")
        return
    stream = service.open_text_stream(_speaker(ws, service, query))
    settings = PieceSettings()
    idle = service.settings.ws_idle_timeout
    try:
        while True:
            received = await stream.next_message(ws.receive, idle=idle)
            if received is None:
                if stream.busy:
                    continue  # audio still coming: the client is listening, not idle
                raise Closing(
                    POLICY,
                    f"no message for {idle:g} s (ws_idle_timeout); send text, or close the session",
                )
            msg = _parse(received)
            settings = _apply(settings, msg)
            if msg.text:
                stream.write(msg.text, settings)
            if msg.flush or msg.close:
                stream.flush(settings)
            if msg.close:
                await stream.finish()
                await ws.close(NORMAL)
                return
    except WebSocketDisconnect:
        pass
    except Exception as exc:
        await _close_for(ws, exc)
    finally:
        await stream.aclose()


async def _close_for(ws: WebSocket, exc: Exception) -> None:
    """Close the socket with the code and reason Hume's clients expect for ``exc``."""
    if isinstance(exc, Closing):
        code, reason = exc.code, exc.reason
    elif isinstance(exc, TextStreamOverflow):
        code, reason = POLICY, exc.message[:120]
    elif isinstance(exc, SpeakerStopped):
        code, reason = INTERNAL, "synthesis stopped"
    elif isinstance(exc, SynthesisFailed):
        code, reason = INTERNAL, f"synthesis failed: {exc}"
    elif isinstance(exc, EngineBusy):  # load, not a fault: "try again later", no traceback
        code, reason = TRY_AGAIN, f"engines busy: {exc}"[:120]
    else:
        log.error("hume websocket failed", exc_info=exc)
        code, reason = INTERNAL, "internal error"
    with contextlib.suppress(Exception):
        await ws.close(code, reason)


def _apply(settings: PieceSettings, msg: PublishTts) -> PieceSettings:
    """The settings a message leaves in force for the text it and later messages carry."""
    if (
        msg.voice is None
        and msg.description is None
        and msg.speed is None
        and msg.trailing_silence is None
    ):
        return settings
    voice, provider = settings.voice, settings.provider
    if msg.voice is not None:
        voice = msg.voice.id if isinstance(msg.voice, VoiceById) else msg.voice.name
        provider = voice_provider(msg.voice.provider)
    return replace(
        settings,
        voice=voice,
        provider=provider,
        description=settings.description if msg.description is None else msg.description,
        speed=settings.speed if msg.speed is None else msg.speed,
        trailing_silence=(
            settings.trailing_silence if msg.trailing_silence is None else msg.trailing_silence
        ),
    )
