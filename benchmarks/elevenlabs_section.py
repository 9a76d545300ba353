"""Section "elevenlabs": time to first audio in the ElevenLabs dialect against the OpenAI
route, and what per-character alignment costs, for the 218-word text in pcm at 24 kHz.

One server with the cache off (every request is synthesized). Requests go one at a
time, rotating through the routes, the main process idle again before the next:

- OpenAI ``POST /v1/audio/speech`` (pcm, 24 kHz): first audio = first body byte;
- ElevenLabs ``POST /v1/text-to-speech/Rachel/stream?output_format=pcm_24000``: first
  body byte (Rachel and alloy are the same espeak voice, so the audio is identical);
- ElevenLabs WebSocket ``/v1/text-to-speech/Rachel/stream-input``: the BOS message is
  sent on an open connection, then the text with ``flush``; first audio = the first
  message with audio, timed from sending the text; then EOS, read to ``isFinal`` and
  the server's close (1000);
- ElevenLabs ``POST /v1/text-to-speech/Rachel`` and ``…/with-timestamps`` (whole
  responses): the latency difference is what word timestamps, per-character
  alignment and the JSON/base64 answer cost together. The alignment function alone
  is also timed in-process on the same text.
"""

from __future__ import annotations

import asyncio
import base64
import json
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from harness import (
    HOST,
    SPEECH_PATH,
    TEXTS,
    BenchmarkError,
    HttpClient,
    cpu_snapshot,
    fmt_ms,
    load_cell,
    progress,
    serving,
    settle,
)
from hume_section import RouteResult, Stream, failed, openai_body, openai_request

LABEL = "218 words"
SERVER_ENV = {"ORATE_CACHE_ENABLED": "false"}
GOAL_MS = 2.0  # ElevenLabs − OpenAI, p50 time to first audio
ALIGN_GOAL = 0.05  # alignment's share of a /with-timestamps request
VOICE = "21m00Tcm4TlvDq8ikWAM"  # Rachel
QUERY = "?output_format=pcm_24000"
STREAM_PATH = f"/v1/text-to-speech/{VOICE}/stream{QUERY}"
CONVERT_PATH = f"/v1/text-to-speech/{VOICE}{QUERY}"
TIMESTAMPS_PATH = f"/v1/text-to-speech/{VOICE}/with-timestamps{QUERY}"
WS_PATH = f"/v1/text-to-speech/{VOICE}/stream-input{QUERY}"


@dataclass(frozen=True)
class Route:
    key: str
    title: str
    goal: bool


ROUTES = (
    Route("openai", "OpenAI `POST /v1/audio/speech`", False),
    Route("stream", "ElevenLabs `POST …/stream`", True),
    Route("ws", "ElevenLabs WebSocket `…/stream-input`", True),
    Route("convert", "ElevenLabs `POST /v1/text-to-speech/{id}`", False),
    Route("timestamps", "ElevenLabs `POST …/with-timestamps`", False),
)


@dataclass(frozen=True)
class Budget:
    rounds: int
    warm: int


FULL = Budget(rounds=20, warm=3)
QUICK = Budget(rounds=6, warm=2)


def el_body(text: str) -> bytes:
    return json.dumps({"text": text, "model_id": "eleven_flash_v2_5"}).encode()


async def http_request(client: HttpClient, path: str, body: bytes) -> Stream:
    s = await client.safe_post(path, body)
    if not s.ok:
        return failed(f"status {s.status}" if s.status else "connection failed")
    return Stream(s.ttfb, s.latency, s.nbytes, True, payload=s.nbytes)


