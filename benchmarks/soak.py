#!/usr/bin/env python3
"""A soak on loopback: 32 clients mixing dialects for 60 s, some of them abusive.

This is the evidence that the bounds hold together, under load, not
only one at a time in tests. One ``orate serve`` (2 workers, history and stored audio on,
the default) gets, at once:

- 15 ordinary clients cycling through the OpenAI, Hume, nano-gpt and ElevenLabs routes,
  reading every response whole;
- 10 slow readers: long wav streams read at 4 kB a second;
- 5 clients that disconnect after the first chunk of a long stream;
- 2 clients whose keys have a 100-character quota, asking again and again.

With ``--attackers`` it runs twice, the second time adding one key's worst: pronunciation
rules with catastrophic patterns (``((a)+)+b``, ``(a|a)*b``, ``((a)*)*b``) and a 4,999-lexeme
PLS used on an 800-word text, in a loop; one key flooding async jobs; 40 Wyoming
connections that send half an event (from 127.0.0.2); 2 Hume WebSockets that send 5,000
characters and a flush and never read. The report puts the ordinary clients' latency
(median, p99) and their 503s side by side, without and with the attackers.

Every second the process tree's RSS is sampled from /proc. At the end every 200 that
carried ``X-Orate-Generation-Id`` is checked: its history row and its audio file must
both be there (``lost`` counts those that are not). Prints a Markdown report.

    python benchmarks/soak.py [--seconds 60] [--attackers]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from memory_abuse import tree_rss

SHORT = "The weather is cold and windy today, so take a coat."
LONG = (
    "She sells sea shells by the sea shore, and the shells she sells are surely sea shells. "
) * 40  # ~3,500 characters: a stream of several minutes of audio


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def own_rss_mib(pid: int) -> float:
    """RSS of ``pid`` alone (the server process, without its engine workers), in MiB."""
    status = Path(f"/proc/{pid}/status").read_text()
    line = next(x for x in status.splitlines() if x.startswith("VmRSS:"))
    return int(line.split()[1]) / 1024


WARM = (  # the soak's voices, each once on each of the two workers
    ("/v1/audio/speech", {"model": "tts-1", "voice": "alloy", "input": "Warm."}),
    ("/v1/audio/speech", {"model": "tts-1", "voice": "nova", "input": "Warm."}),
    ("/v1/audio/speech", {"model": "tts-1", "voice": "echo", "input": "Warm."}),
    ("/v0/tts", {"utterances": [{"text": "Warm."}]}),
    ("/api/tts", {"text": "Warm.", "model": "Kokoro-82m", "voice": "af_bella"}),
    (
        "/v1/text-to-speech/21m00Tcm4TlvDq8ikWAM",
        {"text": "Warm.", "model_id": "eleven_multilingual_v2"},
    ),
)


async def warm_up(url: str, key: str) -> None:
    """Load the voices the soak uses in both workers, so "warm" is the idle server the
    load runs on (models are loaded on first use and kept for ``model_idle_seconds``)."""
    headers = {"Authorization": f"Bearer {key}", "X-Hume-Api-Key": key, "xi-api-key": key}
    async with httpx.AsyncClient(timeout=120, headers=headers) as client:
        for path, body in WARM:
            answers = await asyncio.gather(*(client.post(url + path, json=body) for _ in range(2)))
            for r in answers:
                r.raise_for_status()


def tree_rss_mib(pid: int) -> float:
    """RSS of ``pid`` and every descendant, in MiB (memory_abuse.py's measure)."""
    return tree_rss(pid) / 2**20


def make_key(data: Path, *args: str) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "orate.cli", "keys", "create", *args],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "ORATE_DATA_DIR": str(data)},
    )
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
        self.honest: list[float] = []  # seconds per ordinary request answered 200
        self.honest_503 = 0

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
                code = (err.get("code") or err.get("status") or "") if isinstance(err, dict) else ""
            except Exception:
                pass
            self.errors[f"{dialect} {r.status_code} {code}".strip()] += 1


