"""``create_app(settings)``: wires the dialects, the pipeline and the engine pool."""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy import text
from starlette.types import ASGIApp, Receive, Scope, Send

from orate import __version__
from orate.api import dialogue as dialogue_routes
from orate.api import errors, files, hume, hume_ws, library, nanogpt, openai
from orate.api import lexicons as lexicon_routes
from orate.api.errors import ApiError, documented
from orate.api.guard import Guard
from orate.api.metrics import Metrics
from orate.api.owners import is_admin
from orate.config import Settings
from orate.engines.catalog import Catalog
from orate.engines.pool import EnginePool
from orate.engines.registry import engine_by_name
from orate.engines.worker import tune_malloc
from orate.library.library import Library
from orate.speech.jobs import JobRunner
from orate.speech.pipeline import Pipeline

log = logging.getLogger("orate")


class CollapseSlashes:
    """``//v0/tts`` → ``/v0/tts``: SDKs build URLs from a base URL that may end in ``/``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket") and "//" in scope.get("path", ""):
            path = re.sub(r"/{2,}", "/", scope["path"])
            scope = {**scope, "path": path, "raw_path": path.encode()}
        await self.app(scope, receive, send)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        tune_malloc()
        engine_by_name("espeak")  # voice tables for validation; synthesis stays in workers
        catalog = Catalog.from_settings(settings)
        pool = EnginePool(settings.workers, settings.resolved_models_dir(),
                          settings.model_idle_seconds, max_queue=settings.max_queue,
                          queue_timeout=settings.queue_timeout)
        await pool.start()
        library = await Library.open(settings)
        app.state.pool = pool
        app.state.library = library
        pipeline = Pipeline(settings, catalog, pool, library)
        pipeline.metrics = metrics
        app.state.pipeline = pipeline
        jobs = JobRunner(settings, pipeline, library)
        app.state.jobs = jobs
        metrics.gauges(queue=lambda: pool.waiting, restarts=lambda: pool.restarts,
                       workers=lambda: len(pool.pids()), jobs=lambda: len(jobs.running))
        jobs.start()
        log.info("orate %s ready: %d engine workers", __version__, settings.workers)
        try:
            yield
        finally:
            await jobs.close()
            await pipeline.close()
            await library.close()
            await pool.close()

    app = FastAPI(title="orate", version=__version__, lifespan=lifespan, redirect_slashes=False,
                  responses=documented(401, 413, 429, 503),
                  description="Self-hosted text-to-speech speaking the OpenAI, Hume and nano-gpt "
                  "wire dialects.")
    app.state.settings = settings
    metrics = Metrics()
    app.state.metrics = metrics
    errors.install(app)
    app.add_middleware(Guard, max_body=settings.max_body_bytes, metrics=metrics,
                       keys=lambda: getattr(getattr(app.state, "library", None), "keys", None))
    app.add_middleware(CollapseSlashes)
    app.include_router(openai.router)
    app.include_router(files.router)
    app.include_router(library.router)
    app.include_router(hume.router)
    app.include_router(hume_ws.router)
    app.include_router(nanogpt.router)
    app.include_router(lexicon_routes.router)
    app.include_router(dialogue_routes.router)

    @app.get("/healthz", tags=["ops"], summary="Liveness, with engine pool counters")
    async def healthz() -> JSONResponse:
        pool: EnginePool = app.state.pool
        return JSONResponse({"status": "ok", "version": __version__, "engines": pool.stats()})

    @app.get("/readyz", tags=["ops"], summary="Readiness: engines up and database reachable",
             responses=documented(503))
    async def readyz() -> JSONResponse:
        pool: EnginePool = app.state.pool
        checks = {"engines": len(pool.pids()) == pool.size, "database": False}
        try:
            async with app.state.library.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
            checks["database"] = True
        except Exception as exc:  # report, don't raise: this is what the probe is for
            log.warning("readiness: database unreachable: %s", exc)
        ready = all(checks.values())
        return JSONResponse({"ready": ready, **checks}, status_code=200 if ready else 503)

    @app.get("/metrics", tags=["ops"], summary="Prometheus metrics (admin keys only)",
             responses={200: {"description": "Prometheus text format",
                              "content": {"text/plain": {"schema": {"type": "string"}}}},
                        **documented(404)})
    async def metrics_route(request: Request) -> Response:
        if not is_admin(request):
            raise ApiError(404, "not_found", "no route GET /metrics")
        return Response(metrics.render(), media_type="text/plain; version=0.0.4")

    return app
