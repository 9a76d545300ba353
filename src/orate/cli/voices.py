"""``orate voices``: built-in voices, and saved voices (create, list, rm)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from orate.cli.common import (
    app,
    fail,
    load_services,
    load_settings,
    note,
    with_library,
    with_speech,
)
from orate.cli.tables import JSON_OPTION, WIDE_OPTION, Column, field, show

if TYPE_CHECKING:
    from orate.library.library import Library
    from orate.speech.service import SpeechService

voices_app = typer.Typer(
    help="Built-in voices, and your saved voices (create, list, rm).", add_completion=False
)
app.add_typer(voices_app, name="voices")


@voices_app.callback(invoke_without_command=True)
def voices(
    ctx: typer.Context,
    language: Annotated[
        str | None,
        typer.Option(help="only voices whose language starts with this, e.g. fr or en-gb"),
    ] = None,
    model: Annotated[str | None, typer.Option(help="model id")] = None,
    as_json: Annotated[bool, JSON_OPTION] = False,
    wide: Annotated[bool, WIDE_OPTION] = False,
) -> None:
    """List the built-in voices of a model (the OpenAI names are aliases of these)."""
    if ctx.invoked_subcommand:
        return
    from orate.catalog.openai import OPENAI_VOICES

    settings = load_settings()
    catalog = load_services(settings).catalog
    found = catalog.model(model or settings.default_model)
    if found is None:
        fail(f"unknown model {model!r}; models: {', '.join(catalog.models)}")
    rows = [
        v
        for v in [*catalog.named_voices(found), *catalog.voices(found)]
        if not language or any(lang.startswith(language.lower()) for lang in v.languages)
    ]
    if as_json:
        print(json.dumps([v.__dict__ for v in rows], default=list, indent=1))
        return
    show(
        [v.__dict__ for v in rows],
        BUILTIN_VOICE_COLUMNS,
        title=f"{len(rows)} voices of {found.id}",
        wide=wide,
    )
    from orate.cli.models import print_store_voices

    print_store_voices([catalog.describe(found)])  # voices that install into the store
    if not language and found.aliases_openai_voices:
        aliases = ", ".join(f"{k}={catalog.resolve_voice(found, k).label()}" for k in OPENAI_VOICES)
        hint = " Add a variant with +, e.g. en-us+f3." if found.engine == "espeak" else ""
        Console().print(f"OpenAI names: {aliases}.{hint}")


BUILTIN_VOICE_COLUMNS = (
    Column("id", field("id")),
    Column("name", field("name"), flex=True),
    Column("language", field("language")),
    Column("gender", field("gender"), 1),
    Column("languages", lambda v: ", ".join(v["languages"]), 2),
)


@voices_app.command("create")
def voices_create(
    name: Annotated[str, typer.Argument(help="a name, unique among your voices")],
    from_generation: Annotated[str | None, typer.Option(help="copy a generation's voice")] = None,
    description: Annotated[
        str | None,
        typer.Option(help="design from a description, e.g. 'a deep, slow, older British man'"),
    ] = None,
    seed: Annotated[int, typer.Option(help="another variation of the description")] = 0,
    voice: Annotated[str, typer.Option(help="base voice, e.g. en-gb or en-us+f3")] = "en-us",
    variant: Annotated[str | None, typer.Option(help="variant, e.g. f3, m2, whisper")] = None,
    pitch: Annotated[
        int | None, typer.Option(min=0, max=100, help="base pitch, 0 low to 100 high (espeak 50)")
    ] = None,
    pitch_range: Annotated[
        int | None,
        typer.Option("--range", min=0, max=100, help="pitch variation, 0 monotone to 100 lively"),
    ] = None,
    rate: Annotated[
        float, typer.Option(min=0.25, max=4.0, help="speaking rate, 1 is normal")
    ] = 1.0,
    volume: Annotated[
        int | None, typer.Option(min=0, max=200, help="loudness, 100 is normal")
    ] = None,
) -> None:
    """Save a voice from parameters, a description or a generation."""
    from orate.engines.base import VoiceParams
    from orate.library.tables import LOCAL_OWNER
    from orate.library.voices import VoiceExists, voice_json
    from orate.speech.service import (
        GenerationNotFound,
        UnknownEngine,
        UnknownVoice,
        VoiceSource,
    )

    async def work(speech: SpeechService) -> dict[str, Any]:
        params = (
            None
            if from_generation or description
            else VoiceParams(
                voice=voice,
                variant=variant,
                pitch=pitch,
                pitch_range=pitch_range,
                rate=rate,
                volume=volume,
            )
        )
        source = VoiceSource(
            generation_id=from_generation,
            params=params,
            description=None if from_generation else description,
            seed=seed,
        )
        try:
            row = await speech.save_voice(LOCAL_OWNER, None, name, source)
        except GenerationNotFound:
            fail(f"no generation {from_generation!r}")
        except UnknownEngine as exc:
            fail(f"no engine {exc.args[0]!r}")
        except (UnknownVoice, VoiceExists, ValueError) as exc:
            fail(str(exc))
        return voice_json(row)

    print(json.dumps(with_speech(work), indent=1))


def _voice_label(row: dict[str, Any]) -> str:
    params: dict[str, object] = row["params"]
    return f"{params['voice']}" + (f"+{params['variant']}" if params.get("variant") else "")


SAVED_VOICE_COLUMNS = (
    Column("id", field("id")),
    Column("name", field("name")),
    Column("voice", _voice_label),
    Column("language", field("language"), 1),
    Column("source", field("source"), 2),
    Column("gender", field("gender"), 3),
    Column("created", lambda r: str(r.get("created_at", ""))[:19].replace("T", " "), 4),
    Column("description", field("description"), 5, flex=True),
)


@voices_app.command("list")
def voices_list(
    as_json: Annotated[bool, JSON_OPTION] = False, wide: Annotated[bool, WIDE_OPTION] = False
) -> None:
    """List your saved voices."""
    from orate.library.voices import voice_json

    async def work(lib: Library) -> list[dict[str, Any]]:
        rows, _ = await lib.voices.list(None, limit=1000)
        return [voice_json(r) for r in rows]

    rows = with_library(work)
    show(rows, SAVED_VOICE_COLUMNS, title=f"{len(rows)} saved voices", wide=wide, as_json=as_json)


@voices_app.command("rm")
def voices_rm(ref: Annotated[str, typer.Argument(help="voice id or name")]) -> None:
    """Delete a saved voice."""

    async def work(lib: Library) -> bool:
        return await lib.voices.delete(None, ref)

    if not with_library(work):
        fail(f"no saved voice {ref!r}")
    note(f"deleted {ref}")
