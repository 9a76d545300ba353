"""The upstream-provider client layer, against stand-in providers on loopback.

One FastAPI app imitates all three kinds (their paths do not collide): the
first path segment of a provider's base_url picks a behaviour ("ok", "e503",
...), the rest is the real upstream path. The stand-in checks the auth header
like the real service would (401 when wrong), records what it received, and
answers with real audio streamed in chunks with small sleeps between them.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import socket
import threading
import wave
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import av
import httpx
import numpy as np
import pytest
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse

from orate.engines.upstream import (
    NoProvider,
    Provider,
    ProviderError,
    ProviderUnreachable,
    StreamInterrupted,
    UpstreamAudio,
    error_message,
    load_providers,
    open_stream,
    providers_for,
    synthesize,
)

from .waiting import wait_until

KEYS = {
    "OPENAI_TEST_KEY": "sk-openai-123",
    "ELEVEN_TEST_KEY": "el-456",
    "HUME_TEST_KEY": "hume-789",
}
TONE_SECONDS = 0.6

# --------------------------------------------------------------------------- audio


def tone(rate: int, seconds: float = TONE_SECONDS) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (np.sin(2 * np.pi * 440 * t) * 12000).astype("<i2")


@cache
def encoded(fmt: str, rate: int = 24000) -> bytes:
    """A short 440 Hz tone in ``fmt``: wav via the stdlib, compressed formats via PyAV."""
    samples = tone(rate)
    if fmt == "pcm":
        return samples.tobytes()
    if fmt == "wav":
        buf = io.BytesIO()
        with wave.open(buf, "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(rate)
            w.writeframes(samples.tobytes())
        return buf.getvalue()
    container, codec = {
        "mp3": ("mp3", "libmp3lame"),
        "opus": ("ogg", "libopus"),
        "aac": ("adts", "aac"),
        "flac": ("flac", "flac"),
    }[fmt]
    if fmt == "opus":
        rate, samples = 48000, tone(48000)
    buf = io.BytesIO()
    with av.open(buf, "w", format=container) as out:
        stream = out.add_stream(codec, rate=rate, layout="mono")
        frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = rate
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            out.mux(packet)
    return buf.getvalue()


def decoded_seconds(data: bytes, fmt: str, pcm_rate: int | None = None) -> float:
    """Decode like a listener would and measure; fails on anything that is not audio."""
    if fmt == "pcm":
        assert pcm_rate and len(data) % 2 == 0
        return len(data) / 2 / pcm_rate
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.audio[0]
        samples = sum(f.samples for f in container.decode(stream))
        return samples / stream.rate


# --------------------------------------------------------------------------- stand-in


@dataclass
class Received:
    mode: str
    path: str
    raw_path: str  # as sent on the wire, before the server un-quotes it
    headers: dict[str, str]
    query: dict[str, str]
    body: Any


@dataclass
class Upstream:
    url: str = ""
    received: list[Received] = field(default_factory=list)
    # the "gated" mode sends its first piece, then holds the rest until a test opens this
    gate: threading.Event = field(default_factory=threading.Event)
    pieces_sent: int = 0

    def paths(self) -> list[str]:
        return [f"{r.mode}/{r.path}" for r in self.received]


def _kind_of(path: str) -> str:
    if path == "v1/audio/speech":
        return "openai"
    if path.startswith("v1/text-to-speech/") and path.endswith("/stream"):
        return "elevenlabs"
    if path == "v0/tts/stream/file":
        return "hume"
    raise AssertionError(f"stand-in got an unexpected path {path!r}")


def _auth_ok(kind: str, headers: dict[str, str]) -> tuple[bool, str]:
    """Check the header each real service reads its key from; returns (ok, key sent)."""
    if kind == "openai":
        sent = headers.get("authorization", "")
        return sent == f"Bearer {KEYS['OPENAI_TEST_KEY']}", sent.removeprefix("Bearer ")
    if kind == "elevenlabs":
        sent = headers.get("xi-api-key", "")
        return sent == KEYS["ELEVEN_TEST_KEY"], sent
    sent = headers.get("x-hume-api-key", "")
    return sent == KEYS["HUME_TEST_KEY"], sent


def _requested_audio(kind: str, body: Any, query: dict[str, str]) -> tuple[str, int]:
    """What the client asked for, as (format, pcm rate), read the way each service reads it."""
    if kind == "openai":
        return body["response_format"], 24000
    if kind == "hume":
        return body["format"]["type"], 48000
    codec, rate, *_ = query["output_format"].split("_")
    return codec, int(rate)


def _error(kind: str, status: int, message: str) -> Response:
    """An error in the envelope each service really uses (docs/wire.md, error envelopes)."""
    if kind == "openai":
        content: Any = {
            "error": {
                "message": message,
                "type": "invalid_request_error",
                "param": None,
                "code": None,
            }
        }
    elif kind == "elevenlabs":
        content = {"detail": {"status": "error", "message": message}}
    else:
        content = {"code": "E0001", "error": "Bad Request", "message": message}
    return JSONResponse(content, status_code=status)


async def _trickle(
    data: bytes,
    pieces: int,
    pause: float,
    odd: bool = False,
    cut: bool = False,
    upstream: Upstream | None = None,
) -> AsyncIterator[bytes]:
    """The body in ``pieces``, ``pause`` seconds apart (a slow provider: the pause is the
    behaviour being imitated); with ``upstream``, only the first piece goes before the
    test opens ``upstream.gate``."""
    size = max(1, len(data) // pieces)
    if odd and size % 2 == 0:
        size += 1  # split 16-bit samples across chunks on purpose
    for start in range(0, len(data), size):
        yield data[start : start + size]
        if upstream is not None:
            upstream.pieces_sent += 1
            if start == 0:  # a deadline only so a broken test cannot hold the stand-in
                await asyncio.to_thread(upstream.gate.wait, 60)
        await asyncio.sleep(pause)
        if cut:
            raise ConnectionAbortedError("stand-in drops the connection mid-stream")


def build_app(upstream: Upstream) -> FastAPI:
    app = FastAPI()

    @app.post("/{mode}/{path:path}")
    async def handle(mode: str, path: str, request: Request) -> Response:
        kind = _kind_of(path)
        body = await request.json()
        headers = {k.lower(): v for k, v in request.headers.items()}
        query = dict(request.query_params)
        raw_path = request.scope["raw_path"].decode()
        upstream.received.append(Received(mode, path, raw_path, headers, query, body))
        ok, sent_key = _auth_ok(kind, headers)
        if mode == "e503":
            return _error(kind, 503, "overloaded, try later")
        if mode == "e429":
            return _error(kind, 429, "rate limited")
        if mode == "e400":
            return _error(kind, 400, "Input too long")
        if mode == "e500text":
            return PlainTextResponse("x" * 1000, status_code=500)
        if mode == "e422":
            return JSONResponse(
                {
                    "detail": [
                        {
                            "loc": ["body", "text"],
                            "msg": "field required",
                            "type": "value_error.missing",
                        }
                    ]
                },
                status_code=422,
            )
        if not ok:
            return _error(kind, 401, f"Incorrect API key provided: {sent_key}")
        fmt, rate = _requested_audio(kind, body, query)
        data = encoded(fmt, rate if fmt == "pcm" else 24000)
        pieces, pause = (8, 0.05) if mode == "slow" else (4, 0.005)
        gated = upstream if mode == "gated" else None
        return StreamingResponse(
            _trickle(data, pieces, pause, odd=mode == "odd", cut=mode == "cut", upstream=gated),
            media_type="application/octet-stream",
        )

    return app


@pytest.fixture(scope="module")
def standin() -> Iterator[Upstream]:
    upstream = Upstream()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    upstream.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    config = uvicorn.Config(build_app(upstream), log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    wait_until(lambda: server.started, "the stand-in upstream to start", interval=0.01)
    yield upstream
    server.should_exit = True
    thread.join(5)
    sock.close()


@pytest.fixture
def upstream(standin: Upstream, monkeypatch: pytest.MonkeyPatch) -> Upstream:
    standin.received.clear()
    standin.gate.clear()
    standin.pieces_sent = 0
    for name, value in KEYS.items():
        monkeypatch.setenv(name, value)
    return standin


@pytest.fixture
def closed_port() -> Iterator[str]:
    """A loopback URL nothing listens on: connecting is refused at once. The port stays
    bound (never listening) for the test, so no other process on a shared machine can
    take it and answer: a port closed again right away is free for anyone's next server."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{s.getsockname()[1]}"


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A socket that accepts connections (kernel backlog) but never answers."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(8)
        yield f"http://127.0.0.1:{s.getsockname()[1]}"


