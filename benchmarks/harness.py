"""What every section of the benchmark shares: the texts, the HTTP/1.1 load generator,
starting and stopping ``orate serve``, reading CPU and memory of its processes, and
number formatting for the report.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import math
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

SHORT_TEXT = "The quick brown fox jumps over the lazy dog at dawn."  # 11 words
LONG_TEXT = (
    "Every morning before sunrise, the baker on Willow Street unlocks the back door of her "
    "small shop and switches on the old ovens. She has kept this routine for thirty years, "
    "and she still enjoys the quiet hour before the first customers arrive. The dough rested "
    "overnight in wooden trays, so she shapes the loaves by hand while the radio plays softly "
    "in the corner. Her grandfather taught her that good bread needs patience more than "
    "skill, and she repeats this lesson to every apprentice who joins her. By six o'clock the "
    "windows glow with warm light, and the smell of fresh rolls fills the empty street. "
    "Delivery drivers stop for coffee, nurses finishing the night shift buy pastries for "
    "their families, and children on their way to school press their noses against the "
    "glass. On rainy days the line stretches past the flower shop next door, but nobody seems "
    "to mind the wait. People talk about the weather, the football scores, and the new bridge "
    "that the city keeps promising to build. When the shelves are empty in the early "
    "afternoon, she cleans the counters, writes tomorrow's list, and walks home through the "
    "park. She says the best part of her job is not the baking itself, but the small "
    "conversations that fill the shop each day."
)
TEXTS = {"11 words": SHORT_TEXT, "218 words": LONG_TEXT}

WORKERS = 2
HOST = "127.0.0.1"
SPEECH_PATH = "/v1/audio/speech"
REQUEST_TIMEOUT = 60.0

# "alloy" is en-us with the f2 variant; the raw engine and the peer use the same voice
API_VOICE = "alloy"


# -- measurements ---------------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    """One request: seconds to the whole response and to its first body byte."""

    latency: float
    ttfb: float
    nbytes: int
    ok: bool
    status: int = 0  # HTTP status or exit code; 0 when the connection failed
    cache: str = ""  # the server's X-Orate-Cache header: off, miss, hit, shared


FAILED = Sample(0.0, 0.0, 0, ok=False)


class BenchmarkError(RuntimeError):
    """The benchmark cannot produce meaningful numbers (server broken, tool failing)."""


@dataclass
class Cell:
    """Every request of one measured cell and its wall time, for p50 and req/s."""

    samples: list[Sample]
    elapsed: float
    #: CPU seconds spent during the cell by the server's main process, its engine
    #: workers and the load generator, to show where the time of a request goes
    cpu: tuple[float, float, float] | None = None

    @property
    def good(self) -> list[Sample]:
        return [s for s in self.samples if s.ok]

    @property
    def errors(self) -> int:
        return len(self.samples) - len(self.good)

    def failures(self) -> str:
        """The failed requests by status, e.g. "500×12, connection×1"."""
        counts: dict[str, int] = {}
        for sample in self.samples:
            if not sample.ok:
                key = str(sample.status) if sample.status else "connection"
                counts[key] = counts.get(key, 0) + 1
        return ", ".join(f"{k}×{v}" for k, v in sorted(counts.items()))

    @property
    def p50_latency(self) -> float:
        return statistics.median(s.latency for s in self.good) if self.good else float("nan")

    @property
    def p50_ttfb(self) -> float:
        return statistics.median(s.ttfb for s in self.good) if self.good else float("nan")

    @property
    def rps(self) -> float:
        return len(self.good) / self.elapsed if self.elapsed > 0 else float("nan")


@dataclass(frozen=True)
class Memory:
    """Resident memory of the server process tree (main process and its children)."""

    rss_kib: int
    pss_kib: int | None
    processes: int


_t0 = time.perf_counter()


def progress(message: str) -> None:
    """Report progress on stderr so stdout stays a clean, pasteable report."""
    print(f"[{time.perf_counter() - _t0:5.1f}s] {message}", file=sys.stderr, flush=True)


# -- the HTTP/1.1 client ------------------------------------------------------------


async def read_head(reader: asyncio.StreamReader) -> tuple[int, dict[str, str]]:
    line = await reader.readline()
    if not line:
        raise ConnectionError("the server closed the connection")
    status = int(line.split()[1])
    headers: dict[str, str] = {}
    while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers


async def read_exactly(reader: asyncio.StreamReader, size: int) -> AsyncIterator[bytes]:
    """Yield ``size`` bytes as they arrive (not all at once, so the first byte is timed)."""
    while size:
        data = await reader.read(min(size, 1 << 16))
        if not data:
            raise ConnectionError("the server closed the connection mid-body")
        size -= len(data)
        yield data


async def read_body(reader: asyncio.StreamReader, headers: dict[str, str]) -> AsyncIterator[bytes]:
    if "chunked" not in headers.get("transfer-encoding", "").lower():
        async for data in read_exactly(reader, int(headers.get("content-length", "0"))):
            yield data
        return
    while True:
        size = int((await reader.readline()).split(b";")[0], 16)
        if size == 0:
            while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                pass  # trailers
            return
        async for data in read_exactly(reader, size):
            yield data
        await reader.readexactly(2)


class HttpClient:
    """One keep-alive HTTP/1.1 connection with a hand-written request and chunk parser.

    Why not httpx: its per-request Python overhead is of the order of the 3 ms
    latency goal, and on two cores the client's CPU is taken from the server.
    """

    def __init__(self, host: str, port: int, headers: str = "") -> None:
        self.host = host
        self.port = port
        #: extra header lines sent with every request, each ending in CRLF
        #: (e.g. "Authorization: Bearer …\r\n")
        self.headers = headers
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self._reader is None or self._writer is None or self._writer.is_closing():
            self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        return self._reader, self._writer

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(OSError):
                await self._writer.wait_closed()
        self._reader = self._writer = None

    async def post(self, path: str, body: bytes) -> Sample:
        """POST and read the whole response; time to first body byte is taken on arrival."""
        reader, writer = await self.connect()
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            f"{self.headers}\r\n"
        )
        start = time.perf_counter()
        writer.write(head.encode("ascii") + body)
        status, headers = await read_head(reader)
        first: float | None = None
        nbytes = 0
        async for data in read_body(reader, headers):
            if first is None:
                first = time.perf_counter()
            nbytes += len(data)
        end = time.perf_counter()
        if headers.get("connection", "").lower() == "close":
            await self.close()
        return Sample(
            end - start,
            (first or end) - start,
            nbytes,
            status == 200 and nbytes > 0,
            status,
            headers.get("x-orate-cache", ""),
        )

    async def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
    ) -> tuple[Sample, dict[str, str], bytes]:
        """Any request, keeping the response's headers and body (``post`` discards them).

        Errors are raised, not counted: the caller decides what a failure means.
        """
        reader, writer = await self.connect()
        head = f"{method} {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
        if body is not None:
            head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        head += f"{self.headers}\r\n"
        start = time.perf_counter()
        writer.write(head.encode("ascii") + (body or b""))
        status, headers = await read_head(reader)
        first: float | None = None
        data = bytearray()
        async for piece in read_body(reader, headers):
            if first is None:
                first = time.perf_counter()
            data += piece
        end = time.perf_counter()
        if headers.get("connection", "").lower() == "close":
            await self.close()
        sample = Sample(
            end - start,
            (first or end) - start,
            len(data),
            status == 200 and len(data) > 0,
            status,
            headers.get("x-orate-cache", ""),
        )
        return sample, headers, bytes(data)

    async def safe_post(self, path: str, body: bytes) -> Sample:
        """A failed request counts as an error and reconnects instead of ending the cell."""
        try:
            async with asyncio.timeout(REQUEST_TIMEOUT):
                return await self.post(path, body)
        except (OSError, ValueError, IndexError, asyncio.IncompleteReadError, TimeoutError):
            await self.close()
            return FAILED


def speech_body(text: str, fmt: str) -> bytes:
    return json.dumps(
        {"model": "tts-1", "voice": API_VOICE, "input": text, "response_format": fmt}
    ).encode()


async def load_cell(
    port: int,
    body: bytes | Callable[[], bytes],
    concurrency: int,
    seconds: float,
    min_requests: int,
    *,
    requests: int | None = None,
    path: str = SPEECH_PATH,
    headers: str = "",
) -> Cell:
    """Closed-loop load: ``concurrency`` connections, each sending its next request
    as soon as the previous one finished, until the time is up.

    ``body`` may be a function that makes each request's body (e.g. a text never
    sent before); ``requests`` sends exactly that many instead of running for a time;
    ``headers`` are extra header lines for every request (see ``HttpClient``).
    """
    clients = [HttpClient(HOST, port, headers) for _ in range(concurrency)]
    await asyncio.gather(*(c.connect() for c in clients))
    samples: list[Sample] = []
    make = body if callable(body) else lambda: body
    sent = 0
    start = time.perf_counter()
    deadline = start + seconds

    def more() -> bool:
        if requests is not None:
            return sent < requests
        return time.perf_counter() < deadline or len(samples) < min_requests

    async def drive(client: HttpClient) -> None:
        nonlocal sent
        while more():
            sent += 1
            samples.append(await client.safe_post(path, make()))

    try:
        await asyncio.gather(*(drive(c) for c in clients))
        elapsed = time.perf_counter() - start
    finally:
        await asyncio.gather(*(c.close() for c in clients))
    return Cell(samples, elapsed)


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def wait_started(proc: subprocess.Popen[bytes], port: int, what: str, limit: float = 20.0) -> None:
    """Wait until a server we started answers /healthz; BenchmarkError if it exits or
    does not answer within ``limit`` seconds."""
    deadline = time.perf_counter() + limit
    while not healthy(port):
        if time.perf_counter() > deadline or proc.poll() is not None:
            raise BenchmarkError(f"the {what} server did not start")
        time.sleep(0.05)


def healthy(port: int) -> bool:
    conn = http.client.HTTPConnection(HOST, port, timeout=1)
    try:
        conn.request("GET", "/healthz")
        return conn.getresponse().status == 200
    except OSError:
        return False
    finally:
        conn.close()


# -- the server and its processes ---------------------------------------------------


@contextlib.contextmanager
def running_server(
    log: IO[bytes],
    server_env: dict[str, str],
    *,
    workers: int = WORKERS,
) -> Iterator[tuple[subprocess.Popen[bytes], int, float]]:
    """Start ``orate serve`` and stop it again on every way out, errors included.

    It runs in its own session so the whole tree (workers, resource tracker) can
    be killed by group id, in an empty directory with only ``server_env`` of the
    ORATE_* variables, so a stray ``.env`` or environment setting cannot change
    what is measured, and with its data directory (history, stored audio) in
    that temporary directory so the run leaves nothing behind (unless
    ``server_env`` names another ORATE_DATA_DIR, which the caller then owns).
    """
    port = free_port()
    cwd = tempfile.mkdtemp(prefix="orate-bench-")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORATE_")}
    env.update({"ORATE_DATA_DIR": str(Path(cwd) / "data"), **server_env})
    cmd = [
        sys.executable,
        "-m",
        "orate.cli",
        "serve",
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--log-level",
        "warning",
    ]
    start = time.perf_counter()
    proc = subprocess.Popen(
        cmd, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        while not healthy(port):
            if proc.poll() is not None:
                raise BenchmarkError(f"the server exited with code {proc.returncode}")
            if time.perf_counter() - start > 60:
                raise BenchmarkError("the server did not answer /healthz within 60 s")
            time.sleep(0.02)
        yield proc, port, time.perf_counter() - start
    finally:
        stop_server(proc)
        shutil.rmtree(cwd, ignore_errors=True)


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM for a graceful shutdown, then SIGKILL to the server's process group."""
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=15)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=5)


