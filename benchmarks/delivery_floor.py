#!/usr/bin/env python3
"""What the c=4 goal "≥ 0.85x the raw engine's 2-process rate" leaves for an HTTP server.

The raw engine's rate counts synthesis only. Any server must also hand every byte to
the client over HTTP, and the client (``wrk``) must read it, on the same 2 cores. This
measures that delivery cost alone and orate's own costs next to it, in one run, each
server in turn (alternating rounds), ``wrk -t1 -c4``, WAV, 11 and 218 words:

- **floor**: a minimal FastAPI app on uvicorn (uvloop, httptools; what orate runs on)
  that answers the same POST with the same WAV bytes, made once at start by the raw
  engine, streamed in 256 kB chunks: no synthesis, no history;
- **orate**, history on (the default: a row and the audio file per request), history
  on without stored audio, and history off.

Per cell: req/s, CPU ms per request of the server (main + workers) and of ``wrk``
(``RUSAGE_CHILDREN``). The bound for a server that synthesizes like the raw engine
and delivers like the floor: raw CPU / (raw CPU + floor server CPU + wrk CPU), as a
share of the raw engine's 2-process rate (at c=4 both cores are busy, so rate ≈
2 cores / CPU per request).

    python benchmarks/delivery_floor.py [--rounds 2] [--seconds 6]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import (
    HOST,
    TEXTS,
    BenchmarkError,
    cpu_seconds,
    descendants,
    free_port,
    progress,
    running_server,
    speech_body,
    wait_started,
)
from throughput import SERVER_ENV, WRK_LUA, wrk

CHUNK = 256 * 1024
SERVERS = {
    "orate, history on (default)": SERVER_ENV,
    "orate, history on, audio not stored": {**SERVER_ENV, "ORATE_STORE_AUDIO": "false"},
    "orate, history off": {**SERVER_ENV, "ORATE_HISTORY": "false"},
}


def wav_of(text: str) -> bytes:
    """The WAV orate would send for ``text``: the raw engine's PCM, sentence by sentence."""
    from orate.audio.encoder import wav_header
    from orate.speech.text import split_sentences
    from raw_engine import load_engine

    engine, params = load_engine()
    pcm: list[bytes] = []
    for s, e in split_sentences(text):
        engine.synthesize(
            text[s:e], params, 1.0, lambda chunk, _ev: pcm.append(chunk.tobytes()) or True
        )
    return wav_header(engine.sample_rate) + b"".join(pcm)


def floor_server_main(port: int) -> None:
    """The floor: parse the request like a TTS server, stream precomputed bytes back."""
    import uvicorn
    from fastapi import FastAPI
    from fastapi.responses import JSONResponse, StreamingResponse

    audio = {text: wav_of(text) for text in TEXTS.values()}
    app = FastAPI()

    async def health(_request: object) -> JSONResponse:
        return JSONResponse({"ok": True})

    async def speech(request: object) -> StreamingResponse:
        body = json.loads(await request.body())  # type: ignore[attr-defined]
        data = audio[body["input"]]

        async def chunks() -> object:
            for i in range(0, len(data), CHUNK):
                yield data[i : i + CHUNK]

        return StreamingResponse(chunks(), media_type="audio/wav")  # type: ignore[arg-type]

    # plain routes (the app's middleware stack, no parameter parsing to go wrong)
    app.router.add_route("/healthz", health, methods=["GET"])
    app.router.add_route("/v1/audio/speech", speech, methods=["POST"])
    uvicorn.run(app, host=HOST, port=port, log_level="warning", loop="uvloop", http="httptools")


