#!/usr/bin/env python3
"""Benchmark orate against its own engine and against the usual CLI pipeline.

One run prints one table, so the numbers side by side come from the same
machine under the same conditions:

(a) the raw engine in this process (the floor: what synthesis alone costs),
    and the same engine in two processes at once (the ceiling for a server
    with two workers on two cores);
(b) the orate server end to end over loopback HTTP, measured by a hand-written
    HTTP/1.1 client in this process (a separate process from the server);
(c) the peer pipeline most TTS servers use: an ``espeak-ng`` subprocess piped
    into an ``ffmpeg`` subprocess per request.

Those three make the "core" section (the table and its goal checks). More
sections follow it, each with servers of its own: "library" (cache hit against
miss, and what recording a generation in the history costs; library_section.py),
"hume" (time to the first audio chunk in Hume's streaming dialect against the
OpenAI route; hume_section.py), "elevenlabs" (the same for ElevenLabs' stream route
and WebSocket, and what per-character alignment costs; elevenlabs_section.py),
"engines" (the pipeline's overhead around an ONNX engine, and the time to first byte
a gateway adds; engines_section.py) and
"security" (what API keys cost a request, and a mixed-dialect load test;
security_section.py) and "voices" (the real natural voices, hibari, Piper and
Kokoro, through orate against their own libraries, with an intelligibility
figure; voices_section.py). ``--section`` picks some of them.

Progress goes to stderr; the report goes to stdout so it can be pasted as is.
Run ``python benchmarks/run.py`` (about 6 minutes) or add ``--quick`` (under three).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from elevenlabs_section import render_elevenlabs, run_elevenlabs
from engines_section import render_engines, run_engines
from harness import (
    API_VOICE,
    HOST,
    SPEECH_PATH,
    TEXTS,
    WORKERS,
    BenchmarkError,
    Cell,
    CpuClock,
    HttpClient,
    Memory,
    Sample,
    cpu_snapshot,
    fmt_cpu_split,
    fmt_mib,
    fmt_ms,
    fmt_num,
    fmt_ratio,
    load_cell,
    loop_factory,
    outside_load,
    progress,
    running_server,
    speech_body,
    tree_memory,
)
from hume_section import render_hume, run_hume
from library_section import render_library, run_library
from raw_engine import ENGINE_VARIANT, ENGINE_VOICE, RawPair, load_engine, run_for, synthesize
from security_section import render_security, run_security
from voices_section import render_voices, run_voices
from wyoming_section import render_wyoming, run_wyoming

SECTIONS = (
    "core",
    "library",
    "hume",
    "elevenlabs",
    "engines",
    "security",
    "voices",
    "wyoming",
    "throughput",
)
FORMATS = ("wav", "mp3")
CONCURRENCY = (1, 4, 16)
PEER_CONCURRENCY = 4
PEER_ESPEAK = ["espeak-ng", "-v", f"{ENGINE_VOICE}+{ENGINE_VARIANT}", "--stdout"]
PEER_FFMPEG = {
    "wav": ["ffmpeg", "-loglevel", "error", "-i", "-", "-f", "wav", "-"],
    "mp3": [
        "ffmpeg",
        "-loglevel",
        "error",
        "-i",
        "-",
        "-c:a",
        "libmp3lame",
        "-b:a",
        "48k",
        "-f",
        "mp3",
        "-",
    ],
}

# The pre-render cache would answer every repeat of the same text from memory,
# so the server's numbers would measure a lookup instead of synthesis.
SERVER_ENV = {"ORATE_CACHE_ENABLED": "false"}

GOAL_OVERHEAD_MS = 3.0
GOAL_TTFB_MS = 10.0
GOAL_SHARE = 0.85


@dataclass(frozen=True)
class Budget:
    """Seconds spent per measurement; ``--quick`` shrinks every one of them."""

    raw_single: float  # one text, raw engine, one process
    raw_pair: float  # one text, raw engine, two processes
    server_cell: float  # one (text, format, concurrency) cell against the server
    peer_sequential: float  # one (text, format), peer pipeline one at a time
    peer_cell: float  # one (text, format), peer pipeline at PEER_CONCURRENCY
    share_window: float  # one window of the alternating server vs raw-pair comparison
    share_rounds: int  # windows of each kind per text
    min_requests: int  # floor for sequential cells so long texts still get a median


FULL = Budget(
    raw_single=2.0,
    raw_pair=4.0,
    server_cell=5.0,
    peer_sequential=3.0,
    peer_cell=4.0,
    share_window=1.5,
    share_rounds=4,
    min_requests=9,
)
QUICK = Budget(
    raw_single=0.6,
    raw_pair=1.2,
    server_cell=1.2,
    peer_sequential=0.8,
    peer_cell=1.2,
    share_window=0.8,
    share_rounds=2,
    min_requests=5,
)


@dataclass(frozen=True)
class RawResult:
    """The engine alone for one text: the floor for latency and throughput."""

    p50: float  # seconds per request, one process
    audio: float  # seconds of audio per request
    audio_per_cpu: float  # audio seconds per CPU second, one process
    pair_rps: float  # requests/s summed over two processes running at once


@dataclass
class Results:
    """Everything one run measured, keyed by text label, format and concurrency."""

    raw: dict[str, RawResult] = field(default_factory=dict)
    server: dict[tuple[str, str, int], Cell] = field(default_factory=dict)
    memory: dict[tuple[str, str], Memory] = field(default_factory=dict)
    idle_memory: Memory | None = None
    startup: float = float("nan")
    peer_seq: dict[tuple[str, str], Cell] = field(default_factory=dict)
    peer_conc: dict[tuple[str, str], Cell] = field(default_factory=dict)
    peer_skipped: str | None = None
    notes: list[str] = field(default_factory=list)
    outside_load: str = "unknown"
    #: p50 seconds of the server (short wav, c=1) and of the raw engine, taken alternately
    paired: tuple[float, float] = (float("nan"), float("nan"))
    #: per text: req/s of the server (wav, c=4) and of the raw pair, windows taken alternately
    share: dict[str, tuple[list[float], list[float]]] = field(default_factory=dict)


_t0 = time.perf_counter()


# -- (a) raw engine -------------------------------------------------------------------


def measure_raw_single(text: str, budget: Budget) -> tuple[float, float, float]:
    """Median wall time, audio length and audio seconds per CPU second, one process."""
    engine, params = load_engine()
    for _ in range(3):
        synthesize(engine, params, text)
    walls: list[float] = []
    audio = 0

    def step() -> None:
        nonlocal audio
        start = time.perf_counter()
        audio = synthesize(engine, params, text)
        walls.append(time.perf_counter() - start)

    cpu_start = time.process_time()
    count = run_for(budget.raw_single, budget.min_requests, step)
    cpu = time.process_time() - cpu_start
    seconds = audio / engine.sample_rate
    return statistics.median(walls), seconds, seconds * count / cpu


def bench_raw(budget: Budget, pair: RawPair, results: Results) -> None:
    for label, text in TEXTS.items():
        p50, audio, per_cpu = measure_raw_single(text, budget)
        pair_rps = pair.rate(text, budget.raw_pair)
        results.raw[label] = RawResult(p50, audio, per_cpu, pair_rps)
        progress(
            f"raw engine {label}: {p50 * 1e3:.1f} ms, {per_cpu:.0f}x realtime per CPU, "
            f"{pair_rps:.1f} req/s in {WORKERS} processes"
        )


async def warm_up(port: int) -> None:
    """Every worker renders every text and format once, so no cell pays first-use costs.

    A failing request here means the server is broken, not slow: stop rather
    than print a table of errors.
    """
    for label, text in TEXTS.items():
        for fmt in FORMATS:
            cell = await load_cell(port, speech_body(text, fmt), WORKERS * 2, 0.0, WORKERS * 4)
            if cell.errors:
                raise BenchmarkError(
                    f"warm-up requests for {label} {fmt} failed "
                    f"({cell.failures()}); the server log follows"
                )


async def paired_overhead(port: int, budget: Budget) -> tuple[float, float]:
    """p50 of the short wav request and of the raw engine, measured turn about.

    This machine's speed drifts by tens of percent from second to second (CPU
    frequency, neighbours on the host), which is as large as the 3 ms being
    checked; alternating one engine call here and one server request puts both
    medians under the same conditions. The engine runs in this process while
    the server is idle.
    """
    engine, params = load_engine()
    text = TEXTS[next(iter(TEXTS))]
    body = speech_body(text, "wav")
    client = HttpClient(HOST, port)
    await client.connect()
    served: list[float] = []
    raw: list[float] = []

    def engine_call() -> None:
        start = time.perf_counter()
        synthesize(engine, params, text)
        raw.append(time.perf_counter() - start)

    try:
        deadline = time.perf_counter() + budget.server_cell
        while time.perf_counter() < deadline or len(raw) < budget.min_requests:
            engine_call()
            sample = await client.safe_post(SPEECH_PATH, body)
            if sample.ok:
                served.append(sample.latency)
    finally:
        await client.close()
    return statistics.median(served) if served else float("nan"), statistics.median(raw)


def alternate_share(
    runner: asyncio.Runner, port: int, pair: RawPair, budget: Budget, text: str
) -> tuple[list[float], list[float]]:
    """Req/s of the server (wav, c=4) and of the raw pair, in alternating windows.

    Same reason as ``paired_overhead``: the machine's speed drifts, so the two
    rates are sampled turn about instead of minutes apart. Each side has the
    machine to itself during its window (the other is idle).
    """
    body = speech_body(text, "wav")
    served: list[float] = []
    raw: list[float] = []
    for _ in range(budget.share_rounds):
        raw.append(pair.rate(text, budget.share_window))
        served.append(runner.run(load_cell(port, body, 4, budget.share_window, 0)).rps)
    return served, raw


def _rates(values: list[float]) -> str:
    return " ".join(f"{v:.1f}" for v in values)


def bench_server(
    budget: Budget, pair: RawPair, server_env: dict[str, str], results: Results
) -> None:
    with tempfile.TemporaryFile() as log:
        try:
            with (
                running_server(log, server_env) as (proc, port, startup),
                asyncio.Runner(loop_factory=loop_factory()) as runner,
            ):
                results.startup = startup
                progress(f"server ready in {startup:.2f} s (pid {proc.pid}, port {port})")
                runner.run(warm_up(port))
                results.idle_memory = tree_memory(proc.pid)
                results.paired = runner.run(paired_overhead(port, budget))
                progress(
                    "interleaved 11-word wav: server p50 "
                    f"{results.paired[0] * 1e3:.2f} ms, engine "
                    f"{results.paired[1] * 1e3:.2f} ms"
                )
                for label, text in TEXTS.items():
                    for fmt in FORMATS:
                        _server_column(runner, proc.pid, port, budget, results, label, fmt, text)
                        results.memory[(label, fmt)] = tree_memory(proc.pid)
                for label, text in TEXTS.items():
                    served, raw = alternate_share(runner, port, pair, budget, text)
                    results.share[label] = served, raw
                    progress(
                        f"alternating {label} wav c=4: server {_rates(served)} req/s, "
                        f"raw pair {_rates(raw)} req/s"
                    )
                if proc.poll() is not None:
                    results.notes.append(f"the server exited early (code {proc.returncode})")
        finally:
            log.seek(0)
            tail = log.read().decode(errors="replace").strip().splitlines()[-25:]
            if tail:
                results.notes.append("server log (last lines):\n    " + "\n    ".join(tail))


def _server_column(
    runner: asyncio.Runner,
    pid: int,
    port: int,
    budget: Budget,
    results: Results,
    label: str,
    fmt: str,
    text: str,
) -> None:
    body = speech_body(text, fmt)
    for conc in CONCURRENCY:
        minimum = budget.min_requests if conc == 1 else 0
        before = cpu_snapshot(pid)
        cell = runner.run(load_cell(port, body, conc, budget.server_cell, minimum))
        after = cpu_snapshot(pid)
        cell.cpu = (after[0] - before[0], after[1] - before[1], after[2] - before[2])
        results.server[(label, fmt, conc)] = cell
        cached = sum(s.cache in ("hit", "shared") for s in cell.samples)
        if cached:
            results.notes.append(
                f"server {label} {fmt} c={conc}: {cached} of "
                f"{len(cell.samples)} responses came from the cache, "
                "not from synthesis"
            )
        if cell.errors:
            results.notes.append(
                f"server {label} {fmt} c={conc}: {cell.errors} of "
                f"{len(cell.samples)} requests failed ({cell.failures()})"
            )
        progress(
            f"server {label} {fmt} c={conc}: p50 {cell.p50_latency * 1e3:.1f} ms, "
            f"ttfb {cell.p50_ttfb * 1e3:.1f} ms, {cell.rps:.1f} req/s"
        )


# -- (c) the peer pipeline ------------------------------------------------------------


def peer_missing() -> str | None:
    missing = [tool for tool in ("espeak-ng", "ffmpeg") if shutil.which(tool) is None]
    if not missing:
        return None
    return (
        f"peer column skipped: {' and '.join(missing)} not found (apt-get install espeak-ng ffmpeg)"
    )


def peer_request(text: str, fmt: str) -> Sample:
    """``espeak-ng --stdout TEXT | ffmpeg … -`` without a shell, read to the end."""
    start = time.perf_counter()
    espeak = subprocess.Popen(
        [*PEER_ESPEAK, text], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
    )
    ffmpeg = subprocess.Popen(
        PEER_FFMPEG[fmt], stdin=espeak.stdout, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
    )
    assert espeak.stdout is not None and ffmpeg.stdout is not None
    espeak.stdout.close()  # ffmpeg holds the read end now; espeak gets SIGPIPE if it dies
    fd = ffmpeg.stdout.fileno()
    data = os.read(fd, 1 << 16)
    first = time.perf_counter()
    nbytes = len(data)
    while data:
        data = os.read(fd, 1 << 16)
        nbytes += len(data)
    ffmpeg.stdout.close()
    status = ffmpeg.wait() or espeak.wait()  # exit codes; espeak's only if ffmpeg's is 0
    end = time.perf_counter()
    return Sample(end - start, first - start, nbytes, status == 0 and nbytes > 0, status)


def peer_cell(text: str, fmt: str, concurrency: int, seconds: float, min_requests: int) -> Cell:
    """Closed-loop load with threads; the work happens in the subprocesses, not the GIL."""
    samples: list[Sample] = []
    start = time.perf_counter()
    deadline = start + seconds

    def drive() -> None:
        while time.perf_counter() < deadline or len(samples) < min_requests:
            samples.append(peer_request(text, fmt))

    threads = [threading.Thread(target=drive) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return Cell(samples, time.perf_counter() - start)


def bench_peer(budget: Budget, results: Results) -> None:
    results.peer_skipped = peer_missing()
    if results.peer_skipped:
        progress(results.peer_skipped)
        return
    for label, text in TEXTS.items():
        for fmt in FORMATS:
            peer_request(text, fmt)  # page the binaries in
            seq = peer_cell(text, fmt, 1, budget.peer_sequential, budget.min_requests)
            conc = peer_cell(text, fmt, PEER_CONCURRENCY, budget.peer_cell, 0)
            results.peer_seq[(label, fmt)] = seq
            results.peer_conc[(label, fmt)] = conc
            for name, cell in (("c=1", seq), (f"c={PEER_CONCURRENCY}", conc)):
                if cell.errors:
                    results.notes.append(
                        f"peer {label} {fmt} {name}: {cell.errors} of "
                        f"{len(cell.samples)} pipelines failed (exit codes "
                        f"{cell.failures()})"
                    )
            progress(
                f"peer {label} {fmt}: p50 {seq.p50_latency * 1e3:.1f} ms, "
                f"ttfb {seq.p50_ttfb * 1e3:.1f} ms, {conc.rps:.1f} req/s "
                f"at c={PEER_CONCURRENCY}"
            )


# -- report ---------------------------------------------------------------------------


def _tool_version(cmd: list[str], marker: str) -> str:
    """The word after ``marker`` in the tool's version banner, e.g. "1.51"."""
    if shutil.which(cmd[0]) is None:
        return "not installed"
    words = subprocess.run(cmd, capture_output=True, text=True, check=False).stdout.split()
    return words[words.index(marker) + 1] if marker in words[:-1] else "unknown"


