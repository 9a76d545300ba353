"""The model catalog: which model ids exist, which engine serves each, and voice names.

Dialects name models and voices in their own vocabulary (OpenAI's ``tts-1``
and ``alloy``); the catalog turns those names into an engine and concrete
``VoiceParams`` so nothing downstream knows about any dialect.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

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
from orate.engines.registry import EngineRegistry, hibari_available
from orate.engines.upstream.engine import UPSTREAM

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

# ElevenLabs' premade voice names (nano-gpt's Elevenlabs models and the ElevenLabs
# dialect) → distinct espeak voices (Domi and Elli share a variant with Bella and Emily,
# so a pitch tells them apart)
ELEVENLABS_VOICES: dict[str, VoiceParams] = {
    name: VoiceParams(voice=voice, variant=variant, pitch=pitch)
    for name, voice, variant, pitch in (
        ("rachel", "en-us", "f2", None),
        ("adam", "en-us", "m3", None),
        ("bella", "en-us", "f4", None),
        ("brian", "en-us", "m1", None),
        ("sarah", "en-us", "f5", None),
        ("michael", "en-us", "m5", None),
        ("emily", "en-us", "f1", None),
        ("james", "en-gb", "m2", None),
        ("nicole", "en-us", "f3", None),
        ("antoni", "en-us", "m4", None),
        ("domi", "en-us", "f4", 68),
        ("elli", "en-us", "f1", 66),
        ("josh", "en-us", "m6", None),
        ("arnold", "en-us", "m7", None),
        ("sam", "en-us", "m2", None),
        ("charlotte", "en-gb", "f3", None),
        ("george", "en-gb", "m3", None),
        ("daniel", "en-gb", "m1", None),
        ("lily", "en-gb", "f2", None),
        ("alice", "en-gb", "f5", None),
    )
}
# ElevenLabs' real premade voice ids → the names above, so an SDK caller passing
# "21m00Tcm4TlvDq8ikWAM" gets the same voice as a nano-gpt caller passing "Rachel"
ELEVENLABS_VOICE_IDS: dict[str, str] = {
    "21m00Tcm4TlvDq8ikWAM": "rachel",
    "pNInz6obpgDQGcFmaJgB": "adam",
    "hpp4J3VqNfWAUOO0d1Us": "bella",
    "nPczCjzI2devNBz1zQrb": "brian",
    "EXAVITQu4vr4xnSDxMaL": "sarah",
    "flq6f7yk4E4fJM5XTYuZ": "michael",
    "LcfcDJNUP1GQjkzn1xUU": "emily",
    "ZQe5CZNOzWyzPSCn5a3c": "james",
    "piTKgcLEGmPE4e6mEKli": "nicole",
    "ErXwobaYiN019PkySvjV": "antoni",
    "AZnzlk1XvdvUeBnXmlld": "domi",
    "MF3mGyEYCl7XYWbV9V6O": "elli",
    "TxGEqnHWrfWFTfGW9XjX": "josh",
    "VR6AewLTigWG4xSOukaG": "arnold",
    "yoZ06aMxZJJ28mfd3POQ": "sam",
    "XB0fDUnXU5powFXDhCwa": "charlotte",
    "JBFqnCBsd6RMkjVDRZzb": "george",
    "onwK4e9ZLuTAKqWW03F9": "daniel",
    "pFZP5JQG7iQjIQuC4Bku": "lily",
    "Xb7hH8MSUJpSbSDYk0k2": "alice",
}
# ElevenLabs model ids → the catalog model that serves them (nano-gpt's ElevenLabs model),
# so both dialects follow whatever engine the catalog puts behind that one id
MODEL_ALIASES: dict[str, str] = {
    alias: "Elevenlabs-Turbo-V2.5"
    for alias in (
        "eleven_multilingual_v2",
        "eleven_turbo_v2_5",
        "eleven_flash_v2_5",
        "eleven_v3",
        "eleven_turbo_v2",
        "eleven_flash_v2",
        "eleven_monolingual_v1",
        "eleven_multilingual_v1",
    )
}
# Kokoro's voice names are <language><gender>_<name>: af_bella, bm_george, jf_alpha …
KOKORO_LANGUAGES = {
    "a": "en-us",
    "b": "en-gb",
    "e": "es",
    "f": "fr-fr",
    "h": "hi",
    "i": "it",
    "j": "ja",
    "p": "pt-br",
    "z": "cmn",
}
_KOKORO = re.compile(r"^([abefhijpz])([fm])_([a-z0-9]+)$")


def kokoro_voice(name: str) -> VoiceParams | None:
    """A Kokoro-style name as an espeak voice: its language, and a variant of its gender
    and a pitch both picked from the name, so af_bella and af_sky stay distinct and
    stable (five female variants alone would collide)."""
    m = _KOKORO.match(name.lower())
    if not m:
        return None
    variants = (
        ("f1", "f2", "f3", "f4", "f5")
        if m.group(2) == "f"
        else ("m1", "m2", "m3", "m4", "m5", "m6", "m7")
    )
    digest = hashlib.sha256(m.group(3).encode()).digest()
    return VoiceParams(
        voice=KOKORO_LANGUAGES[m.group(1)],
        variant=variants[digest[0] % len(variants)],
        pitch=38 + digest[1] % 25,
    )


# OpenAI's names as genders, so a neural engine can answer each with a voice of its own
OPENAI_GENDERS: dict[str, str] = {
    "alloy": "female",
    "ash": "male",
    "ballad": "male",
    "coral": "female",
    "echo": "male",
    "fable": "male",
    "onyx": "male",
    "nova": "female",
    "sage": "female",
    "shimmer": "female",
    "verse": "male",
    "marin": "female",
    "cedar": "male",
}
# OpenAI's voice names → Kokoro voices of the same name or character
OPENAI_TO_KOKORO = {
    "alloy": "af_alloy",
    "ash": "am_adam",
    "ballad": "bm_fable",
    "coral": "af_heart",
    "echo": "am_echo",
    "fable": "bm_fable",
    "onyx": "am_onyx",
    "nova": "af_nova",
    "sage": "af_sarah",
    "shimmer": "af_sky",
    "verse": "am_michael",
    "marin": "bf_emma",
    "cedar": "am_eric",
}


def _natural(voice: str, **adjust: float) -> VoiceParams:
    return VoiceParams(engine=NATURAL_ENGINE, voice=voice, **adjust)  # type: ignore[arg-type]


# Vendors' voice names on the natural voices: each name its own palette voice (or a
# palette voice with an adjustment of its own), of the vendor voice's gender and manner.
# OpenAI's 13 names take the 13 palette voices one each.
OPENAI_NATURAL: dict[str, VoiceParams] = {
    "alloy": _natural("heart"),
    "coral": _natural("wren"),
    "nova": _natural("finch"),
    "sage": _natural("linnet"),
    "shimmer": _natural("dove"),
    "marin": _natural("lark"),
    "ash": _natural("crow"),
    "ballad": _natural("owl"),
    "echo": _natural("heron"),
    "fable": _natural("rook"),
    "onyx": _natural("raven"),
    "verse": _natural("hawk"),
    "cedar": _natural("joe"),
}
# ElevenLabs' premade voices, by the character ElevenLabs gives each (Nicole whispers,
# Adam is deep, Michael is old …); twenty names over thirteen voices, so some are a
# palette voice with an adjustment of their own
ELEVENLABS_NATURAL: dict[str, VoiceParams] = {
    "rachel": _natural("heart"),
    "bella": _natural("dove"),
    "sarah": _natural("lark"),
    "emily": _natural("linnet"),
    "nicole": _natural("dove", breath=0.45, f0=1.05),
    "domi": _natural("wren"),
    "elli": _natural("finch"),
    "charlotte": _natural("linnet", f0=1.08, breath=0.15),
    "lily": _natural("heart", f0=0.93, formant=0.98),
    "alice": _natural("lark", f0=1.1),
    "adam": _natural("raven"),
    "brian": _natural("crow"),
    "michael": _natural("owl"),
    "james": _natural("crow", f0=1.08, rate=0.95),
    "antoni": _natural("heron"),
    "josh": _natural("rook", f0=0.92),
    "arnold": _natural("hawk"),
    "sam": _natural("heron", breath=0.2, f0=0.94),
    "george": _natural("joe"),
    "daniel": _natural("raven", f0=1.08, rate=1.04),
}
# Hume's Voice Library names that its own documentation uses, on palette voices of the
# matching description (gender, depth, manner)
HUME_NATURAL: dict[str, VoiceParams] = {
    "ava song": _natural("heart", pitch_range=60),
    "kora": _natural("wren"),
    "ito": _natural("heron", rate=0.97),
    "dacher": _natural("crow", rate=0.95),
    "male english actor": _natural("rook"),
    "colton rivers": _natural("hawk"),
    "vince douglas": _natural("raven"),
    "terrence bentley": _natural("owl"),
    "imani carter": _natural("finch"),
    "sitcom girl": _natural("wren", f0=1.06),
    "literature professor": _natural("owl", f0=1.08),
    "booming american narrator": _natural("raven", volume=125),
    "donovan sinclair": _natural("crow", f0=0.94),
    "serene assistant": _natural("linnet"),
    "campfire narrator": _natural("owl", f0=0.95, breath=0.1),
    "nature documentary narrator": _natural("joe"),
    "spanish instructor": _natural("lark"),
    "whimsical illustrator": _natural("finch", f0=1.05),
}
# Kokoro's voices by the character Kokoro gives them, where a palette voice fits
_KOKORO_NATURAL = {
    "heart": "heart",
    "bella": "dove",
    "nicole": "dove",
    "sky": "wren",
    "sarah": "lark",
    "nova": "finch",
    "alloy": "heart",
    "aoede": "linnet",
    "kore": "wren",
    "jessica": "finch",
    "river": "linnet",
    "emma": "linnet",
    "isabella": "lark",
    "alice": "lark",
    "lily": "heart",
    "adam": "raven",
    "michael": "owl",
    "echo": "heron",
    "eric": "crow",
    "onyx": "raven",
    "fenrir": "rook",
    "liam": "heron",
    "puck": "rook",
    "santa": "owl",
    "george": "joe",
    "fable": "rook",
    "lewis": "crow",
    "daniel": "raven",
}


def natural_engine() -> str:
    """The natural palette when its base voice (hibari, a dependency) is installed, else
    espeak."""
    return NATURAL_ENGINE if hibari_available() else "espeak"


def natural_kokoro_name(name: str, available: set[str]) -> VoiceParams | None:
    """An English Kokoro-style name (af_bella, bm_george) as a palette voice of its gender:
    the Kokoro voice's own character where the palette has it, else a stable pick."""
    m = _KOKORO.match(name)
    if m is None or m.group(1) not in "ab":
        return None
    gender = "female" if m.group(2) == "f" else "male"
    pick = _KOKORO_NATURAL.get(m.group(3))
    if pick is None or pick not in available:
        pool = [v for v in PALETTE if v.gender == gender and v.id in available]
        if not pool:
            return None
        pick = spread(name, pool).id
    return _natural(pick)


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
        m = _KOKORO.match(lowered)
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
        self.providers: list[Any] = []  # engines.upstream.Provider, when a gateway is set up
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

    def describe(self, model: Model) -> dict[str, object]:
        """Engine facts about a model for catalogs (loads no weights). ``alias_of`` and
        ``served_by`` say plainly when a vendor's id is answered by another model."""
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
        if _KOKORO.match(lowered):
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
