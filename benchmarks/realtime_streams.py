#!/usr/bin/env python3
"""Real-time streams: N voice-agent clients at once, one job at a time per worker
against jobs interleaved a sentence at a time (``ORATE_WORKER_STREAMS``), one run.

Each client asks for the same four-sentence paragraph (pcm, hibari ``heart``, the
shipped defaults of ``throughput2.py``: cache off, history on, 2 workers) and reads
it at real-time speed, never more than 2 s ahead of playback. A client underruns when
a chunk arrives later than the audio before it lasts, counted from its first chunk
(20 ms of slack); a client refused (503: the engines' line was full) counts apart.
Reported per N and per setting: clients that underran, refused, the first chunk's
median and slowest, and the worst lateness. The servers run side by side (both
started once, idle while the other is measured) and take turns at each N, so load
from outside falls on both alike.

``python benchmarks/realtime_streams.py [--counts 16,32,64,100,128] [--settings 1,16]``
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import httpx

from harness import HOST, SPEECH_PATH, CpuClock, outside_load, progress, serving
from throughput2 import PARAGRAPH, SERVER_ENV, body, stream_client


async def _clients(port: int, n: int) -> list[tuple[bool, float, float]]:
    return await asyncio.gather(*(stream_client(port, "heart", PARAGRAPH) for _ in range(n)))


def summarize(n: int, results: list[tuple[bool, float, float]]) -> dict[str, float]:
    served = [r for r in results if not math.isnan(r[1])]
    firsts = sorted(r[1] for r in served)
    return {
        "n": n,
        "refused": n - len(served),
        "underran": sum(1 for ok, _, _ in served if not ok),
        "first_p50": statistics.median(firsts) if firsts else math.nan,
        "first_max": firsts[-1] if firsts else math.nan,
        "late": max((r[2] for r in served), default=math.nan),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--counts", default="16,32,64,100,128")
    parser.add_argument("--settings", default="1,16")
    args = parser.parse_args()
    counts = [int(c) for c in args.counts.split(",")]
    settings = [int(s) for s in args.settings.split(",")]
    notes: list[str] = []
    rows: dict[int, list[dict[str, float]]] = {k: [] for k in settings}
    clock = CpuClock.now()
    began = time.perf_counter()
    with contextlib.ExitStack() as stack:
        ports = {}
        for k in settings:
            env = {**SERVER_ENV, "ORATE_WORKER_STREAMS": str(k)}
            _, ports[k], _ = stack.enter_context(serving(env, notes, f"streams={k}"))
            warm = httpx.post(  # load hibari before anything is measured
                f"http://{HOST}:{ports[k]}{SPEECH_PATH}",
                content=body("heart", PARAGRAPH, "pcm"),
                headers={"Content-Type": "application/json"},
                timeout=120,
            )
            warm.raise_for_status()
        for n in counts:
            for k in settings:
                time.sleep(1.0)
                row = summarize(n, asyncio.run(_clients(ports[k], n)))
                rows[k].append(row)
                progress(f"streams={k} N={n}: {row}")
        seconds = time.perf_counter() - began
    print(render(rows, outside_load(clock, seconds)[0]))
    for note in notes:
        print("\n" + note)


def render(rows: dict[int, list[dict[str, float]]], load: str) -> str:
    out = [
        "| N | jobs a worker holds | underran | refused (503) | first chunk p50 s | "
        "first chunk max s | worst lateness s |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for i in range(len(next(iter(rows.values())))):
        for k, cells in rows.items():
            r = cells[i]
            out.append(
                f"| {r['n']} | {k} | {r['underran']} | {r['refused']} | "
                f"{r['first_p50']:.2f} | {r['first_max']:.2f} | {r['late']:.3f} |"
            )
    out.append(f"\n{load}")
    return "\n".join(out)


if __name__ == "__main__":
    main()
