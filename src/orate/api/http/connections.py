"""Time bounds on connections: slow request headers, slow bodies, stalled readers.

uvicorn closes idle keep-alive connections, but a client that trickles its
headers (one byte a second resets that timer), declares a body it never sends,
or stops reading a streamed response would hold a connection, and behind it a
synthesis, forever. Three bounds, each a setting:

- headers (``read_timeout``): from the connection's start, or the end of its
  previous response, the next request's headers must arrive in time; otherwise
  408 and close. This lives in the HTTP protocol (a subclass of uvicorn's),
  because no ASGI code runs before the headers are complete.
- body (``read_timeout``): an ASGI middleware bounds the time to receive the
  whole body, and answers 408 in the dialect's envelope.
- stalled reader (``stall_timeout``): when the socket's write buffer stays full
  this long (the client reads nothing), the protocol drops the connection; the
  response sees a disconnect and its synthesis stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
from typing import TYPE_CHECKING, Any

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from orate.api.http.errors import ApiError, Envelopes

log = logging.getLogger("orate.connections")

_REQUEST_TIMEOUT = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
    b"connection: close\r\ncontent-length: %d\r\n\r\n%s"
)
_HEADERS_LATE = (
    b'{"error": {"message": "the request headers did not arrive in time", '
    b'"type": "invalid_request_error", "param": null, "code": "request_timeout"}}'
)


class BodyTimeout(HTTPException):
    """The body did not arrive in time. An ``HTTPException`` so that FastAPI's body
    reading lets it through, and the dialect's handler renders it (408)."""

    def __init__(self, seconds: float) -> None:
        super().__init__(
            408,
            f"the request body did not arrive within {seconds:g} s (read_timeout)",
            headers={"Connection": "close"},
        )


class ReadDeadline:
    """Bounds the time to receive a request body; pure ASGI, outermost middleware."""

    def __init__(self, app: ASGIApp, *, timeout: float, envelopes: Envelopes | None = None) -> None:
        self.app = app
        self.envelopes = envelopes or Envelopes()
        self.timeout = timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        deadline = asyncio.get_running_loop().time() + self.timeout
        complete = False

        async def timed_receive() -> Message:
            nonlocal complete
            if complete:  # after the body: waiting for a disconnect is not bounded
                return await receive()
            try:
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                complete = True
                raise BodyTimeout(self.timeout) from None
            if message["type"] != "http.request" or not message.get("more_body"):
                complete = True
            return message

        started = False

        async def tracked_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, timed_receive, tracked_send)
        except BodyTimeout as exc:
            # raised outside the routes (a middleware reading a chunked body), where no
            # exception handler sees it: answer here, in the dialect's envelope
            if started:
                raise
            headers = dict(exc.headers) if exc.headers is not None else None
            err = ApiError(408, "request_timeout", exc.detail, headers=headers)
            await self.envelopes.for_path(scope["path"])[0](err)(scope, receive, send)


class _UvicornHTTP(asyncio.Protocol):
    """What the mixin below calls on uvicorn's HTTP protocols (httptools and h11 alike),
    for the type checker; at run time ``super()`` reaches the protocol itself."""

    if TYPE_CHECKING:

        def on_response_complete(self) -> None: ...


class _Deadlines(_UvicornHTTP):
    """Mixed into uvicorn's HTTP protocol: the header and stalled-reader timers."""

    header_timeout: float = 10.0
    stall_timeout: float = 30.0
    transport: Any
    loop: asyncio.AbstractEventLoop
    _header_timer: asyncio.TimerHandle | None
    _stall_timer: asyncio.TimerHandle | None

    def _arm_headers(self) -> None:
        self._cancel_headers()
        self._started = False  # no byte of the next request yet
        self._header_timer = self.loop.call_later(self.header_timeout, self._headers_late)

    def _cancel_headers(self) -> None:
        timer = getattr(self, "_header_timer", None)
        if timer is not None:
            timer.cancel()
            self._header_timer = None

    def _headers_late(self) -> None:
        self._header_timer = None
        if not self.transport.is_closing():
            if getattr(self, "_started", False):  # a request began: say why it is refused
                log.info(
                    "closing a connection whose request headers took over %g s", self.header_timeout
                )
                self.transport.write(_REQUEST_TIMEOUT % (len(_HEADERS_LATE), _HEADERS_LATE))
            # an idle connection just closes: a 408 there could be read by a client as the
            # answer to the request it is about to send
            self.transport.close()

    def _stalled(self) -> None:
        self._stall_timer = None
        if not self.transport.is_closing():
            log.info("dropping a client that read nothing for %g s", self.stall_timeout)
            # a reset, not a FIN: a FIN would wait behind the unsent data for a window the
            # client never opens, and the kernel would keep the socket and its buffers
            sock = self.transport.get_extra_info("socket")
            with contextlib.suppress(OSError, AttributeError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.transport.abort()

    def _cancel_stall(self) -> None:
        timer = getattr(self, "_stall_timer", None)
        if timer is not None:
            timer.cancel()
            self._stall_timer = None

    # -- protocol callbacks (super() is uvicorn's protocol) ------------------

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        self._arm_headers()

    def data_received(self, data: bytes) -> None:
        if data:
            self._started = True
        super().data_received(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_headers()
        self._cancel_stall()
        super().connection_lost(exc)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm_headers()  # the next request on this connection

    def pause_writing(self) -> None:
        super().pause_writing()
        if getattr(self, "_stall_timer", None) is None:
            self._stall_timer = self.loop.call_later(self.stall_timeout, self._stalled)

    def resume_writing(self) -> None:
        self._cancel_stall()
        super().resume_writing()


def protocol_class(header_timeout: float, stall_timeout: float) -> type[asyncio.Protocol]:
    """uvicorn's HTTP protocol (httptools, else h11) with orate's time bounds."""
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

        class HttpTools(_Deadlines, HttpToolsProtocol):
            def on_headers_complete(self) -> None:
                self._cancel_headers()
                super().on_headers_complete()

        cls: type[_Deadlines] = HttpTools
    except ImportError:  # pragma: no cover - httptools comes with uvicorn[standard]
        import h11
        from uvicorn.protocols.http.h11_impl import H11Protocol

        class H11(_Deadlines, H11Protocol):
            def handle_events(self) -> None:
                super().handle_events()
                if self.conn.their_state is not h11.IDLE:
                    self._cancel_headers()

        cls = H11
    cls.header_timeout = header_timeout
    cls.stall_timeout = stall_timeout
    return cls


def websocket_protocol_class(open_timeout: float) -> type[asyncio.Protocol]:
    """uvicorn's WebSocket protocol with a longer opening handshake. Its library closes a
    connection whose handshake (the route up to ``accept``, so the key check too) takes
    over 10 s without any answer; on a loaded machine that silence reads to a client as a
    dead server, so the handshake gets ``open_timeout`` and the log says when it ran out."""
    from uvicorn.protocols.websockets.websockets_impl import WebSocketProtocol

    class WebSockets(WebSocketProtocol):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.open_timeout = open_timeout

        async def handler(self) -> None:
            started = self.loop.time()
            try:
                await super().handler()
            finally:
                if (
                    not self.handshake_started_event.is_set()
                    and self.loop.time() - started >= open_timeout
                ):  # no answer in time
                    log.warning("closing a WebSocket whose handshake took over %g s", open_timeout)

    return WebSockets