def _git_state(repo: Path) -> str:
    """Return ' (git abc1234)', flagged when src/ has uncommitted changes; '' outside git.

    The server imports the working tree, so a dirty tree means the numbers
    belong to no commit.
    """

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(repo), *args], capture_output=True, text=True, check=False
        ).stdout.strip()

    if shutil.which("git") is None or not (repo / ".git").exists():
        return ""
    dirty = git("status", "--porcelain", "--", "src")
    return f" (git {git('rev-parse', '--short', 'HEAD')}" + (
        ", uncommitted changes in src/)" if dirty else ")"
    )


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _server_fact(server_env: dict[str, str], sections: list[str]) -> str:
    client = (
        "client: hand-written HTTP/1.1 over keep-alive loopback connections in the "
        f"benchmark process; one voice ({API_VOICE} = {ENGINE_VOICE}+{ENGINE_VARIANT}) "
        "everywhere"
    )
    if "core" not in sections:
        return (
            f"- servers: `orate serve --workers {WORKERS}` unless a section says "
            "otherwise, data dirs in temporary directories, settings given with each "
            f"section; {client}"
        )
    others = (
        "; the other sections start servers of their own, described there"
        if len(sections) > 1
        else ""
    )
    return (
        f"- server: `orate serve --workers {WORKERS}` with "
        + " ".join(f"{k}={v}" for k, v in server_env.items())
        + f", otherwise defaults (data dir in a temporary directory){others}; {client}"
    )


