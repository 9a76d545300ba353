#!/usr/bin/env python3
"""orate at a base git revision vs the working tree, side by side in one run.

Both servers are started the way the throughput benchmark starts orate (``orate serve
--workers 2``, cache off, history on), one at a time, in alternating rounds (base,
new, base, new, ...) so machine drift hits both. The base runs from a temporary
``git worktree`` of the revision (``PYTHONPATH`` points at its ``src``; the installed
dependencies are shared). Per cell (``wrk -t1``): requests/s, CPU ms per request of the
main process and of the engine workers; per server: idle RSS of the process tree.
Prints a Markdown table of medians with new/base ratios.

    python benchmarks/ab_revisions.py --base 1ca8d9a [--rounds 3] [--seconds 4]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import TEXTS, cpu_seconds, descendants, progress, running_server, speech_body
from throughput import LONG_FACTOR, SERVER_ENV, WRK_LUA, process_memory, warm, wrk

ROOT = Path(__file__).resolve().parent.parent
CELLS = [(label, fmt, 4) for label in TEXTS for fmt in ("wav", "mp3")]


@contextmanager
def base_tree(rev: str) -> Iterator[Path]:
    """A checkout of ``rev`` in a temporary git worktree, removed afterwards."""
    path = Path(tempfile.mkdtemp(prefix="orate-base-")) / "tree"
    subprocess.run(
        ["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q", str(path), rev], check=True
    )
    try:
        yield path
    finally:
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(path)], check=False
        )
        shutil.rmtree(path.parent, ignore_errors=True)


def one_server(src: Path | None, seconds: float, script: Path) -> dict[str, float]:
    """Measure every cell once on a server running the code in ``src`` (None: installed)."""
    old = os.environ.get("PYTHONPATH")
    if src is not None:
        os.environ["PYTHONPATH"] = str(src)
    out: dict[str, float] = {}
    try:
        with tempfile.TemporaryFile() as log, running_server(log, SERVER_ENV) as (proc, port, _):
            warm(port, script)
            time.sleep(1.0)
            out["idle RSS MiB"] = sum(m.rss_mib for m in process_memory(proc.pid))
            for label, fmt, conc in CELLS:
                body = speech_body(TEXTS[label], fmt)
                m0 = cpu_seconds(proc.pid)
                w0 = sum(cpu_seconds(p) for p in descendants(proc.pid)[1:])
                cell = wrk(
                    port, body, conc, seconds * (LONG_FACTOR if label == "218 words" else 1), script
                )
                time.sleep(0.3)
                n = max(cell.requests, 1)
                name = f"{label} {fmt} c={conc}"
                out[f"{name} req/s"] = cell.rps
                out[f"{name} main ms"] = 1e3 * (cpu_seconds(proc.pid) - m0) / n
                out[f"{name} workers ms"] = (
                    1e3 * (sum(cpu_seconds(p) for p in descendants(proc.pid)[1:]) - w0) / n
                )
    finally:
        if src is not None:
            if old is None:
                os.environ.pop("PYTHONPATH", None)
            else:
                os.environ["PYTHONPATH"] = old
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", required=True, help="git revision to compare against")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--only", help="cells whose name contains this (e.g. '218 words wav')")
    args = parser.parse_args()
    CELLS[:] = [
        (label, fmt, args.concurrency)
        for label, fmt, _ in CELLS
        if not args.only or args.only in f"{label} {fmt}"
    ]
    results: dict[str, dict[str, list[float]]] = {
        "base": defaultdict(list),
        "new": defaultdict(list),
    }
    with tempfile.TemporaryDirectory() as tmp, base_tree(args.base) as tree:
        script = Path(tmp) / "post.lua"
        script.write_text(WRK_LUA)
        for r in range(args.rounds):
            for side in ("base", "new"):
                progress(f"round {r + 1}/{args.rounds}: {side}")
                got = one_server(tree / "src" if side == "base" else None, args.seconds, script)
                for k, v in got.items():
                    results[side][k].append(v)
    head = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "-C", str(ROOT), "status", "--porcelain", "src"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    print(f"## orate {args.base} (base) vs {head}{' + uncommitted src' if dirty else ''} (new)\n")
    print(
        f"`python benchmarks/ab_revisions.py --base {args.base} --rounds {args.rounds} "
        f"--seconds {args.seconds:g}`; medians of {args.rounds} alternating rounds, "
        f"load average after: {os.getloadavg()[0]:.2f}\n"
    )
    print("| metric | base | new | new/base |")
    print("|---|---:|---:|---:|")
    for key in results["base"]:
        b, n = statistics.median(results["base"][key]), statistics.median(results["new"][key])
        print(f"| {key} | {b:.1f} | {n:.1f} | {n / b if b else float('nan'):.2f}× |")


if __name__ == "__main__":
    main()
