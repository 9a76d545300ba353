#!/usr/bin/env python3
"""A soak on loopback: 32 clients mixing dialects for 60 s, some of them abusive.

The issue "hardening" asks for evidence that the bounds hold together, under load, not
only one at a time in tests. One ``orate serve`` (2 workers, history and stored audio on,
the default) gets, at once:

- 15 ordinary clients cycling through the OpenAI, Hume, nano-gpt and ElevenLabs routes,
  reading every response whole;
- 10 slow readers: long wav streams read at 4 kB a second;
- 5 clients that disconnect after the first chunk of a long stream;
- 2 clients whose keys have a 100-character quota, asking again and again.

Every second the process tree's RSS is sampled from /proc. At the end every 200 that
carried ``X-Orate-Generation-Id`` is checked: its history row and its audio file must
both be there (``lost`` counts those that are not). Prints a Markdown report.

    python benchmarks/soak.py [--seconds 60]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from memory_abuse import tree_rss

SHORT = "The weather is cold and windy today, so take a coat."
LONG = ("She sells sea shells by the sea shore, and the shells she sells are surely sea "
        "shells. ") * 40  # ~3,500 characters: a stream of several minutes of audio


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tree_rss_mib(pid: int) -> float:
    """RSS of ``pid`` and every descendant, in MiB (memory_abuse.py's measure)."""
    return tree_rss(pid) / 2**20


def make_key(data: Path, *args: str) -> str:
    out = subprocess.run([sys.executable, "-m", "orate.cli", "keys", "create", *args],
                         capture_output=True, text=True, check=True,
                         env={**os.environ, "ORATE_DATA_DIR": str(data)})
    return out.stdout.strip()


def generation_ids(r: httpx.Response) -> list[str]:
    """The generations a 200 says it recorded: a header (OpenAI, ElevenLabs), Hume's
    ``generation_id`` per generation, or nano-gpt's ``audioUrl`` on this server."""
    gen = r.headers.get("x-orate-generation-id")
    if gen:
        return [gen]
    if "json" not in r.headers.get("content-type", ""):
        return []
    body = r.json()
    if "generations" in body:
        return [g["generation_id"] for g in body["generations"]]
    url = body.get("audioUrl") or ""
    return [url.rstrip("/").rsplit("/", 1)[-1]] if "/v1/audio/files/" in url else []


class Tally:
    def __init__(self) -> None:
        self.served: collections.Counter[str] = collections.Counter()
        self.errors: collections.Counter[str] = collections.Counter()
        self.generations: list[str] = []
        self.no_id: collections.Counter[str] = collections.Counter()

    def result(self, dialect: str, r: httpx.Response) -> None:
        if r.status_code == 200:
            self.served[dialect] += 1
            ids = generation_ids(r)
            self.generations.extend(ids)
            if not ids:
                self.no_id[dialect] += 1
        else:
            code = ""
            try:
                body = r.json()
                err = body.get("error") or body.get("detail") or body
                code = (err.get("code") or err.get("status") or "") if isinstance(err, dict) \
                    else ""
            except Exception:
                pass
            self.errors[f"{dialect} {r.status_code} {code}".strip()] += 1


async def ordinary(url: str, key: str, n: int, stop: float, tally: Tally) -> None:
    auth = {"Authorization": f"Bearer {key}"}
    calls = [
        ("openai", "POST", "/v1/audio/speech", {"model": "tts-1", "voice": "alloy",
                                               "input": SHORT, "response_format": "mp3"}, auth),
        ("hume", "POST", "/v0/tts", {"utterances": [{"text": SHORT}],
                                     "format": {"type": "mp3"}}, {"X-Hume-Api-Key": key}),
        ("nanogpt", "POST", "/api/tts", {"text": SHORT, "model": "Kokoro-82m",
                                         "voice": "af_bella"}, {"x-api-key": key}),
        ("elevenlabs", "POST", "/v1/text-to-speech/21m00Tcm4TlvDq8ikWAM",
         {"text": SHORT, "model_id": "eleven_multilingual_v2"}, {"xi-api-key": key}),
    ]
    i = n
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        while time.monotonic() < stop:
            dialect, method, path, body, headers = calls[i % len(calls)]
            i += 1
            # a different text each time: misses, so every 200 is a fresh generation
            body = dict(body)
            for field in ("input", "text"):
                if field in body:
                    body[field] = f"{SHORT} Number {i}."
            if "utterances" in body:
                body["utterances"] = [{"text": f"{SHORT} Number {i}."}]
            try:
                r = await client.request(method, path, json=body, headers=headers)
                tally.result(dialect, r)
            except httpx.HTTPError as exc:
                tally.errors[f"{dialect} {type(exc).__name__}"] += 1


async def slow_reader(url: str, key: str, n: int, stop: float, tally: Tally) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=120) as client:
        while time.monotonic() < stop:
            try:
                async with client.stream("POST", "/v1/audio/speech", headers={
                        "Authorization": f"Bearer {key}"}, json={
                        "model": "tts-1", "voice": "nova", "input": f"{n} {LONG}",
                        "response_format": "wav"}) as r:
                    if r.status_code != 200:
                        await r.aread()
                        tally.result("slow", r)
                        continue
                    read = 0
                    async for chunk in r.aiter_bytes(4096):
                        read += len(chunk)
                        if time.monotonic() > stop:
                            break
                        await asyncio.sleep(1.0)
                    tally.served["slow (partial, closed)"] += 1
            except httpx.HTTPError as exc:
                tally.errors[f"slow {type(exc).__name__}"] += 1


