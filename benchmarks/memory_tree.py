#!/usr/bin/env python3
"""Memory of orate's process tree, what each process imports, and how long shutdown takes.

1. ``orate serve --workers 2`` (cache off), warmed up on both texts in wav and mp3:
   RSS, PSS and USS (private) of every process (main, workers).
2. What a worker imports: a fresh interpreter does what ``python -m
   orate.runtime.worker`` does (imports the worker module, loads espeak); its RSS, next
   to what a worker cost when multiprocessing's spawn started it (spawn re-imported the
   parent's ``-m orate.cli`` as ``__mp_main__`` in every child), and the RSS each heavy module
   adds when imported on top of the worker's real needs (numpy, ctypes, espeak), so
   "import lazily" has a number in MiB. Same for the main process's optional modules.
3. Shutdown: SIGTERM to the main process of an idle warmed server, then /proc polled
   every 5 ms: when each process of the tree is gone.

    python benchmarks/memory_tree.py
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import TEXTS, descendants, running_server, speech_body
from throughput import WRK_LUA, role_of, wrk

PROBE = r"""
import json, os, sys, time
def rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
steps = json.loads(sys.argv[1])
out = []
for step in steps:
    t = time.perf_counter()
    exec(step)
    out.append([step, rss(), time.perf_counter() - t])
