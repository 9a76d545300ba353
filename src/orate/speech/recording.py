"""Recording: what a speech leaves behind once its caller has had it — the quota
charged, the generation in history (with its audio and events), and the metrics.

The quota is reserved before synthesis (``reserve``) and settled after it with what
was spoken; a request that fails before any audio went out is charged nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Callable
from dataclasses import asdict
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from orate.catalog.models import Catalog
from orate.config import Settings
from orate.engines.base import VoiceParams
from orate.runtime.events import EventKind
from orate.speech.events import duration_of, recordable, visible
from orate.speech.metrics import Metrics
from orate.speech.types import Context, EventStream, Plan, SpeechError, SpeechEvent

if TYPE_CHECKING:
    from orate.library.keys import Reservation
    from orate.library.library import Library
    from orate.library.writer import PendingRecord


class Recorder:
    """Usage, history and metrics of every speech; one per speech service."""

    def __init__(
        self,
        settings: Settings,
        catalog: Catalog,
        library: Library | None,
        metrics: Metrics | None,
    ) -> None:
        self.settings = settings
        self.catalog = catalog
        self.library = library
        self.metrics = metrics

    async def reserve(self, ctx: Context, characters: int) -> Reservation | None:
        """Take ``characters`` from the caller's quota before any synthesis, atomically.

        Every input path charges through here (whole requests once planned, and each
        piece of a streaming input, so a WebSocket cannot outrun its quota). Raises the
        429 ``quota_exceeded`` refusal when the characters do not fit. Settle the
        reservation with what was spoken, or release it when nothing was.
        """
        if ctx.key_id is None or ctx.quota_left is None or self.library is None:
            return None  # only keys with a quota need the count (a write costs ~2 ms)
        from orate.library.keys import QuotaExceeded

        try:
            return await self.library.keys.reserve(ctx.key_id, characters)
        except QuotaExceeded as exc:
            raise SpeechError(
                429,
                "quota_exceeded",
                f"this key has {exc.left} characters of "
                f"its quota left and the input is {characters}; ask an admin "
                "for a larger quota",
                "input",
                headers={"Retry-After": "86400"},
            ) from None

    def cost(self, plan: Plan, duration: float, cache: str = "miss") -> float:
        """What this speech costs its caller: the model's price (the catalog's: 0 for
        local engines unless the operator set one) for its characters and seconds; a
        replay from the cache, or a share of someone else's synthesis, costs nothing."""
        if cache in ("hit", "shared"):
            return 0.0
        return self.catalog.price(plan.model.id).cost(plan.characters, duration)

    async def recorded(
        self,
        gen_id: str,
        plan: Plan,
        events: EventStream,
        status: str,
        cache_write: Callable[[], asyncio.Task[object] | None] = lambda: None,
    ) -> AsyncGenerator[SpeechEvent, None]:
        """Pass events through (timestamps cut to what was asked); once the caller has
        had them all, settle the quota, count the metrics and record the generation.
        ``cache_write``: the delivery's write of this plan's cache entry in progress, if
        any, asked once the events are all out (the write starts when the synthesis ends)."""
        seen: list[SpeechEvent] = []
        reservation = plan.reservation
        asked = plan.request.timestamps
        try:
            async for event in events:
                seen.append(event)
                if event.kind == EventKind.TIMESTAMPS:
                    shown = visible(event, asked)
                    if shown is not None:
                        yield shown
                    continue
                yield event
        except BaseException:
            # failed or abandoned: charge nothing if no audio went out, else all of it
            if reservation is not None:
                spoke = any(e.kind == EventKind.AUDIO for e in seen)
                self._settle(reservation, plan.characters if spoke else 0)
            raise
        finally:
            # closing this stream (client gone, request refused) must release the synthesis
            # now, not when the garbage collector gets to it
            with contextlib.suppress(Exception):
                await events.aclose()
        if reservation is not None:
            self._settle(reservation, plan.characters)
        await self._finish(gen_id, plan, seen, status, cache_write())

    async def _finish(
        self,
        gen_id: str,
        plan: Plan,
        seen: list[SpeechEvent],
        status: str,
        cache_write: asyncio.Task[object] | None,
    ) -> None:
        if self.metrics is not None:
            self.metrics.cache.labels(status).inc()
            self.metrics.audio.labels(plan.context.dialect, plan.model.engine).inc(
                duration_of(seen)
            )
        record = None
        if self.library is not None and plan.context.record and self.settings.history:
            record = self._record(gen_id, plan, seen, status)
        if self.library is not None and self.library.shared:
            # several replicas: the response ends once its generation (and the cache entry
            # it made) is in the shared database and store, so the next request on any
            # replica finds it (read-your-writes across replicas; costs one batched write)
            waits = [w for w in (record.done if record is not None else None, cache_write) if w]
            if waits:
                await asyncio.wait([asyncio.ensure_future(w) for w in waits], timeout=10)

    def _settle(self, reservation: Reservation, actual: int) -> None:
        """Settle off the request path (a no-op write unless the charge changes)."""
        if self.library is not None and reservation.open:
            self.library.track(reservation.settle(actual))

    def _record(
        self, gen_id: str, plan: Plan, events: list[SpeechEvent], status: str
    ) -> PendingRecord:
        lib = self.library
        assert lib is not None
        audio, marks = recordable(events)
        duration = duration_of(events)
        store = plan.context.store and self.settings.store_audio
        blob_key = None
        if store:
            blob_key = f"audio/{plan.cache_key}" if plan.cache_key else f"audio/{gen_id}"
        first = plan.voices[0] if plan.voices else VoiceParams()
        meta: dict[str, Any] = {}
        if plan.job.timestamps:
            meta = {
                "events": marks,
                **_lines(plan, events),
                **({"warnings": plan.warnings} if plan.warnings else {}),
            }
        return lib.generations.record(
            {
                "id": gen_id,
                "owner": plan.context.owner,
                "dialect": plan.context.dialect,
                "model": plan.model.id,
                "engine": plan.model.engine,
                "voice": first.label(),
                "voice_params": [asdict(v) for v in plan.voices],
                "text": plan.job.text,
                "characters": plan.characters,
                "speed": plan.job.segments[0].speed,
                "format": plan.format.name,
                "content_type": plan.format.content_type,
                "sample_rate": plan.sample_rate,
                "duration": duration,
                "bytes": len(audio),
                "cost": self.cost(plan, duration, status),
                "currency": self.settings.currency,
                "cache_key": plan.cache_key,
                "cache_hit": status in ("hit", "shared"),
                "blob_key": blob_key,
                "meta": meta,
                "created_at": datetime.now(UTC),
            },
            audio if store else None,
        )


def _lines(plan: Plan, events: list[SpeechEvent]) -> dict[str, Any]:
    """Per-utterance (dialogue line) times of a multi-utterance request, for history."""
    if len(plan.request.utterances) < 2:
        return {}
    lines: dict[int, dict[str, Any]] = {}
    for e in events:
        if e.kind != EventKind.SENTENCE:
            continue
        seg = e.info["segment"]
        n = plan.segment_utterances[seg] if seg < len(plan.segment_utterances) else seg
        line = lines.setdefault(
            n, {"utterance": n, "start_ms": e.info["start_ms"], "char_start": e.info["char_start"]}
        )
        line["end_ms"] = e.info["end_ms"]
        line["char_end"] = e.info["char_end"]
    return {"lines": [lines[k] for k in sorted(lines)]}
