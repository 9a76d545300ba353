"""``create_app(settings)``: wires the dialects, the pipeline and the engine pool."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from fastapi_offline import FastAPIOffline
from prometheus_client import Gauge
from sqlalchemy import text
from starlette.types import ASGIApp, Receive, Scope, Send

from orate import __version__
from orate.api import (
    dialogue as dialogue_routes,
)
from orate.api import (
    elevenlabs,
    elevenlabs_ws,
    errors,
    files,
    hume,
    hume_ws,
    keys,
    library,
    nanogpt,
    openai,
    web,
)
from orate.api import (
    lexicons as lexicon_routes,
)
from orate.api.connections import ReadDeadline
from orate.api.errors import ApiError, documented
from orate.api.guard import Guard, KeyLimits
from orate.api.jsonbody import JsonBodies
from orate.api.metrics import Metrics
from orate.api.owners import is_admin
from orate.config import Settings
from orate.engines.catalog import Catalog
from orate.engines.pool import EnginePool
from orate.engines.registry import engine_by_name
from orate.engines.worker import malloc_free_bytes, malloc_trim, tune_malloc
from orate.library.library import Library
from orate.speech.jobs import JobRunner
from orate.speech.pipeline import Pipeline

log = logging.getLogger("orate")
DOCS_ASSETS = "/docs-assets"


class CollapseSlashes:
    """``//v0/tts`` → ``/v0/tts``: SDKs build URLs from a base URL that may end in ``/``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket") and "//" in scope.get("path", ""):
            path = re.sub(r"/{2,}", "/", scope["path"])
            scope = {**scope, "path": path, "raw_path": path.encode()}
        await self.app(scope, receive, send)


def make_backend(settings: Settings) -> EnginePool:
    """The engine runtime the settings ask for: the local process pool or Ray actors
    (both speak the same protocol; the pipeline cannot tell them apart)."""
    if settings.engine_backend == "ray":
        from orate.runtime.ray_backend import RayBackend

        return RayBackend(settings.ray_actors or settings.workers,  # type: ignore[return-value]
                          settings.ray_address, settings.resolved_models_dir(),
                          settings.model_idle_seconds, max_queue=settings.max_queue,
                          queue_timeout=settings.queue_timeout,
                          num_cpus=settings.ray_num_cpus, num_gpus=settings.ray_num_gpus,
                          buffer_bytes=settings.stream_buffer_bytes,
                          neural_actors=settings.ray_neural_actors,
                          neural_num_cpus=settings.ray_neural_num_cpus,
                          neural_num_gpus=settings.ray_neural_num_gpus)
    return EnginePool(settings.workers, settings.resolved_models_dir(),
                      settings.model_idle_seconds, max_queue=settings.max_queue,
                      queue_timeout=settings.queue_timeout,
                      buffer_bytes=settings.stream_buffer_bytes)


TRIM_EVERY = 2.0  # seconds between looks at how much memory malloc holds free
TRIM_ABOVE = 32 << 20  # give it back to the kernel past this many free bytes


