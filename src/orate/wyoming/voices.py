"""The Wyoming voice list: what ``describe`` advertises and how ``synthesize`` picks a voice.

Wyoming names voices in one flat namespace per program, while orate has models, each
with its voices. The table here flattens them once per process: a neural model with
one voice is listed under its model id (``piper:en_US-joe-medium``), a model with
several as ``model:voice``; the embedded engine contributes OpenAI's curated names
(``alloy``…) and then every espeak-ng voice by its language id (``en-us``). Natural
(neural) voices come first because Home Assistant defaults to the first voice of a
language; which models are natural is the catalog's call (``Catalog``'s ``natural``
when it has one, else "anything but the embedded engine"), not a list of names here.

Only voices that will synthesize are listed: upstream (gateway) models are left out
because their voices are the provider's and cannot be listed without asking it.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field

from wyoming.info import Attribution, TtsProgram, TtsVoice, TtsVoiceSpeaker

from orate import __version__
from orate.catalog.models import Catalog, Model
from orate.catalog.openai import OPENAI_VOICES
from orate.config import Settings
from orate.engines.base import VoiceInfo

log = logging.getLogger("orate.wyoming")

_LANG = re.compile(r"^[a-z]{2,8}(?:[-_][a-z0-9]{1,8})*$", re.IGNORECASE)

# Who made each kind of engine, where to read more, and the licence of its voices.
# An engine may carry its own ``attribution_name``/``attribution_url``/``license``
# attributes (a neural voice shipped in a wheel knows its licence best).
_ATTRIBUTION: dict[str, tuple[str, str, str]] = {
    "espeak": ("eSpeak NG", "https://github.com/espeak-ng/espeak-ng", "GPL-3.0-or-later"),
    "piper": ("Piper", "https://github.com/rhasspy/piper", "see the voice's model card"),
    "kokoro": ("Kokoro-82M (hexgrad)", "https://huggingface.co/hexgrad/Kokoro-82M", "Apache-2.0"),
}


def language_tag(code: str) -> str:
    """``en_us`` / ``en-us`` → ``en-US``: one spelling for Home Assistant to match."""
    parts = code.replace("_", "-").split("-")
    return "-".join(
        [parts[0].lower()] + [p.upper() if len(p) == 2 else p.lower() for p in parts[1:]]
    )


def _key(code: str) -> str:
    return code.replace("_", "-").lower()


def _languages(info: VoiceInfo) -> list[str]:
    """The voice's language tags, keeping only well-formed codes."""
    out: list[str] = []
    for code in (info.language, *info.languages):
        if code and _LANG.match(code) and language_tag(code) not in out:
            out.append(language_tag(code))
    return out


@dataclass(frozen=True)
class WyomingVoice:
    """One advertised voice: the model and orate voice name a synthesis will use."""

    name: str
    model: str
    voice: str
    languages: tuple[str, ...]
    description: str
    natural: bool
    attribution: tuple[str, str, str]
    version: str
    speakers: tuple[str, ...] = ()  # for a model with several voices: speaker → voice


