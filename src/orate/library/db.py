"""The metadata database, chosen by URL: SQLite (default) or PostgreSQL.

Migrations (Alembic) run at start through the same async connection, so the
schema of an existing database is brought up to date before anything reads it.
Alembic itself (with Mako) costs a process ~11 MiB for good once imported, so the
server only reads the schema's revision; when it is behind, a short-lived child
process (``python -m orate.library.db``, the URL on its stdin) runs the migrations.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path
from typing import Any, cast

from sqlalchemy import event, inspect, text
from sqlalchemy.engine import Connection, CursorResult, Result
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.exc import DatabaseError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

MIGRATIONS = Path(__file__).parent / "migrations"

#: errors meaning "the database cannot do this now" (locked, unreachable, corrupted):
#: routes answer 503 with Retry-After, background writers retry then spool
DB_ERRORS: tuple[type[Exception], ...] = (OperationalError, InterfaceError, DatabaseError)


def async_url(url: str) -> str:
    """Add the async driver to a plain URL (``sqlite:///`` → ``sqlite+aiosqlite:///``)."""
    if url.startswith("sqlite:"):
        return "sqlite+aiosqlite:" + url[len("sqlite:") :]
    for plain in ("postgresql:", "postgres:"):
        if url.startswith(plain):
            return "postgresql+asyncpg:" + url[len(plain) :]
    return url


def _sqlite_pragmas(dbapi_conn: DBAPIConnection, _record: object) -> None:
    # WAL lets readers run beside the writer; the busy timeout waits out a lock
    # instead of failing; NORMAL sync is durable across process crashes in WAL.
    cursor = dbapi_conn.cursor()
    for pragma in (
        "journal_mode=WAL",
        "busy_timeout=5000",
        "synchronous=NORMAL",
        "foreign_keys=ON",
    ):
        cursor.execute(f"PRAGMA {pragma}")
    cursor.close()


def make_engine(url: str) -> AsyncEngine:
    full = async_url(url)
    if full.startswith("sqlite"):
        path = full.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(full)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    return create_async_engine(full, pool_size=10, max_overflow=10, pool_pre_ping=True)


def head_revision() -> str:
    """The newest migration's revision, read from the file names: migrations form one
    chain, each file ``NNNN_name.py`` with ``revision = "NNNN"`` (a test holds this
    against Alembic's own view of the head)."""
    return max(p.name.split("_", 1)[0] for p in (MIGRATIONS / "versions").glob("[0-9]*_*.py"))


def _current(connection: Connection) -> str | None:
    if not inspect(connection).has_table("alembic_version"):
        return None
    return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()


def _upgrade(connection: Connection) -> None:
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    command.upgrade(cfg, "head")


async def migrate(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            # replicas starting together: one migrates, the others wait, then find it done
            await conn.execute(text("SELECT pg_advisory_xact_lock(7219403)"))
        if await conn.run_sync(_current) == head_revision():
            return
        url = engine.url
        if url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:"):
            await conn.run_sync(_upgrade)  # a private in-memory database: only we can
            return
        await asyncio.to_thread(_upgrade_in_child, url.render_as_string(hide_password=False))


def _upgrade_in_child(url: str) -> None:
    # the URL (it may hold a password) goes through stdin, never the visible command line
    done = subprocess.run(
        [sys.executable, "-m", "orate.library.db"],
        input=url,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if done.returncode:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        raise RuntimeError(f"migrating the database failed: {tail[0]}")


async def _migrate_here(url: str) -> None:
    engine = make_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(_upgrade)
    finally:
        await engine.dispose()


def rowcount(result: Result[Any]) -> int:
    """Rows an UPDATE or DELETE touched: their results are cursor results, which the
    session's ``execute`` does not say in its return type."""
    return cast("CursorResult[Any]", result).rowcount


#: what every store opens its sessions with
Sessions = async_sessionmaker[AsyncSession]


def sessions(engine: AsyncEngine) -> Sessions:
    return async_sessionmaker(engine, expire_on_commit=False)


if __name__ == "__main__":
    asyncio.run(_migrate_here(sys.stdin.read().strip()))
