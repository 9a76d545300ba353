"""Synthesis by an upstream provider, as pipeline events (the gateway path).

The provider's audio passes through untouched when it is already the format
and rate the caller asked for; otherwise the provider was asked for WAV or
PCM (engines/upstream/client.py), which is decoded and encoded again here, chunk by
chunk, off the event loop. Failures before the first byte become the
gateway errors of docs/wire.md: ``no_provider`` (404) when no provider could be
reached, ``upstream_error`` (502) when one answered with an error.
"""

from __future__ import annotations

import asyncio
import io
import struct
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import numpy as np

from orate.audio.encoder import make_encoder
from orate.engines import upstream
from orate.runtime.events import EventKind
from orate.speech.types import Plan, SpeechError, SpeechEvent, SynthesisFailed

if TYPE_CHECKING:
    import httpx


def _pcm_of_wav_header(head: bytes) -> tuple[int, int]:
    """(sample rate, offset of the samples) of a canonical or streamed WAV header."""
    if head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        raise SynthesisFailed("the upstream sent WAV without a RIFF header")
    rate = struct.unpack_from("<I", head, 24)[0]
    pos = 12
    while pos + 8 <= len(head):
        tag, size = head[pos : pos + 4], struct.unpack_from("<I", head, pos + 4)[0]
        if tag == b"data":
            return rate, pos + 8
        pos += 8 + size
    raise SynthesisFailed("the upstream's WAV header has no data chunk in its first bytes")


def _duration(data: bytes, fmt: str, rate: int | None) -> float:
    """Seconds of audio in a whole passed-through response, from headers where they say
    (decoding 68 s of mp3 just to count it took 40 ms); decoded only as a last resort."""
    if fmt == "pcm":
        return len(data) / 2 / (rate or 24000)
    import av  # here, not at the top: a server that never proxies never loads FFmpeg

    try:
        container = av.open(io.BytesIO(data), "r")
        stream = container.streams.audio[0]
        if container.duration:
            return container.duration / av.time_base
        return sum(f.samples for f in container.decode(stream)) / stream.rate
    except (av.FFmpegError, IndexError):
        return 0.0


async def upstream_events(
    plan: Plan, providers: list[upstream.Provider], client: httpx.AsyncClient
) -> AsyncIterator[SpeechEvent]:
    text = plan.job.text
    voice = plan.voices[0].voice if plan.voices else "alloy"
    speed = plan.job.segments[0].speed if plan.job.segments else 1.0
    fmt = plan.format.name
    try:
        provider, audio = await upstream.synthesize(
            providers,
            model=plan.model.id,
            text=text,
            voice=voice,
            speed=speed,
            fmt=fmt,
            client=client,
        )
    except upstream.NoProvider as exc:
        tried = "; ".join(str(a) for a in exc.attempts) or "none is configured"
        raise SpeechError(
            404,
            "no_provider",
            f"no upstream provider of {plan.model.id!r} could be reached ({tried})",
            "model",
        ) from None
    except upstream.ProviderError as exc:
        raise SpeechError(
            502,
            "upstream_error",
            f"provider {exc.provider.name!r} answered {exc.status}: {exc.message}",
            "model",
        ) from None
    passthrough = audio.format == fmt and audio.sample_rate in (None, plan.sample_rate)
    try:
        if passthrough:
            kept = bytearray()
            async for chunk in audio.chunks():
                kept += chunk
                yield SpeechEvent(EventKind.AUDIO, audio=chunk)
            seconds = await asyncio.to_thread(_duration, bytes(kept), fmt, audio.sample_rate)
        else:
            seconds = 0.0
            async for event in _reencode(plan, audio):
                if event.kind == "done":
                    seconds = float(event.info["duration"])
                else:
                    yield event
    except upstream.StreamInterrupted as exc:
        raise SynthesisFailed(
            f"provider {exc.provider.name!r} stopped mid-stream: {exc.reason}"
        ) from None
    finally:
        await audio.aclose()
    yield SpeechEvent(
        EventKind.DONE,
        info={"duration": seconds, "provider": provider.name, "passthrough": passthrough},
    )


async def _reencode(plan: Plan, audio: upstream.UpstreamAudio) -> AsyncIterator[SpeechEvent]:
    """Upstream WAV/PCM → the requested format, one chunk at a time in a thread."""
    rate = audio.sample_rate or 24000
    head = bytearray()
    encoder = None
    carry = b""
    samples = 0
    async for chunk in audio.chunks():
        if encoder is None:
            if audio.format == "wav":
                head += chunk
                if len(head) < 64:
                    continue
                rate, offset = _pcm_of_wav_header(bytes(head))
                chunk = bytes(head[offset:])
            encoder = make_encoder(
                plan.format.name, rate, plan.sample_rate, bitrate=plan.job.bitrate
            )
        data = carry + chunk
        whole = len(data) - len(data) % 2
        carry = data[whole:]
        pcm = np.frombuffer(data[:whole], dtype="<i2")
        samples += len(pcm)
        out = await asyncio.to_thread(encoder.feed, pcm)
        if out:
            yield SpeechEvent(EventKind.AUDIO, audio=out)
    if encoder is not None:
        tail = await asyncio.to_thread(encoder.finish)
        if tail:
            yield SpeechEvent(EventKind.AUDIO, audio=tail)
    yield SpeechEvent(EventKind.DONE, info={"duration": samples / rate})
