"""hibari's other voices through the model store: pulled from a mirror, dropped in by hand,
checked against their sha256, and refused with a 503 naming the file when damaged.

No test touches the network. hibari's real voice files cannot be fetched here, so the
tests install a file they make: a copy of the bundled ``heart`` model under fenrir's file
name, accepted through the test-only checksum override (``ORATE_TEST_HIBARI_SHA256``).
"""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from hibari.voices import ASSETS, VOICES

from orate.engines.hibari import SHA256_OVERRIDE_ENV, STORE_FOLDER

from .conftest import Server, decode

HEART = Path(ASSETS) / VOICES["heart"]["file"]
TEXT = "The quick brown fox jumps over the lazy dog."


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "orate.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
    )


def speak(url: str, voice: str, model: str = "hibari") -> httpx.Response:
    return httpx.post(
        f"{url}/v1/audio/speech",
        timeout=120,
        json={"model": model, "voice": voice, "input": TEXT, "response_format": "wav"},
    )


def hibari_row(rows: list[dict]) -> dict:
    return next(r for r in rows if r["id"] == "hibari")


@pytest.fixture()
def mirror(tmp_path: Path) -> Iterator[str]:
    """A loopback HTTP server holding heart's model under fenrir's file name."""
    root = tmp_path / "mirror"
    root.mkdir()
    shutil.copyfile(HEART, root / VOICES["fenrir"]["file"])
    handler = type(
        "Quiet", (http.server.SimpleHTTPRequestHandler,), {"log_message": lambda *a: None}
    )
    httpd = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), lambda *a: handler(*a, directory=str(root))
    )
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()
    httpd.server_close()


