"""The voice-agent frameworks and Home Assistant as real clients of a real orate.

pipecat-ai and livekit-agents run in virtualenvs of their own (their dependencies
clash with orate's), built by tests/venvs.py on first use and cached; each test runs
a small driver (tests/clients/) that uses the framework's TTS service the way an
app does and prints what it got. wyoming-openai runs in its own venv too, proxying
Wyoming to orate's OpenAI routes. Home Assistant's Wyoming flow is reproduced here
from its ``homeassistant/components/wyoming/tts.py`` (``async_get_tts_audio`` and
``async_stream_tts_audio``), with the same ``wyoming`` package: Home Assistant 2026.x
needs Python >= 3.13.2, which this machine's pyenv does not have.
"""

from __future__ import annotations

import asyncio
import io
import json
import subprocess
import time
import wave
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncTcpClient
from wyoming.info import Describe, Info
from wyoming.tts import (
    Synthesize,
    SynthesizeChunk,
    SynthesizeStart,
    SynthesizeStop,
    SynthesizeStopped,
    SynthesizeVoice,
)

from . import venvs
from .conftest import Server, free_port

CLIENTS = Path(__file__).parent / "clients"
TEXTS = ["Hello there. How are you today?", "The quick brown fox jumps over the lazy dog."]


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    port = free_port()
    server = Server(
        tmp_path_factory.mktemp("frameworks"),
        workers=2,
        args=["--wyoming", f"tcp://127.0.0.1:{port}"],
    )
    server.wyoming_port = port  # type: ignore[attr-defined]
    yield server
    server.stop()


def python_of(name: str) -> Path:
    python, note = venvs.build(name)
    if python is None:
        pytest.skip(note)
    return python


