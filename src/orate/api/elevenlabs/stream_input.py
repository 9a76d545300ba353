"""ElevenLabs' ``stream-input`` WebSocket (docs/wire.md): text in as it is written, audio out.

The incremental text goes through the shared text-stream session
(speech/textstream.py), the one Hume's WebSocket uses: each sentence is spoken
as soon as it is complete. On top of it, ElevenLabs' own triggers:
``try_trigger_generation`` cuts the buffer at a word boundary once it holds
``chunk_length_schedule[n]`` characters (n counts the pieces sent so far),
``flush`` speaks whatever is buffered, and ``{"text": ""}`` ends the input: the
rest is spoken, ``{"isFinal": true}`` is sent and the socket closes with 1000.

Each message carries the audio of one sentence and its per-character alignment
(milliseconds and durations, times from the start of the session). Errors are a
message with a ``message`` key, then a close with 1008 (bad input or timeout) or
1011 (internal): the SDK raises the last message it read when it has ``message``.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.types import Message

from orate.api.elevenlabs.dispatch import PREFIX
from orate.api.elevenlabs.errors import status_name
from orate.api.elevenlabs.routes import (
    VoiceSettings,
    aligned_chunks,
    build_request,
    pick_format,
)
from orate.api.http.deps import SpeechDep
from orate.api.http.owners import context
from orate.api.http.speech import DictionaryLocator, locators
from orate.audio.output_formats import OutputFormat
from orate.speech.alignment import CharAlignment
from orate.speech.pipeline import SpeechError, SynthesisFailed
from orate.speech.service import SpeechService
from orate.speech.textstream import SpeakerStopped, TextStream, TextStreamOverflow

log = logging.getLogger("orate.api")
router = APIRouter(prefix=PREFIX, tags=["elevenlabs"])

POLICY, INTERNAL, NORMAL = 1008, 1011, 1000
DEFAULT_SCHEDULE = (120, 160, 250, 290)
DEFAULT_TIMEOUT, MAX_TIMEOUT = 20.0, 180.0
MAX_MESSAGE = 10_000


class GenerationConfig(BaseModel):
    model_config = ConfigDict(extra="allow")

    chunk_length_schedule: list[Annotated[int, Field(ge=1, le=5000)]] | None = Field(
        None, min_length=1, max_length=20
    )


class InputMessage(BaseModel):
    """One client message: BOS (``text: " "`` with settings), text, flush, or EOS (``""``)."""

    model_config = ConfigDict(extra="allow")

    text: str = Field(max_length=MAX_MESSAGE)
    try_trigger_generation: bool | None = None
    flush: bool | None = None
    voice_settings: VoiceSettings | None = None
    generation_config: GenerationConfig | None = None
    pronunciation_dictionary_locators: list[DictionaryLocator] | None = Field(None, max_length=3)
    xi_api_key: str | None = None
    authorization: str | None = None


@dataclass(frozen=True)
class Piece:
    settings: VoiceSettings | None
    lexicons: tuple[tuple[str, str | None], ...] = ()  # the BOS message's dictionaries


class Closing(Exception):
    def __init__(self, code: int, error: str, message: str) -> None:
        super().__init__(message)
        self.code, self.error, self.message = code, error, message


MAX_FRAME = 64 * 1024  # characters of one JSON message (its text is at most MAX_MESSAGE)


def message_text(message: Message) -> str:
    """The text of one received frame, checked before any parsing: a disconnect ends
    the session, a binary or oversized frame is the client's mistake (1008 with a
    reason), never a KeyError and an internal error."""
    if message.get("type") == "websocket.disconnect":
        raise WebSocketDisconnect(int(message.get("code") or 1000))
    raw = message.get("text")
    if not isinstance(raw, str):
        raise Closing(
            POLICY, "invalid_message", "binary frames are not accepted; send JSON text messages"
        )
    if len(raw) > MAX_FRAME:
        raise Closing(
            POLICY, "invalid_message", f"message of {len(raw)} characters; the limit is {MAX_FRAME}"
        )
    return raw


def _float(value: str | None, default: float, low: float, high: float) -> float:
    try:
        return min(max(float(value), low), high) if value is not None else default
    except ValueError:
        return default


def word_cut(text: str) -> int:
    """Where a length trigger cuts the buffer: after its last space (never inside a word);
    0 when there is none yet."""
    at = text.rfind(" ")
    return at + 1 if at > 0 else 0


def bos_key(text: str) -> str | None:
    """The key a raw client put in its BOS message (``xi_api_key`` or ``authorization``)."""
    try:
        data = json.loads(text)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    secret = data.get("xi_api_key") or data.get("authorization")
    if not isinstance(secret, str):
        return None
    scheme, _, token = secret.partition(" ")
    return (token if scheme.lower() == "bearer" else secret).strip() or None


async def _send_error(ws: WebSocket, exc: Closing) -> None:
    """ElevenLabs' error message, then the close frame with the same reason."""
    with contextlib.suppress(Exception):
        await ws.send_text(
            json.dumps({"message": exc.message, "error": exc.error, "code": exc.code})
        )
        await ws.close(exc.code, exc.message[:120])


