"""Helpers every dialect uses to turn pipeline events into an HTTP body.

The first audio is awaited before the response starts: an engine failure at
that point still becomes a proper error response in the caller's dialect,
and it costs no latency because the body could not start earlier anyway.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Coroutine
from typing import Any, Protocol, TypeVar

from fastapi import Request

from orate.speech.pipeline import SpeechEvent

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)


class Closable(Protocol[T_co]):
    """Events a route may stop early: a speech's ``EventStream`` or Hume's frames (async
    generators), closed so a caller that goes away releases its synthesis at once."""

    def __aiter__(self) -> AsyncIterator[T_co]: ...

    async def __anext__(self) -> T_co: ...

    async def aclose(self) -> None: ...


CLIENT_GONE = 499  # nginx's "client closed request": logged and counted, never delivered


def _first_audio(event: SpeechEvent) -> bool:
    return event.kind in ("audio", "done")


async def primed(
    events: Closable[T], is_first: Callable[[Any], bool] = _first_audio
) -> AsyncGenerator[T, None]:
    """Pull items up to and including the first audio (``is_first``: a pipeline event
    with audio by default, a Hume chunk for Hume's frames), then hand back the rest.

    Raises whatever the pipeline raises before that point, so the route can still
    answer with an error status.
    """
    head: list[T] = []
    try:
        async for item in events:
            head.append(item)
            if is_first(item):
                break
    except BaseException:
        # an error, or the client left while we waited: stop the synthesis now
        with contextlib.suppress(Exception):
            await events.aclose()
        raise

    async def chained() -> AsyncGenerator[T, None]:
        try:
            for item in head:
                yield item
            async for item in events:
                yield item
        finally:
            with contextlib.suppress(Exception):
                await events.aclose()

    return chained()


async def audio_bytes(events: AsyncIterator[SpeechEvent]) -> AsyncIterator[bytes]:
    async for event in events:
        if event.kind == "audio" and event.audio:
            yield event.audio


async def _disconnected(request: Request) -> None:
    """Returns when the client has gone (the body has been read already)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def while_connected(request: Request, work: Coroutine[Any, Any, None]) -> bool:
    """Run ``work`` (a response built whole before it is sent) unless the client leaves
    first; then cancel it, which stops its synthesis. True if ``work`` finished.

    Streaming responses learn of a disconnect from Starlette; a route that drains the
    synthesis itself would otherwise carry on to the end for nobody.
    """
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(_disconnected(request))
    try:
        done, _ = await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
        if task in done:
            task.result()  # its error, if any, is the response's
            return True
        return False
    finally:
        for t in (task, watcher):
            t.cancel()
        await asyncio.gather(task, watcher, return_exceptions=True)