def cells(pid: int, port: int, seconds: float, script: Path) -> dict[str, tuple[float, ...]]:
    out = {}
    for label, text in TEXTS.items():
        body = speech_body(text, "wav")
        wrk(port, body, 4, 1, script)  # warm
        s0 = sum(cpu_seconds(p) for p in descendants(pid))
        c0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        cell = wrk(port, body, 4, seconds * (2 if label == "218 words" else 1), script)
        c1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        if cell.errors or not cell.requests:
            raise BenchmarkError(f"{label}: {cell.errors} errors, {cell.requests} requests")
        time.sleep(0.3)  # history writes after the last response
        server = sum(cpu_seconds(p) for p in descendants(pid)) - s0
        client = (c1.ru_utime - c0.ru_utime) + (c1.ru_stime - c0.ru_stime)
        n = max(cell.requests, 1)
        out[label] = (cell.rps, 1e3 * server / n, 1e3 * client / n)
        progress(
            f"  {label}: {cell.rps:.1f} req/s, server {1e3 * server / n:.1f} ms, "
            f"wrk {1e3 * client / n:.1f} ms per request"
        )
    return out


def floor_cells(seconds: float, script: Path) -> dict[str, tuple[float, ...]]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, __file__, "--floor-server", str(port)], start_new_session=True
    )
    try:
        wait_started(proc, port, "floor", limit=60)
        return cells(proc.pid, port, seconds, script)
    finally:
        proc.terminate()
        proc.wait(10)


def raw_cpu_ms() -> dict[str, float]:
    from raw_engine import load_engine, synthesize

    engine, params = load_engine()
    out = {}
    for label, text in TEXTS.items():
        for _ in range(3):
            synthesize(engine, params, text)
        reps = 200 if label == "11 words" else 20
        t = time.process_time()
        for _ in range(reps):
            synthesize(engine, params, text)
        out[label] = 1e3 * (time.process_time() - t) / reps
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--floor-server", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.floor_server:
        floor_server_main(args.floor_server)
        return 0
    got: dict[str, dict[str, list[tuple[float, ...]]]] = defaultdict(lambda: defaultdict(list))
    raw = raw_cpu_ms()
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "post.lua"
        script.write_text(WRK_LUA)
        for r in range(args.rounds):
            progress(f"round {r + 1}/{args.rounds}: floor")
            for label, v in floor_cells(args.seconds, script).items():
                got["floor (FastAPI streaming stored bytes)"][label].append(v)
            for name, env in SERVERS.items():
                progress(f"round {r + 1}/{args.rounds}: {name}")
                with tempfile.TemporaryFile() as log, running_server(log, env) as (proc, port, _):
                    for label, v in cells(proc.pid, port, args.seconds, script).items():
                        got[name][label].append(v)
    labels = list(TEXTS)
    print("## Delivery floor: what HTTP delivery costs next to the engine\n")
    print(
        f"`python benchmarks/delivery_floor.py --rounds {args.rounds} --seconds "
        f"{args.seconds:g}`: wav, `wrk -t1 -c4`, medians of {args.rounds} alternating rounds;"
        f" load average after {os.getloadavg()[0]:.2f}. Raw engine CPU per request: "
        + ", ".join(f"{k} {v:.1f} ms" for k, v in raw.items())
        + ".\n"
    )
    print("| server | " + " | ".join(f"{t}: req/s · server ms · wrk ms" for t in labels) + " |")
    print("|---|" + "---:|" * len(labels))
    med: dict[str, dict[str, tuple[float, ...]]] = {}
    for name, per in got.items():
        med[name] = {
            t: tuple(statistics.median(x) for x in zip(*per[t], strict=True)) for t in labels
        }
        print(
            f"| {name} | "
            + " | ".join("{:.1f} · {:.2f} · {:.2f}".format(*med[name][t]) for t in labels)
            + " |"
        )
    floor = med["floor (FastAPI streaming stored bytes)"]
    print(
        "\nBound on the c=4 share of the raw engine's 2-process rate, = raw CPU / (raw CPU "
        "+ server CPU beyond the engine + wrk CPU), from the CPU columns:\n"
    )
    print("| | " + " | ".join(labels) + " |")
    print("|---|" + "---:|" * len(labels))
    print(
        "| a server that synthesizes like the raw engine and delivers like the floor | "
        + " | ".join(f"{raw[t] / (raw[t] + floor[t][1] + floor[t][2]):.2f}×" for t in labels)
        + " |"
    )
    for name in SERVERS:
        print(
            f"| {name} (measured CPU) | "
            + " | ".join(f"{raw[t] / (med[name][t][1] + med[name][t][2]):.2f}×" for t in labels)
            + " |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
