"""Frames a client has not read yet, kept on disk so the engine never waits for it.

A response is made faster than most clients read it: a phone on a slow link, a
player reading at real time, a WebSocket whose peer stopped reading. If the engine
waited for such a client, one slow reader per worker would stall every other
request. So past its memory window a job's frames go to a spool file, the worker
takes its next job as soon as its synthesis ends, and the client drains the file
at its own pace (until the connection's own idle deadline drops it).

Bounded three times: each job may spill at most ``stream_bytes``, the jobs of one
owner (an API key) together at most ``owner_bytes``, and all jobs of the process
together at most ``total_bytes`` (a ``SpoolBudget``), so one key's slow clients
cannot take the spool from everyone else. Past either bound,
or when the disk refuses a write, the job falls back to holding its producer, as
it did before there was a spool: bounded memory, and only that client waits.

Files are anonymous (``tempfile.TemporaryFile`` unlinks on creation), so nothing
is left behind by any path out of a job, a crash included. Writes go through the
page cache on the event loop (a frame is a few KiB); reads, which may have to
wait for the disk, run in a thread, a window at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import pickle
import struct
import tempfile
from collections import deque
from typing import Any

from orate.runtime.events import EventKind

log = logging.getLogger("orate.spool")

_FRAME = struct.Struct("<BI")  # kind's code, payload length
_AUDIO = EventKind.AUDIO  # its payload is raw bytes; other kinds' payloads are pickled


class SpoolBudget:
    """Bytes on disk for all the spools of this process, and where their files live."""

    def __init__(
        self,
        total_bytes: int,
        stream_bytes: int,
        directory: str | None = None,
        owner_bytes: int | None = None,
    ) -> None:
        self.total_bytes = total_bytes
        self.stream_bytes = stream_bytes
        self.owner_bytes = owner_bytes if owner_bytes is not None else total_bytes
        self.directory = directory
        self.used = 0
        self.by_owner: dict[str | None, int] = {}
        self.spilled = 0  # jobs that spilled to disk at least once (a metric)
        self.refused = 0  # jobs that hit a bound and held their producer instead

    def take(self, n: int, owner: str | None = None) -> bool:
        mine = self.by_owner.get(owner, 0)
        if self.used + n > self.total_bytes or mine + n > self.owner_bytes:
            return False
        self.used += n
        self.by_owner[owner] = mine + n
        return True

    def give(self, n: int, owner: str | None = None) -> None:
        self.used = max(0, self.used - n)
        left = self.by_owner.get(owner, 0) - n
        if left > 0:
            self.by_owner[owner] = left
        else:
            self.by_owner.pop(owner, None)

    def stats(self) -> dict[str, int]:
        return {
            "spool_bytes": self.used,
            "spool_limit_bytes": self.total_bytes,
            "spooled_jobs": self.spilled,
            "spool_refusals": self.refused,
        }


class SpoolFile:
    """One job's frames on disk, first in, first out. ``write`` on the event loop,
    ``read`` from a thread; they touch disjoint byte ranges of the same file."""

    def __init__(self, budget: SpoolBudget, owner: str | None = None) -> None:
        self._budget = budget
        self._owner = owner
        # kept open for the life of the job (closed in close()), so no context manager
        self._file = tempfile.TemporaryFile(prefix="orate-spool-", dir=budget.directory)  # noqa: SIM115
        self._fd = self._file.fileno()
        self.written = 0  # end of the frames written
        self.read_to = 0  # start of the first frame not yet read back
        self.frames = 0  # frames written and not yet read back
        self.closed = False

    def write(self, kind: EventKind, payload: Any) -> bool:
        """Append one frame; False (and nothing written) when a bound or the disk says no."""
        data = bytes(payload) if kind is _AUDIO else pickle.dumps(payload)
        size = _FRAME.size + len(data)
        if self.written + size > self._budget.stream_bytes or not self._budget.take(
            size, self._owner
        ):
            return False
        try:
            os.pwrite(self._fd, _FRAME.pack(kind.code, len(data)) + data, self.written)
        except OSError as exc:
            self._budget.give(size, self._owner)
            log.warning("a response could not spool to disk (%s); its engine waits instead", exc)
            return False
        self.written += size
        self.frames += 1
        return True

    def read(self, window: int) -> tuple[list[tuple[EventKind, Any]], int]:
        """Frames from ``read_to``, about ``window`` bytes of them (at least one), and the
        offset after them. Runs in a thread: it only reads, the caller moves ``read_to``."""
        frames: list[tuple[EventKind, Any]] = []
        pos, end = self.read_to, self.written
        while pos < end and (not frames or pos - self.read_to < window):
            code, length = _FRAME.unpack(os.pread(self._fd, _FRAME.size, pos))
            kind = EventKind.of_code(code)
            data = os.pread(self._fd, length, pos + _FRAME.size)
            if len(data) != length:
                raise OSError("the spool file ended inside a frame")
            frames.append((kind, data if kind is _AUDIO else pickle.loads(data)))
            pos += _FRAME.size + length
        return frames, pos

    def advance(self, to: int, frames: int) -> None:
        """The frames up to ``to`` are in memory now; once all are, give the bytes back."""
        self.read_to = to
        self.frames -= frames
        if self.read_to >= self.written:
            self._budget.give(self.written, self._owner)
            self.written = self.read_to = 0
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, 0)

    @property
    def unread(self) -> bool:
        return self.read_to < self.written

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._budget.give(self.written, self._owner)  # charged until all is read back
            self._file.close()


class Frames:
    """A job's frames in order: a memory window, then the spool file, then (when the spool
    said no) a memory tail. ``pending_audio`` is what the window and the tail hold."""

    def __init__(self, window: int, budget: SpoolBudget | None, owner: str | None = None) -> None:
        self.window = window
        self.budget = budget
        self.owner = owner
        self.head: deque[tuple[EventKind, Any]] = deque()
        self.tail: deque[tuple[EventKind, Any]] = deque()
        self.spool: SpoolFile | None = None
        self.pending_audio = 0
        self.refused = False  # the spool said no once: from then on, hold the producer

    def push(self, kind: EventKind, payload: Any) -> bool:
        """Queue a frame; True when the producer should now be held."""
        to_disk = bool(self.tail) or (self.spool is not None and self.spool.unread)
        if not to_disk and kind is _AUDIO and self.pending_audio >= self.window:
            to_disk = True
        if to_disk and not self.tail and self._spill(kind, payload):
            return False
        queue = self.tail if to_disk else self.head
        queue.append((kind, payload))
        if kind is _AUDIO:
            self.pending_audio += len(payload)
        return self.pending_audio >= self.window and (to_disk or self.budget is None)

    def _spill(self, kind: EventKind, payload: Any) -> bool:
        if self.budget is None or self.refused:
            return False
        if self.spool is None:
            try:
                self.spool = SpoolFile(self.budget, self.owner)
            except OSError as exc:
                log.warning("no spool file (%s); a slow client's engine waits instead", exc)
                self.refused = True
                return False
            self.budget.spilled += 1
        if self.spool.write(kind, payload):
            return True
        self.refused = True
        self.budget.refused += 1
        return False

    def pop(self) -> tuple[EventKind, Any] | None:
        """The next frame in memory, or None when the next one is on disk or not made."""
        if not self.head and not (self.spool is not None and self.spool.unread) and self.tail:
            self.head, self.tail = self.tail, deque()
        if not self.head:
            return None
        kind, payload = self.head.popleft()
        if kind is _AUDIO:
            self.pending_audio -= len(payload)
        return kind, payload

    @property
    def on_disk(self) -> bool:
        return not self.head and self.spool is not None and self.spool.unread

    async def load(self) -> None:
        """Bring the next window of frames back from disk, reading in a thread."""
        spool = self.spool
        assert spool is not None
        frames, to = await asyncio.to_thread(spool.read, self.window)
        if spool.closed:
            return
        spool.advance(to, len(frames))
        self.head.extend(frames)
        self.pending_audio += sum(len(p) for k, p in frames if k is _AUDIO)

    def drop(self, end: tuple[EventKind, Any] | None) -> None:
        """Forget every frame (a cancelled job), keeping only its last frame ``end`` if
        that was made already, so a reader still sees the job end."""
        self.close()
        self.spool = None
        self.head = deque([end] if end is not None else [])
        self.tail = deque()
        self.pending_audio = 0

    def close(self) -> None:
        if self.spool is not None:
            self.spool.close()
