#!/usr/bin/env python3
"""The throughput benchmark: orate vs the raw engine vs an espeak-ng | ffmpeg server.

One run, one server at a time, the same two texts (11 and 218 words), cache off,
history on (orate's default), load from ``wrk -t1`` (a Lua script POSTs the JSON
body) at c=1, 4 and 16, in wav and mp3:

- **raw engine**: libespeak-ng in this process (1 process p50 per request, CPU per
  request) and in 2 spawned processes at once (requests/s), measured before and
  after the servers; the mean of the two is the reference for the ratios;
- **orate**: ``orate serve --workers 2``;
- **peer**: a tiny stdlib ``ThreadingHTTPServer`` (this file, ``--peer-server``)
  that runs ``espeak-ng --stdout | ffmpeg`` per request and streams ffmpeg's output
  back chunked, as a subprocess-pipeline TTS server does.

Per server: CPU ms per request from /proc/<pid>/stat deltas (orate: main process /
engine workers; peer: server process / its reaped espeak-ng+ffmpeg children), RSS of
each process idle and after load, and the time to the first body byte of a 218-word
response (wav and mp3, hand-written client, c=1). The goal checks (``GOAL_*`` below)
follow the table (PASS/MISS).

``python benchmarks/throughput.py [--quick] [--runs 3]`` or
``python benchmarks/run.py --section throughput``. Needs ``wrk``; the peer also needs
``espeak-ng`` and ``ffmpeg`` (skipped with a note when missing).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import (
    HOST,
    SPEECH_PATH,
    TEXTS,
    WORKERS,
    BenchmarkError,
    cpu_seconds,
    descendants,
    free_port,
    load_cell,
    loop_factory,
    progress,
    running_server,
    speech_body,
    stop_server,
    wait_started,
)

FORMATS = ("wav", "mp3")
CONCURRENCY = (1, 4, 16)
ENGINE_VOICE = "en-us+f2"  # what "alloy" means
PEER_FFMPEG = {
    "wav": ["-f", "wav"],
    "mp3": ["-c:a", "libmp3lame", "-b:a", "48k", "-f", "mp3"],
}
LONG_FACTOR = 2.5  # 218-word cells run this many times longer
SERVER_ENV = {"ORATE_CACHE_ENABLED": "false", "ORATE_HISTORY": "true"}
GOAL_SHARE, GOAL_MP3_SHARE, GOAL_OVERHEAD_MS, GOAL_FIRST_MS, GOAL_RSS_MIB = (
    0.85,
    0.5,
    3.0,
    10.0,
    200.0,
)

WRK_LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = io.open(os.getenv("BENCH_BODY_FILE"), "rb"):read("*a")
statuses = {}
function response(status, headers, body)
  if status ~= 200 then statuses[status] = (statuses[status] or 0) + 1 end
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "WRKJSON {\\"requests\\":%d,\\"duration_us\\":%d,\\"bytes\\":%d,\\"p50_us\\":%d," ..
    "\\"p90_us\\":%d,\\"p99_us\\":%d,\\"connect\\":%d,\\"read\\":%d,\\"write\\":%d," ..
    "\\"status\\":%d,\\"timeout\\":%d}\\n",
    summary.requests, summary.duration, summary.bytes, latency:percentile(50),
    latency:percentile(90), latency:percentile(99), e.connect, e.read, e.write,
    e.status, e.timeout))
end
"""


# -- measurements -----------------------------------------------------------------


@dataclass
class WrkCell:
    requests: int
    seconds: float
    p50: float  # seconds
    p99: float
    errors: int
    cpu_main: float = math.nan  # CPU seconds during the cell
    cpu_children: float = math.nan

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds and self.requests else math.nan

    def cpu_ms(self) -> tuple[float, float]:
        if not self.requests:
            return math.nan, math.nan
        return 1e3 * self.cpu_main / self.requests, 1e3 * self.cpu_children / self.requests


@dataclass
class ProcMem:
    role: str
    pid: int
    rss_mib: float


@dataclass
class ServerResult:
    name: str
    cells: dict[tuple[str, str, int], WrkCell] = field(default_factory=dict)
    first_byte: dict[str, float] = field(default_factory=dict)  # 218-word fmt -> seconds
    idle: list[ProcMem] = field(default_factory=list)
    loaded: list[ProcMem] = field(default_factory=list)
    skipped: str = ""


@dataclass
class RawResult:
    p50: dict[str, float] = field(default_factory=dict)  # seconds, 1 process
    cpu_ms: dict[str, float] = field(default_factory=dict)
    pair_rps: dict[str, list[float]] = field(default_factory=dict)  # before, after servers


