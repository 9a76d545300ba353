"""Section "security": what API keys cost a request, and a mixed-dialect load test.

1. Auth overhead: two servers up at once, both with the cache off (every request
   is synthesized): one with no keys (auth off), one whose data dir holds a key
   made beforehand with ``orate keys create`` (auth on; every request sends
   ``Authorization: Bearer``). 11-word wav misses one at a time in alternating
   windows, as the library section compares history on and off. Metrics are
   collected on both (they cannot be turned off), so this compares auth on
   against auth off, both with metrics.
2. Load test: 32 closed-loop clients for a fixed time against one server with
   the cache off, each client rotating through the dialects and formats: OpenAI
   mp3 / wav / pcm / opus, Hume ``/v0/tts/stream/json`` pcm, nano-gpt ``/api/tts``
   (JSON, then a GET of its ``audioUrl``). Every response is checked; errors,
   503s and 429s are counted.
"""

from __future__ import annotations

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
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from harness import (
    HOST,
    SPEECH_PATH,
    TEXTS,
    WORKERS,
    BenchmarkError,
    CpuClock,
    HttpClient,
    Memory,
    OnOffSide,
    cpu_snapshot,
    descendants,
    env_text,
    fmt_mib,
    fmt_ms,
    load_cell,
    on_off_rows,
    outside_load,
    progress,
    serving,
    settle,
    speech_body,
    tree_memory,
    verdict,
)

LABEL = "11 words"
GOAL_AUTH_MS = 0.5  # p50 difference, auth on − off
SERVER_ENV = {"ORATE_CACHE_ENABLED": "false"}
LOAD_CLIENTS = 32
DEFAULT_QUEUE = 64  # Settings.max_queue
HUME_VOICE = {"name": "alloy", "provider": "HUME_AI"}
NANOGPT_MODEL, NANOGPT_VOICE = "Kokoro-82m", "af_bella"


@dataclass(frozen=True)
class SecurityBudget:
    auth_window: float  # seconds per window of the auth on/off alternation
    auth_rounds: int  # windows per server
    load_seconds: float


FULL = SecurityBudget(auth_window=1.5, auth_rounds=8, load_seconds=20.0)
QUICK = SecurityBudget(auth_window=0.5, auth_rounds=3, load_seconds=8.0)


# -- 1. auth overhead -----------------------------------------------------------------


