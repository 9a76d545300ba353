"""The nano-gpt dialect and durable jobs: nano-gpt's documented client, curl, and a SIGKILL."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import requests

from .conftest import Server, decode, duration
from .waiting import wait_until


def seed_client(base: str):  # type: ignore[no-untyped-def]
    """The ``text_to_speech`` example of nano-gpt's API reference verbatim, but for the URL
    and the key."""

    def text_to_speech(text, model="Kokoro-82m", voice=None, **kwargs):
        headers = {"x-api-key": "YOUR_API_KEY", "Content-Type": "application/json"}

        payload = {"text": text, "model": model}

        if voice:
            payload["voice"] = voice

        payload.update(kwargs)

        response = requests.post(f"{base}/api/tts", headers=headers, json=payload)

        if response.status_code == 200:
            content_type = response.headers.get("content-type", "")

            if "application/json" in content_type:
                # JSON response with audio URL
                data = response.json()
                audio_response = requests.get(data["audioUrl"])
                with open("output.wav", "wb") as f:
                    f.write(audio_response.content)
            else:
                # Binary audio data (OpenAI models)
                with open("output.mp3", "wb") as f:
                    f.write(response.content)

            return response
        else:
            raise Exception(f"Error: {response.status_code}")

    return text_to_speech


def test_seed_client_works_unchanged(server, tmp_path: Path, monkeypatch, recognizer) -> None:
    monkeypatch.chdir(tmp_path)
    text_to_speech = seed_client(server.url)
    response = text_to_speech(
        "The weather is cold and windy today.", model="Kokoro-82m", voice="af_bella"
    )
    data = response.json()
    assert data["model"] == "Kokoro-82m" and data["voice"] == "af_bella"
    assert data["contentType"] == "audio/mpeg" and data["currency"] == "USD"
    assert data["cost"] == 0.0  # a local engine bills no one by default (test_fresh.py)
    saved = (tmp_path / "output.wav").read_bytes()  # the example names it .wav whatever it is
    assert recognizer.which(saved, "mp3") == "the weather is cold and windy today"
    assert abs(duration(saved, "mp3") - data["duration"]) < 0.15
    text_to_speech(
        "Welcome to customer service.",
        model="tts-1-hd",
        voice="nova",
        instructions="Speak warmly and professionally",
        response_format="flac",
    )
    # tts-1-hd is served by the natural voice (hibari, 24 kHz)
    assert decode((tmp_path / "output.wav").read_bytes(), "flac")[1] == 24000
    for fmt in ["mp3", "wav", "opus", "flac", "aac"]:
        r = text_to_speech(
            f"This is {fmt.upper()} format.", model="tts-1", voice="echo", response_format=fmt
        )
        assert r.json()["contentType"].startswith("audio/")
    with pytest.raises(Exception, match="Error: 400"):
        text_to_speech("", model="Kokoro-82m")


def test_accept_audio_returns_the_bytes(server) -> None:
    r = httpx.post(
        f"{server.url}/api/tts",
        headers={"accept": "audio/wav"},
        json={"text": "Hello there.", "response_format": "wav"},
        timeout=60,
    )
    assert r.status_code == 200 and r.headers["content-type"] == "audio/wav"
    assert r.content[:4] == b"RIFF"


def test_stability_and_style_shape_the_voice(server) -> None:
    flat = httpx.post(
        f"{server.url}/api/tts",
        json={
            "text": "How exciting this is.",
            "model": "Elevenlabs-Turbo-V2.5",
            "voice": "Rachel",
            "stability": 0.95,
            "style": 0.0,
        },
        headers={"prefer": "respond-async"},
        timeout=60,
    ).json()
    lively = httpx.post(
        f"{server.url}/api/tts",
        json={
            "text": "How exciting this is.",
            "model": "Elevenlabs-Turbo-V2.5",
            "voice": "Rachel",
            "stability": 0.1,
            "style": 0.9,
        },
        timeout=60,
    ).json()
    done = [poll(server.url, j["runId"]) for j in (flat, lively)]
    gens = [
        httpx.get(f"{server.url}/v1/history/{d['audioUrl'].rsplit('/', 1)[1]}", timeout=60).json()
        for d in done
    ]
    ranges = [g["voice_params"][0]["pitch_range"] for g in gens]
    assert ranges[0] < 40 < 70 < ranges[1]


def poll(base: str, run_id: str, timeout: float = 120.0) -> dict:
    """nano-gpt's documented polling loop: every few hundred ms here instead of 2-3 s."""

    def finished() -> dict | None:
        status = httpx.get(
            f"{base}/api/tts/status", params={"runId": run_id, "model": "x"}, timeout=60
        ).json()
        return status if status["status"] in ("completed", "failed") else None

    return wait_until(finished, f"job {run_id} to finish", timeout=timeout, interval=0.2)