async def _trim_memory() -> None:
    """Return freed memory to the kernel once responses have let go of it, so the RSS
    of a server that served large or stalled responses comes back down."""
    while True:
        await asyncio.sleep(TRIM_EVERY)
        try:
            if await asyncio.to_thread(malloc_free_bytes) > TRIM_ABOVE:
                await asyncio.to_thread(malloc_trim)
        except Exception as exc:  # never let housekeeping take the server down
            log.warning("malloc_trim failed: %s", exc)
            return


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        tune_malloc()
        engine_by_name("espeak")  # voice tables for validation; synthesis stays in workers
        catalog = Catalog.from_settings(settings)
        pool = make_backend(settings)
        await pool.start()
        library = await Library.open(settings)
        limits.shared = library.limits  # several replicas: a key's limits are service-wide
        app.state.pool = pool
        app.state.library = library
        pipeline = Pipeline(settings, catalog, pool, library)
        pipeline.metrics = metrics
        app.state.pipeline = pipeline
        jobs = JobRunner(settings, pipeline, library)
        app.state.jobs = jobs
        metrics.gauges(queue=lambda: pool.waiting, restarts=lambda: pool.restarts,
                       workers=lambda: len(pool.pids()), jobs=lambda: len(jobs.running))
        # per replica, so a dashboard can tell a replica short of actors from one that is busy
        Gauge("orate_engines_wanted", "Engine workers or Ray actors this replica runs when "
              "healthy", ["backend"], registry=metrics.registry
              ).labels(settings.engine_backend).set(pool.size)
        jobs.start()
        wyoming = None
        trimmer = asyncio.get_running_loop().create_task(_trim_memory())
        try:
            if settings.wyoming_uri:  # same loop, pipeline, pool and limits as HTTP
                from orate.wyoming import WyomingService

                wyoming = WyomingService(settings, pipeline, metrics, limits)
                await wyoming.start()  # a port in use fails the start, pool closed below
            log.info("orate %s ready: %d engine workers", __version__, settings.workers)
            yield
        finally:
            if wyoming is not None:
                await wyoming.stop()
            trimmer.cancel()
            await jobs.close()
            await pipeline.close()
            await library.close()
            await pool.close()

    # /docs and /redoc load Swagger UI and ReDoc from files in the fastapi-offline wheel
    # (served under DOCS_ASSETS), not from a CDN: an air-gapped server keeps its docs.
    app = FastAPIOffline(title="orate", version=__version__, lifespan=lifespan,
                         redirect_slashes=False, static_url=DOCS_ASSETS,
                         responses=documented(401, 413, 429, 503, 507),
                         description="Self-hosted text-to-speech speaking the OpenAI, Hume, "
                         "nano-gpt and ElevenLabs wire dialects.")
    app.state.settings = settings
    metrics = Metrics()
    app.state.metrics = metrics
    errors.install(app)
    limits = KeyLimits()  # one per process: HTTP and Wyoming count against the same keys
    app.add_middleware(Guard, max_body=settings.max_body_bytes, metrics=metrics,
                       keys=lambda: getattr(getattr(app.state, "library", None), "keys", None),
                       limits=limits, auth=settings.auth)
    app.add_middleware(JsonBodies)
    app.add_middleware(elevenlabs.ElevenLabsDispatch)  # before the guard: its errors follow
    app.add_middleware(CollapseSlashes)
    app.add_middleware(ReadDeadline, timeout=settings.read_timeout)  # outermost: bodies too
    app.include_router(openai.router)
    app.include_router(files.router)
    app.include_router(library.router)
    app.include_router(hume.router)
    app.include_router(hume_ws.router)
    app.include_router(nanogpt.router)
    app.include_router(keys.router)
    app.include_router(web.router)
    app.mount(web.ASSET_PREFIX.rstrip("/"), web.assets(), name="playground")
    app.include_router(elevenlabs.router)
    app.include_router(elevenlabs_ws.router)
    app.include_router(lexicon_routes.router)
    app.include_router(dialogue_routes.router)

    @app.get("/healthz", tags=["ops"], summary="Liveness, with engine pool counters")
    async def healthz() -> JSONResponse:
        pool: EnginePool = app.state.pool
        return JSONResponse({"status": "ok", "version": __version__, "engines": pool.stats()})

    @app.get("/readyz", tags=["ops"], summary="Readiness: engines up, database and store "
             "reachable", responses=documented(503))
    async def readyz() -> JSONResponse:
        """What a load balancer needs to drain a sick replica: it fails when no engine is
        alive or the database or the blob store does not answer; it reports the backend,
        the engines (Ray actors) alive and the queue in front of them."""
        pool: EnginePool = app.state.pool
        library: Library = app.state.library
        alive = len(pool.pids())
        # Ray replaces a lost actor in the background: one alive is enough to serve
        enough = alive > 0 if settings.engine_backend == "ray" else alive == pool.size
        checks: dict[str, bool] = {"engines": enough,
                                   "database": False, "storage": False}
        reasons: dict[str, str] = {}
        try:
            # a real table, not SELECT 1: a corrupted file still answers SELECT 1
            async with asyncio.timeout(3), library.engine.connect() as conn:
                await conn.execute(text("SELECT version_num FROM alembic_version"))
                await conn.execute(text("SELECT count(*) FROM api_keys"))
            checks["database"] = True
        except Exception as exc:  # report, don't raise: this is what the probe is for
            reasons["database"] = str(exc).splitlines()[0][:200]
            log.warning("readiness: database unusable: %s", reasons["database"])
        try:
            async with asyncio.timeout(3):
                problem = await library.blobs.probe()
        except TimeoutError:
            problem = "the blob store did not answer within 3 s"
        checks["storage"] = problem is None
        if problem is not None:
            reasons["storage"] = problem
        ready = all(checks.values())
        body: dict[str, object] = {"ready": ready, **checks,
                                   "backend": settings.engine_backend, "engines_alive": alive,
                                   "engines_wanted": pool.size, "queue": pool.waiting,
                                   "replica": library.holder}
        if reasons:
            body["reasons"] = reasons
        return JSONResponse(body, status_code=200 if ready else 503)

    @app.get("/metrics", tags=["ops"], summary="Prometheus metrics (admin keys only)",
             responses={200: {"description": "Prometheus text format",
                              "content": {"text/plain": {"schema": {"type": "string"}}}},
                        **documented(404)})
    async def metrics_route(request: Request) -> Response:
        if not is_admin(request):
            raise ApiError(404, "not_found", "no route GET /metrics")
        return Response(metrics.render(), media_type="text/plain; version=0.0.4")

    @app.api_route("/metrics", methods=["HEAD", "OPTIONS", "POST", "PUT", "PATCH",
                                                "DELETE"],
                   include_in_schema=False)
    async def metrics_other(request: Request) -> Response:
        # hidden from non-admins for every method alike (a 405 would reveal the route)
        if not is_admin(request):
            raise ApiError(404, "not_found", f"no route {request.method} /metrics")
        raise ApiError(405, "method_not_allowed", f"{request.method} /metrics is not "
                       "supported; use GET", headers={"Allow": "GET"})

    return app
