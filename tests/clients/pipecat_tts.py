"""Run one of pipecat's TTS services against orate, as a pipecat app would: a pipeline
with the service in it, utterances queued as ``TTSSpeakFrame``s, audio and word
timestamps taken from what the service produces. Runs in pipecat's own virtualenv
(tests/venvs.py); prints one JSON object for the test (or benchmark) to check.

    python pipecat_tts.py SERVICE BASE_URL RATE TEXT [TEXT ...]

SERVICE is ``openai``, ``elevenlabs-http`` or ``elevenlabs-ws``.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any

import aiohttp
from pipecat.frames.frames import (
    EndFrame,
    ErrorFrame,
    Frame,
    TTSAudioRawFrame,
    TTSSpeakFrame,
    TTSStoppedFrame,
)
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.runner import PipelineRunner
from pipecat.pipeline.task import PipelineParams, PipelineTask
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.services.elevenlabs.tts import ElevenLabsHttpTTSService, ElevenLabsTTSService
from pipecat.services.openai.tts import OpenAITTSService

VOICE = "21m00Tcm4TlvDq8ikWAM"  # Rachel


class Recorder(FrameProcessor):
    """Sits after the TTS service: audio bytes per context, first-audio times, errors."""

    def __init__(self, rate: int, started: list[float]) -> None:
        super().__init__()
        self.rate = rate
        self.started = started
        self.audio: dict[str, int] = {}
        self.order: list[str] = []
        self.first: dict[str, float] = {}
        self.last: dict[str, float] = {}
        self.stopped: dict[str, float] = {}
        self.errors: list[str] = []

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, TTSAudioRawFrame):
            cid = str(frame.context_id)
            if cid not in self.audio:
                self.audio[cid] = 0
                self.order.append(cid)
                self.first[cid] = time.perf_counter()
            self.audio[cid] += len(frame.audio)
            self.last[cid] = time.perf_counter()
        elif isinstance(frame, TTSStoppedFrame):
            self.stopped[str(frame.context_id)] = time.perf_counter()
        elif isinstance(frame, ErrorFrame):
            self.errors.append(str(frame.error))
        await self.push_frame(frame, direction)


def words_recorded(cls: type) -> type:
    """The service, recording the word times it computes (seconds from the audio start
    of the context, which is what pipecat times its word frames against)."""

    class Recording(cls):  # type: ignore[misc, valid-type]
        def __init__(self, *a: Any, **kw: Any) -> None:
            super().__init__(*a, **kw)
            self.word_log: list[tuple[str, str, float]] = []
            self.asked: dict[str, float] = {}  # when the service was given each text

        async def run_tts(self, text, context_id):  # type: ignore[no-untyped-def]
            self.asked.setdefault(str(context_id), time.perf_counter())
            async for frame in super().run_tts(text, context_id):
                yield frame

        async def add_word_timestamps(self, word_times, context_id=None, *a, **kw):  # type: ignore[no-untyped-def]
            for word, t in word_times:
                self.word_log.append((str(context_id), word, float(t)))
            return await super().add_word_timestamps(word_times, context_id, *a, **kw)

    return Recording


async def main() -> None:
    service, base, rate, texts = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4:]
    async with aiohttp.ClientSession() as session:
        if service == "openai":
            tts = words_recorded(OpenAITTSService)(
                api_key="k",
                base_url=f"{base}/v1",
                sample_rate=rate,
                settings=OpenAITTSService.Settings(voice="alloy", model="tts-1"),
            )
        elif service == "elevenlabs-http":
            tts = words_recorded(ElevenLabsHttpTTSService)(
                api_key="k",
                base_url=base,
                aiohttp_session=session,
                sample_rate=rate,
                settings=ElevenLabsHttpTTSService.Settings(voice=VOICE, model="eleven_flash_v2_5"),
            )
        else:
            tts = words_recorded(ElevenLabsTTSService)(
                api_key="k",
                url=base.replace("http", "ws", 1),
                sample_rate=rate,
                settings=ElevenLabsTTSService.Settings(
                    voice=VOICE, model="eleven_flash_v2_5", stability=0.5
                ),
            )
        started: list[float] = []
        rec = Recorder(rate, started)
        task = PipelineTask(
            Pipeline([tts, rec]),
            params=PipelineParams(audio_out_sample_rate=rate),
            idle_timeout_secs=60,
        )
        t0 = time.perf_counter()
        for text in texts:
            await task.queue_frame(TTSSpeakFrame(text))
        await task.queue_frame(EndFrame())
        await PipelineRunner(handle_sigint=False).run(task)
        total = time.perf_counter() - t0
    contexts = [
        {
            "id": cid,
            "audio_s": rec.audio[cid] / 2 / rate,
            "words": [[w, t] for c, w, t in tts.word_log if c == cid],
            # from the text reaching the service to its first and last audio
            "first_ms": (rec.first[cid] - tts.asked[cid]) * 1000 if cid in tts.asked else None,
            "total_ms": (rec.last[cid] - tts.asked[cid]) * 1000 if cid in tts.asked else None,
        }
        for cid in rec.order
    ]
    print(
        json.dumps(
            {
                "contexts": contexts,
                "errors": rec.errors,
                "first_audio_ms": (min(rec.first.values()) - t0) * 1000 if rec.first else None,
                "total_ms": total * 1000,
                "orphan_words": [[c, w, t] for c, w, t in tts.word_log if c not in rec.audio],
            }
        )
    )


if __name__ == "__main__":
    asyncio.run(main())