def _closing_for(exc: Exception) -> Closing:
    """What the client is told when the session ends on ``exc``."""
    if isinstance(exc, Closing):
        return exc
    if isinstance(exc, TextStreamOverflow):
        return Closing(POLICY, status_name(exc.code), exc.message)
    if isinstance(exc, SpeakerStopped):
        return Closing(INTERNAL, "internal_error", "synthesis stopped")
    if isinstance(exc, SynthesisFailed):
        return Closing(INTERNAL, "synthesis_failed", f"synthesis failed: {exc}")
    log.error("elevenlabs websocket failed", exc_info=exc)
    return Closing(INTERNAL, "internal_error", "internal error")


def _speaker(
    ws: WebSocket,
    service: SpeechService,
    voice_id: str,
    model_id: str | None,
    fmt: OutputFormat,
    normalize: bool,
    inline_tags: bool,
) -> Callable[[str, Piece], Awaitable[None]]:
    """How one piece of text is spoken: a request in, audio and alignment messages out,
    on one clock across the session's pieces."""
    clock = {"ms": 0.0}
    spent = {"chars": 0}  # characters this session has planned (against the key's quota)

    async def speak(text: str, piece: Piece) -> None:
        try:
            req = await build_request(
                ws,
                voice_id,
                text,
                model_id,
                fmt,
                piece.settings,
                timestamps=True,
                normalize=normalize,
                lexicons=piece.lexicons,
                inline_tags=inline_tags,
            )
            # the owner may be known only since the BOS message (its xi_api_key)
            ctx = context(ws, "elevenlabs")
            if ctx.quota_left is not None:  # the key's count was read when it connected
                ctx.quota_left = max(ctx.quota_left - spent["chars"], 0)
            plan = await service.plan(req, ctx)
            spent["chars"] += plan.characters
        except SpeechError as exc:
            if exc.code in ("missing_input", "empty_text"):
                return  # a flush of punctuation or spaces: nothing to say
            raise Closing(POLICY, status_name(exc.code), exc.message) from None
        speech = await service.speak(plan)
        async for chunk in aligned_chunks(speech.events, text, offset_ms=clock["ms"], eager=True):
            clock["ms"] = max(clock["ms"], chunk.end_ms)
            if not chunk.audio and chunk.alignment is None:
                continue
            align = json.dumps(_ws_alignment(chunk.alignment), separators=(",", ":"))
            audio = b'"' + base64.b64encode(chunk.audio) + b'"' if chunk.audio else b"null"
            await ws.send_text(
                f'{{"audio":{audio.decode()},"isFinal":false,'
                f'"normalizedAlignment":{align},"alignment":{align}}}'
            )

    return speak


