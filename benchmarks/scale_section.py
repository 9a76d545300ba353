"""Scale section: engines as Ray actors vs the local pool, 1 vs 2 API replicas, and the
cost of limits held in PostgreSQL. Runnable alone:

    ORATE_TEST_POSTGRES_URL=postgresql://postgres:orate@127.0.0.1:5432/orate_test \\
        .venv/bin/python benchmarks/scale_section.py

One dev cluster (orate.devcluster: a PostgreSQL database, moto_server, a Ray head and
one Ray worker node of 2 CPUs, 3 replicas: two on Ray actors, one on the local pool of
2 worker processes) serves every cell, so the backends are measured on the same
machine in the same minute, in turns (Ray cell, local cell, …). The cache is off
(every request synthesizes); history is on (on a shared database a response ends
after its generation is written). Prints a Markdown report on stdout.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from harness import TEXTS, Cell, CpuClock, load_cell, outside_load, speech_body
from orate.devcluster import DevCluster, _session_members

FORMAT = "mp3"
SEQUENTIAL = 30  # requests at concurrency 1, per text and backend
SECONDS = 8.0  # per throughput cell


def cluster_cpu(cluster: DevCluster) -> float:
    """CPU seconds used so far by every process of the cluster but PostgreSQL (replicas,
    Ray head, node and actors, moto), read from /proc."""
    from harness import cpu_seconds

    total = 0.0
    for proc in cluster.procs.values():
        for pid in _session_members(proc.popen.pid):
            total += cpu_seconds(pid)
    return total


def row(label: str, backend: str, seq: Cell, c4: Cell) -> str:
    return (
        f"| {label} | {backend} | {seq.p50_latency * 1e3:.1f} | {seq.p50_ttfb * 1e3:.1f} "
        f"| {c4.rps:.1f} | {seq.errors + c4.errors} |"
    )


async def engines(cluster: DevCluster, out: list[str]) -> dict[str, dict[str, Cell]]:
    ports = {"ray": cluster.base_port, "local": cluster.base_port + 2}
    results: dict[str, dict[str, Cell]] = {}
    out += [
        "| text | backend | p50 latency ms | p50 first byte ms | req/s c=4 | errors |",
        "|---|---|---|---|---|---|",
    ]
    for label, text in TEXTS.items():
        body = speech_body(text, FORMAT)
        for port in ports.values():  # warm both
            await load_cell(port, body, 2, 0, 0, requests=6)
        seq: dict[str, list[Cell]] = {"ray": [], "local": []}
        for _ in range(3):  # in turns: the machine's speed drifts from second to second
            for backend, port in ports.items():
                seq[backend].append(await load_cell(port, body, 1, 0, 0, requests=SEQUENTIAL // 3))
        for backend, port in ports.items():
            samples = [s for c in seq[backend] for s in c.samples]
            merged = Cell(samples, sum(c.elapsed for c in seq[backend]))
            c4 = await load_cell(port, body, 4, SECONDS, 8)
            results.setdefault(label, {})[backend + " seq"] = merged
            results[label][backend + " c4"] = c4
            out.append(row(label, backend, merged, c4))
    return results


async def replicas(cluster: DevCluster, out: list[str]) -> None:
    body = speech_body(TEXTS["11 words"], FORMAT)
    out += [
        "",
        "| API replicas (Ray backend, 2 actors each) | req/s c=16 | p50 ms | "
        "CPU ms/request (whole cluster) | errors |",
        "|---|---|---|---|---|",
    ]
    for n in (1, 2):
        before = cluster_cpu(cluster)
        cells = await asyncio.gather(
            *(load_cell(cluster.base_port + i, body, 16 // n, SECONDS, 16) for i in range(n))
        )
        spent = cluster_cpu(cluster) - before
        samples = [s for c in cells for s in c.samples]
        merged = Cell(samples, max(c.elapsed for c in cells))
        per = spent / max(len(merged.good), 1) * 1e3
        out.append(
            f"| {n} | {merged.rps:.1f} | {merged.p50_latency * 1e3:.1f} | {per:.1f} "
            f"| {merged.errors} |"
        )


async def limits(cluster: DevCluster, out: list[str]) -> None:
    """One admit + release of a key with both limits, as a request does, against the
    cluster's PostgreSQL (in this process: the same statements the guard runs)."""
    from orate.library.db import make_engine
    from orate.library.shared import SharedLimits

    engine = make_engine(cluster.database_url or "")
    shared = SharedLimits(engine)
    enter, leave = [], []
    try:
        for _ in range(20):  # warm the connection pool
            await shared.enter("bench", 1_000_000, 100)
            await shared.leave("bench")
        for _ in range(400):
            t0 = time.perf_counter()
            refused = await shared.enter("bench", 1_000_000, 100)
            t1 = time.perf_counter()
            await shared.leave("bench")
            t2 = time.perf_counter()
            assert refused is None
            enter.append(t1 - t0)
            leave.append(t2 - t1)
    finally:
        await engine.dispose()
    both = [a + b for a, b in zip(enter, leave, strict=True)]
    q = statistics.quantiles(both, n=100)
    out += [
        "",
        "| shared limits (PostgreSQL, per request) | p50 ms | p99 ms |",
        "|---|---|---|",
        f"| admit (refill + take + count in, one upsert) | "
        f"{statistics.median(enter) * 1e3:.2f} | "
        f"{statistics.quantiles(enter, n=100)[98] * 1e3:.2f} |",
        f"| release (count out) | {statistics.median(leave) * 1e3:.2f} | "
        f"{statistics.quantiles(leave, n=100)[98] * 1e3:.2f} |",
        f"| both | {statistics.median(both) * 1e3:.2f} | {q[98] * 1e3:.2f} |",
    ]


