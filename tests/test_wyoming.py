"""The Wyoming dialect against a real ``orate serve --wyoming``, driven by the ``wyoming``
package's own ``AsyncTcpClient`` (what Home Assistant uses): discovery, one-shot and
streaming synthesis checked by ear (pocketsphinx), errors, limits, keys and zeroconf."""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from wyoming.audio import AudioChunk, AudioStart
from wyoming.client import AsyncTcpClient
from wyoming.event import Event, async_read_event
from wyoming.info import Describe, Info
from wyoming.tts import (
    Synthesize,
    SynthesizeChunk,
    SynthesizeStart,
    SynthesizeStop,
    SynthesizeVoice,
)

from .conftest import SENTENCES, Recognizer, Server, free_port
from .tiny_models import build_piper
from .waiting import await_until

MAX_CONNECTIONS = 12


@pytest.fixture(scope="module")
def wy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server with a Wyoming listener, and a tiny Piper model so a natural voice exists."""
    models = tmp_path_factory.mktemp("wy-models")
    build_piper(models, "en_US-tiny-low")
    port = free_port()
    srv = Server(
        tmp_path_factory.mktemp("wy"),
        workers=2,
        env={
            "ORATE_MODELS_DIR": str(models),
            "ORATE_WYOMING_MAX_CONNECTIONS": str(MAX_CONNECTIONS),
            "ORATE_WYOMING_MAX_CONNECTIONS_PER_ADDRESS": "64",
            # short enough for the client that never reads to be dropped soon, long enough
            # that a test client whose loop is held a moment (a sync /healthz call on a
            # busy machine) while a long text fills the buffers is not dropped as well
            "ORATE_WYOMING_WRITE_TIMEOUT": "5",
            # engines paced by their readers, so a reader that stops proves the streaming
            # order (buffered_at_most in tests/conftest.py); the spool has its own tests
            "ORATE_SPOOL_BYTES": "0",
        },
        args=["--wyoming", f"tcp://127.0.0.1:{port}"],
    )
    srv.wyoming_port = port  # type: ignore[attr-defined]
    yield srv
    srv.stop()


def client(srv: Server) -> AsyncTcpClient:
    return AsyncTcpClient("127.0.0.1", srv.wyoming_port)  # type: ignore[attr-defined]


async def read(c: AsyncTcpClient, within: float = 90) -> Event:
    # generous: a client queued behind seven others on a busy 2-core machine can wait a
    # while for its first event; the deadline only bounds a broken server
    event = await asyncio.wait_for(c.read_event(), within)
    assert event is not None, "the server closed the connection"
    return event


async def collect(
    c: AsyncTcpClient, until: str = "audio-stop"
) -> tuple[AudioStart, bytes, list[Event]]:
    """Audio events up to ``until``: the start, the joined PCM, and every event seen."""
    events: list[Event] = []
    pcm = bytearray()
    start: AudioStart | None = None
    while True:
        event = await read(c)
        events.append(event)
        assert event.type != "error", event.data
        if AudioStart.is_type(event.type):
            assert start is None, "one audio-start per synthesis"
            start = AudioStart.from_event(event)
        elif AudioChunk.is_type(event.type):
            chunk = AudioChunk.from_event(event)
            assert start is not None and (chunk.rate, chunk.width, chunk.channels) == (
                start.rate,
                start.width,
                start.channels,
            )
            pcm += chunk.audio
        if event.type == until:
            assert start is not None
            return start, bytes(pcm), events


async def synthesize(srv: Server, text: str, **voice: str) -> tuple[AudioStart, bytes]:
    async with client(srv) as c:
        await c.write_event(Synthesize(text, voice=SynthesizeVoice(**voice)).event())
        start, pcm, _ = await collect(c)
        return start, pcm


# -- describe ----------------------------------------------------------------


@pytest.mark.asyncio
async def test_describe_lists_every_voice_natural_first(wy: Server) -> None:
    async with client(wy) as c:
        await c.write_event(Describe().event())
        info = Info.from_event(await read(c))
    assert len(info.tts) == 1
    program = info.tts[0]
    assert program.supports_synthesize_streaming and program.installed
    names = [v.name for v in program.voices]
    # the palette, the wheel's voice and this test's model: natural voices come first
    natural = {n for n in names if n.startswith(("natural:", "hibari", "piper:"))}
    assert {"natural:heart", "natural:raven", "hibari", "piper:en_US-tiny-low"} <= natural
    assert set(names[: len(natural)]) == natural, "natural voices come first"
    assert {"alloy", "nova", "en-us", "fr-fr", "de"} <= set(names)
    assert len(names) == len(set(names)) > 140
    for voice in program.voices:
        assert voice.installed and voice.languages and voice.description and voice.version
        assert re.search(r"\(.+\)$", voice.attribution.name), "attribution names its licence"
    by_name = {v.name: v for v in program.voices}
    assert by_name["fr-fr"].languages[0] == "fr-FR"
    assert by_name["alloy"].attribution.name == "eSpeak NG (GPL-3.0-or-later)"


# -- synthesize ----------------------------------------------------------------


@pytest.mark.asyncio
async def test_synthesize_pcm_says_the_sentence(wy: Server, recognizer: Recognizer) -> None:
    for sentence in SENTENCES[:3]:
        start, pcm = await synthesize(wy, sentence.capitalize() + ".", name="alloy")
        assert (start.rate, start.width, start.channels) == (22050, 2, 1)
        assert len(pcm) % 2 == 0
        seconds = len(pcm) / 2 / start.rate
        assert 1.0 < seconds < 6.0, seconds  # header's rate matches the audio's length
        assert recognizer.which(pcm, "pcm", pcm_rate=start.rate) == sentence


@pytest.mark.asyncio
async def test_voice_by_language_and_default_and_natural(wy: Server) -> None:
    start, pcm = await synthesize(wy, "Bonjour tout le monde.", language="fr_FR")
    assert start.rate == 22050 and len(pcm) > 22050
    start, pcm = await synthesize(wy, "Hello there.")  # the default voice
    assert len(pcm) > start.rate // 2
    async with client(wy) as c:  # SSML, by text_format, without its root element
        await c.write_event(
            Synthesize(
                'Hello <break time="1s"/> there.',
                text_format="ssml",
                voice=SynthesizeVoice(name="alloy"),
            ).event()
        )
        start, ssml, _ = await collect(c)
    plain = (await synthesize(wy, "Hello there.", name="alloy"))[1]
    extra = (len(ssml) - len(plain)) / 2 / start.rate
    # the break is a second of silence, no tags read out; a break inside a sentence also
    # ends espeak's clause there, which adds its clause pause (~0.4 s; see the README)
    assert 0.8 < extra < 1.6, extra
    start, pcm = await synthesize(wy, "Hello there.", name="piper:en_US-tiny-low")
    assert start.rate == 16000 and len(pcm) > 3200  # the model's own rate, not resampled


@pytest.mark.asyncio
async def test_first_chunk_comes_before_the_whole_text_is_spoken(wy: Server) -> None:
    """The first audio arrives while the server still reports the synthesis running: ~20
    minutes of speech (~50 MB) cannot fit in the buffers between the engine and a client
    that stops reading after 21 chunks, so the order holds on any machine, fast or busy."""
    text = " ".join(s.capitalize() + "." for s in reversed(SENTENCES * 40))  # ~20 min
    before = wy.health()["engines"]
    async with client(wy) as c:
        await c.write_event(Synthesize(text, voice=SynthesizeVoice(name="nova")).event())
        chunks = 0
        while chunks <= 20:  # audio arrives in many chunks, as the engine makes it
            event = await read(c)
            assert event.type != "audio-stop", f"the whole text in {chunks} chunks"
            if AudioChunk.is_type(event.type):
                chunks += 1
                if chunks == 1:
                    engines = wy.health()["engines"]
                    assert engines["busy"] >= 1, engines
                    assert engines["completed"] == before["completed"], engines
        engines = wy.health()["engines"]
        assert engines["completed"] == before["completed"], engines
    # the client left mid-text: the synthesis is cancelled, not finished for nobody
    engines = await idle(wy, before["cancelled"])
    assert engines["completed"] == before["completed"], engines


# -- streaming text in ---------------------------------------------------------


@pytest.mark.asyncio
async def test_streaming_speaks_the_first_sentence_before_the_last_piece(
    wy: Server, recognizer: Recognizer
) -> None:
    first, second = SENTENCES[4], SENTENCES[5]
    text = f"{first.capitalize()}. {second.capitalize()}."
    pieces = [text[i : i + 3] for i in range(0, len(text), 3)]
    async with client(wy) as c:
        await c.write_event(SynthesizeStart(voice=SynthesizeVoice(name="alloy")).event())
        sent = 0
        first_chunk_at: int | None = None

        first_audio = asyncio.Event()
        # the first sentence and a word of the next: enough for the server to know where
        # the first sentence ends; the rest is held back until its audio has arrived
        early = -(-(len(first) + 6) // 3)

        async def writer() -> None:
            nonlocal sent
            for piece in pieces:
                if sent == early:  # a server that waited for the end would never answer
                    await asyncio.wait_for(first_audio.wait(), 60)
                await c.write_event(SynthesizeChunk(piece).event())
                sent += 1
            # Home Assistant also sends the whole text as a plain synthesize: ignored
            await c.write_event(Synthesize(text, voice=SynthesizeVoice(name="alloy")).event())
            await c.write_event(SynthesizeStop().event())

        task = asyncio.create_task(writer())
        events: list[Event] = []
        pcm = bytearray()
        sizes: list[int] = []
        while (event := await read(c)).type != "synthesize-stopped":
            assert event.type != "error", event.data
            events.append(event)
            if AudioChunk.is_type(event.type):
                if first_chunk_at is None:
                    first_chunk_at = sent
                    first_audio.set()
                pcm += event.payload or b""
                sizes.append(len(pcm))
        await task
    types = [e.type for e in events]
    assert types[0] == "audio-start" and types[-1] == "audio-stop"
    assert types.count("audio-start") == 1 and types.count("audio-stop") == 1
    assert first_chunk_at is not None and first_chunk_at < len(pieces), (
        f"first audio after {first_chunk_at} of {len(pieces)} pieces"
    )
    rate = AudioStart.from_event(events[0]).rate
    one_shot = (await synthesize(wy, text, name="alloy"))[1]
    assert abs(len(pcm) - len(one_shot)) < 0.25 * len(one_shot), "the stream said it all once"
    # cut at the chunk boundary nearest the first sentence's length: it says that sentence
    head_start, head = await synthesize(wy, first.capitalize() + ".", name="alloy")
    cut = min(sizes, key=lambda n: abs(n - len(head)))
    assert head_start.rate == rate
    assert recognizer.which(bytes(pcm[:cut]), "pcm", pcm_rate=rate) == first


# -- errors ------------------------------------------------------------------


@pytest.mark.asyncio
async def test_an_error_ends_a_request_and_closes_the_connection(wy: Server) -> None:
    """Outside a stream, an ``error`` is followed by the end of the connection: Home
    Assistant ignores ``error`` and reads until audio-stop or the connection's end."""
    cases = [
        (Synthesize("Hi.", voice=SynthesizeVoice(name="nobody")).event(), "unknown_voice"),
        (Synthesize("Hi.", voice=SynthesizeVoice(language="tlh")).event(), "unknown_language"),
        (Event("synthesize", {"text": 42}), "malformed_event"),
        (Event("synthesize", {"text": "Hi.", "voice": "alloy"}), "malformed_event"),
        (SynthesizeChunk("stray").event(), "no_stream"),
        (Synthesize("   ").event(), "missing_input"),
    ]
    for event, code in cases:
        async with client(wy) as c:
            await c.write_event(event)
            error = await read(c)
            assert error.type == "error" and error.data["code"] == code, error.data
            if code == "unknown_voice":
                assert "nobody" in error.data["text"] and "describe" in error.data["text"]
            assert await asyncio.wait_for(c.read_event(), 10) is None, "still open"


