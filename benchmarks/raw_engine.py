"""The raw engine, timed outside any server: the ceiling the benchmarks hold orate
against. ``run.py`` (section a) and ``throughput.py`` both use it; it imports neither.
"""

from __future__ import annotations

import multiprocessing as mp
import time
from collections.abc import Callable
from typing import Any

from harness import WORKERS

ENGINE_VOICE, ENGINE_VARIANT = "en-us", "f2"  # what API_VOICE ("alloy") means


def run_for(seconds: float, min_count: int, step: Callable[[], Any]) -> int:
    """Call ``step`` until ``seconds`` passed and it ran ``min_count`` times."""
    deadline = time.perf_counter() + seconds
    count = 0
    while time.perf_counter() < deadline or count < min_count:
        step()
        count += 1
    return count


def load_engine() -> tuple[Any, Any]:
    """The engine and voice the server uses for "alloy", loaded into this process."""
    from orate.engines.base import VoiceParams
    from orate.engines.registry import EngineRegistry

    engine = EngineRegistry().engine("espeak")
    params = engine.check_voice(VoiceParams(voice=ENGINE_VOICE, variant=ENGINE_VARIANT))
    return engine, params


def synthesize(engine: Any, params: Any, text: str) -> int:
    """Synthesize ``text`` one sentence per call, as the server does; return samples."""
    from orate.speech.text import split_sentences

    samples = 0
    for start, end in split_sentences(text):
        samples += engine.synthesize(text[start:end], params, 1.0, lambda pcm, events: True).samples
    return samples


def _pair_worker(commands: Any, barrier: Any, results: Any) -> None:
    """One engine process of the pair: load the engine once, then time on command.

    Each command is (text, seconds); the barrier starts both processes' clocks
    together so neither runs alone. ``None`` ends the process.
    """
    engine, params = load_engine()
    while (job := commands.get()) is not None:
        text, seconds = job
        synthesize(engine, params, text)  # warm for this text
        barrier.wait()
        start = time.perf_counter()
        count = run_for(seconds, 1, lambda t=text: synthesize(engine, params, t))
        results.put((count, time.perf_counter() - start))


class RawPair:
    """The raw engine in two processes at once: the ceiling for a two-worker server.

    The processes are spawned (like the server's workers) once and kept for the
    whole run, so the rate can be sampled again next to the server's cells
    without paying a second of start-up each time; idle, they use no CPU.
    """

    def __init__(self) -> None:
        ctx = mp.get_context("spawn")
        self._barrier = ctx.Barrier(WORKERS + 1)
        self._results = ctx.Queue()
        self._commands = [ctx.Queue() for _ in range(WORKERS)]
        self._procs = [
            ctx.Process(target=_pair_worker, args=(q, self._barrier, self._results), daemon=True)
            for q in self._commands
        ]

    def __enter__(self) -> RawPair:
        for p in self._procs:
            p.start()
        return self

    def __exit__(self, *exc: object) -> None:
        for q in self._commands:
            q.put(None)
        for p in self._procs:
            p.join(timeout=10)
            if p.is_alive():
                p.kill()

    def rate(self, text: str, seconds: float) -> float:
        """Requests/s of both processes together, synthesizing ``text`` for ``seconds``."""
        for q in self._commands:
            q.put((text, seconds))
        self._barrier.wait(timeout=120)
        runs = [self._results.get(timeout=seconds + 120) for _ in self._procs]
        return sum(count / elapsed for count, elapsed in runs)
