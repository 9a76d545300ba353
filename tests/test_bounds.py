"""Memory and time bounds under abusive requests, slow clients and slow connections.

Each test starts its own server (the settings differ) and measures what matters here:
the RSS of the server's process tree from /proc, statuses, and how long a
connection is held.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import Server
from tests.waiting import wait_until

PROSE = (
    "The quick brown fox jumps over the lazy dog. Please call me back tomorrow morning. "
    "The weather is cold and windy today. She sells sea shells by the sea shore. "
)


def prose(chars: int, tag: str = "") -> str:
    text = (tag + PROSE * (chars // len(PROSE) + 1))[:chars]
    return text.rsplit(" ", 1)[0] + "."


def tree_rss(pid: int) -> int:
    """VmRSS of ``pid`` and all its descendants, in bytes."""
    return sum(tree_rss_by_process(pid).values())


def tree_rss_by_process(pid: int) -> dict[int, int]:
    """VmRSS of ``pid`` and each of its descendants, in bytes."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        children.setdefault(int(fields["PPid"]), []).append(int(entry.name))
        rss[int(entry.name)] = int(fields.get("VmRSS", "0 kB").split()[0]) * 1024
    out, todo = {}, [pid]
    while todo:
        p = todo.pop()
        out[p] = rss.get(p, 0)
        todo += children.get(p, [])
    return out