async def disconnector(url: str, key: str, n: int, stop: float, tally: Tally) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        while time.monotonic() < stop:
            try:
                async with client.stream("POST", "/v1/audio/speech", headers={
                        "Authorization": f"Bearer {key}"}, json={
                        "model": "tts-1", "voice": "echo", "input": f"{n} {LONG}",
                        "response_format": "mp3"}) as r:
                    async for _ in r.aiter_bytes():
                        break  # first chunk, then gone
                tally.served["disconnected after first chunk"] += 1
            except httpx.HTTPError as exc:
                tally.errors[f"disconnect {type(exc).__name__}"] += 1
            await asyncio.sleep(0.5)


async def over_quota(url: str, key: str, stop: float, tally: Tally) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        while time.monotonic() < stop:
            r = await client.post("/v1/audio/speech", headers={
                "Authorization": f"Bearer {key}"}, json={
                "model": "tts-1", "voice": "alloy", "input": SHORT})
            tally.result("quota", r)
            await asyncio.sleep(0.2)


async def soak(url: str, keys: dict[str, str], seconds: float, pid: int) -> tuple[Tally, list]:
    tally = Tally()
    stop = time.monotonic() + seconds
    rss: list[float] = []

    async def sample() -> None:
        while time.monotonic() < stop + 5:
            rss.append(tree_rss_mib(pid))
            await asyncio.sleep(1.0)

    tasks = [asyncio.create_task(sample())]
    tasks += [asyncio.create_task(ordinary(url, keys["team"], n, stop, tally))
              for n in range(15)]
    tasks += [asyncio.create_task(slow_reader(url, keys["team"], n, stop, tally))
              for n in range(10)]
    tasks += [asyncio.create_task(disconnector(url, keys["team"], n, stop, tally))
              for n in range(5)]
    tasks += [asyncio.create_task(over_quota(url, keys[f"tiny{n}"], stop, tally))
              for n in range(2)]
    await asyncio.gather(*tasks)
    return tally, rss


async def check_records(url: str, admin: str, generations: list[str]) -> tuple[int, int]:
    """(history rows missing, audio files missing) among the generations answered 200."""
    missing_row = missing_audio = 0
    auth = {"Authorization": f"Bearer {admin}"}
    async with httpx.AsyncClient(base_url=url, timeout=60, headers=auth) as client:
        for gen in generations:
            row = await client.get(f"/v1/history/{gen}")
            if row.status_code != 200:
                missing_row += 1
                continue
            audio = await client.get(f"/v1/audio/files/{gen}")
            if audio.status_code != 200 or not audio.content:
                missing_audio += 1
    return missing_row, missing_audio


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=60.0)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        keys = {"admin": make_key(data, "--name", "admin", "--admin"),
                "team": make_key(data, "--name", "team"),
                "tiny0": make_key(data, "--name", "tiny0", "--quota-chars", "100"),
                "tiny1": make_key(data, "--name", "tiny1", "--quota-chars", "100")}
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        env = {**os.environ, "ORATE_DATA_DIR": str(data), "ORATE_STALL_TIMEOUT": "15"}
        log = open(data / "server.log", "wb")  # noqa: SIM115
        proc = subprocess.Popen([sys.executable, "-m", "orate.cli", "serve", "--port",
                                 str(port), "--workers", "2", "--log-level", "warning"],
                                env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                try:
                    if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.2)
            start_rss = tree_rss_mib(proc.pid)
            tally, rss = asyncio.run(soak(url, keys, args.seconds, proc.pid))
            missing_row, missing_audio = asyncio.run(
                check_records(url, keys["admin"], tally.generations))
            final_rss = tree_rss_mib(proc.pid)
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
            log.close()
        tracebacks = (data / "server.log").read_text(errors="replace").count("Traceback")
    print(f"# Soak: {args.seconds:.0f} s, 32 clients on loopback\n")
    print(f"load average at the end: {os.getloadavg()[0]:.1f} (2 cores)\n")
    print("| served | count |\n|---|---|")
    for k, v in sorted(tally.served.items()):
        print(f"| {k} | {v} |")
    print("\n| errors (dialect, status, code) | count |\n|---|---|")
    for k, v in sorted(tally.errors.items()):
        print(f"| {k} | {v} |")
    print("\n| figure | value |\n|---|---|")
    print(f"| RSS of the process tree at start | {start_rss:.0f} MiB |")
    print(f"| peak RSS during the soak | {max(rss or [0]):.0f} MiB |")
    print(f"| RSS after the soak | {final_rss:.0f} MiB |")
    print(f"| 200s with a generation id | {len(tally.generations)} |")
    print(f"| 200s without one | {dict(tally.no_id) or 0} |")
    print(f"| lost: history row missing | {missing_row} |")
    print(f"| lost: audio missing | {missing_audio} |")
    print(f"| tracebacks in the server log | {tracebacks} |")


if __name__ == "__main__":
    main()
