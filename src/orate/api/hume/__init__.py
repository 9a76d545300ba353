"""The Hume Octave TTS dialect, for the official ``hume`` SDK: ``routes.py`` (``/v0/tts…``:
JSON, file, streaming; voices), ``websocket.py`` (``/v0/tts/stream/input``),
``frames.py`` (events as Hume's chunks and WAV framing)."""

from __future__ import annotations

from orate.api.http.dialect import Dialect
from orate.api.http.errors import fastapi_validation
from orate.api.hume import routes, websocket

DIALECT = Dialect(
    name="hume",
    routers=(routes.router, websocket.router),
    prefix=routes.PREFIX,
    envelope=(routes.envelope, fastapi_validation),
)
