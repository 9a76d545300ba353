"""``create_app(services)``: mounts the dialects over the composition root's services."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, WebSocket
from fastapi.responses import JSONResponse, Response
from fastapi_offline import FastAPIOffline
from sqlalchemy import text
from starlette.types import ASGIApp, Receive, Scope, Send

from orate import __version__
from orate.api import elevenlabs, hume, inferenceclub, nanogpt, openai
from orate.api import orate as own
from orate.api.guard import Guard
from orate.api.http import errors
from orate.api.http.connections import ReadDeadline
from orate.api.http.dialect import Dialect, Dialects
from orate.api.http.errors import ApiError, documented
from orate.api.http.headers import SecurityHeaders
from orate.api.http.jsonbody import JsonBodies
from orate.api.http.owners import is_admin
from orate.api.http.request_ids import RequestIds
from orate.runtime.worker import malloc_free_bytes, malloc_trim, tune_malloc
from orate.services import Services, build_services
from orate.speech.limits import KeyLimits

log = logging.getLogger("orate")
DOCS_ASSETS = "/docs-assets"

# Every dialect the app speaks, each described by its package (routers, prefix, error
# envelope, first-message keys, open paths, middlewares, static files): a new dialect
# is a package in api/ and a line here. Wyoming, a dialect over TCP, starts in the
# lifespan below.
DIALECTS: tuple[Dialect, ...] = (
    openai.DIALECT,
    own.DIALECT,
    hume.DIALECT,
    nanogpt.DIALECT,
    elevenlabs.DIALECT,
    inferenceclub.DIALECT,
)
# the app's own paths that need no key: probes, and the API's documentation (a browser
# cannot send a key to /docs, and the schema describes routes, not anybody's data)
OPEN_PATHS = frozenset(
    {"/healthz", "/readyz", "/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"}
)
OPS_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})  # not counted as requests


class CollapseSlashes:
    """``//v0/tts`` → ``/v0/tts``: SDKs build URLs from a base URL that may end in ``/``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket") and "//" in scope.get("path", ""):
            path = re.sub(r"/{2,}", "/", scope["path"])
            scope = {**scope, "path": path, "raw_path": path.encode()}
        await self.app(scope, receive, send)


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


