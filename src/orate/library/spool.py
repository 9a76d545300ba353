"""The history spool: generation rows the database could not take yet, kept in an
append-only file (fsynced) and moved into the database as soon as it takes writes.

The history writer (library/generations.py) appends here once its retries run out;
rows in the spool are served to readers from memory (``rows``) meanwhile, and are
replayed at start and every second after, so nothing a response promised is lost.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import insert
from sqlalchemy.exc import IntegrityError, InterfaceError, OperationalError

from orate.library.db import DB_ERRORS, Sessions
from orate.library.tables import Generation

log = logging.getLogger("orate.library")


class HistorySpool:
    """The spool file at ``path`` (``None``: no spool; the writer raises instead)."""

    def __init__(self, sessions: Sessions, path: Path | None) -> None:
        self._sessions = sessions
        self.path = path
        #: rows kept in the spool file until the database takes them (served from here)
        self.rows: dict[str, dict[str, Any]] = {}
        self._lock = asyncio.Lock()  # appends and rewrites of the file never interleave

    async def append(self, rows: list[dict[str, Any]]) -> None:
        """Add rows to the spool, durably, off the event loop."""
        async with self._lock:
            await asyncio.to_thread(self._append, rows)

    def _append(self, rows: list[dict[str, Any]]) -> None:
        """Append rows to the spool file and fsync it (runs in a thread)."""
        assert self.path is not None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as f:
            for values in rows:
                f.write(_to_json(values) + "\n")
            f.flush()
            os.fsync(f.fileno())
        for values in rows:
            self.rows[values["id"]] = values

    def load(self) -> None:
        """Read the rows a previous process left in the file."""
        if self.path is None or not self.path.exists():
            return
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                values = _from_json(line)
            except (ValueError, KeyError):
                continue  # a line torn by a crash mid-append: its record was never promised
            self.rows[values["id"]] = values
        if self.rows:
            log.info("history spool: %d generations to replay", len(self.rows))

    async def replay(self) -> int:
        """Move spooled rows into the database; the file is rewritten without them.

        Stops at the first sign the database is still unavailable; a row the database
        refuses for itself (bad data) stays in the spool, logged, without blocking others.
        """
        if not self.rows or self.path is None:
            return 0
        moved = 0
        for values in list(self.rows.values()):
            try:
                async with self._sessions() as session, session.begin():
                    await session.execute(insert(Generation), [values])
            except IntegrityError:
                pass  # already there (written before a crash emptied the spool)
            except (OperationalError, InterfaceError):
                break  # still locked or unreachable: try again later
            except DB_ERRORS as exc:
                log.error("history spool: row %s refused: %s", values["id"], exc)
                continue
            self.rows.pop(values["id"], None)
            moved += 1
        if not moved:
            return 0
        async with self._lock:
            # what is left, with any rows appended while this replay ran
            await asyncio.to_thread(self._rewrite, self.path, list(self.rows.values()))
        log.info("history spool: replayed %d generations", moved)
        return moved

    @staticmethod
    def _rewrite(path: Path, remaining: list[dict[str, Any]]) -> None:
        tmp = path.with_suffix(".tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            for values in remaining:
                f.write(_to_json(values) + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)

    async def replay_loop(self) -> None:
        """Replay every second while rows wait (the writer's background task)."""
        while True:
            if self.rows:
                try:
                    await self.replay()
                except Exception:
                    log.exception("history spool replay failed")
            await asyncio.sleep(1.0)


def _to_json(values: dict[str, Any]) -> str:
    return json.dumps(
        {k: v.isoformat() if isinstance(v, datetime) else v for k, v in values.items()},
        separators=(",", ":"),
    )


def _from_json(line: str) -> dict[str, Any]:
    values: dict[str, Any] = json.loads(line)
    values["created_at"] = datetime.fromisoformat(values["created_at"])
    return values
