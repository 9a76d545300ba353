"""The model catalog: which model ids exist, which engine serves each, and voice names.

Dialects name models and voices in their own vocabulary (OpenAI's ``tts-1``
and ``alloy``); the catalog turns those names into an engine and concrete
``VoiceParams`` so nothing downstream knows about any dialect. Each vendor's names
are in a module of their own beside this one (``openai.py``, ``elevenlabs.py`` …).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from orate.catalog.elevenlabs import (
    ELEVENLABS_NATURAL,
    ELEVENLABS_VOICE_IDS,
    ELEVENLABS_VOICES,
    MODEL_ALIASES,
)
from orate.catalog.hume import HUME_NATURAL
from orate.catalog.kokoro import KOKORO_LANGUAGES, KOKORO_NAME, kokoro_voice, natural_kokoro_name
from orate.catalog.natural import natural_engine
from orate.catalog.openai import OPENAI_GENDERS, OPENAI_NATURAL, OPENAI_TO_KOKORO, OPENAI_VOICES
from orate.config import Price, Settings
from orate.engines.base import (
    Engine,
    UnknownVoice,
    VoiceInfo,
    VoiceParams,
    VoiceUnavailable,
    shorten,
)
from orate.engines.palette import NATURAL as NATURAL_ENGINE
from orate.engines.palette import PALETTE, spread
from orate.engines.registry import EngineRegistry
from orate.engines.upstream.engine import UPSTREAM
from orate.engines.upstream.providers import Provider


def neural_alias(engine: Engine, name: str, *, openai_first: bool = False) -> VoiceParams | None:
    """An OpenAI or Kokoro-style voice name on a neural engine: the same Kokoro voice if it
    has it, else one of its voices of the same gender (and language, for Kokoro names),
    else its first voice. Names the engine itself knows (installed or not) are not
    aliased, unless ``openai_first`` (a dialect's model id such as ``tts-1-hd``): asking the
    ``hibari`` model for its ``emma`` must say it is not installed, not answer with heart,
    and Kokoro-style names stand in for other voices only on dialect ids (nano-gpt's
    ``Kokoro-82m``), never on a real Kokoro model, where af_nobody is an error."""
    lowered = name.lower()
    if lowered in engine.known and not (openai_first and lowered in OPENAI_VOICES):
        return None
    voices = engine.voices()
    if not voices:
        return None
    ids = {v.id for v in voices}
    gender, language = None, None
    if lowered in OPENAI_VOICES:
        if OPENAI_TO_KOKORO[lowered] in ids:
            return VoiceParams(engine=engine.name, voice=OPENAI_TO_KOKORO[lowered])
        gender = OPENAI_GENDERS[lowered]
    else:
        m = KOKORO_NAME.match(lowered)
        if m is None or not openai_first:  # Kokoro names only stand in on dialect ids
            return None
        same = [v for v in voices if lowered in v.description.lower().split()]
        if same:
            return VoiceParams(engine=engine.name, voice=same[0].id)
        gender = "female" if m.group(2) == "f" else "male"
        language = KOKORO_LANGUAGES[m.group(1)]
    ranked = sorted(voices, key=lambda v: (v.gender != gender, v.language != language))
    return VoiceParams(engine=engine.name, voice=ranked[0].id)


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
    asynchronous: bool = False  # nano-gpt style: answers 202 and runs as a job
    alias_of: str | None = None  # the catalog model that really serves this id, if another


ESPEAK_MODEL = "espeak-ng"
_ESPEAK = "espeak-ng 1.52 (embedded): 100+ languages, no model download"
HIBARI_MODEL = "hibari"
_HIBARI = (
    "hibari (a natural American English voice that ships in its wheel; hibari's "
    "other voices install into the model store: orate models pull hibari:NAME)"
)
NATURAL = "natural"  # an alias target: the natural palette, else espeak-ng
NATURAL_MODEL = "natural"
_NATURAL = (
    "orate's natural voices: a palette of American English voices, female and "
    "male, from hibari and Piper joe (in wheels) and voices derived from them; "
    "espeak-ng for languages they do not speak"
)


@dataclass(frozen=True)
class Alias:
    """A vendor's model id that this server answers with one of its own models.

    Clients hard-code vendor ids (``tts-1``, ``Kokoro-82m``); each is served by the
    model ``target`` names, and every listing says so. Pointing an alias at another
    model is a change to ``ALIASES`` alone: the engine, the listings and the descriptions
    follow from it. ``NATURAL`` targets the best natural model installed (hibari, which
    ships with orate), falling back to espeak-ng.
    """

    id: str
    target: str
    vendor: str
    note: str = ""
    asynchronous: bool = False


ALIASES: tuple[Alias, ...] = (
    Alias("tts-1", NATURAL, "OpenAI"),
    Alias("tts-1-hd", NATURAL, "OpenAI"),
    Alias("gpt-4o-mini-tts", NATURAL, "OpenAI"),
    Alias("gpt-4o-mini-tts-2025-12-15", NATURAL, "OpenAI"),
    Alias("octave-1", NATURAL, "Hume Octave 1"),
    Alias("octave-2", NATURAL, "Hume Octave 2"),
    Alias(
        "Kokoro-82m",
        NATURAL,
        "nano-gpt",
        "Kokoro voice names such as af_bella map to distinct voices",
    ),
    Alias(
        "Elevenlabs-Turbo-V2.5",
        NATURAL,
        "nano-gpt",
        "asynchronous; ElevenLabs voice names such as Rachel map to distinct voices",
        asynchronous=True,
    ),
)


class Catalog:
    """Models served by this process, and name → voice resolution per model."""

    @classmethod
    def from_settings(cls, settings: Settings, registry: EngineRegistry | None = None) -> Catalog:
        """The built-in models plus every model in ``registry``'s store (a registry over
        the settings' store when none is given)."""
        registry = registry or EngineRegistry(
            settings.resolved_models_dir(), settings.model_idle_seconds
        )
        found = registry.models()
        catalog = cls(prices=settings.prices, registry=registry)
        if settings.providers_file is not None:
            from orate.engines.upstream import UpstreamEngine, load_providers

            catalog.providers = load_providers(settings.providers_file)
            registry.add(UpstreamEngine(catalog.providers))  # their models' engine
            for provider in catalog.providers:
                for model_id in provider.models:
                    names = [p.name for p in catalog.providers if model_id in p.models]
                    catalog.models[model_id] = Model(
                        model_id,
                        UPSTREAM,
                        f"upstream, via {', '.join(names)}",
                        aliases_openai_voices=False,
                    )
        for local in found:
            kind = "Piper voice" if local.kind == "piper" else "Kokoro model"
            where = (
                f"the model store ({local.files[0].name})"
                if local.source == "store"
                else f"the installed {local.source}"
            )
            catalog.models[local.id] = Model(
                local.id, local.id, f"{kind} from {where}", aliases_openai_voices=False
            )
        for model_id, engine in settings.model_engines.items():  # the operator's choice wins
            current = catalog.models.get(model_id)
            if current is not None and engine != UPSTREAM:  # providers are the file's
                # an alias stays an alias: of the built-in model of the engine now chosen
                target = (
                    next(
                        (
                            m.id
                            for m in catalog.models.values()
                            if m.engine == engine and m.alias_of is None and m.id != model_id
                        ),
                        None,
                    )
                    if current.alias_of
                    else None
                )
                catalog.models[model_id] = Model(
                    model_id,
                    engine,
                    f"{current.description.split(' served by ')[0]} served "
                    f"by {engine} (ORATE_MODEL_ENGINES)",
                    asynchronous=current.asynchronous,
                    alias_of=target,
                )
        return catalog

    def __init__(
        self,
        aliases: tuple[Alias, ...] = ALIASES,
        prices: Mapping[str, Price] | None = None,
        registry: EngineRegistry | None = None,
    ) -> None:
        self.registry = registry or EngineRegistry()  # the engines behind the models
        self.providers: list[Provider] = []  # when a gateway is set up
        self.prices: dict[str, Price] = dict(prices or {})  # the operator's table
        # other vendors' ids for a model (eleven_multilingual_v2 → Elevenlabs-Turbo-V2.5)
        self.aliases: dict[str, str] = dict(MODEL_ALIASES)
        engines = {ESPEAK_MODEL: Model(ESPEAK_MODEL, "espeak", _ESPEAK)}
        natural = natural_engine()
        if natural == NATURAL_ENGINE:
            engines[NATURAL_MODEL] = Model(NATURAL_MODEL, NATURAL_ENGINE, _NATURAL)
            engines[HIBARI_MODEL] = Model(
                HIBARI_MODEL, "hibari", _HIBARI, aliases_openai_voices=False
            )
        self.models: dict[str, Model] = dict(engines)
        for alias in aliases:
            target = engines[
                NATURAL_MODEL
                if alias.target == NATURAL and natural != "espeak"
                else ESPEAK_MODEL
                if alias.target == NATURAL
                else alias.target
            ]
            note = f"; {alias.note}" if alias.note else ""
            self.models[alias.id] = Model(
                alias.id,
                target.engine,
                f"{alias.vendor}-compatible id, an alias of "
                f"{target.id}: served by {target.description}{note}",
                asynchronous=alias.asynchronous,
                alias_of=target.id,
            )

    def model(self, model_id: str) -> Model | None:
        """A model by id, or by an alias (another vendor's id for the model serving it)."""
        found = self.models.get(model_id)
        if found is None and model_id in self.aliases:
            found = self.models.get(self.aliases[model_id])
        return found

    def price(self, model_id: str) -> Price:
        """What ``model_id`` costs the caller. The operator's table (ORATE_PRICES) wins;
        an upstream model carries the price of the first provider that declares one (the
        preferred provider, in file order); anything else costs 0, because a local
        engine bills no one."""
        if model_id in self.prices:
            return self.prices[model_id]
        for provider in self.providers:
            if model_id in provider.models and provider.price is not None:
                return provider.price
        return self.prices.get("*") or Price()

    def served_by(self, model: Model) -> str:
        """The catalog id of the model that really makes this one's audio: the alias's
        target, or the model itself."""
        return model.alias_of or model.id

    def describe(self, model: Model) -> dict[str, Any]:
        """Engine facts about a model for catalogs, as a JSON object (loads no weights).
        ``alias_of`` and ``served_by`` say plainly when a vendor's id is answered by another
        model."""
        served = {"alias_of": model.alias_of, "served_by": self.served_by(model)}
        engine = self.registry.engine(model.engine)
        listing = engine.listing(model.id)  # an engine that describes itself
        if listing is not None:
            return {
                "engine": model.engine,
                **served,
                **listing,
                "mode": "async" if model.asynchronous else "sync",
            }
        voices = engine.voices()
        languages = sorted({lang for v in voices for lang in (v.languages or (v.language,))})
        return {
            "engine": model.engine,
            **served,
            "engine_version": engine.version,
            # kinds of timestamps this model gives; all are measured by the engine
            # (espeak's events, or the neural model's own phoneme durations)
            "timestamp_types": list(engine.timestamp_kinds),
            "languages": languages,
            "voice_count": len(voices),
            "sample_rate": engine.sample_rate,
            "mode": "async" if model.asynchronous else "sync",
            # voices that install into the model store: which are there, which are not
            **engine.store_voices(),
        }

    def resolve_voice(self, model: Model, voice: str | VoiceParams) -> VoiceParams:
        """A model's voice by name (OpenAI alias, engine voice, ``voice+variant``) or params."""
        engine = self.registry.engine(model.engine)
        if model.engine == NATURAL_ENGINE:
            return self._natural_voice(model, engine, voice)
        if isinstance(voice, VoiceParams):
            return engine.check_voice(voice)
        name = voice.strip()
        if not name:
            raise UnknownVoice(engine.empty_voice)
        if model.engine != "espeak":
            if model.aliases_openai_voices and name.lower() in OPENAI_VOICES:
                # an OpenAI id: OpenAI's names mean OpenAI's voices, even where the engine
                # has a voice of the same name (hibari's "fable")
                alias = neural_alias(engine, name, openai_first=True)
                if alias is not None:
                    return engine.check_voice(alias)
            try:
                return engine.check_voice(VoiceParams(engine=model.engine, voice=name))
            except VoiceUnavailable:  # there but broken: never answered by another voice
                raise
            except UnknownVoice:
                alias = neural_alias(engine, name, openai_first=model.aliases_openai_voices)
                if alias is None:
                    raise
                return engine.check_voice(alias)
        lowered = ELEVENLABS_VOICE_IDS.get(name, name.lower())
        if model.aliases_openai_voices and lowered in OPENAI_VOICES:
            return engine.check_voice(OPENAI_VOICES[lowered])
        if lowered in ELEVENLABS_VOICES:
            return engine.check_voice(ELEVENLABS_VOICES[lowered])
        kokoro = kokoro_voice(lowered)
        if kokoro is not None:
            return engine.check_voice(kokoro)
        return engine.check_voice(VoiceParams(engine=model.engine, voice=name))

    def _natural_voice(self, model: Model, engine: Engine, voice: str | VoiceParams) -> VoiceParams:
        """A voice on the natural palette: a palette voice, a vendor's name for one, a
        Kokoro voice that an installed Kokoro model has (Japanese), or an espeak-ng voice
        for a language the palette does not speak (fr-fr, de, en-gb+m3)."""
        if isinstance(voice, VoiceParams):  # saved voices keep the engine they were made on
            if voice.engine == NATURAL_ENGINE:
                return engine.check_voice(voice)
            return self.registry.engine(voice.engine).check_voice(voice)
        name = voice.strip()
        if not name:
            raise UnknownVoice("voice is empty; name a voice such as 'alloy', 'onyx' or 'heart'")
        lowered = ELEVENLABS_VOICE_IDS.get(name, name.lower())
        palette = {v.id for v in engine.voices()}
        found = _vendor_natural(model, lowered, palette)
        if found is not None:
            return engine.check_voice(found)
        if KOKORO_NAME.match(lowered):
            kokoro = self._kokoro_natural(engine, lowered, palette)
            if kokoro is not None:
                return kokoro
        try:
            return self.registry.engine("espeak").check_voice(
                VoiceParams(engine="espeak", voice=name)
            )
        except UnknownVoice:
            names = ", ".join(sorted(palette))
            openai = ", ".join(OPENAI_NATURAL) if model.aliases_openai_voices else ""
            raise UnknownVoice(
                f"no voice {shorten(name)!r}; natural voices: {names}"
                + (f"; OpenAI's names: {openai}" if openai else "")
                + "; or an espeak-ng voice by language code for other languages (fr-fr, "
                "de, es) — GET /v1/audio/voices lists them"
            ) from None

    def _kokoro_natural(
        self, engine: Engine, lowered: str, palette: set[str]
    ) -> VoiceParams | None:
        """A Kokoro-style name on the natural model: the real Kokoro voice when a model
        has it, else a palette voice like it (English), else espeak's for its language."""
        for local in self.registry.models():  # a real Kokoro voice of that name
            if local.kind == "kokoro":
                kokoro = self.registry.engine(local.id)
                if any(v.id == lowered for v in kokoro.voices()):
                    return kokoro.check_voice(VoiceParams(engine=local.id, voice=lowered))
        english = natural_kokoro_name(lowered, palette)
        if english is not None:
            return engine.check_voice(english)
        other = kokoro_voice(lowered)  # another language: espeak's voice for it
        if other is not None:
            return self.registry.engine("espeak").check_voice(other)
        return None

    def voices(self, model: Model) -> list[VoiceInfo]:
        return self.registry.engine(model.engine).voices()

    def named_voices(self, model: Model) -> list[VoiceInfo]:
        """OpenAI's voice names as voices of ``model``, each with the language and the
        gender of the espeak voice and variant it maps to (alloy is en-us+f2: female)."""
        if model.aliases_openai_voices and model.engine == NATURAL_ENGINE:
            engine = self.registry.engine(NATURAL_ENGINE)
            by_id = {v.id: v for v in engine.voices()}
            out = []
            for name, params in OPENAI_NATURAL.items():
                base = by_id.get(params.voice)
                if base is not None:
                    out.append(
                        VoiceInfo(
                            id=name,
                            name=name.capitalize(),
                            engine=model.engine,
                            language=base.language,
                            languages=base.languages,
                            gender=base.gender,
                            description=f"OpenAI name for "
                            f"the natural voice {base.id}: {base.description}",
                        )
                    )
            return out
        if not model.aliases_openai_voices or model.engine != "espeak":
            return []
        engine = self.registry.engine("espeak")
        bases = {v.id: v for v in engine.voices()}
        out = []
        for name, params in OPENAI_VOICES.items():
            base = bases[params.voice]
            out.append(
                VoiceInfo(
                    id=name,
                    name=name.capitalize(),
                    engine=model.engine,
                    language=base.language,
                    languages=base.languages,
                    gender=engine.gender_of(params) or base.gender,
                    description=f"OpenAI name for {params.label()} ({base.name})",
                )
            )
        return out

    def voice_names(self, model: Model) -> list[str]:
        """The names a caller may send: OpenAI's (each resolves to a real voice of the
        engine), then the engine's installed voices; nothing that would fail to load."""
        names = list(OPENAI_VOICES) if model.aliases_openai_voices else []
        return names + [v.id for v in self.voices(model)]


def model_voice_names(catalog: Catalog, model: Model) -> list[str]:
    """The voice names of one model as its own users know them: Kokoro's names
    (``af_heart``…) on a Kokoro dialect id such as nano-gpt's ``Kokoro-82m``, which
    resolve to voices of the engine behind it; every other model's own names
    (``voice_names``). So ``/v1/audio/voices?model=`` differs from model to model."""
    names = catalog.voice_names(model)
    if model.alias_of is not None and "kokoro" in model.id.lower():
        kokoro = sorted(set(OPENAI_TO_KOKORO.values()))
        names = kokoro + [n for n in names if n not in kokoro and n not in OPENAI_VOICES]
    return names


def _vendor_natural(model: Model, lowered: str, palette: set[str]) -> VoiceParams | None:
    """A palette voice by its own id or a vendor's name for one (OpenAI on OpenAI ids,
    ElevenLabs, Hume); one of the same gender when its base engine is not installed."""
    found = None
    if lowered in palette:
        found = VoiceParams(engine=NATURAL_ENGINE, voice=lowered)
    elif model.aliases_openai_voices and lowered in OPENAI_NATURAL:
        found = OPENAI_NATURAL[lowered]
    elif lowered in ELEVENLABS_NATURAL:
        found = ELEVENLABS_NATURAL[lowered]
    elif " ".join(lowered.split()) in HUME_NATURAL:
        found = HUME_NATURAL[" ".join(lowered.split())]
    if found is not None and found.voice not in palette:  # its base is not installed
        gender = next(v.gender for v in PALETTE if v.id == found.voice)
        pool = [v for v in PALETTE if v.gender == gender and v.id in palette]
        found = replace(found, voice=spread(lowered, pool).id) if pool else None
    return found