@pytest.mark.asyncio
async def test_an_error_inside_a_stream_keeps_the_connection(wy: Server) -> None:
    async with client(wy) as c:
        # a stream with an unknown voice: one error, its chunks dropped, a clean stop
        await c.write_event(SynthesizeStart(voice=SynthesizeVoice(name="nobody")).event())
        assert (await read(c)).data["code"] == "unknown_voice"
        for piece in ("Hello. ", "Anyone? "):
            await c.write_event(SynthesizeChunk(piece).event())
        await c.write_event(SynthesizeStop().event())
        assert [(await read(c)).type for _ in range(3)] == [
            "audio-start",
            "audio-stop",
            "synthesize-stopped",
        ]
        await c.write_event(SynthesizeStart(voice=SynthesizeVoice(name="alloy")).event())
        await c.write_event(SynthesizeStart().event())
        assert (await read(c)).data["code"] == "stream_open"
        await c.write_event(SynthesizeChunk("Fine.").event())
        await c.write_event(SynthesizeStop().event())
        _, pcm, events = await collect(c, until="synthesize-stopped")
        assert len(pcm) > 0 and events[-2].type == "audio-stop"
        await c.write_event(Synthesize("Still here.", voice=SynthesizeVoice(name="alloy")).event())
        start, pcm, _ = await collect(c)
        assert len(pcm) > start.rate // 2  # the same connection still speaks


