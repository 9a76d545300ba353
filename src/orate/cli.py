"""``orate``: serve the API, or synthesize and list voices without a server."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from orate.audio.formats import FORMATS, format_for_extension
from orate.config import Settings

app = typer.Typer(help="orate: a self-hosted text-to-speech server.", no_args_is_help=True,
                  add_completion=False)
err = Console(stderr=True)


def _fail(message: str) -> None:
    err.print(f"[red]error:[/red] {message}")
    raise typer.Exit(2)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="address to listen on")] = None,
    port: Annotated[int | None, typer.Option(help="port to listen on")] = None,
    workers: Annotated[int | None, typer.Option(help="engine worker processes")] = None,
    log_level: Annotated[str | None, typer.Option(help="uvicorn log level")] = None,
) -> None:
    """Start the HTTP server (one process; engines run in a shared worker pool)."""
    import uvicorn

    from orate.app import create_app

    overrides = {k: v for k, v in {"host": host, "port": port, "workers": workers,
                                   "log_level": log_level}.items() if v is not None}
    settings = Settings(**overrides)
    try:
        loopback = ipaddress.ip_address(settings.host).is_loopback
    except ValueError:
        loopback = settings.host == "localhost"
    if not loopback:
        err.print(f"[yellow]warning:[/yellow] listening on {settings.host} without API keys: "
                  "anyone who can reach this address can use the server")
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port,
                log_level=settings.log_level, timeout_graceful_shutdown=10)


@app.command()
def say(
    text: Annotated[str, typer.Argument(help="text to speak; '-' reads standard input")],
    output: Annotated[str, typer.Option("-o", "--output", help="file to write; '-' is stdout")],
    voice: Annotated[str | None, typer.Option(help="voice name, e.g. alloy, en-us+f3")] = None,
    format: Annotated[str | None, typer.Option(
        "--format", "-f", help=f"one of {', '.join(FORMATS)}; default from the extension")] = None,
    speed: Annotated[float, typer.Option(min=0.25, max=4.0, help="0.25 to 4.0")] = 1.0,
    model: Annotated[str | None, typer.Option(help="model id")] = None,
    timestamps: Annotated[Path | None, typer.Option(
        help="also write word and phoneme timestamps to this JSON file")] = None,
) -> None:
    """Synthesize TEXT in this process (no server needed) and write the audio."""
    from orate.engines.catalog import Catalog
    from orate.speech.pipeline import Pipeline, SpeechError, SpeechEvent, SpeechRequest, Utterance

    settings = Settings()
    if text == "-":
        text = sys.stdin.read()
    to_stdout = output == "-"
    fmt = format or (None if to_stdout else format_for_extension(Path(output).suffix))
    if fmt is None:
        fmt = settings.default_format if to_stdout else None
    if fmt is None:
        _fail(f"cannot tell the format from {output!r}; pass --format "
              f"({', '.join(FORMATS)})")
    pipeline = Pipeline(settings, Catalog(), pool=None)
    request = SpeechRequest(
        model=model or settings.default_model,
        utterances=[Utterance(text, voice or settings.default_voice, speed)], format=fmt,
        timestamps=frozenset({"word", "phoneme"}) if timestamps else frozenset(),
        whole_file=not to_stdout)
    try:
        plan = asyncio.run(pipeline.plan(request))
    except SpeechError as exc:
        _fail(exc.message)
    stamps: list[dict[str, object]] = []
    sink = sys.stdout.buffer if to_stdout else open(output, "wb")  # noqa: SIM115
    try:
        def on_event(event: SpeechEvent) -> None:
            if event.kind == "audio":
                sink.write(event.audio)
                if to_stdout:
                    sink.flush()
            elif event.kind == "timestamps":
                stamps.extend(t.to_dict() for t in event.timestamps)

        stats = pipeline.render_local(plan, on_event)
    finally:
        if not to_stdout:
            sink.close()
    if timestamps:
        timestamps.write_text(json.dumps(stamps, indent=1, ensure_ascii=False))
    if not to_stdout:
        err.print(f"wrote {output}: {stats.duration:.2f} s of {fmt} "
                  f"({plan.voices[0].label()})")


@app.command()
def voices(
    language: Annotated[str | None, typer.Option(help="only voices whose language starts so")]
    = None,
    model: Annotated[str | None, typer.Option(help="model id")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """List the voices a model offers (the OpenAI names are aliases of these)."""
    from orate.engines.catalog import OPENAI_VOICES, Catalog

    settings = Settings()
    catalog = Catalog()
    found = catalog.model(model or settings.default_model)
    if found is None:
        _fail(f"unknown model {model!r}; models: {', '.join(catalog.models)}")
    rows = [v for v in catalog.voices(found)
            if not language or any(lang.startswith(language.lower()) for lang in v.languages)]
    if as_json:
        print(json.dumps([v.__dict__ for v in rows], default=list, indent=1))
        return
    table = Table(title=f"{len(rows)} voices of {found.id}")
    for col in ("id", "name", "language", "gender"):
        table.add_column(col)
    for v in rows:
        table.add_row(v.id, v.name, v.language, v.gender)
    Console().print(table)
    if not language:
        aliases = ", ".join(f"{k}={p.label()}" for k, p in OPENAI_VOICES.items())
        Console().print(f"OpenAI names: {aliases}. Add a variant with +, e.g. en-us+f3.")


if __name__ == "__main__":
    app()