@contextlib.contextmanager
def serving(
    server_env: dict[str, str], notes: list[str], name: str, *, workers: int = WORKERS
) -> Iterator[tuple[subprocess.Popen[bytes], int, float]]:
    """``running_server`` with its own log file; the log's last lines become a note."""
    with tempfile.TemporaryFile() as log:
        try:
            with running_server(log, server_env, workers=workers) as server:
                yield server
        finally:
            log.seek(0)
            tail = log.read().decode(errors="replace").strip().splitlines()[-25:]
            if tail:
                notes.append(f"{name} server log (last lines):\n    " + "\n    ".join(tail))


def _children(pid: int) -> list[int]:
    try:
        return [
            int(child)
            for task in Path(f"/proc/{pid}/task").iterdir()
            for child in (task / "children").read_text().split()
        ]
    except OSError:  # kernel without CONFIG_PROC_CHILDREN
        out = subprocess.run(
            ["ps", "--ppid", str(pid), "-o", "pid="], capture_output=True, text=True, check=False
        ).stdout
        return [int(x) for x in out.split()]


def _proc_kib(path: str, key: str) -> int | None:
    with contextlib.suppress(OSError):
        for line in Path(path).read_text().splitlines():
            if line.startswith(key):
                return int(line.split()[1])
    return None