@pytest.mark.asyncio
async def test_plain_piper_names_language_only_and_no_voice(wy: Server) -> None:
    """wyoming-piper's plain voice names, a language alone, and no voice at all (the
    server's default model and voice, as the OpenAI route resolves them)."""
    start, pcm = await synthesize(wy, "Hello there.", name="en_US-tiny-low")
    assert start.rate == 16000 and len(pcm) > 3200  # the Piper model, by its own name
    start, pcm = await synthesize(wy, "Hello there.", language="en_US")
    assert len(pcm) > start.rate // 2
    async with client(wy) as c:  # no voice object at all, as Home Assistant sends it
        await c.write_event(Synthesize("Hello there.").event())
        start, pcm, _ = await collect(c)
    async with httpx.AsyncClient(timeout=30) as http:
        r = await http.post(
            f"{wy.url}/v1/audio/speech",
            json={
                "model": "tts-1",
                "voice": "alloy",
                "input": "Hello there.",
                "response_format": "pcm",
            },
        )
    assert r.status_code == 200
    # the same voice as OpenAI's default: the same length of speech (rates may differ)
    assert abs(len(pcm) / 2 / start.rate - len(r.content) / 2 / 24000) < 0.15


async def raw(srv: Server, data: bytes) -> tuple[Event | None, bool]:
    """Send raw bytes; the event the server answers and whether it then closed."""
    reader, writer = await asyncio.open_connection("127.0.0.1", srv.wyoming_port)  # type: ignore[attr-defined]
    try:
        writer.write(data)
        await writer.drain()
        event = await asyncio.wait_for(async_read_event(reader), 10)
        closed = await asyncio.wait_for(reader.read(1), 10) == b""
        return event, closed
    finally:
        writer.close()


