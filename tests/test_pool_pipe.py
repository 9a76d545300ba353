"""The worker pipe's framing survives any split of the byte stream, on asyncio's loop
(``data_received``) and on uvloop (buffered reads straight into the reader's buffer),
and a long job's frames arrive whole: DONE's byte count equals the audio received."""

from __future__ import annotations

import asyncio
import json
import random
from typing import Any

import pytest
import uvloop

from orate.engines.base import VoiceParams
from orate.runtime.events import EventKind
from orate.runtime.pool import PIPE_BYTES, EnginePool, _Reader
from orate.runtime.render import RenderJob, Segment
from orate.runtime.worker import HEADER
from orate.speech.text import split_sentences


class _Collect:
    def __init__(self) -> None:
        self.got: list[tuple[int, EventKind, bytes]] = []

    def _dispatch(self, _worker: Any, job_id: int, kind: EventKind, payload: bytes) -> None:
        assert isinstance(payload, bytes)
        self.got.append((job_id, kind, payload))


def _frames(rng: random.Random) -> list[tuple[int, int, bytes]]:
    sizes = [
        0,
        1,
        9,
        4096,
        65536,
        PIPE_BYTES - 9,
        PIPE_BYTES,
        PIPE_BYTES + 1,
        3 * PIPE_BYTES + 17,
    ] + [rng.randrange(1, 300_000) for _ in range(40)]
    rng.shuffle(sizes)
    return [
        (i + 1, EventKind.AUDIO if i % 3 else EventKind.SENTENCE, rng.randbytes(n))
        for i, n in enumerate(sizes)
    ]


@pytest.mark.fast
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_reader_reassembles_frames_from_any_split(seed: int) -> None:
    rng = random.Random(seed)
    frames = _frames(rng)
    stream = b"".join(HEADER.pack(len(p), j, k.code) + p for j, k, p in frames)
    pool = _Collect()
    reader = _Reader(pool, None)  # type: ignore[arg-type]
    pos = 0
    while pos < len(stream):
        if rng.random() < 0.5:  # asyncio's path: whole chunks of any size
            n = rng.choice([1, 7, 4096, 65536, 262144, 2 * PIPE_BYTES])
            reader.data_received(stream[pos : pos + n])
            pos += n
        else:  # uvloop's path: the loop fills part of the buffer it is given
            room = reader.get_buffer(-1)
            n = min(len(room), rng.choice([1, 9, 5000, 1 << 20]), len(stream) - pos)
            room[:n] = stream[pos : pos + n]
            room.release()
            reader.buffer_updated(n)
            pos += n
    assert pool.got == frames


def _long_job() -> RenderJob:
    text = "The quick brown fox jumps over the lazy dog near the quiet river bank. " * 40
    return RenderJob(
        text=text,
        segments=(Segment(VoiceParams(voice="en-us", variant="f2"), tuple(split_sentences(text))),),
        format="wav",
    )


async def _run_long_job() -> tuple[int, dict[str, Any]]:
    pool = EnginePool(1)
    await pool.start()
    try:
        audio, done = 0, {}
        async for kind, payload in await pool.submit(_long_job()):
            if kind is EventKind.AUDIO:
                audio += len(payload)
            elif kind is EventKind.DONE:
                done = payload
            assert kind is not EventKind.ERROR, payload
        return audio, done
    finally:
        await pool.close()


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_a_long_job_arrives_whole(loop: str) -> None:
    runner = uvloop.run if loop == "uvloop" else asyncio.run
    audio, done = runner(_run_long_job())
    assert audio == done["bytes"] > 2_000_000
    assert json.dumps(done)  # plain JSON came through the same pipe
