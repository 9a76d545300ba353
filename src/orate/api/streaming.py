"""Helpers every dialect uses to turn pipeline events into an HTTP body.

The first audio is awaited before the response starts: an engine failure at
that point still becomes a proper error response in the caller's dialect,
and it costs no latency because the body could not start earlier anyway.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Coroutine
from typing import Any

from fastapi import Request

from orate.speech.pipeline import SpeechEvent

CLIENT_GONE = 499  # nginx's "client closed request": logged and counted, never delivered


async def primed(events: AsyncIterator[SpeechEvent]) -> AsyncIterator[SpeechEvent]:
    """Pull events up to and including the first audio chunk, then hand back the rest.

    Raises whatever the pipeline raises before that point, so the route can still
    answer with an error status.
    """
    head: list[SpeechEvent] = []
    try:
        async for event in events:
            head.append(event)
            if event.kind in ("audio", "done"):
                break
    except BaseException:
        # an error, or the client left while we waited: stop the synthesis now
        with contextlib.suppress(Exception):
            await events.aclose()  # type: ignore[attr-defined]
        raise

    async def chained() -> AsyncIterator[SpeechEvent]:
        try:
            for event in head:
                yield event
            async for event in events:
                yield event
        finally:
            with contextlib.suppress(Exception):
                await events.aclose()  # type: ignore[attr-defined]

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
