"""``orate models``: list the catalog; pull or remove Piper and Kokoro models."""

from __future__ import annotations

from typing import Annotated

import typer

from orate.cli.common import app, err, fail, load_services, load_settings, note
from orate.cli.tables import JSON_OPTION, WIDE_OPTION, Column, field, show

models_app = typer.Typer(help="Models: list the catalog; pull or remove Piper and Kokoro "
                         "voices in the model store.", add_completion=False,
                         no_args_is_help=True)
app.add_typer(models_app, name="models")


MODEL_COLUMNS = (
    Column("id", field("id")),
    Column("engine", field("engine")),
    Column("voices", field("voice_count"), 1, justify="right"),
    Column("$/1k chars", lambda r: f"{r['per_1k_chars']:g}", 1, justify="right"),
    Column("mode", field("mode"), 2),
    Column("rate", field("sample_rate"), 3, justify="right"),
    Column("languages", lambda r: f"{len(r['languages'])}: {', '.join(r['languages'])}"
           if r["languages"] else "-", 4, flex=True),
)


@models_app.command("list")
def models_list(as_json: Annotated[bool, JSON_OPTION] = False,
                wide: Annotated[bool, WIDE_OPTION] = False) -> None:
    """Every model this server would serve, with its engine, voices and price."""

    settings = load_settings()
    catalog = load_services(settings).catalog
    rows = []
    for model in catalog.models.values():
        price = catalog.price(model.id)
        rows.append({"id": model.id, **catalog.describe(model),
                     "per_1k_chars": price.per_1k_chars, "per_second": price.per_second})
    show(rows, MODEL_COLUMNS, title=f"{len(rows)} models (store: "
         f"{settings.resolved_models_dir()})", wide=wide, as_json=as_json)


@models_app.command("pull")
def models_pull(
    spec: Annotated[str, typer.Argument(help="piper:en_US-lessac-medium, or kokoro")],
    base_url: Annotated[str | None, typer.Option(
        help="a mirror with the same paths as the publishers' download sites")] = None,
) -> None:
    """Download a voice into the model store (resumable, checksummed)."""
    from orate.engines.download import DownloadError, pull

    settings = load_settings()
    try:
        files = pull(spec, settings.resolved_models_dir(), base_url=base_url, console=err)
    except (DownloadError, ValueError) as exc:
        fail(str(exc))
    note(f"pulled {spec}: {', '.join(f.name for f in files)}; restart the server to "
              "serve it")


@models_app.command("rm")
def models_rm(spec: Annotated[str, typer.Argument(help="piper:NAME, kokoro or a file stem")]
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
