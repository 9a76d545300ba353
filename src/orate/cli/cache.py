"""``orate cache``: warm the pre-render cache from a prompt list, see it, clear it."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from orate.audio.formats import FORMATS
from orate.cli.common import (
    app,
    err,
    fail,
    load_services,
    load_settings,
    note,
    open_library,
    with_library,
)
from orate.cli.tables import JSON_OPTION, WIDE_OPTION, Column, field, show

if TYPE_CHECKING:
    from orate.library.library import Library

cache_app = typer.Typer(
    help="The pre-render cache: warm it from a prompt list, see it, empty it.",
    add_completion=False,
    no_args_is_help=True,
)
app.add_typer(cache_app, name="cache")


def _prompts(path: Path) -> list[dict[str, str]]:
    """One text per line, or CSV / JSONL rows with text and optional voice and format."""
    import csv

    try:
        raw = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        fail(f"cannot read {path}: {exc}")
    if path.suffix.lower() == ".jsonl":
        rows = []
        for n, line in enumerate(raw.splitlines(), 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    fail(
                        f"{path}, line {n}: not JSON ({exc.msg}); each line is an object "
                        'like {"text": "…", "voice": "nova"}'
                    )
    elif path.suffix.lower() == ".csv":
        rows = list(csv.DictReader(raw.splitlines()))
    else:
        rows = [{"text": line} for line in raw.splitlines() if line.strip()]
    if not rows:
        fail(f"{path} has no prompts: write one text per line (or .csv / .jsonl rows)")
    for n, row in enumerate(rows, 1):
        if not isinstance(row, dict) or not str(row.get("text") or "").strip():
            fail(f"{path}: entry {n} has no text")
    return rows


@cache_app.command("warm")
def cache_warm(
    file: Annotated[
        Path,
        typer.Argument(exists=True, dir_okay=False, help=".txt (a text per line), .csv or .jsonl"),
    ],
    voice: Annotated[str | None, typer.Option(help="voice when a row names none")] = None,
    format: Annotated[
        str | None,
        typer.Option("--format", "-f", help=f"format when a row names none: {', '.join(FORMATS)}"),
    ] = None,
    model: Annotated[str | None, typer.Option(help="model when a row names none")] = None,
    workers: Annotated[int | None, typer.Option(min=1, help="engine processes")] = None,
) -> None:
    """Pre-render prompts into the cache, in parallel; already-cached ones are skipped."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    from orate.speech.types import Context, SpeechError, SpeechRequest, Utterance

    settings = load_settings() if workers is None else load_settings(workers=workers)
    rows = _prompts(file)

    async def main() -> tuple[int, int, list[str]]:
        services = load_services(settings)
        speech = await open_library(settings, services)
        rendered = skipped = 0
        failures: list[str] = []
        limit = asyncio.Semaphore(settings.workers * 2)
        with Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=err,
        ) as progress:
            task = progress.add_task("warming", total=len(rows))

            async def one(n: int, row: dict[str, str]) -> None:
                nonlocal rendered, skipped
                async with limit:
                    req = SpeechRequest(
                        model=row.get("model") or model or settings.default_model,
                        utterances=[
                            Utterance(
                                row["text"], row.get("voice") or voice or settings.default_voice
                            )
                        ],
                        format=row.get("format") or format or settings.default_format,
                    )
                    try:
                        plan = await speech.plan(req, Context(dialect="cli", record=False))
                        spoken = await speech.speak(plan)
                        async for _ in spoken.events:
                            pass
                    except SpeechError as exc:
                        failures.append(f"entry {n}: {exc.message}")
                    else:
                        if spoken.cache == "hit":
                            skipped += 1
                        else:
                            rendered += 1
                    progress.advance(task)

            try:
                await asyncio.gather(*(one(n, r) for n, r in enumerate(rows, 1)))
            finally:
                await services.close()
        return rendered, skipped, failures

    rendered, skipped, failures = asyncio.run(main())
    for failure in failures:
        err.print(f"[red]skipped[/red] {escape(failure)}", soft_wrap=True)
    note(f"rendered {rendered}, already cached {skipped}, failed {len(failures)}")
    if failures:
        raise typer.Exit(1)


@cache_app.command("stats")
def cache_stats(
    as_json: Annotated[bool, JSON_OPTION] = False, wide: Annotated[bool, WIDE_OPTION] = False
) -> None:
    """Entries, size, and the hits and misses of every server on this library (the same
    numbers as GET /v1/cache)."""

    async def work(lib: Library) -> dict[str, int]:
        return await lib.cache.stats()

    stats = with_library(work)
    if as_json:
        print(json.dumps(stats, indent=1))
        return
    rows = [{"what": k, "value": v} for k, v in stats.items()]
    show(
        rows,
        (Column("what", field("what")), Column("value", field("value"), justify="right")),
        title="cache",
        wide=wide,
    )


@cache_app.command("clear")
def cache_clear() -> None:
    """Empty the cache (history keeps its own copies of audio)."""

    async def work(lib: Library) -> int:
        return await lib.cache.clear()

    note(f"removed {with_library(work)} cache entries")