def _elsewhere(orate: Any) -> str:
    """A warning when ``import orate`` (in this process and in every server) does not
    load this checkout's src/, e.g. after a non-editable ``pip install``."""
    package = Path(orate.__file__).resolve().parent
    ours = Path(__file__).resolve().parents[1] / "src" / "orate"
    if package == ours:
        return ""
    return f" (WARNING: imported from {package.parent}, not from this checkout's src/)"


def machine_facts(quick: bool, server_env: dict[str, str], sections: list[str]) -> list[str]:
    import orate

    engine, _ = load_engine()
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return [
        f"- command: `{shlex.join(['python', *sys.argv])}`"
        + (" (quick: shorter cells, noisier)" if quick else ""),
        f"- date: {dt.datetime.now(dt.UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- machine: nproc {len(os.sched_getaffinity(0))}, {_cpu_model()}, "
        f"{platform.system()} {platform.release()} {platform.machine()}, load avg {load}",
        f"- software: Python {platform.python_version()}, orate {orate.__version__}"
        f"{_git_state(Path(orate.__file__).resolve().parents[2])}{_elsewhere(orate)}, "
        f"libespeak-ng {engine.version} (in-process, from espeakng-loader)",
        f"- peer: espeak-ng CLI {_tool_version(['espeak-ng', '--version'], 'text-to-speech:')}"
        f", ffmpeg {_tool_version(['ffmpeg', '-version'], 'version')} (Debian packages)",
        f"- sections: {', '.join(sections)}",
        _server_fact(server_env, sections),
    ]


