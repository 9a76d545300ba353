"""ElevenLabs' ``multi-stream-input`` WebSocket: several independent contexts on one socket.

This is the only WebSocket the voice-agent frameworks speak (pipecat's
``ElevenLabsTTSService``, livekit's ``elevenlabs.TTS.stream()``): one socket per
agent, one context per turn or segment, a new context when the user interrupts.
Each context is its own text-stream session (speech/textstream.py, the one
``stream-input``, Hume's WebSocket and Wyoming share) with its own voice settings,
pronunciation dictionaries and chunk schedule; contexts speak concurrently and
their messages interleave, each tagged with ``contextId``.

Client messages, each naming a ``context_id`` (none means the socket):

- the first text for an unknown id opens the context, with ``voice_settings``,
  ``generation_config`` and ``pronunciation_dictionary_locators`` if given;
- ``text`` is buffered and spoken per sentence, and by the chunk schedule; with
  ``auto_mode=true`` there is no buffer: each message is spoken as it arrives (what
  ElevenLabs documents, for clients that send whole sentences or phrases);
  ``flush`` speaks what is buffered now;
- ``close_context`` speaks the rest, then sends ``{"isFinal": true, "contextId": X}``;
- ``close_socket`` finishes every open context the same way, then closes with 1000;
- keep-alives never end anything: ``{"text": ""}``, ``{"text": "", "context_id": X}``
  and ``{"context_id": X, "keep_alive": true}`` only reset the inactivity timer.

Alignment time base (``charStartTimesMs``): without ``sync_alignment=true`` each
alignment restarts at zero at the start of the audio it describes (a sentence),
which is what pipecat assumes (it adds each message's span to a running clock);
with ``sync_alignment=true`` (livekit sends it, and uses times as given) the times
run from the start of the context. Either way a sentence's characters span its
whole audio, so a client's clock never drifts from the audio.

Errors: a problem with one context (text after it was closed, too many contexts
open, a ``flush`` for one never opened) is a message on that context,
``{"contextId", "error", "message"}``, followed by its ``isFinal``; the socket stays
usable. A problem with the socket (malformed JSON, a binary frame, an unknown
voice or model, the key's quota, inactivity) is a message, then a close with 1008
and the reason; only an internal failure closes with 1011.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from orate.api.elevenlabs.dispatch import PREFIX
from orate.api.elevenlabs.errors import status_name
from orate.api.elevenlabs.routes import (
    VoiceSettings,
    aligned_chunks,
    build_request,
    pick_format,
)
from orate.api.elevenlabs.stream_input import (
    DEFAULT_SCHEDULE,
    DEFAULT_TIMEOUT,
    MAX_MESSAGE,
    MAX_TIMEOUT,
    NORMAL,
    POLICY,
    Closing,
    GenerationConfig,
    _closing_for,
    _float,
    _ws_alignment,
    message_text,
    word_cut,
)
from orate.api.http.deps import SpeechDep
from orate.api.http.owners import context
from orate.api.http.speech import DictionaryLocator, locators
from orate.audio.output_formats import OutputFormat
from orate.speech.alignment import CharAlignment
from orate.speech.pipeline import SpeechError
from orate.speech.service import SpeechService
from orate.speech.textstream import TextStream

log = logging.getLogger("orate.api")
router = APIRouter(prefix=PREFIX, tags=["elevenlabs"])

MAX_OPEN = 16  # contexts speaking at once on one socket
MAX_PENDING = 64  # sentences queued per context (memory per socket: MAX_OPEN x this)
REMEMBERED = 1024  # closed context ids kept to refuse their reuse
MAX_ID = 256
PATH = "/v1/text-to-speech/{voice_id}/multi-stream-input"


class MultiMessage(BaseModel):
    """One client message; every field optional (a keep-alive may be ``{}`` plus an id)."""

    model_config = ConfigDict(extra="allow")

    text: str | None = Field(None, max_length=MAX_MESSAGE)
    context_id: str | None = Field(None, min_length=1, max_length=MAX_ID)
    flush: bool | None = None
    close_context: bool | None = None
    close_socket: bool | None = None
    keep_alive: bool | None = None
    try_trigger_generation: bool | None = None
    voice_settings: VoiceSettings | None = None
    generation_config: GenerationConfig | None = None
    pronunciation_dictionary_locators: Annotated[
        list[DictionaryLocator] | None, Field(max_length=3)
    ] = None
    xi_api_key: str | None = None
    authorization: str | None = None


@dataclass(frozen=True)
class Voicing:
    """What a context speaks with: its voice settings and pronunciation dictionaries."""

    settings: VoiceSettings | None
    lexicons: tuple[tuple[str, str | None], ...]


@dataclass
class Context:
    """One open context: its text stream, what is in force, and its clock."""

    id: str
    voicing: Voicing
    schedule: list[int]
    stream: TextStream[Voicing] = field(init=False)  # speaks for this context: set after
    sent: int = 0  # pieces queued so far (which chunk-schedule step applies)
    pending: int = 0  # pieces queued and not yet spoken
    clock_ms: float = 0.0  # audio spoken so far in this context
    closing: asyncio.Task[None] | None = None

    def queued(self, pieces: list[str]) -> None:
        self.sent += len(pieces)
        self.pending += len(pieces)


@dataclass
class Socket:
    """Per-socket state: open contexts, recently closed ids, the send lock, the quota
    spent, and the first failure of any context's synthesis."""

    ws: WebSocket
    service: SpeechService
    voice_id: str
    model_id: str | None
    fmt: OutputFormat
    normalize: bool
    language: str | None
    logging: bool
    absolute: bool  # sync_alignment=true: times from the context's start
    auto: bool  # auto_mode=true: no chunk schedule, sentences only
    inline_tags: bool = False  # enable_ssml_parsing=true: <break>, <phoneme> in the text
    open: dict[str, Context] = field(default_factory=dict)
    closed: OrderedDict[str, None] = field(default_factory=OrderedDict)
    spent: int = 0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    failure: asyncio.Future[tuple[str, BaseException]] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )

    async def send(self, data: dict[str, Any] | str) -> None:
        text = data if isinstance(data, str) else json.dumps(data)
        async with self.lock:
            await self.ws.send_text(text)

    def fail(self, cid: str, exc: BaseException) -> None:
        if not self.failure.done():
            self.failure.set_result((cid, exc))

    # -- contexts ------------------------------------------------------------------

    def open_context(self, cid: str, msg: MultiMessage) -> Context:
        voicing = Voicing(msg.voice_settings, locators(msg.pronunciation_dictionary_locators))
        schedule = list(DEFAULT_SCHEDULE)
        if msg.generation_config and msg.generation_config.chunk_length_schedule:
            schedule = msg.generation_config.chunk_length_schedule
        ctx = Context(cid, voicing, schedule)
        ctx.stream = self.service.open_text_stream(self._speaker(ctx), max_pending=MAX_PENDING)
        self.open[cid] = ctx
        return ctx

    def forget(self, cid: str) -> None:
        self.open.pop(cid, None)
        self.closed[cid] = None
        while len(self.closed) > REMEMBERED:
            self.closed.popitem(last=False)

    def _speaker(self, ctx: Context) -> Callable[[str, Voicing], Awaitable[None]]:
        """How one piece of a context is spoken: a request in, its audio and alignment
        out as messages tagged with the context's id. A failure is reported to the read
        loop (which closes the socket), not left in a task nobody awaits."""

        async def speak(text: str, voicing: Voicing) -> None:
            try:
                await self._speak(ctx, text, voicing)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.fail(ctx.id, exc)
                raise
            finally:
                ctx.pending -= 1

        return speak

    async def _speak(self, ctx: Context, text: str, voicing: Voicing) -> None:
        try:
            req = await build_request(
                self.ws,
                self.voice_id,
                text,
                self.model_id,
                self.fmt,
                voicing.settings,
                timestamps=True,
                normalize=self.normalize,
                language=self.language,
                inline_tags=self.inline_tags,
                lexicons=voicing.lexicons,
            )
            rc = context(self.ws, "elevenlabs", store=self.logging, record=self.logging)
            if rc.quota_left is not None:  # the key's count was read when it connected
                rc.quota_left = max(rc.quota_left - self.spent, 0)
            plan = await self.service.plan(req, rc)
            self.spent += plan.characters
        except SpeechError as exc:
            if exc.code in ("missing_input", "empty_text"):
                return  # a flush of punctuation or spaces: nothing to say
            raise Closing(POLICY, status_name(exc.code), exc.message) from None
        speech = await self.service.speak(plan)
        start = ctx.clock_ms
        prev = 0.0  # where the current sentence starts, from the piece's start
        async for chunk in aligned_chunks(speech.events, text, eager=True):
            ctx.clock_ms = max(ctx.clock_ms, start + chunk.end_ms)
            if not chunk.audio and chunk.alignment is None:
                continue
            align = chunk.alignment
            if align is not None:
                align = _shifted(align, start if self.absolute else -prev)
                prev = chunk.end_ms
            wire = json.dumps(_ws_alignment(align), separators=(",", ":"))
            audio = b'"' + base64.b64encode(chunk.audio) + b'"' if chunk.audio else b"null"
            await self.send(
                f'{{"audio":{audio.decode()},"contextId":{json.dumps(ctx.id)},'
                f'"normalizedAlignment":{wire},"alignment":{wire}}}'
            )

    async def finish(self, ctx: Context) -> None:
        """Speak the rest of a context, then its ``isFinal``."""
        ctx.queued(ctx.stream.flush(ctx.voicing))
        try:
            await ctx.stream.finish()
        finally:
            self.forget(ctx.id)
        await self.send({"isFinal": True, "contextId": ctx.id})

    def _finishing(self, ctx: Context) -> asyncio.Task[None]:
        task = asyncio.create_task(self.finish(ctx))
        # a failed synthesis is reported through ``failure``; the task's copy is consumed
        task.add_done_callback(lambda t: t.cancelled() or t.exception())
        return task

    async def refuse(self, cid: str, error: str, message: str) -> None:
        """An error on one context; the socket stays usable. ``isFinal`` follows so that a
        client waiting for the context's end (pipecat ignores ``error``) stops waiting."""
        await self.send({"contextId": cid, "error": error, "message": message})
        await self.send({"isFinal": True, "contextId": cid})

    # -- messages ------------------------------------------------------------------

    async def handle(self, msg: MultiMessage) -> bool:
        """Apply one message; False once the socket is to close."""
        cid = msg.context_id
        if msg.close_socket:
            await self.close_all()
            return False
        if cid is None:
            if msg.text:  # text with no context: ElevenLabs' default context is not kept
                raise Closing(
                    POLICY,
                    "invalid_message",
                    "multi-stream-input messages need "
                    "a context_id (text without one cannot be placed)",
                )
            return True  # {"text": ""} or {"text": " "}: a keep-alive
        ctx = self.open.get(cid)
        if ctx is None:
            if cid in self.closed:
                if msg.close_context or msg.keep_alive or (not msg.text and not msg.flush):
                    return True  # closing twice, or a late keep-alive: nothing to do
                await self.refuse(
                    cid,
                    "context_closed",
                    f"context {cid!r} was closed; open a new context with a new context_id",
                )
                return True
            if not msg.text:  # flush, close or keep-alive of a context never opened
                if msg.flush or msg.close_context:
                    await self.refuse(
                        cid,
                        "context_not_found",
                        f"context {cid!r} is not open; send text with this context_id first",
                    )
                return True
            if len(self.open) >= MAX_OPEN:
                await self.refuse(
                    cid,
                    "max_active_contexts",
                    f"{MAX_OPEN} contexts are already open on this socket; close_context one first",
                )
                return True
            ctx = self.open_context(cid, msg)
            if msg.text.strip() == "":
                msg.text = None  # the opening " " only opens (as on stream-input)
        elif msg.voice_settings is not None or msg.pronunciation_dictionary_locators:
            ctx.voicing = Voicing(
                msg.voice_settings or ctx.voicing.settings,
                locators(msg.pronunciation_dictionary_locators) or ctx.voicing.lexicons,
            )
        if ctx.closing is not None:
            return True  # already finishing: late messages change nothing
        if msg.text:
            ctx.queued(ctx.stream.write(msg.text, ctx.voicing))
            if not msg.flush and not self.auto and msg.try_trigger_generation is not False:
                limit = ctx.schedule[min(ctx.sent, len(ctx.schedule) - 1)]
                if len(ctx.stream.buffered) >= limit and (at := word_cut(ctx.stream.buffered)):
                    ctx.queued(ctx.stream.cut(at, ctx.voicing))
        if msg.flush or (self.auto and msg.text and msg.text.strip()):
            # auto_mode: no buffers, each message is spoken as it arrives (the frameworks
            # send whole sentences or phrases then)
            ctx.queued(ctx.stream.flush(ctx.voicing))
        if msg.close_context:
            ctx.closing = self._finishing(ctx)
        return True

    async def close_all(self) -> None:
        for ctx in list(self.open.values()):
            if ctx.closing is None:
                ctx.closing = self._finishing(ctx)
        tasks = [c.closing for c in self.open.values() if c.closing is not None]
        if tasks:
            await asyncio.gather(*tasks)

    def busy(self) -> bool:
        """True while any context has text queued or being spoken (the client may be
        silent then: the inactivity timer only counts an idle socket)."""
        return any(c.pending or c.closing is not None for c in self.open.values())

    async def aclose(self) -> None:
        """Stop every context's synthesis now (client gone, or the socket failed)."""
        closing = [c.closing for c in self.open.values() if c.closing is not None]
        for ctx in list(self.open.values()):
            await ctx.stream.aclose()
        for task in closing:
            task.cancel()
        # a finishing context whose synthesis failed: its error was reported already
        await asyncio.gather(*closing, return_exceptions=True)
        self.open.clear()


