"""What the speech layer needs from an engine runtime, as a type.

Two runtimes render speech: the local process pool (``runtime/pool.py``) and Ray
actors (``runtime/ray_backend.py``). The speech service, the composition root and the
metrics hold either one through this protocol, so the type checker checks both against
the same contract instead of passing the Ray backend off as a pool.
"""

from __future__ import annotations

from typing import Any, Protocol

from orate.runtime.render import RenderJob
from orate.runtime.stream import PacedStream


class EngineBackend(Protocol):
    """Renders jobs on engine workers, with back-pressure and the counts metrics read."""

    #: engine workers (or actors) this replica runs when healthy
    size: int
    #: requests waiting for a free worker
    waiting: int
    #: workers replaced after they died
    restarts: int

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    def pids(self) -> list[int]: ...

    def stats(self) -> dict[str, Any]: ...

    async def submit(self, job: RenderJob, owner: str | None = None) -> PacedStream:
        """A job's frames, ending after END; ``EngineBusy`` when the queue is full
        (``owner``: whose share of the spool its unread audio takes)."""
        ...
