"""The composition root: settings in, every long-lived part of the server out.

``build_services(settings)`` builds, once, what the app and every CLI command share:
the engine registry (one instance, no module globals), the catalog over it, the
runtime (the engine worker pool), metrics, and on ``start()`` the library, the
pipeline, the job runner and the speech service routes call. Nothing else constructs
these, so a test, the server and ``orate say`` wire the same graph.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from orate.api.metrics import Metrics
from orate.config import Settings
from orate.engines.catalog import Catalog
from orate.engines.registry import EngineRegistry
from orate.library.library import Library
from orate.runtime.pool import EnginePool
from orate.speech.job_runner import JobRunner
from orate.speech.pipeline import Pipeline
from orate.speech.service import SpeechService


@dataclass
class Services:
    """Everything a server process holds; the parts that need an event loop are made
    by ``start()`` and released by ``close()``."""

    settings: Settings
    registry: EngineRegistry
    catalog: Catalog
    metrics: Metrics
    pool: EnginePool | None = None
    library: Library | None = None
    jobs: JobRunner | None = None
    pipeline: Pipeline | None = None
    speech: SpeechService | None = field(default=None)

    async def start(self, *, pool: bool = True, jobs: bool = True,
                    background: bool = True) -> SpeechService:
        """Open the library, start the worker pool (the CLI's ``say`` renders in-process
        and passes ``pool=False``) and the job runner; returns the speech service."""
        s = self.settings
        self.registry.engine("espeak")  # voice tables for validation; synthesis in workers
        if pool:
            self.pool = EnginePool(s.workers, s.resolved_models_dir(), s.model_idle_seconds,
                                   max_queue=s.max_queue, queue_timeout=s.queue_timeout,
                                   buffer_bytes=s.stream_buffer_bytes)
            await self.pool.start()
        try:
            self.library = await Library.open(s, background=background)
        except BaseException:
            if self.pool is not None:
                await self.pool.close()
            raise
        self.pipeline = Pipeline(s, self.catalog, self.pool, self.library, self.metrics)
        if jobs:
            self.jobs = JobRunner(s, self.pipeline, self.library)
        self.speech = SpeechService(self.pipeline, self.library, self.jobs)
        if self.pool is not None:
            pool_ = self.pool
            runner = self.jobs
            self.metrics.gauges(queue=lambda: pool_.waiting, restarts=lambda: pool_.restarts,
                                workers=lambda: len(pool_.pids()),
                                jobs=lambda: len(runner.running) if runner else 0)
        if self.jobs is not None:
            self.jobs.start()
        return self.speech

    async def close(self) -> None:
        """Release in the reverse order of ``start``."""
        if self.jobs is not None:
            await self.jobs.close()
        if self.pipeline is not None:
            await self.pipeline.close()
        if self.library is not None:
            await self.library.close()
        if self.pool is not None:
            await self.pool.close()


def build_services(settings: Settings | None = None) -> Services:
    """One registry over the model store, the catalog over it, and fresh metrics."""
    settings = settings or Settings()
    registry = EngineRegistry(settings.resolved_models_dir(), settings.model_idle_seconds)
    catalog = Catalog.from_settings(settings, registry)
    return Services(settings=settings, registry=registry, catalog=catalog,
                    metrics=Metrics())
