"""Piper and Kokoro engines through the real model store and the OpenAI dialect."""

from __future__ import annotations

import http.server
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import numpy as np
import pytest

from orate.engines.base import VoiceParams
from orate.engines.registry import EngineRegistry

from .conftest import Server, decode, duration
from .tiny_models import (
    KOKORO_FRAMES,
    KOKORO_HOP,
    PIPER_FRAMES,
    PIPER_HOP,
    build_kokoro,
    build_piper,
)

TEXT = "Hello big world, how are you today?"


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("models")
    build_piper(d, "en_US-tiny-low")
    build_piper(d, "en_US-duo-low", speakers=["alice", "bob"], sample_rate=22050)
    build_kokoro(d)
    return d


@pytest.fixture(scope="module")
def neural(models_dir: Path, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    srv = Server(
        tmp_path_factory.mktemp("neural"), workers=1, env={"ORATE_MODELS_DIR": str(models_dir)}
    )
    yield srv
    srv.stop()


def in_process(models_dir: Path, model: str, voice: str, speed: float = 1.0) -> np.ndarray:
    """What the model itself renders for TEXT, without the server."""
    engine = EngineRegistry(models_dir).engine(model)
    chunks: list[np.ndarray] = []
    engine.synthesize(
        TEXT,
        engine.check_voice(VoiceParams(engine=model, voice=voice)),
        speed,
        lambda pcm, _: chunks.append(pcm) or True,
    )
    return np.concatenate(chunks)


def speak(url: str, **kw) -> httpx.Response:
    body = {"input": TEXT, "response_format": "wav", **kw}
    r = httpx.post(f"{url}/v1/audio/speech", json=body, timeout=60)
    assert r.status_code == 200, r.text
    return r


def test_models_are_registered_with_their_facts(neural) -> None:
    models = {m["id"]: m for m in httpx.get(f"{neural.url}/v1/models").json()["data"]}
    assert models["piper:en_US-tiny-low"]["sample_rate"] == 16000
    assert models["piper:en_US-duo-low"]["voice_count"] == 2
    assert models["kokoro"]["sample_rate"] == 24000 and models["kokoro"]["voice_count"] == 3
    assert set(models["kokoro"]["languages"]) == {"en-us", "en-gb"}
    assert models["tts-1"]["engine"] == "espeak"
    voices = httpx.get(
        f"{neural.url}/v1/audio/voices", params={"model": "piper:en_US-duo-low"}
    ).json()["voices"]
    assert voices == ["alice", "bob"]


@pytest.mark.parametrize("fmt", ["wav", "mp3", "flac", "pcm", "opus"])
def test_piper_audio_is_the_models_output(neural, models_dir: Path, fmt: str) -> None:
    expected = in_process(models_dir, "piper:en_US-tiny-low", "default")
    assert len(expected) % (PIPER_FRAMES * PIPER_HOP) == 0  # the model's own length
    r = speak(neural.url, model="piper:en_US-tiny-low", voice="default", response_format=fmt)
    got = duration(r.content, fmt, pcm_rate=24000)
    assert abs(got - len(expected) / 16000) < 0.03 * len(expected) / 16000 + 0.07
    if fmt == "wav":
        samples, rate = decode(r.content, "wav")
        assert rate == 16000 and np.array_equal(samples, expected)


def test_openai_names_and_speed_on_piper(neural, models_dir: Path) -> None:
    alloy = speak(neural.url, model="piper:en_US-tiny-low", voice="alloy")
    assert alloy.headers["x-orate-voice"] == "default"
    normal = duration(alloy.content, "wav")
    fast = duration(
        speak(neural.url, model="piper:en_US-tiny-low", voice="default", speed=2.0).content, "wav"
    )
    assert fast / normal == pytest.approx(0.5, abs=0.02)  # length_scale halves every phoneme


def test_multi_speaker_voices_differ(neural) -> None:
    alice = decode(speak(neural.url, model="piper:en_US-duo-low", voice="alice").content, "wav")[0]
    bob = decode(speak(neural.url, model="piper:en_US-duo-low", voice="bob").content, "wav")[0]
    assert len(alice) == len(bob) and not np.array_equal(alice, bob)
    bad = httpx.post(
        f"{neural.url}/v1/audio/speech",
        json={"model": "piper:en_US-duo-low", "voice": "carol", "input": TEXT},
        timeout=60,
    )
    assert bad.status_code == 400 and "alice" in bad.json()["error"]["message"]


def test_kokoro_voices_blends_and_speed(neural, models_dir: Path) -> None:
    def loudness(voice: str) -> float:
        samples, rate = decode(speak(neural.url, model="kokoro", voice=voice).content, "wav")
        assert rate == 24000
        return float(np.abs(samples.astype(np.float64)).mean())

    bella, sky = loudness("af_bella"), loudness("af_sky")
    blend = loudness("af_bella+af_sky")
    weighted = loudness("af_bella(3)+af_sky(1)")
    assert bella < weighted < blend < sky  # the blend really mixes the style vectors
    expected = in_process(models_dir, "kokoro", "af_bella")
    assert len(expected) % (KOKORO_FRAMES * KOKORO_HOP) == 0
    slow = speak(neural.url, model="kokoro", voice="af_bella", speed=0.5)
    assert duration(slow.content, "wav") > 1.8 * len(expected) / 24000
    for bad in ("af_nobody", "af_bella(0)+af_sky", "af_bella+"):
        r = httpx.post(
            f"{neural.url}/v1/audio/speech",
            json={"model": "kokoro", "voice": bad, "input": TEXT},
            timeout=60,
        )
        assert r.status_code == 400, bad


def test_timestamps_come_from_the_model_durations(neural) -> None:
    for model, voice, frame_ms in (
        ("kokoro", "bm_george", KOKORO_HOP / 24000 * 1000),
        ("piper:en_US-tiny-low", "default", PIPER_HOP / 16000 * 1000),
    ):
        r = httpx.post(
            f"{neural.url}/v1/audio/speech",
            timeout=60,
            json={
                "model": model,
                "voice": voice,
                "input": TEXT,
                "response_format": "pcm",
                "stream_format": "sse",
                "include_timestamp_types": ["word", "phoneme"],
            },
        )
        events = [json.loads(f.removeprefix("data: ")) for f in r.text.split("\n\n") if f.strip()]
        stamps = [
            t for e in events if e["type"] == "speech.audio.timestamps" for t in e["timestamps"]
        ]
        words = [t for t in stamps if t["type"] == "word"]
        assert [w["text"] for w in words] == ["Hello", "big", "world", "how", "are", "you", "today"]
        for t in stamps:  # every boundary sits on a whole frame of the model
            assert abs(t["start"] / frame_ms - round(t["start"] / frame_ms)) < 1e-6, model


def serve_files(root: Path) -> tuple[http.server.ThreadingHTTPServer, str]:
    handler = type("H", (http.server.SimpleHTTPRequestHandler,), {"log_message": lambda *a: None})
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), lambda *a: handler(*a, directory=str(root))
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def test_models_pull_list_rm_through_the_cli(tmp_path: Path) -> None:
    mirror = tmp_path / "mirror" / "en" / "en_US" / "tiny" / "low"
    mirror.mkdir(parents=True)
    build_piper(mirror, "en_US-tiny-low")
    httpd, base = serve_files(tmp_path / "mirror")
    env = {**os.environ, "ORATE_DATA_DIR": str(tmp_path / "data")}
    try:
        pulled = subprocess.run(
            [
                sys.executable,
                "-m",
                "orate.cli",
                "models",
                "pull",
                "piper:en_US-tiny-low",
                "--base-url",
                base,
            ],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )
        assert pulled.returncode == 0, pulled.stderr
    finally:
        httpd.shutdown()
    store = tmp_path / "data" / "models"
    assert (store / "en_US-tiny-low.onnx").read_bytes() == (
        mirror / "en_US-tiny-low.onnx"
    ).read_bytes()
    listed = json.loads(
        subprocess.run(
            [sys.executable, "-m", "orate.cli", "models", "list", "--json"],
            capture_output=True,
            text=True,
            env=env,
        ).stdout
    )
    assert "piper:en_US-tiny-low" in {m["id"] for m in listed}
    said = subprocess.run(
        [
            sys.executable,
            "-m",
            "orate.cli",
            "say",
            TEXT,
            "-o",
            str(tmp_path / "p.wav"),
            "--model",
            "piper:en_US-tiny-low",
            "--voice",
            "default",
        ],
        capture_output=True,
        text=True,
        env=env,
    )
    assert said.returncode == 0, said.stderr
    assert decode((tmp_path / "p.wav").read_bytes(), "wav")[1] == 16000
    removed = subprocess.run(
        [sys.executable, "-m", "orate.cli", "models", "rm", "piper:en_US-tiny-low"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert removed.returncode == 0 and not (store / "en_US-tiny-low.onnx").exists()