def descendants(pid: int) -> list[int]:
    """``pid`` and every process below it."""
    pids, todo = [], [pid]
    while todo:
        p = todo.pop()
        pids.append(p)
        todo.extend(_children(p))
    return pids


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of one process, from /proc/<pid>/stat."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_snapshot(pid: int) -> tuple[float, float, float]:
    """CPU seconds so far: server main process, its children, this (client) process."""
    children = sum(cpu_seconds(p) for p in descendants(pid)[1:])
    return cpu_seconds(pid), children, time.process_time()


def settle(pid: int, quiet: float = 0.05, limit: float = 2.0) -> None:
    """Wait until the server's main process has used no CPU for ``quiet`` seconds.

    Work a response leaves behind (history rows and blobs, cache entries) runs
    in the main process after the response ended; waiting for it keeps it out
    of whatever is measured next. /proc counts CPU in ticks of 10 ms, so
    "no CPU" means no new tick; gives up after ``limit`` seconds.
    """
    deadline = time.perf_counter() + limit
    last = cpu_seconds(pid)
    while time.perf_counter() < deadline:
        time.sleep(quiet)
        now = cpu_seconds(pid)
        if now == last:
            return
        last = now


def tree_memory(pid: int) -> Memory:
    """RSS summed over the server and all its descendants, read from /proc.

    RSS counts shared library pages once per process; PSS splits them, so the
    sum of PSS is the fairer total and is shown next to it.
    """
    pids = descendants(pid)
    rss = sum(_proc_kib(f"/proc/{p}/status", "VmRSS:") or 0 for p in pids)
    pss_each = [_proc_kib(f"/proc/{p}/smaps_rollup", "Pss:") for p in pids]
    pss = None if None in pss_each else sum(x or 0 for x in pss_each)
    return Memory(rss, pss, len(pids))


