"""``x-request-id`` on every HTTP response, and ``request-id`` where ElevenLabs' SDK reads it.

SDKs and frameworks read a request id from the response headers: the OpenAI SDK
exposes ``x-request-id`` as ``response.request_id`` (livekit-agents logs "no
request_id provided" on every request without one), ElevenLabs' upstream sends
``request-id`` (its users pass it on in ``previous_request_ids``). The id is the
generation's id where the response made one (``X-Orate-Generation-Id``, so a user
can find it in the history), else the id the client sent in ``x-request-id``
(a gateway's trace id, when it is a sane token), else a fresh one. Pure ASGI and
outermost, so error responses from any layer carry it too.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

_SANE = re.compile(rb"^[A-Za-z0-9._:\-]{1,128}$")


class RequestIds:
    """Adds ``x-request-id`` to every HTTP response, and ``request-id`` to those that
    ``plain`` says a dialect whose SDK reads it answers (ElevenLabs'; ``create_app``
    passes its dialects' rule)."""

    def __init__(self, app: ASGIApp, plain: Callable[[Scope], bool] = lambda scope: False) -> None:
        self.app = app
        self.plain = plain

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        sent = next((v for k, v in scope.get("headers", []) if k == b"x-request-id"), None)
        fallback = sent if sent is not None and _SANE.match(sent) else uuid.uuid4().hex.encode()
        also_plain = self.plain(scope)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = {k.lower(): v for k, v in headers}
                rid = names.get(b"x-orate-generation-id") or names.get(b"request-id") or fallback
                if b"x-request-id" not in names:
                    headers.append((b"x-request-id", rid))
                if also_plain and b"request-id" not in names:
                    headers.append((b"request-id", rid))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_id)