def _shifted(align: CharAlignment, ms: float) -> CharAlignment:
    if not ms:
        return align
    return CharAlignment(
        align.characters,
        [max(s + ms, 0.0) for s in align.starts],
        [max(e + ms, 0.0) for e in align.ends],
    )


def _bool(value: str | None) -> bool:
    return (value or "").strip().lower() in ("true", "1", "yes")


def _parse(raw: str) -> MultiMessage:
    try:
        data = json.loads(raw)
        if not isinstance(data, dict):
            raise ValueError("a message must be a JSON object")
        return MultiMessage.model_validate(data)
    except RecursionError:
        raise Closing(
            POLICY, "invalid_message", "invalid message: JSON nested too deeply"
        ) from None
    except (json.JSONDecodeError, ValueError, ValidationError) as exc:
        detail = exc.errors()[0]["msg"] if isinstance(exc, ValidationError) else str(exc)
        raise Closing(POLICY, "invalid_message", f"invalid message: {detail}") from None


async def _send_error(ws: WebSocket, exc: Closing, context_id: str | None) -> None:
    """The error as a message (with the context it arose in, when there is one), then the
    close frame with the same reason."""
    body: dict[str, Any] = {"message": exc.message, "error": exc.error, "code": exc.code}
    if context_id is not None:
        body["contextId"] = context_id
    with contextlib.suppress(Exception):
        await ws.send_text(json.dumps(body))
        await ws.close(exc.code, exc.message[:120])


