"""Metrics on the HTTP side. The metrics themselves live with the speech service that
records them (``orate.speech.metrics``); the ``dialect`` label of a request comes from
the app's dialects (``api/http/dialect.py``). This module re-exports ``Metrics`` for the
routes and middlewares.
"""

from __future__ import annotations

from orate.speech.metrics import Metrics

__all__ = ["Metrics"]
