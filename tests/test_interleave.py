"""One engine worker holding several jobs: a sentence of each at a time, earliest
deadline first. A short request sent after a long one is answered before the long one
ends; stopping or failing one job leaves the others whole; a worker that dies fails
every job it held and is replaced."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Generator
from typing import Any

import pytest

from orate.engines.base import VoiceParams
from orate.runtime.events import EventKind
from orate.runtime.interleave import Interleaver
from orate.runtime.pool import EnginePool, JobStream
from orate.runtime.render import RenderJob, RenderStats, Segment
from orate.speech.text import split_sentences

from .waiting import await_until

LONG = "The quick brown fox jumps over the lazy dog near the quiet river bank. " * 40
SHORT = "A cup of hot tea would be nice on a cold day."


def _job(text: str, fmt: str = "pcm") -> RenderJob:
    return RenderJob(
        text=text,
        segments=(Segment(VoiceParams(voice="en-us", variant="f2"), tuple(split_sentences(text))),),
        format=fmt,
    )


# -- the schedule, on a clock of our own -------------------------------------------------


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _sentences(run_ms: list[float], seconds: float) -> Generator[None, None, RenderStats]:
    """A render of sentences of ``seconds`` each, reporting its audio as render does."""
    for n in range(1, 4):
        run_ms.append(n * seconds * 1000)
        yield
    return RenderStats()


@pytest.mark.fast
def test_a_new_job_goes_before_jobs_that_are_ahead_of_their_listeners() -> None:
    clock = _Clock()
    held = Interleaver(clock)
    a = held.add(1, slot=0, budget=1)
    made: list[float] = []
    a.steps = _sentences(made, 3.0)
    assert held.next() is a
    held.step(a)
    a.audio_ms = made[-1]  # 3 s of audio made at t=100: needed again at t=103
    clock.now = 100.5
    b = held.add(2, slot=1, budget=1)
    b.steps = _sentences([], 3.0)
    assert held.next() is b  # b's listener has nothing yet: it waits since 100.5
    held.step(b)
    b.audio_ms = 3000.0  # b needs more at 103.5, a at 103
    assert held.next() is a
    clock.now = 104.0  # a is late now; still a first (earliest deadline)
    assert held.next() is a


@pytest.mark.fast
def test_jobs_that_have_made_nothing_go_in_the_order_they_came() -> None:
    held = Interleaver(_Clock())
    first = held.add(7, 0, 1)
    second = held.add(3, 1, 1)  # same instant, smaller id: arrival order still wins
    assert [held.next(), second.deadline] == [first, first.deadline]


@pytest.mark.fast
def test_a_finished_or_failed_job_leaves_the_schedule() -> None:
    held = Interleaver(_Clock())
    done = held.add(1, 0, 1)
    done.steps = _sentences([], 1.0)
    while held.step(done) is None:
        pass
    assert len(held) == 0

    def broken() -> Generator[None, None, RenderStats]:
        raise ValueError("no such voice")
        yield

    bad = held.add(2, 0, 1)
    bad.steps = broken()
    with pytest.raises(ValueError):
        held.step(bad)
    assert len(held) == 0


# -- real worker processes ---------------------------------------------------------------


async def _events(stream: JobStream, log: list[tuple[str, EventKind]], name: str) -> list[Any]:
    got = []
    async for kind, payload in stream:
        log.append((name, kind))
        got.append((kind, payload))
    return got


def test_a_short_job_sent_after_a_long_one_ends_first() -> None:
    async def scenario() -> None:
        pool = EnginePool(1, streams=4)
        await pool.start()
        try:
            log: list[tuple[str, EventKind]] = []
            long = asyncio.create_task(_events(await pool.submit(_job(LONG)), log, "long"))
            await await_until(lambda: ("long", EventKind.SENTENCE) in log, "the long job to start")
            short = await _events(await pool.submit(_job(SHORT)), log, "short")
            assert short[-1][0] is EventKind.DONE
            assert ("long", EventKind.DONE) not in log  # 40 sentences: still going
            rest = await long
            assert rest[-1][0] is EventKind.DONE
            sentences = sum(1 for kind, _ in rest if kind is EventKind.SENTENCE)
            assert sentences == len(split_sentences(LONG))
        finally:
            await pool.close()

    asyncio.run(scenario())


def test_stopping_one_job_leaves_the_others_on_its_worker_whole() -> None:
    async def scenario() -> None:
        pool = EnginePool(1, streams=4)
        await pool.start()
        try:
            alone = [k async for k, _ in await pool.submit(_job(LONG))]
            whole = sum(1 for k in alone if k is EventKind.SENTENCE)
            log: list[tuple[str, EventKind]] = []
            keep = asyncio.create_task(_events(await pool.submit(_job(LONG)), log, "keep"))
            stop = await pool.submit(_job(LONG))
            async for kind, _ in stop:
                if kind is EventKind.SENTENCE:
                    stop.cancel()
                    break
            got = await keep
            assert got[-1][0] is EventKind.DONE
            assert sum(1 for k, _ in got if k is EventKind.SENTENCE) == whole
            await await_until(lambda: pool.cancelled == 1, "the stopped job to end")
            assert pool.stats()["busy"] == 0
        finally:
            await pool.close()

    asyncio.run(scenario())


def test_a_bad_job_fails_alone() -> None:
    async def scenario() -> None:
        pool = EnginePool(1, streams=4)
        await pool.start()
        try:
            log: list[tuple[str, EventKind]] = []
            good = asyncio.create_task(_events(await pool.submit(_job(LONG)), log, "good"))
            bad_job = RenderJob(
                text=SHORT,
                segments=(Segment(VoiceParams(voice="no-such-voice"), ((0, len(SHORT)),)),),
                format="pcm",
            )
            bad = await _events(await pool.submit(bad_job), log, "bad")
            assert bad[-1][0] is EventKind.ERROR
            assert (await good)[-1][0] is EventKind.DONE
        finally:
            await pool.close()

    asyncio.run(scenario())


def test_a_killed_worker_fails_every_job_it_held_and_is_replaced() -> None:
    async def scenario() -> None:
        pool = EnginePool(1, streams=4)
        await pool.start()
        try:
            log: list[tuple[str, EventKind]] = []
            streams = [await pool.submit(_job(LONG)) for _ in range(3)]
            tasks = [asyncio.create_task(_events(s, log, str(n))) for n, s in enumerate(streams)]
            await await_until(
                lambda: sum(1 for _, k in log if k is EventKind.SENTENCE) >= 3,
                "the three jobs to start",
            )
            os.kill(streams[0]._worker.process.pid, signal.SIGKILL)
            for task in tasks:
                got = await task
                assert got[-1][0] is EventKind.ERROR and "died" in got[-1][1]["message"]
            await await_until(lambda: len(pool.pids()) == 1, "a new worker", interval=0.1)
            after = [k async for k, _ in await pool.submit(_job(SHORT))]
            assert after[-1] is EventKind.DONE and pool.stats()["busy"] == 0
        finally:
            await pool.close()

    asyncio.run(scenario())


def test_requests_one_after_another_take_turns_on_the_workers() -> None:
    """Idle workers are equally free: each new job goes to the one given a job longest
    ago, so both warm up alike (the same worker every time would leave the other cold
    until the first burst)."""

    async def scenario() -> None:
        pool = EnginePool(2, streams=4)
        await pool.start()
        try:
            pids = []
            for _ in range(4):
                stream = await pool.submit(_job(SHORT))
                pids.append(stream._worker.process.pid)
                assert [k async for k, _ in stream][-1] is EventKind.DONE
            assert pids[0] != pids[1] and pids[:2] == pids[2:], pids
        finally:
            await pool.close()

    asyncio.run(scenario())
