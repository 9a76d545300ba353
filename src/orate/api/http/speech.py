"""Request and response pieces that several dialects' speech routes share.

Pronunciation dictionaries are named the same way in every dialect that takes them
(ElevenLabs' ``pronunciation_dictionary_locators``, accepted by OpenAI, Hume,
nano-gpt and inference.club bodies as an orate extension), and orate's own
``X-Orate-*`` response headers are the same on every route that answers with audio.
They live here so that no dialect imports another.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel

from orate.speech.pipeline import Speech


class DictionaryLocator(BaseModel):
    """ElevenLabs' ``pronunciation_dictionary_locators`` item."""

    pronunciation_dictionary_id: str
    version_id: str | None = None


def locators(items: list[Any] | None) -> tuple[tuple[str, str | None], ...]:
    """Dictionary locators as the canonical request carries them (shared by dialects)."""
    return tuple((i.pronunciation_dictionary_id, i.version_id) for i in items or ())


def speech_headers(speech: Speech) -> dict[str, str]:
    """``X-Orate-*``: the model, voice, sample rate, cache result, generation id (and its
    audio URL) and engine of a speech, plus its warnings."""
    plan = speech.plan
    voice = plan.voices[0].label() if plan.voices else ""
    return {
        "X-Orate-Model": plan.model.id,
        "X-Orate-Voice": voice,
        "X-Orate-Sample-Rate": str(plan.sample_rate),
        "X-Orate-Cache": speech.cache,
        "X-Orate-Generation-Id": speech.id,
        "X-Orate-Audio-Url": f"/v1/audio/files/{speech.id}",
        "X-Orate-Engine": plan.voices[0].engine if plan.voices else plan.model.engine,
        **warning_headers(plan.warnings),
    }


def warning_headers(warnings: list[str]) -> dict[str, str]:
    """``X-Orate-Warnings``: what could not be read as asked, as a JSON list (ASCII, so any
    IPA symbol survives a header)."""
    return {"X-Orate-Warnings": json.dumps(warnings)} if warnings else {}