def openai(upstream: Upstream, mode: str = "ok", name: str = "oa", **kw: Any) -> Provider:
    return Provider(
        name=name,
        kind="openai",
        base_url=f"{upstream.url}/{mode}/v1",
        models=("tts-1",),
        api_key_env="OPENAI_TEST_KEY",
        **kw,
    )


def eleven(upstream: Upstream, mode: str = "ok", name: str = "el", **kw: Any) -> Provider:
    return Provider(
        name=name,
        kind="elevenlabs",
        base_url=f"{upstream.url}/{mode}",
        models=("tts-1",),
        api_key_env="ELEVEN_TEST_KEY",
        **kw,
    )


def hume(upstream: Upstream, mode: str = "ok", name: str = "hu", **kw: Any) -> Provider:
    return Provider(
        name=name,
        kind="hume",
        base_url=f"{upstream.url}/{mode}",
        models=("tts-1",),
        api_key_env="HUME_TEST_KEY",
        **kw,
    )


async def collect(audio: UpstreamAudio) -> list[bytes]:
    return [chunk async for chunk in audio.chunks()]


async def speak(provider: Provider, fmt: str, **kw: Any) -> tuple[UpstreamAudio, bytes]:
    args: dict[str, Any] = {
        "model": "tts-1",
        "text": "Hello there",
        "voice": "alloy",
        "speed": 1.0,
        **kw,
    }
    async with httpx.AsyncClient() as client:
        audio = await open_stream(provider, fmt=fmt, client=client, **args)
        data = b"".join(await collect(audio))
    return audio, data


