"""Incremental text in, sentences out: the session every streaming-input dialect shares.

An LLM writes text a few characters at a time. Listeners want the first sentence
spoken as soon as it is complete, not when the whole answer has arrived, and they
want the sentences in order. Hume's ``/v0/tts/stream/input`` WebSocket, ElevenLabs'
``stream-input`` WebSocket and Wyoming's ``synthesize-chunk`` events all reduce to
the same three operations, so they share this one implementation:

- ``write(text, settings)``: append; every sentence completed by it is queued with
  the settings in force when it was taken from the buffer;
- ``flush(settings)``: queue whatever is buffered, complete or not;
- ``finish()``: flush is the caller's choice; wait until everything queued is spoken.

The dialect supplies ``speak(text, settings)``, which synthesizes one piece and frames
its audio. Pieces are spoken one at a time in a background task, so reading the next
message never waits for synthesis and audio never interleaves. The buffer is bounded:
a client that never ends a sentence is told to flush instead of growing memory, and
the queue of complete pieces waiting to be spoken is bounded too, so a client that
writes faster than speech is made pushes back through ``write`` raising.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from orate.speech.text import split_sentences
from orate.speech.types import SpeechError

S = TypeVar("S")
M = TypeVar("M")

MAX_BUFFER = 20_000  # characters waiting for a sentence end
MAX_PENDING = 256  # complete pieces waiting for synthesis


class TextStreamOverflow(SpeechError):
    """The client wrote more than the session may hold; the dialect closes with a reason."""

    def __init__(self, message: str) -> None:
        super().__init__(400, "buffer_full", message)


class SpeakerStopped(Exception):
    """The speaker ended without an error while the client was still writing."""


@dataclass(frozen=True)
class Piece(Generic[S]):
    """Text to speak with the settings in force when it was taken from the buffer."""

    text: str
    settings: S


class TextStream(Generic[S]):
    """One incremental-text session: buffer, sentence splitter and an ordered speaker."""

    def __init__(
        self,
        speak: Callable[[str, S], Awaitable[None]],
        *,
        max_buffer: int = MAX_BUFFER,
        max_pending: int = MAX_PENDING,
    ) -> None:
        self._speak = speak
        self._max_buffer = max_buffer
        self._buffer = ""
        self._queue: asyncio.Queue[Piece[S] | None] = asyncio.Queue(max_pending)
        self._speaking = False
        self._task = asyncio.create_task(self._run())

    @property
    def task(self) -> asyncio.Task[None]:
        """The speaker; done early only when a piece failed (its exception says why)."""
        return self._task

    @property
    def busy(self) -> bool:
        """Speaking, or sentences queued: a client that sends nothing meanwhile is
        listening, not idle."""
        return self._speaking or not self._queue.empty()

    @property
    def buffered(self) -> str:
        return self._buffer

    def write(self, text: str, settings: S) -> list[str]:
        """Append text; queue (and return) every sentence it completes."""
        self._buffer += text
        if len(self._buffer) > self._max_buffer:
            raise TextStreamOverflow(
                f"more than {self._max_buffer} characters buffered without a sentence end; "
                "send a flush"
            )
        spans = split_sentences(self._buffer)
        if len(spans) < 2:
            return []
        cut = spans[-1][0]  # all but the last sentence are complete: speak them now
        done, self._buffer = self._buffer[:cut], self._buffer[cut:]
        return self._take(done, settings)

    def cut(self, at: int, settings: S) -> list[str]:
        """Queue the first ``at`` buffered characters now (a length-based trigger)."""
        done, self._buffer = self._buffer[:at], self._buffer[at:]
        return self._take(done, settings)

    def flush(self, settings: S) -> list[str]:
        """Queue whatever is buffered, complete sentence or not."""
        done, self._buffer = self._buffer, ""
        return self._take(done, settings)

    async def next_message(
        self, receive: Callable[[], Awaitable[M]], idle: float | None = None
    ) -> M | None:
        """The client's next message, raced against the speaker: if a piece fails first,
        its exception is raised here (``SpeakerStopped`` if it just ended), so a dialect's
        read loop notices a failed synthesis without waiting for the client. None when
        nothing arrives within ``idle`` seconds."""
        pending = asyncio.ensure_future(receive())
        done, _ = await asyncio.wait(
            {pending, self._task}, timeout=idle, return_when=asyncio.FIRST_COMPLETED
        )
        if self._task in done:
            pending.cancel()
            self._task.result()  # raises what stopped the synthesis
            raise SpeakerStopped("synthesis stopped")
        if pending not in done:
            pending.cancel()
            return None
        return pending.result()

    async def finish(self) -> None:
        """Wait until every queued piece is spoken; raises what stopped the speaker."""
        await self._queue.put(None)
        await self._task

    async def aclose(self) -> None:
        """Stop speaking now (client gone or session failed); nothing is left running."""
        if not self._task.done():
            self._task.cancel()
        with contextlib.suppress(BaseException):
            await self._task

    def _take(self, text: str, settings: S) -> list[str]:
        if not text.strip():
            return []
        try:
            self._queue.put_nowait(Piece(text, settings))
        except asyncio.QueueFull:
            raise TextStreamOverflow(
                "too many sentences waiting to be spoken; wait for audio before sending more"
            ) from None
        return [text]

    async def _run(self) -> None:
        while (piece := await self._queue.get()) is not None:
            self._speaking = True
            try:
                await self._speak(piece.text, piece.settings)
            finally:
                self._speaking = False
