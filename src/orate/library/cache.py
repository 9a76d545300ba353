"""The pre-render cache: finished responses keyed by everything that shapes their bytes.

A hit replays the stored audio and the events recorded around it (timestamps,
sentence boundaries), so every dialect gets the same response a miss gave.
Hot entries stay in memory; the database holds the index and LRU order;
blobs hold the audio. Usage counters (per entry, and the lifetime hits,
misses and shared results) are buffered and written in the background so a
hit never waits on the database; the lifetime counters live in the database
so every process on the library reports the same numbers.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.exc import IntegrityError

from orate.library.blobs import BlobStore
from orate.library.db import DB_ERRORS, Sessions, rowcount
from orate.library.tables import CacheCounter, CacheEntry
from orate.runtime.render import RenderJob

log = logging.getLogger("orate.library")


def cache_key(job: RenderJob, engine_versions: dict[str, str], scope: str | None = None) -> str:
    """SHA-256 of the render job (text, voices, speeds, format, rate…) and engine versions.

    ``scope`` (the owner) keeps entries apart per API key: a hit would otherwise tell
    one key what another key had said. None shares entries between everyone.
    """
    body: dict[str, Any] = {"job": asdict(job), "engines": engine_versions}
    if scope is not None:
        body["scope"] = scope
    payload = json.dumps(body, sort_keys=True, default=sorted)
    return hashlib.sha256(payload.encode()).hexdigest()


@dataclass(frozen=True)
class Cached:
    key: str
    blob_key: str
    audio: bytes | None  # None: not in memory, read the blob
    bytes: int
    content_type: str
    duration: float
    events: list[dict[str, Any]]


class SpeechCache:
    def __init__(
        self, sessions: Sessions, blobs: BlobStore, *, max_bytes: int, memory_bytes: int
    ) -> None:
        self._sessions = sessions
        self._blobs = blobs
        self.max_bytes = max_bytes
        self.memory_bytes = memory_bytes
        self._hot: OrderedDict[str, Cached] = OrderedDict()
        self._hot_size = 0
        self._touched: dict[str, int] = {}
        self._total: int | None = None  # bytes in the cache table, kept as entries come and go
        self._flusher: asyncio.Task[None] | None = None
        self._counts: dict[str, int] = {}  # cache results not yet added to the database
        # one flush at a time: stats() waits for a background flush in progress, so the
        # numbers it reads include every count this process made before the call
        self._flush_lock = asyncio.Lock()
        #: called with an evicted entry's blob key; the library deletes the blob unless
        #: a generation still refers to it
        self.on_evict: Callable[[str], Awaitable[None]] | None = None

    def start(self) -> None:
        self._flusher = asyncio.get_running_loop().create_task(self._flush_loop())

    async def close(self) -> None:
        if self._flusher is not None:
            self._flusher.cancel()
        await self._flush()

    def _remember(self, entry: Cached) -> None:
        if entry.audio is None or len(entry.audio) > self.memory_bytes // 4:
            return
        old = self._hot.pop(entry.key, None)
        if old is not None:
            self._hot_size -= old.bytes
        self._hot[entry.key] = entry
        self._hot_size += entry.bytes
        while self._hot_size > self.memory_bytes and self._hot:
            _, dropped = self._hot.popitem(last=False)
            self._hot_size -= dropped.bytes

    def peek(self, key: str) -> Cached | None:
        """A hot entry, without touching the database (no await: race-free for callers)."""
        entry = self._hot.get(key)
        if entry is not None:
            self._touched[key] = self._touched.get(key, 0) + 1
        return entry

    def count(self, result: str) -> None:
        """Count one request's result: ``hit``, ``miss`` or ``shared`` (joined a synthesis
        in flight). The caller counts once per request, after deciding, so a lookup that
        misses and a peek that then hits make one hit, not one of each."""
        name = {"hit": "hits", "miss": "misses", "shared": "shared"}[result]
        self._counts[name] = self._counts.get(name, 0) + 1

    async def lookup(self, key: str) -> Cached | None:
        entry = self._hot.get(key)
        if entry is not None:
            self._hot.move_to_end(key)
        else:
            async with self._sessions() as session:
                row = await session.get(CacheEntry, key)
            if row is None:
                return None
            try:
                audio = await self._blobs.get(row.blob_key)
            except FileNotFoundError:
                return None
            entry = Cached(
                key, row.blob_key, audio, row.bytes, row.content_type, row.duration, row.events
            )
            self._remember(entry)
        self._touched[key] = self._touched.get(key, 0) + 1
        return entry

    async def _size(self) -> int:
        if self._total is None:
            async with self._sessions() as session:
                self._total = int(
                    await session.scalar(select(func.coalesce(func.sum(CacheEntry.bytes), 0))) or 0
                )
        return self._total

    async def store(self, entry: Cached) -> None:
        """Keep a finished response (its blob is written by the caller or here)."""
        if entry.audio is not None:
            await self._blobs.put(entry.blob_key, entry.audio)  # same key, same bytes
        now = datetime.now(UTC)
        try:
            async with self._sessions() as session, session.begin():
                await session.execute(
                    insert(CacheEntry).values(
                        key=entry.key,
                        blob_key=entry.blob_key,
                        bytes=entry.bytes,
                        content_type=entry.content_type,
                        duration=entry.duration,
                        events=entry.events,
                        hits=0,
                        created_at=now,
                        last_used_at=now,
                    )
                )
        except IntegrityError:
            return  # another process cached the same response first
        self._total = await self._size() + entry.bytes
        self._remember(entry)
        if self._total > self.max_bytes:
            await self._evict()

    async def _evict(self) -> None:
        async with self._sessions() as session:
            total = await session.scalar(select(func.coalesce(func.sum(CacheEntry.bytes), 0)))
            self._total = int(total or 0)
            if not total or total <= self.max_bytes:
                return
            rows = (
                await session.execute(
                    select(CacheEntry.key, CacheEntry.blob_key, CacheEntry.bytes).order_by(
                        CacheEntry.last_used_at
                    )
                )
            ).all()
        victims = []
        for key, blob_key, size in rows:
            if total <= self.max_bytes:
                break
            victims.append((key, blob_key))
            total -= size
        async with self._sessions() as session, session.begin():
            for key, _ in victims:
                row = await session.get(CacheEntry, key)
                if row is not None:
                    await session.delete(row)
        self._total = total
        for key, blob_key in victims:
            dropped = self._hot.pop(key, None)
            if dropped is not None:
                self._hot_size -= dropped.bytes
            if self.on_evict is not None:
                await self.on_evict(blob_key)

    async def _flush(self) -> None:
        async with self._flush_lock:
            await self._flush_now()

    async def _flush_now(self) -> None:
        touched, self._touched = self._touched, {}
        counts, self._counts = self._counts, {}
        if not touched and not counts:
            return
        now = datetime.now(UTC)
        try:
            async with self._sessions() as session, session.begin():
                for key, n in touched.items():
                    await session.execute(
                        update(CacheEntry)
                        .where(CacheEntry.key == key)
                        .values(hits=CacheEntry.hits + n, last_used_at=now)
                    )
                for name, n in counts.items():
                    added = await session.execute(
                        update(CacheCounter)
                        .where(CacheCounter.name == name)
                        .values(value=CacheCounter.value + n)
                    )
                    if rowcount(added) == 0:  # a counter newer than the migration's rows
                        session.add(CacheCounter(name=name, value=n))
        except DB_ERRORS as exc:
            # locked or unreachable: keep the counts for the next flush (they only order
            # eviction, so late is fine)
            for key, n in touched.items():
                self._touched[key] = self._touched.get(key, 0) + n
            for name, n in counts.items():
                self._counts[name] = self._counts.get(name, 0) + n
            log.warning("could not record cache use yet: %s", str(exc).splitlines()[0][:200])
        except Exception:
            log.exception("could not record cache use")
            for name, n in counts.items():  # keep the counts for the next try
                self._counts[name] = self._counts.get(name, 0) + n

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            await self._flush()

    async def stats(self) -> dict[str, int]:
        """Entries and bytes now, and lifetime hits, misses and shared results of every
        process on this library (this process's buffered counts are written first)."""
        await self._flush()
        async with self._sessions() as session:
            count, size = (
                await session.execute(
                    select(func.count(), func.coalesce(func.sum(CacheEntry.bytes), 0))
                )
            ).one()
            counters = {
                name: value
                for name, value in (
                    await session.execute(select(CacheCounter.name, CacheCounter.value))
                ).all()
            }
        return {
            "entries": int(count),
            "bytes": int(size),
            "hits": int(counters.get("hits", 0)),
            "misses": int(counters.get("misses", 0)),
            "shared": int(counters.get("shared", 0)),
            "max_bytes": self.max_bytes,
        }

    async def clear(self) -> int:
        async with self._sessions() as session:
            rows = (await session.execute(select(CacheEntry.key, CacheEntry.blob_key))).all()
        async with self._sessions() as session, session.begin():
            for key, _ in rows:
                row = await session.get(CacheEntry, key)
                if row is not None:
                    await session.delete(row)
        self._hot.clear()
        self._hot_size = 0
        self._total = 0
        for _, blob_key in rows:
            if self.on_evict is not None:
                await self.on_evict(blob_key)
        return len(rows)
