"""Section "hume": time to the first audio chunk in Hume's streaming dialect, against
the OpenAI route as the baseline, for the 218-word text in pcm.

One server with the cache off (every request is synthesized). Requests go one at a
time, rotating through the routes so the machine's drift hits all of them alike,
and the server's main process is idle again before the next one starts:

- OpenAI ``POST /v1/audio/speech``: first audio = first body byte (as the core
  section measures it);
- Hume ``POST /v0/tts/stream/json`` with ``instant_mode``: first audio = the first
  complete NDJSON line whose ``type`` is ``audio``;
- Hume WebSocket ``/v0/tts/stream/input``: first audio = the first JSON frame whose
  ``type`` is ``audio``, timed from sending the first message (the connection is
  open before that); then ``close`` is sent and the stream read to the server's
  close (code 1000). Measured with the client's default options, as the ``hume``
  SDK connects (permessage-deflate offered), and once more with compression off.
"""

from __future__ import annotations

import asyncio
import base64
import json
import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from harness import (
    HOST,
    REQUEST_TIMEOUT,
    SPEECH_PATH,
    TEXTS,
    BenchmarkError,
    HttpClient,
    cpu_snapshot,
    fmt_ms,
    load_cell,
    progress,
    read_body,
    read_head,
    serving,
    settle,
)

LABEL = "218 words"
HUME_VOICE = {"name": "alloy", "provider": "HUME_AI"}
JSON_PATH = "/v0/tts/stream/json"
WS_PATH = "/v0/tts/stream/input?format_type=pcm&no_binary=true"
SERVER_ENV = {"ORATE_CACHE_ENABLED": "false"}
GOAL_MS = 2.0  # Hume − OpenAI, p50 time to first audio
# output rates: OpenAI's pcm is 24 kHz by definition; Hume's is 48 kHz (16-bit mono)
PCM_BYTES_PER_SECOND = {"openai": 48_000, "json": 96_000, "ws": 96_000, "ws-plain": 96_000}


@dataclass(frozen=True)
class Route:
    key: str
    title: str
    goal: bool  # checked against the OpenAI baseline


ROUTES = (
    Route("openai", "OpenAI `POST /v1/audio/speech`", False),
    Route("json", "Hume `POST /v0/tts/stream/json`", True),
    Route("ws", "Hume WebSocket `/v0/tts/stream/input`", True),
    Route("ws-plain", "Hume WebSocket, compression off", False),
)


@dataclass(frozen=True)
class HumeBudget:
    rounds: int  # requests per route
    warm: int  # requests per route before measuring


FULL = HumeBudget(rounds=20, warm=3)
QUICK = HumeBudget(rounds=6, warm=2)


@dataclass(frozen=True)
class Stream:
    """One streamed request: seconds to its first audio and to its end, audio bytes."""

    first: float
    total: float
    audio: int
    ok: bool
    why: str = ""
    payload: int = 0  # bytes of body or frames as the client received them (decompressed)


def failed(why: str) -> Stream:
    return Stream(math.nan, math.nan, 0, False, why)


@dataclass
class RouteResult:
    streams: list[Stream] = field(default_factory=list)
    cpu: list[tuple[float, float]] = field(default_factory=list)  # main, workers per request
    extension: str = ""  # WebSocket extensions the server accepted

    @property
    def good(self) -> list[Stream]:
        return [s for s in self.streams if s.ok]

    def p50(self, attr: str) -> float:
        values = [getattr(s, attr) for s in self.good]
        return statistics.median(values) if values else math.nan

    def cpu_ms(self) -> str:
        if not self.cpu:
            return "n/a"
        n = len(self.cpu)
        main, workers = (sum(c[i] for c in self.cpu) for i in (0, 1))
        return f"{1e3 * main / n:.1f} / {1e3 * workers / n:.1f}"


def ndjson_body(text: str) -> bytes:
    return json.dumps(
        {
            "utterances": [{"text": text, "voice": HUME_VOICE}],
            "format": {"type": "pcm"},
            "instant_mode": True,
        }
    ).encode()


def openai_body(text: str) -> bytes:
    return json.dumps(
        {"model": "tts-1", "voice": "alloy", "input": text, "response_format": "pcm"}
    ).encode()


def _audio_of(messages: list[dict]) -> tuple[int, str]:
    """Audio bytes carried by Hume messages, and what is wrong with them ('' if nothing)."""
    audio = [m for m in messages if m.get("type") == "audio"]
    if not audio:
        return 0, "no audio message"
    if audio[-1].get("is_last_chunk") is not True:
        return 0, "the last audio message is not marked is_last_chunk"
    return sum(len(base64.b64decode(m["audio"])) for m in audio), ""


async def openai_request(client: HttpClient, body: bytes) -> Stream:
    s = await client.safe_post(SPEECH_PATH, body)
    if not s.ok:
        return failed(f"status {s.status}" if s.status else "connection failed")
    return Stream(s.ttfb, s.latency, s.nbytes, True, payload=s.nbytes)


