"""The engine worker process: receives render jobs, streams framed results back.

Frames are ``<payload length u32><job id u32><kind u8>`` then the payload:
raw bytes for audio, JSON for everything else. A worker holds up to the pool's
``streams`` jobs and runs them a sentence at a time, earliest deadline first
(runtime/interleave.py); one engine call runs at a time, since espeak-ng is
process-global. The parent cancels a job by writing its id into the job's slot
of a small shared array that the render checks on every audio chunk.

The pool starts a worker as ``python -m orate.runtime.worker`` with the pipes
and the cancel flag passed as file descriptors, not through multiprocessing's
spawn: spawn re-imports the parent's main module (the CLI, pydantic settings:
~20 MiB and half a second per worker) and starts a resource-tracker process.
A worker imports only the engines, numpy and the render step.
"""

from __future__ import annotations

import ctypes
import json
import mmap
import os
import struct
import sys
import tempfile
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from orate.engines.onnx_base import set_thread_budget
from orate.engines.registry import EngineRegistry
from orate.runtime.events import EventKind
from orate.runtime.interleave import Interleaver, Running
from orate.runtime.render import RenderJob, render_steps

HEADER = struct.Struct("<IIB")
READY_JOB = 0
SWEEP_EVERY = 30.0  # seconds of idleness between checks for models to unload
# seconds without a job before a worker gives the heap its jobs freed back to the kernel:
# under load the heap is reused (no page faults on the next run); after a burst it is
# not kept for good
TRIM_IDLE = 10.0


def tune_malloc() -> None:
    """Keep freed memory in the process instead of returning pages to the kernel.

    Fresh pages are expensive on these VMs (page faults dominated a small WAV
    encode); PCM buffers are a few hundred kB, above glibc's default mmap
    threshold, so every chunk would otherwise fault in new pages.
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3
        libc.mallopt(m_mmap_threshold, 32 * 1024 * 1024)
        libc.mallopt(m_trim_threshold, 128 * 1024 * 1024)
    except OSError:
        pass


class _Mallinfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )
    ]


def _libc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallinfo2.restype = _Mallinfo2
        return libc
    except (OSError, AttributeError):  # not glibc, or older than 2.33
        return None


_LIBC = _libc()


def malloc_free_bytes() -> int:
    """Bytes malloc holds free in its arenas (memory the process keeps but does not use)."""
    return int(_LIBC.mallinfo2().fordblks) if _LIBC is not None else 0


def malloc_trim() -> None:
    """Give malloc's free pages back to the kernel.

    glibc keeps freed memory in its arenas (one per thread that allocated), so after
    large responses end the process's RSS stays at its peak. The server calls this
    (in a thread: ctypes releases the GIL) when much memory is held free.
    """
    if _LIBC is not None:
        _LIBC.malloc_trim(0)


def _send_frame(fd: int, header: bytes, body: bytes) -> None:
    """Header and body in one system call and without joining them (a 256 kB message
    fits the 1 MiB pipe whole, so the parent wakes once per message)."""
    n = os.writev(fd, (header, body))
    if n < len(header):  # a signal cut the write short: finish it plainly
        _write_all(fd, header[n:])
        _write_all(fd, body)
    elif n < len(header) + len(body):
        _write_all(fd, memoryview(body)[n - len(header) :])


def _write_all(fd: int, data: bytes | memoryview) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


class CancelFlag:
    """For each of a worker's job slots, the id of the job the parent wants stopped, in
    memory both processes map.

    The render checks it on every audio chunk, so it must cost no system call:
    ``SLOTS`` unsigned 32-bit integers in a shared mapping of a memfd (a deleted
    temporary file where memfd is missing), handed to the worker as a file descriptor.
    Job ids are never reused, so a slot's stale id never stops a later job.
    """

    SLOTS = 256
    SIZE = 4 * SLOTS

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._map = mmap.mmap(fd, self.SIZE)
        self._values = (ctypes.c_uint32 * self.SLOTS).from_buffer(self._map)

    @classmethod
    def create(cls) -> CancelFlag:
        if hasattr(os, "memfd_create"):
            fd = os.memfd_create("orate-cancel", 0)  # not inheritable until passed on
        else:  # pragma: no cover - macOS
            fd, path = tempfile.mkstemp(prefix="orate-cancel-")
            os.unlink(path)
        os.ftruncate(fd, cls.SIZE)
        return cls(fd)

    def get(self, slot: int) -> int:
        return int(self._values[slot])

    def set(self, slot: int, job_id: int) -> None:
        self._values[slot] = job_id

    def close_fd(self) -> None:
        """Drop the descriptor (the mapping stays): once the worker has its own copy."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def main(argv: list[str] | None = None) -> None:
    """``python -m orate.runtime.worker JOBS_FD OUT_FD CANCEL_FD INDEX IDLE [MODELS_DIR]``."""
    args = sys.argv[1:] if argv is None else argv
    jobs_fd, out_fd, cancel_fd, index = (int(a) for a in args[:4])
    idle = float(args[4])
    models_dir = args[5] if len(args) > 5 and args[5] else None
    cancel = CancelFlag(cancel_fd)
    cancel.close_fd()
    worker_main(Connection(jobs_fd, writable=False), out_fd, cancel, index, models_dir, idle)


