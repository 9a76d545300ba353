"""Run livekit-agents' TTS plugins against orate, as an agent would use them: the
plugin object, ``synthesize()`` for one text, ``stream()`` with text pushed, a flush
between segments, and ``end_input()``. Runs in livekit's own virtualenv
(tests/venvs.py); prints one JSON object for the test (or benchmark) to check.

    python livekit_tts.py MODE BASE_URL TEXT [TEXT ...]

MODE: ``openai-mp3``, ``openai-pcm``, ``openai-sse`` (``gpt-4o-mini-tts``, which the
plugin asks for as SSE), ``elevenlabs-synthesize`` or ``elevenlabs-stream`` (one
stream per TEXT, all at once on the plugin's pooled socket).
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import time
from typing import Any

import aiohttp
from livekit.agents import APIConnectOptions
from livekit.agents.types import USERDATA_TIMED_TRANSCRIPT
from livekit.plugins import elevenlabs, openai

VOICE = "21m00Tcm4TlvDq8ikWAM"  # Rachel
RATE = 16000


class Warnings(logging.Handler):
    """Every warning the plugins log (a missing request id shows up here)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.seen: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.seen.append(f"{record.name}: {record.getMessage()}")


class Segments:
    """Audio seconds, timed words and first-audio time per segment."""

    def __init__(self, t0: float) -> None:
        self.t0 = t0
        self.order: list[str] = []
        self.audio: dict[str, float] = {}
        self.words: dict[str, list[list[Any]]] = {}
        self.first: float | None = None
        self.request_ids: set[str] = set()

    def add(self, ev: Any) -> None:
        sid = ev.segment_id or ev.request_id
        if sid not in self.audio:
            self.order.append(sid)
            self.audio[sid], self.words[sid] = 0.0, []
        frame = ev.frame
        if frame.samples_per_channel and self.first is None:
            self.first = time.perf_counter()
        self.audio[sid] += frame.samples_per_channel / frame.sample_rate
        self.request_ids.add(ev.request_id)
        for w in frame.userdata.get(USERDATA_TIMED_TRANSCRIPT) or []:
            self.words[sid].append([str(w), w.start_time, w.end_time])

    def report(self, total: float, warnings: list[str]) -> dict[str, Any]:
        return {
            "segments": [
                {"id": s, "audio_s": self.audio[s], "words": self.words[s]} for s in self.order
            ],
            "first_audio_ms": (self.first - self.t0) * 1000 if self.first else None,
            "total_ms": total * 1000,
            "request_ids": sorted(self.request_ids),
            "warnings": warnings,
        }


async def main() -> None:
    mode, base, texts = sys.argv[1], sys.argv[2], sys.argv[3:]
    warnings = Warnings()
    logging.getLogger().addHandler(warnings)
    opts = APIConnectOptions(max_retry=0, timeout=60)
    async with aiohttp.ClientSession() as session:
        if mode.startswith("openai"):
            fmt = "pcm" if mode == "openai-pcm" else "mp3"
            model = "gpt-4o-mini-tts" if mode == "openai-sse" else "tts-1"
            tts = openai.TTS(
                model=model, voice="alloy", base_url=f"{base}/v1", api_key="k", response_format=fmt
            )
        else:
            tts = elevenlabs.TTS(
                voice_id=VOICE,
                model="eleven_flash_v2_5",
                api_key="k",
                base_url=f"{base}/v1",
                encoding=f"pcm_{RATE}",
                http_session=session,
            )
        t0 = time.perf_counter()
        seen = Segments(t0)
        if mode.endswith("-timed"):  # benchmark: one text at a time, each timed alone
            timings = []
            for text in texts:
                t1 = time.perf_counter()
                first = None
                if mode == "elevenlabs-stream-timed":
                    stream = tts.stream(conn_options=opts)
                    for word in text.split(" "):
                        stream.push_text(word + " ")
                    stream.flush()
                    stream.end_input()
                    events = stream
                else:
                    events = tts.synthesize(text, conn_options=opts)
                async for ev in events:
                    if first is None and ev.frame.samples_per_channel:
                        first = time.perf_counter()
                timings.append(
                    {
                        "first_ms": ((first or t1) - t1) * 1000,
                        "total_ms": (time.perf_counter() - t1) * 1000,
                    }
                )
            await tts.aclose()
            print(json.dumps({"timings": timings, "warnings": warnings.seen}))
            return
        if mode == "elevenlabs-stream":
            # one stream per segment (livekit 1.8 ends a stream's segment at its flush),
            # all at once over the plugin's one pooled socket: one context each
            async def segment(text: str) -> None:
                stream = tts.stream(conn_options=opts)
                for word in text.split(" "):  # as an LLM writes it
                    stream.push_text(word + " ")
                stream.flush()
                stream.end_input()
                async for ev in stream:
                    seen.add(ev)
                await stream.aclose()

            await asyncio.gather(*(segment(t) for t in texts))
        else:
            for text in texts:
                async for ev in tts.synthesize(text, conn_options=opts):
                    seen.add(ev)
        total = time.perf_counter() - t0
        await tts.aclose()
    print(json.dumps(seen.report(total, warnings.seen)))


if __name__ == "__main__":
    asyncio.run(main())
