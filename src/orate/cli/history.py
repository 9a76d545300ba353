"""``orate history``: recent generations from the library."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from orate.cli.common import app, with_library
from orate.cli.tables import JSON_OPTION, WIDE_OPTION, Column, field, show

if TYPE_CHECKING:
    from orate.library.library import Library

HISTORY_COLUMNS = (
    Column("created", lambda r: r["created_at"][:19].replace("T", " "), 3),
    Column("id", field("id")),
    Column("model", field("model")),
    Column("voice", field("voice"), 2),
    Column("format", field("format"), 4),
    Column("seconds", lambda r: f"{r['duration']:.2f}", 1, justify="right"),
    Column("cache", lambda r: "hit" if r["cache_hit"] else "", 5),
    Column("text", field("text"), flex=True),
)


@app.command()
def history(
    limit: Annotated[int, typer.Option(min=1, max=1000, help="how many")] = 20,
    as_json: Annotated[bool, JSON_OPTION] = False,
    wide: Annotated[bool, WIDE_OPTION] = False,
) -> None:
    """The latest generations, newest first (ids for `orate voices create
    --from-generation` and /v1/audio/files/ID)."""

    async def work(lib: Library) -> tuple[list[dict[str, Any]], int]:
        rows, total = await lib.generations.list(None, limit)
        return [
            {
                "id": r.id,
                "created_at": r.created_at.isoformat(),
                "dialect": r.dialect,
                "model": r.model,
                "voice": r.voice,
                "format": r.format,
                "duration": round(r.duration, 3),
                "cost": r.cost,
                "cache_hit": r.cache_hit,
                "text": r.text,
            }
            for r in rows
        ], total

    rows, total = with_library(work)
    show(
        rows,
        HISTORY_COLUMNS,
        title=f"{len(rows)} of {total} generations",
        wide=wide,
        as_json=as_json,
    )
