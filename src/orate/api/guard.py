"""The guard in front of every route: API keys, body size, per-key rate and concurrency,
and request metrics. Pure ASGI, so HTTP and WebSocket get the same treatment.

Each dialect's SDK sends its key in its own place (``Authorization: Bearer``,
``X-Hume-Api-Key``, ``x-api-key``, ``xi-api-key``, or ``?api_key=`` /
``?access_token=`` on Hume's WebSocket); any of them is accepted anywhere. Auth
turns on when the first key is created and stays on (revoking the last key locks
the server rather than opening it) until the operator runs ``orate keys open``;
while it is off everything belongs to the local owner, but a revoked key is
still refused. Refusals use the envelope of the dialect that owns the path.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from urllib.parse import parse_qs

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from orate.api.http.dialect import Dialects
from orate.api.http.errors import ApiError, Envelopes
from orate.library.db import DB_ERRORS
from orate.library.keys import KeyInfo, KeyStore
from orate.speech.limits import KeyLimits, LimitReached
from orate.speech.metrics import Metrics

_HEADER_KEYS = (b"x-hume-api-key", b"x-api-key", b"xi-api-key")


def find_secret(scope: Scope) -> str | None:
    for name, value in scope.get("headers", []):
        if name == b"authorization":
            scheme, _, token = str(value.decode("latin-1")).partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
        elif name in _HEADER_KEYS and value.strip():
            return str(value.decode("latin-1")).strip()
    if scope["type"] == "websocket":  # browsers cannot set headers on a WebSocket
        raw: bytes = scope.get("query_string", b"")
        query = parse_qs(raw.decode("latin-1"))
        for name in ("api_key", "access_token", "xi_api_key"):
            found = query.get(name)
            if found:
                return found[0]
    return None


class Guard:
    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body: int,
        metrics: Metrics,
        keys: Callable[[], KeyStore | None],
        limits: KeyLimits | None = None,
        auth: str = "auto",
        envelopes: Envelopes | None = None,
        dialects: Dialects,
    ) -> None:
        self.app = app
        self.dialects = dialects  # whose path is open, names its key in a first message …
        self.envelopes = envelopes or Envelopes()
        self.auth = auth
        self.max_body = max_body
        self.metrics = metrics
        self._keys = keys  # the store once the library is open
        # shared with other listeners (Wyoming) so a key's limits hold across them
        self.limits = limits if limits is not None else KeyLimits()

    async def _deny(self, scope: Scope, receive: Receive, send: Send, err: ApiError) -> None:
        if scope["type"] == "websocket":
            # a refused handshake, as an HTTP response (the ASGI denial extension)
            if "websocket.http.response" in scope.get("extensions", {}):
                body = self.envelopes.for_path(scope["path"])[0](err).body
                await send(
                    {
                        "type": "websocket.http.response.start",
                        "status": err.status,
                        "headers": [
                            (b"content-type", b"application/json"),
                            *[(k.lower().encode(), v.encode()) for k, v in err.headers.items()],
                        ],
                    }
                )
                await send({"type": "websocket.http.response.body", "body": body})
            else:
                await send({"type": "websocket.close", "code": 1008, "reason": err.message[:120]})
            return
        await self.envelopes.for_path(scope["path"])[0](err)(scope, receive, send)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        path = scope["path"]
        dialect = self.dialects.label(path)
        code = 0  # the response's status (0: none sent yet)
        first: float | None = None  # seconds to the first body byte

        async def tracked_send(message: Message) -> None:
            nonlocal code, first
            if message["type"] == "http.response.start":
                code = message["status"]
            elif message["type"] == "http.response.body" and message.get("body") and first is None:
                first = time.perf_counter() - started
            elif message["type"] == "websocket.accept":
                code = 101
            await send(message)

        key: KeyInfo | None = None
        held: list[KeyInfo] = []  # a key that came in a WebSocket's first message
        try:
            if not self.dialects.is_open(path):
                try:
                    key = await self._authenticate(scope)
                except ApiError as err:
                    receive = self._key_in_first_message(scope, receive, send, err, held)
                if scope["type"] == "http":
                    receive = await self._limit_body(scope, receive)
            await self._enter(key)
            try:
                await self.app(scope, receive, tracked_send)
            finally:
                await self._leave(key)
                for k in held:
                    await self._leave(k)
        except ApiError as err:
            code = err.status
            await self._deny(scope, receive, send, err)
        finally:
            if not self.dialects.is_open(path) and dialect != "ops":
                self.metrics.request(dialect, code or 500, time.perf_counter() - started, first)

    def _key_in_first_message(
        self, scope: Scope, receive: Receive, send: Send, err: ApiError, held: list[KeyInfo]
    ) -> Receive:
        """Let a WebSocket without a key in its handshake open, when its dialect sends the
        key in the first message; that message is checked before the route sees it, and a
        bad key closes the socket with 1008 (the route sees a disconnect)."""
        reader = self.dialects.first_message_key(scope["path"])
        if scope["type"] != "websocket" or err.code != "missing_api_key" or reader is None:
            raise err
        state = scope.setdefault("state", {})  # the route reads the owner from it later
        checked = False

        async def first_message() -> Message:
            nonlocal checked
            message = await receive()
            if checked or message["type"] != "websocket.receive":
                return message
            checked = True
            secret = reader(message.get("text") or "")
            store = self._keys()
            found = await store.check(secret) if secret and store is not None else None
            refusal = (
                err
                if not secret
                else ApiError(
                    401, "invalid_api_key", "the API key is not valid (unknown or revoked)"
                )
            )
            if found is not None:
                try:
                    await self._enter(found)
                    held.append(found)
                    state["owner"], state["key"] = found.id, found
                    return message
                except ApiError as exc:
                    refusal = exc
            await send({"type": "websocket.close", "code": 1008, "reason": refusal.message[:120]})
            return {"type": "websocket.disconnect", "code": 1008}

        return first_message

    async def _authenticate(self, scope: Scope) -> KeyInfo | None:
        store = self._keys()
        if store is None:
            return None
        secret = find_secret(scope)
        try:
            required = await store.auth_required(self.auth)
            key = await store.check(secret) if secret else None
        except DB_ERRORS:
            # the key table cannot be read (locked, corrupted, gone): fail closed, and say
            # it is the server's problem (503), not the caller's key
            raise ApiError(
                503,
                "database_unavailable",
                "the server cannot check API keys "
                "right now (its database is unavailable); retry shortly",
                headers={"Retry-After": "5"},
            ) from None
        if secret and key is None and store.is_revoked(secret):
            raise ApiError(401, "invalid_api_key", "the API key has been revoked")
        if not required:
            return None
        if not secret:
            raise ApiError(
                401,
                "missing_api_key",
                "this server needs an API key: send it as "
                "Authorization: Bearer, X-Hume-Api-Key, x-api-key or xi-api-key",
            )
        if key is None:
            raise ApiError(401, "invalid_api_key", "the API key is not valid (unknown or revoked)")
        state = scope.setdefault("state", {})
        state["owner"] = key.id
        state["key"] = key
        return key

    async def _limit_body(self, scope: Scope, receive: Receive) -> Receive:
        """Refuse a body over the limit before any route reads it."""
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    raise ApiError(
                        400, "invalid_request", "Content-Length is not a number"
                    ) from None
                if declared > self.max_body:
                    raise ApiError(
                        413,
                        "request_too_large",
                        f"the body is {declared} bytes; the limit is {self.max_body}",
                    )
                return receive
        if scope.get("method") in ("GET", "HEAD", "DELETE", "OPTIONS"):
            return receive
        # no length given (chunked): read it here, bounded, then hand it on
        chunks: list[Message] = []
        total = 0
        while True:
            message = await receive()
            chunks.append(message)
            if message["type"] != "http.request":
                break
            total += len(message.get("body", b""))
            if total > self.max_body:
                raise ApiError(
                    413, "request_too_large", f"the body is over the limit of {self.max_body} bytes"
                )
            if not message.get("more_body"):
                break

        async def replay() -> Message:
            return chunks.pop(0) if chunks else await receive()

        return replay

    async def _enter(self, key: KeyInfo | None) -> None:
        try:
            await self.limits.admit(key)
        except LimitReached as exc:  # refused in the envelope of the path's dialect
            raise ApiError(exc.status, exc.code, exc.message, exc.param, exc.headers) from None

    async def _leave(self, key: KeyInfo | None) -> None:
        await self.limits.release(key)
