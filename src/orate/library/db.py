"""The metadata database, chosen by URL: SQLite (default) or PostgreSQL.

Migrations (Alembic) run at start through the same async connection, so the
schema of an existing database is brought up to date before anything reads it.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import event, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DatabaseError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine

MIGRATIONS = Path(__file__).parent / "migrations"

#: errors meaning "the database cannot do this now" (locked, unreachable, corrupted):
#: routes answer 503 with Retry-After, background writers retry then spool
DB_ERRORS: tuple[type[Exception], ...] = (OperationalError, InterfaceError, DatabaseError)


def async_url(url: str) -> str:
    """Add the async driver to a plain URL (``sqlite:///`` → ``sqlite+aiosqlite:///``)."""
    if url.startswith("sqlite:"):
        return "sqlite+aiosqlite:" + url[len("sqlite:"):]
    for plain in ("postgresql:", "postgres:"):
        if url.startswith(plain):
            return "postgresql+asyncpg:" + url[len(plain):]
    return url


def _sqlite_pragmas(dbapi_conn: object, _record: object) -> None:
    # WAL lets readers run beside the writer; the busy timeout waits out a lock
    # instead of failing; NORMAL sync is durable across process crashes in WAL.
    cursor = dbapi_conn.cursor()  # type: ignore[attr-defined]
    for pragma in ("journal_mode=WAL", "busy_timeout=5000", "synchronous=NORMAL",
                   "foreign_keys=ON"):
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


def _upgrade(connection: Connection) -> None:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    command.upgrade(cfg, "head")


async def migrate(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            # replicas starting together: one migrates, the others wait, then find it done
            await conn.execute(text("SELECT pg_advisory_xact_lock(7219403)"))
        await conn.run_sync(_upgrade)


def sessions(engine: AsyncEngine) -> async_sessionmaker:
    return async_sessionmaker(engine, expire_on_commit=False)
