"""Security headers on the pages and audio this server hands to browsers.

The playground keeps an API key in the browser's local storage, and audio URLs are
opened in tabs, so both say what a browser may do with them: load scripts, styles
and media only from this origin (``blob:`` for the player's own buffers), never be
framed by another site, never sniff a type other than the one declared, and send no
``Referer`` to other sites. The API docs (Swagger UI, ReDoc) keep their inline
bootstrap script, so their pages also allow inline scripts and styles.

A plain ASGI middleware that only edits the response head: streamed bodies pass
through untouched.
"""

from __future__ import annotations

from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

PAGE_POLICY = (
    "default-src 'self'; media-src 'self' blob:; img-src 'self' data: blob:; "
    "connect-src 'self' blob:; "
    "frame-ancestors 'none'; base-uri 'self'; form-action 'self'"
)
DOCS_POLICY = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; "
    "style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "frame-ancestors 'none'; base-uri 'self'; form-action 'self'"
)
DOCS_PATHS = ("/docs", "/redoc")
_ALWAYS = [(b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer")]


class SecurityHeaders:
    """Adds ``nosniff`` and ``Referrer-Policy: no-referrer`` to every HTTP response, and
    a Content-Security-Policy (with ``frame-ancestors 'none'``) plus
    ``X-Frame-Options: DENY`` to HTML and audio."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        docs = str(scope.get("path", "")).startswith(DOCS_PATHS)

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers: list[Any] = list(message.get("headers", []))
                have = {name.lower() for name, _ in headers}
                kind = next((v for n, v in headers if n.lower() == b"content-type"), b"")
                extra = list(_ALWAYS)
                if kind.startswith((b"text/html", b"audio/")) or docs:
                    policy = DOCS_POLICY if docs else PAGE_POLICY
                    extra += [
                        (b"content-security-policy", policy.encode()),
                        (b"x-frame-options", b"DENY"),
                    ]
                headers += [(n, v) for n, v in extra if n not in have]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, sending)