def create_key(data_dir: str) -> str:
    """``orate keys create --name bench`` in ``data_dir``; its secret (stdout)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORATE_")}
    env["ORATE_DATA_DIR"] = data_dir
    done = subprocess.run(
        [sys.executable, "-m", "orate.cli", "keys", "create", "--name", "bench"],
        env=env,
        cwd=data_dir,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        raise BenchmarkError(
            f"orate keys create failed (exit {done.returncode}): {done.stderr.strip()[-300:]}"
        )
    return lines[-1].strip()


async def _status(port: int, headers: str) -> int:
    client = HttpClient(HOST, port, headers)
    try:
        sample, _, _ = await client.request("POST", SPEECH_PATH, speech_body(TEXTS[LABEL], "wav"))
    finally:
        await client.close()
    return sample.status


def bench_auth(
    runner: asyncio.Runner,
    budget: SecurityBudget,
    extra_env: dict[str, str],
    results: SecurityResults,
    notes: list[str],
) -> None:
    body = speech_body(TEXTS[LABEL], "wav")
    data = tempfile.mkdtemp(prefix="orate-bench-keys-")
    try:
        secret = create_key(data)
        auth = f"Authorization: Bearer {secret}\r\n"
        envs = {
            "off": {**extra_env, **SERVER_ENV},
            "on": {**extra_env, **SERVER_ENV, "ORATE_DATA_DIR": data},
        }
        results.auth_env = {
            k: {n: v for n, v in e.items() if n != "ORATE_DATA_DIR"} for k, e in envs.items()
        }
        headers = {"off": "", "on": auth}
        sides = results.auth = {"off": OnOffSide(), "on": OnOffSide()}
        with (
            serving(envs["off"], notes, "security (auth off)") as (off, off_port, _),
            serving(envs["on"], notes, "security (auth on)") as (on, on_port, _),
        ):
            servers = {"off": (off, off_port), "on": (on, on_port)}
            progress(f"security: auth servers ready (off: port {off_port}, on: port {on_port})")
            # auth really is on: no key → 401, the key → 200; and really off on the other
            checks = {
                "on without a key": runner.run(_status(on_port, "")),
                "on with the key": runner.run(_status(on_port, auth)),
                "off without a key": runner.run(_status(off_port, "")),
            }
            results.auth_checks = checks
            if checks != {
                "on without a key": 401,
                "on with the key": 200,
                "off without a key": 200,
            }:
                raise BenchmarkError(f"security: auth is not set up as expected: {checks}")
            for name, (proc, port) in servers.items():
                warm = runner.run(
                    load_cell(port, body, 2, 0.0, 0, requests=6, headers=headers[name])
                )
                if warm.errors:
                    raise BenchmarkError(
                        f"security: warm-up auth {name} failed ({warm.failures()})"
                    )
                settle(proc.pid)
            start = {name: cpu_snapshot(proc.pid) for name, (proc, _) in servers.items()}
            for r in range(budget.auth_rounds):
                order = ("on", "off") if r % 2 == 0 else ("off", "on")
                for name in order:
                    proc, port = servers[name]
                    cell = runner.run(
                        load_cell(port, body, 1, budget.auth_window, 3, headers=headers[name])
                    )
                    side = sides[name]
                    side.latencies += [s.latency for s in cell.good]
                    side.windows.append(cell.p50_latency)
                    side.errors += cell.errors
                    settle(proc.pid)  # its history write and key charge are done
            for name, (proc, _) in servers.items():
                settle(proc.pid)
                end = cpu_snapshot(proc.pid)
                sides[name].cpu = (end[0] - start[name][0], end[1] - start[name][1])
                if sides[name].errors:
                    notes.append(f"security auth {name}: {sides[name].errors} requests failed")
                if proc.poll() is not None:
                    notes.append(f"the auth-{name} server exited early (code {proc.returncode})")
    finally:
        shutil.rmtree(data, ignore_errors=True)
    for name, side in sides.items():
        progress(
            f"security auth {name}: p50 {side.p50 * 1e3:.2f} ms over "
            f"{len(side.latencies)} requests; windows "
            + " ".join(f"{w * 1e3:.2f}" for w in side.windows)
        )


# -- 2. load test ---------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    latency: float
    ok: bool
    status: int  # HTTP status of the failing step; 0 when the connection failed
    why: str = ""


@dataclass(frozen=True)
class Kind:
    key: str
    dialect: str
    title: str
    call: Callable[[HttpClient, str], Awaitable[Outcome]]


_MAGIC = {"mp3": (b"ID3", b"\xff"), "wav": (b"RIFF",), "opus": (b"OggS",)}


def _openai(fmt: str) -> Callable[[HttpClient, str], Awaitable[Outcome]]:
    async def call(client: HttpClient, text: str) -> Outcome:
        sample, _, data = await client.request("POST", SPEECH_PATH, speech_body(text, fmt))
        if not sample.ok:
            return Outcome(sample.latency, False, sample.status, f"status {sample.status}")
        if fmt in _MAGIC and not data.startswith(_MAGIC[fmt]):
            return Outcome(sample.latency, False, sample.status, f"not {fmt}: {data[:8]!r}")
        if fmt == "pcm" and len(data) % 2:
            return Outcome(sample.latency, False, sample.status, "odd pcm length")
        return Outcome(sample.latency, True, sample.status)

    return call


async def _hume(client: HttpClient, text: str) -> Outcome:
    body = json.dumps(
        {
            "utterances": [{"text": text, "voice": HUME_VOICE}],
            "format": {"type": "pcm"},
            "instant_mode": True,
        }
    ).encode()
    sample, _, data = await client.request("POST", "/v0/tts/stream/json", body)
    if sample.status != 200:
        return Outcome(sample.latency, False, sample.status, f"status {sample.status}")
    messages = [json.loads(line) for line in data.splitlines() if line.strip()]
    audio = [m for m in messages if m.get("type") == "audio"]
    if not audio or audio[-1].get("is_last_chunk") is not True:
        return Outcome(
            sample.latency,
            False,
            sample.status,
            f"no complete audio ({[m.get('type') for m in messages][:5]})",
        )
    return Outcome(sample.latency, True, sample.status)


async def _nanogpt(client: HttpClient, text: str) -> Outcome:
    body = json.dumps(
        {"text": text, "model": NANOGPT_MODEL, "voice": NANOGPT_VOICE, "response_format": "mp3"}
    ).encode()
    first, _, data = await client.request("POST", "/api/tts", body)
    if first.status != 200:
        return Outcome(first.latency, False, first.status, f"POST status {first.status}")
    try:
        url = json.loads(data)["audioUrl"]
    except (ValueError, KeyError, TypeError):
        return Outcome(first.latency, False, first.status, f"no audioUrl: {data[:200]!r}")
    parts = urlsplit(url)
    if parts.port not in (None, client.port):
        return Outcome(first.latency, False, first.status, f"audioUrl elsewhere: {url}")
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    second, _, audio = await client.request("GET", path)
    latency = first.latency + second.latency
    if not second.ok or not audio.startswith(_MAGIC["mp3"]):
        return Outcome(latency, False, second.status, f"GET audioUrl status {second.status}")
    return Outcome(latency, True, second.status)


KINDS = (
    Kind("openai-mp3", "OpenAI", "`/v1/audio/speech` mp3", _openai("mp3")),
    Kind("openai-wav", "OpenAI", "`/v1/audio/speech` wav", _openai("wav")),
    Kind("openai-pcm", "OpenAI", "`/v1/audio/speech` pcm", _openai("pcm")),
    Kind("openai-opus", "OpenAI", "`/v1/audio/speech` opus", _openai("opus")),
    Kind("hume", "Hume", "`/v0/tts/stream/json` pcm", _hume),
    Kind("nanogpt", "nano-gpt", "`/api/tts` JSON + GET `audioUrl` (mp3)", _nanogpt),
)


async def _guarded(kind: Kind, client: HttpClient, text: str) -> Outcome:
    start = time.perf_counter()
    try:
        async with asyncio.timeout(60):
            return await kind.call(client, text)
    except (OSError, ValueError, IndexError, asyncio.IncompleteReadError, TimeoutError) as exc:
        await client.close()
        return Outcome(time.perf_counter() - start, False, 0, f"{type(exc).__name__}: {exc}")


async def mixed_load(
    port: int, text: str, clients: int, seconds: float, *, rounds: int | None = None
) -> tuple[dict[str, list[Outcome]], float]:
    """``clients`` connections, each sending its next request when the last one ended,
    rotating through ``KINDS`` (client i starts at kind i), for ``seconds`` or for
    ``rounds`` requests each."""
    conns = [HttpClient(HOST, port) for _ in range(clients)]
    await asyncio.gather(*(c.connect() for c in conns))
    outcomes: dict[str, list[Outcome]] = {k.key: [] for k in KINDS}
    start = time.perf_counter()
    deadline = start + seconds

    async def drive(i: int, client: HttpClient) -> None:
        n = 0
        while (n < rounds) if rounds is not None else time.perf_counter() < deadline:
            kind = KINDS[(i + n) % len(KINDS)]
            outcomes[kind.key].append(await _guarded(kind, client, text))
            n += 1

    try:
        await asyncio.gather(*(drive(i, c) for i, c in enumerate(conns)))
        elapsed = time.perf_counter() - start
    finally:
        await asyncio.gather(*(c.close() for c in conns))
    return outcomes, elapsed


def _rss_split(pid: int) -> tuple[int, int]:
    """RSS (KiB) of the server's main process and of everything below it."""

    def rss(p: int) -> int:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        except OSError:
            pass
        return 0

    pids = descendants(pid)
    return rss(pids[0]), sum(rss(p) for p in pids[1:])


