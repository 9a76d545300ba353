"""Memory under abuse (oversized requests, slow readers): RSS of the server's process tree.

Starts ``orate serve`` (2 engine workers) on a loopback port and measures the resident
memory of the server and its workers from /proc while:

- ``work``: one Hume ``POST /v0/tts`` of 5 utterances x 4,990 characters,
  ``num_generations: 5``, wav (the whole response is built in memory);
- ``work-max``: the largest such request the limits accept (5,000 characters x 5
  generations, mp3);
- ``slow-openai``: 20 OpenAI requests of 4,090 characters in wav whose clients never read;
- ``slow-hume``: 4 Hume ``/v0/tts/stream/file`` requests (4,990 characters, wav) whose
  clients never read.

Each scenario gets a fresh server and a time bound; the server is killed if its tree
passes ``--cap-mb`` (the unbounded code would otherwise take the machine). Prints one
table row per scenario: baseline, peak, after (clients closed, 10 s later), status.

    python benchmarks/memory_abuse.py [--port 18340] [--only work,work-max,slow-openai,...]
    git archive BASE src | tar -x -C /tmp/base && python benchmarks/memory_abuse.py \
        --src /tmp/base/src     # the same figures for another commit
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx

SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "Please call me back tomorrow morning.",
    "The weather is cold and windy today.",
    "She sells sea shells by the sea shore.",
    "We will meet at the train station at noon.",
]


def text_of(chars: int) -> str:
    base = " ".join(SENTENCES)
    return (base + " ") * (chars // len(base) + 1)


def words(chars: int) -> str:
    return text_of(chars)[:chars].rsplit(" ", 1)[0] + "."


def tree_rss(pid: int) -> int:
    """VmRSS of ``pid`` and all its descendants, in bytes."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        p = int(entry.name)
        children.setdefault(int(fields.get("PPid", "0").strip() or 0), []).append(p)
        rss[p] = int(fields.get("VmRSS", "0 kB").split()[0]) * 1024
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        total += rss.get(p, 0)
        todo += children.get(p, [])
    return total


class Server:
    def __init__(self, port: int, env: dict[str, str], src: str | None = None) -> None:
        self.tmp = tempfile.TemporaryDirectory(prefix="orate-mem-")
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log = open(Path(self.tmp.name) / "server.log", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "orate.cli",
                "serve",
                "--port",
                str(port),
                "--workers",
                "2",
                "--log-level",
                "warning",
            ],
            env={
                **os.environ,
                "ORATE_DATA_DIR": self.tmp.name,
                **env,
                **({"PYTHONPATH": src} if src else {}),
            },
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.2)
        raise RuntimeError("server did not start")

    def rss(self) -> int:
        return tree_rss(self.proc.pid)

    def busy(self) -> int | None:
        try:
            return httpx.get(f"{self.url}/healthz", timeout=5).json()["engines"]["busy"]
        except (httpx.HTTPError, KeyError, ValueError):
            return None

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)  # our own session: server + workers
            self.proc.wait()
        self.log.close()
        self.tmp.cleanup()


class Sampler(threading.Thread):
    """Samples the tree's RSS every 100 ms; kills the server past the cap."""

    def __init__(self, server: Server, cap: int) -> None:
        super().__init__(daemon=True)
        self.server = server
        self.cap = cap
        self.peak = 0
        self.killed = False
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.wait(0.1):
            rss = self.server.rss()
            self.peak = max(self.peak, rss)
            if rss > self.cap and not self.killed:
                self.killed = True
                os.killpg(self.server.proc.pid, signal.SIGKILL)

    def stop(self) -> None:
        self._halt.set()
        self.join()


def raw_request(port: int, path: str, body: dict) -> socket.socket:
    """Send a request on a socket with a tiny receive buffer, and never read the answer."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    data = json.dumps(body).encode()
    sock.sendall(
        f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(data)}\r\n\r\n".encode()
        + data
    )
    return sock


def scenario_work(
    server: Server, sampler: Sampler, utterances: int = 5, chars: int = 4990, fmt: str = "wav"
) -> str:
    body = {
        "utterances": [{"text": words(chars), "voice": {"name": "alloy"}}] * utterances,
        "num_generations": 5,
        "format": {"type": fmt},
    }
    t0 = time.monotonic()
    try:
        r = httpx.post(f"{server.url}/v0/tts", json=body, timeout=60)
        outcome = (
            f"{r.status_code} in {time.monotonic() - t0:.1f} s, "
            f"{len(r.content) / 2**20:.0f} MB body"
        )
        if r.status_code != 200:
            outcome += f" ({r.text[:90]})"
    except httpx.HTTPError as exc:
        outcome = f"{type(exc).__name__} after {time.monotonic() - t0:.0f} s"
    if not sampler.killed:
        time.sleep(5)
        outcome += f"; engines busy 5 s later: {server.busy()}"
    return outcome


def scenario_slow(
    server: Server, sampler: Sampler, path: str, make: Callable[[int], dict], n: int
) -> str:
    socks = [raw_request(server.port, path, make(i)) for i in range(n)]  # distinct: no sharing
    time.sleep(15)
    during = server.rss()
    for s in socks:
        s.close()
    return f"{n} stalled clients; RSS while stalled {during / 2**20:.0f} MB"


def run(name: str, port: int, cap: int, src: str | None) -> list[str]:
    server = Server(port, {"ORATE_CACHE_ENABLED": "true"}, src)
    try:
        time.sleep(1)
        base = server.rss()
        sampler = Sampler(server, cap)
        sampler.start()
        if name == "work":
            outcome = scenario_work(server, sampler)
        elif name == "work-max":  # the largest Hume request the new limits accept
            outcome = scenario_work(server, sampler, utterances=1, chars=5000, fmt="mp3")
        elif name == "slow-openai":
            outcome = scenario_slow(
                server,
                sampler,
                "/v1/audio/speech",
                lambda i: {
                    "model": "tts-1",
                    "voice": "alloy",
                    "input": f"Request {i}. " + words(4070),
                    "response_format": "wav",
                },
                20,
            )
        else:
            outcome = scenario_slow(
                server,
                sampler,
                "/v0/tts/stream/file",
                lambda i: {
                    "utterances": [
                        {"text": f"Request {i}. " + words(4970), "voice": {"name": "alloy"}}
                    ],
                    "format": {"type": "wav"},
                },
                4,
            )
        after = "killed"
        if not sampler.killed:
            time.sleep(10)
            after = f"{server.rss() / 2**20:.0f}"
        sampler.stop()
        peak = f"{sampler.peak / 2**20:.0f}" + (" (cap hit, killed)" if sampler.killed else "")
        return [name, f"{base / 2**20:.0f}", peak, after, outcome]
    finally:
        server.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, default=18340)
    ap.add_argument("--only", default="work,work-max,slow-openai,slow-hume")
    ap.add_argument("--cap-mb", type=int, default=3000, help="kill the server past this RSS")
    ap.add_argument(
        "--src",
        help="run the server from this source tree (e.g. an export of "
        "the base commit's src/), for before/after figures",
    )
    args = ap.parse_args()
    rows = [["scenario", "base MB", "peak MB", "after MB", "outcome"]]
    for n, name in enumerate(args.only.split(",")):
        rows.append(run(name, args.port + n, args.cap_mb << 20, args.src))
        print(" | ".join(rows[-1]), flush=True)
    print()
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
