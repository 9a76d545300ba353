"""Request bodies are JSON, whatever Content-Type the client forgot to set.

OpenAI's API reads a JSON body without ``Content-Type: application/json``, and
``curl -d '{…}'`` (the first thing people try) labels its body
``application/x-www-form-urlencoded``. FastAPI parses a body as JSON only when
the header says so, and otherwise answers with a validation error about
"a valid dictionary", which tells the caller nothing. Every body route here
takes JSON (none takes forms or files), so a body of any other declared type is
read as JSON; if it is not JSON, the dialect's error says the body must be JSON
and names the Content-Type that was sent.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

# the Content-Type a request arrived with, when this middleware replaced it
ORIGINAL_TYPE = "orate.original_content_type"
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


def _is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or media.endswith("+json")


class JsonBodies:
    """Relabel non-JSON Content-Types as JSON on body requests (pure ASGI, no buffering)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") not in _BODY_METHODS:
            await self.app(scope, receive, send)
            return
        headers = list(scope.get("headers", []))
        sent = next((v.decode("latin-1") for k, v in headers if k == b"content-type"), "")
        if _is_json(sent) or sent.lower().startswith("multipart/"):
            await self.app(scope, receive, send)
            return
        headers = [(k, v) for k, v in headers if k != b"content-type"]
        headers.append((b"content-type", b"application/json"))
        await self.app({**scope, "headers": headers, ORIGINAL_TYPE: sent or "none"}, receive, send)


def json_hint(scope: Scope) -> str | None:
    """What to tell a caller whose non-JSON-labelled body did not parse as JSON."""
    sent = scope.get(ORIGINAL_TYPE)
    if sent is None:
        return None
    how = (
        " (curl -d sends that unless you add -H 'Content-Type: application/json')"
        if sent.lower().startswith("application/x-www-form-urlencoded")
        else ""
    )
    return (
        f"the request body must be a JSON object, sent with Content-Type: "
        f"application/json; it was sent as {sent}{how} and is not valid JSON"
    )