@dataclass
class RunResult:
    raw: RawResult
    orate: ServerResult
    peer: ServerResult
    load_before: tuple[float, float, float]
    load_after: tuple[float, float, float] = (math.nan,) * 3


def wrk(port: int, body: bytes, conc: int, seconds: float, script: Path) -> WrkCell:
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
        f.write(body)
    try:
        env = {**os.environ, "BENCH_BODY_FILE": f.name}
        cmd = [
            "wrk",
            "-t1",
            f"-c{conc}",
            f"-d{seconds:g}s",
            "--timeout",
            "60s",
            "-s",
            str(script),
            f"http://{HOST}:{port}{SPEECH_PATH}",
        ]
        out = subprocess.run(
            cmd, capture_output=True, text=True, env=env, check=False, timeout=seconds + 120
        )
    finally:
        os.unlink(f.name)
    m = re.search(r"WRKJSON (\{.*\})", out.stdout)
    if not m:
        raise BenchmarkError(f"wrk printed no result: {out.stdout[-500:]} {out.stderr[-500:]}")
    d = json.loads(m.group(1))
    errors = d["connect"] + d["read"] + d["write"] + d["status"] + d["timeout"]
    return WrkCell(
        d["requests"], d["duration_us"] / 1e6, d["p50_us"] / 1e6, d["p99_us"] / 1e6, errors
    )


