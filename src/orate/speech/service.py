"""The speech service: the use cases that routes, the Wyoming server and the CLI call.

Dialect modules only translate: they parse their wire format into a ``SpeechRequest``
and frame what comes back. Everything that decides something (planning, synthesis,
jobs, saving a voice, listing voices, pricing) is a method here, so a new dialect gets
the same behaviour by calling the same method, and a rule changes in one place.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from orate.catalog.models import Catalog, Model
from orate.config import Price, Settings
from orate.engines.base import Engine, UnknownVoice, VoiceInfo, VoiceParams
from orate.engines.registry import UnknownEngine
from orate.runtime.backend import EngineBackend
from orate.runtime.render import RenderStats
from orate.speech.delivery import Delivery
from orate.speech.design import design_voice
from orate.speech.metrics import Metrics
from orate.speech.planning import Planner
from orate.speech.recording import Recorder
from orate.speech.textstream import TextStream
from orate.speech.types import Context, Plan, Speech, SpeechError, SpeechEvent, SpeechRequest

if TYPE_CHECKING:
    from orate.library.library import Library
    from orate.library.tables import Job, Voice
    from orate.speech.job_runner import JobRunner

S = TypeVar("S")


class GenerationNotFound(LookupError):
    """The generation a voice is to be saved from does not exist for this caller, or has
    no voice to save; each dialect says so in its own words."""


@dataclass(frozen=True)
class VoiceSource:
    """Exactly one of these makes a saved voice: a generation's first voice, explicit
    parameters, or a description designed into parameters (``seed`` picks among designs)."""

    generation_id: str | None = None
    params: VoiceParams | None = None
    description: str | None = None
    seed: int = 0


class SpeechService:
    """One per server (or CLI command), built by the composition root.

    It owns and composes the three stages of a speech: planning (text → plan),
    delivery (plan → events: cache, single flight, engine backend) and recording
    (quota, history, metrics). ``plan`` plans and then reserves the quota; ``speak``
    delivers and wraps the events so they are recorded once the caller has had them.
    """

    def __init__(
        self,
        settings: Settings,
        catalog: Catalog,
        pool: EngineBackend | None,
        library: Library | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.settings = settings
        self.catalog = catalog
        self.library = library
        self.planner = Planner(settings, catalog, library)
        self.delivery = Delivery(settings, catalog, pool, library)
        self.recorder = Recorder(settings, catalog, library, metrics)
        self.jobs: JobRunner | None = None  # set by the composition root when it runs jobs

    async def close(self) -> None:
        await self.delivery.close()

    # -- what the dialects read ------------------------------------------------

    def engine(self, name: str) -> Engine:
        """An engine's facts (voices, sample rate) for listings; synthesis stays in the
        runtime's workers."""
        return self.catalog.registry.engine(name)

    def _design_engine(self) -> Engine:
        """The engine descriptions are designed on: the natural palette when installed."""
        from orate.catalog.natural import natural_engine

        return self.engine(natural_engine())

    # -- speaking --------------------------------------------------------------

    async def plan(self, req: SpeechRequest, ctx: Context | None = None) -> Plan:
        """Validate and plan a request (text, voices, limits) without synthesizing, then
        take its characters from the caller's quota: last, once everything else is
        valid, so nothing is charged for a refused request."""
        plan = await self.planner.plan(req, ctx or Context())
        plan.reservation = await self.recorder.reserve(plan.context, plan.characters)
        return plan

    async def speak(self, plan: Plan) -> Speech:
        """Start synthesis of a plan (or replay it from the cache): events as they come,
        recorded (quota settled, history, metrics) once the caller has had them all."""
        from orate.library.generations import new_id

        gen_id = new_id()
        delivered = await self.delivery.deliver(plan)
        events = self.recorder.recorded(
            gen_id,
            plan,
            delivered.events,
            delivered.cache,
            lambda: self.delivery.cache_write(plan.cache_key),
        )
        return Speech(gen_id, plan, delivered.cache, events)

    async def resolve_voice(
        self, model: Model, voice: str | VoiceParams, owner: str, provider: str = "any"
    ) -> tuple[VoiceParams, str | None]:
        """A voice by built-in name, engine name or the owner's saved voice (its id too)."""
        return await self.planner.voices.resolve(model, voice, owner, provider)

    def render_local(
        self,
        plan: Plan,
        on_event: Callable[[SpeechEvent], None],
        should_stop: Callable[[], bool] = lambda: False,
    ) -> RenderStats:
        """Synthesize in this process (the CLI's ``say``): same render, no pool."""
        return self.delivery.render_local(plan, on_event, should_stop)

    def open_text_stream(
        self, speak: Callable[[str, S], Awaitable[None]], *, max_pending: int | None = None
    ) -> TextStream[S]:
        """A session for incremental text (LLM output): complete sentences are spoken in
        order by ``speak`` (the dialect's framing of one piece) while more text arrives.
        The Hume and ElevenLabs WebSockets and Wyoming streaming all use it;
        ``max_pending`` tightens the queue where one socket holds several sessions."""
        if max_pending is None:
            return TextStream(speak)
        return TextStream(speak, max_pending=max_pending)

    # -- money -----------------------------------------------------------------

    def price(self, model_id: str) -> Price:
        """What a model costs the caller (the operator's table, else the provider's)."""
        return self.catalog.price(model_id)

    def cost(self, plan: Plan, duration: float, cache: str = "miss") -> float:
        """What a speech costs its caller (nothing for a cache hit or a shared one)."""
        return self.recorder.cost(plan, duration, cache)

    # -- jobs ------------------------------------------------------------------

    async def submit_job(
        self, plan: Plan, request: dict[str, Any], *, owner: str, dialect: str
    ) -> tuple[Job, float]:
        """Queue a planned request as a durable job; returns it and the characters' cost
        (the finished job adds the seconds')."""
        if self.library is None:
            raise RuntimeError("jobs need the library")
        await self._check_job_room(plan, owner)
        cost = self.recorder.cost(plan, 0.0)
        job = await self.library.jobs.submit(
            owner=owner,
            dialect=dialect,
            model=plan.model.id,
            request=request,
            characters=plan.characters,
            cost=cost,
            currency=self.settings.currency,
        )
        if self.jobs is not None:
            self.jobs.notify()
        return job, cost

    async def _check_job_room(self, plan: Plan, owner: str) -> None:
        """Refuse (429, the limit named) a job past its key's or the server's bound on
        jobs waiting or running, releasing what the plan reserved of the quota: one key
        cannot queue hours of work ahead of everyone else."""
        assert self.library is not None
        limits = [
            (
                await self.library.jobs.pending(owner),
                self.settings.max_pending_jobs_per_key,
                "this key",
                "max_pending_jobs_per_key",
            ),
            (
                await self.library.jobs.pending(),
                self.settings.max_pending_jobs,
                "this server",
                "max_pending_jobs",
            ),
        ]
        for pending, limit, whose, name in limits:
            if pending >= limit:
                if plan.reservation is not None:
                    await plan.reservation.release()
                raise SpeechError(
                    429,
                    "too_many_jobs",
                    f"{whose} has {pending} jobs waiting "
                    f"or running; the limit is {limit} ({name}): wait for some "
                    "to finish",
                    headers={"Retry-After": "30"},
                )

    def running_progress(self, job_id: str) -> float | None:
        """A job's progress if this process is running it (ahead of the database's,
        which is written at each lease renewal), else None."""
        return self.jobs.running.get(job_id) if self.jobs is not None else None

    # -- voices ----------------------------------------------------------------

    def builtin_voices(self, engine: str) -> list[VoiceInfo]:
        """An engine's voices, after OpenAI's names when a model of that engine takes
        them (alloy, nova …, each with the gender of the voice and variant it maps to)."""
        model = next((m for m in self.catalog.models.values() if m.engine == engine), None)
        named = self.catalog.named_voices(model) if model is not None else []
        return [*named, *self.engine(engine).voices()]

    def list_voices(self, model: Model) -> list[VoiceInfo]:
        """The voices a model speaks with (none for an upstream model: the provider's)."""
        return self.catalog.voices(model)

    async def save_voice(
        self, owner: str, reader: str | None, name: str, source: VoiceSource
    ) -> Voice:
        """Save a named voice for ``owner``: the one rule for every dialect and the CLI.

        The voice is checked by the engine that speaks it (a hibari or Piper generation
        saves a hibari or Piper voice), and its language and gender come from that
        engine. Raises ``GenerationNotFound``, ``UnknownEngine``, ``UnknownVoice`` and the
        library's ``VoiceExists``; each caller words them in its own dialect."""
        if self.library is None:
            raise RuntimeError("saving a voice needs the library")
        kind, gen_id = "params", None
        if source.generation_id is not None:
            gen = await self.library.generations.get(source.generation_id, reader)
            if gen is None or not gen.voice_params:
                raise GenerationNotFound(source.generation_id)
            params = VoiceParams(**gen.voice_params[0])
            kind, gen_id = "generation", gen.id
        elif source.params is not None:
            params = source.params
        else:
            params = design_voice(source.description or "", self._design_engine(), seed=source.seed)
            kind = "design"
        engine = self.engine(params.engine)  # UnknownEngine for a name no engine has
        params = engine.check_voice(params)
        info = next((v for v in engine.voices() if v.id == params.voice), None)
        return await self.library.voices.create(
            owner,
            name,
            params,
            language=info.language if info else params.voice,
            gender=gender_of(engine, params, info),
            description=source.description or "",
            source=kind,
            source_generation_id=gen_id,
        )


def gender_of(engine: Engine, params: VoiceParams, info: VoiceInfo | None) -> str:
    """espeak knows a variant's own gender; other engines' voices carry theirs."""
    return engine.gender_of(params) or (info.gender if info else "neutral")


__all__ = [
    "GenerationNotFound",
    "SpeechService",
    "UnknownEngine",
    "UnknownVoice",
    "VoiceSource",
    "gender_of",
]
