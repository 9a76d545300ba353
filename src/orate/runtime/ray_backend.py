"""Engines as Ray actors: the same render step as the local pool, on a Ray cluster.

``RayBackend`` has the interface the pipeline uses from ``EnginePool`` (``start``,
``close``, ``submit(job)`` → a stream of ``(kind, payload)`` frames with ``cancel``,
``stats``, ``pids``, ``size``, ``waiting``, ``restarts``), so the pipeline, the
single-flight, the cache and every dialect run unchanged on top of it.

Why this shape (measured in benchmarks/results/2026-11-30-scale.md):
- one actor per worker slot, each running one render at a time (espeak-ng is
  process-global), handed out from an asyncio queue of idle actors: back-pressure
  is the pool's (bounded waiting, 503 + Retry-After), and nothing blocks the event
  loop (``ray.util.ActorPool`` would);
- results come back through an actor generator method (``num_returns="streaming"``);
  the render step already coalesces audio (first chunk at once, then ≥ 4 kB, which
  is ≥ 50 ms of audio at any of our bitrates), and frames ready together travel as
  one object, because each streamed object costs ~0.4 ms;
- cancel is a second actor method (the actor runs two threads: the render and the
  cancel), checked by the render at every audio chunk, as in the pool;
- an actor or node that dies fails only the request it was running (an ERROR
  frame, which every dialect turns into its 503-style error) and is replaced.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import queue
import signal
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orate.runtime.events import EventKind
from orate.runtime.pool import PoolClosed, next_job_id, take_idle
from orate.runtime.render import RenderJob
from orate.runtime.spool import SpoolBudget
from orate.runtime.stream import PacedStream

log = logging.getLogger("orate.ray")

START_TIMEOUT = 120.0
BACKPRESSURE = 4  # objects an actor may stream ahead of the pump before it blocks
NAMESPACE = "orate"
GENERAL, NEURAL = "general", "neural"


def ray_module() -> Any:
    """Ray, which only the ``ray`` backend needs (``pip install 'orate[ray]'``)."""
    try:
        import ray
    except ImportError as exc:
        raise RuntimeError("ORATE_ENGINE_BACKEND=ray needs Ray: pip install 'orate[ray]'") from exc
    return ray


class EngineActor:
    """One engine slot on a Ray node (wrapped with ``ray.remote`` when first used)."""

    def __init__(self, models_dir: str | None, idle: float) -> None:
        from orate.engines.registry import EngineRegistry
        from orate.runtime.worker import tune_malloc

        tune_malloc()
        # the actor's own registry (one per process, as in a pool worker)
        self._registry = EngineRegistry(Path(models_dir) if models_dir else None, idle)
        self._registry.engine("espeak")  # loaded before ready(): the first request stays fast
        self._stop = 0

    def ready(self) -> dict[str, Any]:
        ray = ray_module()

        return {"pid": os.getpid(), "node": ray.get_runtime_context().get_node_id()}

    def cancel(self, job_id: int) -> None:
        """Stop ``job_id`` at its next audio chunk (runs beside ``render``)."""
        self._stop = job_id

    def render(self, job_id: int, job: RenderJob) -> Iterator[list[tuple[EventKind, Any]]]:
        """Run the render step; yield the frames it emits, batched, ending with END."""
        from orate.runtime.render import render

        # bounded: when the replica stops taking objects (a slow client), the generator
        # blocks in ``yield`` under Ray's back-pressure, this queue fills, and the render
        # thread blocks in ``emit`` (memory stays bounded on the actor's side too)
        frames: queue.Queue[tuple[EventKind, Any]] = queue.Queue(maxsize=32)

        def run() -> None:
            cancelled = False
            try:
                stats = render(
                    job,
                    self._registry.engine,
                    lambda kind, payload: frames.put((kind, payload)),
                    lambda: self._stop == job_id,
                )
                cancelled = stats.cancelled
            except Exception as exc:  # report it; the actor keeps serving
                frames.put(
                    (
                        EventKind.ERROR,
                        {
                            "message": f"{type(exc).__name__}: {exc}",
                            "code": getattr(exc, "code", None),
                        },
                    )
                )
            frames.put((EventKind.END, {"cancelled": cancelled}))

        threading.Thread(target=run, name=f"render-{job_id}", daemon=True).start()
        while True:
            batch = [frames.get()]
            with contextlib.suppress(queue.Empty):
                while True:
                    batch.append(frames.get_nowait())
            yield batch
            if batch[-1][0] is EventKind.END:
                return


class RayJobStream(PacedStream):
    """The frames of one job on one actor, in order (the pool's ``JobStream``).

    Bounded like the pool's: past ``limit`` bytes of audio waiting for the consumer,
    the pump stops taking objects from the actor's stream, and Ray's generator
    back-pressure (a few objects in flight) then blocks the actor's render, so a slow
    client slows only its own synthesis.
    """

    def __init__(
        self,
        job_id: int,
        slot: _Slot,
        limit: int = 256 * 1024,
        spool: SpoolBudget | None = None,
        owner: str | None = None,
    ) -> None:
        super().__init__(job_id, limit, spool, owner)
        self._slot = slot
        self.room = asyncio.Event()  # the pump takes the actor's next objects while set
        self.room.set()

    def _hold(self) -> None:
        self.room.clear()

    def _release(self) -> None:
        self.room.set()

    def _stop(self) -> None:
        if self._slot.current is self and self._slot.alive:
            self._slot.actor.cancel.remote(self.id)


@dataclass(eq=False)
class _Slot:
    index: int
    actor: Any
    pid: int = 0
    node: str = ""
    alive: bool = True
    current: RayJobStream | None = None
    pump: asyncio.Task[None] | None = field(default=None, repr=False)


class RayBackend:
    """``size`` engine actors on a Ray cluster; ``submit`` runs a job on a free one."""

    def __init__(
        self,
        size: int,
        address: str = "auto",
        models_dir: Path | None = None,
        idle: float = 300.0,
        *,
        max_queue: int = 64,
        queue_timeout: float = 30.0,
        num_cpus: float = 1.0,
        num_gpus: float = 0.0,
        buffer_bytes: int = 256 * 1024,
        neural_actors: int = 0,
        neural_num_cpus: float = 1.0,
        neural_num_gpus: float = 0.0,
        spool: SpoolBudget | None = None,
    ) -> None:
        self.spool = spool
        # slots 0..size-1 serve every engine; slots past them (neural_actors) only the
        # neural engines, with resources of their own (GPUs: Ray places them on GPU nodes)
        self.general = size
        self.neural_actors = neural_actors
        self.neural_num_cpus = neural_num_cpus
        self.neural_num_gpus = neural_num_gpus
        self.size = size + neural_actors
        self.buffer_bytes = buffer_bytes
        self.address = address
        self.max_queue = max_queue
        self.queue_timeout = queue_timeout
        self.num_cpus = num_cpus
        self.num_gpus = num_gpus
        self._models_dir = str(models_dir) if models_dir else None
        self._model_idle = idle
        self._ids = itertools.count(1)
        self._idle: dict[str, asyncio.Queue[_Slot]] = {
            GENERAL: asyncio.Queue(),
            NEURAL: asyncio.Queue(),
        }
        self._slots: dict[int, _Slot] = {}
        self._closing = False
        self._actor_class: Any = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self.restarts = 0
        self.waiting = 0
        self.completed = 0
        self.completed_neural = 0  # of them, on the neural actors
        self.cancelled = 0

    # -- lifecycle -----------------------------------------------------------

    async def start(self) -> None:
        ray = ray_module()

        if not ray.is_initialized():
            # ray.init installs its own SIGTERM (and SIGINT) handlers; uvicorn's must stay,
            # or a replica asked to stop would not drain its requests
            saved = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
            ray.init(
                address=self.address,
                namespace=NAMESPACE,
                log_to_driver=False,
                logging_level=logging.WARNING,
                configure_logging=False,
            )
            for sig, handler in saved.items():
                if handler is not None:
                    signal.signal(sig, handler)
        self._actor_class = ray.remote(EngineActor)
        await asyncio.gather(*(self._spawn(i) for i in range(self.size)))

    def _kind(self, index: int) -> str:
        return GENERAL if index < self.general else NEURAL

    def kind_of(self, job: RenderJob) -> str:
        """Which actors a job goes to: neural engines to the neural actors, if any."""
        if self.neural_actors and any(seg.voice.engine != "espeak" for seg in job.segments):
            return NEURAL
        return GENERAL

    async def _spawn(self, index: int) -> None:
        neural = self._kind(index) == NEURAL
        gpus = self.neural_num_gpus if neural else self.num_gpus
        options: dict[str, Any] = {
            "num_cpus": self.neural_num_cpus if neural else self.num_cpus,
            "max_concurrency": 2,
            "max_restarts": 0,
            "scheduling_strategy": "SPREAD",
        }
        if gpus:
            options["num_gpus"] = gpus
        actor = self._actor_class.options(**options).remote(self._models_dir, self._model_idle)
        slot = _Slot(index, actor)
        self._slots[index] = slot
        try:
            info = await asyncio.wait_for(actor.ready.remote(), START_TIMEOUT)
        except Exception as exc:
            self._kill(slot)
            raise RuntimeError(f"engine actor {index} did not start: {exc}") from None
        slot.pid, slot.node = info["pid"], info["node"]
        self._idle[self._kind(index)].put_nowait(slot)

    def _kill(self, slot: _Slot) -> None:
        ray = ray_module()

        slot.alive = False
        with contextlib.suppress(Exception):
            ray.kill(slot.actor, no_restart=True)

    async def close(self) -> None:
        ray = ray_module()

        self._closing = True
        for task in list(self._tasks):
            task.cancel()
        for slot in self._slots.values():
            if slot.pump is not None:
                slot.pump.cancel()
            self._kill(slot)
        with contextlib.suppress(Exception):
            await asyncio.to_thread(ray.shutdown)

    def pids(self) -> list[int]:
        return [s.pid for s in self._slots.values() if s.alive and s.pid]

    def nodes(self) -> list[str]:
        return sorted({s.node for s in self._slots.values() if s.alive and s.node})

    def stats(self) -> dict[str, Any]:
        busy = sum(1 for s in self._slots.values() if s.current is not None)
        neural = sum(
            1 for s in self._slots.values() if s.alive and s.pid and self._kind(s.index) == NEURAL
        )
        return {
            "backend": "ray",
            "workers": len(self.pids()),
            "neural_workers": neural,
            "nodes": len(self.nodes()),
            "busy": busy,
            "waiting": self.waiting,
            "completed": self.completed,
            "completed_neural": self.completed_neural,
            "cancelled": self.cancelled,
            **(self.spool.stats() if self.spool is not None else {}),
            "restarts": self.restarts,
        }

    # -- jobs ----------------------------------------------------------------

    async def submit(self, job: RenderJob, owner: str | None = None) -> RayJobStream:
        """Wait for a free actor (bounded, like the pool) and start ``job`` on it."""
        if self._closing:
            raise PoolClosed("the engine backend is shutting down")
        slot = await take_idle(self, self._idle[self.kind_of(job)])
        job_id = next_job_id(self._ids)
        stream = RayJobStream(job_id, slot, self.buffer_bytes, self.spool, owner)
        slot.current = stream
        gen = slot.actor.render.options(
            num_returns="streaming", _generator_backpressure_num_objects=BACKPRESSURE
        ).remote(job_id, job)
        slot.pump = asyncio.get_running_loop().create_task(self._pump(slot, stream, gen))
        return stream

    async def _pump(self, slot: _Slot, stream: RayJobStream, gen: Any) -> None:
        """Move the actor's frames into the stream; give the actor back after END."""
        RayError = ray_module().exceptions.RayError

        try:
            async for ref in gen:
                await stream.room.wait()  # the consumer is behind: let the actor wait
                for kind, payload in await ref:
                    if kind is EventKind.END:
                        if payload.get("cancelled"):
                            self.cancelled += 1
                        else:
                            self.completed += 1
                            if self._kind(slot.index) == NEURAL:
                                self.completed_neural += 1
                        slot.current = None
                        stream._push(EventKind.END, None)
                        self._idle[self._kind(slot.index)].put_nowait(slot)
                        return
                    stream._push(kind, payload)
            raise RayError("the actor's stream ended without END")
        except asyncio.CancelledError:
            stream._push(EventKind.ERROR, {"message": "the engine backend is shutting down"})
            stream._push(EventKind.END, None)
            raise
        except Exception as exc:  # RayActorError, ActorUnavailableError, node lost…
            log.warning(
                "engine actor %d (pid %s) failed: %s", slot.index, slot.pid, type(exc).__name__
            )
            slot.current = None
            stream._push(EventKind.ERROR, {"message": "the engine actor died while synthesizing"})
            stream._push(EventKind.END, None)
            self._replace(slot)

    def _replace(self, slot: _Slot) -> None:
        self._kill(slot)
        if self._closing:
            return
        self.restarts += 1
        task = asyncio.get_running_loop().create_task(self._respawn(slot.index))
        self._tasks.add(task)
        task.add_done_callback(self._replaced)

    async def _respawn(self, index: int, tries: int = 5) -> None:
        """Start a replacement; the first may land on the node that is dying (the cluster
        has not noticed yet), so try again a few times, a little later each time."""
        for attempt in range(tries):
            try:
                await self._spawn(index)
                return
            except RuntimeError:
                if attempt == tries - 1 or self._closing:
                    raise
                await asyncio.sleep(1.0 + 2 * attempt)

    def _replaced(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("could not replace an engine actor: %s", task.exception())
