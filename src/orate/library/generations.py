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
import contextlib
import json
import logging
import os
import secrets
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.exc import IntegrityError, InterfaceError, OperationalError

from orate.library.blobs import BlobStore
from orate.library.db import DB_ERRORS
from orate.library.tables import CacheEntry, Generation

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


@dataclass
class PendingRecord:
    values: dict[str, Any]  # the row's columns: inserted with a bulk Core insert
    audio: bytes | None  # to store under the blob key (None: not kept)
    done: asyncio.Future[None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )

    @property
    def row(self) -> Generation:
        """A detached row for readers that arrive before the write (rare: build lazily)."""
        return Generation(**self.values)


def _to_json(values: dict[str, Any]) -> str:
    return json.dumps(
        {k: v.isoformat() if isinstance(v, datetime) else v for k, v in values.items()},
        separators=(",", ":"),
    )


def _from_json(line: str) -> dict[str, Any]:
    values = json.loads(line)
    values["created_at"] = datetime.fromisoformat(values["created_at"])
    return values


class GenerationStore:
    def __init__(
        self,
        sessions: Any,
        blobs: BlobStore,
        *,
        spool: Path | None = None,
        retry_seconds: float = 30.0,
    ) -> None:
        self._sessions = sessions
        self._blobs = blobs
        self._queue: asyncio.Queue[PendingRecord | None] = asyncio.Queue()
        self.pending: dict[str, PendingRecord] = {}
        #: rows kept in the spool file until the database takes them (served from here)
        self.spooled: dict[str, dict[str, Any]] = {}
        self.spool_path = spool
        self.retry_seconds = retry_seconds
        self._writer: asyncio.Task[None] | None = None
        self._replayer: asyncio.Task[None] | None = None
        self._spool_lock = asyncio.Lock()  # appends and rewrites of the file never interleave

    def start(self) -> None:
        self._load_spool()
        self._writer = asyncio.get_running_loop().create_task(self._write_loop())
        self._replayer = asyncio.get_running_loop().create_task(self._replay_loop())

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

    async def _put_blob(self, rec: PendingRecord) -> None:
        """Store a record's audio; when that fails, keep the record and say why."""
        key = rec.values["blob_key"]
        try:
            # content-addressed keys (cached responses) are shared: write once
            if key.startswith("audio/") and len(key) > 40 and await self._blobs.exists(key):
                return
            await self._blobs.put(key, rec.audio)  # type: ignore[arg-type]
        except Exception as exc:  # disk full, store unreachable: the metadata still counts
            reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
            log.error("could not store the audio of %s: %s", rec.values["id"], reason)
            rec.values["blob_key"] = None
            rec.values["audio_error"] = f"the audio could not be stored: {reason}"[:500]

    async def _write(self, batch: list[PendingRecord]) -> None:
        try:
            await asyncio.gather(
                *(
                    self._put_blob(r)
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
                if self.spool_path is None:
                    if time.monotonic() >= deadline:
                        raise
                elif time.monotonic() + delay >= deadline:
                    log.warning(
                        "database unavailable (%s); spooling %d generations to %s",
                        exc.__class__.__name__,
                        len(rows),
                        self.spool_path,
                    )
                    async with self._spool_lock:
                        await asyncio.to_thread(self._spool, rows)
                    return
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)

    async def _insert_each(self, rows: list[dict[str, Any]]) -> None:
        for values in rows:
            with contextlib.suppress(IntegrityError):
                async with self._sessions() as session, session.begin():
                    await session.execute(insert(Generation), [values])

    # -- the spool: rows the database could not take yet -------------------------

    def _spool(self, rows: list[dict[str, Any]]) -> None:
        """Append rows to the spool file and fsync it (runs in a thread)."""
        assert self.spool_path is not None
        self.spool_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.spool_path, "a", encoding="utf-8") as f:
            for values in rows:
                f.write(_to_json(values) + "\n")
            f.flush()
            os.fsync(f.fileno())
        for values in rows:
            self.spooled[values["id"]] = values

    def _load_spool(self) -> None:
        if self.spool_path is None or not self.spool_path.exists():
            return
        for line in self.spool_path.read_text(encoding="utf-8").splitlines():
            try:
                values = _from_json(line)
            except (ValueError, KeyError):
                continue  # a line torn by a crash mid-append: its record was never promised
            self.spooled[values["id"]] = values
        if self.spooled:
            log.info("history spool: %d generations to replay", len(self.spooled))

    async def replay(self) -> int:
        """Move spooled rows into the database; the file is rewritten without them.

        Stops at the first sign the database is still unavailable; a row the database
        refuses for itself (bad data) stays in the spool, logged, without blocking others.
        """
        if not self.spooled or self.spool_path is None:
            return 0
        moved = 0
        for values in list(self.spooled.values()):
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
            self.spooled.pop(values["id"], None)
            moved += 1
        if not moved:
            return 0
        tmp = self.spool_path.with_suffix(".tmp")

        def rewrite(remaining: list[dict[str, Any]]) -> None:
            with open(tmp, "w", encoding="utf-8") as f:
                for values in remaining:
                    f.write(_to_json(values) + "\n")
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.spool_path)  # type: ignore[arg-type]

        async with self._spool_lock:
            # what is left, with any rows appended while this replay ran
            await asyncio.to_thread(rewrite, list(self.spooled.values()))
        log.info("history spool: replayed %d generations", moved)
        return moved

    async def _replay_loop(self) -> None:
        while True:
            if self.spooled:
                try:
                    await self.replay()
                except Exception:
                    log.exception("history spool replay failed")
            await asyncio.sleep(1.0)

    async def get(self, gen_id: str, owner: str | None) -> Generation | None:
        if not text_ok(gen_id):
            return None
        rec = self.pending.get(gen_id)
        spooled = self.spooled.get(gen_id)
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
    ) -> tuple[list[Generation], int]:
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
    ) -> tuple[list[Generation], int]:
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
            await self.replay()  # into the database first, so the delete is not undone
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
    ) -> list[dict[str, Any]]:
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
    def _usage_query(owner: str | None, start: datetime | None, end: datetime | None) -> Any:
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
                        blobs.add(row.blob_key)  # type: ignore[arg-type]
                        await session.delete(row)
                        removed += 1
        for key in blobs:
            await self.release_blob(key)
        return removed


def _like(value: str) -> str:
    """A LIKE pattern that matches ``value`` literally."""
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _matches(values: dict, text: str | None, model: str | None, voice: str | None) -> bool:
    """The list filters, applied to a record not yet in the database."""
    return (
        (not text or text.lower() in str(values.get("text") or "").lower())
        and (not model or values.get("model") == model)
        and (not voice or voice.lower() in str(values.get("voice") or "").lower())
    )
