"""The nano-gpt dialect: ``/api/tts`` (sync JSON or audio, or a durable job) and
``/api/tts/status``. Its errors are OpenAI-shaped, as nano-gpt's are."""

from __future__ import annotations

from orate.api.http.dialect import Dialect
from orate.api.nanogpt import routes

DIALECT = Dialect(name="nanogpt", routers=(routes.router,), prefix="/api/")
