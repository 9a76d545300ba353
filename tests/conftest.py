"""Shared fixtures: a real orate server on a loopback port, and ways to check audio.

Audio is checked the way a listener would, minus the ears: decoded with PyAV,
measured, and transcribed with pocketsphinx against a grammar of candidate
sentences, so a test can tell which sentence the audio actually says.
"""

from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import av
import httpx
import numpy as np
import pytest

SENTENCES = [
    "the quick brown fox jumps over the lazy dog",
    "please call me back tomorrow morning",
    "the weather is cold and windy today",
    "she sells sea shells by the sea shore",
    "my favorite color is green",
    "we will meet at the train station at noon",
    "open the window and let the fresh air in",
    "the children are playing in the garden",
    "turn left at the next traffic light",
    "a cup of hot tea would be nice",
]


# The dialect suites were written against the engines the vendor ids had before the
# natural palette became the default everywhere (OpenAI's tts-1, Hume's octave ids and
# nano-gpt's ElevenLabs model on espeak-ng; the natural OpenAI ids on hibari itself): they
# check wire mechanics, limits and timings of those engines, so every server and CLI they
# start keeps that mapping through the operator's own setting. tests/test_palette.py
# clears it and checks the natural defaults through the SDKs.
LEGACY_ENGINES = (
    '{"tts-1": "espeak", "octave-1": "espeak", "octave-2": "espeak", '
    '"Elevenlabs-Turbo-V2.5": "espeak", "tts-1-hd": "hibari", '
    '"gpt-4o-mini-tts": "hibari", "gpt-4o-mini-tts-2025-12-15": "hibari", '
    '"Kokoro-82m": "hibari"}'
)
os.environ.setdefault("ORATE_MODEL_ENGINES", LEGACY_ENGINES)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """An ``orate serve`` subprocess; ``url`` is its base URL."""

    def __init__(
        self,
        tmp: Path,
        workers: int = 2,
        env: dict[str, str] | None = None,
        log_level: str = "warning",
        args: list[str] | None = None,
    ) -> None:
        tls = "--ssl-certfile" in (args or [])
        self.data_dir = tmp
        full_env = {**os.environ, "ORATE_DATA_DIR": str(tmp), **(env or {})}
        # free_port's port is free when asked, not when the server binds it seconds later:
        # on a shared machine another process (a client's ephemeral port, another server)
        # can take it meanwhile, so a start that loses its port is retried on a new one
        for attempt in range(3):
            self.port = free_port()
            self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
            self.log = open(tmp / "server.log", "wb")  # noqa: SIM115
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "orate.cli",
                    "serve",
                    "--port",
                    str(self.port),
                    "--workers",
                    str(workers),
                    "--log-level",
                    log_level,
                    *(args or []),
                ],
                env=full_env,
                stdout=self.log,
                stderr=subprocess.STDOUT,
            )
            if self._ready(tls):
                return
            self.log.close()
            log = (tmp / "server.log").read_text(errors="replace")
            if "address already in use" not in log.lower() or attempt == 2:
                raise RuntimeError(f"server exited: {log}")

    def _ready(self, tls: bool) -> bool:
        """Wait until the server answers /healthz (True) or exits (False)."""
        deadline = time.monotonic() + 120  # imports and engine workers, on a busy machine
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1, verify=not tls).status_code == 200:
                    return True
            except httpx.HTTPError:
                time.sleep(0.1)
        self.proc.kill()
        self.proc.wait()
        self.log.close()
        raise RuntimeError("server did not become ready")

    def health(self) -> dict:
        return httpx.get(f"{self.url}/healthz", timeout=30, verify=False).json()

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(60)  # a graceful stop writes queued history: slow on a busy machine
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


# -- ordering without clocks -----------------------------------------------------------
# "The first audio leaves before synthesis ends" is checked by reading the server's own
# counters when the first audio arrives, with a client that then stops reading: the engine
# can only finish if everything still to come fits in the buffers between it and the
# client, so a response longer than all of them proves the order on any machine.
SLOW_READER_RCVBUF = 64 << 10


def slow_reader(timeout: float = 120) -> httpx.Client:
    """An httpx client whose socket receive buffer is fixed (no autotuning to megabytes), so
    a response it stops reading backs up to the server instead of into this process."""
    transport = httpx.HTTPTransport(
        socket_options=[(socket.SOL_SOCKET, socket.SO_RCVBUF, SLOW_READER_RCVBUF)]
    )
    return httpx.Client(transport=transport, timeout=timeout)


def buffered_at_most(stream_buffer_bytes: int = 256 << 10) -> int:
    """The most encoded audio that can sit between an engine and a ``slow_reader`` that has
    stopped reading, on a server whose response spool is off (``ORATE_SPOOL_BYTES=0``;
    with it, an engine finishes whatever its reader does): the worker's result pipe
    (1 MiB), the job's and the response's buffers (``ORATE_STREAM_BUFFER_BYTES`` each),
    the server's socket send buffer (at most the kernel's tcp_wmem maximum), the client's
    receive buffer (the kernel doubles what is asked) and 1 MiB for the event loop's
    transport and the encoder."""
    try:
        wmem = int(Path("/proc/sys/net/ipv4/tcp_wmem").read_text().split()[2])
    except (OSError, IndexError, ValueError):
        wmem = 4 << 20
    return (1 << 20) + 2 * stream_buffer_bytes + wmem + 2 * SLOW_READER_RCVBUF + (1 << 20)


