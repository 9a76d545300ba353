"""The job runner: takes durable jobs from the library and runs them through the speech service.

Each runner loop holds one job at a time and renews its lease from the moment it
takes the job until its outcome is recorded (progress = sentences done / sentences
planned). The result is
an ordinary generation (history, audio URL, cost); the job is completed only
after that generation is written, so a completed job always has its audio.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
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
        self._keepers: dict[str, tuple[asyncio.Task[None], asyncio.Event]] = {}  # lease renewals

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
        self.running[job.id] = 0.0
        lost, settled = asyncio.Event(), asyncio.Event()
        keeper = asyncio.get_running_loop().create_task(
            self._keep_lease(job.id, lease, lost, settled)
        )
        self._keepers[job.id] = (keeper, settled)
        try:
            await self._speak(job, lost)
        finally:
            await self._settling(job.id)
            self.running.pop(job.id, None)

    async def _settling(self, job_id: str) -> None:
        """Stop renewing a job's lease: its outcome is about to be recorded (a renewal
        after that would find the job no longer running and cry "lease lost"). A renewal
        under way finishes first (never cancelled inside a database call)."""
        keeping = self._keepers.pop(job_id, None)
        if keeping is not None:
            keeper, settled = keeping
            settled.set()
            await asyncio.shield(keeper)

    async def _keep_lease(
        self, job_id: str, lease: float, lost: asyncio.Event, settled: asyncio.Event
    ) -> None:
        """Renew the job's lease (and record its progress) for as long as it runs: while
        it waits for an engine, through a long sentence and while its audio is stored, not
        only when a sentence ends (a lease that ran out there let another runner start
        the same job again)."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(settled.wait(), min(lease / 3, 0.5))
            if settled.is_set():
                return
            try:
                ours = await self.store.heartbeat(
                    job_id, self.id, lease, self.running.get(job_id, 0.0)
                )
            except DB_ERRORS as exc:  # try again at the next beat, before the lease ends
                log.warning("job %s: could not renew its lease: %s", job_id, exc)
                continue
            if not ours and not settled.is_set():
                log.warning("job %s: lease lost; another runner has it", job_id)
                lost.set()
                return

    async def _speak(self, job: Job, lost: asyncio.Event) -> None:
        try:
            req = request_from_dict(job.request)
            req.max_chars = self.settings.max_job_chars
            req.framing = None  # bounded by max_job_chars; its audio goes to storage
            plan = await self.speech.plan(req, Context(owner=job.owner, dialect=job.dialect))
        except (SpeechError, TypeError, KeyError, ValueError) as exc:
            message = exc.message if isinstance(exc, SpeechError) else f"bad job request: {exc}"
            await self._settling(job.id)
            await self.store.fail(job.id, self.id, message, retry=False)
            return
        total = max(sum(len(seg.sentences) for seg in plan.job.segments), 1)
        done = 0
        try:
            speech = await self.speech.speak(plan)
            async for event in speech.events:
                if event.kind != "sentence":
                    continue
                done += 1
                self.running[job.id] = done / total
                if lost.is_set():
                    return
            record = self.library.generations.pending.get(speech.id)
            if record is not None:
                await asyncio.shield(record.done)  # the audio is stored before we say so
            generation = await self.library.generations.get(speech.id, None)
            cost = generation.cost if generation is not None else 0.0
            await self._settling(job.id)
            if not await self.store.complete(job.id, self.id, speech.id, cost):
                log.warning("job %s finished here but was no longer ours", job.id)
        except asyncio.CancelledError:
            raise  # shutting down: the lease runs out and the job is taken again
        except EngineBusy as exc:  # load, not a fault: no traceback; it is tried again
            log.warning("job %s: %s; it goes back to the queue", job.id, exc)
            await self._settling(job.id)
            await self.store.fail(job.id, self.id, f"engines busy: {exc}", retry=True)
        except Exception as exc:
            log.exception("job %s failed", job.id)
            await self._settling(job.id)
            await self.store.fail(job.id, self.id, f"synthesis failed: {exc}", retry=True)
