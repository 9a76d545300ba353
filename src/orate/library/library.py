"""The library: the one door to orate's state (metadata, audio blobs, cache, voices).

Dialects and the pipeline call it; nothing else touches the database or the
blob store. ``open`` applies migrations before anything reads.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
from collections.abc import Coroutine
from datetime import UTC, datetime, timedelta
from typing import Any

from orate.config import Settings
from orate.library.blobs import BlobStore
from orate.library.cache import SpeechCache
from orate.library.db import make_engine, migrate, sessions
from orate.library.generations import GenerationStore
from orate.library.jobs import JobStore
from orate.library.keys import KeyStore
from orate.library.lexicons import LexiconStore
from orate.library.shared import Leases, SharedLimits
from orate.library.voices import VoiceLibrary

log = logging.getLogger("orate.library")

PRUNE_EVERY = 600.0  # seconds between retention passes


class Library:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.engine = make_engine(settings.resolved_database_url())
        self.sessions = sessions(self.engine)
        self.blobs = BlobStore(
            settings.resolved_blob_url(),
            s3_endpoint=settings.s3_endpoint,
            min_free=settings.ready_min_free_bytes,
        )
        self.generations = GenerationStore(
            self.sessions,
            self.blobs,
            spool=settings.data_dir / "spool" / "generations.jsonl",
            retry_seconds=settings.db_retry_seconds,
        )
        self.cache = SpeechCache(
            self.sessions,
            self.blobs,
            max_bytes=settings.cache_max_bytes,
            memory_bytes=settings.cache_memory_bytes,
        )
        self.cache.on_evict = self.generations.release_blob
        self.voices = VoiceLibrary(self.sessions)
        self.jobs = JobStore(self.sessions)
        self.keys = KeyStore(self.sessions)
        #: several replicas share this database: limits live in it, chores take a lease,
        #: and a response ends only once its generation is visible to every replica
        self.shared = settings.replicated()
        self.limits = SharedLimits(self.engine) if self.shared else None
        self.leases = Leases(self.engine)
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self.prunes = 0  # retention passes this replica ran (it held the lease)
        self.lexicons = LexiconStore(self.sessions)
        self._pruner: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[object]] = set()

    def track(self, coro: Coroutine[Any, Any, object]) -> asyncio.Task[object]:
        """Run library work in the background, kept alive and logged if it fails."""
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[object]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("library background work failed: %r", task.exception())

    async def drain(self) -> None:
        """Wait for background work (cache writes) and the history writer's queue."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
        await self.generations.flushed()

    @classmethod
    async def open(cls, settings: Settings, *, background: bool = True) -> Library:
        lib = cls(settings)
        await migrate(lib.engine)
        lib.generations.start()
        lib.cache.start()
        if background:
            lib._pruner = asyncio.get_running_loop().create_task(lib._prune_loop())
        return lib

    async def close(self) -> None:
        await self.drain()
        if self._pruner is not None:
            self._pruner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pruner
        await self.generations.close()
        await self.cache.close()
        await self.engine.dispose()

    async def prune(self) -> int:
        removed = await self.generations.prune(
            self.settings.retention_days, self.settings.retention_max_bytes
        )
        if self.settings.retention_days is not None:
            cutoff = datetime.now(UTC) - timedelta(days=self.settings.retention_days)
            removed += await self.jobs.expire(cutoff)
        return removed

    async def _prune_loop(self) -> None:
        while True:
            try:
                # once per service: the replica holding the lease prunes, the others skip
                if not await self.leases.acquire("retention", self.holder, PRUNE_EVERY * 1.5):
                    await asyncio.sleep(PRUNE_EVERY)
                    continue
                self.prunes += 1
                removed = await self.prune()
                if removed:
                    log.info("retention: removed %d generations", removed)
            except Exception:
                log.exception("retention pass failed")
            await asyncio.sleep(PRUNE_EVERY)