Row = tuple[str, Callable[[str, str], str]]


def table_rows(r: Results) -> list[Row]:
    """The table's rows: a label and a function from (text, format) to the cell."""

    def srv(conc: int) -> Callable[[str, str], Cell]:
        return lambda label, fmt: r.server[(label, fmt, conc)]

    rows: list[Row] = [
        ("audio length (s)", lambda t, f: f"{r.raw[t].audio:.2f}"),
        ("**raw engine** p50 time per request, 1 process (ms)", lambda t, f: fmt_ms(r.raw[t].p50)),
        ("raw engine audio s per CPU s, 1 process", lambda t, f: fmt_num(r.raw[t].audio_per_cpu)),
        (f"raw engine req/s, {WORKERS} processes", lambda t, f: fmt_num(r.raw[t].pair_rps)),
        ("**orate** p50 latency, c=1 (ms)", lambda t, f: fmt_ms(srv(1)(t, f).p50_latency)),
        ("orate p50 time to first byte, c=1 (ms)", lambda t, f: fmt_ms(srv(1)(t, f).p50_ttfb)),
    ]
    rows += [
        (f"orate req/s, c={c}", lambda t, f, c=c: fmt_num(srv(c)(t, f).rps)) for c in CONCURRENCY
    ]
    rows += [
        (
            f"orate p50 latency, c={CONCURRENCY[-1]} (ms)",
            lambda t, f: fmt_ms(srv(CONCURRENCY[-1])(t, f).p50_latency),
        ),
        (
            "orate CPU ms per request at c=4: server main / workers / client",
            lambda t, f: fmt_cpu_split(srv(4)(t, f)),
        ),
        (
            "orate RSS after this column's load (MiB)",
            lambda t, f: fmt_mib(r.memory[(t, f)].rss_kib),
        ),
        (
            "orate PSS after this column's load (MiB)",
            lambda t, f: fmt_mib(r.memory[(t, f)].pss_kib),
        ),
    ]
    if r.peer_skipped:
        return [*rows, ("**peer** espeak-ng→ffmpeg", lambda t, f: "skipped")]
    seq, conc = r.peer_seq, r.peer_conc
    pc = PEER_CONCURRENCY
    return [
        *rows,
        (
            "**peer** espeak-ng→ffmpeg p50 latency, c=1 (ms)",
            lambda t, f: fmt_ms(seq[(t, f)].p50_latency),
        ),
        ("peer p50 time to first byte, c=1 (ms)", lambda t, f: fmt_ms(seq[(t, f)].p50_ttfb)),
        (f"peer req/s, c={pc}", lambda t, f: fmt_num(conc[(t, f)].rps)),
        (
            "**orate/peer** p50 latency (< 1: orate faster)",
            lambda t, f: fmt_ratio(srv(1)(t, f).p50_latency, seq[(t, f)].p50_latency),
        ),
        (
            "orate/peer p50 time to first byte",
            lambda t, f: fmt_ratio(srv(1)(t, f).p50_ttfb, seq[(t, f)].p50_ttfb),
        ),
        (
            f"orate/peer req/s, c={pc} (> 1: orate more)",
            lambda t, f: fmt_ratio(srv(pc)(t, f).rps, conc[(t, f)].rps),
        ),
    ]


