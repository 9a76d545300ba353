"""Which voice speaks each part of a request, and what that voice's engine reads.

A voice is named (a built-in, an engine voice, a caller's saved voice), designed from a
description, carried over from the previous utterance, or changed by SSML (``<voice>``,
``<lang>``, pitch). Planning asks this module; it asks the catalog, the library's saved
voices and the engines' declared abilities (``Engine.phoneme_input`` …).
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from orate.catalog.models import Catalog, Model
from orate.config import Settings
from orate.engines.base import PhonemeCheck, UnknownVoice, VoiceParams, VoiceUnavailable, shorten
from orate.speech.design import apply_directions, design_voice
from orate.speech.ssml import Style
from orate.speech.types import Context, SpeechError, Utterance

if TYPE_CHECKING:
    from orate.library.library import Library

MAX_DESCRIPTION = 1000


def voice_error(exc: UnknownVoice, param: str, prefix: str = "") -> SpeechError:
    """A refused voice as the dialects' error: 400 when the caller named a voice that is
    not there, 503 when the voice exists but this server cannot speak with it (a corrupt
    or unloadable model file, a missing package), so the caller knows whose fault it is."""
    if isinstance(exc, VoiceUnavailable):
        return SpeechError(503, VoiceUnavailable.code, f"{prefix}{exc}", param)
    return SpeechError(400, "invalid_voice", f"{prefix}{exc}", param)


class Voices:
    """Voice resolution for planning: the catalog's voices, then the owner's saved ones."""

    def __init__(self, settings: Settings, catalog: Catalog, library: Library | None) -> None:
        self.settings = settings
        self.catalog = catalog
        self.library = library
        self._languages: dict[tuple[str, str], str] = {}  # (engine, voice) → language

    async def resolve(
        self, model: Model, voice: str | VoiceParams, owner: str, provider: str = "any"
    ) -> tuple[VoiceParams, str | None]:
        """A voice by built-in name, engine name or custom voice (id or name).

        Returns the params and, for a custom voice, its id. ``provider`` limits the
        search to the built-in voices or to the owner's saved ones.
        """
        builtin_error: UnknownVoice | None = None
        if provider != "custom" or isinstance(voice, VoiceParams):
            try:
                return self.catalog.resolve_voice(model, voice), None
            except VoiceUnavailable:  # the voice is there but broken: no other voice stands in
                raise
            except UnknownVoice as exc:
                if isinstance(voice, VoiceParams) or self.library is None or provider == "builtin":
                    raise
                builtin_error = exc
        if self.library is None:
            raise UnknownVoice("saved voices need the library, which this process does not have")
        assert isinstance(voice, str)  # VoiceParams were answered or refused above
        found = await self.library.voices.find(owner, voice.strip())
        if found is None:
            first = (
                f"{builtin_error}; nor is it"
                if builtin_error
                else f"no voice {shorten(voice)!r}: not"
            )
            raise UnknownVoice(f"{first} one of your saved voices (GET /v1/voices)")
        return self.catalog.resolve_voice(model, VoiceParams(**found.params)), found.id

    async def of_utterance(
        self, model: Model, utt: Utterance, current: VoiceParams | None, seed: int, ctx: Context
    ) -> VoiceParams:
        """The voice of one utterance: named, designed from its description, or carried over."""
        description = (utt.description or "").strip()
        if len(description) > MAX_DESCRIPTION:
            raise SpeechError(
                400,
                "description_too_long",
                f"description is {len(description)} characters; the limit is {MAX_DESCRIPTION}",
                "description",
            )
        engine = self.catalog.registry.engine(model.engine)
        try:
            if not engine.designs_voices:  # an upstream reads descriptions and directions
                return self.catalog.resolve_voice(
                    model, utt.voice or current or self.settings.default_voice
                )
            if utt.voice is not None:
                params, _ = await self.resolve(model, utt.voice, ctx.owner, utt.voice_provider)
                return self._directed(params, description)
            if current is not None:
                return self._directed(current, description)
            if description:
                return design_voice(description, engine, seed=seed)
            return self.catalog.resolve_voice(model, self.settings.default_voice)
        except UnknownVoice as exc:
            raise voice_error(exc, "voice") from None

    async def styled(
        self, model: Model, params: VoiceParams, style: Style, ctx: Context
    ) -> VoiceParams:
        """The utterance's voice changed by SSML: <voice name>, <lang> (espeak switches to
        that language's voice; other engines keep theirs), and pitch (espeak only)."""
        try:
            if style.voice:
                params, _ = await self.resolve(model, style.voice, ctx.owner)
            elif (
                style.lang
                and params.engine == "espeak"
                and self.language(params).lower() != style.lang.lower()
            ):
                params = self.catalog.resolve_voice(model, style.lang.lower())
        except UnknownVoice as exc:
            raise voice_error(exc, "input", "SSML: ") from None
        if style.pitch and params.engine == "espeak":
            base = 50 if params.pitch is None else params.pitch
            params = replace(params, pitch=max(0, min(100, base + style.pitch)))
        return params

    def _directed(self, params: VoiceParams, directions: str) -> VoiceParams:
        """Acting directions applied by the engine that speaks the voice (a natural
        model may answer a language it lacks with an espeak-ng voice)."""
        if not directions:
            return params
        return apply_directions(params, directions, self.catalog.registry.engine(params.engine))

    def language(self, params: VoiceParams) -> str:
        """The language a voice reads (normalization follows it); an upstream's: English."""
        key = (params.engine, params.voice)
        if key not in self._languages:
            self._languages[key] = self._voice_language(*key)
        return self._languages[key]

    def _voice_language(self, engine_name: str, voice: str) -> str:
        try:
            engine = self.catalog.registry.engine(engine_name)
            if engine.runs_upstream:
                return "en"
            for info in engine.voices():
                if info.id == voice:
                    return info.language
        except Exception:  # an engine that cannot list voices: read as English
            return "en"
        return voice if engine_name == "espeak" else "en"

    def phoneme_check(self, params: VoiceParams) -> PhonemeCheck | None:
        """The engine's test of a transcription: the IPA symbols it has no phoneme for."""
        return self.catalog.registry.engine(params.engine).phoneme_check

    def phoneme_input(self, params: VoiceParams) -> str | None:
        """The phoneme alphabet the voice's engine reads between ``[[…]]``: ``"espeak"``
        (mnemonics), ``"ipa"`` (turned into its own alphabet), or ``None`` (none)."""
        return self.catalog.registry.engine(params.engine).phoneme_input_of(params.voice)
