"""Single flight: one synthesis shared by every identical request in progress.

The synthesis runs as its own task, not inside any one request, and each
request subscribes to its events from the beginning. So eight identical
requests synthesize once, each still streams from its first byte, and the
first caller leaving does not cut off the others. When the last subscriber
leaves, the synthesis is cancelled (the engine stops).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

from orate.speech.types import SpeechEvent, SynthesisFailed


class Flight:
    def __init__(self, source: AsyncIterator[SpeechEvent],
                 on_finish: Callable[[Flight], None] | None = None) -> None:
        self.events: list[SpeechEvent] = []
        self.done = False
        self.error: BaseException | None = None
        self._source = source
        self._on_finish = on_finish
        self._wake: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._subscribers = 0
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        try:
            async for event in self._source:
                self.events.append(event)
                self._notify()
        except asyncio.CancelledError:
            self.error = SynthesisFailed("the synthesis was cancelled")
        except Exception as exc:
            self.error = exc
        finally:
            with contextlib.suppress(Exception):
                await self._source.aclose()  # type: ignore[attr-defined]
            self.done = True
            self._notify()
            if self._on_finish is not None:
                self._on_finish(self)

    def _notify(self) -> None:
        if not self._wake.done():
            self._wake.set_result(None)
        self._wake = asyncio.get_running_loop().create_future()

    @property
    def succeeded(self) -> bool:
        return self.done and self.error is None

    async def subscribe(self) -> AsyncIterator[SpeechEvent]:
        """Every event from the first; raises the synthesis error, if any, at its point."""
        self._subscribers += 1
        i = 0
        try:
            while True:
                while i < len(self.events):
                    yield self.events[i]
                    i += 1
                if self.done:
                    if self.error is not None:
                        raise self.error
                    return
                await asyncio.shield(self._wake)
        finally:
            self._subscribers -= 1
            if self._subscribers == 0 and not self.done:
                self._task.cancel()
