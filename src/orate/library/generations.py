"""Generation history: recorded off the request path, read back by id, pruned by age and size.

Recording happens after the audio has been sent: records queue up and one
writer task stores their blobs and inserts their rows in batches, so history
costs a request almost nothing. Until a record is written its audio is served
from memory (``pending``), so a URL works the moment the response ends.

Nothing a response promised is dropped. A blob that cannot be written (disk full,
store down) leaves the record in place with ``audio_error`` (its URL answers 410);
a database that cannot take the rows (locked, unreachable) is retried with
backoff for ``retry_seconds``, then the rows go to an append-only spool file
(fsynced) that is replayed at start and whenever the database takes writes again.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import logging
import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Select, func, select

from orate.library.blobs import BlobStore
from orate.library.db import Sessions
from orate.library.tables import CacheEntry, Generation
from orate.library.writer import HistoryWriter, PendingRecord

log = logging.getLogger("orate.library")

BATCH = 200


def _utc(stamp: datetime) -> datetime:
    """Aware UTC (SQLite hands back naive datetimes, which are UTC here)."""
    return stamp.replace(tzinfo=UTC) if stamp.tzinfo is None else stamp.astimezone(UTC)


def text_ok(value: str) -> bool:
    """Whether a caller's string can reach the database (lone surrogates cannot be
    encoded, so no stored id or name can contain one: treat it as not found)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def new_id() -> str:
    """128 random bits, hex: unguessable, and safe in paths and blob keys."""
    return secrets.token_hex(16)


