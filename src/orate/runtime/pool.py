"""A pool of engine worker processes shared by every request of the server.

Why processes: espeak-ng is process-global and not thread-safe, and encoding
is CPU-bound; one worker per core keeps every engine busy while the event
loop only moves bytes. Why one shared pool instead of ``uvicorn --workers``:
the kernel does not spread connections evenly across server processes, so
half the engines would sit idle under load.

Results come back over a pipe read by asyncio itself (no reader threads); a
worker that dies fails only the job it was running and is replaced.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]  # checked before each use

from orate.engines.onnx_base import cores
from orate.runtime.events import EventKind
from orate.runtime.render import RenderJob
from orate.runtime.spool import SpoolBudget
from orate.runtime.stream import PacedStream
from orate.runtime.worker import HEADER, CancelFlag

log = logging.getLogger("orate.pool")

START_TIMEOUT = 120.0
PIPE_BYTES = 1024 * 1024  # the worker's result pipe: a 256 kB message fits in one write


class PoolClosed(RuntimeError):
    pass


class EngineBusy(RuntimeError):
    """The queue in front of the engines is full, or a request waited too long in it."""

    def __init__(self, message: str, retry_after: int = 1) -> None:
        super().__init__(message)
        self.retry_after = retry_after


async def take_idle(backend: Any, idle: asyncio.Queue[Any]) -> Any:
    """A live idle engine (a pool worker or a Ray actor), waited for the way every backend
    waits: at most ``backend.max_queue`` requests in line, each for at most
    ``backend.queue_timeout`` seconds; past either, EngineBusy (503 + Retry-After)."""
    if idle.empty() and backend.waiting >= backend.max_queue:
        raise EngineBusy(f"{backend.waiting} requests are already waiting")
    backend.waiting += 1
    try:
        async with asyncio.timeout(backend.queue_timeout):
            while True:
                engine = await idle.get()
                if engine.alive:
                    return engine
    except TimeoutError:
        raise EngineBusy(f"no engine was free within {backend.queue_timeout:g} s") from None
    finally:
        backend.waiting -= 1


def thread_budget(busy: int, cores: int) -> int:
    """Intra-op threads for a job that starts while ``busy`` other jobs run: the cores
    nobody uses, so a user alone gets every core and under load each job gets one (a
    job that started wide keeps its threads until it ends, so one job at most runs
    over while the load rises)."""
    return max(1, cores - busy)


def next_job_id(ids: Iterator[int]) -> int:
    """A job id that fits the wire's u32 and is never 0 (0 means "no job")."""
    return next(ids) & 0xFFFFFFFF or next(ids)


class JobStream(PacedStream):
    """One job on a pool worker. Held by no longer reading the worker's pipe: the pipe
    fills, the worker blocks in its write, and so do its engine and the other jobs it
    holds (only when the spool is full or off). Stopped through the job's slot of the
    shared array the worker's render checks on every audio chunk."""

    def __init__(
        self,
        job_id: int,
        worker: _Worker,
        limit: int = 256 * 1024,
        spool: SpoolBudget | None = None,
        owner: str | None = None,
        slot: int = 0,
    ) -> None:
        super().__init__(job_id, limit, spool, owner)
        self._worker = worker
        self.slot = slot

    def _hold(self) -> None:
        self._worker.hold(self.id)

    def _release(self) -> None:
        self._worker.unhold(self.id)

    def _stop(self) -> None:
        if self._worker.running.get(self.id) is self:
            self._worker.cancel.set(self.slot, self.id)


