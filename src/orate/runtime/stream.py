"""The frames of one job on its way to a response: in order, bounded, cancellable.

Both backends (the local process pool and Ray actors) hand the pipeline the same
kind of stream. Up to ``limit`` bytes of audio wait in memory for the consumer;
past that, frames go to the job's spool file (runtime/spool.py), so the engine
finishes at its own speed and takes its next job while a slow client is still
reading. Only when the spool says no (its bounds, or the disk) is the backend
told to hold its producer (the pool stops reading the worker's pipe; the Ray pump
stops taking objects from the actor): a slow client then slows only its own
synthesis and costs about ``limit`` of memory. Only how the producer is held and
stopped differs between backends, in the three hooks below.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from orate.runtime.events import EventKind
from orate.runtime.spool import Frames, SpoolBudget


class PacedStream:
    """A job's ``(kind, payload)`` frames, ending after END; see the module docstring."""

    def __init__(
        self,
        job_id: int,
        limit: int = 256 * 1024,
        spool: SpoolBudget | None = None,
        owner: str | None = None,
    ) -> None:
        self.id = job_id
        self._frames = Frames(limit, spool, owner)
        self._wake = asyncio.Event()
        self.limit = limit
        self.finished = False
        self.cancelled = False
        self._ended = False  # END was pushed (it may still wait on disk)

    @property
    def buffered(self) -> int:
        """Bytes of audio waiting in memory for the consumer (not those on disk)."""
        return self._frames.pending_audio

    # -- what a backend does -------------------------------------------------------

    def _hold(self) -> None:
        """The consumer is ``limit`` behind and the spool is full: make the producer wait."""

    def _release(self) -> None:
        """The consumer caught up (or the job is cancelled): let the producer go on."""

    def _stop(self) -> None:
        """Tell the producer to stop at its next chunk."""

    # -- shared ----------------------------------------------------------------------

    def _push(self, kind: EventKind, payload: Any) -> None:
        if self.cancelled and kind is not EventKind.END:
            return  # nobody will read it: drop, so a cancelled job holds no memory
        self._ended = self._ended or kind is EventKind.END
        if self._frames.push(kind, payload):
            self._hold()
        self._wake.set()

    async def __aiter__(self) -> AsyncIterator[tuple[EventKind, Any]]:
        frames = self._frames
        try:
            while True:
                frame = frames.pop()
                if frame is None:
                    if frames.on_disk:
                        await frames.load()
                        continue
                    self._wake.clear()
                    await self._wake.wait()
                    continue
                kind, payload = frame
                if kind is EventKind.AUDIO and frames.pending_audio < self.limit:
                    self._release()
                if kind is EventKind.END:
                    self.finished = True
                    return
                yield kind, payload
        finally:
            if self.finished:
                frames.close()

    def cancel(self) -> None:
        """The caller went away: stop the synthesis at its next chunk, keep no audio."""
        if self.finished or self.cancelled:
            return
        self.cancelled = True
        self._frames.drop((EventKind.END, None) if self._ended else None)
        self._stop()
        self._release()  # a held producer must run on to see the stop and send END
