"""The model catalog: which model ids exist, which engine serves each, and voice names.

Dialects name models and voices in their own vocabulary (OpenAI's ``tts-1``
and ``alloy``); the catalog turns those names into an engine and concrete
``VoiceParams`` so nothing downstream knows about any dialect.
"""

from __future__ import annotations

from dataclasses import dataclass

from orate.engines.base import UnknownVoice, VoiceInfo, VoiceParams
from orate.engines.registry import engine_by_name

# OpenAI's built-in voice names → distinct espeak voices (accent + variant).
OPENAI_VOICES: dict[str, VoiceParams] = {
    "alloy": VoiceParams(voice="en-us", variant="f2"),
    "ash": VoiceParams(voice="en-us", variant="m3"),
    "ballad": VoiceParams(voice="en-gb-x-rp", variant="m2"),
    "coral": VoiceParams(voice="en-us", variant="f4"),
    "echo": VoiceParams(voice="en-us", variant="m1"),
    "fable": VoiceParams(voice="en-gb", variant="m4"),
    "onyx": VoiceParams(voice="en-us", variant="m7"),
    "nova": VoiceParams(voice="en-us", variant="f5"),
    "sage": VoiceParams(voice="en-gb", variant="f3"),
    "shimmer": VoiceParams(voice="en-us", variant="f1"),
    "verse": VoiceParams(voice="en-us", variant="m5"),
    "marin": VoiceParams(voice="en-gb-scotland", variant="f2"),
    "cedar": VoiceParams(voice="en-us", variant="m6"),
}

# a fixed date so /v1/models is stable across restarts (the day orate's catalog began)
CATALOG_CREATED = 1_763_683_200


@dataclass(frozen=True)
class Model:
    id: str
    engine: str
    description: str
    created: int = CATALOG_CREATED
    owned_by: str = "orate"
    aliases_openai_voices: bool = True


class Catalog:
    """Models served by this process, and name → voice resolution per model."""

    def __init__(self) -> None:
        espeak = "espeak-ng 1.52 (embedded): 100+ languages, no model download"
        self.models: dict[str, Model] = {
            m.id: m
            for m in (
                Model("tts-1", "espeak", f"OpenAI-compatible id served by {espeak}"),
                Model("tts-1-hd", "espeak", f"OpenAI-compatible id served by {espeak}"),
                Model("gpt-4o-mini-tts", "espeak", f"OpenAI-compatible id served by {espeak}"),
                Model("gpt-4o-mini-tts-2025-12-15", "espeak",
                      f"OpenAI-compatible id served by {espeak}"),
                Model("espeak-ng", "espeak", espeak),
                Model("octave-1", "espeak", f"Hume Octave 1-compatible id served by {espeak}"),
                Model("octave-2", "espeak", f"Hume Octave 2-compatible id served by {espeak}"),
            )
        }

    def model(self, model_id: str) -> Model | None:
        return self.models.get(model_id)

    def resolve_voice(self, model: Model, voice: str | VoiceParams) -> VoiceParams:
        """A model's voice by name (OpenAI alias, engine voice, ``voice+variant``) or params."""
        engine = engine_by_name(model.engine)
        if isinstance(voice, VoiceParams):
            return engine.check_voice(voice)
        name = voice.strip()
        if not name:
            raise UnknownVoice("voice is empty; name a voice such as 'alloy' or 'en-us'")
        if model.aliases_openai_voices and name.lower() in OPENAI_VOICES:
            return engine.check_voice(OPENAI_VOICES[name.lower()])
        return engine.check_voice(VoiceParams(engine=model.engine, voice=name))

    def voices(self, model: Model) -> list[VoiceInfo]:
        return engine_by_name(model.engine).voices()

    def voice_names(self, model: Model) -> list[str]:
        names = list(OPENAI_VOICES) if model.aliases_openai_voices else []
        return names + [v.id for v in self.voices(model)]
