"""The composition root: settings in, every long-lived part of the server out.

``build_services(settings)`` builds, once, what the app and every CLI command share:
the engine registry (one instance, no module globals), the catalog over it, the
runtime (the engine worker pool), metrics, and on ``start()`` the library, the
speech service routes call (which composes planning, delivery and recording) and the
job runner. Nothing else constructs
these, so a test, the server and ``orate say`` wire the same graph.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import Gauge

from orate.catalog.models import Catalog
from orate.config import Settings
from orate.engines.registry import EngineRegistry
from orate.library.library import Library
from orate.runtime.backend import EngineBackend
from orate.runtime.pool import EnginePool
from orate.runtime.spool import SpoolBudget
from orate.speech.job_runner import JobRunner
from orate.speech.metrics import Metrics
from orate.speech.service import SpeechService


def make_spool(settings: Settings) -> SpoolBudget | None:
    """The disk budget for audio clients have not read yet (None: spool off)."""
    if settings.spool_bytes <= 0:
        return None
    directory = settings.resolved_spool_dir()
    directory.mkdir(parents=True, exist_ok=True)
    return SpoolBudget(
        settings.spool_bytes,
        settings.max_response_bytes,
        str(directory),
        owner_bytes=settings.spool_bytes_per_key,
    )


def make_backend(settings: Settings) -> EngineBackend:
    """The engine runtime the settings ask for: the local process pool or Ray actors
    (both speak the same protocol; the pipeline cannot tell them apart)."""
    if settings.engine_backend == "ray":
        from orate.runtime.ray_backend import RayBackend

        return RayBackend(
            settings.ray_actors or settings.workers,
            settings.ray_address,
            settings.resolved_models_dir(),
            settings.model_idle_seconds,
            max_queue=settings.max_queue,
            queue_timeout=settings.queue_timeout,
            num_cpus=settings.ray_num_cpus,
            num_gpus=settings.ray_num_gpus,
            buffer_bytes=settings.stream_buffer_bytes,
            spool=make_spool(settings),
            neural_actors=settings.ray_neural_actors,
            neural_num_cpus=settings.ray_neural_num_cpus,
            neural_num_gpus=settings.ray_neural_num_gpus,
        )
    return EnginePool(
        settings.workers,
        settings.resolved_models_dir(),
        settings.model_idle_seconds,
        max_queue=settings.max_queue,
        queue_timeout=settings.queue_timeout,
        buffer_bytes=settings.stream_buffer_bytes,
        spool=make_spool(settings),
        streams=settings.worker_streams,
    )


@dataclass
class Services:
    """Everything a server process holds; the parts that need an event loop are made
    by ``start()`` and released by ``close()``."""

    settings: Settings
    registry: EngineRegistry
    catalog: Catalog
    metrics: Metrics
    pool: EngineBackend | None = None
    library: Library | None = None
    jobs: JobRunner | None = None
    speech: SpeechService | None = field(default=None)

    async def start(
        self, *, pool: bool = True, jobs: bool = True, background: bool = True
    ) -> SpeechService:
        """Open the library, start the worker pool (the CLI's ``say`` renders in-process
        and passes ``pool=False``) and the job runner; returns the speech service."""
        s = self.settings
        self.registry.engine("espeak")  # voice tables for validation; synthesis in workers
        if pool:
            self.pool = make_backend(s)
            await self.pool.start()
            # per replica, so a dashboard can tell a replica short of actors from a busy one
            Gauge(
                "orate_engines_wanted",
                "Engine workers or Ray actors this replica runs when healthy",
                ["backend"],
                registry=self.metrics.registry,
            ).labels(s.engine_backend).set(self.pool.size)
        try:
            self.library = await Library.open(s, background=background)
        except BaseException:
            if self.pool is not None:
                await self.pool.close()
            raise
        self.speech = SpeechService(s, self.catalog, self.pool, self.library, self.metrics)
        if jobs:
            self.jobs = self.speech.jobs = JobRunner(s, self.speech, self.library)
        if self.pool is not None:
            pool_ = self.pool
            runner = self.jobs
            self.metrics.gauges(
                queue=lambda: pool_.waiting,
                restarts=lambda: pool_.restarts,
                workers=lambda: len(pool_.pids()),
                jobs=lambda: len(runner.running) if runner else 0,
            )
        if self.jobs is not None:
            self.jobs.start()
        return self.speech

    async def close(self) -> None:
        """Release in the reverse order of ``start``."""
        if self.jobs is not None:
            await self.jobs.close()
        if self.speech is not None:
            await self.speech.close()
        if self.library is not None:
            await self.library.close()
        if self.pool is not None:
            await self.pool.close()


def build_services(settings: Settings | None = None) -> Services:
    """One registry over the model store, the catalog over it, and fresh metrics."""
    settings = settings or Settings()
    registry = EngineRegistry(settings.resolved_models_dir(), settings.model_idle_seconds)
    catalog = Catalog.from_settings(settings, registry)
    return Services(settings=settings, registry=registry, catalog=catalog, metrics=Metrics())