def worker_main(
    jobs: Connection,
    fd: int,
    cancel: Any,
    index: int,
    models_dir: str | None = None,
    idle: float = 300.0,
) -> None:
    """Serve render jobs from ``jobs`` until it closes, framing results onto ``fd``."""
    tune_malloc()
    registry = EngineRegistry(Path(models_dir) if models_dir else None, idle)
    registry.engine("espeak")  # load before announcing readiness: first request stays fast

    def send(job_id: int, kind: EventKind, payload: Any) -> None:
        body = payload if kind is EventKind.AUDIO else json.dumps(payload).encode()
        _send_frame(fd, HEADER.pack(len(body), job_id, kind.code), body)

    send(READY_JOB, EventKind.READY, {"pid": os.getpid(), "index": index})
    held = Interleaver()
    closing = False
    worked = False  # jobs ran since the heap was last given back
    while True:
        try:
            if not held:
                if closing:
                    return
                if worked and not jobs.poll(TRIM_IDLE):
                    malloc_trim()
                    worked = False
                while not jobs.poll(min(SWEEP_EVERY, max(idle / 2, 0.5))):
                    registry.sweep()  # idle: unload neural models nobody has used for a while
            while not closing and jobs.poll(0):  # every job already sent joins before a step
                message = jobs.recv()
                if message[1] is None:
                    closing = True  # finish what is held, then exit
                else:
                    _start(held, message, registry, send, cancel)
                    worked = True
        except (EOFError, OSError, KeyboardInterrupt):
            return
        run = held.next()
        if run is not None:
            _step(held, run, send)


def _start(
    held: Interleaver,
    message: tuple[Any, ...],
    registry: EngineRegistry,
    send: Callable[[int, EventKind, Any], None],
    cancel: Any,
) -> None:
    """Take a job from the parent: ``(job id, job, thread budget, slot)``."""
    job_id, job = message[0], message[1]
    budget = message[2] if len(message) > 2 else 1
    slot = message[3] if len(message) > 3 else 0
    run = held.add(job_id, slot, budget)

    def emit(kind: EventKind, payload: Any) -> None:
        run.saw(kind, payload)
        send(job_id, kind, payload)

    def stopped() -> bool:
        return bool(cancel.get(slot) == job_id)

    try:
        run.steps = render_steps(job_check(job), registry.engine, emit, stopped)
    except Exception as exc:
        held.jobs.pop(job_id, None)
        _failed(send, job_id, exc)


def _step(held: Interleaver, run: Running, send: Callable[[int, EventKind, Any], None]) -> None:
    """One sentence of ``run``; END once it has finished or failed (one bad job must not
    stop the others)."""
    # intra-op threads this job's model runs may use: the cores the pool saw idle
    set_thread_budget(run.budget)
    try:
        stats = held.step(run)
    except Exception as exc:
        _failed(send, run.job_id, exc)
        return
    if stats is not None:
        send(run.job_id, EventKind.END, {"cancelled": stats.cancelled})


def _failed(send: Callable[[int, EventKind, Any], None], job_id: int, exc: Exception) -> None:
    send(
        job_id,
        EventKind.ERROR,
        {"message": f"{type(exc).__name__}: {exc}", "code": getattr(exc, "code", None)},
    )
    send(job_id, EventKind.END, {"cancelled": False})


def job_check(job: object) -> RenderJob:
    if not isinstance(job, RenderJob):
        raise TypeError(f"expected a RenderJob, got {type(job).__name__}")
    return job


if __name__ == "__main__":
    main()
