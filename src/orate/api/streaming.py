"""Helpers every dialect uses to turn pipeline events into an HTTP body.

The first audio is awaited before the response starts: an engine failure at
that point still becomes a proper error response in the caller's dialect,
and it costs no latency because the body could not start earlier anyway.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from orate.speech.pipeline import SpeechEvent


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
