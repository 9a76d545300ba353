#!/usr/bin/env python3
"""The process tree's memory with hibari and Piper joe loaded, base revision vs this tree.

``orate serve --workers 2`` (throughput2's settings: cache off, history on, every
vendor id on the natural engine) from a temporary ``git worktree`` of ``--base`` and
from this tree, one server at a time, in alternating rounds. Per server: the tree's
RSS and PSS idle, after one request on ``heart`` and one on ``joe`` ("loaded"), then
under load: c=1 (p50 latency; a free core, so joe runs on its wide session) and c=4
(req/s; joe on its one-thread sessions in both workers at once) on heart and joe,
11 words and three sentences; the peak of both sums sampled every 100 ms over the
whole server run, and what the tree holds afterwards. Medians over rounds, new/base.

RSS counts a page in every process that maps it; PSS divides a shared page among
the processes that map it, so it is the sum that shows weights shared between
workers (the harness's ``tree_memory``). Servers listen on 127.0.0.1, ports
``--ports`` (a range, e.g. 18600-18699).

    python benchmarks/serve_memory.py --base 7be900b [--rounds 3] [--seconds 4]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness
from ab_revisions import base_tree
from harness import load_cell, progress, running_server, tree_memory
from throughput2 import SERVER_ENV, TEXTS, body

ROOT = Path(__file__).resolve().parent.parent
VOICES = ("heart", "joe")


class Sampler:
    """The tree's RSS and PSS sums every 100 ms in a thread; the highest of each."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak_rss = self.peak_pss = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            m = tree_memory(self.pid)
            self.peak_rss = max(self.peak_rss, m.rss_kib)
            self.peak_pss = max(self.peak_pss, m.pss_kib or 0)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def one_server(src: Path, seconds: float) -> dict[str, float]:
    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = str(src)
    out: dict[str, float] = {}
    runner = asyncio.Runner()
    try:
        with tempfile.TemporaryFile() as log, running_server(log, SERVER_ENV) as (proc, port, _):
            sampler = Sampler(proc.pid)
            time.sleep(1.0)
            m = tree_memory(proc.pid)
            out["idle RSS"], out["idle PSS"] = m.rss_kib / 1024, (m.pss_kib or 0) / 1024
            for voice in VOICES:
                runner.run(load_cell(port, body(voice, TEXTS["11 words"]), 1, 0.1, 1))
            time.sleep(0.5)
            m = tree_memory(proc.pid)
            out["loaded RSS"], out["loaded PSS"] = m.rss_kib / 1024, (m.pss_kib or 0) / 1024
            for voice in VOICES:
                for label, text in TEXTS.items():
                    one = runner.run(load_cell(port, body(voice, text), 1, seconds, 3))
                    four = runner.run(load_cell(port, body(voice, text), 4, seconds, 4))
                    out[f"{voice}, {label}: c=1 p50 ms"] = one.p50_latency * 1000
                    out[f"{voice}, {label}: c=4 req/s"] = four.rps
                    out["errors"] = out.get("errors", 0) + one.errors + four.errors
            time.sleep(0.5)
            m = tree_memory(proc.pid)
            out["after load RSS"], out["after load PSS"] = (
                m.rss_kib / 1024,
                (m.pss_kib or 0) / 1024,
            )
            sampler.stop()
            out["peak RSS"], out["peak PSS"] = sampler.peak_rss / 1024, sampler.peak_pss / 1024
    finally:
        runner.close()
        if old is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = old
    return out


def port_in(low: int, high: int) -> int:
    """A free loopback port in [low, high] (the range this benchmark may use)."""
    for port in range(low, high + 1):
        with socket.socket() as s:
            try:
                s.bind((harness.HOST, port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {low}-{high}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", required=True, help="git revision to compare against")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=4.0, help="per load cell")
    parser.add_argument("--ports", default="18600-18699")
    args = parser.parse_args()
    low, high = (int(x) for x in args.ports.split("-"))
    harness.free_port = lambda: port_in(low, high)  # running_server's port

    from orate.engines.onnx_base import mapped_model
    from orate.engines.registry import EngineRegistry

    registry = EngineRegistry()  # the mapped copies, written once before any server starts
    mapped_model(registry.engine("hibari").paths["heart"])
    mapped_model(registry.engine("piper:en_US-joe-medium").model_path)

    results: dict[str, list[dict[str, float]]] = {"base": [], "new": []}
    with base_tree(args.base) as base:
        for r in range(args.rounds):
            for name, src in (("base", base / "src"), ("new", ROOT / "src")):
                progress(f"round {r + 1}: {name}")
                results[name].append(one_server(src, args.seconds))
    keys = list(results["new"][0])
    print(f"base {args.base}, {args.rounds} rounds, {args.seconds} s per cell; medians (MiB)")
    print()
    print("| | base | this tree | new/base |")
    print("|---|---:|---:|---:|")
    for key in keys:
        b = statistics.median(x[key] for x in results["base"])
        n = statistics.median(x[key] for x in results["new"])
        ratio = f"{n / b:.2f}x" if b else ""
        print(f"| {key} | {b:.1f} | {n:.1f} | {ratio} |")
    print()
    print(
        "rounds:",
        {k: [{kk: round(vv) for kk, vv in x.items()} for x in v] for k, v in results.items()},
    )


if __name__ == "__main__":
    main()
