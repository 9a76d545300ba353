"""The history writer: generations recorded off the request path, in batches.

Recording happens after the audio has been sent: records queue up and one writer task
stores their blobs and inserts their rows in batches, so history costs a request
almost nothing. Until a record is written it is ``pending`` (its audio is served from
memory). A blob that cannot be written leaves the record with ``audio_error``; a
database that cannot take the rows is retried with backoff for ``retry_seconds``, then
the rows go to the spool (library/spool.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import insert
from sqlalchemy.exc import IntegrityError

from orate.library.blobs import BlobStore
from orate.library.db import DB_ERRORS, Sessions
from orate.library.spool import HistorySpool
from orate.library.tables import Generation

log = logging.getLogger("orate.library")

BATCH = 200


@dataclass
class PendingRecord:
    """A generation queued for the writer; ``done`` resolves once it is written."""

    values: dict[str, Any]  # the row's columns: inserted with a bulk Core insert
    audio: bytes | None  # to store under the blob key (None: not kept)
    done: asyncio.Future[None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )

    @property
    def row(self) -> Generation:
        """A detached row for readers that arrive before the write (rare: build lazily)."""
        return Generation(**self.values)


class HistoryWriter:
    """The queue of records and the task that writes them."""

    def __init__(
        self, sessions: Sessions, blobs: BlobStore, spool: Path | None, retry_seconds: float
    ) -> None:
        self._sessions = sessions
        self._blobs = blobs
        self._queue: asyncio.Queue[PendingRecord | None] = asyncio.Queue()
        self.pending: dict[str, PendingRecord] = {}
        self.spool = HistorySpool(sessions, spool)
        self.retry_seconds = retry_seconds
        self._writer: asyncio.Task[None] | None = None
        self._replayer: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.spool.load()
        self._writer = asyncio.get_running_loop().create_task(self._write_loop())
        self._replayer = asyncio.get_running_loop().create_task(self.spool.replay_loop())

    async def close(self) -> None:
        """Write everything queued, then stop (called on shutdown: nothing is lost)."""
        if self._writer is not None:
            await self._queue.put(None)
            await self._writer
        if self._replayer is not None:
            self._replayer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._replayer

    async def flushed(self, owner: str | None = None) -> None:
        """Return once every record queued so far (``owner``'s only, if given) is written
        or spooled. Shielded: a caller's timeout never cancels the records themselves."""
        waiting = [
            r.done for r in self.pending.values() if owner is None or r.values.get("owner") == owner
        ]
        if waiting:
            await asyncio.shield(asyncio.gather(*waiting, return_exceptions=True))

    def record(self, values: dict[str, Any], audio: bytes | None) -> PendingRecord:
        """Queue a generation (its column values) and its audio for the writer."""
        rec = PendingRecord(values, audio)
        self.pending[values["id"]] = rec
        self._queue.put_nowait(rec)
        return rec

    async def _write_loop(self) -> None:
        stopping = False
        while not stopping:
            first = await self._queue.get()
            batch = [] if first is None else [first]
            stopping = first is None
            while len(batch) < BATCH and not self._queue.empty():
                item = self._queue.get_nowait()
                if item is None:
                    stopping = True
                    break
                batch.append(item)
            if batch:
                await self._write(batch)

    async def _put_blob(self, rec: PendingRecord, audio: bytes) -> None:
        """Store a record's audio; when that fails, keep the record and say why."""
        key = rec.values["blob_key"]
        try:
            # content-addressed keys (cached responses) are shared: write once
            if key.startswith("audio/") and len(key) > 40 and await self._blobs.exists(key):
                return
            await self._blobs.put(key, audio)
        except Exception as exc:  # disk full, store unreachable: the metadata still counts
            reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
            log.error("could not store the audio of %s: %s", rec.values["id"], reason)
            rec.values["blob_key"] = None
            rec.values["audio_error"] = f"the audio could not be stored: {reason}"[:500]

    async def _write(self, batch: list[PendingRecord]) -> None:
        try:
            await asyncio.gather(
                *(
                    self._put_blob(r, r.audio)
                    for r in batch
                    if r.audio is not None and r.values.get("blob_key")
                )
            )
            await self._insert([r.values for r in batch])
        except Exception as exc:  # keep serving; the failure is logged and reported
            log.exception("could not record %d generations", len(batch))
            for r in batch:
                if not r.done.done():
                    r.done.set_exception(exc)
        else:
            for r in batch:
                if not r.done.done():
                    r.done.set_result(None)
        finally:
            for r in batch:
                self.pending.pop(r.values["id"], None)
                if r.done.done() and not r.done.cancelled():
                    r.done.exception()  # mark retrieved: failures are already logged

    async def _insert(self, rows: list[dict[str, Any]]) -> None:
        """Insert rows, retrying a locked or unreachable database with backoff; past
        ``retry_seconds`` (or with no time left) the rows go to the spool file."""
        deadline = time.monotonic() + self.retry_seconds
        delay = 0.05
        while True:
            try:
                async with self._sessions() as session, session.begin():
                    await session.execute(insert(Generation), rows)
                return
            except IntegrityError:
                await self._insert_each(rows)  # some were written already (a replay)
                return
            except DB_ERRORS as exc:
                if self.spool.path is None:
                    if time.monotonic() >= deadline:
                        raise
                elif time.monotonic() + delay >= deadline:
                    log.warning(
                        "database unavailable (%s); spooling %d generations to %s",
                        exc.__class__.__name__,
                        len(rows),
                        self.spool.path,
                    )
                    await self.spool.append(rows)
                    return
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)

    async def _insert_each(self, rows: list[dict[str, Any]]) -> None:
        for values in rows:
            with contextlib.suppress(IntegrityError):
                async with self._sessions() as session, session.begin():
                    await session.execute(insert(Generation), [values])
