"""``orate keys``: create, list, revoke API keys, or serve without them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from orate.cli.common import app, err, fail, note, with_library
from orate.cli.tables import JSON_OPTION, WIDE_OPTION, Column, field, show

if TYPE_CHECKING:
    from orate.library.keys import KeyInfo
    from orate.library.library import Library

keys_app = typer.Typer(
    help="API keys: once the first is created, every route but /healthz "
    "and /readyz needs one, until `orate keys open --yes`.",
    add_completion=False,
    no_args_is_help=True,
)
app.add_typer(keys_app, name="keys")


def _rate(value: str | None) -> int | None:
    """``60/min``, ``10/s``, ``1000/h`` or a bare number per minute → requests per minute."""
    if value is None:
        return None
    number, _, unit = value.partition("/")
    per = {
        "": 1,
        "m": 1,
        "min": 1,
        "minute": 1,
        "s": 60,
        "sec": 60,
        "second": 60,
        "h": 1 / 60,
        "hour": 1 / 60,
    }.get(unit.strip().lower())
    try:
        rate = float(number) * per if per is not None else None
    except ValueError:
        rate = None
    if rate is None or rate < 1:
        fail(f"--rate {value!r}: write it like 60/min, 2/s or 1000/hour (at least 1/min)")
    return int(rate)


@keys_app.command("create")
def keys_create(
    name: Annotated[str, typer.Option(help="who or what the key is for")],
    admin: Annotated[bool, typer.Option("--admin", help="may see everyone's records")] = False,
    rate: Annotated[str | None, typer.Option(help="requests allowed, e.g. 60/min")] = None,
    concurrency: Annotated[int | None, typer.Option(min=1, help="requests at once")] = None,
    quota_chars: Annotated[int | None, typer.Option(min=1, help="characters in all")] = None,
) -> None:
    """Create a key. Its secret is printed once: store it now, it cannot be shown again."""
    per_minute = _rate(rate)

    async def work(lib: Library) -> tuple[KeyInfo, str]:
        return await lib.keys.create(
            name,
            admin=admin,
            rate_per_minute=per_minute,
            concurrency=concurrency,
            quota_chars=quota_chars,
        )

    info, secret = with_library(work)
    note(
        f"created {info.id} ({info.name}{', admin' if info.admin else ''}); the key, "
        "shown only this once:"
    )
    print(secret)


KEY_COLUMNS = (
    Column("id", field("id")),
    Column("name", field("name"), flex=True),
    Column("prefix", lambda r: r["prefix"] + "…", 1),
    Column("revoked", lambda r: "yes" if r["revoked"] else "no", 1),
    Column("admin", lambda r: "yes" if r["admin"] else "no", 2),
    Column(
        "used / quota",
        lambda r: f"{r['used_chars']} / {r['quota_chars'] or '-'}",
        2,
        justify="right",
    ),
    Column("rate/min", field("rate_per_minute"), 3, justify="right"),
    Column("concurrency", field("concurrency"), 4, justify="right"),
)


@keys_app.command("list")
def keys_list(
    as_json: Annotated[bool, JSON_OPTION] = False, wide: Annotated[bool, WIDE_OPTION] = False
) -> None:
    """Keys (never their secrets): name, prefix, limits, characters used."""

    async def work(lib: Library) -> list[dict[str, Any]]:
        return await lib.keys.list()

    rows = with_library(work)
    show(rows, KEY_COLUMNS, title=f"{len(rows)} keys", wide=wide, as_json=as_json)


@keys_app.command("revoke")
def keys_revoke(ref: Annotated[str, typer.Argument(help="key id, name or prefix")]) -> None:
    """Revoke a key (within two seconds on a running server)."""

    async def work(lib: Library) -> bool:
        return await lib.keys.revoke(ref)

    if not with_library(work):
        fail(f"no live key {ref!r}")
    note(f"revoked {ref}")


@keys_app.command("open")
def keys_open(
    yes: Annotated[bool, typer.Option("--yes", help="yes, serve without keys")] = False,
) -> None:
    """Turn auth off: anyone who can reach the server may use it. Only once every key is
    revoked (revoking the last key alone keeps the server locked)."""
    if not yes:
        fail("this lets anyone who can reach the server use it; confirm with --yes")

    async def work(lib: Library) -> int:
        return await lib.keys.open_auth()

    live = with_library(work)
    if live:
        fail(f"{live} live keys remain; revoke them first (`orate keys revoke NAME`)")
    err.print("auth is off: requests need no key (within two seconds on a running server)")