@dataclass
class VoiceTable:
    """Every voice the Wyoming program offers, in the order ``describe`` lists them."""

    voices: list[WyomingVoice] = field(default_factory=list)
    by_name: dict[str, WyomingVoice] = field(default_factory=dict)
    default: WyomingVoice | None = None

    @classmethod
    def build(cls, catalog: Catalog, settings: Settings) -> VoiceTable:
        table = cls()
        natural: list[WyomingVoice] = []
        plain: list[WyomingVoice] = []
        espeak_model: Model | None = None
        for model in catalog.models.values():
            if model.alias_of:
                continue  # a vendor's id for a model listed under its own name
            if model.engine == "espeak":
                if espeak_model is None or model.id == "espeak-ng":
                    espeak_model = model
                continue
            try:
                engine = catalog.registry.engine(model.engine)
                is_natural = _natural(catalog, model)
                infos = engine.voices()
            except Exception as exc:  # one broken model must not take the listener down
                log.warning("Wyoming: leaving out model %s: %s", model.id, exc)
                continue
            attribution = _attribution(model.engine)
            for info in infos:
                name = model.id if len(infos) == 1 else f"{model.id}:{info.id}"
                description = f"{model.id} {info.name}" if len(infos) > 1 else model.description
                voice = WyomingVoice(
                    name,
                    model.id,
                    info.id,
                    tuple(_languages(info)),
                    description,
                    is_natural,
                    attribution,
                    engine.version,
                )
                (natural if is_natural else plain).append(voice)
        if espeak_model is not None:
            engine = catalog.registry.engine("espeak")
            attribution = _attribution("espeak")
            known = {v.id: v for v in engine.voices()}
            for alias, params in OPENAI_VOICES.items():
                base = known.get(params.voice)
                langs = tuple(_languages(base)) if base else ("en",)
                plain.append(
                    WyomingVoice(
                        alias,
                        espeak_model.id,
                        alias,
                        langs,
                        f"{alias} (espeak-ng {params.label()})",
                        False,
                        attribution,
                        engine.version,
                    )
                )
            for info in engine.voices():
                plain.append(
                    WyomingVoice(
                        info.id,
                        espeak_model.id,
                        info.id,
                        tuple(_languages(info)),
                        f"{info.name} (espeak-ng, {info.gender})",
                        False,
                        attribution,
                        engine.version,
                    )
                )
        for voice in natural + plain:  # stable: natural first, catalog order within
            if voice.name.lower() not in table.by_name:
                table.voices.append(voice)
                table.by_name[voice.name.lower()] = voice
        table.default = _default(table, catalog, settings)
        return table

    def find(
        self, name: str | None, language: str | None, speaker: str | None = None
    ) -> WyomingVoice:
        """The voice by name, else the first (natural first) speaking the language, else
        the default. Raises ``LookupError`` with text fit to show a user."""
        if name:
            voice = self.by_name.get(name.strip().lower())
            if voice is None:
                # a speaker of a multi-voice model, sent Piper-style as name + speaker
                voice = self.by_name.get(f"{name.strip()}:{speaker or ''}".lower())
            if voice is None:  # a plain engine voice name: Piper's ``en_US-joe-medium``
                voice = self._by_plain_name(name.strip().lower())
            if voice is None:
                raise LookupError(
                    f"no voice {name!r}; send describe for the list "
                    f"({len(self.voices)} voices, e.g. "
                    f"{', '.join(v.name for v in self.voices[:5])})"
                )
            return voice
        if language:
            wanted = _key(language)
            for exact in (True, False):
                for voice in self.voices:
                    for lang in voice.languages:
                        have = _key(lang)
                        if have == wanted or (
                            not exact and (have.split("-")[0] == wanted.split("-")[0])
                        ):
                            return voice
            raise LookupError(
                f"no voice speaks the language {language!r}; send describe "
                "for the languages of each voice"
            )
        if self.default is None:
            raise LookupError("this server has no voice to speak with")
        return self.default

    def _by_plain_name(self, name: str) -> WyomingVoice | None:
        """A voice listed as ``model:voice`` or under a model id ``engine:name``, asked for
        by its own name (what wyoming-piper configurations and wyoming-bench send)."""
        for voice in self.voices:  # natural first
            if voice.name.lower().split(":", 1)[-1] == name or voice.voice.lower() == name:
                return voice
        return None

    def program(self) -> TtsProgram:
        """The one ``tts`` program of the ``info`` answer."""
        voices = [
            TtsVoice(
                name=v.name,
                description=v.description,
                attribution=Attribution(
                    name=f"{v.attribution[0]} ({v.attribution[2]})", url=v.attribution[1]
                ),
                installed=True,
                version=v.version,
                languages=list(v.languages),
                speakers=[TtsVoiceSpeaker(s) for s in v.speakers] or None,
            )
            for v in self.voices
        ]
        return TtsProgram(
            name="orate",
            description="orate: self-hosted text-to-speech (natural voices "
            "first, then espeak-ng's)",
            attribution=Attribution(
                name="orate (Apache-2.0)", url="https://github.com/orate-tts/orate"
            ),
            installed=True,
            version=__version__,
            voices=voices,
            supports_synthesize_streaming=True,
        )


def _natural(catalog: Catalog, model: Model) -> bool:
    """Whether a model sounds natural: its engine declares it (espeak-ng's does not)."""
    return catalog.registry.engine(model.engine).natural


def _attribution(engine_name: str) -> tuple[str, str, str]:
    """Who made an engine's voices, with a link and the licence, by engine kind."""
    kind = engine_name.split(":", 1)[0]
    return _ATTRIBUTION.get(kind, (engine_name, "", "see the engine's package"))


def _default(table: VoiceTable, catalog: Catalog, settings: Settings) -> WyomingVoice | None:
    """What a request without a voice speaks with: the server's default model and voice
    (``ORATE_DEFAULT_MODEL`` / ``ORATE_DEFAULT_VOICE``), resolved by the catalog as the
    HTTP dialects resolve them, so Wyoming and OpenAI's defaults sound the same. Falls
    back to the first listed voice when the default model does not exist."""
    wanted = settings.default_voice.strip()
    model = catalog.model(settings.default_model)
    if model is None or not wanted:
        return table.voices[0] if table.voices else None
    try:
        params = catalog.resolve_voice(model, wanted)
        info = {v.id: v for v in catalog.voices(model)}.get(params.voice)
        langs = tuple(_languages(info)) if info is not None else ("en-US",)
    except Exception as exc:  # a default that does not resolve: say so, keep serving
        log.warning("Wyoming: default voice %s/%s does not resolve: %s", model.id, wanted, exc)
        return table.by_name.get(wanted.lower()) or (table.voices[0] if table.voices else None)
    listed = table.by_name.get(wanted.lower())
    attribution = listed.attribution if listed is not None else ("orate", "", "")
    return WyomingVoice(
        wanted,
        model.id,
        wanted,
        langs,
        f"{model.id} {wanted} (default)",
        _natural(catalog, model),
        attribution,
        __version__,
    )