# -- the fast tier -------------------------------------------------------------------
# A test marked ``fast`` runs in this process only. An audit hook (it cannot be removed, so
# it checks a flag) refuses, while such a test runs, the events that would start a server or
# another process: any subprocess (which ``Server`` and the engine pool use), fork, exec,
# and binding a socket. The refused call raises, and the test fails naming what it tried.
_SPAWNING = frozenset(
    {"subprocess.Popen", "os.fork", "os.forkpty", "os.posix_spawn", "os.spawn", "os.exec"}
    | {"os.system", "socket.bind"}
)
_fast_guard: dict[str, object] = {"on": False, "seen": None}


# ctypes.util.find_library (how orate finds libmp3lame and libespeak-ng) asks these
# short-lived look-up tools; they start no server and finish before it returns
_LOOKUP_TOOLS = frozenset({"ldconfig", "gcc", "cc", "ld", "objdump"})


def _audit(event: str, args: tuple[object, ...]) -> None:
    if not _fast_guard["on"] or event not in _SPAWNING:
        return
    if event == "subprocess.Popen" and Path(str(args[0])).name in _LOOKUP_TOOLS:
        return
    _fast_guard["seen"] = f"{event}{args[:2]!r}"
    raise RuntimeError(f"a test marked fast may not start a server or a process ({event})")


sys.addaudithook(_audit)


def _guarded(item: pytest.Item):  # type: ignore[no-untyped-def]
    """Run one phase of ``item`` (setup, call, teardown) under the fast tier's guard."""
    fast = item.get_closest_marker("fast") is not None
    _fast_guard.update(on=fast, seen=None)
    try:
        result = yield
    finally:
        _fast_guard["on"] = False
    if fast and _fast_guard["seen"]:
        pytest.fail(f"marked fast, but started a process or a server: {_fast_guard['seen']}")
    return result


pytest_runtest_setup = pytest.hookimpl(wrapper=True)(_guarded)
pytest_runtest_call = pytest.hookimpl(wrapper=True)(_guarded)
pytest_runtest_teardown = pytest.hookimpl(wrapper=True)(_guarded)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    """A failing test that used a server gets the end of that server's log in its report,
    so a failure on a CI machine says what the server saw, not only what the client did."""
    outcome = yield
    report = outcome.get_result()
    if not report.failed:
        return
    for name, value in getattr(item, "funcargs", {}).items():
        if isinstance(value, Server):
            lines = (value.data_dir / "server.log").read_text(errors="replace").splitlines()
            report.sections.append((f"server log ({name}), last lines", "\n".join(lines[-60:])))


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = Server(tmp_path_factory.mktemp("orate-server"))
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def openai_client(server: Server):
    from openai import OpenAI

    return OpenAI(api_key="test-key", base_url=f"{server.url}/v1", max_retries=0, timeout=60)


def decode(data: bytes, fmt: str, pcm_rate: int = 24000) -> tuple[np.ndarray, int]:
    """Decode any output format to int16 mono samples and their rate."""
    if fmt == "pcm":
        assert len(data) % 2 == 0, "pcm must hold whole 16-bit samples"
        return np.frombuffer(data, dtype="<i2"), pcm_rate
    if fmt in ("ulaw", "alaw"):  # headerless G.711: the demuxer must be told the rate
        container = av.open(
            io.BytesIO(data),
            format="mulaw" if fmt == "ulaw" else "alaw",
            options={"sample_rate": str(pcm_rate)},
        )
    else:
        container = av.open(io.BytesIO(data))
    stream = container.streams.audio[0]
    resampler = av.AudioResampler(format="s16", layout="mono", rate=stream.rate)
    parts = [
        g.to_ndarray().reshape(-1) for f in container.decode(stream) for g in resampler.resample(f)
    ]
    parts += [g.to_ndarray().reshape(-1) for g in resampler.resample(None)]
    return (np.concatenate(parts) if parts else np.empty(0, np.int16)), stream.rate


def duration(data: bytes, fmt: str, pcm_rate: int = 24000) -> float:
    samples, rate = decode(data, fmt, pcm_rate)
    return len(samples) / rate


class Recognizer:
    """pocketsphinx restricted to a grammar of candidate sentences (not thread-safe)."""

    def __init__(self, sentences: list[str]) -> None:
        from pocketsphinx import Decoder

        self._lock = threading.Lock()
        self._decoder = Decoder(samprate=16000, logfn=os.devnull)
        alternatives = " | ".join(f"( {s} )" for s in sentences)
        self._decoder.add_jsgf_string(
            "candidates", f"#JSGF V1.0;\ngrammar c;\npublic <s> = {alternatives} ;\n"
        )
        self._decoder.activate_search("candidates")

    def which(self, data: bytes, fmt: str, pcm_rate: int = 24000) -> str:
        samples, rate = decode(data, fmt, pcm_rate)
        rs = av.AudioResampler(format="s16", layout="mono", rate=16000)
        frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = rate
        parts = [f.to_ndarray().reshape(-1) for f in rs.resample(frame)]
        parts += [f.to_ndarray().reshape(-1) for f in rs.resample(None)]
        pad = np.zeros(4800, dtype=np.int16)  # 0.3 s each side, or the last word is lost
        audio = np.concatenate([pad, *parts, pad])
        with self._lock:
            self._decoder.start_utt()
            self._decoder.process_raw(audio.tobytes(), full_utt=True)
            self._decoder.end_utt()
            hyp = self._decoder.hyp()
        return hyp.hypstr if hyp else ""


@pytest.fixture(scope="session")
def recognizer() -> Recognizer:
    return Recognizer(SENTENCES)
