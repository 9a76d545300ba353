"""The OpenAI ``audio.speech`` dialect: ``/v1/audio/speech``, ``/v1/models``,
``/v1/audio/voices``, each also at the root (the SDK without ``/v1`` in its base URL)."""

from __future__ import annotations

from orate.api.http.dialect import Dialect
from orate.api.openai import routes


def _counts(path: str) -> bool:
    """OpenAI's speech and model routes, at ``/v1`` and at the root."""
    return path.endswith("/audio/speech") or path.startswith(("/v1/models", "/models"))


DIALECT = Dialect(
    name="openai",
    routers=(routes.router,),
    counts=_counts,
    # Open WebUI fetches {base}/audio/voices with no key at all (it sends its key only
    # with speech requests), and the list holds nothing of any caller's (saved voices
    # are under /v1/voices, which needs a key)
    open_paths=frozenset({"/v1/audio/voices", "/audio/voices"}),
)
