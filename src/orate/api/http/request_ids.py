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

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from orate.api.elevenlabs import routes as elevenlabs

_SANE = re.compile(rb"^[A-Za-z0-9._:\-]{1,128}$")


def _elevenlabs(scope: Scope) -> bool:
    """Whether ElevenLabs' dialect answers this request (the dispatch's own rule)."""
    path = scope.get("path", "")
    if path.startswith(elevenlabs.PREFIX + "/") or elevenlabs._ALWAYS.match(path):
        return True
    return (
        bool(elevenlabs._SHARED.match(path))
        and scope.get("method") in elevenlabs._SHARED_METHODS
        and elevenlabs.is_elevenlabs_caller(scope)
    )


class RequestIds:
    """Adds ``x-request-id`` (and ``request-id`` for ElevenLabs) to every HTTP response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        sent = next((v for k, v in scope.get("headers", []) if k == b"x-request-id"), None)
        fallback = sent if sent is not None and _SANE.match(sent) else uuid.uuid4().hex.encode()
        also_plain = _elevenlabs(scope)

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