def render_table(r: Results) -> list[str]:
    columns = [(label, fmt) for label in TEXTS for fmt in FORMATS]
    header = ["metric", *(f"{label} {fmt}" for label, fmt in columns)]
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join(["---", *(["---:"] * len(columns))]) + "|",
    ]
    for name, cell in table_rows(r):
        lines.append("| " + " | ".join([name, *(cell(t, f) for t, f in columns)]) + " |")
    return lines


def goal_checks(r: Results) -> list[str]:
    """The three targets orate was built to, each with PASS or MISS and its numbers."""
    short, long_ = list(TEXTS)
    served, raw = r.paired
    overhead = (served - raw) * 1e3
    ttfb = {fmt: r.server[(long_, fmt, 1)].p50_ttfb * 1e3 for fmt in FORMATS}
    medians = {
        t: (statistics.median(served), statistics.median(raw))
        for t, (served, raw) in r.share.items()
    }
    share = {t: served / raw for t, (served, raw) in medians.items()}

    def verdict(ok: bool) -> str:
        return "PASS" if ok else "MISS"

    return [
        f"- {verdict(overhead <= GOAL_OVERHEAD_MS)} {short} wav p50 latency minus raw engine "
        f"time: {overhead:.2f} ms ({served * 1e3:.2f} − {raw * 1e3:.2f}, measured "
        f"alternately; goal ≤ {GOAL_OVERHEAD_MS:g} ms)",
        f"- {verdict(all(v < GOAL_TTFB_MS for v in ttfb.values()))} {long_} p50 time to first "
        "byte: "
        + ", ".join(f"{fmt} {v:.2f} ms" for fmt, v in ttfb.items())
        + f" (goal < {GOAL_TTFB_MS:g} ms each)",
        f"- {verdict(all(v >= GOAL_SHARE for v in share.values()))} wav req/s at c=4 as a "
        f"share of the raw engine's {WORKERS}-process rate: "
        + ", ".join(
            f"{t} {100 * share[t]:.0f}% ({served:.1f} / {raw:.1f} req/s)"
            for t, (served, raw) in medians.items()
        )
        + f"; medians of {len(next(iter(r.share.values()))[0])} alternating windows each "
        f"(goal ≥ {100 * GOAL_SHARE:.0f}% each)",
    ]