async def ordinary(url: str, key: str, n: int, stop: float, tally: Tally) -> None:
    auth = {"Authorization": f"Bearer {key}"}
    calls = [
        (
            "openai",
            "POST",
            "/v1/audio/speech",
            {"model": "tts-1", "voice": "alloy", "input": SHORT, "response_format": "mp3"},
            auth,
        ),
        (
            "hume",
            "POST",
            "/v0/tts",
            {"utterances": [{"text": SHORT}], "format": {"type": "mp3"}},
            {"X-Hume-Api-Key": key},
        ),
        (
            "nanogpt",
            "POST",
            "/api/tts",
            {"text": SHORT, "model": "Kokoro-82m", "voice": "af_bella"},
            {"x-api-key": key},
        ),
        (
            "elevenlabs",
            "POST",
            "/v1/text-to-speech/21m00Tcm4TlvDq8ikWAM",
            {"text": SHORT, "model_id": "eleven_multilingual_v2"},
            {"xi-api-key": key},
        ),
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
                began = time.monotonic()
                r = await client.request(method, path, json=body, headers=headers)
                if r.status_code == 200:
                    tally.honest.append(time.monotonic() - began)
                elif r.status_code == 503:
                    tally.honest_503 += 1
                tally.result(dialect, r)
            except httpx.HTTPError as exc:
                tally.errors[f"{dialect} {type(exc).__name__}"] += 1


async def slow_reader(url: str, key: str, n: int, stop: float, tally: Tally) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=120) as client:
        while time.monotonic() < stop:
            try:
                async with client.stream(
                    "POST",
                    "/v1/audio/speech",
                    headers={"Authorization": f"Bearer {key}"},
                    json={
                        "model": "tts-1",
                        "voice": "nova",
                        "input": f"{n} {LONG}",
                        "response_format": "wav",
                    },
                ) as r:
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
                async with client.stream(
                    "POST",
                    "/v1/audio/speech",
                    headers={"Authorization": f"Bearer {key}"},
                    json={
                        "model": "tts-1",
                        "voice": "echo",
                        "input": f"{n} {LONG}",
                        "response_format": "mp3",
                    },
                ) as r:
                    async for _ in r.aiter_bytes():
                        break  # first chunk, then gone
                tally.served["disconnected after first chunk"] += 1
            except httpx.HTTPError as exc:
                tally.errors[f"disconnect {type(exc).__name__}"] += 1
            await asyncio.sleep(0.5)


async def over_quota(url: str, key: str, stop: float, tally: Tally) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        while time.monotonic() < stop:
            r = await client.post(
                "/v1/audio/speech",
                headers={"Authorization": f"Bearer {key}"},
                json={"model": "tts-1", "voice": "alloy", "input": SHORT},
            )
            tally.result("quota", r)
            await asyncio.sleep(0.2)


def _pls(n: int) -> bytes:
    lexemes = "".join(
        f"<lexeme><grapheme>word{i}</grapheme><alias>term {i}</alias></lexeme>" for i in range(n)
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?><lexicon version="1.0" '
        'xmlns="http://www.w3.org/2005/01/pronunciation-lexicon" alphabet="ipa" '
        f'xml:lang="en-US">{lexemes}</lexicon>'
    ).encode()


async def rules_attacker(url: str, key: str, stop: float, tally: Tally) -> None:
    """Catastrophic patterns and a 4,999-lexeme dictionary on an 800-word text."""
    auth = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=url, timeout=120, headers=auth) as client:
        redos = await client.post(
            "/v1/pronunciation-dictionaries",
            json={
                "name": "redos",
                "rules": [
                    {"string_to_replace": p, "regex": True, "type": "alias", "alias": "x"}
                    for p in ("((a)+)+b", "(a|a)*b", "((a)*)*b")
                ],
            },
        )
        big = await client.post(
            "/v1/pronunciation-dictionaries/add-from-file",
            data={"name": "big"},
            files={"file": ("big.pls", _pls(4999))},
        )
        tally.errors[f"attacker rules: dictionaries {redos.status_code}/{big.status_code}"] += 1
        if redos.status_code != 200 or big.status_code != 200:
            return
        ids = [redos.json()["id"], big.json()["id"]]
        words = " ".join(
            ("a" * 30 + "c") if i % 5 == 0 else f"word{i * 7 % 4999}" for i in range(800)
        )[:4000]
        while time.monotonic() < stop:
            r = await client.post(
                "/v1/audio/speech",
                json={
                    "model": "tts-1",
                    "voice": "alloy",
                    "input": words,
                    "response_format": "mp3",
                    "pronunciation_dictionary_locators": [
                        {"pronunciation_dictionary_id": i} for i in ids
                    ],
                },
            )
            code = r.json().get("error", {}).get("code", "") if r.status_code != 200 else ""
            tally.errors[f"attacker rules {r.status_code} {code}".strip()] += 1


async def job_flooder(url: str, key: str, stop: float, tally: Tally) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        while time.monotonic() < stop:
            r = await client.post(
                "/api/tts",
                headers={"x-api-key": key, "Prefer": "respond-async"},
                json={"text": LONG * 5, "model": "tts-1", "voice": "alloy"},
            )
            tally.errors[f"attacker jobs {r.status_code}"] += 1
            if r.status_code == 429:
                await asyncio.sleep(0.5)