def bench_load(
    runner: asyncio.Runner,
    budget: SecurityBudget,
    extra_env: dict[str, str],
    results: SecurityResults,
    notes: list[str],
) -> None:
    text = TEXTS[LABEL]
    env = {**extra_env, **SERVER_ENV}
    results.load_env = env
    with serving(env, notes, "security (load)") as (proc, port, _):
        progress(f"security: load server ready (pid {proc.pid}, port {port})")
        warm, _ = runner.run(mixed_load(port, text, WORKERS * len(KINDS), 0.0, rounds=1))
        failed = [o.why for v in warm.values() for o in v if not o.ok]
        if failed:
            raise BenchmarkError(f"security: load warm-up failed: {failed[:3]}")
        settle(proc.pid)
        results.memory_before = tree_memory(proc.pid)
        results.rss_before = _rss_split(proc.pid)
        before = cpu_snapshot(proc.pid)
        outcomes, elapsed = runner.run(mixed_load(port, text, LOAD_CLIENTS, budget.load_seconds))
        after = cpu_snapshot(proc.pid)
        results.memory_after = tree_memory(proc.pid)
        results.rss_after = _rss_split(proc.pid)
        results.load_cpu = (after[0] - before[0], after[1] - before[1], after[2] - before[2])
        results.outcomes, results.elapsed = outcomes, elapsed
        if proc.poll() is not None:
            notes.append(f"the load server exited early (code {proc.returncode})")
    for kind in KINDS:
        bad = [o for o in outcomes[kind.key] if not o.ok]
        if bad:
            whys: dict[str, int] = {}
            for o in bad:
                whys[o.why] = whys.get(o.why, 0) + 1
            notes.append(
                f"security load {kind.key}: {len(bad)} of {len(outcomes[kind.key])} "
                "failed: "
                + "; ".join(f"{w} ×{n}" for w, n in sorted(whys.items(), key=lambda x: -x[1])[:4])
            )
    total = sum(len(v) for v in outcomes.values())
    ok = sum(o.ok for v in outcomes.values() for o in v)
    progress(
        f"security load: {ok} of {total} ok in {elapsed:.1f} s "
        f"({ok / elapsed:.1f} req/s) with {LOAD_CLIENTS} clients"
    )


