"""Delivery: a plan in, its events out, from wherever they come cheapest.

In order: a cached response (replayed exactly as first sent), a synthesis of the same
plan already in flight (joined: single flight), else a new synthesis, in the runtime's
engine pool or at an upstream provider. A finished synthesis is written to the cache,
and its flight stays joinable until that write is done, so no identical request in
between synthesizes again. Recording (history, usage, metrics) is not done here: the
speech service wraps what this returns.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from orate.catalog.models import Catalog
from orate.config import Settings
from orate.engines.base import VoiceUnavailable
from orate.runtime.backend import EngineBackend
from orate.runtime.events import EventKind
from orate.runtime.render import OutputTooLarge, RenderStats, render
from orate.speech.events import (
    duration_of,
    iterate,
    recordable,
    replay,
    speech_event,
    visible,
)
from orate.speech.flight import Flight
from orate.speech.types import EventStream, Plan, SpeechError, SpeechEvent, SynthesisFailed
from orate.speech.upstream import upstream_events

if TYPE_CHECKING:
    import httpx

    from orate.library.library import Library


@dataclass
class Delivered:
    """Where a plan's events come from (``hit``, ``shared``, ``miss``, ``off``) and them."""

    cache: str
    events: EventStream


class Delivery:
    """Cache, single flight and the engine backend; one per speech service."""

    def __init__(
        self,
        settings: Settings,
        catalog: Catalog,
        pool: EngineBackend | None,
        library: Library | None,
    ) -> None:
        self.settings = settings
        self.catalog = catalog
        self.pool = pool
        self.library = library
        self._flights: dict[str, Flight] = {}
        self._storing: dict[str, asyncio.Task[object]] = {}  # cache writes in progress
        self._client: httpx.AsyncClient | None = None

    def _http(self) -> httpx.AsyncClient:
        """One client for all upstream calls: keeps connections to providers warm."""
        if self._client is None:
            import httpx  # only when an upstream provider is first called

            self._client = httpx.AsyncClient(limits=httpx.Limits(max_connections=64))
        return self._client

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()

    def cache_write(self, key: str | None) -> asyncio.Task[object] | None:
        """The cache write of ``key`` still in progress, if any (replicas wait for it)."""
        return self._storing.get(key) if key is not None else None

    async def deliver(self, plan: Plan) -> Delivered:
        """Serve a plan from the cache, from a synthesis in flight, or by synthesizing."""
        key = plan.cache_key
        if key is not None and self.library is not None:
            cached = await self._cached(key)
            if cached is not None:
                return cached
        if key is None:  # nothing to share: stream straight from the engine
            return Delivered("off", self.stream(plan))
        if self.library is not None:
            self.library.cache.count("miss")
        flight = Flight(
            self.stream(plan),
            on_finish=self._finished(plan),
            window=self.settings.stream_buffer_bytes,
        )
        self._flights[key] = flight
        return Delivered("miss", flight.subscribe())

    async def _cached(self, key: str) -> Delivered | None:
        """A stored response, or a share of the same synthesis in flight."""
        assert self.library is not None
        cached = await self.library.cache.lookup(key)
        if cached is None:
            flight = self._flights.get(key)
            if flight is not None and (not flight.done or flight.succeeded):
                self.library.cache.count("shared")
                return Delivered("shared", flight.subscribe())
            # the lookup awaited the database; a synthesis may have finished and been
            # cached meanwhile (the cache holds it in memory before the flight is gone)
            cached = self.library.cache.peek(key)
        if cached is None:
            return None
        audio = (
            cached.audio
            if cached.audio is not None
            else await self.library.blobs.get(cached.blob_key)
        )
        self.library.cache.count("hit")
        return Delivered("hit", iterate(replay(audio, cached.events)))

    def _finished(self, plan: Plan) -> Callable[[Flight], None]:
        """When a synthesis ends: cache it, and keep the finished flight joinable until the
        cache entry is written, so no identical request in between synthesizes again."""

        def forget(flight: Flight) -> None:
            if plan.cache_key is not None and self._flights.get(plan.cache_key) is flight:
                del self._flights[plan.cache_key]

        def done(flight: Flight) -> None:
            key = plan.cache_key
            library = self.library
            if key is None or not flight.succeeded or library is None or not plan.context.store:
                forget(flight)
                return
            from orate.library.cache import Cached

            audio, marks = recordable(flight.events)
            entry = Cached(
                key,
                f"audio/{key}",
                audio,
                len(audio),
                plan.format.content_type,
                duration_of(flight.events),
                marks,
            )

            async def store() -> None:
                try:
                    await library.cache.store(entry)
                finally:
                    forget(flight)

            task = library.track(store())
            self._storing[key] = task
            task.add_done_callback(lambda _t: self._storing.pop(key, None))

        return done

    async def stream(self, plan: Plan) -> AsyncGenerator[SpeechEvent, None]:
        """Events of one synthesis from the engine pool, in order; closing early stops it."""
        if self.catalog.registry.engine(plan.model.engine).runs_upstream:
            async for event in upstream_events(plan, self.catalog.providers, self._http()):
                yield event
            return
        if self.pool is None:
            raise RuntimeError("this speech service has no engine pool; use render_local")
        job = await self.pool.submit(plan.job, owner=plan.context.owner)
        try:
            async for kind, payload in job:
                if kind == EventKind.ERROR:
                    raise _failure(payload)
                yield speech_event(kind, payload)
        finally:
            if not job.finished:
                job.cancel()

    def render_local(
        self,
        plan: Plan,
        on_event: Callable[[SpeechEvent], None],
        should_stop: Callable[[], bool] = lambda: False,
    ) -> RenderStats:
        """Synthesize in this process (the CLI): no pool, same render code.
        ``should_stop`` ends the synthesis early (the reader went away)."""
        asked = plan.request.timestamps

        def emit(kind: EventKind, payload: Any) -> None:
            event = speech_event(kind, payload)
            shown = visible(event, asked) if kind == EventKind.TIMESTAMPS else event
            if shown is not None:
                on_event(shown)

        return render(plan.job, self.catalog.registry.engine, emit, should_stop)


def _failure(payload: dict[str, Any]) -> Exception:
    """A worker's ERROR frame as the error a dialect renders: a response past its byte
    cap is the caller's 413, a model that won't load the server's 503, the rest 500."""
    message = str(payload.get("message", "synthesis failed"))
    if payload.get("code") == OutputTooLarge.code:
        return SpeechError(413, "request_too_large", message, "input")
    if payload.get("code") == VoiceUnavailable.code:
        return SpeechError(
            503,
            VoiceUnavailable.code,
            message.removeprefix(f"{VoiceUnavailable.__name__}: "),
            "voice",
        )
    return SynthesisFailed(message)