async def wyoming_slowloris(port: int, stop: float, tally: Tally) -> None:
    """40 connections from 127.0.0.2 that send half an event, reopened when closed."""

    async def one() -> None:
        while time.monotonic() < stop:
            try:
                reader, writer = await asyncio.open_connection(
                    "127.0.0.1", port, local_addr=("127.0.0.2", 0)
                )
                writer.write(b'{"type":"desc')
                await writer.drain()
                tally.errors["attacker slowloris connections"] += 1
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(max(stop - time.monotonic(), 0.1)):
                        await reader.read()  # until the server closes it
                writer.close()
            except OSError:
                await asyncio.sleep(0.5)

    await asyncio.gather(*(one() for _ in range(40)))


async def wyoming_describe(port: int, stop: float, tally: Tally) -> None:
    """An honest Wyoming client: a describe every 2 s from 127.0.0.1."""
    while time.monotonic() < stop:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b'{"type": "describe"}\n')
            await writer.drain()
            async with asyncio.timeout(10):
                line = await reader.readline()
            kind = "info" if b'"info"' in line else "error" if b'"error"' in line else "none"
            tally.errors[f"wyoming describe: {kind}"] += 1
            writer.close()
        except (OSError, TimeoutError) as exc:
            tally.errors[f"wyoming describe: {type(exc).__name__}"] += 1
        await asyncio.sleep(2.0)


async def never_reading_hume(url: str, key: str, stop: float, tally: Tally) -> None:
    from websockets.asyncio.client import connect

    ws_url = url.replace("http", "ws") + f"/v0/tts/stream/input?api_key={key}"
    while time.monotonic() < stop:
        try:
            async with connect(ws_url, max_size=None) as ws:
                await ws.send('{"text": "' + ("word " * 1000) + '", "flush": true}')
                tally.errors["attacker never-reading websocket opened"] += 1
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(max(stop - time.monotonic(), 0.1)):
                        await ws.wait_closed()
        except Exception as exc:
            tally.errors[f"attacker websocket {type(exc).__name__}"] += 1
            await asyncio.sleep(1.0)


async def soak(
    url: str,
    keys: dict[str, str],
    seconds: float,
    pid: int,
    attackers: bool = False,
    wyoming: int = 0,
) -> tuple[Tally, list]:
    tally = Tally()
    stop = time.monotonic() + seconds
    rss: list[float] = []

    async def sample() -> None:
        while time.monotonic() < stop + 5:
            rss.append(tree_rss_mib(pid))
            await asyncio.sleep(1.0)

    tasks = [asyncio.create_task(sample())]
    tasks += [asyncio.create_task(ordinary(url, keys["team"], n, stop, tally)) for n in range(15)]
    tasks += [
        asyncio.create_task(slow_reader(url, keys["team"], n, stop, tally)) for n in range(10)
    ]
    tasks += [
        asyncio.create_task(disconnector(url, keys["team"], n, stop, tally)) for n in range(5)
    ]
    tasks += [asyncio.create_task(over_quota(url, keys[f"tiny{n}"], stop, tally)) for n in range(2)]
    if wyoming:
        tasks.append(asyncio.create_task(wyoming_describe(wyoming, stop, tally)))
    if attackers:
        tasks += [
            asyncio.create_task(rules_attacker(url, keys["mallory"], stop, tally)),
            asyncio.create_task(job_flooder(url, keys["mallory"], stop, tally)),
            asyncio.create_task(wyoming_slowloris(wyoming, stop, tally)),
        ]
        tasks += [
            asyncio.create_task(never_reading_hume(url, keys["mallory"], stop, tally))
            for _ in range(2)
        ]
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


