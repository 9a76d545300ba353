"""The spool: a job's frames past its memory window go to disk, in order, within their
bounds, and the producer is held only when the spool says no."""

from __future__ import annotations

import asyncio
import os

import pytest

from orate.runtime.events import EventKind
from orate.runtime.spool import SpoolBudget
from orate.runtime.stream import PacedStream

AUDIO, SENTENCE, TIMESTAMPS, END = (
    EventKind.AUDIO,
    EventKind.SENTENCE,
    EventKind.TIMESTAMPS,
    EventKind.END,
)


pytestmark = pytest.mark.fast  # in-process only: see the fast tier in tests/conftest.py


class Recorded(PacedStream):
    """A stream that notes when its producer would be held or released."""

    def __init__(self, limit: int, spool: SpoolBudget | None) -> None:
        super().__init__(1, limit, spool)
        self.holds = 0
        self.held = False
        self.stopped = False

    def _hold(self) -> None:
        self.holds += 1
        self.held = True

    def _release(self) -> None:
        self.held = False

    def _stop(self) -> None:
        self.stopped = True


def frames(n: int) -> list[tuple[EventKind, object]]:
    out: list[tuple[EventKind, object]] = []
    for i in range(n):
        out.append((AUDIO, bytes([i % 256]) * 1000))
        if i % 7 == 0:
            out.append((TIMESTAMPS, {"words": [["w", i, i + 1]]}))
        if i % 11 == 0:
            out.append((SENTENCE, {"index": i}))
    return out


async def drain(stream: PacedStream) -> list[tuple[EventKind, object]]:
    return [(k, p) async for k, p in stream]


def test_frames_past_the_window_spool_to_disk_in_order(tmp_path) -> None:
    async def run() -> None:
        budget = SpoolBudget(10 << 20, 1 << 20, str(tmp_path))
        stream = Recorded(8000, budget)
        made = frames(200)
        for kind, payload in made:  # the producer runs to the end: nobody reads yet
            stream._push(kind, payload)
        stream._push(END, None)
        assert stream.holds == 0  # never held: the rest waits on disk
        assert budget.used > 150_000 and budget.spilled == 1
        assert stream.buffered <= 8000 + 1000
        got = await drain(stream)
        assert got == made
        assert budget.used == 0 and stream.finished

    asyncio.run(run())


def test_a_reader_that_catches_up_reads_memory_again(tmp_path) -> None:
    async def run() -> None:
        budget = SpoolBudget(10 << 20, 1 << 20, str(tmp_path))
        stream = Recorded(4000, budget)
        made = frames(60)
        reader = stream.__aiter__()
        got = []
        for i, (kind, payload) in enumerate(made):
            stream._push(kind, payload)
            if i % 5 == 4:  # read a little now and then, less than is made
                got.append(await anext(reader))
        stream._push(END, None)
        got += [f async for f in reader]
        assert got == made
        assert budget.used == 0

    asyncio.run(run())


def test_past_its_bounds_a_job_holds_its_producer(tmp_path) -> None:
    async def run() -> None:
        budget = SpoolBudget(20_000, 1 << 20, str(tmp_path))  # room for ~20 frames
        stream = Recorded(4000, budget)
        made = frames(80)
        for kind, payload in made:
            stream._push(kind, payload)
        assert stream.held and budget.refused == 1
        assert budget.used <= 20_000
        stream._push(END, None)
        assert await drain(stream) == made  # nothing lost, order kept
        assert not stream.held and budget.used == 0

    asyncio.run(run())


def test_no_spool_holds_at_the_window_as_before() -> None:
    async def run() -> None:
        stream = Recorded(4000, None)
        for kind, payload in frames(10):
            stream._push(kind, payload)
        assert stream.held
        stream._push(END, None)
        assert len(await drain(stream)) == len(frames(10))

    asyncio.run(run())


def test_a_cancelled_job_gives_its_disk_back_and_still_ends(tmp_path) -> None:
    async def run() -> None:
        budget = SpoolBudget(10 << 20, 1 << 20, str(tmp_path))
        stream = Recorded(4000, budget)
        for kind, payload in frames(100):
            stream._push(kind, payload)
        stream._push(END, None)  # the job ended, its END waits on disk
        assert budget.used > 0
        stream.cancel()
        assert stream.stopped and budget.used == 0
        assert await drain(stream) == []  # the reader still sees the end

    asyncio.run(run())


def test_spool_files_leave_nothing_behind(tmp_path) -> None:
    async def run() -> None:
        budget = SpoolBudget(10 << 20, 1 << 20, str(tmp_path))
        stream = Recorded(4000, budget)
        for kind, payload in frames(50):
            stream._push(kind, payload)
        assert os.listdir(tmp_path) == []  # anonymous files: unlinked as they are made
        stream._push(END, None)
        await drain(stream)

    asyncio.run(run())


def test_one_stream_may_not_take_more_than_its_share(tmp_path) -> None:
    async def run() -> None:
        budget = SpoolBudget(10 << 20, 30_000, str(tmp_path))
        stream = Recorded(4000, budget)
        for kind, payload in frames(100):
            stream._push(kind, payload)
        assert stream.held and budget.used <= 30_000
        stream._push(END, None)
        assert len(await drain(stream)) == len(frames(100))

    asyncio.run(run())


@pytest.mark.parametrize("size", [1, 70_000])
def test_frames_of_any_size_come_back_whole(tmp_path, size: int) -> None:
    async def run() -> None:
        budget = SpoolBudget(10 << 20, 1 << 20, str(tmp_path))
        stream = Recorded(1000, budget)
        made = [(AUDIO, os.urandom(size)) for _ in range(5)] + [(TIMESTAMPS, {"x": 1})]
        for kind, payload in made:
            stream._push(kind, payload)
        stream._push(END, None)
        assert await drain(stream) == made

    asyncio.run(run())


def test_one_owner_may_not_take_the_spool_from_another(tmp_path) -> None:
    async def run() -> None:
        budget = SpoolBudget(1 << 20, 1 << 20, str(tmp_path), owner_bytes=40_000)
        greedy = [Recorded(4000, budget) for _ in range(3)]
        for stream in greedy:
            stream._frames.owner = "greedy"
            for kind, payload in frames(30):
                stream._push(kind, payload)
        assert budget.by_owner["greedy"] <= 40_000 and any(s.held for s in greedy)
        other = PacedStream(9, 4000, budget, owner="other")
        for kind, payload in frames(30):
            other._push(kind, payload)
        assert budget.by_owner["other"] > 20_000  # its own share is still there
        for stream in (*greedy, other):
            stream._push(END, None)
            await drain(stream)
        assert budget.used == 0 and budget.by_owner == {}

    asyncio.run(run())


def test_a_job_cancelled_halfway_through_its_spool_gives_all_of_it_back(tmp_path) -> None:
    """The disk a spool file holds is charged until all of it is read back; a reader that
    leaves after reading part of it (a client gone mid-file) gives back all of it."""

    async def run() -> None:
        budget = SpoolBudget(10 << 20, 1 << 20, str(tmp_path))
        stream = Recorded(4000, budget)
        for kind, payload in frames(100):
            stream._push(kind, payload)
        stream._push(END, None)
        reader = stream.__aiter__()
        for _ in range(30):  # past the memory window: part of the file is read back
            await anext(reader)
        assert budget.used > 0
        stream.cancel()
        await reader.aclose()
        assert budget.used == 0 and budget.by_owner == {}

    asyncio.run(run())
