"""The command line (no server) and the engine pool's fault handling."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import struct
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from orate.engines.base import VoiceParams
from orate.runtime.events import EventKind
from orate.runtime.pool import EnginePool
from orate.runtime.render import RenderJob, Segment
from orate.speech.text import split_sentences

from .conftest import Server, decode, duration
from .waiting import await_until, wait_for

ORATE = [sys.executable, "-m", "orate.cli"]


def run(*args: str, input: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([*ORATE, *args], input=input, capture_output=True, timeout=120)


@pytest.mark.parametrize(
    "ext,fmt", [("mp3", "mp3"), ("wav", "wav"), ("ogg", "opus"), ("flac", "flac"), ("aac", "aac")]
)
def test_say_writes_whole_files_with_exact_headers(
    tmp_path: Path, ext: str, fmt: str, recognizer
) -> None:
    out = tmp_path / f"hello.{ext}"
    result = run("say", "Please call me back tomorrow morning.", "-o", str(out))
    assert result.returncode == 0, result.stderr
    data = out.read_bytes()
    assert recognizer.which(data, fmt) == "please call me back tomorrow morning"
    if fmt == "wav":
        assert struct.unpack_from("<I", data, 40)[0] == len(data) - 44


def test_say_timestamps_and_options(tmp_path: Path) -> None:
    out, stamps = tmp_path / "a.wav", tmp_path / "a.json"
    text = "Turn left at the next traffic light."
    result = run(
        "say",
        text,
        "-o",
        str(out),
        "--voice",
        "en-gb+m3",
        "--speed",
        "1.5",
        "--timestamps",
        str(stamps),
    )
    assert result.returncode == 0, result.stderr
    words = [t["text"] for t in json.loads(stamps.read_text()) if t["type"] == "word"]
    assert words == [w.strip(".") for w in text.split()]
    normal = tmp_path / "b.wav"
    run("say", text, "-o", str(normal))
    ratio = duration(out.read_bytes(), "wav") / duration(normal.read_bytes(), "wav")
    assert 0.55 < ratio < 0.8


def test_say_reads_stdin_and_writes_stdout() -> None:
    result = run("say", "-", "-o", "-", "--format", "pcm", input=b"A cup of hot tea.")
    assert result.returncode == 0, result.stderr
    samples, rate = decode(result.stdout, "pcm")
    assert rate == 24000 and len(samples) > 24000


@pytest.mark.parametrize(
    "args,needle",
    [
        (["say", "hi", "-o", "out.xyz"], "cannot tell the format"),
        (["say", "hi", "-o", "x.wav", "--voice", "nobody"], "no voice"),
        (["say", "   ", "-o", "x.wav"], "input is empty"),
        (["say", "hi", "-o", "x.wav", "--speed", "9"], "--speed"),
        (["say", "hi", "-o", "x.wav", "--model", "nope"], "no provider"),
    ],
)
def test_say_reports_bad_input_clearly(tmp_path: Path, args: list[str], needle: str) -> None:
    result = subprocess.run([*ORATE, *args], capture_output=True, timeout=60, cwd=tmp_path)
    assert result.returncode != 0
    assert needle in result.stderr.decode()


def test_voices_lists_and_filters() -> None:
    result = run("voices", "--json")
    voices = json.loads(result.stdout)
    assert len(voices) >= 141
    french = json.loads(run("voices", "--language", "fr", "--json").stdout)
    assert {v["id"] for v in french} >= {"fr-fr", "fr-be"}
    assert all(v["language"].startswith("fr") for v in french)
    assert "alloy" in run("voices").stdout.decode()


def _job(text: str, fmt: str = "mp3") -> RenderJob:
    return RenderJob(
        text,
        (Segment(VoiceParams(voice="en-us", variant="f2"), tuple(split_sentences(text))),),
        fmt,
    )


def test_killed_worker_fails_only_its_job_and_is_replaced() -> None:
    async def scenario() -> None:
        pool = EnginePool(2)
        await pool.start()
        try:
            long = _job("This sentence keeps the worker busy for a while. " * 70)
            victim = await pool.submit(long)
            bystander = await pool.submit(_job("A cup of hot tea would be nice.", "wav"))
            kinds, errors, chunks = [], [], 0
            async for kind, payload in victim:
                kinds.append(kind)
                if kind is EventKind.AUDIO:
                    chunks += 1
                    if chunks == 2:
                        os.kill(victim._worker.process.pid, signal.SIGKILL)
                if kind is EventKind.ERROR:
                    errors.append(payload["message"])
            assert errors and "died" in errors[0] and EventKind.DONE not in kinds
            other = [k async for k, _ in bystander]
            assert other[-1] is EventKind.DONE
            await await_until(
                lambda: len(pool.pids()) == 2, "the killed worker to be replaced", interval=0.1
            )
            assert pool.restarts == 1
            after = [k async for k, _ in await pool.submit(_job("Still here."))]
            assert after[-1] is EventKind.DONE
        finally:
            await pool.close()

    asyncio.run(scenario())


def engine_worker_of(parent: int) -> int:
    """The pid of a spawned engine worker of ``parent`` (read from /proc: no procps needed)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == parent and b"orate.runtime.worker" in cmdline:
            return int(entry.name)
    raise AssertionError("no engine worker found")


def test_server_survives_a_worker_kill_mid_stream(tmp_path: Path) -> None:
    srv = Server(tmp_path, workers=1)
    try:
        body = {
            "model": "tts-1",
            "voice": "alloy",
            "input": "Keep talking please. " * 150,
            "response_format": "mp3",
        }
        with httpx.stream("POST", f"{srv.url}/v1/audio/speech", json=body, timeout=30) as r:
            assert r.status_code == 200
            os.kill(engine_worker_of(srv.proc.pid), signal.SIGKILL)
            with pytest.raises(httpx.HTTPError):
                for _ in r.iter_raw():
                    pass  # the stream ends with an error, not a hang
        # the replacement worker imports its engines first: seconds on a busy machine, so
        # wait for it by state (a hundred back-to-back polls could all come before it)
        health = wait_for(
            lambda: srv.health()["engines"],
            lambda engines: engines["workers"] == 1,
            "the killed engine worker to be replaced",
            timeout=120,
        )
        assert health["restarts"] == 1, health
        ok = httpx.post(
            f"{srv.url}/v1/audio/speech",
            timeout=60,
            json={
                "model": "tts-1",
                "voice": "alloy",
                "input": "Back again.",
                "response_format": "wav",
            },
        )
        assert ok.status_code == 200 and ok.content[:4] == b"RIFF"
    finally:
        srv.stop()