@pytest.mark.asyncio
async def test_malformed_and_oversized_events_get_an_error_then_close(wy: Server) -> None:
    cases = [
        b"this is not json\n",
        b'{"data": {"text": "no type"}}\n',
        json.dumps({"type": "synthesize", "data_length": 10**9}).encode() + b"\n",
        json.dumps({"type": "synthesize", "payload_length": 5 << 20}).encode() + b"\n",
        json.dumps({"type": "synthesize", "data_length": "many"}).encode() + b"\n",
        b'{"type": "describe", "pad": "' + b"x" * 70_000 + b'"}\n',
        b'{"type": "synthesize", "data_length": 6}\n[1, 2]',
    ]
    for data in cases:
        event, closed = await raw(wy, data)
        assert event is not None and event.type == "error", data[:60]
        assert event.data["code"] == "malformed_event", event.data
        assert closed
    event, _ = await raw(
        wy, json.dumps({"type": "synthesize", "data_length": 10**9}).encode() + b"\n"
    )
    assert event is not None and "too large" in event.data["text"]
    # the server is fine
    start, pcm = await synthesize(wy, "Still fine.", name="alloy")
    assert len(pcm) > start.rate // 2


def metric(srv: Server, status: str) -> float:
    text = httpx.get(f"{srv.url}/metrics", timeout=60).text
    m = re.search(r'orate_requests_total\{dialect="wyoming",status="' + status + r'"\} (\S+)', text)
    return float(m.group(1)) if m else 0.0


async def idle(srv: Server, cancelled_after: int, within: float = 60) -> dict:
    """The engines' counters once no engine is busy, no request waits and more than
    ``cancelled_after`` syntheses were cancelled: all three in one reading of /healthz,
    so a reading taken between a worker going idle and its cancellation being counted
    (or before the synthesis was even counted as busy) never decides the test."""
    return await await_until(
        lambda: (
            (e := srv.health()["engines"])["busy"] == 0
            and e["waiting"] == 0
            and e["cancelled"] > cancelled_after
            and e
        ),
        f"the engines to be idle with more than {cancelled_after} cancelled",
        within,
        interval=0.1,
    )


