"""``orate lexicon``: pronunciation dictionaries (add, list, show, rm)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from orate.cli.common import app, err, fail, with_library
from orate.cli.tables import JSON_OPTION, WIDE_OPTION, Column, field, show

if TYPE_CHECKING:
    from orate.library.library import Library
    from orate.library.tables import LexiconVersion

lexicon_app = typer.Typer(
    help="Pronunciation dictionaries (lexicons): words or patterns read "
    "as an alias or as IPA; use them with pronunciation_dictionary_"
    "locators.",
    no_args_is_help=True,
)
app.add_typer(lexicon_app, name="lexicon")


@lexicon_app.command("add")
def lexicon_add(
    name: Annotated[str, typer.Argument(help="a name for the dictionary")],
    file: Annotated[Path | None, typer.Option(help="a PLS file (W3C lexicon)")] = None,
    alias: Annotated[list[str] | None, typer.Option(help="WORD=ALIAS, repeatable")] = None,
    ipa: Annotated[list[str] | None, typer.Option(help="WORD=IPA, repeatable")] = None,
    description: Annotated[str, typer.Option(help="what the dictionary is for")] = "",
) -> None:
    """Create a dictionary (owned by 'local', the owner when keys are off)."""
    from orate.library.tables import LOCAL_OWNER
    from orate.speech.lexicon import LexiconError, rules_from, rules_from_pls

    items: list[dict[str, str]] = []
    for spec, kind in [(a, "alias") for a in alias or []] + [(p, "phoneme") for p in ipa or []]:
        word, sep, value = spec.partition("=")
        if not sep:
            fail(f"{spec!r}: write WORD=VALUE")
        items.append({"string_to_replace": word, "type": kind, kind: value})
    try:
        rules = rules_from_pls(file.read_bytes()) if file else []
        rules += rules_from(items)
    except LexiconError as exc:
        fail(str(exc))
    if not rules:
        fail("give --file, --alias or --ipa")

    async def work(lib: Library) -> LexiconVersion:
        return await lib.lexicons.create(
            LOCAL_OWNER, name, [r.to_dict() for r in rules], description
        )

    row = with_library(work)
    err.print(f"created {row.dictionary_id} ({len(rules)} rules), version {row.version_id}")
    print(row.dictionary_id)


LEXICON_COLUMNS = (
    Column("id", field("id")),
    Column("name", field("name"), flex=True),
    Column("version", field("version"), 1, justify="right"),
    Column("rules", field("rules_count"), 1, justify="right"),
    Column("owner", field("created_by"), 2),
)


@lexicon_app.command("list")
def lexicon_list(
    as_json: Annotated[bool, JSON_OPTION] = False, wide: Annotated[bool, WIDE_OPTION] = False
) -> None:
    """Every dictionary's latest version."""
    from orate.library.lexicons import lexicon_json

    async def work(lib: Library) -> list[dict[str, Any]]:
        return [lexicon_json(r) for r in await lib.lexicons.list(None, limit=1000)]

    rows = with_library(work)
    show(
        rows,
        LEXICON_COLUMNS,
        title=f"{len(rows)} pronunciation dictionaries",
        wide=wide,
        as_json=as_json,
    )


@lexicon_app.command("show")
def lexicon_show(ref: Annotated[str, typer.Argument(help="dictionary id")]) -> None:
    """A dictionary's latest version, as JSON."""
    from orate.library.lexicons import lexicon_json

    async def work(lib: Library) -> LexiconVersion | None:
        return await lib.lexicons.get(None, ref)

    row = with_library(work)
    if row is None:
        fail(f"no pronunciation dictionary {ref!r}")
    print(json.dumps(lexicon_json(row), indent=1, ensure_ascii=False))


@lexicon_app.command("rm")
def lexicon_rm(ref: Annotated[str, typer.Argument(help="dictionary id")]) -> None:
    """Delete a dictionary and all its versions."""

    async def work(lib: Library) -> bool:
        return await lib.lexicons.delete(None, ref)

    if not with_library(work):
        fail(f"no pronunciation dictionary {ref!r}")
    err.print(f"deleted {ref}")