def stalled(port: int, path: str, body: dict) -> socket.socket:
    """A request whose client never reads the answer (a tiny receive buffer)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    data = json.dumps(body).encode()
    sock.sendall(
        f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(data)}\r\n\r\n".encode()
        + data
    )
    return sock


def established(sock: socket.socket) -> bool:
    """Whether the server still holds the connection, seen without reading from it."""
    return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)[0] == 1  # TCP_ESTABLISHED


# -- one request's work and size ------------------------------------------------------


def test_request_work_and_size_are_refused_up_front(tmp_path: Path) -> None:
    """A request of 5 x 4,990 characters, 5 generations, wav, once took 96 s and 11.6 GB;
    now it, and any response estimated over the size limit, is a 413 naming the limit."""
    srv = Server(tmp_path, workers=1, env={"ORATE_MAX_RESPONSE_BYTES": str(20 << 20)})
    try:
        base = tree_rss(srv.proc.pid)
        attack = {
            "utterances": [{"text": prose(4990), "voice": {"name": "alloy"}}] * 5,
            "num_generations": 5,
            "format": {"type": "wav"},
        }
        before = srv.health()["engines"]
        r = httpx.post(f"{srv.url}/v0/tts", json=attack, timeout=60)
        assert r.status_code == 413, r.text[:300]
        assert srv.health()["engines"] == before  # refused before any engine was asked
        assert r.json()["code"] == "request_too_large"  # Hume's envelope
        assert "max_request_work" in r.json()["message"]

        # within the work limit, but the JSON answer would be too large
        big = {
            "utterances": [{"text": prose(4990), "voice": {"name": "alloy"}}] * 2,
            "format": {"type": "wav"},
        }
        r = httpx.post(f"{srv.url}/v0/tts", json=big, timeout=60)
        assert r.status_code == 413, r.text[:300]
        assert "max_response_bytes" in r.json()["message"]

        # OpenAI: its own envelope; the same text fits as mp3
        body = {
            "model": "tts-1",
            "voice": "alloy",
            "input": prose(4090),
            "response_format": "wav",
            "speed": 0.5,
        }
        r = httpx.post(f"{srv.url}/v1/audio/speech", json=body, timeout=60)
        assert r.status_code == 413, r.text[:300]
        err = r.json()["error"]
        assert err["code"] == "request_too_large" and "max_response_bytes" in err["message"]
        r = httpx.post(
            f"{srv.url}/v1/audio/speech", json={**body, "response_format": "mp3"}, timeout=60
        )
        assert r.status_code == 200 and len(r.content) > 100_000

        # text that speaks far longer than it reads passes the estimate and meets the cap
        sneaky = {
            "utterances": [{"text": "1. " * 700, "voice": {"name": "alloy"}}],
            "format": {"type": "wav"},
        }
        r = httpx.post(f"{srv.url}/v0/tts/file", json=sneaky, timeout=60)
        assert r.status_code == 413, (r.status_code, r.text[:300])
        assert "max_response_bytes" in r.json()["message"]
        assert tree_rss(srv.proc.pid) < base + (150 << 20)
    finally:
        srv.stop()


def test_a_refused_request_stops_its_synthesis(tmp_path: Path) -> None:
    """A request that gets 503 (no engine free in time) must not keep synthesizing: its
    other generations stop with it."""
    # the first generation (~10 minutes of speech at half speed) takes far longer to make
    # than the second waits for the only engine (0.2 s), so finishing it is a failure
    # one job at a time on the one worker: the second generation waits in the line
    srv = Server(
        tmp_path, workers=1, env={"ORATE_QUEUE_TIMEOUT": "0.2", "ORATE_WORKER_STREAMS": "1"}
    )
    try:
        body = {
            "utterances": [{"text": prose(4900), "voice": {"name": "alloy"}, "speed": 0.5}],
            "num_generations": 3,
            "format": {"type": "mp3"},
        }
        r = httpx.post(f"{srv.url}/v0/tts", json=body, timeout=60)
        assert r.status_code == 503, r.text[:300]
        engines = wait_until(
            lambda: (e := srv.health()["engines"])["busy"] == 0 and e["cancelled"] >= 1 and e,
            "the refused request's first generation to be cancelled",
        )
        assert engines["completed"] == 0 and engines["waiting"] == 0, engines
        # a request made now is served, and is the only synthesis ever completed: nothing
        # of the refused request was left queued or running ahead of it
        short = {"utterances": [{"text": "Still here.", "voice": {"name": "alloy"}}]}
        assert httpx.post(f"{srv.url}/v0/tts", json=short, timeout=60).status_code == 200
        engines = wait_until(
            lambda: (e := srv.health()["engines"])["busy"] == 0 and e,
            "the engine to finish the short request",
        )
        assert engines["completed"] == 1, engines  # the first generation did not carry on
    finally:
        srv.stop()


def test_a_client_that_gives_up_stops_its_synthesis(tmp_path: Path) -> None:
    """A client timing out on a response built whole (Hume JSON, nano-gpt JSON) used to
    leave the server synthesizing every generation for nobody."""
    srv = Server(tmp_path, workers=1)
    try:
        for path, body in (
            (
                "/v0/tts",
                {
                    "utterances": [{"text": prose(4900), "voice": {"name": "alloy"}}],
                    "num_generations": 3,
                    "format": {"type": "mp3"},
                },
            ),
            ("/api/tts", {"text": prose(4000, "Again. "), "voice": "alloy"}),
        ):
            before = srv.health()["engines"]
            # the client gives up once its synthesis has started (the behaviour under
            # test: these answers take far longer to make, seconds of CPU even on an idle
            # machine). Not after a fixed half second: on a busy machine the request may
            # not have reached an engine by then, and a request dropped before any engine
            # was asked has nothing to cancel
            sock = stalled(srv.port, path, body)
            try:
                wait_until(
                    lambda: srv.health()["engines"]["busy"] >= 1,
                    f"the synthesis of {path} to start",
                    timeout=60,
                )
            finally:
                sock.close()
            engines = wait_until(
                lambda before=before: (
                    (e := srv.health()["engines"])["busy"] == 0
                    and e["waiting"] == 0
                    and e["cancelled"] > before["cancelled"]
                    and e
                ),
                f"the server to cancel the synthesis its client left ({path})",
                timeout=60,
            )
            assert engines["completed"] == before["completed"], (path, engines)
    finally:
        srv.stop()


# -- slow readers ----------------------------------------------------------------------


@pytest.mark.slow
def test_stalled_readers_cost_bounded_memory_and_are_dropped(tmp_path: Path) -> None:
    """Clients that never read: the server holds a bounded buffer for each (the engine
    waits), drops them after the stall timeout, and gives the memory back."""
    srv = Server(tmp_path, workers=2, env={"ORATE_STALL_TIMEOUT": "4"})
    try:
        # each kind of request first, on each worker (sequential requests alternate between
        # the two; distinct texts, or the cache would answer): modules imported on first
        # use (PyAV for Hume's 48 kHz, in a worker and in the server) are not the buffers
        # this test bounds
        def warm(n: int) -> tuple[str, dict]:
            if n % 3 == 0:
                return "/v1/audio/speech", {
                    "model": "tts-1",
                    "voice": "alloy",
                    "input": f"Warm up {n}.",
                    "response_format": "wav",
                }
            return "/v0/tts/stream/file", {
                "utterances": [{"text": f"Warm up {n}.", "voice": {"name": "alloy"}}],
                "format": {"type": "wav"},
            }

        for path, body in map(warm, range(4)):
            assert httpx.post(f"{srv.url}{path}", json=body, timeout=120).status_code == 200
        wait_until(lambda: srv.health()["engines"]["busy"] == 0, "the warm-up to finish")
        base = tree_rss(srv.proc.pid)
        openai = [
            {
                "model": "tts-1",
                "voice": "alloy",
                "input": prose(4070, f"Take {i}. "),
                "response_format": "wav",
            }
            for i in range(3)
        ]
        openai.append(openai[0])  # an identical request shares the first one's synthesis
        hume = {
            "utterances": [{"text": prose(4970), "voice": {"name": "alloy"}}],
            "format": {"type": "wav"},
        }
        socks = [stalled(srv.port, "/v1/audio/speech", b) for b in openai]
        socks.append(stalled(srv.port, "/v0/tts/stream/file", hume))
        peak = base
        dropped: set[int] = set()

        def all_dropped() -> bool:  # sampling the peak while the clients stall
            nonlocal peak
            peak = max(peak, tree_rss(srv.proc.pid))
            dropped.update(n for n, s in enumerate(socks) if not established(s))
            return len(dropped) == len(socks)

        # the stall timeout is 4 s; dropping them is the server's move, whenever it comes
        wait_until(all_dropped, "the stalled clients to be dropped", timeout=90, interval=0.2)
        # unbounded, these five buffered their whole audio (~15-30 MB each, wav)
        assert peak - base < 60 << 20, (base >> 20, peak >> 20)
        for s in socks:
            s.close()
        wait_until(
            lambda: (e := srv.health()["engines"])["busy"] == 0 and e["waiting"] == 0,
            "the engines of the dropped clients to stop",
        )
        try:
            wait_until(
                lambda: tree_rss(srv.proc.pid) - base < 40 << 20,
                f"the memory of the dropped clients to be given back (base {base >> 20} MiB)",
                timeout=60,
            )
        except AssertionError as exc:  # say which process kept it
            now = {p: r >> 20 for p, r in tree_rss_by_process(srv.proc.pid).items()}
            raise AssertionError(f"{exc}; MiB by process now: {now}") from None
    finally:
        srv.stop()


@pytest.mark.fast
@pytest.mark.asyncio
async def test_a_shared_flight_runs_no_further_ahead_than_its_lead_reader() -> None:
    """Identical requests share one synthesis; it must not run ahead of its readers (nor
    be held back by the slowest), and it stops when the last one leaves."""
    from orate.speech.flight import Flight
    from orate.speech.types import SpeechEvent

    made = 0
    closed = asyncio.Event()

    async def source():  # type: ignore[no-untyped-def]
        nonlocal made
        try:
            for _ in range(1000):
                made += 1
                yield SpeechEvent("audio", audio=bytes(64 << 10))
        finally:
            closed.set()

    async def let_it_run() -> None:
        """Give the flight's task many turns of the loop: were it unpaced, it would make an
        event on each (turns of the loop, not time, so a busy machine changes nothing)."""
        for _ in range(200):
            await asyncio.sleep(0)

    flight = Flight(source(), window=256 << 10)
    fast, slow = flight.subscribe(), flight.subscribe()
    await let_it_run()
    assert made <= 5  # nobody read yet: one window, not 64 MB
    for _ in range(20):
        await anext(fast)
    await let_it_run()
    assert 20 <= made <= 25, made  # paced by the lead reader; the slow one holds nothing back
    await anext(slow)
    await fast.aclose()
    await let_it_run()
    assert made <= 25, made  # the slow reader is now the lead, 19 events behind: no room
    await slow.aclose()
    await asyncio.wait_for(closed.wait(), 30)  # the last reader left: the synthesis stopped
    assert flight.done and not flight.succeeded


def test_a_slow_reader_still_gets_all_the_audio(tmp_path: Path) -> None:
    """Pacing must not lose or reorder anything: a client reading in small sips gets the
    same bytes as a fast one (wav passes through unchanged)."""
    srv = Server(
        tmp_path,
        workers=1,
        env={"ORATE_CACHE_ENABLED": "false", "ORATE_STREAM_BUFFER_BYTES": "8192"},
    )
    try:
        body = {"model": "tts-1", "voice": "alloy", "input": prose(1500), "response_format": "pcm"}
        fast = httpx.post(f"{srv.url}/v1/audio/speech", json=body, timeout=60).content
        got = bytearray()
        with httpx.stream("POST", f"{srv.url}/v1/audio/speech", json=body, timeout=60) as r:
            for chunk in r.iter_bytes(16384):
                got += chunk
                time.sleep(0.002)  # the behaviour under test: a client reading in sips
        assert abs(len(got) - len(fast)) < 4800  # espeak varies by a few samples per call
        assert len(got) > 1_000_000
    finally:
        srv.stop()


# -- slow headers and bodies -------------------------------------------------------------


def test_slow_headers_and_short_bodies_time_out(tmp_path: Path) -> None:
    """Headers trickled a byte a second, and a body shorter than its Content-Length, are
    answered 408 (and closed) within the read timeout."""
    srv = Server(tmp_path, workers=1, env={"ORATE_READ_TIMEOUT": "2"})
    try:
        request = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 100
        trickle = []
        for _ in range(20):
            s = socket.create_connection(("127.0.0.1", srv.port))
            s.sendall(request[:1])
            trickle.append(s)
        sent = 1
        closed: set[int] = set()
        # the whole headers would take over a minute at this pace: the server must close
        # each connection before they are complete, however slowly this loop runs
        while len(closed) < len(trickle) and sent < len(request):
            for n, s in enumerate(trickle):
                if n in closed:
                    continue
                s.setblocking(False)
                try:
                    data = s.recv(4096)
                    assert not data or data.startswith(b"HTTP/1.1 408"), data[:60]
                    closed.add(n)
                except BlockingIOError:
                    s.setblocking(True)
                    s.sendall(request[sent : sent + 1])  # one more byte of the headers
                except OSError:
                    closed.add(n)
            sent += 1
            time.sleep(0.5)  # the behaviour under test: a client sending a byte at a time
        assert len(closed) == len(trickle), f"{len(trickle) - len(closed)} still open"
        for s in trickle:
            s.close()

        for path, envelope, framing in (
            ("/v1/audio/speech", "error", 'Content-Length: 1000\r\n\r\n{"'),
            ("/v0/tts", "code", 'Content-Length: 1000\r\n\r\n{"'),
            ("/api/tts", "error", 'Transfer-Encoding: chunked\r\n\r\n2\r\n{"\r\n'),
        ):
            s = socket.create_connection(("127.0.0.1", srv.port))
            s.settimeout(60)  # a deadline: the 408 comes after the 2 s read timeout
            s.sendall(
                f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                f"{framing}".encode()
            )
            data = b""
            while chunk := s.recv(65536):
                data += chunk
            s.close()
            assert data.startswith(b"HTTP/1.1 408"), data[:200]
            body = json.loads(data.split(b"\r\n\r\n", 1)[1])
            assert envelope in body, body
            assert "read_timeout" in json.dumps(body)
    finally:
        srv.stop()
