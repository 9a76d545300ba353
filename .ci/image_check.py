"""Checks against orate running in its container image (called by .ci/image).

    python .ci/image_check.py HTTP_PORT WYOMING_PORT   (the admin key in ORATE_CI_KEY)

Speech on tts-1-hd with the key decodes as audio of a plausible length, the same request
without a key is 401, and Wyoming's describe is answered with info. Exits non-zero with
one line saying which check failed.
"""

from __future__ import annotations

import asyncio
import io
import os
import sys

import av
import httpx
from wyoming.client import AsyncTcpClient
from wyoming.info import Describe, Info


def fail(message: str) -> None:
    print(f"image: check failed: {message}", file=sys.stderr)
    sys.exit(1)


def speech(port: int, key: str) -> None:
    url = f"http://127.0.0.1:{port}/v1/audio/speech"
    body = {"model": "tts-1-hd", "voice": "alloy", "input": "Hello from the orate image."}
    done = httpx.post(url, json=body, headers={"Authorization": f"Bearer {key}"}, timeout=120)
    if done.status_code != 200 or done.headers.get("content-type") != "audio/mpeg":
        fail(f"speech with the key: {done.status_code} {done.headers.get('content-type')} "
             f"{done.text[:300] if done.status_code != 200 else ''}")
    with av.open(io.BytesIO(done.content)) as c:
        samples = sum(f.samples for f in c.decode(audio=0))
        rate = c.streams.audio[0].rate
    seconds = samples / rate
    if not 0.8 < seconds < 8:
        fail(f"speech with the key decoded to {seconds:.2f} s for a 5-word sentence")
    print(f"image: tts-1-hd with the admin key: 200 audio/mpeg, {seconds:.2f} s of speech")
    anonymous = httpx.post(url, json=body, timeout=60)
    if anonymous.status_code != 401:
        fail(f"speech without a key answered {anonymous.status_code}, not 401")
    print("image: the same request without a key: 401")


async def describe(port: int) -> None:
    async with AsyncTcpClient("127.0.0.1", port) as client:
        await client.write_event(Describe().event())
        event = await asyncio.wait_for(client.read_event(), timeout=30)
    if event is None or not Info.is_type(event.type):
        fail(f"Wyoming describe answered {event.type if event else 'nothing'}, not info")
    info = Info.from_event(event)
    voices = sum(len(p.voices) for p in info.tts)
    if not voices:
        fail("Wyoming info lists no TTS voices")
    print(f"image: Wyoming describe -> info ({voices} voices)")


def main() -> None:
    port, wyoming_port = int(sys.argv[1]), int(sys.argv[2])
    speech(port, os.environ["ORATE_CI_KEY"])
    asyncio.run(describe(wyoming_port))


if __name__ == "__main__":
    main()