@dataclass(frozen=True)
class CpuClock:
    """CPU seconds of the whole machine and of this benchmark, to detect outside load.

    ``os.times`` includes reaped children, and every process the benchmark starts
    (server, workers, pipelines) is reaped by it or by its own parent, so busy
    time not accounted for by the benchmark belongs to something else.
    """

    busy: float
    steal: float
    own: float

    @classmethod
    def now(cls) -> CpuClock:
        ticks = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        user, nice, system, _idle, _iowait, irq, softirq, steal = (ticks + [0] * 8)[:8]
        hz = os.sysconf("SC_CLK_TCK")
        t = os.times()
        return cls(
            (user + nice + system + irq + softirq) / hz,
            steal / hz,
            t.user + t.system + t.children_user + t.children_system,
        )

    def others_since(self, start: CpuClock) -> tuple[float, float]:
        """CPU seconds used by other processes and stolen by the hypervisor since ``start``."""
        return (
            max(0.0, (self.busy - start.busy) - (self.own - start.own)),
            self.steal - start.steal,
        )


def outside_load(start: CpuClock, seconds: float) -> tuple[str, float]:
    """What other processes and the hypervisor took of the CPUs since ``start``, over
    ``seconds`` of wall time: a sentence for the report, and the share (0–1) in all.

    Call it after every server the benchmark started has been stopped (their CPU
    reaches this process's children times only when they are reaped).
    """
    others, steal = CpuClock.now().others_since(start)
    capacity = seconds * len(os.sched_getaffinity(0))
    text = (
        f"{100 * others / capacity:.1f}% of the CPUs used by other processes, "
        f"{100 * steal / capacity:.1f}% stolen by the hypervisor"
    )
    return text, (others + steal) / capacity


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop]:
    """uvloop when installed (uvicorn[standard] brings it): less client CPU per request."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop
    return uvloop.new_event_loop


# -- formatting --------------------------------------------------------------------


def fmt_ms(seconds: float) -> str:
    if math.isnan(seconds):  # no successful request
        return "n/a"
    ms = seconds * 1e3
    return f"{ms:.2f}" if ms < 10 else f"{ms:.1f}" if ms < 100 else f"{ms:.0f}"


def fmt_num(x: float) -> str:
    return "n/a" if math.isnan(x) else f"{x:.1f}" if x < 1000 else f"{x:.0f}"


def fmt_ratio(ours: float, theirs: float) -> str:
    if not theirs or math.isnan(ours) or math.isnan(theirs):
        return "n/a"
    return f"{ours / theirs:.2f}×"


def fmt_cpu_split(cell: Cell) -> str:
    if cell.cpu is None or not cell.good:
        return "n/a"
    return " / ".join(f"{1e3 * x / len(cell.good):.1f}" for x in cell.cpu)


def fmt_mib(kib: int | None) -> str:
    return "n/a" if kib is None else f"{kib / 1024:.0f}"


def on_off_rows(on: Any, off: Any, diff: float) -> list[str]:
    """The table rows shared by every alternating on/off comparison (history, auth)."""
    return [
        f"| p50 latency, c=1 (ms) | {fmt_ms(on.p50)} | {fmt_ms(off.p50)} | {diff:+.2f} |",
        "| p50 of each window (ms) | "
        + " ".join(f"{w * 1e3:.2f}" for w in on.windows)
        + " | "
        + " ".join(f"{w * 1e3:.2f}" for w in off.windows)
        + " | |",
        f"| server main process CPU ms per request | {on.per_request_ms(0):.2f} | "
        f"{off.per_request_ms(0):.2f} | {on.per_request_ms(0) - off.per_request_ms(0):+.2f} |",
        f"| engine workers CPU ms per request | {on.per_request_ms(1):.2f} | "
        f"{off.per_request_ms(1):.2f} | {on.per_request_ms(1) - off.per_request_ms(1):+.2f} |",
        f"| requests | {len(on.latencies)} | {len(off.latencies)} | |",
    ]


@dataclass
class OnOffSide:
    """One server of an alternating on/off comparison: each request's latency, and CPU."""

    latencies: list[float] = field(default_factory=list)
    windows: list[float] = field(default_factory=list)  # p50 of each window
    cpu: tuple[float, float] = (0.0, 0.0)  # main process, engine workers (seconds)
    errors: int = 0

    @property
    def p50(self) -> float:
        return statistics.median(self.latencies) if self.latencies else math.nan

    def per_request_ms(self, i: int) -> float:
        return 1e3 * self.cpu[i] / len(self.latencies) if self.latencies else math.nan


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def env_text(env: dict[str, str]) -> str:
    return " ".join(f"{k}={v}" for k, v in env.items())