# -- the section ----------------------------------------------------------------------


@dataclass
class SecurityResults:
    auth: dict[str, OnOffSide] = field(default_factory=dict)
    auth_env: dict[str, dict[str, str]] = field(default_factory=dict)
    auth_checks: dict[str, int] = field(default_factory=dict)
    outcomes: dict[str, list[Outcome]] = field(default_factory=dict)
    elapsed: float = math.nan
    load_env: dict[str, str] = field(default_factory=dict)
    load_cpu: tuple[float, float, float] = (math.nan, math.nan, math.nan)
    memory_before: Memory | None = None
    memory_after: Memory | None = None
    rss_before: tuple[int, int] = (0, 0)
    rss_after: tuple[int, int] = (0, 0)
    load: str = "unknown"
    budget: SecurityBudget = FULL


def run_security(
    runner: asyncio.Runner, quick: bool, extra_env: dict[str, str], notes: list[str]
) -> SecurityResults:
    budget = QUICK if quick else FULL
    results = SecurityResults(budget=budget)
    clock, start = CpuClock.now(), time.perf_counter()
    bench_auth(runner, budget, extra_env, results, notes)
    bench_load(runner, budget, extra_env, results, notes)
    results.load, share = outside_load(clock, time.perf_counter() - start)
    if share > 0.05:
        notes.append(f"outside load during the security section: {results.load}")
    return results


# -- report ---------------------------------------------------------------------------


def _p99(values: list[float]) -> float:
    if len(values) < 2:
        return values[0] if values else math.nan
    return statistics.quantiles(values, n=100, method="inclusive")[98]


def render_security(r: SecurityResults) -> list[str]:
    lines = [
        "## Security: auth overhead and a mixed load test",
        "",
        f"During this section: {r.load}.",
        "",
    ]
    return lines + _render_auth(r) + _render_load(r)