def drive(name: str, script: str, *args: str) -> dict[str, Any]:
    run = subprocess.run(
        [str(python_of(name)), str(CLIENTS / script), *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=CLIENTS,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(run.stdout.strip().splitlines()[-1])


def check_words(words: list[list[Any]], audio_s: float) -> None:
    """Word times in order and inside the audio they belong to."""
    times = [w[1] for w in words]
    assert times == sorted(times), words
    assert times and times[0] >= 0 and times[-1] < audio_s, (words, audio_s)


# -- pipecat ------------------------------------------------------------------------------


@pytest.mark.parametrize("service", ["openai", "elevenlabs-http", "elevenlabs-ws"])
def test_pipecat_tts_services(srv: Server, service: str) -> None:
    out = drive("pipecat", "pipecat_tts.py", service, srv.url, "16000", *TEXTS)
    assert not out["errors"], out["errors"]
    contexts = out["contexts"]
    assert len(contexts) == 2 and all(c["audio_s"] > 1.0 for c in contexts), contexts
    if service == "openai":
        return
    for ctx in contexts:  # one context per utterance, word times from its start
        assert len(ctx["words"]) >= 4, ctx
        check_words(ctx["words"], ctx["audio_s"])
    assert not out["orphan_words"]


# -- livekit ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "mode", ["openai-mp3", "openai-pcm", "openai-sse", "elevenlabs-synthesize", "elevenlabs-stream"]
)
def test_livekit_tts_plugins(srv: Server, mode: str) -> None:
    out = drive("livekit", "livekit_tts.py", mode, srv.url, *TEXTS)
    assert not [w for w in out["warnings"] if "request_id" in w], out["warnings"]
    assert "unknown" not in out["request_ids"], out["request_ids"]
    segments = out["segments"]
    total = sum(s["audio_s"] for s in segments)
    assert total > 2.0, segments
    if mode == "elevenlabs-stream":
        assert len(segments) == 2, segments
        for seg, text in zip(sorted(segments, key=lambda s: len(s["words"])), TEXTS, strict=True):
            check_words(seg["words"], seg["audio_s"] + 0.01)
            assert "".join(w[0] for w in seg["words"]).split() == text.split()
            ends = [w[2] for w in seg["words"]]
            assert ends[-1] <= seg["audio_s"] + 0.01


# -- Home Assistant's Wyoming integration (its tts.py, reproduced) -------------------------


async def ha_get_tts_audio(
    host: str, port: int, message: str, voice_name: str | None
) -> tuple[str | None, bytes | None]:
    """``WyomingTtsProvider.async_get_tts_audio``: one ``synthesize``, read until
    audio-stop; a lost connection is ``(None, None)``."""
    async with AsyncTcpClient(host, port) as client:
        voice = SynthesizeVoice(name=voice_name) if voice_name is not None else None
        await client.write_event(Synthesize(text=message, voice=voice).event())
        with io.BytesIO() as wav_io:
            wav_writer: wave.Wave_write | None = None
            while True:
                # a deadline HA's loop lacks, so a server that goes quiet fails the test
                event = await asyncio.wait_for(client.read_event(), 60)
                if event is None:
                    return (None, None)
                if AudioStop.is_type(event.type):
                    break
                if AudioChunk.is_type(event.type):
                    chunk = AudioChunk.from_event(event)
                    if wav_writer is None:
                        wav_writer = wave.open(wav_io, "wb")  # noqa: SIM115 (as HA does)
                        wav_writer.setframerate(chunk.rate)
                        wav_writer.setsampwidth(chunk.width)
                        wav_writer.setnchannels(chunk.channels)
                    wav_writer.writeframes(chunk.audio)
            if wav_writer is not None:
                wav_writer.close()
            return ("wav", wav_io.getvalue())


async def ha_stream_tts_audio(
    host: str, port: int, pieces: list[str], voice_name: str | None
) -> bytes:
    """``async_stream_tts_audio``: start, a chunk per piece, the whole message as
    ``synthesize`` (for old servers), stop; audio read until synthesize-stopped."""
    client = AsyncTcpClient(host, port)
    await client.connect()
    voice = SynthesizeVoice(name=voice_name) if voice_name is not None else None

    async def write() -> None:
        await client.write_event(SynthesizeStart(voice=voice).event())
        message = ""
        for piece in pieces:
            message += piece
            await client.write_event(SynthesizeChunk(text=piece).event())
        await client.write_event(Synthesize(text=message, voice=voice).event())
        await client.write_event(SynthesizeStop().event())

    writer = asyncio.create_task(write())
    audio = bytearray()
    try:
        while event := await asyncio.wait_for(client.read_event(), 60):  # (deadline as above)
            if AudioStart.is_type(event.type):
                continue
            if AudioChunk.is_type(event.type):
                audio += AudioChunk.from_event(event).audio
            elif SynthesizeStopped.is_type(event.type):
                break
    finally:
        await writer
        await client.disconnect()
    return bytes(audio)


@pytest.mark.asyncio
async def test_home_assistant_wyoming_flow(srv: Server) -> None:
    port = srv.wyoming_port  # type: ignore[attr-defined]
    async with AsyncTcpClient("127.0.0.1", port) as client:  # the config flow's describe
        await client.write_event(Describe().event())
        info = Info.from_event(await asyncio.wait_for(client.read_event(), 60))
    program = next(t for t in info.tts if t.installed)
    assert program.supports_synthesize_streaming
    voice = program.voices[0].name  # HA's default: the first voice of the language
    kind, wav = await ha_get_tts_audio("127.0.0.1", port, "Hello from Home Assistant.", voice)
    assert kind == "wav" and wav is not None and len(wav) > 20000
    kind, wav = await ha_get_tts_audio("127.0.0.1", port, "No voice option set.", None)
    assert kind == "wav" and wav is not None and len(wav) > 20000
    # an unknown voice ends the exchange (it used to hang: HA's loop has no timeout of its
    # own, so the deadline here only bounds that failure)
    assert await asyncio.wait_for(ha_get_tts_audio("127.0.0.1", port, "Hi.", "nobody"), 60) == (
        None,
        None,
    )
    pcm = await asyncio.wait_for(
        ha_stream_tts_audio(
            "127.0.0.1", port, ["The weather ", "is cold ", "today. ", "Stay warm."], voice
        ),
        60,
    )
    assert len(pcm) > 20000


# -- wyoming-openai against orate's OpenAI routes -----------------------------------------


@pytest.mark.asyncio
@pytest.mark.parametrize("backend", ["OPENAI", "KOKORO_FASTAPI"])
async def test_wyoming_openai_proxy(srv: Server, backend: str, tmp_path: Path) -> None:
    python = python_of("wyoming-openai")
    port = free_port()
    models = ["tts-1"] if backend == "OPENAI" else ["Kokoro-82m"]
    log = open(tmp_path / "proxy.log", "wb")  # noqa: SIM115, ASYNC230
    proc = subprocess.Popen(  # noqa: ASYNC220 (started once, not awaited on)
        [
            str(python),
            "-m",
            "wyoming_openai",
            "--uri",
            f"tcp://127.0.0.1:{port}",
            "--tts-openai-url",
            f"{srv.url}/v1",
            "--tts-openai-key",
            "k",
            "--tts-models",
            *models,
            "--tts-backend",
            backend,
            "--languages",
            "en",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        info = None
        deadline = time.monotonic() + 60
        while info is None:
            try:
                async with AsyncTcpClient("127.0.0.1", port) as client:
                    await client.write_event(Describe().event())
                    # 60 s: the proxy may ask orate for its voices before it answers; on a
                    # busy machine that passes 10 s, and a TimeoutError here is no retry
                    info = Info.from_event(await asyncio.wait_for(client.read_event(), 60))
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, (
                    tmp_path / "proxy.log"
                ).read_text()[-2000:]
                await asyncio.sleep(0.3)
        names = [v.name for t in info.tts for v in t.voices]
        assert names, (tmp_path / "proxy.log").read_text()[-2000:]
        if backend == "KOKORO_FASTAPI":  # it reads /audio/voices (no model: the default's)
            async with httpx.AsyncClient(timeout=60) as http:
                listed = (await http.get(f"{srv.url}/v1/audio/voices")).json()["voices"]
            assert set(names) <= set(listed), (names, listed)
        kind, wav = await ha_get_tts_audio("127.0.0.1", port, "Hello through the proxy.", names[0])
        assert kind == "wav" and wav is not None and len(wav) > 10000, (
            tmp_path / "proxy.log"
        ).read_text()[-2000:]
    finally:
        proc.terminate()
        proc.wait(15)
        log.close()


def test_voices_per_model(srv: Server) -> None:
    """``GET /v1/models/{id}`` and ``/v1/audio/voices?model=`` give that model's own
    voices: Kokoro's names for Kokoro-82m, hibari's own for hibari."""
    kokoro = httpx.get(
        f"{srv.url}/v1/audio/voices", params={"model": "Kokoro-82m"}, timeout=30
    ).json()["voices"]
    hibari = httpx.get(f"{srv.url}/v1/audio/voices", params={"model": "hibari"}, timeout=30).json()[
        "voices"
    ]
    assert "af_heart" in kokoro and "alloy" not in kokoro
    assert kokoro != hibari
    model = httpx.get(f"{srv.url}/v1/models/Kokoro-82m", timeout=30).json()
    assert model["voices"] == kokoro
    with httpx.Client(base_url=srv.url, timeout=60) as http:  # each listed name speaks
        r = http.post(
            "/v1/audio/speech",
            json={
                "model": "Kokoro-82m",
                "voice": kokoro[0],
                "input": "Hi.",
                "response_format": "wav",
            },
        )
        assert r.status_code == 200 and r.headers["x-request-id"]