# --------------------------------------------------------------------------- providers file

GOOD_TOML = """
[[provider]]
name = "openai-main"
type = "tts"
kind = "openai"
base_url = "https://api.openai.com/v1/"
api_key_env = "OPENAI_API_KEY"
models = ["tts-1", "gpt-4o-mini-tts"]
upstream_model = { "tts-1" = "tts-1-hd" }
timeout = 12

[[provider]]
name = "whisper"
type = "stt"
kind = "something-else"
models = ["whisper-1"]

[[provider]]
name = "eleven"
kind = "elevenlabs"
base_url = "https://api.elevenlabs.io"
models = ["tts-1"]
formats = ["mp3"]

[[provider]]
name = "hume"
type = "tts"
kind = "hume"
base_url = "http://127.0.0.1:9"
models = ["octave"]
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "providers.toml"
    path.write_text(text)
    return path


@pytest.mark.fast
def test_load_providers_good_file(tmp_path: Path) -> None:
    providers = load_providers(write(tmp_path, GOOD_TOML))
    assert [p.name for p in providers] == ["openai-main", "eleven", "hume"]  # stt skipped
    oa, el, hu = providers
    assert oa.kind == "openai" and oa.type == "tts"
    assert oa.base_url == "https://api.openai.com/v1"  # trailing slash dropped
    assert oa.models == ("tts-1", "gpt-4o-mini-tts")
    assert oa.api_key_env == "OPENAI_API_KEY"
    assert oa.model_id("tts-1") == "tts-1-hd"
    assert oa.model_id("gpt-4o-mini-tts") == "gpt-4o-mini-tts"
    assert oa.timeout == 12.0 and isinstance(oa.timeout, float)
    assert oa.http_timeout().connect == 5.0 and oa.http_timeout().read == 12.0
    assert oa.formats == ("mp3", "wav", "pcm", "opus", "aac", "flac")
    assert el.formats == ("mp3",) and el.api_key_env is None and el.timeout == 30.0
    assert hu.formats == ("mp3", "wav", "pcm")
    assert len({*providers}) == 3  # frozen and hashable
    with pytest.raises(AttributeError):
        oa.name = "x"  # type: ignore[misc]


@pytest.mark.fast
def test_empty_file_has_no_providers(tmp_path: Path) -> None:
    assert load_providers(write(tmp_path, "# nothing yet\n")) == []


def toml_value(value: Any) -> str:
    """Enough of TOML for these tests: JSON scalars and arrays are valid TOML values."""
    if isinstance(value, dict):
        return (
            "{ " + ", ".join(f"{json.dumps(k)} = {toml_value(v)}" for k, v in value.items()) + " }"
        )
    return json.dumps(value)


def entry(**fields: Any) -> str:
    """One [[provider]] table: a valid openai entry with ``fields`` changed (None = removed)."""
    base: dict[str, Any] = {
        "name": "p1",
        "kind": "openai",
        "base_url": "https://x.example/v1",
        "models": ["tts-1"],
    }
    base.update(fields)
    lines = [f"{key} = {toml_value(value)}" for key, value in base.items() if value is not None]
    return "[[provider]]\n" + "\n".join(lines) + "\n"


@pytest.mark.parametrize(
    ("fields", "pattern"),
    [
        ({"name": None}, r"provider #1: field 'name' is missing"),
        ({"name": ""}, r"provider #1: field 'name' must be a non-empty string"),
        ({"kind": None}, r"provider #1 \('p1'\): field 'kind' is missing"),
        (
            {"kind": "azure"},
            r"'p1'\): field 'kind': unknown kind 'azure' \(expected one of openai, ",
        ),
        ({"base_url": None}, r"'p1'\): field 'base_url' is missing"),
        ({"base_url": "ftp://x.example"}, r"'p1'\): field 'base_url' must be an http\(s\) URL"),
        ({"base_url": "api.openai.com/v1"}, r"'p1'\): field 'base_url' must be an http\(s\) URL"),
        ({"base_url": "http://"}, r"'p1'\): field 'base_url' must be an http\(s\) URL"),
        ({"models": None}, r"'p1'\): field 'models' is missing"),
        ({"models": []}, r"'p1'\): field 'models' must be a non-empty list of strings"),
        ({"models": "tts-1"}, r"'p1'\): field 'models' must be a non-empty list of strings"),
        ({"models": [1]}, r"'p1'\): field 'models' must be a non-empty list of strings"),
        ({"timeout": 0}, r"'p1'\): field 'timeout' must be a number of seconds"),
        ({"timeout": "fast"}, r"'p1'\): field 'timeout' must be a number of seconds"),
        ({"timeout": True}, r"'p1'\): field 'timeout' must be a number of seconds"),
        ({"timeout": 10000}, r"'p1'\): field 'timeout' must be a number of seconds"),
        ({"formats": ["mp3", "ogg"]}, r"'p1'\): field 'formats': unknown format\(s\) ogg"),
        ({"upstream_model": {"tts-2": "x"}}, r"'p1'\): field 'upstream_model': 'tts-2' not listed"),
        ({"api_key_env": ""}, r"'p1'\): field 'api_key_env' must be a non-empty string"),
    ],
)
def test_bad_entries_raise_clear_value_error(
    tmp_path: Path, fields: dict[str, Any], pattern: str
) -> None:
    with pytest.raises(ValueError, match=pattern):
        load_providers(write(tmp_path, entry(**fields)))


@pytest.mark.fast
def test_bad_entry_is_numbered_in_file_order(tmp_path: Path) -> None:
    text = entry() + entry(name="p2", kind="nope")
    with pytest.raises(ValueError, match=r"providers\.toml: provider #2 \('p2'\): field 'kind'"):
        load_providers(write(tmp_path, text))


@pytest.mark.fast
def test_duplicate_names_and_broken_files(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"provider #2 \('p1'\): field 'name': duplicate"):
        load_providers(write(tmp_path, entry() + entry()))
    with pytest.raises(ValueError, match="not valid TOML"):
        load_providers(write(tmp_path, "[[provider]\nname = 1"))
    with pytest.raises(ValueError, match=r"'provider' must be an array of tables"):
        load_providers(write(tmp_path, "[provider]\nname = 'x'\n"))


@pytest.mark.fast
def test_unknown_fields_only_warn(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, "orate.remote"):
        (p,) = load_providers(write(tmp_path, entry(priority=3)))
    assert p.name == "p1" and "priority" in caplog.text


@pytest.mark.fast
def test_providers_for_keeps_order_and_filters_type() -> None:
    def make(name: str, models: tuple[str, ...], type_: str = "tts") -> Provider:
        return Provider(name=name, kind="openai", base_url="http://h/v1", models=models, type=type_)

    ps = [
        make("a", ("x",)),
        make("b", ("y",)),
        make("c", ("x", "y")),
        make("d", ("x",), "stt"),
        make("e", ("x",)),
    ]
    assert [p.name for p in providers_for("x", ps)] == ["a", "c", "e"]
    assert [p.name for p in providers_for("y", ps)] == ["b", "c"]
    assert providers_for("z", ps) == []


# --------------------------------------------------------------------------- request shapes


@pytest.mark.asyncio
async def test_openai_request_shape(upstream: Upstream) -> None:
    provider = openai(upstream, upstream_model={"tts-1": "tts-1-hd"})
    audio, data = await speak(provider, "mp3", speed=1.5)
    (got,) = upstream.received
    assert got.path == "v1/audio/speech"
    assert got.headers["authorization"] == "Bearer sk-openai-123"
    assert got.headers["content-type"] == "application/json"
    assert got.body == {
        "model": "tts-1-hd",
        "input": "Hello there",
        "voice": "alloy",
        "response_format": "mp3",
        "speed": 1.5,
    }
    assert (audio.format, audio.sample_rate, audio.content_type) == ("mp3", None, "audio/mpeg")
    assert decoded_seconds(data, "mp3") == pytest.approx(TONE_SECONDS, abs=0.1)


@pytest.mark.asyncio
async def test_elevenlabs_request_shape(upstream: Upstream) -> None:
    provider = eleven(upstream, upstream_model={"tts-1": "eleven_flash_v2_5"})
    audio, data = await speak(provider, "mp3", voice="Rachel/21m 00", speed=2.0)
    (got,) = upstream.received
    assert got.raw_path == "/ok/v1/text-to-speech/Rachel%2F21m%2000/stream"  # one path segment
    assert got.query == {"output_format": "mp3_44100_128"}
    assert got.headers["xi-api-key"] == "el-456"
    assert "authorization" not in got.headers
    assert got.body == {
        "text": "Hello there",
        "model_id": "eleven_flash_v2_5",
        "voice_settings": {"speed": 1.2},
    }  # clamped to 0.7..1.2
    assert (audio.format, audio.sample_rate) == ("mp3", None)
    assert decoded_seconds(data, "mp3") == pytest.approx(TONE_SECONDS, abs=0.1)


@pytest.mark.asyncio
async def test_hume_request_shape(upstream: Upstream) -> None:
    audio, data = await speak(hume(upstream), "wav", voice="Ava Song", speed=3.0)
    (got,) = upstream.received
    assert got.path == "v0/tts/stream/file"
    assert got.headers["x-hume-api-key"] == "hume-789"
    assert got.body == {
        "utterances": [
            {
                "text": "Hello there",
                "voice": {"name": "Ava Song", "provider": "HUME_AI"},
                "speed": 2.0,
            }
        ],  # clamped to 0.5..2
        "format": {"type": "wav"},
        "strip_headers": True,
    }
    assert (audio.format, audio.sample_rate, audio.content_type) == ("wav", None, "audio/wav")
    with wave.open(io.BytesIO(data)) as w:
        assert w.getnframes() / w.getframerate() == pytest.approx(TONE_SECONDS)


@pytest.mark.asyncio
async def test_slow_speed_is_clamped_per_kind(upstream: Upstream) -> None:
    for provider in (openai(upstream), eleven(upstream), hume(upstream)):
        await speak(provider, "mp3", speed=0.1)
    oa, el, hu = (r.body for r in upstream.received)
    assert oa["speed"] == 0.25
    assert el["voice_settings"]["speed"] == 0.7
    assert hu["utterances"][0]["speed"] == 0.5


@pytest.mark.asyncio
async def test_no_api_key_env_sends_no_auth(upstream: Upstream) -> None:
    provider = Provider(
        name="open", kind="openai", base_url=f"{upstream.url}/ok/v1", models=("tts-1",)
    )
    with pytest.raises(ProviderError) as info:
        await speak(provider, "mp3")
    assert info.value.status == 401  # the stand-in insists on a key
    assert "authorization" not in upstream.received[0].headers


@pytest.mark.asyncio
async def test_key_is_read_at_call_time(
    upstream: Upstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_TEST_KEY", "sk-rotated")
    with pytest.raises(ProviderError) as info:
        await speak(openai(upstream), "mp3")
    assert upstream.received[-1].headers["authorization"] == "Bearer sk-rotated"
    assert "sk-rotated" not in info.value.message  # echoed key is redacted
    monkeypatch.setenv("OPENAI_TEST_KEY", KEYS["OPENAI_TEST_KEY"])
    await speak(openai(upstream), "mp3")  # same Provider object shape, new key works


@pytest.mark.asyncio
async def test_declared_but_missing_key_is_unreachable_without_a_request(
    upstream: Upstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HUME_TEST_KEY")
    with pytest.raises(ProviderUnreachable, match="HUME_TEST_KEY") as info:
        await speak(hume(upstream), "mp3")
    assert info.value.provider.name == "hu"
    assert upstream.received == []


# --------------------------------------------------------------------------- formats


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("fmt", "rate"),
    [("mp3", None), ("wav", None), ("pcm", 24000), ("opus", None), ("aac", None), ("flac", None)],
)
async def test_openai_native_formats_pass_through(
    upstream: Upstream, fmt: str, rate: int | None
) -> None:
    audio, data = await speak(openai(upstream), fmt)
    assert upstream.received[0].body["response_format"] == fmt
    assert (audio.format, audio.sample_rate) == (fmt, rate)
    assert decoded_seconds(data, fmt, rate) == pytest.approx(TONE_SECONDS, abs=0.1)


@pytest.mark.asyncio
async def test_openai_asks_for_wav_when_not_native(upstream: Upstream) -> None:
    audio, data = await speak(openai(upstream, formats=("mp3", "wav")), "opus")
    assert upstream.received[0].body["response_format"] == "wav"
    assert (audio.format, audio.content_type) == ("wav", "audio/wav")
    assert decoded_seconds(data, "wav") == pytest.approx(TONE_SECONDS)


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("fmt", "output_format", "got_fmt", "rate"),
    [
        ("mp3", "mp3_44100_128", "mp3", None),
        ("pcm", "pcm_24000", "pcm", 24000),
        ("opus", "opus_48000_64", "opus", None),
        ("wav", "pcm_24000", "pcm", 24000),
        ("flac", "pcm_24000", "pcm", 24000),
        ("aac", "pcm_24000", "pcm", 24000),
    ],
)
async def test_elevenlabs_output_formats(
    upstream: Upstream, fmt: str, output_format: str, got_fmt: str, rate: int | None
) -> None:
    audio, data = await speak(eleven(upstream), fmt)
    assert upstream.received[0].query["output_format"] == output_format
    assert (audio.format, audio.sample_rate) == (got_fmt, rate)
    assert decoded_seconds(data, got_fmt, rate) == pytest.approx(TONE_SECONDS, abs=0.1)


@pytest.mark.asyncio
async def test_elevenlabs_formats_list_narrows_native(upstream: Upstream) -> None:
    audio, _ = await speak(eleven(upstream, formats=("mp3",)), "opus")
    assert upstream.received[0].query["output_format"] == "pcm_24000"
    assert audio.format == "pcm"


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("fmt", "asked", "rate"),
    [
        ("mp3", "mp3", None),
        ("wav", "wav", None),
        ("pcm", "pcm", 48000),
        ("opus", "wav", None),
        ("flac", "wav", None),
        ("aac", "wav", None),
    ],
)
async def test_hume_formats(upstream: Upstream, fmt: str, asked: str, rate: int | None) -> None:
    audio, data = await speak(hume(upstream), fmt)
    assert upstream.received[0].body["format"] == {"type": asked}
    assert (audio.format, audio.sample_rate) == (asked, rate)
    assert decoded_seconds(data, asked, rate) == pytest.approx(TONE_SECONDS, abs=0.1)


@pytest.mark.asyncio
async def test_hume_octave_version_from_upstream_model(upstream: Upstream) -> None:
    await speak(hume(upstream, upstream_model={"tts-1": "2"}), "mp3")
    assert upstream.received[0].body["version"] == "2"


# --------------------------------------------------------------------------- streaming


@pytest.mark.asyncio
async def test_chunks_arrive_incrementally(upstream: Upstream) -> None:
    """The first chunk is in our hands while the stand-in still holds the rest back: a
    client that waited for the whole body would never see it (the gate opens only after)."""
    async with httpx.AsyncClient() as client:
        audio = await open_stream(
            openai(upstream, "gated"),
            model="tts-1",
            text="hi",
            voice="alloy",
            speed=1.0,
            fmt="wav",
            client=client,
        )
        chunks = audio.chunks()
        first = await asyncio.wait_for(anext(chunks), 30)
        assert first and upstream.pieces_sent == 1  # the rest has not been sent yet
        upstream.gate.set()
        sizes = [len(first)] + [len(chunk) async for chunk in chunks]
    assert len(sizes) > 1 and upstream.pieces_sent > 1
    assert sum(sizes) == len(encoded("wav"))


@pytest.mark.asyncio
async def test_pcm_chunks_hold_whole_samples(upstream: Upstream) -> None:
    audio, data = await speak(openai(upstream, "odd"), "pcm")
    assert data == encoded("pcm")
    async with httpx.AsyncClient() as client:
        audio = await open_stream(
            openai(upstream, "odd"),
            model="tts-1",
            text="hi",
            voice="alloy",
            speed=1.0,
            fmt="pcm",
            client=client,
        )
        chunks = await collect(audio)
    assert len(chunks) > 1 and all(len(c) % 2 == 0 for c in chunks)


@pytest.mark.asyncio
async def test_chunks_iterate_once_and_aclose(upstream: Upstream) -> None:
    async with httpx.AsyncClient() as client:
        async with await open_stream(
            openai(upstream, "slow"),
            model="tts-1",
            text="hi",
            voice="alloy",
            fmt="wav",
            client=client,
        ) as audio:
            async for _ in audio.chunks():
                break  # a caller whose client went away stops early
        with pytest.raises(RuntimeError, match="once"):
            await collect(audio)


@pytest.mark.asyncio
async def test_connection_lost_mid_stream(upstream: Upstream) -> None:
    """After headers, a dead upstream is StreamInterrupted: too late to fail over silently."""
    async with httpx.AsyncClient() as client:
        provider, audio = await synthesize(
            [openai(upstream, "cut"), hume(upstream)],
            model="tts-1",
            text="hi",
            voice="alloy",
            fmt="wav",
            client=client,
        )
        got: list[bytes] = []
        with pytest.raises(StreamInterrupted) as info:
            async for chunk in audio.chunks():
                got.append(chunk)
    assert provider.name == "oa" and info.value.provider is provider
    assert got and len(upstream.received) == 1


# --------------------------------------------------------------------------- errors


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("make", "mode", "status", "message"),
    [
        (openai, "e400", 400, "Input too long"),
        (eleven, "e400", 400, "Input too long"),
        (hume, "e400", 400, "Input too long"),
        (hume, "e422", 422, "field required"),
        (openai, "e503", 503, "overloaded, try later"),
    ],
)
async def test_error_message_from_envelope(
    upstream: Upstream, make: Any, mode: str, status: int, message: str
) -> None:
    with pytest.raises(ProviderError) as info:
        await speak(make(upstream, mode), "mp3")
    assert (info.value.status, info.value.message) == (status, message)
    assert f"/{mode}" in info.value.provider.base_url


@pytest.mark.asyncio
async def test_plain_error_body_is_truncated(upstream: Upstream) -> None:
    with pytest.raises(ProviderError) as info:
        await speak(openai(upstream, "e500text"), "mp3")
    assert info.value.status == 500
    assert len(info.value.message) == 300 and info.value.message.startswith("xxx")


@pytest.mark.fast
def test_error_message_shapes() -> None:
    assert error_message(b'{"error":{"message":"m1","type":"t"}}') == "m1"
    assert error_message(b'{"detail":{"status":"voice_not_found","message":"m2"}}') == "m2"
    assert error_message(b'{"detail":[{"msg":"a"},{"msg":"b"}]}') == "a; b"
    assert error_message(b'{"code":"E1","error":"Unauthorized","message":"m3"}') == "m3"
    assert error_message(b'{"error":"just a string"}') == "just a string"
    assert error_message(b"<html>bad gateway</html>") == "<html>bad gateway</html>"
    assert error_message(b'{"unrelated": 1}') == '{"unrelated": 1}'


@pytest.mark.asyncio
async def test_closed_port_is_unreachable(closed_port: str) -> None:
    provider = Provider(name="gone", kind="openai", base_url=f"{closed_port}/v1", models=("tts-1",))
    with pytest.raises(ProviderUnreachable) as info:
        await speak(provider, "mp3")
    assert info.value.provider is provider and "Connect" in info.value.reason


@pytest.mark.asyncio
async def test_silent_provider_times_out_as_unreachable(silent_server: str) -> None:
    provider = Provider(
        name="mute", kind="hume", base_url=silent_server, models=("tts-1",), timeout=0.5
    )
    # the provider's own 0.5 s timeout ends it; the 30 s deadline only bounds a failure
    # (a timeout left at httpx's or the provider's default would run past it)
    with pytest.raises(ProviderUnreachable, match="Timeout"):
        await asyncio.wait_for(speak(provider, "mp3"), 30)


# --------------------------------------------------------------------------- fail-over


async def run_synthesize(
    providers: list[Provider],
    fmt: str = "mp3",
) -> tuple[Provider, UpstreamAudio, bytes]:
    async with httpx.AsyncClient() as client:
        provider, audio = await synthesize(
            providers, model="tts-1", text="Hello", voice="alloy", speed=1.0, fmt=fmt, client=client
        )
        data = b"".join(await collect(audio))
    return provider, audio, data


@pytest.mark.asyncio
async def test_failover_from_unreachable(
    upstream: Upstream, closed_port: str, caplog: pytest.LogCaptureFixture
) -> None:
    dead = Provider(
        name="dead",
        kind="openai",
        base_url=f"{closed_port}/v1",
        models=("tts-1",),
        api_key_env="OPENAI_TEST_KEY",
    )
    with caplog.at_level(logging.WARNING, "orate.remote"):
        provider, audio, data = await run_synthesize([dead, hume(upstream)])
    assert provider.name == "hu" and audio.format == "mp3"
    assert decoded_seconds(data, "mp3") == pytest.approx(TONE_SECONDS, abs=0.1)
    assert "dead" in caplog.text and "unreachable" in caplog.text
    assert all(key not in caplog.text for key in KEYS.values())


@pytest.mark.asyncio
@pytest.mark.parametrize("mode", ["e503", "e429"])
async def test_failover_on_503_and_429(
    upstream: Upstream, mode: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, "orate.remote"):
        provider, _, data = await run_synthesize([openai(upstream, mode), eleven(upstream)])
    assert provider.name == "el" and data
    assert upstream.paths() == [f"{mode}/v1/audio/speech", "ok/v1/text-to-speech/alloy/stream"]
    assert "oa" in caplog.text and mode[1:] in caplog.text


@pytest.mark.asyncio
async def test_400_is_raised_without_trying_the_next(upstream: Upstream) -> None:
    with pytest.raises(ProviderError) as info:
        await run_synthesize([openai(upstream, "e400"), hume(upstream)])
    assert (info.value.status, info.value.provider.name) == (400, "oa")
    assert info.value.message == "Input too long"
    assert upstream.paths() == ["e400/v1/audio/speech"]  # hume never asked


@pytest.mark.asyncio
async def test_401_fails_over_and_never_logs_the_key(
    upstream: Upstream, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A rejected key is about orate's account at that provider, not the caller's input."""
    monkeypatch.setenv("OPENAI_TEST_KEY", "sk-revoked-secret")
    with caplog.at_level(logging.WARNING, "orate.remote"):
        provider, _, _ = await run_synthesize([openai(upstream), hume(upstream)])
    assert provider.name == "hu"
    assert "401" in caplog.text and "sk-revoked-secret" not in caplog.text


