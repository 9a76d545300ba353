"""What a dialect adds to the app, declared in one object per dialect.

Each dialect package (``api/openai/``, ``api/hume/`` …) describes itself with one
``Dialect`` in its ``__init__.py``: its routers, the path prefix it owns, its error
envelope, the WebSocket paths whose key may come in the first message, the paths
that need no key, its middlewares and static files. ``create_app`` lists the
dialects and hands them to ``Dialects``, which every middleware that needs to know
"whose path is this" asks (the guard for open paths, first-message keys and the
metrics label; the error handlers for the envelope; the request-id middleware for
ElevenLabs' ``request-id``). Nothing registers itself by being imported.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

from fastapi import APIRouter
from fastapi.routing import APIWebSocketRoute
from starlette.types import ASGIApp, Scope

from orate.api.http.errors import Envelopes, Renderer, Validation

KeyReader = Callable[[str], "str | None"]
"""Reads an API key from a WebSocket's first message text (None when it has none)."""


@dataclass(frozen=True)
class Dialect:
    """One wire dialect: what ``create_app`` mounts and what the middlewares ask about."""

    #: the label of its requests in the metrics (``orate_requests{dialect=…}``)
    name: str
    routers: tuple[APIRouter, ...]
    #: the path prefix every route of it lives under: errors there use ``envelope``,
    #: requests there count under ``name``
    prefix: str | None = None
    #: True when the prefix is orate's, not the vendor's (ElevenLabs' routes live under
    #: ``/elevenlabs`` and a dispatch sends the SDK's own paths there): messages that
    #: quote a path leave it out
    hidden_prefix: bool = False
    #: other paths whose requests count under ``name`` (OpenAI's speech and models
    #: routes, at ``/v1`` and at the root)
    counts: Callable[[str], bool] | None = None
    #: its error shape under ``prefix`` (renderer, validation); None: orate's own
    #: (OpenAI's shape), which every path no dialect claims gets
    envelope: tuple[Renderer, Validation] | None = None
    #: WebSocket path patterns whose key may come in the first message instead of the
    #: handshake (ElevenLabs' stream-input BOS carries ``xi_api_key``), and its reader
    first_message_keys: tuple[tuple[str, KeyReader], ...] = ()
    #: paths (exact) and path prefixes that need no key even when keys exist
    open_paths: frozenset[str] = frozenset()
    open_prefixes: tuple[str, ...] = ()
    #: ASGI middlewares it needs outside the guard (so the guard sees the path they
    #: make), innermost first
    middlewares: tuple[Callable[[ASGIApp], ASGIApp], ...] = ()
    #: static files: (path, a factory of the ASGI app serving them, route name)
    mounts: tuple[tuple[str, Callable[[], ASGIApp], str], ...] = ()
    #: whether a request is answered by this dialect, seen from outside its middlewares;
    #: such responses also carry a plain ``request-id`` (ElevenLabs' SDK reads it)
    plain_request_id: Callable[[Scope], bool] | None = None

    def websocket_paths(self) -> list[str]:
        """Its WebSocket routes as a caller writes them (without a hidden prefix)."""
        hidden = self.prefix if self.hidden_prefix and self.prefix else ""
        return [
            route.path.removeprefix(hidden)
            for router in self.routers
            for route in router.routes
            if isinstance(route, APIWebSocketRoute)
        ]


@dataclass
class Dialects:
    """The app's dialects, asked by path: built once by ``create_app`` from its list.

    ``ops`` are the app's own operations paths (probes and metrics), labelled ``"ops"``,
    which the guard leaves out of the request metrics; ``open_paths`` / ``open_prefixes``
    are the app's own paths that need no key (probes, API documentation); ``default``
    labels the requests no dialect claims (orate's own routes).
    """

    dialects: Sequence[Dialect]
    default: str
    ops: frozenset[str] = frozenset()
    open_paths: frozenset[str] = frozenset()
    open_prefixes: tuple[str, ...] = ()
    envelopes: Envelopes = field(default_factory=Envelopes)

    def __post_init__(self) -> None:
        self._open = frozenset(self.open_paths).union(*(d.open_paths for d in self.dialects))
        self._open_prefixes = tuple(self.open_prefixes) + tuple(
            p for d in self.dialects for p in d.open_prefixes
        )
        # longest prefix first, so a prefix inside another's never shadows it
        self._prefixed = sorted(
            (d for d in self.dialects if d.prefix), key=lambda d: len(d.prefix or ""), reverse=True
        )
        self._first_message = [
            (re.compile(pattern), reader)
            for d in self.dialects
            for pattern, reader in d.first_message_keys
        ]
        for d in self.dialects:
            if d.prefix and d.envelope is not None:
                self.envelopes.register(d.prefix, *d.envelope)

    def __iter__(self) -> Iterator[Dialect]:
        return iter(self.dialects)

    def is_open(self, path: str) -> bool:
        """Routes that need no key even when keys exist."""
        return path in self._open or path.startswith(self._open_prefixes)

    def label(self, path: str) -> str:
        """The metrics label of a request to ``path``: ``"ops"``, a dialect's name, or the
        default."""
        if path in self.ops:
            return "ops"
        for d in self._prefixed:
            if path.startswith(d.prefix or ""):
                return d.name
        for d in self.dialects:
            if d.counts is not None and d.counts(path):
                return d.name
        return self.default

    def first_message_key(self, path: str) -> KeyReader | None:
        """How to read the key from the first message of a WebSocket to ``path``, when its
        dialect sends it there."""
        return next((reader for p, reader in self._first_message if p.match(path)), None)

    def plain_request_id(self, scope: Scope) -> bool:
        """Whether the response to this request carries a plain ``request-id`` too."""
        return any(d.plain_request_id is not None and d.plain_request_id(scope) for d in self)

    def shown(self, path: str) -> str:
        """A path as its caller wrote it (a hidden prefix the dispatch added taken off)."""
        for d in self._prefixed:
            if d.hidden_prefix and path.startswith(d.prefix or ""):
                return path.removeprefix(d.prefix or "")
        return path

    def websocket_paths(self) -> list[str]:
        return [p for d in self.dialects for p in d.websocket_paths()]
