"""No single key stalls the server: pronunciation rules that run in linear time off the
event loop, work charged on what is spoken, bounded job queues, Wyoming connections
with deadlines. Each test runs a real server on loopback and, while one client does
its worst, checks that another is still answered before a generous deadline (never a
timed assert: a slow machine waits longer, a stalled loop fails)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import os
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from .conftest import Server
from .waiting import wait_until

ORATE = [sys.executable, "-m", "orate.cli"]


def create_key(data: Path, *args: str) -> str:
    done = subprocess.run(
        [*ORATE, "keys", "create", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "ORATE_DATA_DIR": str(data)},
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def used_chars(srv: Server, name: str) -> int:
    done = subprocess.run(
        [*ORATE, "keys", "list", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "ORATE_DATA_DIR": str(srv.data_dir)},
    )
    return next(r["used_chars"] for r in json.loads(done.stdout) if r["name"] == name)


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    data = tmp_path_factory.mktemp("fair")
    keys = {
        "alice": create_key(data, "--name", "alice"),
        "bob": create_key(data, "--name", "bob"),
        "q": create_key(data, "--name", "q", "--quota-chars", "3000"),
    }
    server = Server(data, workers=1)
    server.keys = keys  # type: ignore[attr-defined]
    yield server
    server.stop()


class HealthWatch:
    """Polls /healthz from another thread while a request runs: each poll must be
    answered before ``deadline`` seconds. A liveness bound, not a speed claim: a free event
    loop answers in milliseconds even beside CPU hogs, and the work these tests put on the
    server (catastrophic patterns, huge lexicons) would block a loop for minutes or days,
    so the generous bound tells the two apart on any machine."""

    def __init__(self, srv: Server, deadline: float = 30.0) -> None:
        self.url = f"{srv.url}/healthz"
        self.deadline = deadline
        self.answered = 0
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(timeout=self.deadline) as client:
            while not self._stop.is_set():
                try:
                    if client.get(self.url).status_code == 200:
                        self.answered += 1
                except httpx.TimeoutException:
                    self.failures.append(f"/healthz not answered within {self.deadline} s")
                time.sleep(0.05)  # the polling interval, not a wait for a state

    def __enter__(self) -> HealthWatch:
        assert httpx.get(self.url, timeout=self.deadline).status_code == 200
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)
        assert not self.failures, self.failures


def make_dictionary(srv: Server, key: str, rules: list[dict[str, Any]]) -> httpx.Response:
    return httpx.post(
        f"{srv.url}/v1/pronunciation-dictionaries",
        json={"name": "d", "rules": rules},
        headers=bearer(key),
        timeout=120,
    )


def speak(
    srv: Server, key: str, text: str, dictionaries: list[str] | None = None, **kw: Any
) -> httpx.Response:
    body: dict[str, Any] = {
        "model": "tts-1",
        "voice": "alloy",
        "input": text,
        "response_format": "wav",
        **kw,
    }
    if dictionaries:
        body["pronunciation_dictionary_locators"] = [
            {"pronunciation_dictionary_id": d} for d in dictionaries
        ]
    return httpx.post(f"{srv.url}/v1/audio/speech", json=body, headers=bearer(key), timeout=180)


@pytest.mark.parametrize("pattern", ["((a)+)+b", "(a|a)*b", "((a)*)*b"])
def test_catastrophic_patterns_run_in_linear_time_off_the_loop(srv: Server, pattern: str) -> None:
    key = srv.keys["alice"]  # type: ignore[attr-defined]
    made = make_dictionary(
        srv, key, [{"string_to_replace": pattern, "regex": True, "type": "alias", "alias": "x"}]
    )
    assert made.status_code == 200, made.text
    # 40 a's and no b: a backtracking engine would take days; RE2 takes microseconds
    text = " ".join(["a" * 40 + "c"] * 20)
    with HealthWatch(srv):
        said = speak(srv, key, text, [made.json()["id"]])
    assert said.status_code == 200, said.text


def test_patterns_re2_cannot_run_are_refused_naming_the_construct(srv: Server) -> None:
    key = srv.keys["alice"]  # type: ignore[attr-defined]
    for pattern, construct in [
        (r"(\w+) \1", "backreference"),
        (r"(?<!x)y", "lookbehind"),
        (r"a(?=b)", "lookahead"),
        ("a++", "possessive"),
    ]:
        bad = make_dictionary(
            srv, key, [{"string_to_replace": pattern, "regex": True, "type": "alias", "alias": "x"}]
        )
        assert bad.status_code == 400, bad.text
        assert construct in bad.json()["error"]["message"]


def test_a_big_dictionary_on_a_long_text_leaves_the_server_answering(srv: Server) -> None:
    key = srv.keys["alice"]  # type: ignore[attr-defined]
    lexemes = "".join(
        f"<lexeme><grapheme>word{n}</grapheme><alias>term {n}</alias></lexeme>" for n in range(4999)
    )
    pls = (
        '<?xml version="1.0" encoding="UTF-8"?><lexicon version="1.0" '
        'xmlns="http://www.w3.org/2005/01/pronunciation-lexicon" alphabet="ipa" '
        f'xml:lang="en-US">{lexemes}</lexicon>'
    ).encode()
    with HealthWatch(srv):
        made = httpx.post(
            f"{srv.url}/v1/pronunciation-dictionaries/add-from-file",
            data={"name": "big"},
            files={"file": ("big.pls", pls)},
            headers=bearer(key),
            timeout=120,
        )
        assert made.status_code == 200, made.text
        assert made.json()["rules_count"] == 4999
        pd = made.json()["id"]
        words = [f"word{n * 7 % 4999}" if n % 3 == 0 else "plain" for n in range(800)]
        text = " ".join(words)[:4000]
        said = speak(srv, key, text[:1500], [pd, pd, pd])
    assert said.status_code in (200, 413), said.text
    if said.status_code == 413:  # the spoken text grew past a limit: named, before work
        assert said.json()["error"]["code"] == "request_too_large"


def test_alias_amplification_is_refused_up_front_and_charged_as_spoken(srv: Server) -> None:
    key = srv.keys["q"]  # type: ignore[attr-defined]
    made = make_dictionary(
        srv,
        key,
        [{"string_to_replace": "boom", "type": "alias", "alias": " ".join(["boom"] * 200)}],
    )
    assert made.status_code == 200, made.text
    pd = made.json()["id"]
    with HealthWatch(srv):
        refused = speak(srv, key, "boom " * 800, [pd])
    assert refused.status_code == 413, refused.text
    assert "max_expansion" in refused.json()["error"]["message"]
    # a short alias is charged what it speaks: "Nginx" → "engine x" is 8 characters
    small = make_dictionary(
        srv,
        key,
        [{"string_to_replace": "Nginx", "type": "alias", "alias": "engine ex, the web server"}],
    )
    before = used_chars(srv, "q")
    said = speak(srv, key, "Nginx", [small.json()["id"]])
    assert said.status_code == 200, said.text
    wait_until(
        lambda: used_chars(srv, "q") - before == len("engine ex, the web server"),
        "the key charged the alias's characters",
    )
    log = (srv.data_dir / "server.log").read_text()
    assert "Traceback" not in log


@pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning")
def test_a_render_past_its_cap_stops_the_engine_with_one_error(
    capfd: pytest.CaptureFixture[str],
) -> None:
    """The cap hit inside espeak's C callback stops espeak there (the callback says
    abort) and raises once, instead of an exception per callback printed by ctypes
    while espeak carries on."""
    from orate.engines.base import VoiceParams
    from orate.engines.espeak import get_engine
    from orate.runtime.events import EventKind
    from orate.runtime.render import OutputTooLarge, RenderJob, Segment, render
    from orate.speech.text import split_sentences

    # the process's one engine: a second EspeakEngine would re-register libespeak-ng's
    # callback and leave the first one's pointing at freed memory
    engine = get_engine()
    params = engine.check_voice(VoiceParams(engine=engine.name, voice="en-us"))
    text = "A long sentence that keeps on going and going and going, " * 40 + "End."
    job = RenderJob(
        text=text,
        segments=(Segment(params, tuple(split_sentences(text))),),
        format="wav",
        max_bytes=50_000,
    )
    sent: list[int] = []
    calls_after_cap = 0
    capped = False

    class Watched:
        """espeak, counting the callbacks it makes after the cap was hit."""

        def __getattr__(self, name: str) -> Any:
            return getattr(engine, name)

        def synthesize(self, text: str, voice: Any, speed: float, sink: Any, **kw: Any) -> Any:
            def watched(pcm: Any, events: Any) -> bool:
                nonlocal calls_after_cap, capped
                if capped:
                    calls_after_cap += 1
                try:
                    going = sink(pcm, events)
                except OutputTooLarge:
                    capped = True
                    raise
                capped = capped or not going
                return going

            return engine.synthesize(text, voice, speed, watched, **kw)

    def emit(kind: int, payload: object) -> None:
        if kind is EventKind.AUDIO:
            sent.append(len(payload))  # type: ignore[arg-type]

    with pytest.raises(OutputTooLarge):
        render(job, lambda _: Watched(), emit)  # type: ignore[arg-type,return-value]
    assert sum(sent) <= 50_000
    assert capped and calls_after_cap == 0
    err = capfd.readouterr().err
    assert "Traceback" not in err and "Exception ignored" not in err, err[-2000:]


def test_healthz_while_many_rule_requests_run(srv: Server) -> None:
    key = srv.keys["bob"]  # type: ignore[attr-defined]
    made = make_dictionary(
        srv, key, [{"string_to_replace": "((a)*)*b", "regex": True, "type": "alias", "alias": "x"}]
    )
    pd = made.json()["id"]
    with HealthWatch(srv), concurrent.futures.ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda _: speak(srv, key, "a" * 60 + "c", [pd]), range(4)))
    assert all(a.status_code == 200 for a in answers)


def test_one_keys_job_flood_is_bounded_and_does_not_starve_another_key(
    tmp_path: Path,
) -> None:
    """A key floods async jobs: past its pending limit it gets 429 naming the limit, and
    another key's job, queued behind the whole flood, runs next (keys take turns)."""
    keys = {n: create_key(tmp_path, "--name", n) for n in ("flood", "other")}
    server = Server(
        tmp_path,
        workers=1,
        env={"ORATE_MAX_PENDING_JOBS_PER_KEY": "12", "ORATE_CACHE_ENABLED": "false"},
    )
    try:

        def job(key: str, text: str) -> httpx.Response:
            return httpx.post(
                f"{server.url}/api/tts",
                headers={**bearer(key), "Prefer": "respond-async"},
                json={"text": text, "model": "tts-1", "voice": "alloy", "response_format": "wav"},
                timeout=60,
            )

        long = "A steady sentence that takes the engine a moment to read aloud. " * 300
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            # distinct texts: no job is a cache hit of another, each takes the engine a while
            flood = list(pool.map(lambda n: job(keys["flood"], f"{n}. {long}"), range(30)))
        refused = [a for a in flood if a.status_code == 429]
        answers = [a for a in flood if a.status_code == 202]
        assert refused and len(answers) + len(refused) == 30, [a.text for a in flood]
        assert "max_pending_jobs_per_key" in refused[0].json()["error"]["message"]

        def status(key: str, run_id: str) -> str:
            r = httpx.get(
                f"{server.url}/api/tts/status",
                params={"runId": run_id},
                headers=bearer(key),
                timeout=60,
            )
            return r.json()["status"]

        def flood_done() -> int:
            return [status(keys["flood"], a.json()["runId"]) for a in answers].count("completed")

        before = flood_done()  # some finished while the flood was being sent
        mine = job(keys["other"], "Just one short line.")
        assert mine.status_code == 202, mine.text
        run = mine.json()["runId"]
        wait_until(lambda: status(keys["other"], run) == "completed", "the other key's job", 180)
        # meanwhile at most the flood job running when it was queued (and one more
        # finishing between the count and the submission): the rest waited their turn
        assert flood_done() - before <= 2, (before, flood_done(), len(answers))
    finally:
        server.stop()