class GenerationStore:
    """History: generations recorded by the writer (library/writer.py), read back by id
    (from memory until they are written), listed, deleted, summed for usage, pruned."""

    def __init__(
        self,
        sessions: Sessions,
        blobs: BlobStore,
        *,
        spool: Path | None = None,
        retry_seconds: float = 30.0,
    ) -> None:
        self._sessions = sessions
        self._blobs = blobs
        self.writer = HistoryWriter(sessions, blobs, spool, retry_seconds)
        #: records queued or being written (served from memory meanwhile)
        self.pending = self.writer.pending
        self.spool = self.writer.spool
        #: rows kept in the spool file until the database takes them (served from here)
        self.spooled = self.spool.rows

    def start(self) -> None:
        self.writer.start()

    async def close(self) -> None:
        """Write everything queued, then stop (called on shutdown: nothing is lost)."""
        await self.writer.close()

    async def flushed(self, owner: str | None = None) -> None:
        """Return once every record queued so far (``owner``'s only, if given) is written
        or spooled."""
        await self.writer.flushed(owner)

    def record(self, values: dict[str, Any], audio: bytes | None) -> PendingRecord:
        """Queue a generation (its column values) and its audio for the writer."""
        return self.writer.record(values, audio)

    async def get(self, gen_id: str, owner: str | None) -> Generation | None:
        if not text_ok(gen_id):
            return None
        rec = self.pending.get(gen_id)
        spooled = self.spooled.get(gen_id)
        row: Generation | None
        if rec is not None:
            row = rec.row
        elif spooled is not None:
            row = Generation(**spooled)
        else:
            async with self._sessions() as session:
                row = await session.get(Generation, gen_id)
        if row is None or (owner is not None and row.owner != owner):
            return None
        return row

    async def audio(
        self, row: Generation, start: int | None = None, end: int | None = None
    ) -> bytes:
        rec = self.pending.get(row.id)
        if rec is not None and rec.audio is not None:
            data = rec.audio
            return data if start is None else data[start:end]
        if not row.blob_key:
            raise FileNotFoundError(row.id)
        if start is None:
            return await self._blobs.get(row.blob_key)
        return await self._blobs.get_range(
            row.blob_key, start, end if end is not None else row.bytes
        )

    async def list(
        self,
        owner: str | None,
        limit: int,
        before: datetime | None = None,
        offset: int = 0,
        text: str | None = None,
        model: str | None = None,
        voice: str | None = None,
    ) -> tuple[builtins.list[Generation], int]:
        """Newest first; ``text`` and ``voice`` match a part (any case), ``model`` exactly."""
        # not in the database yet (queued, retrying, or spooled) but promised: list them too
        waiting = [*(r.values for r in self.pending.values()), *self.spooled.values()]
        extra = {
            v["id"]: v
            for v in waiting
            if (owner is None or v["owner"] == owner)
            and (before is None or _utc(v["created_at"]) < _utc(before))
            and _matches(v, text, model, voice)
        }
        if not extra:
            return await self._list(owner, limit, before, offset, text, model, voice)
        rows, total = await self._list(
            owner, offset + limit + len(extra), before, 0, text, model, voice
        )
        stored = {r.id for r in rows}
        missing = [Generation(**v) for gid, v in extra.items() if gid not in stored]
        merged = sorted([*rows, *missing], key=lambda r: (_utc(r.created_at), r.id), reverse=True)
        return merged[offset : offset + limit], total + len(missing)

    async def _list(
        self,
        owner: str | None,
        limit: int,
        before: datetime | None,
        offset: int,
        text: str | None = None,
        model: str | None = None,
        voice: str | None = None,
    ) -> tuple[builtins.list[Generation], int]:
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
        if not text_ok(gen_id):
            return False
        rec = self.pending.get(gen_id)
        if rec is not None:
            with contextlib.suppress(Exception):
                await asyncio.shield(rec.done)
        if gen_id in self.spooled:
            await self.spool.replay()  # into the database first, so the delete is not undone
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
                select(func.count()).select_from(Generation).where(Generation.blob_key == blob_key)
            )
            cached = await session.scalar(
                select(func.count()).select_from(CacheEntry).where(CacheEntry.blob_key == blob_key)
            )
        if not used and not cached:
            await self._blobs.delete(blob_key)

    async def usage(
        self, owner: str | None, start: datetime | None, end: datetime | None, group_by: str
    ) -> builtins.list[dict[str, Any]]:
        async with self._sessions() as session:
            rows = (await session.execute(self._usage_query(owner, start, end))).all()
        groups: dict[str, dict[str, Any]] = {}
        for created, model, chars, duration, cost, currency in rows:
            key = model if group_by == "model" else created.date().isoformat()
            g = groups.setdefault(
                key,
                {
                    group_by: key,
                    "requests": 0,
                    "characters": 0,
                    "audio_seconds": 0.0,
                    "cost": 0.0,
                    "currency": currency,
                },
            )
            g["requests"] += 1
            g["characters"] += chars
            g["audio_seconds"] = round(g["audio_seconds"] + duration, 3)
            g["cost"] = round(g["cost"] + cost, 8)
        return sorted(groups.values(), key=lambda g: g[group_by])

    @staticmethod
    def _usage_query(
        owner: str | None, start: datetime | None, end: datetime | None
    ) -> Select[datetime, str, int, float, float, str]:
        query = select(
            Generation.created_at,
            Generation.model,
            Generation.characters,
            Generation.duration,
            Generation.cost,
            Generation.currency,
        )
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
                old = (
                    await session.scalars(select(Generation).where(Generation.created_at < cutoff))
                ).all()
                for row in old:
                    blobs.update([row.blob_key] if row.blob_key else [])
                    await session.delete(row)
                removed += len(old)
            if max_bytes is not None:
                total = (
                    await session.scalar(
                        select(func.coalesce(func.sum(Generation.bytes), 0)).where(
                            Generation.blob_key.is_not(None)
                        )
                    )
                    or 0
                )
                if total > max_bytes:
                    rows = (
                        await session.scalars(
                            select(Generation)
                            .where(Generation.blob_key.is_not(None))
                            .order_by(Generation.created_at)
                        )
                    ).all()
                    for row in rows:
                        if total <= max_bytes:
                            break
                        total -= row.bytes
                        if row.blob_key:  # always, by the query
                            blobs.add(row.blob_key)
                        await session.delete(row)
                        removed += 1
        for key in blobs:
            await self.release_blob(key)
        return removed


def _like(value: str) -> str:
    """A LIKE pattern that matches ``value`` literally."""
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _matches(
    values: dict[str, Any], text: str | None, model: str | None, voice: str | None
) -> bool:
    """The list filters, applied to a record not yet in the database."""
    return (
        (not text or text.lower() in str(values.get("text") or "").lower())
        and (not model or values.get("model") == model)
        and (not voice or voice.lower() in str(values.get("voice") or "").lower())
    )