def test_pull_lists_serves_and_removes_a_hibari_voice(mirror: str, tmp_path: Path) -> None:
    base_env = {**os.environ, "ORATE_DATA_DIR": str(tmp_path / "data")}
    env = {**base_env, SHA256_OVERRIDE_ENV: f"fenrir={sha(HEART)}"}
    store = tmp_path / "data" / "models" / STORE_FOLDER
    target = store / VOICES["fenrir"]["file"]

    # before: installable, not available, and the listings say how to install it
    listed = cli("models", "list", "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    row = hibari_row(json.loads(listed.stdout))
    assert row["installed_voices"] == ["heart"]
    installable = {v["id"]: v for v in row["installable_voices"]}
    assert set(installable) == {"emma", "fenrir", "fable", "kore"}
    assert installable["fenrir"]["install"] == "orate models pull hibari:fenrir"
    assert installable["fenrir"]["or_copy_to"] == str(target)
    assert installable["fenrir"]["gender"] == "male"
    voices = cli("voices", "--model", "hibari", env=env)
    assert voices.returncode == 0, voices.stderr
    assert "installable: fenrir (male, en-us)" in voices.stdout
    assert "orate models pull hibari:fenrir" in voices.stdout

    # hibari's real checksum: the mirror's file is not fenrir, so nothing is installed
    refused = cli("models", "pull", "hibari:fenrir", "--base-url", mirror, env=base_env)
    assert refused.returncode != 0
    assert f"checksum mismatch for {target.name}" in refused.stderr
    assert not target.exists() and not target.with_name(target.name + ".part").exists()

    pulled = cli("models", "pull", "hibari:fenrir", "--base-url", mirror, env=env)
    assert pulled.returncode == 0, pulled.stderr
    assert target.read_bytes() == HEART.read_bytes()
    assert (store / f"{target.name}.sha256").read_text().split()[0] == sha(HEART)
    again = cli("models", "pull", "hibari:fenrir", "--base-url", mirror, env=env)
    assert again.returncode == 0 and "already downloaded" in again.stderr

    row = hibari_row(json.loads(cli("models", "list", "--json", env=env).stdout))
    assert row["installed_voices"] == ["heart", "fenrir"]
    assert "fenrir" not in {v["id"] for v in row["installable_voices"]}

    srv = Server(tmp_path / "data", workers=1, env={SHA256_OVERRIDE_ENV: f"fenrir={sha(HEART)}"})
    try:
        objects = httpx.get(
            f"{srv.url}/v1/audio/voices", params={"model": "hibari", "format": "objects"}
        ).json()["voices"]
        genders = {v["id"]: v["gender"] for v in objects}
        assert genders["fenrir"] == "male" and genders["heart"] == "female"
        fenrir = speak(srv.url, "fenrir")
        assert fenrir.status_code == 200, fenrir.text
        assert fenrir.headers["x-orate-voice"] == "fenrir"
        samples, rate = decode(fenrir.content, "wav")
        heart, _ = decode(speak(srv.url, "heart").content, "wav")
        assert rate == 24000 and len(samples) > rate  # a second or more of speech
        # the installed file is heart's model, so it must speak as heart does
        assert len(samples) == len(heart)
        assert np.corrcoef(samples.astype(float), heart.astype(float))[0, 1] > 0.99
    finally:
        srv.stop()

    removed = cli("models", "rm", "hibari:fenrir", env=env)
    assert removed.returncode == 0, removed.stderr
    assert not target.exists() and not (store / f"{target.name}.sha256").exists()


def test_dropped_in_voices_and_damaged_files(tmp_path: Path) -> None:
    """A file copied into the store by hand is used once it matches its checksum; a file
    that does not match, or matches but will not load, is a 503 naming it, in the
    dialect's envelope, never another voice."""
    models = tmp_path / "models"
    store = models / STORE_FOLDER
    store.mkdir(parents=True)
    shutil.copyfile(HEART, store / VOICES["fenrir"]["file"])  # dropped in by hand
    rng = np.random.default_rng(5)
    kore = store / VOICES["kore"]["file"]  # damaged: the right size, the wrong bytes
    kore.write_bytes(rng.bytes(VOICES["kore"]["bytes"]))
    fable = store / VOICES["fable"]["file"]  # passes its (overridden) checksum, not a model
    fable.write_bytes(rng.bytes(4096))
    override = f"fenrir={sha(HEART)},fable={sha(fable)}"
    (tmp_path / "data").mkdir()
    srv = Server(
        tmp_path / "data",
        workers=1,
        env={"ORATE_MODELS_DIR": str(models), SHA256_OVERRIDE_ENV: override},
    )
    try:
        row = hibari_row(httpx.get(f"{srv.url}/v1/models").json()["data"])
        assert row["installed_voices"] == ["heart", "fenrir", "fable"]
        assert [v["id"] for v in row["installable_voices"]] == ["emma"]
        (broken,) = row["broken_voices"]
        assert broken["id"] == "kore" and str(kore) in broken["reason"]

        fenrir = speak(srv.url, "fenrir")
        assert fenrir.status_code == 200, fenrir.text
        assert len(decode(fenrir.content, "wav")[0]) > 24000

        bad = speak(srv.url, "kore")
        assert bad.status_code == 503, bad.text
        error = bad.json()["error"]
        assert error["code"] == "voice_unavailable" and str(kore) in error["message"]
        assert "orate models pull hibari:kore" in error["message"]

        unloadable = speak(srv.url, "fable")  # fails in the worker, when the model loads
        assert unloadable.status_code == 503, unloadable.text
        error = unloadable.json()["error"]
        assert error["code"] == "voice_unavailable"
        assert str(fable) in error["message"] and "did not load" in error["message"]

        # the same refusal in another dialect's envelope (ElevenLabs: detail.status)
        eleven = httpx.post(
            f"{srv.url}/v1/text-to-speech/kore",
            timeout=60,
            json={"text": TEXT, "model_id": "hibari"},
        )
        assert eleven.status_code == 503, eleven.text
        assert eleven.json()["detail"]["status"] == "voice_unavailable"
        assert str(kore) in eleven.json()["detail"]["message"]

        missing = speak(srv.url, "emma")  # installable, not installed: the caller's 400
        assert missing.status_code == 400
        assert "orate models pull hibari:emma" in missing.json()["error"]["message"]
        assert str(store / VOICES["emma"]["file"]) in missing.json()["error"]["message"]
    finally:
        srv.stop()