async def ws_request(port: int, text: str) -> Stream:
    """One stream-input session: BOS, text + flush, first audio, EOS, read to the close."""
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed, WebSocketException

    messages: list[dict] = []
    try:
        async with (
            asyncio.timeout(60),
            connect(
                f"ws://{HOST}:{port}{WS_PATH}",
                compression=None,
                proxy=None,
                max_size=None,
                ping_interval=None,
            ) as ws,
        ):
            await ws.send(
                json.dumps({"text": " ", "generation_config": {"chunk_length_schedule": [50]}})
            )
            start = time.perf_counter()
            await ws.send(json.dumps({"text": text + " ", "flush": True}))
            first: float | None = None
            sent_eos = False
            try:
                while True:
                    msg = json.loads(await ws.recv())
                    messages.append(msg)
                    if first is None and msg.get("audio"):
                        first = time.perf_counter()
                    if not sent_eos:
                        await ws.send('{"text": ""}')
                        sent_eos = True
            except ConnectionClosed:
                pass
            done = time.perf_counter()
            code = ws.close_code
    except (OSError, TimeoutError, WebSocketException) as exc:
        return failed(f"{type(exc).__name__}: {exc}")
    if code != 1000 or not messages or messages[-1] != {"isFinal": True}:
        return failed(f"closed with {code}, last message {str(messages[-1:])[:200]}")
    if first is None:
        return failed("no audio message")
    audio = sum(len(base64.b64decode(m["audio"])) for m in messages if m.get("audio"))
    return Stream(
        first - start, done - start, audio, True, payload=sum(len(json.dumps(m)) for m in messages)
    )


def alignment_cost(text: str, repeats: int) -> float:
    """Seconds per call of the per-character alignment on ``text`` with one word
    timestamp per word (the size of the real input; times are made up)."""
    import re

    from orate.runtime.timestamps import Timestamp
    from orate.speech.alignment import char_alignment

    stamps = [
        Timestamp("word", m.group(), n * 300.0, n * 300.0 + 250, m.start(), m.end())
        for n, m in enumerate(re.finditer(r"\w+", text))
    ]
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        char_alignment(text, 0, len(text), stamps, 0.0, len(stamps) * 300.0)
        best = min(best, time.perf_counter() - start)
    return best


@dataclass
class ElevenLabsResults:
    routes: dict[str, RouteResult] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    rounds: int = 0
    align_s: float = 0.0


def run_elevenlabs(
    runner: asyncio.Runner, quick: bool, extra_env: dict[str, str], notes: list[str]
) -> ElevenLabsResults:
    budget = QUICK if quick else FULL
    text = TEXTS[LABEL]
    env = {**extra_env, **SERVER_ENV}
    results = ElevenLabsResults(
        routes={r.key: RouteResult() for r in ROUTES}, env=env, rounds=budget.rounds
    )
    with serving(env, notes, "elevenlabs") as (proc, port, _):
        progress(f"elevenlabs: server ready (pid {proc.pid}, port {port})")
        client = HttpClient(HOST, port)

        async def one(key: str) -> Stream:
            if key == "openai":
                return await openai_request(client, openai_body(text))
            if key == "ws":
                return await ws_request(port, text)
            path = {"stream": STREAM_PATH, "convert": CONVERT_PATH, "timestamps": TIMESTAMPS_PATH}[
                key
            ]
            return await http_request(client, path, el_body(text))

        for body, path in ((openai_body(text), SPEECH_PATH), (el_body(text), STREAM_PATH)):
            warm = runner.run(load_cell(port, body, 2, 0.0, 0, requests=4, path=path))
            if warm.errors:
                raise BenchmarkError(f"elevenlabs warm-up on {path} failed ({warm.failures()})")
        for n in range(budget.warm):
            for route in ROUTES:
                stream = runner.run(one(route.key))
                if not stream.ok:
                    raise BenchmarkError(
                        f"elevenlabs warm-up {route.key} #{n + 1} failed: {stream.why}"
                    )
        settle(proc.pid)
        keys = [r.key for r in ROUTES]
        for n in range(budget.rounds):
            for key in keys[n % len(keys) :] + keys[: n % len(keys)]:
                before = cpu_snapshot(proc.pid)
                stream = runner.run(one(key))
                settle(proc.pid)
                after = cpu_snapshot(proc.pid)
                results.routes[key].streams.append(stream)
                results.routes[key].cpu.append((after[0] - before[0], after[1] - before[1]))
                if not stream.ok:
                    notes.append(f"elevenlabs {key} request {n + 1} failed: {stream.why}")
        runner.run(client.close())
        if proc.poll() is not None:
            notes.append(f"the elevenlabs server exited early (code {proc.returncode})")
    results.align_s = alignment_cost(text, 30 if quick else 100)
    for route in ROUTES:
        rr = results.routes[route.key]
        progress(
            f"elevenlabs {route.key}: first audio p50 {rr.p50('first') * 1e3:.2f} ms, "
            f"end {rr.p50('total') * 1e3:.0f} ms, {len(rr.good)}/{len(rr.streams)} ok"
        )
    return results


