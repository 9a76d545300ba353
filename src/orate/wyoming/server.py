"""The Wyoming TCP dialect: Home Assistant's TTS protocol, beside the HTTP dialects.

It runs in the HTTP server's process and event loop and only translates: a
``synthesize`` becomes one ``SpeechRequest`` for ``pcm`` at the voice's own rate
(no resampling), and the speech_service's PCM chunks go back as ``audio-chunk`` events as
the engine makes them; ``synthesize-start``/``-chunk``/``-stop`` feed the shared
text-stream session (speech/textstream.py), which speaks each sentence as soon as
it is complete. So Wyoming gets the speech_service, engine pool, cache, history, limits
and metrics of every other dialect.

Framing is the ``wyoming`` package's own (``async_read_event``/``async_write_event``);
what this module adds is what a server facing a network needs and the reference
handler leaves out: a cap on event sizes (the package would allocate whatever
``data_length`` a client declares), a write timeout (a client that never reads
would otherwise hold its synthesis and buffers forever), an idle timeout, a bound
on connections with a clear refusal, and an ``error`` event instead of a silent
close for bad input. After an ``error`` outside an open stream the connection closes
(clients such as Home Assistant ignore ``error`` and wait for audio-stop or the end
of the connection); inside a stream it stays open and ``synthesize-stop`` ends the
stream as usual.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.error import Error
from wyoming.event import Event, async_read_event, async_write_event
from wyoming.info import Describe, Info
from wyoming.ping import Ping, Pong
from wyoming.server import AsyncEventHandler, AsyncServer
from wyoming.tts import (
    Synthesize,
    SynthesizeChunk,
    SynthesizeStart,
    SynthesizeStop,
    SynthesizeStopped,
)

from orate.config import Settings
from orate.library.keys import KeyInfo
from orate.library.tables import LOCAL_OWNER
from orate.runtime.events import EventKind
from orate.runtime.pool import EngineBusy, PoolClosed
from orate.speech.limits import KeyLimits
from orate.speech.metrics import Metrics
from orate.speech.service import SpeechService
from orate.speech.textstream import TextStream
from orate.speech.types import (
    Context,
    EventStream,
    SpeechError,
    SpeechRequest,
    SynthesisFailed,
    Utterance,
)
from orate.wyoming.voices import VoiceTable, WyomingVoice

if TYPE_CHECKING:  # imported when zeroconf is asked for
    from orate.wyoming.announce import Announcement

log = logging.getLogger("orate.wyoming")

WIDTH, CHANNELS = 2, 1  # s16le mono, what every engine makes
_FALLBACK = WyomingVoice("alloy", "espeak-ng", "alloy", ("en-US",), "", False, ("", "", ""), "")


def _address(writer: asyncio.StreamWriter) -> str | None:
    """The client's IP address (``None`` on a Unix socket: local, not capped)."""
    peer = writer.get_extra_info("peername")
    return str(peer[0]) if isinstance(peer, tuple) and peer else None


class ClientGone(Exception):
    """The client closed, reset, or stopped reading past the write timeout."""


class BadRequest(Exception):
    """Something the client sent that we answer with an ``error`` event."""

    def __init__(self, text: str, code: str, status: int = 400) -> None:
        super().__init__(text)
        self.text = text
        self.code = code
        self.status = status


class _BoundedReader:
    """The connection's reader as ``async_read_event`` sees it, refusing to read an
    event body larger than the limit (and remembering why it refused)."""

    def __init__(self, reader: asyncio.StreamReader, limit: int) -> None:
        self._reader = reader
        self._limit = limit
        self.problem: str | None = None
        self._first = b""  # the byte ``begun`` waited for, read again by ``readline``

    async def begun(self) -> bool:
        """Wait for the first byte of the next event (False: the client closed)."""
        if not self._first:
            self._first = await self._reader.read(1)
        return bool(self._first)

    async def readline(self) -> bytes:
        first, self._first = self._first, b""
        if first == b"\n":
            return first
        try:
            return first + await self._reader.readline()
        except ValueError:
            self.problem = "event header line too long (over 64 KiB)"
            raise

    async def readexactly(self, n: int) -> bytes:
        if not isinstance(n, int) or n < 0 or n > self._limit:
            self.problem = (
                f"event too large: {n} bytes of data or payload; the limit is {self._limit}"
            )
            raise ValueError(self.problem)
        return await self._reader.readexactly(n)


