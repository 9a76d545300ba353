"""The frames of one job on its way to a response: in order, bounded, cancellable.

Both backends (the local process pool and Ray actors) hand the pipeline the same
kind of stream. It is bounded the same way: once more than ``limit`` bytes of audio
wait for the consumer, the backend is told to hold its producer (the pool stops
reading the worker's pipe; the Ray pump stops taking objects from the actor), so a
slow client slows only its own synthesis and costs about ``limit`` of memory. Only
how the producer is held and stopped differs, in the three hooks below.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from typing import Any

from orate.runtime.events import EventKind


class PacedStream:
    """A job's ``(kind, payload)`` frames, ending after END; see the module docstring."""

    def __init__(self, job_id: int, limit: int = 256 * 1024) -> None:
        self.id = job_id
        self._queue: deque[tuple[EventKind, Any]] = deque()
        self._wake = asyncio.Event()
        self.limit = limit
        self.buffered = 0  # bytes of audio queued here, not yet taken by the consumer
        self.finished = False
        self.cancelled = False

    # -- what a backend does -------------------------------------------------------

    def _hold(self) -> None:
        """The consumer is ``limit`` behind: make the producer wait."""

    def _release(self) -> None:
        """The consumer caught up (or the job is cancelled): let the producer go on."""

    def _stop(self) -> None:
        """Tell the producer to stop at its next chunk."""

    # -- shared ----------------------------------------------------------------------

    def _push(self, kind: EventKind, payload: Any) -> None:
        if self.cancelled and kind is not EventKind.END:
            return  # nobody will read it: drop, so a cancelled job holds no memory
        self._queue.append((kind, payload))
        if kind is EventKind.AUDIO:
            self.buffered += len(payload)
            if self.buffered >= self.limit:
                self._hold()
        self._wake.set()

    async def __aiter__(self) -> AsyncIterator[tuple[EventKind, Any]]:
        while True:
            while not self._queue:
                self._wake.clear()
                await self._wake.wait()
            kind, payload = self._queue.popleft()
            if kind is EventKind.AUDIO:
                self.buffered -= len(payload)
                if self.buffered < self.limit:
                    self._release()
            if kind is EventKind.END:
                self.finished = True
                return
            yield kind, payload

    def cancel(self) -> None:
        """The caller went away: stop the synthesis at its next chunk, keep no audio."""
        if self.finished or self.cancelled:
            return
        self.cancelled = True
        self._queue = deque(m for m in self._queue if m[0] is EventKind.END)
        self.buffered = 0
        self._stop()
        self._release()  # a held producer must run on to see the stop and send END