def render_report(
    facts: list[str], r: Results, runtime: float, sections: list[str], more: list[str]
) -> str:
    """The report: facts, the core table and goal checks, the other sections' lines
    (``more``), notes."""
    memory = ""
    if r.idle_memory is not None:
        m = r.idle_memory
        memory = (
            f"; {m.processes} processes (main, {WORKERS} workers, resource tracker), "
            f"RSS {fmt_mib(m.rss_kib)} MiB / PSS {fmt_mib(m.pss_kib)} MiB idle after warm-up"
        )
    lines = ["# orate benchmark", "", *facts]
    if "core" in sections:
        lines.append(f"- server start to /healthz: {r.startup:.2f} s{memory}")
    lines += [f"- during the run: {r.outside_load}", ""]
    if "core" in sections:
        lines += [*render_table(r), "", "Goal checks:", "", *goal_checks(r), ""]
        if r.peer_skipped:
            lines += [r.peer_skipped, ""]
    lines += more
    if r.notes:
        lines += ["Notes:", *(f"- {n}" for n in r.notes), ""]
    lines.append(f"Total runtime {runtime:.0f} s.")
    return "\n".join(lines)


# -- main -----------------------------------------------------------------------------


def _note_outside_load(results: Results, start: CpuClock, runtime: float) -> None:
    """Say so when other processes or the hypervisor took a noticeable share of the CPUs."""
    results.outside_load, share = outside_load(start, runtime)
    if share > 0.05:
        results.notes.append(
            f"outside load during the run: {results.outside_load}; the "
            "numbers are lower and noisier than on an idle machine"
        )