@dataclass
class _Session:
    """What the client's messages leave in force: voice settings, the chunk schedule,
    how many pieces were sent (which schedule step applies), and whether BOS was seen."""

    piece: Piece = field(default_factory=lambda: Piece(None))
    schedule: list[int] = field(default_factory=lambda: list(DEFAULT_SCHEDULE))
    sent: int = 0
    first: bool = True

    def take(self, msg: InputMessage) -> bool:
        """Apply a message's settings; False for the BOS message (it carries no text)."""
        if self.first:
            self.first = False
            lexicons = locators(msg.pronunciation_dictionary_locators)
            if msg.voice_settings is not None or lexicons:
                self.piece = Piece(msg.voice_settings, lexicons)
            if msg.generation_config and msg.generation_config.chunk_length_schedule:
                self.schedule = msg.generation_config.chunk_length_schedule
            return not (msg.text.strip() == "" and msg.text != "")
        if msg.voice_settings is not None:
            self.piece = Piece(msg.voice_settings, self.piece.lexicons)
        return True

    def write(self, stream: TextStream[Piece], msg: InputMessage) -> None:
        """Queue what the message completes, flushes or (by the schedule) triggers."""
        self.sent += len(stream.write(msg.text, self.piece))
        if msg.flush:
            self.sent += len(stream.flush(self.piece))
        elif msg.try_trigger_generation or msg.try_trigger_generation is None:
            limit = self.schedule[min(self.sent, len(self.schedule) - 1)]
            if len(stream.buffered) >= limit:
                at = word_cut(stream.buffered)
                if at:
                    self.sent += len(stream.cut(at, self.piece))


@router.websocket("/v1/text-to-speech/{voice_id}/stream-input")
async def stream_input(ws: WebSocket, voice_id: str, service: SpeechDep) -> None:
    q = ws.query_params
    timeout = _float(q.get("inactivity_timeout"), DEFAULT_TIMEOUT, 1.0, MAX_TIMEOUT)
    await ws.accept()
    try:
        fmt = pick_format(q.get("output_format"), stream=True)
    except SpeechError as exc:
        await _send_error(ws, Closing(POLICY, "invalid_output_format", exc.message))
        return
    normalize = q.get("apply_text_normalization") != "off"
    # ElevenLabs reads <break>/<phoneme> in WebSocket text only when asked to
    inline_tags = q.get("enable_ssml_parsing", "false").lower() == "true"
    stream = service.open_text_stream(
        _speaker(ws, service, voice_id, q.get("model_id"), fmt, normalize, inline_tags)
    )
    session = _Session()
    try:
        while True:
            received = await stream.next_message(ws.receive, idle=timeout)
            if received is None:
                raise Closing(
                    POLICY,
                    "input_timeout_exceeded",
                    f"no text received for "
                    f'{timeout:g} s; send text, or a keep-alive {{"text": " "}}',
                )
            msg = _parse(message_text(received))
            if not session.take(msg):
                continue  # BOS
            if msg.text == "":  # EOS
                stream.flush(session.piece)
                await stream.finish()
                await ws.send_text(json.dumps({"isFinal": True}))
                await ws.close(NORMAL)
                return
            session.write(stream, msg)
    except WebSocketDisconnect:
        pass
    except Exception as exc:
        await _send_error(ws, _closing_for(exc))
    finally:
        await stream.aclose()


def _ws_alignment(align: CharAlignment | None) -> dict[str, Any] | None:
    """The WebSocket shape: milliseconds and durations (HTTP uses seconds and ends)."""
    if align is None:
        return None
    return {
        "chars": align.characters,
        "charStartTimesMs": [round(s) for s in align.starts],
        "charDurationsMs": [
            max(round(e) - round(s), 0) for s, e in zip(align.starts, align.ends, strict=True)
        ],
    }


def _parse(raw: str) -> InputMessage:
    try:
        data = json.loads(raw)
        if not isinstance(data, dict):
            raise ValueError("a message must be a JSON object")
        return InputMessage.model_validate(data)
    except RecursionError:
        raise Closing(
            POLICY, "invalid_message", "invalid message: JSON nested too deeply"
        ) from None
    except (json.JSONDecodeError, ValueError, ValidationError) as exc:
        detail = exc.errors()[0]["msg"] if isinstance(exc, ValidationError) else str(exc)
        raise Closing(POLICY, "invalid_message", f"invalid message: {detail}") from None