def _render_auth(r: SecurityResults) -> list[str]:
    b = r.budget
    on, off = r.auth["on"], r.auth["off"]
    diff = (on.p50 - off.p50) * 1e3
    checks = ", ".join(f"{k} → {v}" for k, v in r.auth_checks.items())
    return [
        f"Auth overhead, {LABEL} wav misses, c=1: two servers up at once, both "
        f"`{env_text(r.auth_env['off'])}` (history on), one with no keys (auth off) and one "
        "whose data dir holds a key made with `orate keys create` (auth on; every request "
        f"sends `Authorization: Bearer`; checked first: {checks}). {b.auth_rounds} "
        f"alternating windows of {b.auth_window:g} s per server (on/off, then off/on, …; "
        "each server idle again before the other runs). Metrics are always collected, so "
        "both sides have them: this measures auth on − off (key lookup, cached for 2 s, and "
        "per-key rate and concurrency accounting; the key has no character quota, so no "
        "per-request charge is written), not metrics on − off. CPU is over all windows, "
        "including work that finishes after the response.",
        "",
        "| metric | auth on (key) | auth off (no keys) | on − off |",
        "|---|---:|---:|---:|",
        *on_off_rows(on, off, diff),
        "",
        f"- {verdict(diff < GOAL_AUTH_MS)} auth on − off, p50 latency of an {LABEL} wav "
        f"miss at c=1: {diff:+.2f} ms ({on.p50 * 1e3:.2f} − {off.p50 * 1e3:.2f}, measured "
        f"alternately; goal < {GOAL_AUTH_MS:g} ms)",
        "",
    ]


def _render_load(r: SecurityResults) -> list[str]:
    outcomes = r.outcomes
    every = [o for v in outcomes.values() for o in v]
    ok = [o for o in every if o.ok]
    statuses: dict[int, int] = {}
    for o in every:
        statuses[o.status] = statuses.get(o.status, 0) + 1
    errors = len(every) - len(ok)
    lines = [
        f"Load test: {LOAD_CLIENTS} closed-loop clients (keep-alive connections) for "
        f"{r.elapsed:.1f} s against one server with `{env_text(r.load_env)}` (history and "
        f"stored audio on, so nano-gpt's `audioUrl` works; `--workers {WORKERS}`, default "
        f"queue of {DEFAULT_QUEUE}), the {LABEL} text throughout. Each client rotates "
        "through the six request kinds below (client i starts at kind i), so all are in "
        "flight at once. A request counts as ok only if its response checks out (status, "
        "audio magic bytes, Hume's last chunk marked, the nano-gpt file fetched). "
        "nano-gpt latency is the POST plus the GET.",
        "",
        "| request kind | dialect | completed ok | errors | p50 latency (ms) | "
        "p99 latency (ms) | req/s |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for kind in KINDS:
        got = outcomes.get(kind.key, [])
        good = [o.latency for o in got if o.ok]
        lines.append(
            f"| {kind.title} | {kind.dialect} | {len(good)} | {len(got) - len(good)} "
            f"| {fmt_ms(statistics.median(good) if good else math.nan)} | "
            f"{fmt_ms(_p99(good))} | {len(good) / r.elapsed:.1f} |"
        )
    all_lat = [o.latency for o in ok]
    lines.append(
        f"| **all** | | {len(ok)} | {errors} | "
        f"{fmt_ms(statistics.median(all_lat) if all_lat else math.nan)} | "
        f"{fmt_ms(_p99(all_lat))} | {len(ok) / r.elapsed:.1f} |"
    )
    main_b, workers_b = r.rss_before
    main_a, workers_a = r.rss_after
    cpu = r.load_cpu
    n = max(len(ok), 1)

    def pss(m: Memory | None) -> str:
        return fmt_mib(m.pss_kib) if m is not None else "n/a"

    lines += [
        "",
        f"- throughput: {len(ok) / r.elapsed:.1f} requests/s completed ok "
        f"({len(ok)} in {r.elapsed:.1f} s)",
        f"- server RSS, main / workers and the rest (MiB): before {fmt_mib(main_b)} / "
        f"{fmt_mib(workers_b)} (PSS total {pss(r.memory_before)}), after {fmt_mib(main_a)} / "
        f"{fmt_mib(workers_a)} (PSS total {pss(r.memory_after)})",
        f"- CPU ms per request: server main {1e3 * cpu[0] / n:.2f}, workers "
        f"{1e3 * cpu[1] / n:.2f}, load generator {1e3 * cpu[2] / n:.2f}",
        "- statuses: "
        + ", ".join(f"{s or 'connection failed'} ×{c}" for s, c in sorted(statuses.items())),
        f"- {verdict(errors == 0)} errors: {errors} (goal 0); 503: {statuses.get(503, 0)}, "
        f"429: {statuses.get(429, 0)} (expected 0 with {LOAD_CLIENTS} clients and a queue "
        f"of {DEFAULT_QUEUE})",
        "",
    ]
    return lines