@pytest.mark.skipif(
    shutil.which("curl") is None,
    reason="needs the curl command (apt-get install curl; .ci/run installs it)",
)
def test_curl_submit_poll_fetch(server, tmp_path: Path) -> None:
    submit = subprocess.run(
        [
            "curl",
            "-s",
            "-X",
            "POST",
            f"{server.url}/api/tts",
            "-H",
            "x-api-key: YOUR_API_KEY",
            "-H",
            "Content-Type: application/json",
            "-d",
            '{"text": "Hello there! This is an asynchronous job.", '
            '"model": "Elevenlabs-Turbo-V2.5", "voice": "Rachel", "speed": 1.0}',
            "-w",
            "\n%{http_code}",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    body, code = submit.rsplit("\n", 1)
    ticket = json.loads(body)
    assert code == "202" and ticket["status"] == "pending"
    assert {"runId", "model", "charged", "cost", "paymentSource", "isApiRequest"} <= set(ticket)
    url = (
        f"{server.url}/api/tts/status?runId={ticket['runId']}&model=Elevenlabs-Turbo-V2.5"
        f"&cost={ticket['cost']}&paymentSource=USD&isApiRequest=true"
    )

    def completed() -> dict | None:
        status = json.loads(
            subprocess.run(
                ["curl", "-s", url, "-H", "x-api-key: YOUR_API_KEY"], capture_output=True, text=True
            ).stdout
        )
        assert status["status"] in ("pending", "processing", "completed"), status
        return status if status["status"] == "completed" else None

    status = wait_until(completed, "the job to complete", timeout=60, interval=0.2)
    assert status["contentType"] == "audio/mpeg"
    out = tmp_path / "job.mp3"
    subprocess.run(["curl", "-s", "-o", str(out), status["audioUrl"]], check=True)
    assert abs(duration(out.read_bytes(), "mp3") - status["duration"]) < 0.15


@pytest.mark.timeout(900)  # the job's own deadline below, not the suite's 300 s per test
def test_long_form_job_reports_monotonic_progress(server) -> None:
    text = " ".join(
        f"This is sentence {n} of a long reading for the job queue." for n in range(900)
    )
    assert len(text) > 50_000
    ticket = httpx.post(
        f"{server.url}/api/tts",
        json={"text": text, "response_format": "wav", "model": "tts-1"},
        timeout=60,
    )
    assert ticket.status_code == 202  # over the sync threshold: a job, not a 413
    run_id = ticket.json()["runId"]
    seen: list[float] = []

    def finished() -> dict | None:
        status = httpx.get(
            f"{server.url}/api/tts/status", params={"runId": run_id}, timeout=60
        ).json()
        if status["status"] == "processing":
            seen.append(status["progress"])
        return status if status["status"] in ("completed", "failed") else None

    status = wait_until(finished, "the long job to finish", timeout=600)
    assert status["status"] == "completed", status
    assert seen == sorted(seen) and all(0 <= p <= 1 for p in seen)
    audio = httpx.get(status["audioUrl"], timeout=60).content
    assert abs(duration(audio, "wav") - status["duration"]) < 0.05
    assert status["duration"] > 600  # over ten minutes of speech, in one file


def test_sigkill_mid_job_then_restart_completes_it_once(tmp_path: Path) -> None:
    env = {"ORATE_JOB_LEASE_SECONDS": "2"}
    first = Server(tmp_path, workers=1, env=env)
    text = " ".join(f"Part {n} of a job that is interrupted and resumed." for n in range(300))
    try:
        run_id = httpx.post(
            f"{first.url}/api/tts",
            json={"text": text, "response_format": "mp3"},
            headers={"prefer": "respond-async"},
            timeout=60,
        ).json()["runId"]
        wait_until(
            lambda: (
                httpx.get(f"{first.url}/api/tts/status", params={"runId": run_id}, timeout=60)
                .json()
                .get("progress", 0)
                > 0.05
            ),
            "the job to pass 5% before the kill",
            timeout=120,
        )
        os.kill(first.proc.pid, signal.SIGKILL)
        first.proc.wait()
    finally:
        first.log.close()
    second = Server(tmp_path, workers=1, env=env)
    try:
        status = poll(second.url, run_id, timeout=180)
        assert status["status"] == "completed"
        audio = httpx.get(status["audioUrl"], timeout=60).content
        assert abs(duration(audio, "mp3") - status["duration"]) < 0.2  # whole, not a stub
        jobs = json.loads(
            subprocess.run(
                [sys.executable, "-m", "orate.cli", "jobs", "show", run_id],
                capture_output=True,
                text=True,
                env={**os.environ, "ORATE_DATA_DIR": str(tmp_path)},
            ).stdout
        )
        assert jobs["attempts"] == 2 and jobs["status"] == "completed"
        history = httpx.get(f"{second.url}/v1/history", params={"limit": 50}, timeout=60).json()
        completed = [g for g in history["data"] if g["text"] == text]
        assert len(completed) == 1  # run to completion once
    finally:
        second.stop()


def test_jobs_belong_to_their_owner_and_unknown_ids_are_404(server) -> None:
    r = httpx.get(
        f"{server.url}/api/tts/status", params={"runId": "98b0d593-fe8d-49b8-89c9-233022232297"}
    )
    assert r.status_code == 404 and r.json()["error"]["param"] == "runId"
    missing = httpx.get(f"{server.url}/api/tts/status")
    assert missing.status_code == 400 and missing.json()["error"]["param"] == "runId"


@pytest.mark.parametrize(
    "body,status,param",
    [
        ({}, 400, "text"),
        ({"text": ""}, 400, "text"),
        ({"text": "   "}, 400, "text"),
        ({"text": "hi", "speed": 9}, 400, "speed"),
        ({"text": "hi", "speed": 0.01}, 400, "speed"),
        ({"text": "hi", "stability": 2}, 400, "stability"),
        ({"text": "hi", "style": -1}, 400, "style"),
        ({"text": "hi", "response_format": "ogg"}, 400, "response_format"),
        ({"text": "hi", "model": "no-such-model"}, 400, "model"),
        ({"text": "hi", "voice": "nobody"}, 400, "voice"),
        ({"text": "x" * 200_001}, 413, "text"),
    ],
)
def test_bad_input(server, body, status, param) -> None:
    r = httpx.post(f"{server.url}/api/tts", json=body, timeout=60)
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert err["param"] == param and len(err["message"]) > 10


def test_jobs_cli_lists_and_waits(server, tmp_path: Path) -> None:
    run_id = httpx.post(
        f"{server.url}/api/tts",
        json={"text": "Waiting on the command line."},
        headers={"prefer": "respond-async"},
        timeout=60,
    ).json()["runId"]
    out = tmp_path / "waited.mp3"
    data_dir = server.data_dir
    waited = subprocess.run(
        [sys.executable, "-m", "orate.cli", "jobs", "wait", run_id, "-o", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "ORATE_DATA_DIR": str(data_dir)},
    )
    assert waited.returncode == 0, waited.stderr
    assert json.loads(waited.stdout)["status"] == "completed"
    assert duration(out.read_bytes(), "mp3") > 1.0
    listed = subprocess.run(
        [sys.executable, "-m", "orate.cli", "jobs", "list", "--json"],
        capture_output=True,
        text=True,
        env={**os.environ, "ORATE_DATA_DIR": str(data_dir)},
    )
    assert run_id in [j["runId"] for j in json.loads(listed.stdout)]