print(json.dumps(out))
"""

WORKER_NEEDS = [
    "import numpy, ctypes",
    "from orate.engines.registry import EngineRegistry; EngineRegistry().engine('espeak')",
]
AS_SPAWNED = "import runpy; runpy.run_module('orate.cli', run_name='__mp_main__')"
WORKER_ENTRY = "import orate.runtime.worker"

# modules whose import could be deferred, measured one at a time on top of a base
CANDIDATES_WORKER = [
    "import av",
    "import lameenc",
    "import typer, rich.console",
    "import pydantic, pydantic_settings",
    "import orate.config",
    "import sqlalchemy",
    "import fastapi",
    "import onnxruntime",
]
CANDIDATES_MAIN = [
    "import onnxruntime",
    "import av",
    "import lameenc",
    "import zeroconf",
    "import wyoming.event",
    "import httpx",
    "import prometheus_client",
    "import obstore",
    "import alembic.command",
]


def probe(steps: list[str]) -> list[tuple[str, float, float]]:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(steps)],
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode:
        return [(steps[-1], float("nan"), float("nan"))]
    return [tuple(x) for x in json.loads(out.stdout.strip().splitlines()[-1])]


def mem_of(pid: int) -> dict[str, float]:
    d: dict[str, float] = {}
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            key, _, rest = line.partition(":")
            if key in ("Rss", "Pss", "Private_Clean", "Private_Dirty", "Anonymous"):
                d[key] = int(rest.split()[0]) / 1024
    except OSError:
        pass
    d["Uss"] = d.get("Private_Clean", 0) + d.get("Private_Dirty", 0)
    return d


def extension_packages(pid: int) -> list[str]:
    """Top-level packages whose compiled extensions or bundled libraries are mapped."""
    pkgs = set()
    try:
        for line in Path(f"/proc/{pid}/maps").read_text().splitlines():
            path = line.split()[-1] if len(line.split()) >= 6 else ""
            if "site-packages/" in path:
                pkgs.add(path.split("site-packages/", 1)[1].split("/", 1)[0])
    except OSError:
        pass
    return sorted(pkgs)


def tree(warm: bool = True) -> list[str]:
    lines = [
        "## Process tree, idle after warm-up (MiB)",
        "",
        "| process | pid | RSS | PSS | USS (private) | anonymous |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    env = {"ORATE_CACHE_ENABLED": "false"}
    with (
        tempfile.TemporaryDirectory() as tmp,
        tempfile.TemporaryFile() as log,
        running_server(log, env) as (proc, port, startup),
    ):
        script = Path(tmp) / "post.lua"
        script.write_text(WRK_LUA)
        if warm:
            for text in TEXTS.values():
                for fmt in ("wav", "mp3"):
                    wrk(port, speech_body(text, fmt), 4, 1, script)
        time.sleep(1.0)
        tot = {"Rss": 0.0, "Pss": 0.0, "Uss": 0.0}
        exts = {}
        for pid in descendants(proc.pid):
            m = mem_of(pid)
            role = role_of(pid, proc.pid)
            for k in tot:
                tot[k] += m.get(k, 0)
            lines.append(
                f"| {role} | {pid} | {m.get('Rss', 0):.1f} | {m.get('Pss', 0):.1f} | "
                f"{m['Uss']:.1f} | {m.get('Anonymous', 0):.1f} |"
            )
            exts[role] = extension_packages(pid)
        lines.append(f"| **tree** | | {tot['Rss']:.1f} | {tot['Pss']:.1f} | {tot['Uss']:.1f} | |")
        lines += [
            "",
            f"server start to /healthz: {startup:.2f} s",
            "",
            "Packages with compiled code mapped into each process (/proc/PID/maps):",
            "",
        ]
        lines += [f"- {role}: {', '.join(p)}" for role, p in exts.items()]
        # shutdown timing
        lines += ["", "## Shutdown after SIGTERM (idle, warmed server)", ""]
        pids = {pid: role_of(pid, proc.pid) for pid in descendants(proc.pid)}
        t0 = time.perf_counter()
        proc.send_signal(signal.SIGTERM)
        gone: dict[int, float] = {}
        while len(gone) < len(pids) and time.perf_counter() - t0 < 15:
            for pid in pids:
                if pid not in gone and not _alive(pid, proc):
                    gone[pid] = time.perf_counter() - t0
            time.sleep(0.005)
        for pid, role in pids.items():
            when = gone.get(pid)
            lines.append(
                f"- {role} (pid {pid}): "
                + (
                    f"gone after {when * 1e3:.0f} ms"
                    if when is not None
                    else "STILL ALIVE after 15 s"
                )
            )
    return lines


def _alive(pid: int, proc: subprocess.Popen[bytes]) -> bool:
    if pid == proc.pid:
        return proc.poll() is None
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"  # a zombie has exited; only its parent has not reaped it yet


def imports() -> list[str]:
    lines = [
        "",
        "## What a worker process imports (fresh interpreter, RSS MiB after each step)",
        "",
    ]
    started = probe([WORKER_ENTRY, *WORKER_NEEDS[1:]])
    lines.append(
        "As the pool starts it (`python -m orate.runtime.worker`: the worker module, "
        "then espeak loads):"
    )
    lines += ["", "| step | RSS after (MiB) | seconds |", "|---|---:|---:|"]
    lines += [f"| `{s}` | {r:.1f} | {t:.3f} |" for s, r, t in started]
    spawned = probe([AS_SPAWNED, WORKER_ENTRY, *WORKER_NEEDS[1:]])
    lines += [
        "",
        "As multiprocessing's spawn started it until 2026-12-01 (re-imports the "
        "parent's `-m orate.cli` as `__mp_main__` first):",
        "",
        "| step | RSS after (MiB) | seconds |",
        "|---|---:|---:|",
    ]
    lines += [f"| `{s}` | {r:.1f} | {t:.3f} |" for s, r, t in spawned]
    minimal = probe([*WORKER_NEEDS])
    lines += [
        "",
        "What the espeak worker needs at the least (numpy, ctypes, the engine):",
        "",
        "| step | RSS after (MiB) | seconds |",
        "|---|---:|---:|",
    ]
    lines += [f"| `{s}` | {r:.1f} | {t:.3f} |" for s, r, t in minimal]
    base = minimal[-1][1]
    lines += [
        "",
        "Each module on top of that minimum (what deferring its import saves a "
        "worker that never uses it):",
        "",
        "| import | + RSS (MiB) | + seconds |",
        "|---|---:|---:|",
    ]
    for cand in CANDIDATES_WORKER:
        r = probe([*WORKER_NEEDS, cand])
        lines.append(f"| `{cand}` | {r[-1][1] - base:+.1f} | {r[-1][2]:.3f} |")
    lines += [
        "",
        "## The main process's optional modules",
        "",
        "Base: `import orate.app` (FastAPI, SQLAlchemy, the dialects) in a fresh "
        "interpreter; each module's added RSS when imported after it (0 = already "
        "imported by orate.app):",
        "",
        "| import | + RSS (MiB) | + seconds |",
        "|---|---:|---:|",
    ]
    app = probe(["import orate.app"])
    lines.insert(
        len(lines) - 4, f"`import orate.app` alone: RSS {app[-1][1]:.1f} MiB, {app[-1][2]:.2f} s"
    )
    for cand in CANDIDATES_MAIN:
        r = probe(["import orate.app", cand])
        lines.append(f"| `{cand}` | {r[-1][1] - app[-1][1]:+.1f} | {r[-1][2]:.3f} |")
    return lines


def main() -> int:
    print("\n".join(tree() + imports()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
