"""Several render jobs on one engine worker, a sentence at a time, earliest deadline first.

Run one after another, a worker makes every request wait for the whole of every
request queued before it: forty voice agents that each ask for a paragraph get their
first audio after forty paragraphs. Interleaved at sentence boundaries, each new
request's first sentence comes next, and a started request is stepped only when its
listener is about to run out of audio.

A job's deadline is when its listener needs more audio: for a job that has made no
audio yet, the moment it arrived (so new requests go first, in the order they came);
after that, the moment its first sentence was ready plus the audio made so far (the
listener plays from its first sentence at real time). The job with the earliest
deadline takes the next step. Nothing here knows about engines or pipes: a step is
``next()`` on a job's generator (runtime/render.py ``render_steps``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any

from orate.runtime.events import EventKind
from orate.runtime.render import RenderStats

Steps = Generator[None, None, RenderStats]


@dataclass(eq=False)
class Running:
    """One job on this worker and how far ahead of its listener it is."""

    job_id: int
    slot: int  # where the parent writes this job's id to stop it
    budget: int  # intra-op threads its model runs may use
    arrived: float
    steps: Steps | None = None
    started: float | None = None  # when its first sentence was ready
    audio_ms: float = 0.0  # audio made so far
    order: int = 0  # arrival order, to break ties

    @property
    def deadline(self) -> float:
        if self.started is None:
            return self.arrived
        return self.started + self.audio_ms / 1000.0

    def saw(self, kind: EventKind, payload: Any) -> None:
        """Follow the job's events: a sentence's end says how much audio it has made."""
        if kind is EventKind.SENTENCE:
            self.audio_ms = float(payload["end_ms"])


@dataclass
class Interleaver:
    """The jobs a worker holds; ``step()`` advances the one whose listener needs it first."""

    clock: Callable[[], float] = time.monotonic
    jobs: dict[int, Running] = field(default_factory=dict)
    _arrivals: int = 0

    def add(self, job_id: int, slot: int, budget: int) -> Running:
        self._arrivals += 1
        run = Running(job_id, slot, budget, self.clock(), order=self._arrivals)
        self.jobs[job_id] = run
        return run

    def next(self) -> Running | None:
        """The job to step now: earliest deadline, then earliest arrival."""
        if not self.jobs:
            return None
        return min(self.jobs.values(), key=lambda r: (r.deadline, r.order))

    def step(self, run: Running) -> RenderStats | None:
        """Advance ``run`` by one sentence; its stats once it has finished (it is then
        removed). An exception from the render also removes it, then propagates."""
        assert run.steps is not None
        try:
            next(run.steps)
        except StopIteration as done:
            del self.jobs[run.job_id]
            stats: RenderStats = done.value
            return stats
        except BaseException:
            del self.jobs[run.job_id]
            raise
        if run.started is None:
            run.started = self.clock()
        return None

    def __len__(self) -> int:
        return len(self.jobs)