def _note_drift(results: Results) -> None:
    """Say how much the machine's own speed moved: the same raw-engine measurement,
    repeated during the run, bounds how far apart two rows of the table can be
    trusted."""
    for label, (_, windows) in results.share.items():
        rates = [results.raw[label].pair_rps, *windows]
        if max(rates) > 1.2 * min(rates):
            results.notes.append(
                f"machine speed drift: the raw {WORKERS}-process rate for {label} ranged "
                f"{min(rates):.1f}–{max(rates):.1f} req/s over this run (same work each "
                "time); compare rows measured at different times with that in mind"
            )


def _env_pair(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key.startswith("ORATE_"):
        raise argparse.ArgumentTypeError(f"expected ORATE_NAME=value, got {text!r}")
    return key, value


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--server-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        type=_env_pair,
        help="extra environment for every server, e.g. ORATE_STORE_AUDIO=false "
        "or ORATE_CACHE_ENABLED=true (repeatable); the sections after core "
        "override the settings they measure",
    )
    parser.add_argument(
        "--quick", action="store_true", help="shorter cells (under a minute per section, noisier)"
    )
    parser.add_argument(
        "--section",
        type=_sections,
        default=list(SECTIONS),
        metavar=",".join(SECTIONS),
        help="which sections to run, comma-separated (default: all): core = "
        "the table and goal checks, library = cache hit/miss and history "
        "cost, hume = Hume time to first audio, elevenlabs = ElevenLabs "
        "time to first audio and alignment cost, engines = overhead around "
        "an ONNX engine and the gateway's time to first byte, security = "
        "auth overhead and a mixed-dialect load test, voices = real natural voices "
        "against their libraries, wyoming = Wyoming "
        "first audio vs OpenAI and vs wyoming-piper, throughput = the "
        "wrk benchmark: orate vs raw engine vs an espeak-ng|ffmpeg server "
        "(throughput.py)",
    )
    parser.add_argument(
        "--piper-python",
        help="wyoming section: the Python that runs "
        "wyoming-piper (default: ORATE_BENCH_PIPER_PYTHON or this one)",
    )
    return parser.parse_args(argv)


