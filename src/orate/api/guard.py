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

import asyncio
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from orate.api.http.dialect import Dialects
from orate.api.http.errors import ApiError, Envelopes
from orate.api.metrics import Metrics
from orate.library.db import DB_ERRORS
from orate.library.keys import KeyInfo
from orate.library.shared import SharedLimits

_HEADER_KEYS = (b"x-hume-api-key", b"x-api-key", b"xi-api-key")


def find_secret(scope: Scope) -> str | None:
    for name, value in scope.get("headers", []):
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
        elif name in _HEADER_KEYS and value.strip():
            return value.decode("latin-1").strip()
    if scope["type"] == "websocket":  # browsers cannot set headers on a WebSocket
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        for name in ("api_key", "access_token", "xi_api_key"):
            if query.get(name):
                return query[name][0]
    return None


@dataclass
class Bucket:
    """A token bucket: ``rate`` requests per minute, bursts up to ``rate``."""

    rate: int
    tokens: float = -1.0
    stamp: float = field(default_factory=time.monotonic)

    def take(self) -> float:
        """0 when allowed; otherwise seconds until a token is free."""
        now = time.monotonic()
        if self.tokens < 0:
            self.tokens = float(self.rate)
        self.tokens = min(float(self.rate), self.tokens + (now - self.stamp) * self.rate / 60)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) * 60 / self.rate


class Guard:
    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body: int,
        metrics: Metrics,
        keys: Callable[[], Any],
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
        self._keys = keys  # () -> KeyStore | None, once the library is open
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
        status = {"code": 0, "first": None}

        async def tracked_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            elif (
                message["type"] == "http.response.body"
                and message.get("body")
                and status["first"] is None
            ):
                status["first"] = time.perf_counter() - started
            elif message["type"] == "websocket.accept":
                status["code"] = 101
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
            status["code"] = err.status
            await self._deny(scope, receive, send, err)
        finally:
            if not self.dialects.is_open(path) and dialect != "ops":
                self.metrics.request(
                    dialect, status["code"] or 500, time.perf_counter() - started, status["first"]
                )

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
        await self.limits.admit(key)

    async def _leave(self, key: KeyInfo | None) -> None:
        await self.limits.release(key)


class KeyLimits:
    """Per-key request rate and requests in progress, for every listener of the process."""

    def __init__(self) -> None:
        self._buckets: dict[str, Bucket] = {}
        self._active: dict[str, int] = {}
        #: set when replicas share a database: the limits are then held there, for the
        #: whole service (library/shared.py), instead of in this process
        self.shared: SharedLimits | None = None

    async def admit(self, key: KeyInfo | None) -> None:
        """``enter``, held service-wide when the limits are shared."""
        if self.shared is None or key is None or not (key.rate_per_minute or key.concurrency):
            self.enter(key)
            return
        refusal = await self.shared.enter(key.id, key.rate_per_minute, key.concurrency)
        if refusal is None:
            return
        wait = max(math.ceil(refusal.retry_after), 1)
        if refusal.reason == "rate":
            raise ApiError(
                429,
                "rate_limited",
                f"this key may make {key.rate_per_minute} requests a minute; retry in {wait} s",
                headers={"Retry-After": str(wait)},
            )
        raise ApiError(
            429,
            "too_many_streams",
            f"this key may have {key.concurrency} "
            "requests in progress at once; retry when one has finished",
            headers={"Retry-After": "1"},
        )

    async def release(self, key: KeyInfo | None) -> None:
        if self.shared is None or key is None or not (key.rate_per_minute or key.concurrency):
            self.leave(key)
            return
        await asyncio.shield(self.shared.leave(key.id))  # a cancelled request still leaves

    def enter(self, key: KeyInfo | None) -> None:
        """Count a request in, or raise ``ApiError`` 429 saying when to retry."""
        if key is None:
            return
        if key.rate_per_minute:
            bucket = self._buckets.setdefault(key.id, Bucket(key.rate_per_minute))
            bucket.rate = key.rate_per_minute
            wait = bucket.take()
            if wait > 0:
                raise ApiError(
                    429,
                    "rate_limited",
                    f"this key may make {key.rate_per_minute} "
                    f"requests a minute; retry in {math.ceil(wait)} s",
                    headers={"Retry-After": str(math.ceil(wait))},
                )
        active = self._active.get(key.id, 0)
        if key.concurrency and active >= key.concurrency:
            raise ApiError(
                429,
                "too_many_streams",
                f"this key may have {key.concurrency} "
                "requests in progress at once; retry when one has finished",
                headers={"Retry-After": "1"},
            )
        self._active[key.id] = active + 1

    def leave(self, key: KeyInfo | None) -> None:
        if key is not None:
            self._active[key.id] = max(self._active.get(key.id, 1) - 1, 0)