@dataclass(eq=False)
class _Worker:
    index: int
    process: subprocess.Popen[bytes]
    jobs: Connection  # parent → worker
    cancel: CancelFlag  # per slot, id of the job to stop, shared with the worker
    ready: asyncio.Future[None]
    running: dict[int, JobStream] = field(default_factory=dict)  # job id → its stream
    free_slots: list[int] = field(default_factory=list)
    alive: bool = True
    transport: asyncio.ReadTransport | None = field(default=None, repr=False)
    holding: set[int] = field(default_factory=set)  # jobs whose readers are full
    last_job: int = 0  # when it was last given a job (the pool's count of jobs given)

    def hold(self, job_id: int) -> None:
        """Stop reading this worker's pipe while any of its jobs' readers is full: its next
        writes block, and so does its engine."""
        if job_id in self.running:
            if not self.holding and (pipe := self._open_pipe()) is not None:
                pipe.pause_reading()
            self.holding.add(job_id)

    def unhold(self, job_id: int) -> None:
        if job_id in self.holding:
            self.holding.discard(job_id)
            if not self.holding and (pipe := self._open_pipe()) is not None:
                pipe.resume_reading()

    def _open_pipe(self) -> asyncio.ReadTransport | None:
        pipe = self.transport
        return pipe if pipe is not None and not pipe.is_closing() else None


class _Reader(asyncio.BufferedProtocol):
    """Parses the framed pipe of one worker and hands messages to the pool.

    A buffered protocol: the event loop reads the pipe straight into ``_buf`` (1 MiB,
    the pipe's size), and each message leaves it as one ``bytes``. Through plain
    ``data_received`` every audio byte was copied four times in this process (the
    loop's read buffer, a new bytes, this buffer, the message's slice) before its
    response got it; for a 218-word WAV that is 12 MB of copying per request.
    """

    def __init__(self, pool: EnginePool, worker: _Worker) -> None:
        self._pool = pool
        self._worker = worker
        self._buf = bytearray(PIPE_BYTES)
        self._start = 0  # first byte not yet handed on
        self._end = 0  # end of what the pipe has filled in

    def get_buffer(self, sizehint: int) -> memoryview:
        if self._end == len(self._buf):
            self._make_room()
        return memoryview(self._buf)[self._end :]

    def _make_room(self) -> None:
        """Move the unfinished message to the front, into a new buffer if it is longer
        than this one (never resize: the loop may still hold a view of the buffer)."""
        pending = bytes(memoryview(self._buf)[self._start : self._end])
        need = len(pending)
        if need >= HEADER.size:
            need = max(need, HEADER.size + HEADER.unpack_from(pending)[0])
        if need >= len(self._buf):
            self._buf = bytearray(need)
        self._buf[: len(pending)] = pending
        self._start, self._end = 0, len(pending)

    def buffer_updated(self, nbytes: int) -> None:
        self._end += nbytes
        buf, pos, end, size = self._buf, self._start, self._end, HEADER.size
        view = memoryview(buf)
        try:
            while end - pos >= size:
                length, job_id, kind = HEADER.unpack_from(buf, pos)
                if end - pos - size < length:
                    break
                payload = bytes(view[pos + size : pos + size + length])
                pos += size + length
                self._pool._dispatch(self._worker, job_id, EventKind.of_code(kind), payload)
        finally:
            view.release()
        if pos == end:
            pos = end = 0  # all handed on: start filling from the front again
        self._start, self._end = pos, end

    def data_received(self, data: bytes) -> None:
        """Event loops without buffered reads for pipes (asyncio's own) call this."""
        rest = memoryview(data)
        while rest:
            room = self.get_buffer(len(rest))
            n = min(len(room), len(rest))
            room[:n] = rest[:n]
            room.release()
            rest = rest[n:]
            self.buffer_updated(n)

    def connection_lost(self, exc: Exception | None) -> None:
        self._pool._on_exit(self._worker)