def create_app(services: Services | None = None) -> FastAPI:
    """The HTTP app over ``services`` (the composition root's; built from the default
    settings when none is given). Each dialect's router and error envelope is
    registered here, in one visible list."""
    services = services or build_services()
    settings = services.settings
    metrics = services.metrics

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        tune_malloc()
        speech = await services.start()
        assert services.library is not None
        limits.shared = services.library.limits  # several replicas: limits are service-wide
        wyoming = None
        trimmer = asyncio.get_running_loop().create_task(_trim_memory())
        try:
            if settings.wyoming_uri:  # same loop, pipeline, pool and limits as HTTP
                from orate.wyoming import WyomingService

                wyoming = WyomingService(settings, speech, metrics, limits)
                await wyoming.start()  # a port in use fails the start, pool closed below
            log.info("orate %s ready: %d engine workers", __version__, settings.workers)
            yield
        finally:
            if wyoming is not None:
                await wyoming.stop()
            trimmer.cancel()
            await services.close()

    # /docs and /redoc load Swagger UI and ReDoc from files in the fastapi-offline wheel
    # (served under DOCS_ASSETS), not from a CDN: an air-gapped server keeps its docs.
    app = FastAPIOffline(
        title="orate",
        version=__version__,
        lifespan=lifespan,
        redirect_slashes=False,
        static_url=DOCS_ASSETS,
        responses=documented(401, 413, 429, 503, 507),
        description="Self-hosted text-to-speech speaking the OpenAI, Hume, "
        "nano-gpt and ElevenLabs wire dialects.",
    )
    app.state.settings = settings
    app.state.services = services
    app.state.metrics = metrics
    dialects = Dialects(
        DIALECTS,
        default=own.DIALECT.name,
        ops=OPS_PATHS,
        open_paths=OPEN_PATHS,
        open_prefixes=(DOCS_ASSETS + "/",),
    )
    envelopes = dialects.envelopes  # each dialect's, by the prefix it owns (OpenAI's elsewhere)
    errors.install(app, envelopes)
    limits = KeyLimits()  # one per process: HTTP and Wyoming count against the same keys
    app.add_middleware(
        Guard,
        max_body=settings.max_body_bytes,
        metrics=metrics,
        keys=lambda: services.library.keys if services.library is not None else None,
        limits=limits,
        auth=settings.auth,
        envelopes=envelopes,
        dialects=dialects,
    )
    app.add_middleware(JsonBodies)
    for dialect in dialects:  # before the guard: its errors follow the path they make
        for middleware in dialect.middlewares:
            app.add_middleware(middleware)
    app.add_middleware(CollapseSlashes)
    app.add_middleware(
        ReadDeadline, timeout=settings.read_timeout, envelopes=envelopes
    )  # bodies too
    app.add_middleware(SecurityHeaders)  # CSP, nosniff, no framing, no referrer
    # outermost: every response, errors included
    app.add_middleware(RequestIds, plain=dialects.plain_request_id)
    for dialect in dialects:
        for router in dialect.routers:
            app.include_router(router)
        for path, files, name in dialect.mounts:
            app.mount(path, files(), name=name)

    @app.get("/healthz", tags=["ops"], summary="Liveness, with engine pool counters")
    async def healthz() -> JSONResponse:
        pool = services.pool
        return JSONResponse(
            {
                "status": "ok",
                "version": __version__,
                "engines": pool.stats() if pool is not None else {},
            }
        )

    @app.get(
        "/readyz",
        tags=["ops"],
        summary="Readiness: engines up, database and store reachable",
        responses=documented(503),
    )
    async def readyz() -> JSONResponse:
        """What a load balancer needs to drain a sick replica: it fails when no engine is
        alive or the database or the blob store does not answer; it reports the backend,
        the engines (Ray actors) alive and the queue in front of them."""
        pool, lib = services.pool, services.library
        if pool is None or lib is None:
            raise ApiError(503, "starting", "the server is still starting")
        alive = len(pool.pids())
        # Ray replaces a lost actor in the background: one alive is enough to serve
        enough = alive > 0 if settings.engine_backend == "ray" else alive == pool.size
        checks: dict[str, bool] = {"engines": enough, "database": False, "storage": False}
        reasons: dict[str, str] = {}
        try:
            # a real table, not SELECT 1: a corrupted file still answers SELECT 1
            async with asyncio.timeout(3), lib.engine.connect() as conn:
                await conn.execute(text("SELECT version_num FROM alembic_version"))
                await conn.execute(text("SELECT count(*) FROM api_keys"))
                await conn.rollback()
                # and writable: a database another process holds locked still reads (on
                # SQLite, a short busy wait: the probe answers, it does not queue)
                sqlite = lib.engine.dialect.name == "sqlite"
                if sqlite:
                    await conn.execute(text("PRAGMA busy_timeout=500"))
                try:
                    await conn.execute(text("UPDATE alembic_version SET version_num = version_num"))
                finally:
                    await conn.rollback()
                    if sqlite:
                        await conn.execute(text("PRAGMA busy_timeout=5000"))
            checks["database"] = True
        except Exception as exc:  # report, don't raise: this is what the probe is for
            why = (str(exc) or type(exc).__name__).splitlines()
            reasons["database"] = (why[0] if why else type(exc).__name__)[:200]
            if isinstance(exc, TimeoutError):
                reasons["database"] = "the database did not answer a write within 3 s"
            log.warning("readiness: database unusable: %s", reasons["database"])
        try:
            async with asyncio.timeout(3):
                problem = await lib.blobs.probe() or lib.blobs.readiness()
        except TimeoutError:
            problem = "the blob store did not answer within 3 s"
        checks["storage"] = problem is None
        if problem is not None:
            reasons["storage"] = problem
        ready = all(checks.values())
        body: dict[str, object] = {
            "ready": ready,
            **checks,
            "backend": settings.engine_backend,
            "engines_alive": alive,
            "engines_wanted": pool.size,
            "queue": pool.waiting,
            "replica": lib.holder,
        }
        if reasons:
            body["reasons"] = reasons
        return JSONResponse(body, status_code=200 if ready else 503)

    @app.get(
        "/metrics",
        tags=["ops"],
        summary="Prometheus metrics (admin keys only)",
        responses={
            200: {
                "description": "Prometheus text format",
                "content": {"text/plain": {"schema": {"type": "string"}}},
            },
            **documented(404),
        },
    )
    async def metrics_route(request: Request) -> Response:
        if not is_admin(request):
            raise ApiError(404, "not_found", "no route GET /metrics")
        return Response(metrics.render(), media_type="text/plain; version=0.0.4")

    @app.api_route(
        "/metrics",
        methods=["HEAD", "OPTIONS", "POST", "PUT", "PATCH", "DELETE"],
        include_in_schema=False,
    )
    async def metrics_other(request: Request) -> Response:
        # hidden from non-admins for every method alike (a 405 would reveal the route)
        if not is_admin(request):
            raise ApiError(404, "not_found", f"no route {request.method} /metrics")
        raise ApiError(
            405,
            "method_not_allowed",
            f"{request.method} /metrics is not supported; use GET",
            headers={"Allow": "GET"},
        )

    _unknown_websockets(app, dialects)  # last: it matches every WebSocket path the others did not
    return app


def _unknown_websockets(app: FastAPI, dialects: Dialects) -> None:
    """A WebSocket to a path orate does not serve is accepted and closed with 1008 and a
    reason naming the WebSocket routes, instead of the bare 403 a client cannot explain."""
    known = dialects.websocket_paths()

    @app.websocket("/{path:path}")
    async def unknown_websocket(ws: WebSocket, path: str) -> None:
        await ws.accept()
        shown = dialects.shown("/" + path)
        reason = f"no WebSocket route {shown}; routes: {', '.join(known)}"
        if len(reason.encode()) > 123:  # a close reason holds at most 123 bytes
            reason = f"no WebSocket route {shown[:60]}"[:120]
        await ws.close(1008, reason)
