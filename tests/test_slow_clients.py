"""Synthesis never waits on a client: slow readers and WebSockets that stopped reading
drain from the spool at their own pace, while their engines serve everyone else."""

from __future__ import annotations

import base64
import json
import os
import socket
import threading
from pathlib import Path

import httpx

from .conftest import Server, decode
from .test_bounds import prose
from .waiting import wait_for, wait_until


class SlowReader(threading.Thread):
    """An HTTP request whose client reads its answer in sips of ``sip`` bytes every
    ``pause`` seconds (with a tiny receive buffer, so the server feels it at once)."""

    def __init__(self, port: int, path: str, body: dict, sip: int, pause: float) -> None:
        super().__init__(daemon=True)
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.sock.connect(("127.0.0.1", port))
        data = json.dumps(body).encode()
        self.sock.sendall(
            f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(data)}\r\n\r\n".encode()
            + data
        )
        self.sip, self.pause = sip, pause
        self.got = bytearray()
        self.ended = False  # the server closed the connection (or the response ended)
        self.stop = threading.Event()

    def run(self) -> None:
        self.sock.settimeout(60)
        try:
            while not self.stop.is_set():
                data = self.sock.recv(self.sip)
                if not data:
                    break
                self.got += data
                if self.got.endswith(b"0\r\n\r\n"):  # the chunked body's last chunk
                    break
                self.stop.wait(self.pause)  # the reader's own pace, not a synchronisation
        except OSError:
            pass
        self.ended = True

    def close(self) -> None:
        self.stop.set()
        self.sock.close()


def stalled_websocket(port: int, path: str, messages: list[dict]) -> socket.socket:
    """A WebSocket that sends its messages and then never reads a byte (raw frames, so
    no client library reads on its behalf)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        f"GET {path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    answer = b""
    while b"\r\n\r\n" not in answer:
        answer += sock.recv(1)  # byte by byte: read the handshake and nothing after it
    assert answer.startswith(b"HTTP/1.1 101"), answer
    for message in messages:
        payload = json.dumps(message).encode()
        mask = os.urandom(4)
        size = len(payload)
        head = bytes([0x81]) + (
            bytes([0x80 | size])
            if size < 126
            else bytes([0x80 | 126]) + size.to_bytes(2, "big")
            if size < 65536
            else bytes([0x80 | 127]) + size.to_bytes(8, "big")
        )
        sock.sendall(head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))
    return sock


def test_slow_readers_and_deaf_websockets_do_not_hold_the_engines(tmp_path: Path) -> None:
    """Two slow HTTP readers (one per worker) and two Hume WebSockets that never read used
    to hold both workers until they were dropped; honest clients got 503. Now their audio
    waits in the spool and the workers serve the honest clients while they still read."""
    srv = Server(tmp_path, workers=2, env={"ORATE_STALL_TIMEOUT": "300"})
    readers: list[SlowReader] = []
    sockets: list[socket.socket] = []
    try:
        for i in range(2):
            body = {
                "model": "tts-1",
                "voice": "alloy",
                "input": prose(4000, f"Slow reader {i}. "),
                "response_format": "wav",
            }
            reader = SlowReader(srv.port, "/v1/audio/speech", body, sip=2048, pause=0.2)
            reader.start()
            readers.append(reader)
        for i in range(2):
            sockets.append(
                stalled_websocket(
                    srv.port,
                    "/v0/tts/stream/input?format_type=wav",
                    [{"text": prose(4900, f"Deaf socket {i}. "), "flush": True}],
                )
            )

        def engines_free_while_clients_read() -> dict | None:
            engines = srv.health()["engines"]
            spilled = engines.get("spooled_jobs", 0) >= 2
            # nothing running and nothing queued: busy alone is 0 for a moment between a
            # worker finishing one job and taking the next one that waits for it
            idle = engines["busy"] == 0 and engines["waiting"] == 0
            return engines if spilled and idle else None

        engines = wait_until(
            engines_free_while_clients_read,
            "the slow clients' syntheses to finish into the spool",
            timeout=240,
        )
        assert engines["spool_bytes"] > 1 << 20, engines  # their audio waits on disk
        for n in range(4):  # the honest clients: answered by the freed workers
            r = httpx.post(
                f"{srv.url}/v1/audio/speech",
                json={
                    "model": "tts-1",
                    "voice": "alloy",
                    "input": f"Honest request number {n}, at 9:30.",
                    "response_format": "wav",
                },
                timeout=60,
            )
            assert r.status_code == 200, r.text
            samples, rate = decode(r.content, "wav")
            assert len(samples) / rate > 1.0
        # the slow readers are still reading what they asked for
        assert not any(r.ended for r in readers), [len(r.got) for r in readers]
        assert all(len(r.got) < 4 << 20 for r in readers)
    finally:
        for reader in readers:
            reader.close()
        for sock in sockets:
            sock.close()
    try:
        # every path out of a response gives its disk back
        wait_for(
            lambda: srv.health()["engines"],
            lambda engines: engines["spool_bytes"] == 0,
            "the spool to be empty once its clients left",
            timeout=60,
        )
        assert not os.listdir(tmp_path / "spool")  # anonymous files: nothing on disk
    finally:
        srv.stop()


def test_a_reader_at_real_time_gets_the_whole_response(tmp_path: Path) -> None:
    """A client reading at about the audio's own rate (a player that does not buffer
    ahead) gets every byte; a fast client's answer is the reference."""
    srv = Server(tmp_path, workers=1, env={"ORATE_CACHE_ENABLED": "false"})
    try:
        body = {
            "model": "tts-1",
            "voice": "alloy",
            "input": prose(1200),
            "response_format": "pcm",
            "speed": 4.0,
        }
        fast = httpx.post(f"{srv.url}/v1/audio/speech", json=body, timeout=60)
        assert fast.status_code == 200
        # pcm at 24 kHz is 48,000 bytes a second: read 4,800 every 0.1 s
        reader = SlowReader(srv.port, "/v1/audio/speech", body, sip=4800, pause=0.1)
        reader.start()
        reader.join(timeout=240)
        assert reader.ended, "the real-time reader did not finish"
        head, _, chunked = bytes(reader.got).partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200"), head[:80]
        audio = bytearray()
        while chunked:  # undo the chunked transfer coding
            size_line, _, rest = chunked.partition(b"\r\n")
            size = int(size_line, 16)
            if size == 0:
                break
            audio += rest[:size]
            chunked = rest[size + 2 :]
        assert abs(len(audio) - len(fast.content)) < 4800, (len(audio), len(fast.content))
    finally:
        srv.stop()


def test_spool_off_is_a_setting(tmp_path: Path) -> None:
    """``ORATE_SPOOL_BYTES=0`` keeps the engine paced by its client, and says so."""
    srv = Server(tmp_path, workers=1, env={"ORATE_SPOOL_BYTES": "0"})
    try:
        engines = srv.health()["engines"]
        assert "spool_bytes" not in engines
        r = httpx.post(
            f"{srv.url}/v1/audio/speech",
            json={
                "model": "tts-1",
                "voice": "alloy",
                "input": "Still speaks.",
                "response_format": "wav",
            },
            timeout=60,
        )
        assert r.status_code == 200
    finally:
        srv.stop()
