#!/usr/bin/env python3
"""Profile a loaded orate server with py-spy: where a request's CPU goes, main vs worker.

Starts ``orate serve --workers 2`` (cache off, history on), puts ``wrk -t1 -c4`` load on
it for one text and format, and meanwhile records the main process and one engine
worker with ``py-spy record --format raw`` (collapsed stacks, ``--native`` for the
worker so espeak-ng's and the codecs' C frames show). CPU per request comes from
/proc/<pid>/stat over the same window; each bucket's share of a process's samples
times that process's CPU per request gives ms per request per bucket.

    python benchmarks/profile_server.py --text long --format wav --seconds 20
    python benchmarks/profile_server.py --summarize OUTDIR   # tables from saved stacks

Needs ``py-spy`` (pip) and ``wrk``, and permission to ptrace the server (root, or
kernel.yama.ptrace_scope=0).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import TEXTS, cpu_seconds, descendants, running_server, speech_body
from throughput import WRK_LUA, role_of, wrk

# first match wins; tested against each frame of a stack from the leaf up, so the
# innermost recognisable frame decides where a sample's time goes
BUCKETS: list[tuple[str, re.Pattern[str]]] = [
    (
        "espeak (libespeak-ng C code)",
        re.compile(
            r"libespeak|espeak_ng_|espeak_Synth|"
            r"\(espeak\.py\)|Wavegen|SpeakNextClause"
        ),
    ),
    (
        "encoding (PyAV/LAME/lameenc, WAV framing)",
        re.compile(
            r"libmp3lame|lame_|libavcodec|libavformat|libswresample|\bav/|lameenc|encoder\.py|"
            r"\(formats\.py\)"
        ),
    ),
    (
        "history/blob writes (SQLAlchemy, sqlite, obstore)",
        re.compile(
            r"sqlalchemy|sqlite|aiosqlite|obstore|library/|generations\.py|blobs\.py|_record"
        ),
    ),
    (
        "chunk IPC (pipe framing, reads/writes, pickling)",
        re.compile(
            r"_write_all|worker\.py:.*send|data_received|_dispatch|_push|\(pool\.py\)|"
            r"connection\.py|recv_bytes|_recv|_send|pickle|os\.write|os\.read|read_pipe|"
            r"_read_ready|unix_events"
        ),
    ),
    (
        "JSON/events",
        re.compile(
            r"json|_event|SpeechEvent|to_dict|sentence_timestamps|"
            r"timestamps\.py|dumps|loads"
        ),
    ),
    (
        "HTTP framing (uvicorn/h11/httptools, starlette, FastAPI)",
        re.compile(
            r"uvicorn|h11|httptools|starlette|fastapi|pydantic|api/|app\.py|routing|"
            r"middleware"
        ),
    ),
    (
        "render loop/numpy (chunking, feeder, output)",
        re.compile(r"render\.py|numpy|_Feeder|_Output"),
    ),
    (
        "asyncio overhead (event loop, tasks, queues)",
        re.compile(r"asyncio|uvloop|selectors|base_events|events\.py|queues\.py|tasks\.py"),
    ),
]
OTHER = "other"


def bucket_of(frames: list[str]) -> str:
    for frame in reversed(frames):  # leaf first
        for name, pattern in BUCKETS:
            if pattern.search(frame):
                return name
    return OTHER


def parse_raw(path: Path) -> list[tuple[list[str], int]]:
    stacks = []
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            # py-spy's first frame is "process 123:..." / "thread (0x..)"; keep code frames
            frames = [f for f in stack.split(";") if not f.startswith(("process ", "thread "))]
            stacks.append((frames, int(count)))
    return stacks


# a thread blocked in one of these is waiting, not working: native sampling pauses the
# whole process, so py-spy counts waiting threads (aiosqlite's, the executor's, a worker
# waiting for its next job, the loop in epoll) as active; those samples are dropped
IDLE = re.compile(
    r"PyThread_acquire_lock_timed|_queue_SimpleQueue_get|epoll_pwait|"
    r"epoll_wait|^poll \(libc|^select \(|sem_timedwait|pthread_cond_|"
    r"Connection\.poll|_poll \(connection|wait \(threading"
)


def is_idle(frames: list[str]) -> bool:
    return any(IDLE.search(f) for f in frames[-8:])


def summarize(path: Path, cpu_ms: float, top: int = 15) -> list[str]:
    everything = parse_raw(path)
    stacks = [(f, c) for f, c in everything if not is_idle(f)]
    idle = sum(c for _, c in everything) - sum(c for _, c in stacks)
    total = sum(c for _, c in stacks) or 1
    buckets: collections.Counter[str] = collections.Counter()
    self_t: collections.Counter[str] = collections.Counter()
    incl: collections.Counter[str] = collections.Counter()
    for frames, count in stacks:
        buckets[bucket_of(frames)] += count
        if frames:
            self_t[_short(frames[-1])] += count
        for f in {_short(f) for f in frames}:
            incl[f] += count
    out = [
        f"samples: {total} working ({idle} waiting, dropped); CPU per request of this "
        f"process: {cpu_ms:.1f} ms",
        "",
        "| bucket | share of samples | ms per request |",
        "|---|---:|---:|",
    ]
    for name, count in buckets.most_common():
        out.append(f"| {name} | {100 * count / total:.1f}% | {cpu_ms * count / total:.2f} |")
    out += [
        "",
        f"Top {top} functions by self time:",
        "",
        "| function | self % | total % |",
        "|---|---:|---:|",
    ]
    for name, count in self_t.most_common(top):
        out.append(f"| `{name}` | {100 * count / total:.1f} | {100 * incl[name] / total:.1f} |")
    out += [
        "",
        f"Top {top} functions by total (inclusive) time:",
        "",
        "| function | total % | self % |",
        "|---|---:|---:|",
    ]
    for name, count in incl.most_common(top):
        out.append(f"| `{name}` | {100 * count / total:.1f} | {100 * self_t[name] / total:.1f} |")
    return out


def _short(frame: str) -> str:
    """``func (path/to/file.py:123)`` → ``func (file.py)``: lines merged per function."""
    m = re.match(r"(.*?) \((.*?)(?::\d+)?\)$", frame)
    if not m:
        return frame
    return f"{m.group(1)} ({Path(m.group(2)).name})"


def record(
    text: str, fmt: str, seconds: float, outdir: Path, rate: int, native_main: bool = False
) -> dict[str, object]:
    outdir.mkdir(parents=True, exist_ok=True)
    env = {"ORATE_CACHE_ENABLED": "false", "ORATE_HISTORY": "true"}
    script = outdir / "post.lua"
    script.write_text(WRK_LUA)
    body = speech_body(TEXTS[text], fmt)
    with tempfile.TemporaryFile() as log, running_server(log, env) as (proc, port, _):
        wrk(port, body, 4, 2, script)  # warm
        pids = descendants(proc.pid)
        worker = next(p for p in pids if role_of(p, proc.pid) == "worker")
        workers = [p for p in pids if role_of(p, proc.pid) == "worker"]
        spies = [
            subprocess.Popen(
                [
                    "py-spy",
                    "record",
                    "--format",
                    "raw",
                    *(
                        ["-r", str(rate // 2), "--native"]
                        if native_main
                        else ["-r", str(rate), "--nonblocking"]
                    ),
                    "-d",
                    str(int(seconds)),
                    "-p",
                    str(proc.pid),
                    "-o",
                    str(outdir / "main.txt"),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            ),
            # --native cannot run --nonblocking: the worker is paused for each sample,
            # so it is sampled at a lower rate
            subprocess.Popen(
                [
                    "py-spy",
                    "record",
                    "--format",
                    "raw",
                    "-r",
                    str(rate // 2),
                    "-d",
                    str(int(seconds)),
                    "--native",
                    "-p",
                    str(worker),
                    "-o",
                    str(outdir / "worker.txt"),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            ),
        ]
        time.sleep(1.0)
        m0, w0 = cpu_seconds(proc.pid), cpu_seconds(worker)
        all0 = sum(cpu_seconds(p) for p in workers)
        cell = wrk(port, body, 4, seconds - 2, script)
        time.sleep(0.3)
        m1, w1 = cpu_seconds(proc.pid), cpu_seconds(worker)
        all1 = sum(cpu_seconds(p) for p in workers)
        for s in spies:
            s.wait(timeout=seconds + 60)
    n = max(cell.requests, 1)
    share = (w1 - w0) / (all1 - all0) if all1 > all0 else 0.5
    meta = {
        "text": text,
        "format": fmt,
        "requests": cell.requests,
        "rps": cell.rps,
        "p50_ms": cell.p50 * 1e3,
        "main_cpu_ms": 1e3 * (m1 - m0) / n,
        "workers_cpu_ms": 1e3 * (all1 - all0) / n,
        # the profiled worker served about `share` of the requests
        "worker_cpu_ms_per_its_request": 1e3 * (w1 - w0) / max(n * share, 1),
        "load": os.getloadavg(),
        "native_main": native_main,
    }
    (outdir / "meta.json").write_text(json.dumps(meta, indent=1))
    return meta


def report(outdir: Path) -> str:
    meta = json.loads((outdir / "meta.json").read_text())
    lines = [
        f"### {meta['text']} {meta['format']}, wrk c=4: {meta['rps']:.1f} req/s, "
        f"p50 {meta['p50_ms']:.1f} ms, {meta['requests']} requests; CPU ms per request "
        f"main {meta['main_cpu_ms']:.1f} / workers {meta['workers_cpu_ms']:.1f}",
        "",
    ]
    native = " (`--native`)" if meta.get("native_main") else ""
    lines += [
        f"#### main process{native}",
        "",
        *summarize(outdir / "main.txt", meta["main_cpu_ms"]),
    ]
    lines += ["", "#### one engine worker (`--native`)", ""]
    lines += summarize(outdir / "worker.txt", meta["worker_cpu_ms_per_its_request"])
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--text", choices=["short", "long"], default="long")
    parser.add_argument("--format", choices=["wav", "mp3", "pcm"], default="wav")
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--rate", type=int, default=250)
    parser.add_argument("--out", type=Path)
    parser.add_argument(
        "--native-main",
        action="store_true",
        help="sample the main process with C frames too (pauses it per sample)",
    )
    parser.add_argument("--summarize", type=Path, metavar="OUTDIR")
    args = parser.parse_args()
    if args.summarize:
        print(report(args.summarize))
        return 0
    label = "11 words" if args.text == "short" else "218 words"
    out = args.out or Path(tempfile.mkdtemp(prefix=f"orate-prof-{args.text}-{args.format}-"))
    record(label, args.format, args.seconds, out, args.rate, args.native_main)
    print(report(out))
    print(f"\n(raw stacks in {out})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