LONG = " ".join(s.capitalize() + "." for s in SENTENCES * 20)  # ~7,700 characters, ~10 min


@pytest.mark.asyncio
async def test_disconnect_mid_audio_stops_the_synthesis(wy: Server) -> None:
    before, cancelled = metric(wy, "499"), wy.health()["engines"]["cancelled"]
    async with client(wy) as c:
        await c.write_event(Synthesize(LONG, voice=SynthesizeVoice(name="echo")).event())
        while not AudioChunk.is_type((await read(c)).type):
            pass
    await idle(wy, cancelled)  # the engine was stopped
    await await_until(
        lambda: metric(wy, "499") > before, "the server to count the client that left as 499"
    )


@pytest.mark.asyncio
async def test_a_client_that_never_reads_is_dropped(wy: Server) -> None:
    text = LONG.replace("The", "A")  # not the cached text of the test above
    before, cancelled = metric(wy, "499"), wy.health()["engines"]["cancelled"]
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", wy.wyoming_port))  # type: ignore[attr-defined]
    sock.setblocking(False)
    _, writer = await asyncio.open_connection(sock=sock)
    try:
        ev = Synthesize(text, voice=SynthesizeVoice(name="sage")).event()
        body = json.dumps(ev.data).encode()
        writer.write(
            json.dumps({"type": "synthesize", "data_length": len(body)}).encode() + b"\n" + body
        )
        await writer.drain()
        # the write timeout is 5 s on this server: dropping is its move, whenever it comes
        await await_until(
            lambda: metric(wy, "499") > before,
            "the server to drop the client that never reads (499)",
            within=60,
            interval=0.2,
        )
        await idle(wy, cancelled)  # the engine was stopped
    finally:
        writer.close()


@pytest.mark.asyncio
async def test_connections_past_the_limit_are_refused_clearly(wy: Server) -> None:
    held = []
    deadline = asyncio.get_running_loop().time() + 60
    while len(held) < MAX_CONNECTIONS:  # each one admitted: it answers describe with info
        c = client(wy)
        await c.connect()
        await c.write_event(Describe().event())
        if (await read(c)).type == "info":
            held.append(c)
            continue
        await c.disconnect()  # an earlier test's connection is still being released
        assert asyncio.get_running_loop().time() < deadline, "slots never came free"
        await asyncio.sleep(0.05)
    try:
        async with client(wy) as extra:
            await extra.write_event(Describe().event())
            event = await read(extra)
            assert event.type == "error" and event.data["code"] == "too_many_connections"
            assert str(MAX_CONNECTIONS) in event.data["text"]
    finally:
        for c in held:
            await c.disconnect()
    deadline = asyncio.get_running_loop().time() + 60
    while True:  # room again, once the server has seen the disconnects
        async with client(wy) as c:
            await c.write_event(Describe().event())
            if (await read(c)).type == "info":
                break
        assert asyncio.get_running_loop().time() < deadline, "no room after disconnects"
        await asyncio.sleep(0.05)


# -- load ----------------------------------------------------------------------


@pytest.mark.asyncio
async def test_eight_wyoming_clients_and_http_clients_at_once(
    wy: Server, recognizer: Recognizer
) -> None:
    # voices pocketsphinx's default model understands for these sentences (it struggles
    # with espeak's male variants), still eight distinct requests with their own text
    voices = ["alloy", "nova", "marin", "sage", "cedar", "ballad", "shimmer", "alloy"]

    async def over_wyoming(i: int) -> tuple[str, bytes, int]:
        start, pcm = await synthesize(wy, SENTENCES[i].capitalize() + ".", name=voices[i])
        return SENTENCES[i], pcm, start.rate

    async def over_http(http: httpx.AsyncClient, i: int) -> tuple[str, bytes, int]:
        r = await http.post(
            f"{wy.url}/v1/audio/speech",
            json={
                "model": "tts-1",
                "voice": "nova",
                "input": SENTENCES[i].capitalize() + ".",
                "response_format": "pcm",
            },
        )
        assert r.status_code == 200, r.text
        return SENTENCES[i], r.content, 24000

    async with httpx.AsyncClient(timeout=60) as http:
        results = await asyncio.gather(
            *[over_wyoming(i) for i in range(8)], over_http(http, 8), over_http(http, 9)
        )
    for sentence, pcm, rate in results:
        assert len(pcm) % 2 == 0 and len(pcm) / 2 / rate > 1.0
        assert recognizer.which(pcm, "pcm", pcm_rate=rate) == sentence


