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
import multiprocessing as mp
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orate.runtime.render import AUDIO, ERROR, RenderJob
from orate.runtime.stream import PacedStream
from orate.runtime.worker import END, HEADER, READY, worker_main

log = logging.getLogger("orate.pool")

START_TIMEOUT = 120.0


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


def next_job_id(ids: Any) -> int:
    """A job id that fits the wire's u32 and is never 0 (0 means "no job")."""
    return next(ids) & 0xFFFFFFFF or next(ids)


class JobStream(PacedStream):
    """One job on a pool worker. Held by no longer reading the worker's pipe: the pipe
    fills, the worker blocks in its write, and so does its engine. Stopped through the
    shared integer the worker's render checks on every audio chunk."""

    def __init__(self, job_id: int, worker: _Worker, limit: int = 256 * 1024) -> None:
        super().__init__(job_id, limit)
        self._worker = worker

    def _hold(self) -> None:
        self._worker.pause()

    def _release(self) -> None:
        self._worker.resume()

    def _stop(self) -> None:
        if self._worker.current is self:
            self._worker.cancel.value = self.id


@dataclass(eq=False)
class _Worker:
    index: int
    process: Any
    jobs: Any  # Connection, parent → worker
    cancel: Any  # shared unsigned int: id of the job to stop
    ready: asyncio.Future[None]
    current: JobStream | None = None
    alive: bool = True
    transport: asyncio.ReadTransport | None = field(default=None, repr=False)
    paused: bool = False

    def pause(self) -> None:
        """Stop reading this worker's pipe: its next writes block, and so does its engine."""
        if not self.paused and self.transport is not None and not self.transport.is_closing():
            self.paused = True
            self.transport.pause_reading()

    def resume(self) -> None:
        if self.paused:
            self.paused = False
            if self.transport is not None and not self.transport.is_closing():
                self.transport.resume_reading()


class _Reader(asyncio.Protocol):
    """Parses the framed pipe of one worker and hands messages to the pool."""

    def __init__(self, pool: EnginePool, worker: _Worker) -> None:
        self._pool = pool
        self._worker = worker
        self._buf = bytearray()

    def data_received(self, data: bytes) -> None:
        buf = self._buf
        buf += data
        pos = 0
        size = HEADER.size
        while len(buf) - pos >= size:
            length, job_id, kind = HEADER.unpack_from(buf, pos)
            if len(buf) - pos - size < length:
                break
            payload = bytes(buf[pos + size : pos + size + length])
            pos += size + length
            self._pool._dispatch(self._worker, job_id, kind, payload)
        if pos:
            del buf[:pos]

    def connection_lost(self, exc: Exception | None) -> None:
        self._pool._on_exit(self._worker)


class EnginePool:
    """``size`` worker processes; ``submit`` runs a render job on the next free one."""

    def __init__(self, size: int, models_dir: Path | None = None, idle: float = 300.0, *,
                 max_queue: int = 64, queue_timeout: float = 30.0,
                 buffer_bytes: int = 256 * 1024) -> None:
        self.size = size
        self.buffer_bytes = buffer_bytes
        self.max_queue = max_queue
        self.queue_timeout = queue_timeout
        self._models_dir = str(models_dir) if models_dir else None
        self._model_idle = idle
        self._ctx = mp.get_context("spawn")
        self._ids = itertools.count(1)
        self._idle: asyncio.Queue[_Worker] = asyncio.Queue()
        self._workers: dict[int, _Worker] = {}
        self._closing = False
        self.restarts = 0
        self.waiting = 0
        self.completed = 0
        self.cancelled = 0  # jobs a worker stopped early because the caller went away

    # -- lifecycle -----------------------------------------------------------

    async def start(self) -> None:
        await asyncio.gather(*(self._spawn(i) for i in range(self.size)))

    async def _spawn(self, index: int) -> None:
        loop = asyncio.get_running_loop()
        jobs_r, jobs_w = self._ctx.Pipe(duplex=False)
        out_r, out_w = self._ctx.Pipe(duplex=False)
        cancel = self._ctx.RawValue("I", 0)
        process = self._ctx.Process(target=worker_main,
                                    args=(jobs_r, out_w, cancel, index, self._models_dir,
                                          self._model_idle),
                                    name=f"orate-engine-{index}", daemon=True)
        await asyncio.to_thread(process.start)
        jobs_r.close()
        out_w.close()
        worker = _Worker(index, process, jobs_w, cancel, loop.create_future())
        self._workers[index] = worker
        pipe = os.fdopen(os.dup(out_r.fileno()), "rb", buffering=0)
        out_r.close()
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
            await asyncio.to_thread(w.process.join, 5)
            if w.process.is_alive():
                w.process.kill()
                await asyncio.to_thread(w.process.join, 5)
            if w.transport is not None:
                w.transport.close()
            with contextlib.suppress(OSError):
                w.jobs.close()

    def pids(self) -> list[int]:
        return [w.process.pid for w in self._workers.values() if w.alive]

    def stats(self) -> dict[str, int]:
        busy = sum(1 for w in self._workers.values() if w.current is not None)
        return {"workers": len(self.pids()), "busy": busy, "waiting": self.waiting,
                "completed": self.completed, "cancelled": self.cancelled,
                "restarts": self.restarts}

    # -- jobs ----------------------------------------------------------------

    async def submit(self, job: RenderJob) -> JobStream:
        """Wait for a free worker and start ``job`` on it."""
        if self._closing:
            raise PoolClosed("the engine pool is shutting down")
        worker = await take_idle(self, self._idle)
        job_id = next_job_id(self._ids)
        stream = JobStream(job_id, worker, self.buffer_bytes)
        worker.current = stream
        try:
            worker.jobs.send((job_id, job))
        except (OSError, ValueError):
            worker.current = None
            stream._push(ERROR, {"message": "engine worker is gone"})
            stream._push(END, None)
        return stream

    def _dispatch(self, worker: _Worker, job_id: int, kind: int, payload: bytes) -> None:
        if kind == READY:
            if not worker.ready.done():
                worker.ready.set_result(None)
            self._idle.put_nowait(worker)
            return
        stream = worker.current
        if stream is None or stream.id != job_id:
            return
        if kind == END:
            worker.current = None
            worker.resume()
            if json.loads(payload).get("cancelled"):
                self.cancelled += 1
            else:
                self.completed += 1
            stream._push(END, None)
            self._idle.put_nowait(worker)
            return
        stream._push(kind, payload if kind == AUDIO else json.loads(payload))

    def _on_exit(self, worker: _Worker) -> None:
        """The worker's pipe closed: it exited or was killed. Fail its job, replace it."""
        worker.alive = False
        if not worker.ready.done():
            # died while starting: _spawn raises; respawning here could loop forever
            worker.ready.set_exception(RuntimeError(f"engine worker {worker.index} exited "
                                                    "before it was ready"))
            return
        stream, worker.current = worker.current, None
        worker.paused = False
        if stream is not None:
            stream._push(ERROR, {"message": "the engine worker died while synthesizing"})
            stream._push(END, None)
        asyncio.get_running_loop().run_in_executor(None, worker.process.join, 5)
        if not self._closing:
            self.restarts += 1
            log.warning("engine worker %d exited (code %s); starting a new one",
                        worker.index, worker.process.exitcode)
            task = asyncio.get_running_loop().create_task(self._spawn(worker.index))
            task.add_done_callback(_log_failure)


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("could not replace an engine worker: %s", task.exception())
