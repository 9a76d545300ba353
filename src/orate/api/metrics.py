"""Metrics on the HTTP side: which dialect a path belongs to (the ``dialect`` label of
request metrics). The metrics themselves live with the speech service that records
them (``orate.speech.metrics``); this module re-exports ``Metrics`` for the routes.
"""

from __future__ import annotations

from orate.speech.metrics import Metrics

__all__ = ["Metrics", "dialect_of"]


def dialect_of(path: str) -> str:
    if path in ("/healthz", "/readyz", "/metrics"):
        return "ops"
    if path.startswith("/v0/"):
        return "hume"
    if path.startswith("/api/"):
        return "nanogpt"
    if path.startswith("/elevenlabs/"):
        return "elevenlabs"
    if path.endswith("/audio/speech") or path.startswith(("/v1/models", "/models")):
        return "openai"
    return "library"
