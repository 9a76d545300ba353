"""The engine worker process: receives render jobs, streams framed results back.

Frames are ``<payload length u32><job id u32><kind u8>`` then the payload:
raw bytes for audio, JSON for everything else. A worker runs one job at a
time (espeak-ng is process-global); the parent cancels a job by writing its
id into a shared integer that the render checks on every audio chunk.
"""

from __future__ import annotations

import ctypes
import json
import os
import struct
import sys
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from orate.engines import registry
from orate.engines.registry import engine_by_name
from orate.speech.render import AUDIO, ERROR, RenderJob, render

HEADER = struct.Struct("<IIB")
READY = 6  # a worker's first frame, job id 0: it has loaded its engines
END = 7  # the last frame of every job, after DONE or ERROR or a cancel
READY_JOB = 0
SWEEP_EVERY = 30.0  # seconds of idleness between checks for models to unload


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
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]


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


def _write_all(fd: int, data: bytes | memoryview) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def worker_main(jobs: Connection, out: Connection, cancel: Any, index: int,
                models_dir: str | None = None, idle: float = 300.0) -> None:
    """Entry point of a worker process (spawned, so it imports only what it needs)."""
    tune_malloc()
    fd = out.fileno()
    registry.configure(Path(models_dir) if models_dir else None, idle)
    engine_by_name("espeak")  # load before announcing readiness: first request stays fast

    def send(job_id: int, kind: int, payload: Any) -> None:
        body = payload if kind == AUDIO else json.dumps(payload).encode()
        header = HEADER.pack(len(body), job_id, kind)
        if len(body) < 65536:  # one write: the parent wakes once per message
            _write_all(fd, header + body)
        else:
            _write_all(fd, header)
            _write_all(fd, body)

    send(READY_JOB, READY, {"pid": os.getpid(), "index": index})
    while True:
        try:
            while not jobs.poll(min(SWEEP_EVERY, max(idle / 2, 0.5))):
                registry.sweep()  # idle: unload neural models nobody has used for a while
            job_id, job = jobs.recv()
        except (EOFError, OSError, KeyboardInterrupt):
            return
        if job is None:
            return
        cancelled = False
        try:
            stats = render(job_check(job), engine_by_name,
                           lambda kind, payload, _id=job_id: send(_id, kind, payload),
                           lambda _id=job_id: cancel.value == _id)
            cancelled = stats.cancelled
        except Exception as exc:  # report, then keep serving: one bad job must not kill us
            send(job_id, ERROR, {"message": f"{type(exc).__name__}: {exc}",
                                 "code": getattr(exc, "code", None)})
        finally:
            send(job_id, END, {"cancelled": cancelled})


def job_check(job: object) -> RenderJob:
    if not isinstance(job, RenderJob):
        raise TypeError(f"expected a RenderJob, got {type(job).__name__}")
    return job