def _stat_fields(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return []


def reaped_children_cpu(pid: int) -> float:
    """cutime + cstime: CPU of the children ``pid`` has waited for (the peer's pipelines)."""
    f = _stat_fields(pid)
    return (int(f[13]) + int(f[14])) / os.sysconf("SC_CLK_TCK") if f else 0.0


def role_of(pid: int, main: int) -> str:
    if pid == main:
        return "main"
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return "gone"
    if "resource_tracker" in cmd:
        return "resource tracker"
    if "orate.runtime.worker" in cmd or "spawn_main" in cmd:
        return "worker"
    return Path(cmd.split(" ", 1)[0]).name or "child"


def process_memory(main: int) -> list[ProcMem]:
    out = []
    for pid in descendants(main):
        with contextlib.suppress(OSError, ValueError, IndexError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    out.append(ProcMem(role_of(pid, main), pid, int(line.split()[1]) / 1024))
    return out


def wait_for_children(pid: int, limit: float = 20.0) -> None:
    """The peer's pipelines cut off by wrk's deadline still run for a moment: let them end."""
    deadline = time.perf_counter() + limit
    while len(descendants(pid)) > 1 and time.perf_counter() < deadline:
        time.sleep(0.05)


def measure_cells(
    server: ServerResult, port: int, main_pid: int, seconds: float, script: Path, peer: bool
) -> None:
    for label, text in TEXTS.items():
        for fmt in FORMATS:
            body = speech_body(text, fmt)
            for conc in CONCURRENCY:
                if peer:
                    wait_for_children(main_pid)
                m0 = cpu_seconds(main_pid)
                c0 = (
                    reaped_children_cpu(main_pid)
                    if peer
                    else sum(cpu_seconds(p) for p in descendants(main_pid)[1:])
                )
                # long responses at c=16 take seconds each: a longer cell keeps the
                # requests cut off at wrk's deadline a small share of the count
                cell = wrk(
                    port, body, conc, seconds * (LONG_FACTOR if label == "218 words" else 1), script
                )
                time.sleep(0.3)  # history writes after the last response
                cell.cpu_main = cpu_seconds(main_pid) - m0
                cell.cpu_children = (
                    reaped_children_cpu(main_pid)
                    if peer
                    else sum(cpu_seconds(p) for p in descendants(main_pid)[1:])
                ) - c0
                server.cells[(label, fmt, conc)] = cell
                progress(
                    f"{server.name} {label} {fmt} c={conc}: {cell.rps:.1f} req/s, "
                    f"p50 {cell.p50 * 1e3:.1f} ms, errors {cell.errors}, CPU ms/req "
                    "%.1f / %.1f" % cell.cpu_ms()
                )


def measure_first_byte(server: ServerResult, port: int, seconds: float) -> None:
    long_text = TEXTS["218 words"]

    async def go() -> None:
        for fmt in FORMATS:
            cell = await load_cell(port, speech_body(long_text, fmt), 1, seconds, 7)
            server.first_byte[fmt] = cell.p50_ttfb

    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        runner.run(go())


def warm(port: int, script: Path) -> None:
    for text in TEXTS.values():
        for fmt in FORMATS:
            wrk(port, speech_body(text, fmt), WORKERS * 2, 1, script)


def bench_orate(seconds: float, script: Path) -> ServerResult:
    result = ServerResult("orate")
    with tempfile.TemporaryFile() as log, running_server(log, SERVER_ENV) as (proc, port, _):
        warm(port, script)
        time.sleep(1.0)
        result.idle = process_memory(proc.pid)
        measure_first_byte(result, port, seconds)
        measure_cells(result, port, proc.pid, seconds, script, peer=False)
        result.loaded = process_memory(proc.pid)
    return result


# -- the peer server: espeak-ng | ffmpeg per request ------------------------------


def peer_server_main(port: int) -> None:
    """A minimal TTS server as peers build it: one pipeline of two processes per request."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def do_GET(self) -> None:  # health check
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            fmt = body.get("response_format", "mp3")
            espeak = subprocess.Popen(
                ["espeak-ng", "-v", ENGINE_VOICE, "--stdout", body["input"]],
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
            )
            ffmpeg = subprocess.Popen(
                ["ffmpeg", "-loglevel", "quiet", "-i", "-", *PEER_FFMPEG[fmt], "-"],
                stdin=espeak.stdout,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
            )
            assert espeak.stdout is not None and ffmpeg.stdout is not None
            espeak.stdout.close()
            try:
                self.send_response(200)
                self.send_header("Content-Type", "audio/mpeg" if fmt == "mp3" else "audio/wav")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                while data := ffmpeg.stdout.read1(65536):
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                self.wfile.write(b"0\r\n\r\n")
            except OSError:  # the client went away (wrk stops mid-response at its deadline)
                self.close_connection = True
                ffmpeg.kill()
                espeak.kill()
            finally:
                ffmpeg.stdout.close()
                ffmpeg.wait()
                espeak.wait()

    ThreadingHTTPServer.daemon_threads = True
    ThreadingHTTPServer.request_queue_size = 128
    ThreadingHTTPServer((HOST, port), Handler).serve_forever()


def bench_peer(seconds: float, script: Path) -> ServerResult:
    result = ServerResult("peer")
    missing = [t for t in ("espeak-ng", "ffmpeg") if shutil.which(t) is None]
    if missing:
        result.skipped = f"peer skipped: {', '.join(missing)} not installed"
        return result
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, __file__, "--peer-server", str(port)], start_new_session=True
    )
    try:
        wait_started(proc, port, "peer")
        warm(port, script)
        wait_for_children(proc.pid)
        result.idle = process_memory(proc.pid)
        measure_first_byte(result, port, seconds)
        measure_cells(result, port, proc.pid, seconds, script, peer=True)
        wait_for_children(proc.pid)
        result.loaded = process_memory(proc.pid)
    finally:
        stop_server(proc)
    return result


# -- the raw engine ------------------------------------------------------------------


def bench_raw_single(raw: RawResult, seconds: float) -> None:
    from raw_engine import load_engine, synthesize

    engine, params = load_engine()
    for label, text in TEXTS.items():
        for _ in range(3):
            synthesize(engine, params, text)
        walls = []
        cpu0 = time.process_time()
        end = time.perf_counter() + seconds
        while time.perf_counter() < end or len(walls) < 9:
            t = time.perf_counter()
            synthesize(engine, params, text)
            walls.append(time.perf_counter() - t)
        raw.cpu_ms[label] = 1e3 * (time.process_time() - cpu0) / len(walls)
        raw.p50[label] = statistics.median(walls)
        progress(
            f"raw {label}: p50 {raw.p50[label] * 1e3:.2f} ms, "
            f"{raw.cpu_ms[label]:.1f} ms CPU per request"
        )


def bench_raw_pair(pair: Any, raw: RawResult, seconds: float) -> None:
    for label, text in TEXTS.items():
        rate = pair.rate(text, seconds)
        raw.pair_rps.setdefault(label, []).append(rate)
        progress(f"raw {label}: {rate:.1f} req/s in {WORKERS} processes")


def one_run(seconds: float, script: Path) -> RunResult:
    from raw_engine import RawPair

    raw = RawResult()
    load0 = os.getloadavg()
    with RawPair() as pair:
        bench_raw_single(raw, seconds)
        bench_raw_pair(pair, raw, seconds)
        orate = bench_orate(seconds, script)
        bench_raw_pair(pair, raw, seconds)
        peer = bench_peer(seconds, script)
        bench_raw_pair(pair, raw, seconds)
    return RunResult(raw, orate, peer, load0, os.getloadavg())


# -- report -----------------------------------------------------------------------


def _med(values: list[float]) -> float:
    values = [v for v in values if not math.isnan(v)]
    return statistics.median(values) if values else math.nan


def _spread(values: list[float], fmt: str = "{:.1f}") -> str:
    """The median, and the range over runs when there is more than one."""
    values = [v for v in values if not math.isnan(v)]
    if not values:
        return "n/a"
    med = fmt.format(statistics.median(values))
    return (
        med if len(values) == 1 else f"{med} ({fmt.format(min(values))}–{fmt.format(max(values))})"
    )


def _pair(run: RunResult, label: str) -> float:
    return statistics.mean(run.raw.pair_rps[label])


def _mem_rows(server: ServerResult, state: str) -> str:
    procs = server.idle if state == "idle" else server.loaded
    total = sum(p.rss_mib for p in procs)
    parts = ", ".join(f"{p.role} {p.rss_mib:.0f}" for p in procs)
    return f"{total:.0f} MiB ({parts})"


def render(runs: list[RunResult], seconds: float, commit: str) -> str:
    lines = ["## Throughput", ""]
    lines.append(
        f"- code measured: {commit}; {len(runs)} run(s), each cell {seconds:g} s "
        f"(218 words: {seconds * LONG_FACTOR:g} s) of `wrk -t1` closed-loop load; "
        "cache off, history on; medians over runs with the range over runs in "
        "parentheses"
    )
    lines.append(
        "- load average (1, 5, 15 min) before / after each run: "
        + "; ".join(
            " ".join(f"{x:.2f}" for x in r.load_before)
            + " / "
            + " ".join(f"{x:.2f}" for x in r.load_after)
            for r in runs
        )
    )
    lines.append(
        "- raw engine 2-process rate: measured before orate, between orate and "
        "the peer, and after the peer; the ratios use the mean of the first two "
        "(the windows around orate's cells)"
    )
    lines.append("")
    cols = [(label, fmt) for label in TEXTS for fmt in FORMATS]
    lines.append("| metric | " + " | ".join(f"{t} {f}" for t, f in cols) + " |")
    lines.append("|---|" + "---:|" * len(cols))

    def row(name: str, fn: Any, fmt: str = "{:.1f}") -> None:
        lines.append(
            f"| {name} | "
            + " | ".join(_spread([fn(r, t, f) for r in runs], fmt) for t, f in cols)
            + " |"
        )

    def pair_near_orate(r: RunResult, t: str) -> float:
        return statistics.mean(r.raw.pair_rps[t][:2])

    row("raw engine p50, 1 process (ms)", lambda r, t, f: r.raw.p50[t] * 1e3, "{:.2f}")
    row("raw engine CPU ms per request", lambda r, t, f: r.raw.cpu_ms[t])
    row(f"raw engine req/s, {WORKERS} processes", lambda r, t, f: pair_near_orate(r, t))
    for name, get in (("orate", lambda r: r.orate), ("peer", lambda r: r.peer)):
        if get(runs[0]).skipped:
            lines.append(f"| **{name}** | {get(runs[0]).skipped} |" + " |" * (len(cols) - 1))
            continue
        row(
            f"**{name}** p50 latency c=1 (ms)",
            lambda r, t, f, g=get: g(r).cells[(t, f, 1)].p50 * 1e3,
            "{:.2f}",
        )
        for c in CONCURRENCY:
            row(f"{name} req/s c={c}", lambda r, t, f, c=c, g=get: g(r).cells[(t, f, c)].rps)
        row(
            f"{name} p50 latency c=16 (ms)",
            lambda r, t, f, g=get: g(r).cells[(t, f, 16)].p50 * 1e3,
            "{:.0f}",
        )
        main_name = "main" if name == "orate" else "server"
        child_name = "workers" if name == "orate" else "espeak-ng+ffmpeg"
        row(
            f"{name} CPU ms/request c=4, {main_name}",
            lambda r, t, f, g=get: g(r).cells[(t, f, 4)].cpu_ms()[0],
        )
        row(
            f"{name} CPU ms/request c=4, {child_name}",
            lambda r, t, f, g=get: g(r).cells[(t, f, 4)].cpu_ms()[1],
        )
        row(
            f"{name} errors (all cells)",
            lambda r, t, f, g=get: float(sum(g(r).cells[(t, f, c)].errors for c in CONCURRENCY)),
            "{:.0f}",
        )
    if not runs[0].peer.skipped:
        for c in CONCURRENCY:
            row(
                f"orate/peer req/s c={c}",
                lambda r, t, f, c=c: r.orate.cells[(t, f, c)].rps / r.peer.cells[(t, f, c)].rps,
                "{:.2f}×",
            )
    row(
        "orate/raw 2-process req/s c=4",
        lambda r, t, f: r.orate.cells[(t, f, 4)].rps / pair_near_orate(r, t),
        "{:.2f}×",
    )
    row(
        "orate CPU/request c=4 (main+workers) / raw engine CPU",
        lambda r, t, f: sum(r.orate.cells[(t, f, 4)].cpu_ms()) / r.raw.cpu_ms[t],
        "{:.2f}×",
    )
    lines.append("")
    lines.append(
        "First body byte, 218 words, c=1 (hand-written client), p50 ms: "
        + "; ".join(
            f"{name} {fmt} "
            + _spread(
                [getattr(r, name).first_byte.get(fmt, math.nan) * 1e3 for r in runs], "{:.2f}"
            )
            for name in ("orate", "peer")
            for fmt in FORMATS
        )
    )
    lines.append("")
    lines.append("RSS per process (last run):")
    last = runs[-1]
    for name in ("orate", "peer"):
        s = getattr(last, name)
        if not s.skipped:
            lines.append(
                f"- {name} idle after warm-up: {_mem_rows(s, 'idle')}; after the "
                f"load: {_mem_rows(s, 'loaded')}"
            )
    lines += ["", "Goal checks (medians over runs):", ""]
    lines += goal_checks(runs)
    return "\n".join(lines)


def goal_checks(runs: list[RunResult]) -> list[str]:
    def verdict(ok: bool) -> str:
        return "PASS" if ok else "MISS"

    out = []
    shares = {
        t: _med(
            [
                r.orate.cells[(t, "wav", 4)].rps / statistics.mean(r.raw.pair_rps[t][:2])
                for r in runs
            ]
        )
        for t in TEXTS
    }
    out.append(
        f"- {verdict(all(v >= GOAL_SHARE for v in shares.values()))} c=4 wav req/s ≥ "
        f"{GOAL_SHARE}× the raw engine's {WORKERS}-process rate: "
        + ", ".join(f"{t} {v:.2f}×" for t, v in shares.items())
    )
    mp3 = _med(
        [
            r.orate.cells[("218 words", "mp3", 4)].rps / r.orate.cells[("218 words", "wav", 4)].rps
            for r in runs
        ]
    )
    out.append(
        f"- {verdict(mp3 >= GOAL_MP3_SHARE)} 218 words c=4 mp3 ≥ {GOAL_MP3_SHARE}× c=4 "
        f"wav: {mp3:.2f}×"
    )
    over = _med(
        [(r.orate.cells[("11 words", "wav", 1)].p50 - r.raw.p50["11 words"]) * 1e3 for r in runs]
    )
    out.append(
        f"- {verdict(over <= GOAL_OVERHEAD_MS)} 11 words wav p50 (wrk c=1) − raw engine "
        f"p50 ≤ {GOAL_OVERHEAD_MS:g} ms: {over:+.2f} ms"
    )
    first = _med([r.orate.first_byte.get("mp3", math.nan) * 1e3 for r in runs])
    out.append(
        f"- {verdict(first < GOAL_FIRST_MS)} first audio 218 words mp3 < "
        f"{GOAL_FIRST_MS:g} ms: {first:.2f} ms (p50 time to first body byte)"
    )
    rss = _med([sum(p.rss_mib for p in r.orate.idle) for r in runs])
    out.append(
        f"- {verdict(rss <= GOAL_RSS_MIB)} idle RSS of orate's process tree ≤ "
        f"{GOAL_RSS_MIB:g} MiB: {rss:.0f} MiB"
    )
    return out


def git_commit() -> str:
    repo = Path(__file__).resolve().parents[1]
    head = subprocess.run(
        ["git", "-C", str(repo), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "-C", str(repo), "status", "--porcelain", "--", "src"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return f"git {head or 'unknown'}" + (" (uncommitted changes in src/)" if dirty else "")


def run_throughput(quick: bool = False, runs: int = 1) -> str:
    if shutil.which("wrk") is None:
        return "## Throughput\n\nskipped: `wrk` is not installed\n"
    seconds = 2.0 if quick else 4.0
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "post.lua"
        script.write_text(WRK_LUA)
        results = []
        for i in range(runs):
            progress(f"throughput run {i + 1} of {runs}")
            results.append(one_run(seconds, script))
    return render(results, seconds, git_commit())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 s cells instead of 4 s")
    parser.add_argument("--runs", type=int, default=1, help="whole runs; medians are shown")
    parser.add_argument("--peer-server", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.peer_server:
        peer_server_main(args.peer_server)
        return 0
    try:
        print(run_throughput(args.quick, args.runs))
    except BenchmarkError as exc:
        print(f"benchmark aborted: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
