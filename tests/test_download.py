"""Model downloads against a real HTTP server on a loopback port (never the internet).

The server is a plain ``ThreadingHTTPServer`` that can honour or ignore ``Range``, cut
a connection after N bytes, publish ``.sha256`` sidecars, and redirect with an
``X-Linked-Etag`` the way Hugging Face does, so every path of ``pull`` runs over a real
socket.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from rich.console import Console

from orate.engines.download import (
    KOKORO_ROOT,
    PIPER_ROOT,
    ChecksumMismatch,
    DownloadError,
    pull,
    remove,
    resolve,
)

PIPER = "en_US-lessac-medium"
PIPER_DIR = "/en/en_US/lessac/medium"


@dataclass
class Behaviour:
    """What the fake publisher does; tests change it between calls."""

    files: dict[str, bytes] = field(default_factory=dict)
    sidecars: dict[str, str] = field(default_factory=dict)  # path -> body of path.sha256
    cut_after: dict[str, int] = field(default_factory=dict)  # path -> bytes, first GET only
    redirect_etag: dict[str, str] = field(default_factory=dict)  # path -> X-Linked-Etag
    ignore_range: bool = False
    requests: list[tuple[str, str | None]] = field(default_factory=list)
    marks: list[str | None] = field(default_factory=list)  # each request's X-Test header


class Handler(BaseHTTPRequestHandler):
    server: Server

    def log_message(self, format: str, *args: object) -> None:  # keep pytest output quiet
        pass

    def do_GET(self) -> None:
        b = self.server.behaviour
        path = self.path
        b.requests.append((path, self.headers.get("Range")))
        b.marks.append(self.headers.get("X-Test"))
        if path.startswith("/cdn/"):
            path = path[len("/cdn") :]
        elif path in b.redirect_etag:
            self.send_response(302)
            self.send_header("Location", "/cdn" + path)
            self.send_header("X-Linked-Etag", f'"{b.redirect_etag[path]}"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if path.endswith(".sha256") and path[:-7] in b.sidecars:
            self._send(200, b.sidecars[path[:-7]].encode())
            return
        body = b.files.get(path)
        if body is None:
            self._send(404, b"not found")
            return
        start = 0
        m = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
        if m and not b.ignore_range:
            start = int(m[1])
            if start >= len(body):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(body)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()
        cut = b.cut_after.pop(path, None)
        if cut is not None:  # promise the whole body, send part of it, hang up
            self.wfile.write(body[start : start + cut])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body[start:])

    def _send(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class Server(ThreadingHTTPServer):
    daemon_threads = True
    behaviour: Behaviour


@pytest.fixture
def server() -> Iterator[tuple[str, Behaviour]]:
    srv = Server(("127.0.0.1", 0), Handler)
    srv.behaviour = Behaviour()
    thread = threading.Thread(target=srv.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}", srv.behaviour
    finally:
        srv.shutdown()
        srv.server_close()


def blob(size: int) -> bytes:
    return os.urandom(size)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def quiet() -> Console:
    """A terminal-like console into a buffer, so the progress bar really renders."""
    return Console(file=io.StringIO(), force_terminal=True, width=120)


def piper_files(b: Behaviour) -> tuple[bytes, bytes]:
    onnx, cfg = blob(300_000), b'{"audio": {"sample_rate": 22050}}'
    b.files[f"{PIPER_DIR}/{PIPER}.onnx"] = onnx
    b.files[f"{PIPER_DIR}/{PIPER}.onnx.json"] = cfg
    return onnx, cfg


@pytest.mark.fast
def test_resolve_builds_the_publishers_urls() -> None:
    piper = resolve(f"piper:{PIPER}")
    assert [piper.url(f) for f in piper.files] == [
        f"{PIPER_ROOT}/en/en_US/lessac/medium/{PIPER}.onnx",
        f"{PIPER_ROOT}/en/en_US/lessac/medium/{PIPER}.onnx.json",
    ]
    assert PIPER_ROOT == "https://huggingface.co/rhasspy/piper-voices/resolve/v1.0.0"
    kokoro = resolve("kokoro")
    assert [kokoro.url(f) for f in kokoro.files] == [
        f"{KOKORO_ROOT}/model-files-v1.0/kokoro-v1.0.onnx",
        f"{KOKORO_ROOT}/model-files-v1.0/voices-v1.0.bin",
    ]
    assert [f.filename for f in kokoro.files] == ["kokoro.onnx", "kokoro.voices.bin"]
    assert kokoro.url(kokoro.files[0], "http://mirror/x/") == (
        "http://mirror/x/model-files-v1.0/kokoro-v1.0.onnx"
    )


def test_piper_pull(server: tuple[str, Behaviour], tmp_path: Path) -> None:
    base, b = server
    onnx, cfg = piper_files(b)
    console = quiet()
    paths = pull(f"piper:{PIPER}", tmp_path / "models", base_url=base, console=console)
    assert paths == [
        tmp_path / "models" / f"{PIPER}.onnx",
        tmp_path / "models" / f"{PIPER}.onnx.json",
    ]
    assert paths[0].read_bytes() == onnx
    assert paths[1].read_bytes() == cfg
    for path, data in zip(paths, (onnx, cfg), strict=True):
        assert Path(f"{path}.sha256").read_text().split()[0] == sha(data)
    assert not list((tmp_path / "models").glob("*.part"))
    assert f"{PIPER}.onnx" in console.file.getvalue()  # type: ignore[attr-defined]

    # complete files are skipped without a single request
    b.requests.clear()
    assert pull(f"piper:{PIPER}", tmp_path / "models", base_url=base, console=quiet()) == paths
    assert b.requests == []


def test_kokoro_pull(server: tuple[str, Behaviour], tmp_path: Path) -> None:
    base, b = server
    model, voices = blob(400_000), blob(150_000)
    b.files["/model-files-v1.0/kokoro-v1.0.onnx"] = model
    b.files["/model-files-v1.0/voices-v1.0.bin"] = voices
    b.sidecars["/model-files-v1.0/kokoro-v1.0.onnx"] = f"{sha(model)}  kokoro-v1.0.onnx\n"
    paths = pull("kokoro", tmp_path, base_url=base + "/", console=quiet())
    assert [p.name for p in paths] == ["kokoro.onnx", "kokoro.voices.bin"]
    assert paths[0].read_bytes() == model
    assert paths[1].read_bytes() == voices
    assert (tmp_path / "kokoro.voices.bin.sha256").read_text().split()[0] == sha(voices)


def test_resume_after_a_cut(server: tuple[str, Behaviour], tmp_path: Path) -> None:
    base, b = server
    onnx, _ = piper_files(b)
    path = f"{PIPER_DIR}/{PIPER}.onnx"
    b.cut_after[path] = 100_000
    with pytest.raises(DownloadError, match="resume"):
        pull(f"piper:{PIPER}", tmp_path, base_url=base, console=quiet())
    part = tmp_path / f"{PIPER}.onnx.part"
    assert not (tmp_path / f"{PIPER}.onnx").exists()
    kept = part.stat().st_size
    assert 0 < kept <= 100_000
    assert part.read_bytes() == onnx[:kept]

    b.requests.clear()
    paths = pull(f"piper:{PIPER}", tmp_path, base_url=base, console=quiet())
    assert (path, f"bytes={kept}-") in b.requests
    assert paths[0].read_bytes() == onnx
    assert not part.exists()
    assert Path(f"{paths[0]}.sha256").read_text().split()[0] == sha(onnx)


def test_resume_of_a_whole_part_gets_416_and_finishes(
    server: tuple[str, Behaviour], tmp_path: Path
) -> None:
    base, b = server
    onnx, _ = piper_files(b)
    (tmp_path / f"{PIPER}.onnx.part").write_bytes(onnx)
    paths = pull(f"piper:{PIPER}", tmp_path, base_url=base, console=quiet())
    assert paths[0].read_bytes() == onnx


def test_server_ignoring_range_starts_over(server: tuple[str, Behaviour], tmp_path: Path) -> None:
    base, b = server
    onnx, _ = piper_files(b)
    b.ignore_range = True
    # a stale .part (even one longer than the file) must not survive into the result
    (tmp_path / f"{PIPER}.onnx.part").write_bytes(b"\0" * 400_000)
    paths = pull(f"piper:{PIPER}", tmp_path, base_url=base, console=quiet())
    assert (f"{PIPER_DIR}/{PIPER}.onnx", "bytes=400000-") in b.requests
    assert paths[0].read_bytes() == onnx


def test_checksum_mismatch_is_refused(server: tuple[str, Behaviour], tmp_path: Path) -> None:
    base, b = server
    onnx, _ = piper_files(b)
    wrong = sha(b"something else")
    b.sidecars[f"{PIPER_DIR}/{PIPER}.onnx"] = wrong + "\n"
    with pytest.raises(ChecksumMismatch) as info:
        pull(f"piper:{PIPER}", tmp_path, base_url=base, console=quiet())
    message = str(info.value)
    assert f"{PIPER}.onnx" in message and wrong in message and sha(onnx) in message
    assert not (tmp_path / f"{PIPER}.onnx").exists()
    assert not (tmp_path / f"{PIPER}.onnx.part").exists()
    assert not (tmp_path / f"{PIPER}.onnx.sha256").exists()


def test_linked_etag_on_a_redirect_is_checked(
    server: tuple[str, Behaviour], tmp_path: Path
) -> None:
    """Hugging Face puts the LFS sha256 on the 302 to its CDN, not on the file itself."""
    base, b = server
    onnx, _ = piper_files(b)
    path = f"{PIPER_DIR}/{PIPER}.onnx"
    b.redirect_etag[path] = sha(onnx)
    assert pull(f"piper:{PIPER}", tmp_path, base_url=base, console=quiet())[0].read_bytes() == onnx
    assert ("/cdn" + path, None) in b.requests

    b.redirect_etag[path] = sha(b"tampered")
    with pytest.raises(ChecksumMismatch):
        pull(f"piper:{PIPER}", tmp_path / "again", base_url=base, console=quiet())
    assert not (tmp_path / "again" / f"{PIPER}.onnx").exists()


@pytest.mark.parametrize(
    "spec",
    [
        "espeak",
        "piper:",
        "piper",
        "kokoro:other",
        "coqui:x",
        "piper:../../etc/passwd",
        "piper:en_US-lessac-medium/../x",
        "piper:en_US-less ac-medium",
        "piper:en_US-lessac-ultra",
        "piper:/abs-path-medium",
    ],
)
def test_bad_specs_raise_value_error(spec: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        pull(spec, tmp_path, base_url="http://127.0.0.1:9", console=quiet())
    assert list(tmp_path.iterdir()) == []


@pytest.mark.fast
def test_unknown_spec_message_lists_the_forms() -> None:
    with pytest.raises(ValueError, match=r"piper:.*kokoro"):
        resolve("espeak")


def test_http_404_raises_download_error(server: tuple[str, Behaviour], tmp_path: Path) -> None:
    base, _ = server
    with pytest.raises(DownloadError) as info:
        pull(f"piper:{PIPER}", tmp_path, base_url=base, console=quiet())
    assert info.value.status == 404
    assert "404" in str(info.value) and f"{PIPER}.onnx" in str(info.value)


def test_a_given_client_is_used(server: tuple[str, Behaviour], tmp_path: Path) -> None:
    base, b = server
    piper_files(b)
    with httpx.Client(headers={"X-Test": "1"}) as client:
        pull(f"piper:{PIPER}", tmp_path, base_url=base, console=quiet(), client=client)
        assert not client.is_closed  # the caller's client, left open for the caller
    # every request went through that client (it carries its header): each file and its
    # checksum, once
    assert sorted(path.rsplit("/", 1)[-1] for path, _ in b.requests) == [
        f"{PIPER}.onnx",
        f"{PIPER}.onnx.json",
        f"{PIPER}.onnx.json.sha256",
        f"{PIPER}.onnx.sha256",
    ]
    assert b.marks == ["1"] * 4


def test_remove(server: tuple[str, Behaviour], tmp_path: Path) -> None:
    base, b = server
    piper_files(b)
    pull(f"piper:{PIPER}", tmp_path, base_url=base, console=quiet())
    (tmp_path / "other.onnx").write_bytes(b"x")
    removed = remove(f"piper:{PIPER}", tmp_path)
    assert sorted(p.name for p in removed) == sorted(
        [f"{PIPER}.onnx", f"{PIPER}.onnx.sha256", f"{PIPER}.onnx.json", f"{PIPER}.onnx.json.sha256"]
    )
    assert [p.name for p in tmp_path.iterdir()] == ["other.onnx"]
    assert remove(PIPER, tmp_path) == []

    for name in (
        "kokoro.onnx",
        "kokoro.voices.bin",
        "kokoro.voices.bin.part",
        "kokoro.config.json",
    ):
        (tmp_path / name).write_bytes(b"x")
    assert len(remove("kokoro", tmp_path)) == 4


@pytest.mark.parametrize(
    "name", ["../x", "a/b", "..", ".hidden", "/etc/passwd", "", "x y", "piper:../x", "kokoro:x"]
)
def test_remove_refuses_path_like_names(name: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        remove(name, tmp_path)