def run(seconds: float, attackers: bool) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        keys = {
            "admin": make_key(data, "--name", "admin", "--admin"),
            "team": make_key(data, "--name", "team"),
            "mallory": make_key(data, "--name", "mallory"),
            "tiny0": make_key(data, "--name", "tiny0", "--quota-chars", "100"),
            "tiny1": make_key(data, "--name", "tiny1", "--quota-chars", "100"),
        }
        port, wyoming = free_port(), free_port()
        url = f"http://127.0.0.1:{port}"
        env = {
            **os.environ,
            "ORATE_DATA_DIR": str(data),
            "ORATE_STALL_TIMEOUT": "15",
            "ORATE_WYOMING_KEY": "team",
        }
        log = open(data / "server.log", "wb")  # noqa: SIM115
        proc = subprocess.Popen(
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
                "--wyoming",
                f"tcp://127.0.0.1:{wyoming}",
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                try:
                    if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.2)
            start_rss = tree_rss_mib(proc.pid)
            asyncio.run(warm_up(url, keys["admin"]))
            warm_rss, warm_server = tree_rss_mib(proc.pid), own_rss_mib(proc.pid)
            tally, rss = asyncio.run(soak(url, keys, seconds, proc.pid, attackers, wyoming))
            missing_row, missing_audio = asyncio.run(
                check_records(url, keys["admin"], tally.generations)
            )
            final_rss = tree_rss_mib(proc.pid)
            time.sleep(30)
            later_rss, later_server = tree_rss_mib(proc.pid), own_rss_mib(proc.pid)
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
            log.close()
        logged = (data / "server.log").read_text(errors="replace")
        tracebacks = logged.count("Traceback")
        # each traceback's last line (the exception), to say what they were
        lines = logged.splitlines()
        for n, line in enumerate(lines):
            if line.startswith("Traceback"):
                end = next(
                    (
                        m
                        for m in range(n + 1, len(lines))
                        if lines[m] and not lines[m].startswith((" ", "Traceback"))
                    ),
                    None,
                )
                if end is not None:
                    tally.errors[f"traceback: {lines[end][:150]}"] += 1
    honest = sorted(tally.honest)
    return {
        "tally": tally,
        "start": start_rss,
        "warm": warm_rss,
        "warm_server": warm_server,
        "later_server": later_server,
        "peak": max(rss or [0]),
        "final": final_rss,
        "later": later_rss,
        "lost_rows": missing_row,
        "lost_audio": missing_audio,
        "tracebacks": tracebacks,
        "median": statistics.median(honest) if honest else float("nan"),
        "p99": honest[min(int(len(honest) * 0.99), len(honest) - 1)] if honest else float("nan"),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument(
        "--attackers",
        action="store_true",
        help="run twice: as before, then with one key's attacks added",
    )
    args = ap.parse_args()
    runs = {"baseline": run(args.seconds, False)}
    if args.attackers:
        runs["with attackers"] = run(args.seconds, True)
    names = list(runs)
    print(f"# Soak: {args.seconds:.0f} s, 32 clients on loopback\n")
    print(f"load average at the end: {os.getloadavg()[0]:.1f} (2 cores)\n")
    for name in names:
        tally = runs[name]["tally"]
        assert isinstance(tally, Tally)
        print(f"## {name}\n\n| served | count |\n|---|---|")
        for k, v in sorted(tally.served.items()):
            print(f"| {k} | {v} |")
        print("\n| errors and attacker outcomes | count |\n|---|---|")
        for k, v in sorted(tally.errors.items()):
            print(f"| {k} | {v} |")
        print()
    rows = [
        ("ordinary requests answered 200", lambda r: len(r["tally"].honest)),
        ("ordinary latency median (s)", lambda r: f"{r['median']:.2f}"),
        ("ordinary latency p99 (s)", lambda r: f"{r['p99']:.2f}"),
        ("ordinary 503s", lambda r: r["tally"].honest_503),
        ("RSS at start, no voice loaded yet (MiB)", lambda r: f"{r['start']:.0f}"),
        ("RSS warm: the soak's voices loaded, idle (MiB)", lambda r: f"{r['warm']:.0f}"),
        ("peak RSS (MiB)", lambda r: f"{r['peak']:.0f}"),
        ("RSS after the soak (MiB)", lambda r: f"{r['final']:.0f}"),
        ("RSS 30 s later (MiB)", lambda r: f"{r['later']:.0f}"),
        ("30 s later minus warm (MiB)", lambda r: f"{r['later'] - r['warm']:+.0f}"),
        (
            "server process alone, warm → 30 s later (MiB)",
            lambda r: f"{r['warm_server']:.0f} → {r['later_server']:.0f}",
        ),
        ("lost: history row missing", lambda r: r["lost_rows"]),
        ("lost: audio missing", lambda r: r["lost_audio"]),
        ("tracebacks in the server log", lambda r: r["tracebacks"]),
    ]
    print("| figure | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    for label, value in rows:
        print(f"| {label} | " + " | ".join(str(value(runs[n])) for n in names) + " |")
    if len(names) == 2:
        base, hit = runs[names[0]], runs[names[1]]
        print(
            f"\nmedian ratio (with attackers / baseline): "
            f"{float(hit['median']) / float(base['median']):.2f}; p99 ratio: "
            f"{float(hit['p99']) / float(base['p99']):.2f}"
        )


if __name__ == "__main__":
    main()