async def ndjson_request(client: HttpClient, body: bytes) -> Stream:
    """POST, and take the time when the first complete ``"type":"audio"`` line is in."""
    try:
        async with asyncio.timeout(REQUEST_TIMEOUT):
            reader, writer = await client.connect()
            head = (
                f"POST {JSON_PATH} HTTP/1.1\r\nHost: {HOST}:{client.port}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
            )
            start = time.perf_counter()
            writer.write(head.encode("ascii") + body)
            status, headers = await read_head(reader)
            data = bytearray()
            first: float | None = None
            scanned = 0  # lines before this offset were parsed
            async for piece in read_body(reader, headers):
                data += piece
                while first is None and (end := data.find(b"\n", scanned)) >= 0:
                    line = data[scanned:end]
                    scanned = end + 1
                    if json.loads(line).get("type") == "audio":
                        first = time.perf_counter()
            done = time.perf_counter()
            if headers.get("connection", "").lower() == "close":
                await client.close()
    except (OSError, ValueError, IndexError, asyncio.IncompleteReadError, TimeoutError) as exc:
        await client.close()
        return failed(f"{type(exc).__name__}: {exc}")
    if status != 200:
        return failed(f"status {status}: {bytes(data[:200])!r}")
    if first is None:
        return failed("no audio line")
    audio, why = _audio_of([json.loads(line) for line in data.splitlines() if line])
    return Stream(first - start, done - start, audio, not why, why, len(data))


async def ws_request(port: int, text: str, compression: str | None) -> tuple[Stream, str]:
    """One WebSocket session: text, flush, first audio frame, close, read to the end."""
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed, WebSocketException

    frames: list[str] = []
    extension = ""
    try:
        async with asyncio.timeout(REQUEST_TIMEOUT):
            # proxy=None: a proxy set in the environment must not carry loopback traffic
            async with connect(
                f"ws://{HOST}:{port}{WS_PATH}",
                compression=compression,
                proxy=None,
                max_size=None,
                ping_interval=None,
            ) as ws:
                extension = (
                    ws.response.headers.get("Sec-WebSocket-Extensions", "")
                    if ws.response is not None
                    else ""
                )
                start = time.perf_counter()
                await ws.send(json.dumps({"text": text, "voice": HUME_VOICE}))
                await ws.send('{"flush": true}')
                first: float | None = None
                try:
                    while True:
                        frame = await ws.recv()
                        if isinstance(frame, bytes):
                            continue  # no_binary=true: none expected
                        frames.append(frame)
                        if first is None and json.loads(frame).get("type") == "audio":
                            first = time.perf_counter()
                            await ws.send('{"close": true}')
                except ConnectionClosed:
                    pass
                done = time.perf_counter()
                code, reason = ws.close_code, ws.close_reason
    except (OSError, TimeoutError, WebSocketException) as exc:
        return failed(f"{type(exc).__name__}: {exc}"), extension
    if code != 1000:
        return failed(f"closed with {code} {reason!r}"), extension
    if first is None:
        return failed("no audio frame"), extension
    audio, why = _audio_of([json.loads(f) for f in frames])
    return Stream(
        first - start, done - start, audio, not why, why, sum(len(f) for f in frames)
    ), extension


@dataclass
class HumeResults:
    routes: dict[str, RouteResult] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    rounds: int = 0


def run_hume(
    runner: asyncio.Runner, quick: bool, extra_env: dict[str, str], notes: list[str]
) -> HumeResults:
    budget = QUICK if quick else FULL
    text = TEXTS[LABEL]
    env = {**extra_env, **SERVER_ENV}
    results = HumeResults(
        routes={r.key: RouteResult() for r in ROUTES}, env=env, rounds=budget.rounds
    )
    with serving(env, notes, "hume") as (proc, port, _):
        progress(f"hume: server ready (pid {proc.pid}, port {port})")
        client = HttpClient(HOST, port)

        async def one(key: str) -> Stream:
            if key == "openai":
                return await openai_request(client, openai_body(text))
            if key == "json":
                return await ndjson_request(client, ndjson_body(text))
            stream, extension = await ws_request(port, text, "deflate" if key == "ws" else None)
            results.routes[key].extension = extension or "none"
            return stream

        # both workers render each output rate (24 kHz for OpenAI, 48 kHz for Hume) first
        for body, path in ((openai_body(text), SPEECH_PATH), (ndjson_body(text), JSON_PATH)):
            warm = runner.run(load_cell(port, body, 2, 0.0, 0, requests=4, path=path))
            if warm.errors:
                raise BenchmarkError(f"hume warm-up on {path} failed ({warm.failures()})")
        for n in range(budget.warm):
            for route in ROUTES:
                stream = runner.run(one(route.key))
                if not stream.ok:
                    raise BenchmarkError(f"hume warm-up {route.key} #{n + 1} failed: {stream.why}")
        settle(proc.pid)
        keys = [r.key for r in ROUTES]
        for n in range(budget.rounds):
            for key in keys[n % len(keys) :] + keys[: n % len(keys)]:  # rotate who goes first
                before = cpu_snapshot(proc.pid)
                stream = runner.run(one(key))
                settle(proc.pid)  # history write of this request: its own, not the next's
                after = cpu_snapshot(proc.pid)
                results.routes[key].streams.append(stream)
                results.routes[key].cpu.append((after[0] - before[0], after[1] - before[1]))
                if not stream.ok:
                    notes.append(f"hume {key} request {n + 1} failed: {stream.why}")
        runner.run(client.close())
        if proc.poll() is not None:
            notes.append(f"the hume server exited early (code {proc.returncode})")
    for route in ROUTES:
        rr = results.routes[route.key]
        progress(
            f"hume {route.key}: first audio p50 {rr.p50('first') * 1e3:.2f} ms, end "
            f"{rr.p50('total') * 1e3:.0f} ms, {len(rr.good)}/{len(rr.streams)} ok, "
            f"CPU main/workers {rr.cpu_ms()} ms per request"
        )
    _check_audio(results, notes)
    return results