class EnginePool:
    """``size`` worker processes; ``submit`` runs a render job on the next free one."""

    def __init__(
        self,
        size: int,
        models_dir: Path | None = None,
        idle: float = 300.0,
        *,
        max_queue: int = 64,
        queue_timeout: float = 30.0,
        buffer_bytes: int = 256 * 1024,
        spool: SpoolBudget | None = None,
        streams: int = 1,
    ) -> None:
        self.size = size
        self.streams = max(1, min(streams, CancelFlag.SLOTS))  # jobs a worker interleaves
        self.buffer_bytes = buffer_bytes
        self.spool = spool
        self.max_queue = max_queue
        self.queue_timeout = queue_timeout
        self._models_dir = str(models_dir) if models_dir else None
        self._model_idle = idle
        self._ids = itertools.count(1)
        self._turns = itertools.count(1)
        # one entry per free job slot of a worker; which worker takes the job is
        # chosen when it is taken (the least busy), so an entry only counts
        self._idle: asyncio.Queue[_Worker] = asyncio.Queue()
        self._workers: dict[int, _Worker] = {}
        self._closing = False
        self.restarts = 0
        self.waiting = 0
        self.completed = 0
        self.cancelled = 0  # jobs a worker stopped early because the caller went away
        self.cores = cores()

    # -- lifecycle -----------------------------------------------------------

    async def start(self) -> None:
        await asyncio.gather(*(self._spawn(i) for i in range(self.size)))

    async def _spawn(self, index: int) -> None:
        loop = asyncio.get_running_loop()
        jobs_r, jobs_w = os.pipe()
        out_r, out_w = os.pipe()
        _grow_pipe(out_w)
        cancel = CancelFlag.create()
        argv = [
            sys.executable,
            "-m",
            "orate.runtime.worker",
            str(jobs_r),
            str(out_w),
            str(cancel.fd),
            str(index),
            repr(self._model_idle),
            self._models_dir or "",
        ]
        try:
            process = await asyncio.to_thread(
                subprocess.Popen,
                argv,
                stdin=subprocess.DEVNULL,
                pass_fds=(jobs_r, out_w, cancel.fd),
            )
        finally:
            for fd in (jobs_r, out_w):
                os.close(fd)
            cancel.close_fd()
        worker = _Worker(
            index, process, Connection(jobs_w, readable=False), cancel, loop.create_future()
        )
        self._workers[index] = worker
        pipe = os.fdopen(out_r, "rb", buffering=0)
        worker.transport, _ = await loop.connect_read_pipe(lambda: _Reader(self, worker), pipe)
        try:
            await asyncio.wait_for(asyncio.shield(worker.ready), START_TIMEOUT)
        except TimeoutError:
            process.kill()
            raise RuntimeError(f"engine worker {index} did not start") from None

    async def close(self) -> None:
        self._closing = True
        workers = list(self._workers.values())
        for w in workers:
            with contextlib.suppress(OSError, ValueError):
                w.jobs.send((0, None))
        for w in workers:
            if not await asyncio.to_thread(_reap, w.process, 5):
                w.process.kill()
                await asyncio.to_thread(_reap, w.process, 5)
            if w.transport is not None:
                w.transport.close()
            with contextlib.suppress(OSError):
                w.jobs.close()

    def pids(self) -> list[int]:
        return [w.process.pid for w in self._workers.values() if w.alive]

    def stats(self) -> dict[str, int]:
        busy = self._running()
        return {
            "workers": len(self.pids()),
            "busy": busy,
            "waiting": self.waiting,
            "completed": self.completed,
            "cancelled": self.cancelled,
            "restarts": self.restarts,
            **(self.spool.stats() if self.spool is not None else {}),
        }

    # -- jobs ----------------------------------------------------------------

    async def submit(self, job: RenderJob, owner: str | None = None) -> JobStream:
        """Wait for a free worker and start ``job`` on it (``owner``: whose share of the
        spool its unread audio takes)."""
        if self._closing:
            raise PoolClosed("the engine pool is shutting down")
        worker = await self._take_slot()
        job_id = next_job_id(self._ids)
        slot = worker.free_slots.pop()
        stream = JobStream(job_id, worker, self.buffer_bytes, self.spool, owner, slot)
        budget = thread_budget(self._running(), self.cores)
        worker.running[job_id] = stream
        try:
            worker.jobs.send((job_id, job, budget, slot))
        except (OSError, ValueError):
            self._finished(worker, job_id)
            stream._push(EventKind.ERROR, {"message": "engine worker is gone"})
            stream._push(EventKind.END, None)
        return stream

    async def _take_slot(self) -> _Worker:
        """The least busy live worker with a free slot, once a slot is free (waited for
        as every backend waits: a bounded line, a bounded time)."""
        while True:
            await take_idle(self, self._idle)
            free = [w for w in self._workers.values() if w.alive and w.free_slots]
            if free:
                # the least busy; among equals the one given a job longest ago, so that
                # requests one after another take turns (each worker warms up alike)
                worker = min(free, key=lambda w: (len(w.running), w.last_job))
                worker.last_job = next(self._turns)
                return worker
            # the entry was of a worker that died since: wait for the next one

    def _running(self) -> int:
        return sum(len(w.running) for w in self._workers.values())

    def _finished(self, worker: _Worker, job_id: int) -> JobStream | None:
        """Free the slot of a job that ended; its stream."""
        stream = worker.running.pop(job_id, None)
        worker.unhold(job_id)
        if stream is not None:
            worker.free_slots.append(stream.slot)
            if worker.alive:
                self._idle.put_nowait(worker)
        return stream

    def _dispatch(self, worker: _Worker, job_id: int, kind: EventKind, payload: bytes) -> None:
        if kind is EventKind.READY:
            if not worker.ready.done():
                worker.ready.set_result(None)
            worker.free_slots = list(range(self.streams - 1, -1, -1))
            for _ in range(self.streams):
                self._idle.put_nowait(worker)
            return
        stream = worker.running.get(job_id)
        if stream is None:
            return
        if kind is EventKind.END:
            self._finished(worker, job_id)
            if json.loads(payload).get("cancelled"):
                self.cancelled += 1
            else:
                self.completed += 1
            stream._push(EventKind.END, None)
            return
        stream._push(kind, payload if kind is EventKind.AUDIO else json.loads(payload))

    def _on_exit(self, worker: _Worker) -> None:
        """The worker's pipe closed: it exited or was killed. Fail its job, replace it."""
        worker.alive = False
        if not worker.ready.done():
            # died while starting: _spawn raises; respawning here could loop forever
            worker.ready.set_exception(
                RuntimeError(f"engine worker {worker.index} exited before it was ready")
            )
            return
        streams, worker.running = list(worker.running.values()), {}
        worker.holding.clear()
        for stream in streams:
            stream._push(EventKind.ERROR, {"message": "the engine worker died while synthesizing"})
            stream._push(EventKind.END, None)
        asyncio.get_running_loop().run_in_executor(None, _reap, worker.process, 5)
        if not self._closing:
            self.restarts += 1
            log.warning(
                "engine worker %d exited (code %s); starting a new one",
                worker.index,
                worker.process.poll(),
            )
            task = asyncio.get_running_loop().create_task(self._spawn(worker.index))
            task.add_done_callback(_log_failure)


def _grow_pipe(fd: int) -> None:
    """Give the worker's result pipe 1 MiB instead of Linux's 64 kB: a 256 kB audio message
    then goes in one write, and the parent reads it in a few large reads instead of waking
    up for every 64 kB (Linux only; elsewhere the default stays)."""
    setpipe = getattr(fcntl, "F_SETPIPE_SZ", None) if fcntl is not None else None
    if setpipe is not None:
        with contextlib.suppress(OSError):  # over /proc/sys/fs/pipe-max-size: keep the default
            fcntl.fcntl(fd, setpipe, PIPE_BYTES)


def _reap(process: subprocess.Popen[bytes], timeout: float) -> bool:
    """Wait up to ``timeout`` seconds for ``process`` to exit; True once it has."""
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        return False
    return True


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("could not replace an engine worker: %s", task.exception())