# -- keys, zeroconf, refusal -------------------------------------------------------


def orate(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "orate.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "ORATE_DATA_DIR": str(data_dir)},
    )


def test_beyond_loopback_needs_a_bound_key(tmp_path: Path) -> None:
    done = orate(tmp_path, "serve", "--port", str(free_port()), "--wyoming", "tcp://0.0.0.0:10299")
    assert done.returncode == 2
    assert "ORATE_WYOMING_KEY" in done.stderr


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A listener bound to a key with a small quota, announced over zeroconf (loopback)."""
    data = tmp_path_factory.mktemp("wy-keyed")
    made = orate(data, "keys", "create", "--name", "house", "--quota-chars", "60")
    assert made.returncode == 0, made.stderr
    port = free_port()
    srv = Server(
        data,
        workers=1,
        env={"ORATE_WYOMING_KEY": "house", "ORATE_WYOMING_ZEROCONF_NAME": f"orate-test-{port}"},
        args=["--wyoming", f"tcp://127.0.0.1:{port}", "--zeroconf"],
    )
    srv.wyoming_port = port  # type: ignore[attr-defined]
    srv.secret = made.stdout.strip()  # type: ignore[attr-defined]
    yield srv
    srv.stop()


@pytest.mark.asyncio
async def test_bound_key_quota_and_history(keyed: Server) -> None:
    start, pcm = await synthesize(keyed, "The key pays for this.", name="alloy")
    assert len(pcm) > start.rate // 2
    async with client(keyed) as c:
        await c.write_event(Synthesize("x" * 80, voice=SynthesizeVoice(name="alloy")).event())
        error = await read(c)
        assert error.type == "error" and error.data["code"] == "quota_exceeded"
    async with httpx.AsyncClient(timeout=60) as http:

        async def recorded() -> bool:
            history = (
                await http.get(
                    f"{keyed.url}/v1/history",
                    headers={"Authorization": f"Bearer {keyed.secret}"},  # type: ignore[attr-defined]
                )
            ).json()
            return any(
                r.get("dialect") == "wyoming" and "key pays" in r.get("text", "")
                for r in history["data"]
            )

        # the generation is recorded once its audio is all out, not necessarily before the
        # client has read audio-stop: wait for the row instead of reading history once
        await await_until(recorded, "the Wyoming generation in the key's history")


@pytest.mark.asyncio
async def test_zeroconf_announces_the_listener(keyed: Server) -> None:
    from zeroconf import IPVersion
    from zeroconf.asyncio import AsyncServiceInfo, AsyncZeroconf

    zc = AsyncZeroconf(interfaces=["127.0.0.1"], ip_version=IPVersion.V4Only)
    try:
        name = f"orate-test-{keyed.wyoming_port}._wyoming._tcp.local."  # type: ignore[attr-defined]
        info = AsyncServiceInfo("_wyoming._tcp.local.", name)
        assert await info.async_request(zc.zeroconf, 30_000), "not announced"
        assert info.port == keyed.wyoming_port  # type: ignore[attr-defined]
        assert info.parsed_addresses() == ["127.0.0.1"]
    finally:
        await zc.async_close()


@pytest.mark.asyncio
async def test_revoking_the_bound_key_stops_the_listener(keyed: Server) -> None:
    done = await asyncio.to_thread(orate, keyed.data_dir, "keys", "revoke", "house")
    assert done.returncode == 0, done.stderr

    async def refused() -> Event | None:
        async with client(keyed) as c:
            await c.write_event(Synthesize("Hello.", voice=SynthesizeVoice(name="alloy")).event())
            event = await read(c)
        # each try the key still answers spends its small quota: once that is gone the
        # refusal says so, until the revocation lands
        refusal = event.type == "error" and event.data.get("code") != "quota_exceeded"
        return event if refusal else None

    # keys are cached for up to 2 s: the revocation lands whenever that cache turns over
    event = await await_until(refused, "the revoked key to be refused", interval=0.5)
    assert event.data["code"] == "invalid_api_key", event.data