def _check_audio(results: HumeResults, notes: list[str]) -> None:
    """Every route should deliver the same speech: compare audio seconds."""
    seconds = {
        k: statistics.median(s.audio for s in rr.good) / PCM_BYTES_PER_SECOND[k]
        for k, rr in results.routes.items()
        if rr.good
    }
    if seconds and max(seconds.values()) - min(seconds.values()) > 0.1:
        notes.append(
            "hume: the routes returned different amounts of audio: "
            + ", ".join(f"{k} {v:.2f} s" for k, v in seconds.items())
        )


def render_hume(r: HumeResults) -> list[str]:
    base = r.routes["openai"]
    base_first = base.p50("first")

    def diff(rr: RouteResult) -> float:
        return (rr.p50("first") - base_first) * 1e3

    def row(name: str, f: Callable[[str, RouteResult], str]) -> str:
        return "| " + " | ".join([name, *(f(rt.key, r.routes[rt.key]) for rt in ROUTES)]) + " |"

    env = " ".join(f"{k}={v}" for k, v in r.env.items())
    ws = r.routes["ws"]
    lines = [
        "## Hume dialect: time to first audio",
        "",
        f"{LABEL} text, pcm, one request at a time, {r.rounds} per route, routes rotated "
        f"each round; server `{env}`, otherwise defaults (history on). OpenAI's pcm is "
        "24 kHz, Hume's 48 kHz (both resampled from the engine's 22.05 kHz), and Hume "
        "carries it base64 in JSON: Hume streams about 2.7× the bytes. The WebSocket is "
        "timed from sending the first message (connection already open); its first "
        "sentences are spoken before the flush, as soon as they are complete in the "
        f"buffer. WebSocket extensions accepted by the server: default client "
        f"`{ws.extension or 'n/a'}`, compression off `{r.routes['ws-plain'].extension or 'n/a'}`.",
        "",
        "| metric | " + " | ".join(rt.title for rt in ROUTES) + " |",
        "|---|" + "|".join(["---:"] * len(ROUTES)) + "|",
        row("p50 time to first audio (ms)", lambda k, rr: fmt_ms(rr.p50("first"))),
        row(
            "difference from OpenAI (ms)",
            lambda k, rr: "—" if k == "openai" else f"{diff(rr):+.2f}",
        ),
        row("p50 time to the end of the stream (ms)", lambda k, rr: fmt_ms(rr.p50("total"))),
        row(
            "audio received (s)",
            lambda k, rr: (
                "n/a"
                if not rr.good
                else f"{statistics.median(s.audio for s in rr.good) / PCM_BYTES_PER_SECOND[k]:.2f}"
            ),
        ),
        row(
            "payload received (MB)",
            lambda k, rr: (
                "n/a"
                if not rr.good
                else f"{statistics.median(s.payload for s in rr.good) / 1e6:.1f}"
            ),
        ),
        row("server CPU ms per request: main / workers", lambda k, rr: rr.cpu_ms()),
        row("requests ok / sent", lambda k, rr: f"{len(rr.good)} / {len(rr.streams)}"),
        "",
    ]
    for rt in ROUTES:
        if not rt.goal:
            continue
        rr = r.routes[rt.key]
        d = diff(rr)
        verdict = "PASS" if d <= GOAL_MS else "MISS"
        lines.append(
            f"- {verdict} {rt.title} − OpenAI, p50 time to first audio: {d:+.2f} ms "
            f"({rr.p50('first') * 1e3:.2f} − {base_first * 1e3:.2f}, measured "
            f"alternately; goal ≤ +{GOAL_MS:g} ms)"
        )
    lines.append("")
    return lines
