"""The job runner: takes durable jobs from the library and runs them through the speech service.

Each runner loop holds one job at a time and renews its lease while the
engine works (progress = sentences done / sentences planned). The result is
an ordinary generation (history, audio URL, cost); the job is completed only
after that generation is written, so a completed job always has its audio.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from typing import Protocol

from orate.config import Settings
from orate.library.db import DB_ERRORS
from orate.library.jobs import JobStore
from orate.library.library import Library
from orate.library.tables import Job
from orate.runtime.pool import EngineBusy
from orate.speech.types import Context, Plan, Speech, SpeechError, SpeechRequest, request_from_dict

log = logging.getLogger("orate.jobs")

IDLE_POLL = 1.0  # seconds between looks at the queue when nothing woke the runner


class Speaker(Protocol):
    """What a job needs of the speech service: plan a request, then speak the plan."""

    async def plan(self, req: SpeechRequest, ctx: Context | None = None) -> Plan: ...

    async def speak(self, plan: Plan) -> Speech: ...


class JobRunner:
    def __init__(self, settings: Settings, speech: Speaker, library: Library) -> None:
        self.settings = settings
        self.speech = speech
        self.library = library
        self.store: JobStore = library.jobs
        self.id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.running: dict[str, float] = {}  # job id → progress, for this process

    def start(self) -> None:
        self._tasks = [
            asyncio.get_running_loop().create_task(self._loop())
            for _ in range(self.settings.job_workers)
        ]

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def notify(self) -> None:
        """A job was submitted here: look now instead of at the next poll."""
        self._wake.set()

    async def _loop(self) -> None:
        lease = self.settings.job_lease_seconds
        while True:
            try:
                job = await self.store.claim(self.id, lease)
            except DB_ERRORS as exc:  # locked or unusable: say so once a poll, no traceback
                log.warning(
                    "could not claim a job: database unavailable: %s",
                    str(exc).splitlines()[0][:200],
                )
                job = None
            except Exception:
                log.exception("could not claim a job")
                job = None
            if job is None:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), min(IDLE_POLL, lease / 3))
                continue
            try:
                await self._run(job)
            except asyncio.CancelledError:
                raise
            except Exception:
                # recording the outcome failed (the database went away): keep the runner
                # alive; the job's lease runs out and it is taken again
                log.exception("job %s: could not record its outcome", job.id)

    async def _run(self, job: Job) -> None:
        lease = self.settings.job_lease_seconds
        try:
            req = request_from_dict(job.request)
            req.max_chars = self.settings.max_job_chars
            req.framing = None  # bounded by max_job_chars; its audio goes to storage
            plan = await self.speech.plan(req, Context(owner=job.owner, dialect=job.dialect))
        except (SpeechError, TypeError, KeyError, ValueError) as exc:
            message = exc.message if isinstance(exc, SpeechError) else f"bad job request: {exc}"
            await self.store.fail(job.id, self.id, message, retry=False)
            return
        total = max(sum(len(seg.sentences) for seg in plan.job.segments), 1)
        done = 0
        beat = time.monotonic()
        self.running[job.id] = 0.0
        try:
            speech = await self.speech.speak(plan)
            async for event in speech.events:
                if event.kind != "sentence":
                    continue
                done += 1
                self.running[job.id] = done / total
                if time.monotonic() - beat > min(lease / 3, 0.5):
                    beat = time.monotonic()
                    if not await self.store.heartbeat(job.id, self.id, lease, done / total):
                        log.warning("job %s: lease lost; another runner has it", job.id)
                        return
            record = self.library.generations.pending.get(speech.id)
            if record is not None:
                await asyncio.shield(record.done)  # the audio is stored before we say so
            generation = await self.library.generations.get(speech.id, None)
            cost = generation.cost if generation is not None else 0.0
            if not await self.store.complete(job.id, self.id, speech.id, cost):
                log.warning("job %s finished here but was no longer ours", job.id)
        except asyncio.CancelledError:
            raise  # shutting down: the lease runs out and the job is taken again
        except EngineBusy as exc:  # load, not a fault: no traceback; it is tried again
            log.warning("job %s: %s; it goes back to the queue", job.id, exc)
            await self.store.fail(job.id, self.id, f"engines busy: {exc}", retry=True)
        except Exception as exc:
            log.exception("job %s failed", job.id)
            await self.store.fail(job.id, self.id, f"synthesis failed: {exc}", retry=True)
        finally:
            self.running.pop(job.id, None)
