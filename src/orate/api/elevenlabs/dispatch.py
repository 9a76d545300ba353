"""Which requests ElevenLabs' dialect answers, and the middleware that sends them there.

Every ElevenLabs route lives under ``/elevenlabs`` (so ``base_url=http://host/elevenlabs``
works); the SDK's own paths are rewritten to it:

- paths only ElevenLabs has (``/v1/text-to-speech/…``, ``/v1/user…``, ``/v2/voices``,
  ``/v1/voices/settings/default``, ``/v1/voices/{id}/settings``, ``/v1/history/{id}/audio``,
  ``/v1/history/download``) always;
- paths orate (and OpenAI) also serve (``/v1/models``, ``/v1/voices``, ``/v1/history``)
  only for an ElevenLabs caller: one that sends ``xi-api-key`` or the SDK's
  ``X-Fern-SDK-Name: elevenlabs`` / ``User-Agent: elevenlabs/…``. Anyone else, curl
  included, gets orate's (OpenAI-style) shape there.
"""

from __future__ import annotations

import re

from starlette.types import ASGIApp, Receive, Scope, Send

PREFIX = "/elevenlabs"

_ALWAYS = re.compile(
    r"^/(v1/text-to-speech/|v1/user(/|$)|v2/voices(/|$)|v1/voices/settings/"
    r"default$|v1/voices/[^/]+/settings(/|$)|v1/history/[^/]+/audio$|"
    r"v1/history/download$)"
)
_SHARED = re.compile(r"^/v1/(models|voices|history)(/|$)")
_SHARED_METHODS = frozenset({"GET", "HEAD", "DELETE"})


def is_elevenlabs_caller(scope: Scope) -> bool:
    """``xi-api-key``, or the SDK's own headers (it sends no key header when no key is set)."""
    for name, value in scope.get("headers", []):
        if name == b"xi-api-key":
            return True
        if name == b"x-fern-sdk-name" and value.lower() == b"elevenlabs":
            return True
        if name == b"user-agent" and value.lower().startswith(b"elevenlabs"):
            return True
    return False


def _sent_here(scope: Scope) -> bool:
    """The dispatch's rule: on shared paths only what ElevenLabs defines there (reads,
    deletes), so orate's own POST /v1/voices stays orate's whoever calls it."""
    path = scope.get("path", "")
    shared = _SHARED.match(path) and scope.get("method", "GET") in _SHARED_METHODS
    return bool(_ALWAYS.match(path) or (shared and is_elevenlabs_caller(scope)))


def answers(scope: Scope) -> bool:
    """Whether ElevenLabs' dialect answers this request, seen from outside the dispatch
    (the request-id middleware, which adds ElevenLabs' ``request-id`` header)."""
    return scope.get("path", "").startswith(PREFIX + "/") or _sent_here(scope)


class ElevenLabsDispatch:
    """Routes ElevenLabs paths to this dialect (see the module docstring for the rule)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket") and _sent_here(scope):
            path = PREFIX + scope.get("path", "")
            scope = {**scope, "path": path, "raw_path": path.encode()}
        await self.app(scope, receive, send)
