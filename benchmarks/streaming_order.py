"""The timings the functional tests no longer assert, measured here instead.

The tests check order with the server's own counters (the first audio arrives while the
synthesis is still running; a refused request never reaches an engine; a closed pipe
stops ``orate say``); how *soon* each of those happens is a speed figure, which depends
on the machine and its load, so it is reported here, each beside a baseline from the
same run:

1. Long text streamed, OpenAI route, ``response_format`` wav: the first body byte and the
   last one, and their ratio (the tests used to require first < last / 4), for espeak-ng
   (60 sentences) and hibari (15 sentences, pcm).
2. A request over ``ORATE_MAX_REQUEST_WORK`` (Hume, 5 x 4,990 characters, 5 generations):
   time to its 413, beside a ``/healthz`` round trip (the tests used to require < 5 s).
3. ``orate say`` of 20,000 characters into a pipe closed after 4 bytes: time to exit,
   beside speaking the whole text to /dev/null (the tests used to require < 30 s).

Run: ``python benchmarks/streaming_order.py [--runs N]``; prints a Markdown table.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

import httpx

from harness import serving

LONG = " ".join(f"Sentence number {i} tells a little more of the story." for i in range(60))
NATURAL = " ".join(
    f"This is sentence number {n} of a long story about the sea." for n in range(1, 16)
)
PROSE = (
    "The quick brown fox jumps over the lazy dog. Please call me back tomorrow morning. "
    "The weather is cold and windy today. She sells sea shells by the sea shore. "
)


def prose(chars: int) -> str:
    return (PROSE * (chars // len(PROSE) + 1))[:chars].rsplit(" ", 1)[0] + "."


def stream_times(url: str, body: dict) -> tuple[float, float]:
    """Seconds to the first body byte and to the last one of one streamed response."""
    start = time.perf_counter()
    first = None
    with httpx.stream("POST", f"{url}/v1/audio/speech", json=body, timeout=300) as r:
        r.raise_for_status()
        for chunk in r.iter_raw():
            if chunk and first is None:
                first = time.perf_counter() - start
    assert first is not None
    return first, time.perf_counter() - start


def timed(call: Callable[[], object]) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def say_times(text: str) -> tuple[float, float]:
    """Seconds until ``orate say`` exits after its reader closes the pipe, and to speak
    the whole text into /dev/null."""
    cmd = [sys.executable, "-m", "orate.cli", "say", "-", "-o", "-", "--format", "wav"]
    proc = subprocess.Popen(
        cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
    )
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(text.encode())
    proc.stdin.close()
    proc.stdout.read(4)
    start = time.perf_counter()
    proc.stdout.close()
    proc.wait(300)
    stopped = time.perf_counter() - start
    with open(os.devnull, "wb") as sink:
        whole = timed(lambda: subprocess.run(cmd, input=text.encode(), stdout=sink, check=True))
    return stopped, whole


def median_ms(values: list[float]) -> str:
    return f"{statistics.median(values) * 1000:.0f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    runs = parser.parse_args().runs
    notes: list[str] = []
    rows = ["| measured | median | baseline | median | ratio |", "|---|---|---|---|---|"]
    env = {"ORATE_CACHE_ENABLED": "false"}
    with serving(env, notes, "streaming-order") as (_, port, _):
        url = f"http://127.0.0.1:{port}"
        for name, body in (
            (
                "espeak-ng, 60 sentences, wav",
                {"model": "espeak-ng", "voice": "alloy", "input": LONG, "response_format": "wav"},
            ),
            (
                "hibari, 15 sentences, pcm",
                {"model": "hibari", "voice": "heart", "input": NATURAL, "response_format": "pcm"},
            ),
        ):
            for n in range(2):  # each worker loads the engine once (sequential requests alternate)
                stream_times(url, {**body, "input": f"Warm up {n}."})
            pairs = [stream_times(url, body) for _ in range(runs)]
            first = [p[0] for p in pairs]
            last = [p[1] for p in pairs]
            ratio = statistics.median(f / t for f, t in pairs)
            rows.append(
                f"| {name}: first audio byte | {median_ms(first)} | last byte | "
                f"{median_ms(last)} | {ratio:.3f} |"
            )
        attack = {
            "utterances": [{"text": prose(4990), "voice": {"name": "alloy"}}] * 5,
            "num_generations": 5,
            "format": {"type": "wav"},
        }

        def refuse() -> None:
            assert httpx.post(f"{url}/v0/tts", json=attack, timeout=60).status_code == 413

        refusals = [timed(refuse) for _ in range(runs)]
        health = [timed(lambda: httpx.get(f"{url}/healthz", timeout=30)) for _ in range(runs)]
        rows.append(
            f"| 413 for 5 x 4,990 characters x 5 | {median_ms(refusals)} | /healthz | "
            f"{median_ms(health)} | {statistics.median(refusals) / statistics.median(health):.1f} |"
        )
    words = "the quick brown fox jumps over lazy dog weather is cold and windy today".split()
    text = " ".join(words[i % len(words)] for i in range(4000))[:20000]
    pairs = [say_times(text) for _ in range(max(1, runs // 2))]
    stopped = [p[0] for p in pairs]
    whole = [p[1] for p in pairs]
    rows.append(
        f"| `orate say` exit after its pipe closed | {median_ms(stopped)} | the whole text | "
        f"{median_ms(whole)} | {statistics.median(stopped) / statistics.median(whole):.3f} |"
    )
    print("\n".join(rows))
    for note in notes:
        print(f"\n{note}", file=sys.stderr)


if __name__ == "__main__":
    main()
