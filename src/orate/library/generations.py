"""Generation history: recorded off the request path, read back by id, pruned by age and size.

Recording happens after the audio has been sent: records queue up and one
writer task stores their blobs and inserts their rows in batches, so history
costs a request almost nothing. Until a record is written its audio is served
from memory (``pending``), so a URL works the moment the response ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, insert, select

from orate.library.blobs import BlobStore
from orate.library.models import CacheEntry, Generation

log = logging.getLogger("orate.library")

BATCH = 200


def new_id() -> str:
    """128 random bits, hex: unguessable, and safe in paths and blob keys."""
    return secrets.token_hex(16)


@dataclass
class PendingRecord:
    values: dict[str, Any]  # the row's columns: inserted with a bulk Core insert
    audio: bytes | None  # to store under the blob key (None: not kept)
    done: asyncio.Future[None] = field(default_factory=lambda: asyncio.get_running_loop()
                                       .create_future())

    @property
    def row(self) -> Generation:
        """A detached row for readers that arrive before the write (rare: build lazily)."""
        return Generation(**self.values)


class GenerationStore:
    def __init__(self, sessions: Any, blobs: BlobStore) -> None:
        self._sessions = sessions
        self._blobs = blobs
        self._queue: asyncio.Queue[PendingRecord | None] = asyncio.Queue()
        self.pending: dict[str, PendingRecord] = {}
        self._writer: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._writer = asyncio.get_running_loop().create_task(self._write_loop())

    async def close(self) -> None:
        """Write everything queued, then stop (called on shutdown: nothing is lost)."""
        if self._writer is not None:
            await self._queue.put(None)
            await self._writer

    async def flushed(self) -> None:
        """Return once every record queued so far is written."""
        waiting = [r.done for r in self.pending.values()]
        if waiting:
            await asyncio.gather(*waiting, return_exceptions=True)

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

    async def _put_blob(self, key: str, audio: bytes) -> None:
        # content-addressed keys (cached responses) are shared: write once
        if key.startswith("audio/") and len(key) > 40 and await self._blobs.exists(key):
            return
        await self._blobs.put(key, audio)

    async def _write(self, batch: list[PendingRecord]) -> None:
        try:
            await asyncio.gather(*(self._put_blob(r.values["blob_key"], r.audio) for r in batch
                                   if r.audio is not None and r.values.get("blob_key")))
            async with self._sessions() as session, session.begin():
                await session.execute(insert(Generation), [r.values for r in batch])
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

    async def get(self, gen_id: str, owner: str | None) -> Generation | None:
        rec = self.pending.get(gen_id)
        if rec is not None:
            row = rec.row
        else:
            async with self._sessions() as session:
                row = await session.get(Generation, gen_id)
        if row is None or (owner is not None and row.owner != owner):
            return None
        return row

    async def audio(self, row: Generation, start: int | None = None,
                    end: int | None = None) -> bytes:
        rec = self.pending.get(row.id)
        if rec is not None and rec.audio is not None:
            data = rec.audio
            return data if start is None else data[start:end]
        if not row.blob_key:
            raise FileNotFoundError(row.id)
        if start is None:
            return await self._blobs.get(row.blob_key)
        return await self._blobs.get_range(row.blob_key, start, end if end is not None
                                           else row.bytes)

    async def list(self, owner: str | None, limit: int, before: datetime | None = None,
                   offset: int = 0, text: str | None = None, model: str | None = None,
                   voice: str | None = None) -> tuple[list[Generation], int]:
        """Newest first; ``text`` and ``voice`` match a part (any case), ``model`` exactly."""
        async with self._sessions() as session:
            query = select(Generation)
            count = select(func.count()).select_from(Generation)
            filters = []
            if owner is not None:
                filters.append(Generation.owner == owner)
            if text:
                filters.append(Generation.text.ilike(f"%{_like(text)}%", escape="\\"))
            if model:
                filters.append(Generation.model == model)
            if voice:
                filters.append(Generation.voice.ilike(f"%{_like(voice)}%", escape="\\"))
            if filters:
                query = query.where(*filters)
                count = count.where(*filters)
            if before is not None:
                query = query.where(Generation.created_at < before)
            query = query.order_by(Generation.created_at.desc(), Generation.id.desc())
            rows = (await session.scalars(query.offset(offset).limit(limit))).all()
            total = (await session.scalar(count)) or 0
        return list(rows), int(total)

    async def delete(self, gen_id: str, owner: str | None) -> bool:
        rec = self.pending.get(gen_id)
        if rec is not None:
            with contextlib.suppress(Exception):
                await asyncio.shield(rec.done)
        async with self._sessions() as session, session.begin():
            row = await session.get(Generation, gen_id)
            if row is None or (owner is not None and row.owner != owner):
                return False
            await session.delete(row)
        if row.blob_key:
            await self.release_blob(row.blob_key)
        return True

    async def release_blob(self, blob_key: str) -> None:
        """Delete a blob once no generation and no cache entry refers to it."""
        async with self._sessions() as session:
            used = await session.scalar(
                select(func.count()).select_from(Generation).where(Generation.blob_key == blob_key))
            cached = await session.scalar(
                select(func.count()).select_from(CacheEntry)
                .where(CacheEntry.blob_key == blob_key))
        if not used and not cached:
            await self._blobs.delete(blob_key)

    async def usage(self, owner: str | None, start: datetime | None, end: datetime | None,
                    group_by: str) -> list[dict[str, Any]]:
        async with self._sessions() as session:
            rows = (await session.execute(self._usage_query(owner, start, end))).all()
        groups: dict[str, dict[str, Any]] = {}
        for created, model, chars, duration, cost, currency in rows:
            key = model if group_by == "model" else created.date().isoformat()
            g = groups.setdefault(key, {group_by: key, "requests": 0, "characters": 0,
                                        "audio_seconds": 0.0, "cost": 0.0, "currency": currency})
            g["requests"] += 1
            g["characters"] += chars
            g["audio_seconds"] = round(g["audio_seconds"] + duration, 3)
            g["cost"] = round(g["cost"] + cost, 8)
        return sorted(groups.values(), key=lambda g: g[group_by])

    @staticmethod
    def _usage_query(owner: str | None, start: datetime | None, end: datetime | None) -> Any:
        query = select(Generation.created_at, Generation.model, Generation.characters,
                       Generation.duration, Generation.cost, Generation.currency)
        if owner is not None:
            query = query.where(Generation.owner == owner)
        if start is not None:
            query = query.where(Generation.created_at >= start)
        if end is not None:
            query = query.where(Generation.created_at < end)
        return query

    async def prune(self, max_age_days: float | None, max_bytes: int | None) -> int:
        """Drop generations past the retention age, then the oldest audio past the size cap."""
        removed = 0
        blobs: set[str] = set()
        async with self._sessions() as session, session.begin():
            if max_age_days is not None:
                cutoff = datetime.now(UTC) - timedelta(days=max_age_days)
                old = (await session.scalars(select(Generation)
                                             .where(Generation.created_at < cutoff))).all()
                for row in old:
                    blobs.update([row.blob_key] if row.blob_key else [])
                    await session.delete(row)
                removed += len(old)
            if max_bytes is not None:
                total = await session.scalar(select(func.coalesce(func.sum(Generation.bytes), 0))
                                             .where(Generation.blob_key.is_not(None))) or 0
                if total > max_bytes:
                    rows = (await session.scalars(
                        select(Generation).where(Generation.blob_key.is_not(None))
                        .order_by(Generation.created_at))).all()
                    for row in rows:
                        if total <= max_bytes:
                            break
                        total -= row.bytes
                        blobs.add(row.blob_key)  # type: ignore[arg-type]
                        await session.delete(row)
                        removed += 1
        for key in blobs:
            await self.release_blob(key)
        return removed


def _like(value: str) -> str:
    """A LIKE pattern that matches ``value`` literally."""
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
