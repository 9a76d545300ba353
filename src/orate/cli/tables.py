"""Tables for the CLI that stay readable in any terminal, down to 80 columns.

Rich shrinks every column alike when a table is too wide, which at 80 columns
cut ``orate history`` to two letters a column. Here each column says how much
it matters instead: ids and names are never cut, columns that matter less are
left out when they do not fit, and one free-text column (the text, a name)
takes what is left and ends in an ellipsis. ``--wide`` shows every column in
full, ``--json`` the rows themselves, for scripts.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import typer
from rich import box
from rich.cells import cell_len
from rich.console import Console, JustifyMethod
from rich.table import Table
from rich.text import Text

#: the narrowest a free-text column may get to make room for a column that matters less
FLEX_MIN = 20
#: the characters between two columns: padding, the box's (blank) divider, padding;
#: the box is SIMPLE_HEAD without edges, so the outer columns have no padding
PADDING = 3

# the options every listing command takes
JSON_OPTION = typer.Option("--json", help="print JSON (every field, for scripts)")
WIDE_OPTION = typer.Option("--wide", help="every column in full, however wide")


@dataclass(frozen=True)
class Column:
    """One column of a CLI table.

    ``rank`` 0 is always shown; higher ranks are left out first when the terminal
    is narrow. ``flex`` marks the free-text column that is cut to fit (at most one
    per table); every other column is shown whole or not at all.
    """

    header: str
    cell: Callable[[dict[str, Any]], str]
    rank: int = 0
    flex: bool = False
    justify: JustifyMethod = "left"


def field(name: str, missing: str = "-") -> Callable[[dict[str, Any]], str]:
    """A cell that shows ``row[name]``, with ``missing`` for None or empty."""

    def cell(row: dict[str, Any]) -> str:
        value = row.get(name)
        return missing if value is None or value == "" else str(value)

    return cell


def one_line(text: str) -> str:
    """Free text on one line: newlines and runs of spaces become one space."""
    return " ".join(text.split())


def _widths(cells: list[list[str]], columns: Sequence[Column]) -> list[int]:
    # terminal cells, not characters: a CJK character or an emoji takes two
    return [
        max([cell_len(c.header), *(cell_len(row[i]) for row in cells)])
        for i, c in enumerate(columns)
    ]


def choose(columns: Sequence[Column], cells: list[list[str]], width: int) -> list[int]:
    """Indexes of the columns to show in ``width`` characters, in their original order.

    Columns are added by rank (then left to right) while the whole ones and the
    flexible one at ``FLEX_MIN`` still fit; rank 0 columns are always kept.
    """
    natural = _widths(cells, columns)

    def needed(chosen: list[int]) -> int:
        return (
            sum(min(natural[i], FLEX_MIN) if columns[i].flex else natural[i] for i in chosen)
            + PADDING * len(chosen)
            - PADDING
        )  # no outer padding

    chosen = [i for i, c in enumerate(columns) if c.rank == 0]
    for i in sorted(
        (i for i, c in enumerate(columns) if c.rank > 0), key=lambda i: (columns[i].rank, i)
    ):
        if needed([*chosen, i]) <= width:
            chosen.append(i)
    return sorted(chosen)


def show(
    rows: list[dict[str, Any]],
    columns: Sequence[Column],
    *,
    title: str,
    wide: bool = False,
    as_json: bool = False,
    console: Console | None = None,
) -> None:
    """Print ``rows`` as JSON, as a full-width table (``wide``), or fitted to the terminal."""
    if as_json:
        print(json.dumps(rows, indent=1, ensure_ascii=False, default=str))
        return
    console = console or Console()
    cells = [[one_line(c.cell(r)) for c in columns] for r in rows]
    natural = _widths(cells, columns)
    if wide:
        chosen = list(range(len(columns)))
        console.width = max(console.width, len(title), sum(natural) + PADDING * (len(columns) - 1))
    else:
        chosen = choose(columns, cells, console.width)
    # the flexible column gets exactly what the others leave (rich would otherwise cut
    # every column alike when the table is too wide)
    room = (
        console.width - sum(natural[i] + PADDING for i in chosen if not columns[i].flex) + PADDING
    )
    table = Table(
        title=Text(title),
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        title_justify="left",
        header_style="bold",
    )
    for i in chosen:
        col = columns[i]
        fit = min(natural[i], max(room - PADDING, 5)) if col.flex else natural[i]
        table.add_column(
            col.header,
            no_wrap=True,
            overflow="ellipsis",
            min_width=fit,
            max_width=fit,
            justify=col.justify,
        )
    for row in cells:  # Text, not str: "[laughs]" in a text is words, not rich markup
        table.add_row(*(Text(row[i]) for i in chosen))
    console.print(table)