async def _describe(port: int, within: float = 60) -> str:
    """One describe on a new connection from 127.0.0.1: the answer's event type, or
    "closed" when the server closed (or reset) the connection without one."""
    from wyoming.client import AsyncTcpClient
    from wyoming.info import Describe

    try:
        async with AsyncTcpClient("127.0.0.1", port) as c:
            await c.write_event(Describe().event())
            event = await asyncio.wait_for(c.read_event(), within)
            return event.type if event is not None else "closed"
    except ConnectionError:
        return "closed"


async def _slowloris(port: int, source: str, count: int) -> list[asyncio.StreamWriter]:
    """``count`` connections from ``source`` that send half an event and nothing more."""
    writers = []
    for _ in range(count):
        _, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))
        writers.append(writer)
        with contextlib.suppress(ConnectionError):  # refused past a cap: closed at once
            writer.write(b'{"type":"desc')
            await writer.drain()
    return writers


@pytest.mark.asyncio
async def test_wyoming_slowloris_leaves_a_new_describe_answered(tmp_path: Path) -> None:
    from .conftest import free_port

    port = free_port()
    server = Server(
        tmp_path,
        workers=1,
        env={"ORATE_WYOMING_EVENT_TIMEOUT": "2"},
        args=["--wyoming", f"tcp://127.0.0.1:{port}"],
    )
    try:
        # 40 half-sent events from another address: 8 are held (the per-address cap),
        # the rest refused; a client from this address is answered at once
        other = await _slowloris(port, "127.0.0.2", 40)
        assert await _describe(port) == "info"
        # 40 from this very address: they fill its 8 slots only until the event deadline
        same = await _slowloris(port, "127.0.0.1", 40)
        deadline = time.monotonic() + 60
        while (answer := await _describe(port)) != "info":
            assert answer in ("error", "closed") and time.monotonic() < deadline, answer
            await asyncio.sleep(0.2)
        for w in other + same:
            w.close()
        # connections reset by their clients (SO_LINGER 0) end quietly, without a traceback
        for _ in range(3):
            sock = socket.create_connection(("127.0.0.1", port))
            await asyncio.sleep(0.1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.close()
        assert await _describe(port) == "info"
    finally:
        server.stop()
    assert "Traceback" not in (tmp_path / "server.log").read_text()


@pytest.fixture(scope="module")
def quick(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server whose Hume WebSockets close after 1 s without a message."""
    server = Server(tmp_path_factory.mktemp("quick"), workers=1, env={"ORATE_WS_IDLE_TIMEOUT": "1"})
    yield server
    server.stop()


@pytest.mark.parametrize(
    "path",
    [
        "/v1/text-to-speech/alloy/stream-input?model_id=tts-1",
        "/v1/text-to-speech/alloy/multi-stream-input?model_id=tts-1",
        "/v0/tts/stream/input",
    ],
)
def test_every_websocket_closes_bad_frames_with_1008_and_a_reason(quick: Server, path: str) -> None:
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect

    url = quick.url.replace("http", "ws") + path
    for payload in (b"\x00\x01binary", "[" * 100_000 + "]" * 100_000, "x" * 70_000):
        with connect(url, max_size=None) as ws:
            ws.send(payload)
            with pytest.raises(ConnectionClosed) as closed:
                while True:
                    ws.recv(timeout=30)
        assert closed.value.rcvd is not None, path
        assert closed.value.rcvd.code == 1008 and closed.value.rcvd.reason, (path, payload[:5])
    log = (quick.data_dir / "server.log").read_text()
    assert "Traceback" not in log and "KeyError" not in log


def test_frames_past_a_mebibyte_are_refused_before_parsing(quick: Server) -> None:
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect

    url = quick.url.replace("http", "ws") + "/v0/tts/stream/input"
    with connect(url, max_size=None) as ws, pytest.raises(ConnectionClosed) as closed:
        ws.send("x" * (2 << 20))
        ws.recv(timeout=30)
    # the server refuses the frame as it arrives (1009); when it resets the connection
    # while the client is still sending, the close frame itself can be lost
    assert closed.value.rcvd is None or closed.value.rcvd.code == 1009
    assert httpx.get(f"{quick.url}/healthz").status_code == 200


def test_a_silent_hume_socket_is_closed_with_a_reason(quick: Server) -> None:
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect

    url = quick.url.replace("http", "ws") + "/v0/tts/stream/input"
    with connect(url) as ws, pytest.raises(ConnectionClosed) as closed:
        ws.recv(timeout=30)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
    assert "ws_idle_timeout" in closed.value.rcvd.reason


def test_pages_and_audio_carry_security_headers(quick: Server) -> None:
    page = httpx.get(f"{quick.url}/", follow_redirects=True)
    audio = httpx.post(
        f"{quick.url}/v1/audio/speech",
        timeout=60,
        json={"model": "tts-1", "voice": "alloy", "input": "Hi.", "response_format": "mp3"},
    )
    assert page.headers["content-type"].startswith("text/html")
    assert audio.status_code == 200 and audio.headers["content-type"].startswith("audio/")
    for r in (page, audio):
        csp = r.headers["content-security-policy"]
        assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["referrer-policy"] == "no-referrer"
    assert httpx.get(f"{quick.url}/healthz").headers["x-content-type-options"] == "nosniff"


def test_readyz_is_not_ready_while_free_space_is_below_a_response(tmp_path: Path) -> None:
    from .test_hardening import small_fs

    with small_fs(tmp_path / "blobs", "8m") as blobs:
        server = Server(
            tmp_path,
            workers=1,
            env={"ORATE_BLOB_URL": str(blobs), "ORATE_READY_MIN_FREE_BYTES": str(2 << 20)},
        )
        try:
            assert httpx.get(f"{server.url}/readyz").status_code == 200
            # leave about 1 MiB: a 4 KiB probe write still works, a long response would not
            free = os.statvfs(blobs).f_bavail * os.statvfs(blobs).f_frsize
            (blobs / "filler").write_bytes(b"\0" * (free - (1 << 20)))
            ready = httpx.get(f"{server.url}/readyz")
            assert ready.status_code == 503 and ready.json()["storage"] is False
            assert "free" in ready.json()["reasons"]["storage"]
            (blobs / "filler").unlink()
            wait_until(lambda: httpx.get(f"{server.url}/readyz").status_code == 200, "ready again")
        finally:
            server.stop()
