"""Single flight: one synthesis shared by every identical request in progress.

The synthesis runs as its own task, not inside any one request, and each
request subscribes to its events from the beginning. So eight identical
requests synthesize once, each still streams from its first byte, and the
first caller leaving does not cut off the others. When the last subscriber
leaves, the synthesis is cancelled (the engine stops).

Paced by its lead subscriber: the task pulls the next event from the engine only
while the subscriber furthest ahead has less than ``window`` bytes of audio left
to read. So a flight whose clients all stall stops its engine within a window, as
an unshared request does, and a slow subscriber does not make the flight run ahead
for it: it only reads, later, what the leader already caused to be made (the list
is kept anyway, for late joiners and the cache entry).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Callable

from orate.speech.types import SpeechEvent, SynthesisFailed

DEFAULT_WINDOW = 256 * 1024


class Flight:
    def __init__(
        self,
        source: AsyncGenerator[SpeechEvent, None],
        on_finish: Callable[[Flight], None] | None = None,
        window: int = DEFAULT_WINDOW,
    ) -> None:
        self.events: list[SpeechEvent] = []
        self.done = False
        self.error: BaseException | None = None
        self.window = window
        self._ends: list[int] = []  # audio bytes made up to and including each event
        self._source = source
        self._on_finish = on_finish
        loop = asyncio.get_running_loop()
        self._wake: asyncio.Future[None] = loop.create_future()
        self._room = asyncio.Event()
        self._subscribers: set[Subscription] = set()
        self._task = loop.create_task(self._run())

    def _made(self) -> int:
        return self._ends[-1] if self._ends else 0

    def _has_room(self) -> bool:
        lead = max((s.index for s in self._subscribers), default=0)
        read = self._ends[lead - 1] if lead else 0
        return self._made() - read < self.window

    async def _run(self) -> None:
        try:
            while True:
                while not self._has_room():
                    self._room.clear()
                    await self._room.wait()
                try:
                    event = await anext(self._source)
                except StopAsyncIteration:
                    break
                self.events.append(event)
                self._ends.append(self._made() + len(event.audio))
                self._notify()
        except asyncio.CancelledError:
            self.error = SynthesisFailed("the synthesis was cancelled")
        except Exception as exc:
            self.error = exc
        finally:
            with contextlib.suppress(Exception):
                await self._source.aclose()
            self.done = True
            self._notify()
            if self._on_finish is not None:
                self._on_finish(self)

    def _notify(self) -> None:
        if not self._wake.done():
            self._wake.set_result(None)
        self._wake = asyncio.get_running_loop().create_future()

    def _advanced(self) -> None:
        if not self._room.is_set() and self._has_room():
            self._room.set()

    def _leave(self, sub: Subscription) -> None:
        self._subscribers.discard(sub)
        if not self._subscribers and not self.done:
            self._task.cancel()
        else:
            self._advanced()  # the leader may have left: the next one sets the pace

    @property
    def succeeded(self) -> bool:
        return self.done and self.error is None

    def subscribe(self) -> Subscription:
        """Every event from the first; raises the synthesis error, if any, at its point.

        The subscription counts from this call (not from its first read), so a request
        that is refused before it reads still releases the flight when it is closed
        or dropped.
        """
        return Subscription(self)


class Subscription:
    """One reader of a flight: an async iterator with ``aclose``."""

    def __init__(self, flight: Flight) -> None:
        self._flight = flight
        self.index = 0
        self.closed = False
        flight._subscribers.add(self)

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> SpeechEvent:
        flight = self._flight
        if self.closed:
            raise StopAsyncIteration
        while self.index >= len(flight.events):
            if flight.done:
                self._close()
                if flight.error is not None:
                    raise flight.error
                raise StopAsyncIteration
            try:
                await asyncio.shield(flight._wake)
            except BaseException:
                self._close()
                raise
        event = flight.events[self.index]
        self.index += 1
        flight._advanced()
        return event

    async def aclose(self) -> None:
        self._close()

    def _close(self) -> None:
        if not self.closed:
            self.closed = True
            self._flight._leave(self)

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self._close()