@pytest.mark.asyncio
async def test_all_unreachable_raises_no_provider(closed_port: str, silent_server: str) -> None:
    a = Provider(name="a", kind="openai", base_url=f"{closed_port}/v1", models=("tts-1",))
    b = Provider(
        name="b", kind="elevenlabs", base_url=silent_server, models=("tts-1",), timeout=0.5
    )
    c = Provider(name="c", kind="hume", base_url=closed_port, models=("other",))
    with pytest.raises(NoProvider) as info:
        await run_synthesize([a, b, c])
    assert info.value.model == "tts-1"
    assert [e.provider.name for e in info.value.attempts] == ["a", "b"]  # c doesn't serve it
    assert all(isinstance(e, ProviderUnreachable) for e in info.value.attempts)


@pytest.mark.fast
@pytest.mark.asyncio
async def test_no_provider_for_the_model() -> None:
    with pytest.raises(NoProvider) as info:
        await run_synthesize([])
    assert info.value.attempts == []


@pytest.mark.asyncio
async def test_last_http_failure_wins_over_unreachable(
    upstream: Upstream, closed_port: str
) -> None:
    dead = Provider(name="dead", kind="openai", base_url=f"{closed_port}/v1", models=("tts-1",))
    with pytest.raises(ProviderError) as info:
        await run_synthesize([dead, eleven(upstream, "e503")])
    assert (info.value.status, info.value.provider.name) == (503, "el")
    with pytest.raises(ProviderError) as info:
        await run_synthesize([eleven(upstream, "e503"), openai(upstream, "e429")])
    assert (info.value.status, info.value.provider.name) == (429, "oa")


@pytest.mark.asyncio
async def test_failover_after_timeout(upstream: Upstream, silent_server: str) -> None:
    mute = Provider(
        name="mute", kind="openai", base_url=f"{silent_server}/v1", models=("tts-1",), timeout=0.5
    )
    # fail-over after mute's own 0.5 s timeout; the deadline only bounds a failure
    provider, audio, data = await asyncio.wait_for(
        run_synthesize([mute, openai(upstream)], fmt="pcm"), 30
    )
    assert provider.name == "oa" and (audio.format, audio.sample_rate) == ("pcm", 24000)
    assert data == encoded("pcm")
