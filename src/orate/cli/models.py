"""``orate models``: list the catalog; pull or remove Piper, Kokoro and hibari models."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.text import Text

from orate.cli.common import app, err, fail, load_services, load_settings, note
from orate.cli.tables import JSON_OPTION, WIDE_OPTION, Column, field, show

models_app = typer.Typer(
    help="Models: list the catalog; pull or remove Piper and Kokoro "
    "voices and hibari's other voices in the model store.",
    add_completion=False,
    no_args_is_help=True,
)
app.add_typer(models_app, name="models")


MODEL_COLUMNS = (
    Column("id", field("id")),
    Column("engine", field("engine")),
    Column("voices", field("voice_count"), 1, justify="right"),
    Column("$/1k chars", lambda r: f"{r['per_1k_chars']:g}", 1, justify="right"),
    Column("mode", field("mode"), 2),
    Column("rate", field("sample_rate"), 3, justify="right"),
    Column(
        "languages",
        lambda r: f"{len(r['languages'])}: {', '.join(r['languages'])}" if r["languages"] else "-",
        4,
        flex=True,
    ),
)


@models_app.command("list")
def models_list(
    as_json: Annotated[bool, JSON_OPTION] = False, wide: Annotated[bool, WIDE_OPTION] = False
) -> None:
    """Every model this server would serve, with its engine, voices and price."""

    settings = load_settings()
    catalog = load_services(settings).catalog
    rows = []
    for model in catalog.models.values():
        price = catalog.price(model.id)
        rows.append(
            {
                "id": model.id,
                **catalog.describe(model),
                "per_1k_chars": price.per_1k_chars,
                "per_second": price.per_second,
            }
        )
    show(
        rows,
        MODEL_COLUMNS,
        title=f"{len(rows)} models (store: {settings.resolved_models_dir()})",
        wide=wide,
        as_json=as_json,
    )
    if not as_json:
        print_store_voices(rows)


def store_voice_lines(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """What model listings say about voices that install into the store, once per engine:
    which are installed, which can be (and how), and which files are damaged."""
    lines, seen = [], set()
    for row in rows:
        engine = row.get("engine")
        if "installable_voices" not in row or engine in seen:
            continue
        seen.add(engine)
        installed = ", ".join(row.get("installed_voices", ())) or "none"
        lines.append(f"{engine} voices installed: {installed}.")
        for v in row["installable_voices"]:
            lines.append(
                f"  installable: {v['id']} ({v['gender']}, {v['language']}): "
                f"`{v['install']}` on a connected machine, or copy the file to "
                f"{v['or_copy_to']}"
            )
        for v in row.get("broken_voices", ()):
            lines.append(f"  NOT USABLE: {v['id']}: {v['reason']}")
    return lines


def print_store_voices(rows: Sequence[Mapping[str, Any]]) -> None:
    console = Console()
    for line in store_voice_lines(rows):
        console.print(Text(line))  # Text: file paths with [brackets] are not markup


@models_app.command("pull")
def models_pull(
    spec: Annotated[
        str,
        typer.Argument(
            help="piper:en_US-lessac-medium, kokoro, or hibari:fenrir (emma, fable, kore)"
        ),
    ],
    base_url: Annotated[
        str | None,
        typer.Option(
            help="a mirror with the same paths as the publishers' download sites (for hibari: "
            "the voice files at its root)"
        ),
    ] = None,
) -> None:
    """Download a voice into the model store (resumable, checksummed)."""
    from orate.engines.download import DownloadError, pull

    settings = load_settings()
    try:
        files = pull(spec, settings.resolved_models_dir(), base_url=base_url, console=err)
    except (DownloadError, ValueError) as exc:
        fail(str(exc))
    note(f"pulled {spec}: {', '.join(f.name for f in files)}; restart the server to serve it")


@models_app.command("rm")
def models_rm(
    spec: Annotated[str, typer.Argument(help="piper:NAME, kokoro, hibari:VOICE or a file stem")],
) -> None:
    """Delete a voice from the model store."""
    from orate.engines.download import remove

    try:
        removed = remove(spec, load_settings().resolved_models_dir())
    except ValueError as exc:
        fail(str(exc))
    if not removed:
        fail(f"no model {spec!r} in the store")
    note(f"removed {len(removed)} files")