async def run(cluster: DevCluster) -> list[str]:
    out = [
        f"## Scale ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
        f"{os.cpu_count()} cores, {FORMAT}, cache off)",
        "",
    ]
    limit_lines: list[str] = []
    await limits(cluster, limit_lines)  # first: before the load cells heat the machine
    results = await engines(cluster, out)
    out.append("")
    for label in TEXTS:
        ray, local = results[label]["ray seq"], results[label]["local seq"]
        added = (ray.p50_latency - local.p50_latency) * 1e3
        ratio = results[label]["ray c4"].rps / max(results[label]["local c4"].rps, 1e-9)
        out.append(
            f"- {label}: Ray adds {added:+.1f} ms p50 (goal ≤ 3: "
            f"{'PASS' if added <= 3 else 'MISS'}); c=4 throughput {ratio:.2f}x the "
            f"local pool (goal ≥ 0.8: {'PASS' if ratio >= 0.8 else 'MISS'})"
        )
    await replicas(cluster, out)
    out += limit_lines
    return out


def main() -> None:
    url = os.environ.get("ORATE_TEST_POSTGRES_URL")
    base = Path(tempfile.mkdtemp(prefix="orate-scale-bench-"))
    cluster = DevCluster(
        base,
        base_port=19280,
        ray_port=19369,
        replicas=2,
        ray_nodes=1,
        database_url=url,
        database_name="orate_scale_bench",
        extra_env={"ORATE_CACHE_ENABLED": "false", "ORATE_WORKERS": "2"},
    )
    print("starting the cluster…", file=sys.stderr)
    with cluster:
        cluster.start_replica(2, backend="local")
        cluster.wait_replica(2)
        clock, started = CpuClock.now(), time.monotonic()
        lines = asyncio.run(run(cluster))
        elapsed = time.monotonic() - started
    load, _share = outside_load(clock, elapsed)  # after the stop: our processes reaped
    print("\n".join(lines))
    print(
        f"\nWhile it ran, {load} (a shared 2-core VM: compare rows taken in turns, "
        "not with other runs)."
    )


if __name__ == "__main__":
    main()