@dataclass
class _Stream:
    """One open ``synthesize-start`` … ``synthesize-stop`` session."""

    voice: WyomingVoice
    key: KeyInfo | None
    session: TextStream[None]
    started: float = field(default_factory=time.perf_counter)
    audio_started: bool = False
    first_audio: float | None = None
    failed: bool = False
    entered: bool = True  # holds one of its key's concurrent-request slots


class WyomingService:
    """The listener: voice table, connections, key binding, and the optional announcement."""

    def __init__(
        self,
        settings: Settings,
        speech_service: SpeechService,
        metrics: Metrics | None = None,
        limits: KeyLimits | None = None,
    ) -> None:
        if not settings.wyoming_uri:
            raise ValueError("no Wyoming URI configured")
        self.settings = settings
        self.speech_service = speech_service
        self.metrics = metrics
        self.limits = limits
        self.uri = settings.wyoming_uri
        self.table = VoiceTable.build(speech_service.catalog, settings)
        self.info_event = Info(tts=[self.table.program()]).event()
        self.connections: set[OrateHandler] = set()
        self.by_address: dict[str, int] = {}  # open connections per client IP address
        self._server: AsyncServer | None = None
        self._announcement: Announcement | None = None
        self._rates: dict[str, int] = {}

    async def start(self) -> None:
        """Check the key binding, listen, and announce if asked."""
        ref = self.settings.wyoming_key
        if ref:
            library = self.speech_service.library
            if library is None or await library.keys.find(ref) is None:
                raise RuntimeError(
                    f"ORATE_WYOMING_KEY names {self.settings.wyoming_key!r}, "
                    "which is no live key (see `orate keys list`)"
                )
        self._server = AsyncServer.from_uri(self.uri)
        await self._server.start(self._handler)
        log.info("Wyoming listening on %s (%d voices)", self.uri, len(self.table.voices))
        if self.settings.wyoming_zeroconf and not self.uri.startswith("tcp://"):
            log.warning("zeroconf announces TCP listeners only; %s is not one", self.uri)
        elif self.settings.wyoming_zeroconf:
            from orate.wyoming.announce import Announcement

            host, port = _host_port(self.uri)
            self._announcement = Announcement(self.settings.wyoming_zeroconf_name, host, port)
            try:
                await self._announcement.start()
            except Exception as exc:  # discovery is a convenience; serving goes on
                log.warning("zeroconf announcement failed: %s", exc)
                self._announcement = None

    async def stop(self) -> None:
        """Stop announcing and listening; close every connection and its synthesis."""
        if self._announcement is not None:
            with contextlib.suppress(Exception):
                await self._announcement.stop()
        if self._server is not None:
            await self._server.stop()
            server = getattr(self._server, "_server", None)
            if server is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(server.wait_closed(), 5)
        for handler in list(self.connections):
            handler.abort()

    def _handler(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> OrateHandler:
        return OrateHandler(reader, writer, self)

    def rate(self, voice: WyomingVoice) -> int:
        """The engine's own sample rate for a voice: asking for it means no resampling."""
        if voice.model not in self._rates:
            model = self.speech_service.catalog.model(voice.model)
            engine = model.engine if model is not None else "espeak"
            self._rates[voice.model] = self.speech_service.engine(engine).sample_rate
        return self._rates[voice.model]

    async def key(self) -> KeyInfo | None:
        """The key this listener acts for (``ORATE_WYOMING_KEY``), fresh within seconds."""
        ref = self.settings.wyoming_key
        if not ref:
            return None
        library = self.speech_service.library
        key = await library.keys.find(ref) if library is not None else None
        if key is None:
            raise BadRequest(
                "the API key this Wyoming listener is bound to "
                "(ORATE_WYOMING_KEY) is revoked or missing",
                "invalid_api_key",
                401,
            )
        return key

    def context(self, key: KeyInfo | None) -> Context:
        quota = None
        if key is not None and key.quota_chars is not None:
            quota = max(key.quota_chars - key.used_chars, 0)
        return Context(
            owner=key.id if key is not None else LOCAL_OWNER,
            dialect="wyoming",
            key_id=key.id if key is not None else None,
            quota_left=quota,
        )

    async def enter(self, key: KeyInfo | None) -> None:
        """Count a request in against its key's limits, service-wide when replicas share
        a database (the same KeyLimits as HTTP)."""
        if self.limits is None:
            return
        try:
            await self.limits.admit(key)
        except SpeechError as exc:
            raise BadRequest(exc.message, exc.code, exc.status) from None

    async def leave(self, key: KeyInfo | None) -> None:
        if self.limits is not None:
            await self.limits.release(key)

    def refusal(self, address: str | None) -> str | None:
        """Why a new connection is refused (the listener's or one address's limit)."""
        settings = self.settings
        if len(self.connections) >= settings.wyoming_max_connections:
            return (
                f"this server accepts {settings.wyoming_max_connections} Wyoming "
                "connections at once (wyoming_max_connections)"
            )
        if (
            address is not None
            and self.by_address.get(address, 0) >= settings.wyoming_max_connections_per_address
        ):
            return (
                f"this server accepts {settings.wyoming_max_connections_per_address} "
                "Wyoming connections at once from one address "
                "(wyoming_max_connections_per_address)"
            )
        return None

    def joined(self, handler: OrateHandler, address: str | None) -> None:
        self.connections.add(handler)
        if address is not None:
            self.by_address[address] = self.by_address.get(address, 0) + 1

    def left(self, handler: OrateHandler, address: str | None) -> None:
        self.connections.discard(handler)
        if address is not None:
            left = self.by_address.get(address, 1) - 1
            if left > 0:
                self.by_address[address] = left
            else:
                self.by_address.pop(address, None)

    def voice(self, data: dict[str, Any]) -> WyomingVoice:
        """The voice an event's ``voice`` object names (name, language, speaker)."""
        voice = data.get("voice")
        if voice is None:
            voice = {}
        if not isinstance(voice, dict):
            raise BadRequest("voice must be an object {name, language, speaker}", "malformed_event")
        fields = {k: voice.get(k) for k in ("name", "language", "speaker")}
        for k, v in fields.items():
            if v is not None and not isinstance(v, str):
                raise BadRequest(f"voice.{k} must be a string", "malformed_event")
        try:
            return self.table.find(fields["name"], fields["language"], fields["speaker"])
        except LookupError as exc:
            code = "unknown_voice" if fields["name"] else "unknown_language"
            raise BadRequest(str(exc), code) from None

    def request(self, text: str, voice: WyomingVoice) -> SpeechRequest:
        """One text in a voice, as raw PCM at the voice's rate."""
        return SpeechRequest(
            model=voice.model,
            utterances=[Utterance(text, voice.voice)],
            format="pcm",
            sample_rate=self.rate(voice),
            max_chars=self.speech_service.settings.max_request_chars,
        )

    def observe(self, status: int, started: float, first: float | None) -> None:
        if self.metrics is not None:
            self.metrics.request("wyoming", status, time.perf_counter() - started, first)


class OrateHandler(AsyncEventHandler):
    """One Wyoming connection."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, service: WyomingService
    ) -> None:
        super().__init__(reader, writer)
        self.service = service
        self.settings = service.settings
        self._events = _BoundedReader(reader, service.settings.wyoming_max_event_bytes)
        self._write_lock = asyncio.Lock()
        self._gone = False
        self._stream: _Stream | None = None

    # -- connection ----------------------------------------------------------

    async def run(self) -> None:
        """Read events until the client leaves; refuse past the connection limit."""
        service = self.service
        settings = self.settings
        address = _address(self.writer)
        refusal = service.refusal(address)
        if refusal is not None:
            with contextlib.suppress(Exception):
                await self.write_event(
                    Error(
                        f"too many connections: {refusal}; try again when one has closed",
                        "too_many_connections",
                    ).event()
                )
                await self._drain_before_close()
            self.abort(graceful=True)
            return
        service.joined(self, address)
        self._is_running = True
        # a new connection has the event deadline to send its first event (a slowloris
        # that connects and waits holds no slot for long); later, the idle timeout
        wait = settings.wyoming_event_timeout
        try:
            while self._is_running and not self._gone:
                try:
                    async with asyncio.timeout(wait):
                        begun = await self._events.begun()
                except TimeoutError:
                    await self._error(f"no event for {wait:g} s; closing", "idle_timeout")
                    break
                except (ConnectionError, OSError):  # reset by the client: nothing to say
                    break
                wait = settings.wyoming_idle_timeout
                if not begun:
                    break
                try:  # once begun, an event arrives whole within the event deadline
                    async with asyncio.timeout(settings.wyoming_event_timeout):
                        event = await async_read_event(self._events)  # type: ignore[arg-type]  # reads lines like a StreamReader
                except TimeoutError:
                    await self._error(
                        "an event took more than "
                        f"{settings.wyoming_event_timeout:g} s to arrive; "
                        "closing",
                        "event_timeout",
                    )
                    break
                except Exception as exc:  # malformed header: missing type, bad lengths
                    await self._error(f"malformed event: {exc!r}"[:300], "malformed_event")
                    break
                if event is None:
                    if self._events.problem or not self.reader.at_eof():
                        await self._error(
                            self._events.problem
                            or "malformed event: the header line or data is not valid JSON",
                            "malformed_event",
                        )
                    break
                if not await self.handle_event(event):
                    break
        except ClientGone:
            pass
        except Exception:
            log.exception("Wyoming connection failed")
        finally:
            service.left(self, address)
            await self.disconnect()
            self.abort(graceful=True)

    async def disconnect(self) -> None:
        """Stop an open stream's synthesis and give its key slot back."""
        stream, self._stream = self._stream, None
        if stream is not None:
            await stream.session.aclose()
            if stream.entered:
                await self.service.leave(stream.key)

    async def _drain_before_close(self) -> None:
        """Half-close, then read and drop what the client already sent (briefly, bounded):
        closing a socket with unread input makes the kernel send a reset, which can
        destroy the error just written before the client reads it."""
        self.writer.write_eof()
        with contextlib.suppress(TimeoutError, ConnectionError, OSError):
            async with asyncio.timeout(0.25):  # a refused flood holds no socket for long
                for _ in range(16):  # at most 16 x 4 KiB
                    if not await self.reader.read(4096):
                        break

    def abort(self, graceful: bool = False) -> None:
        """Close the connection: gracefully lets what is buffered go out first, but never
        waits on a client that does not read for longer than the write timeout."""
        self._gone = True
        with contextlib.suppress(Exception):
            transport = self.writer.transport
            if graceful:
                self.writer.close()
                if transport.get_write_buffer_size():
                    asyncio.get_running_loop().call_later(
                        self.settings.wyoming_write_timeout, transport.abort
                    )
            else:
                transport.abort()
        with contextlib.suppress(Exception):
            self.reader.feed_eof()

    async def write_event(self, event: Event) -> None:
        """Send an event, waiting at most the write timeout for the client to take it;
        the transport's buffer holds at most its high-water mark plus this event."""
        if self._gone:
            raise ClientGone()
        async with self._write_lock:
            try:
                async with asyncio.timeout(self.settings.wyoming_write_timeout):
                    await async_write_event(event, self.writer)
            except (TimeoutError, ConnectionError, OSError, RuntimeError) as exc:
                self.abort()
                raise ClientGone() from exc

    async def _error(self, text: str, code: str) -> None:
        with contextlib.suppress(ClientGone):
            await self.write_event(Error(text, code).event())

    # -- events --------------------------------------------------------------

    async def handle_event(self, event: Event) -> bool:
        try:
            if not isinstance(event.data, dict):
                raise BadRequest("malformed event: data must be a JSON object", "malformed_event")
            if Describe.is_type(event.type):
                await self.write_event(self.service.info_event)
            elif Synthesize.is_type(event.type):
                if self._stream is None:  # sent beside a stream for old servers: ignore
                    await self._synthesize(event.data)
            elif SynthesizeStart.is_type(event.type):
                await self._stream_start(event.data)
            elif SynthesizeChunk.is_type(event.type):
                await self._stream_chunk(event.data)
            elif SynthesizeStop.is_type(event.type):
                await self._stream_stop()
            elif Ping.is_type(event.type):
                await self.write_event(Pong(text=Ping.from_event(event).text).event())
            else:
                log.debug("ignoring Wyoming event %r", event.type)
        except BadRequest as exc:
            await self._error(exc.text, exc.code)
            if self._stream is None:
                # the error ends the request the way clients notice: Home Assistant ignores
                # ``error`` and reads until audio-stop or end of connection, so the
                # connection closes (as wyoming-piper's does). Inside an open stream the
                # connection stays: synthesize-stop still ends it with audio-stop and
                # synthesize-stopped, which is what a streaming client waits for.
                return False
        return not self._gone

    async def _synthesize(self, data: dict[str, Any]) -> None:
        """One-shot: audio-start, audio-chunks as the engine makes them, audio-stop."""
        started = time.perf_counter()
        status, first, key, entered = 200, None, None, False
        try:
            text = data.get("text")
            if not isinstance(text, str):
                raise BadRequest("synthesize needs text (a string)", "malformed_event")
            if data.get("text_format") == "ssml" and not text.lstrip().startswith("<speak"):
                text = f"<speak>{text}</speak>"  # the speech_service knows SSML by its root
            voice = self.service.voice(data)
            key = await self.service.key()
            await self.service.enter(key)
            entered = True
            first = await self._speak(text, voice, self.service.context(key))
            await self.write_event(AudioStop().event())
        except BadRequest as exc:
            status = exc.status
            raise
        except ClientGone:
            status = 499  # the client left (or stopped reading) before the end
            raise
        finally:
            if entered:
                await self.service.leave(key)
            self.service.observe(status, started, first and first - started)

    async def _speak(
        self, text: str, voice: WyomingVoice, ctx: Context, stream: _Stream | None = None
    ) -> float | None:
        """Synthesize one text and send its PCM; returns when the first chunk left.
        ``audio-start`` goes first unless the stream this text belongs to sent it."""
        speech_service = self.service.speech_service
        with _as_bad_request():
            plan = await speech_service.plan(self.service.request(text, voice), ctx)
            speech = await speech_service.speak(plan)
            rate = plan.sample_rate
            if stream is None or not stream.audio_started:
                await self.write_event(AudioStart(rate, WIDTH, CHANNELS).event())
                if stream is not None:
                    stream.audio_started = True
            async with contextlib.aclosing(speech.events) as events:
                return await _send_audio(self.write_event, events, rate)

    # -- streaming text in ---------------------------------------------------

    async def _stream_start(self, data: dict[str, Any]) -> None:
        if self._stream is not None:
            raise BadRequest(
                "a synthesis stream is already open; send synthesize-stop first", "stream_open"
            )
        try:
            voice = self.service.voice(data)
            key = await self.service.key()
            await self.service.enter(key)
        except BadRequest:
            # a stream that says nothing: its chunks are dropped quietly (not one error
            # each) and its stop still gets audio-start/-stop and synthesize-stopped
            session = self.service.speech_service.open_text_stream(self._speak_piece)
            self._stream = _Stream(
                self.service.table.default or _FALLBACK, None, session, failed=True, entered=False
            )
            raise
        session = self.service.speech_service.open_text_stream(self._speak_piece)
        self._stream = _Stream(voice, key, session)

    async def _stream_chunk(self, data: dict[str, Any]) -> None:
        stream = self._stream
        if stream is None:
            raise BadRequest("synthesize-chunk without synthesize-start", "no_stream")
        text = data.get("text")
        if not isinstance(text, str):
            raise BadRequest("synthesize-chunk needs text (a string)", "malformed_event")
        if stream.failed:
            return
        try:
            stream.session.write(text, None)
        except SpeechError as exc:  # the buffer or the queue is full
            stream.failed = True
            raise BadRequest(exc.message, exc.code, exc.status) from None

    async def _stream_stop(self) -> None:
        stream = self._stream
        if stream is None:
            raise BadRequest("synthesize-stop without synthesize-start", "no_stream")
        status = 200
        try:
            if not stream.failed:
                with contextlib.suppress(SpeechError):
                    stream.session.flush(None)
            await stream.session.finish()  # raises ClientGone if the client left
            if not stream.audio_started:
                await self.write_event(
                    AudioStart(self.service.rate(stream.voice), WIDTH, CHANNELS).event()
                )
            await self.write_event(AudioStop().event())
            await self.write_event(SynthesizeStopped().event())
            if stream.failed:
                status = 400
        finally:
            self._stream = None
            await stream.session.aclose()
            if stream.entered:
                await self.service.leave(stream.key)
            first = stream.first_audio
            self.service.observe(status, stream.started, first and first - stream.started)

    async def _speak_piece(self, text: str, _: None) -> None:
        """The text stream's speaker: one complete sentence (or the flushed rest)."""
        stream = self._stream
        if stream is None or stream.failed:
            return
        try:
            ctx = self.service.context(await self.service.key())
            first = await self._speak(text, stream.voice, ctx, stream)
        except BadRequest as exc:
            if exc.code == "missing_input":
                return  # a piece of punctuation or spaces: nothing to say
            stream.failed = True
            await self._error(exc.text, exc.code)
            return
        if stream.first_audio is None:
            stream.first_audio = first


@contextlib.contextmanager
def _as_bad_request() -> Iterator[None]:
    """The speech layer's refusals and failures as Wyoming errors (code and status)."""
    try:
        yield
    except SpeechError as exc:
        raise BadRequest(exc.message, exc.code, exc.status) from None
    except (EngineBusy, PoolClosed) as exc:
        raise BadRequest(f"the engines are busy ({exc}); retry in a moment", "busy", 503) from None
    except SynthesisFailed as exc:
        raise BadRequest(f"synthesis failed: {exc}", "synthesis_failed", 500) from None


async def _send_audio(
    write_event: Callable[[Event], Awaitable[None]], events: EventStream, rate: int
) -> float | None:
    """A speech's PCM as audio-chunk events of at most a second each; returns when the
    first chunk left (``None``: no audio)."""
    first: float | None = None
    step = rate * WIDTH
    async for event in events:
        if event.kind != EventKind.AUDIO or not event.audio:
            continue
        audio = event.audio
        for at in range(0, len(audio), step):
            await write_event(AudioChunk(rate, WIDTH, CHANNELS, audio[at : at + step]).event())
            if first is None:
                first = time.perf_counter()
    return first


def _host_port(uri: str) -> tuple[str, int]:
    from urllib.parse import urlparse

    parsed = urlparse(uri)
    return parsed.hostname or "", parsed.port or 0