def render_elevenlabs(r: ElevenLabsResults) -> list[str]:
    base_first = r.routes["openai"].p50("first")

    def diff(rr: RouteResult) -> float:
        return (rr.p50("first") - base_first) * 1e3

    def row(name: str, f: Callable[[str, RouteResult], str]) -> str:
        return "| " + " | ".join([name, *(f(rt.key, r.routes[rt.key]) for rt in ROUTES)]) + " |"

    env = " ".join(f"{k}={v}" for k, v in r.env.items())
    plain, stamped = r.routes["convert"].p50("total"), r.routes["timestamps"].p50("total")
    lines = [
        "## ElevenLabs dialect: time to first audio and alignment cost",
        "",
        f"{LABEL} text, pcm at 24 kHz everywhere, one request at a time, {r.rounds} per "
        f"route, routes rotated each round; server `{env}`, otherwise defaults. The "
        "WebSocket is timed from sending the text (with `flush`) on an open connection "
        "after the BOS message; `/with-timestamps` answers one JSON document, so its "
        '"first audio" is its end.',
        "",
        "| metric | " + " | ".join(rt.title for rt in ROUTES) + " |",
        "|---|" + "|".join(["---:"] * len(ROUTES)) + "|",
        row("p50 time to first audio (ms)", lambda k, rr: fmt_ms(rr.p50("first"))),
        row(
            "difference from OpenAI (ms)",
            lambda k, rr: "—" if k == "openai" else f"{diff(rr):+.2f}",
        ),
        row("p50 time to the end (ms)", lambda k, rr: fmt_ms(rr.p50("total"))),
        row(
            "audio or body received (MB)",
            lambda k, rr: (
                "n/a" if not rr.good else f"{statistics.median(s.audio for s in rr.good) / 1e6:.2f}"
            ),
        ),
        row("server CPU ms per request: main / workers", lambda k, rr: rr.cpu_ms()),
        row("requests ok / sent", lambda k, rr: f"{len(rr.good)} / {len(rr.streams)}"),
        "",
    ]
    for rt in ROUTES:
        if rt.goal:
            d = diff(r.routes[rt.key])
            lines.append(
                f"- {'PASS' if d <= GOAL_MS else 'MISS'} {rt.title} − OpenAI, p50 "
                f"time to first audio: {d:+.2f} ms (goal ≤ +{GOAL_MS:g} ms)"
            )
    share = r.align_s / stamped if stamped else float("nan")
    lines.append(
        f"- {'PASS' if share < ALIGN_GOAL else 'MISS'} per-character alignment: "
        f"{r.align_s * 1e3:.2f} ms in-process for {len(TEXTS[LABEL])} characters = "
        f"{share:.1%} of a `/with-timestamps` request ({stamped * 1e3:.1f} ms; goal "
        f"< {ALIGN_GOAL:.0%}). The whole route, word timestamps and base64 JSON "
        f"included, costs {(stamped - plain) * 1e3:+.1f} ms "
        f"({(stamped - plain) / stamped:+.1%}) against the plain route "
        f"({plain * 1e3:.1f} ms)."
    )
    lines.append("")
    return lines
