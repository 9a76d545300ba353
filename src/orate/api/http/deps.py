"""Typed FastAPI dependencies: how a route receives the speech service and the library.

The composition root's ``Services`` hang on the app (``create_app`` puts them there);
this module is the one place that reads them, so a route declares what it needs
(``speech: SpeechDep``) instead of digging in ``request.app.state``.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends
from starlette.requests import HTTPConnection

from orate.api.http.errors import ApiError
from orate.library.library import Library
from orate.speech.service import SpeechService


def speech_service(conn: HTTPConnection) -> SpeechService:
    """The app's speech service (HTTP and WebSocket routes alike)."""
    speech: SpeechService | None = conn.app.state.services.speech
    if speech is None:  # only between create_app and the end of startup
        raise ApiError(503, "starting", "the server is still starting; retry shortly")
    return speech


def library_of(conn: HTTPConnection) -> Library:
    """The app's library (history, voices, jobs, keys)."""
    lib: Library | None = conn.app.state.services.library
    if lib is None:
        raise ApiError(503, "library_unavailable", "the library is not available")
    return lib


SpeechDep = Annotated[SpeechService, Depends(speech_service)]
LibraryDep = Annotated[Library, Depends(library_of)]