def _sections(text: str) -> list[str]:
    wanted = {s.strip() for s in text.split(",") if s.strip()}
    unknown = wanted - set(SECTIONS)
    if unknown or not wanted:
        raise argparse.ArgumentTypeError(f"sections are {', '.join(SECTIONS)}; got {text!r}")
    return [s for s in SECTIONS if s in wanted]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    budget = QUICK if args.quick else FULL
    sections: list[str] = args.section
    assert [len(t.split()) for t in TEXTS.values()] == [11, 218], "texts changed length"
    start = time.perf_counter()
    extra_env = dict(args.server_env)
    server_env = {**SERVER_ENV, **extra_env}
    facts = machine_facts(args.quick, server_env, sections)
    results = Results()
    more: list[str] = []
    clock = CpuClock.now()
    try:
        if "core" in sections:
            with RawPair() as pair:
                bench_raw(budget, pair, results)
                bench_server(budget, pair, server_env, results)
            bench_peer(budget, results)
        if "library" in sections:
            with asyncio.Runner(loop_factory=loop_factory()) as runner:
                library = run_library(runner, args.quick, extra_env, results.notes)
            more += render_library(library, args.quick)
        if "hume" in sections:
            with asyncio.Runner(loop_factory=loop_factory()) as runner:
                hume = run_hume(runner, args.quick, extra_env, results.notes)
            more += render_hume(hume)
        if "elevenlabs" in sections:
            with asyncio.Runner(loop_factory=loop_factory()) as runner:
                eleven = run_elevenlabs(runner, args.quick, extra_env, results.notes)
            more += render_elevenlabs(eleven)
        if "engines" in sections:
            with asyncio.Runner(loop_factory=loop_factory()) as runner:
                engines = run_engines(runner, args.quick, extra_env, results.notes)
            more += render_engines(engines)
        if "security" in sections:
            with asyncio.Runner(loop_factory=loop_factory()) as runner:
                security = run_security(runner, args.quick, extra_env, results.notes)
            more += render_security(security)
        if "wyoming" in sections:
            with asyncio.Runner(loop_factory=loop_factory()) as runner:
                wyoming = run_wyoming(
                    runner, args.quick, extra_env, results.notes, args.piper_python
                )
            more += render_wyoming(wyoming)
        if "voices" in sections:
            with asyncio.Runner(loop_factory=loop_factory()) as runner:
                voices = run_voices(runner, args.quick, extra_env, results.notes)
            more += render_voices(voices)
        if "throughput" in sections:
            from throughput import run_throughput  # its own section: loaded only when asked

            more += [run_throughput(args.quick), ""]
    except BenchmarkError as exc:
        print(f"benchmark aborted: {exc}", *results.notes, sep="\n", file=sys.stderr)
        return 1
    runtime = time.perf_counter() - start
    _note_outside_load(results, clock, runtime)
    _note_drift(results)
    print(render_report(facts, results, runtime, sections, more))
    return 0


if __name__ == "__main__":
    sys.exit(main())