@router.websocket(PATH)
async def multi_stream_input(ws: WebSocket, voice_id: str, service: SpeechDep) -> None:
    q = ws.query_params
    timeout = _float(q.get("inactivity_timeout"), DEFAULT_TIMEOUT, 1.0, MAX_TIMEOUT)
    await ws.accept()
    try:
        fmt = pick_format(q.get("output_format"), stream=True)
    except SpeechError as exc:
        await _send_error(ws, Closing(POLICY, "invalid_output_format", exc.message), None)
        return
    sock = Socket(
        ws,
        service,
        voice_id,
        q.get("model_id"),
        fmt,
        normalize=q.get("apply_text_normalization") != "off",
        language=q.get("language_code") or None,
        logging=q.get("enable_logging", "true").lower() != "false",
        absolute=_bool(q.get("sync_alignment")),
        auto=_bool(q.get("auto_mode")),
        inline_tags=_bool(q.get("enable_ssml_parsing")),
    )
    last: str | None = None  # the context of the message being handled
    try:
        while True:
            receive = asyncio.ensure_future(ws.receive())
            either: set[asyncio.Future[Any]] = {receive, sock.failure}
            done, _ = await asyncio.wait(
                either, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
            )
            if sock.failure in done:
                receive.cancel()
                last, failed = sock.failure.result()
                raise failed
            if receive not in done:
                receive.cancel()
                if sock.busy():
                    continue  # audio still coming: the client is listening, not idle
                raise Closing(
                    POLICY,
                    "input_timeout_exceeded",
                    f"no message received for "
                    f'{timeout:g} s; send text, or a keep-alive {{"text": ""}}',
                )
            message = receive.result()
            if message["type"] == "websocket.disconnect":
                return
            msg = _parse(message_text(message))
            last = msg.context_id
            if not await sock.handle(msg):
                await ws.close(NORMAL)
                return
    except WebSocketDisconnect:
        pass
    except Exception as exc:
        await _send_error(ws, _closing_for(exc), last)
    finally:
        await sock.aclose()
