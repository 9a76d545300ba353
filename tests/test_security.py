"""API keys in every dialect's own place, isolation between keys, limits, and the guard."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import openai
import pytest
from hume import HumeClient
from hume.core.api_error import ApiError as HumeApiError
from hume.tts import PostedUtterance

from .conftest import Server, free_port, slow_reader
from .waiting import wait_until

ORATE = [sys.executable, "-m", "orate.cli"]
LONG = "This sentence keeps an engine busy for a while. " * 80


def create_key(data: Path, *args: str) -> str:
    result = subprocess.run(
        [*ORATE, "keys", "create", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "ORATE_DATA_DIR": str(data)},
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    secret = result.stdout.strip()
    assert secret.startswith("orate_") and secret not in result.stderr
    return secret


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    data = tmp_path_factory.mktemp("secured")
    keys = {
        "alice": create_key(data, "--name", "alice"),
        "bob": create_key(data, "--name", "bob"),
        "admin": create_key(data, "--name", "root", "--admin"),
        "slow": create_key(data, "--name", "slow", "--rate", "1/min"),
        "single": create_key(data, "--name", "single", "--concurrency", "1"),
        "small": create_key(data, "--name", "small", "--quota-chars", "40"),
    }
    srv = Server(data, workers=1, log_level="info")  # access lines: to check they hide keys
    srv.keys = keys  # type: ignore[attr-defined]
    yield srv
    srv.stop()


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def speech(srv, key: str | None, text: str = "Hello there.", **kw) -> httpx.Response:
    return httpx.post(
        f"{srv.url}/v1/audio/speech",
        headers=bearer(key) if key else {},
        json={"model": "tts-1", "voice": "alloy", "input": text, "response_format": "wav", **kw},
        timeout=60,
    )


def test_every_dialect_refuses_missing_and_wrong_keys_in_its_envelope(secured) -> None:
    url = secured.url
    for headers in ({}, bearer("orate_wrong"), {"x-api-key": "nope"}):
        oa = httpx.post(
            f"{url}/v1/audio/speech",
            headers=headers,
            json={"model": "tts-1", "voice": "alloy", "input": "hi"},
            timeout=60,
        )
        assert oa.status_code == 401 and oa.json()["error"]["type"] == "authentication_error"
        hu = httpx.post(
            f"{url}/v0/tts", headers=headers, json={"utterances": [{"text": "hi"}]}, timeout=60
        )
        assert hu.status_code == 401 and isinstance(hu.json()["code"], str)
        ng = httpx.post(f"{url}/api/tts", headers=headers, json={"text": "hi"}, timeout=60)
        assert ng.status_code == 401 and ng.json()["error"]["message"]
        lib = httpx.get(f"{url}/v1/history", headers=headers)
        assert lib.status_code == 401
    assert httpx.get(f"{url}/healthz").status_code == 200
    assert httpx.get(f"{url}/readyz").json()["ready"] is True


def test_each_sdk_sends_its_key_its_own_way(secured) -> None:
    keys = secured.keys
    client = openai.OpenAI(api_key=keys["alice"], base_url=f"{secured.url}/v1", max_retries=0)
    assert (
        client.audio.speech.create(
            model="tts-1", voice="alloy", input="Hi.", response_format="wav"
        ).content[:4]
        == b"RIFF"
    )
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(
            api_key="orate_bad", base_url=f"{secured.url}/v1", max_retries=0
        ).models.list()
    hume = HumeClient(api_key=keys["alice"], base_url=secured.url)
    assert hume.tts.synthesize_json(utterances=[PostedUtterance(text="Hi.")]).generations
    with pytest.raises(HumeApiError) as info:
        HumeClient(api_key="orate_bad", base_url=secured.url).tts.synthesize_json(
            utterances=[PostedUtterance(text="Hi.")]
        )
    assert info.value.status_code == 401
    ng = httpx.post(
        f"{secured.url}/api/tts",
        headers={"x-api-key": keys["alice"]},
        json={"text": "Hi."},
        timeout=60,
    )
    assert ng.status_code == 200
    el = httpx.get(f"{secured.url}/v1/history", headers={"xi-api-key": keys["alice"]})
    assert el.status_code == 200


def test_websocket_keys_by_header_and_query_and_refusal(secured) -> None:
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    keys = secured.keys
    hume = HumeClient(api_key=keys["alice"], base_url=secured.url)
    with hume.tts.stream_input.connect(no_binary=True) as socket:
        socket._send({"text": "Hello.", "voice": {"name": "alloy"}, "close": True})
        assert any(getattr(m, "type", None) == "audio" for m in socket)
    ws = secured.url.replace("http", "ws") + "/v0/tts/stream/input"
    with connect(f"{ws}?api_key={keys['alice']}&no_binary=true") as sock:
        sock.send('{"text": "Hi.", "close": true}')
        assert '"type":"audio"' in sock.recv(timeout=30)
    for url in (ws, f"{ws}?api_key=orate_bad"):
        with pytest.raises(InvalidStatus) as info:
            connect(url).close()
        assert info.value.response.status_code == 401
    log = (secured.data_dir / "server.log").read_text()
    assert keys["alice"] not in log and "api_key=***" in log


def test_records_are_isolated_between_keys(secured) -> None:
    keys, url = secured.keys, secured.url
    a, b, admin = bearer(keys["alice"]), bearer(keys["bob"]), bearer(keys["admin"])
    r = speech(secured, keys["alice"], "Alice's private words.")
    gen = r.headers["x-orate-generation-id"]
    wait_until(
        lambda: httpx.get(f"{url}/v1/history/{gen}", headers=a).status_code == 200,
        "alice's generation in her history",
    )
    voice = httpx.post(
        f"{url}/v1/voices",
        headers=a,
        json={"name": "alice-voice", "params": {"voice": "en-gb"}},
        timeout=60,
    ).json()
    job = httpx.post(
        f"{url}/api/tts",
        headers={"x-api-key": keys["alice"], "prefer": "respond-async"},
        json={"text": "Alice's job."},
        timeout=60,
    ).json()
    # bob sees none of it, and cannot tell it exists (404, never 403)
    for method, path in [
        ("GET", f"/v1/history/{gen}"),
        ("DELETE", f"/v1/history/{gen}"),
        ("GET", f"/v1/audio/files/{gen}"),
        ("HEAD", f"/v1/audio/files/{gen}"),
        ("GET", f"/v1/voices/{voice['id']}"),
        ("GET", "/v1/voices/alice-voice"),
        ("DELETE", f"/v1/voices/{voice['id']}"),
        ("GET", f"/api/tts/status?runId={job['runId']}"),
    ]:
        assert httpx.request(method, f"{url}{path}", headers=b, timeout=60).status_code == 404, path
    assert gen not in [g["id"] for g in httpx.get(f"{url}/v1/history", headers=b).json()["data"]]
    assert "alice-voice" not in [
        v["name"]
        for v in httpx.get(f"{url}/v1/voices", headers=b, params={"provider": "custom"}).json()[
            "voices"
        ]
    ]
    assert (
        httpx.get(f"{url}/v1/usage", headers=b).json()["total"]["characters"]
        < httpx.get(f"{url}/v1/usage", headers=a).json()["total"]["characters"] + 10_000
    )
    used_by_bob = speech(secured, keys["bob"], "Hi.", voice="alice-voice")
    assert used_by_bob.status_code == 400  # not bob's voice: unknown to him
    hume_b = {"X-Hume-Api-Key": keys["bob"]}
    ctx = httpx.post(
        f"{url}/v0/tts",
        headers=hume_b,
        json={"utterances": [{"text": "Hi."}], "context": {"generation_id": gen}},
        timeout=60,
    )
    assert ctx.status_code == 400 and ctx.json()["code"] == "generation_not_found"
    steal = httpx.post(
        f"{url}/v0/tts/voices",
        headers=hume_b,
        json={"generation_id": gen, "name": "stolen"},
        timeout=60,
    )
    assert steal.status_code == 404
    mine = httpx.get(
        f"{url}/v0/tts/voices", headers=hume_b, params={"provider": "CUSTOM_VOICE"}
    ).json()["voices_page"]
    assert "alice-voice" not in [v["name"] for v in mine]
    # alice still has everything; the admin sees everyone's
    assert httpx.get(f"{url}/v1/history/{gen}", headers=a).status_code == 200
    assert httpx.get(f"{url}/v1/history/{gen}", headers=admin).status_code == 200
    assert httpx.get(f"{url}/v1/voices/{voice['id']}", headers=admin).status_code == 200


def test_rate_limit_answers_429_with_retry_after(secured) -> None:
    key = secured.keys["slow"]
    # one request a minute: the refused ones below come well within the 60 s refill on any
    # machine (at 3/min a token came back every 20 s, a bound a busy machine could reach)
    assert speech(secured, key, "Hi.").status_code == 200
    limited = speech(secured, key, "Hi.")
    assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1
    assert limited.json()["error"]["type"] == "rate_limit_error"
    hume = httpx.post(
        f"{secured.url}/v0/tts",
        headers={"X-Hume-Api-Key": key},
        json={"utterances": [{"text": "Hi."}]},
        timeout=60,
    )
    assert hume.status_code == 429 and hume.json()["code"] == "rate_limited"


def test_concurrent_streams_are_limited_per_key(secured) -> None:
    key = secured.keys["single"]
    body = {"model": "tts-1", "voice": "alloy", "input": LONG, "response_format": "mp3"}
    with httpx.stream(
        "POST", f"{secured.url}/v1/audio/speech", headers=bearer(key), json=body, timeout=60
    ) as first:
        assert first.status_code == 200
        stream = first.iter_raw()  # keep it: a dropped iterator closes the connection
        next(stream)
        second = speech(secured, key, "Hi.")
        assert second.status_code == 429 and second.headers["retry-after"] == "1"
    # the first stream's slot is released once the server sees it closed
    wait_until(
        lambda: speech(secured, key, "Hi.").status_code == 200,
        "the closed stream's slot to be released",
        timeout=10,
    )


def test_character_quota(secured) -> None:
    key = secured.keys["small"]
    assert speech(secured, key, "x" * 41).status_code == 429  # over the whole quota
    assert speech(secured, key, "Twenty characters ok").status_code == 200
    # the first request's characters are settled against the key (what the next one's
    # quota check reads; the server's cached copy of the key follows in step)
    admin = bearer(secured.keys["admin"])
    wait_until(
        lambda: any(
            k["name"] == "small" and k["used_chars"] == 20
            for k in httpx.get(f"{secured.url}/v1/keys", headers=admin).json()["data"]
        ),
        "the quota's used count",
    )
    over = speech(secured, key, "Twenty-one characters")
    assert over.status_code == 429 and "quota" in over.json()["error"]["message"]
    assert "retry-after" in over.headers


def test_metrics_are_for_admins(secured) -> None:
    assert (
        httpx.get(f"{secured.url}/metrics", headers=bearer(secured.keys["alice"])).status_code
        == 404
    )
    text = httpx.get(f"{secured.url}/metrics", headers=bearer(secured.keys["admin"])).text
    for name in (
        "orate_requests_total",
        "orate_request_seconds_bucket",
        "orate_first_audio_seconds_bucket",
        "orate_audio_seconds_total",
        "orate_cache_lookups_total",
        "orate_queue_depth",
        "orate_worker_restarts",
    ):
        assert name in text, name
    assert 'dialect="openai",status="401"' in text


def test_revoked_key_stops_working(secured) -> None:
    key = create_key(secured.data_dir, "--name", "temporary")
    # the server's key cache picks a new key up within seconds
    wait_until(
        lambda: speech(secured, key, "Hi.").status_code == 200,
        "the new key to be accepted",
        timeout=10,
    )
    subprocess.run(
        [*ORATE, "keys", "revoke", "temporary"],
        check=True,
        capture_output=True,
        env={**os.environ, "ORATE_DATA_DIR": str(secured.data_dir)},
    )
    wait_until(
        lambda: speech(secured, key, "Hi.").status_code == 401,
        "the revoked key to be refused",
        timeout=60,
    )
    listed = subprocess.run(
        [*ORATE, "keys", "list", "--json"],
        capture_output=True,
        text=True,
        env={**os.environ, "ORATE_DATA_DIR": str(secured.data_dir)},
    )
    assert key not in listed.stdout and '"revoked": true' in listed.stdout


def test_full_queue_answers_503(tmp_path: Path) -> None:
    # the only worker must still be busy when the second request comes, on any machine: with
    # the spool off it waits on the first client, who stops reading after one chunk of a
    # wav larger than every buffer between them (with the spool, it could finish first)
    srv = Server(
        tmp_path,
        workers=1,
        env={
            "ORATE_MAX_QUEUE": "0",
            "ORATE_CACHE_ENABLED": "false",
            "ORATE_SPOOL_BYTES": "0",
            "ORATE_WORKER_STREAMS": "1",  # one job at a time: the second waits in the line
        },
    )
    try:
        # at half speed ~20 MB of wav: far more than ``buffered_at_most()`` on any kernel
        body = {
            "model": "tts-1",
            "voice": "alloy",
            "input": LONG,
            "response_format": "wav",
            "speed": 0.5,
        }
        with (
            slow_reader() as client,
            client.stream("POST", f"{srv.url}/v1/audio/speech", json=body) as r,
        ):
            stream = r.iter_raw()  # keep it: a dropped iterator closes the connection
            next(stream)
            assert srv.health()["engines"]["busy"] == 1
            busy = speech(srv, None, "Hi.")
            assert busy.status_code == 503 and busy.headers["retry-after"] == "1"
            assert busy.json()["error"]["code"] == "engines_busy"
            hume = httpx.post(
                f"{srv.url}/v0/tts", json={"utterances": [{"text": "Hi."}]}, timeout=60
            )
            assert hume.status_code == 503 and hume.json()["code"] == "engines_busy"
    finally:
        srv.stop()


def test_body_size_limit(tmp_path: Path) -> None:
    srv = Server(tmp_path, workers=1, env={"ORATE_MAX_BODY_BYTES": "4096"})
    try:
        big = {"model": "tts-1", "voice": "alloy", "input": "a " * 3000}
        r = httpx.post(f"{srv.url}/v1/audio/speech", json=big, timeout=60)
        assert r.status_code == 413 and "4096" in r.json()["error"]["message"]

        def chunks():  # no Content-Length: the guard counts as it reads
            yield b'{"model": "tts-1", "voice": "alloy", "input": "'
            for _ in range(100):
                yield b"word " * 20
            yield b'"}'

        chunked = httpx.post(
            f"{srv.url}/v1/audio/speech",
            content=chunks(),
            headers={"content-type": "application/json"},
            timeout=60,
        )
        assert chunked.status_code == 413
        assert speech(srv, None, "Small is fine.").status_code == 200
    finally:
        srv.stop()


def test_serve_refuses_open_addresses_without_keys(tmp_path: Path) -> None:
    env = {**os.environ, "ORATE_DATA_DIR": str(tmp_path)}
    refused = subprocess.run(
        [*ORATE, "serve", "--host", "0.0.0.0", "--port", str(free_port())],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert refused.returncode != 0 and "--insecure" in refused.stderr
    port = free_port()
    proc = subprocess.Popen(
        [*ORATE, "serve", "--host", "0.0.0.0", "--port", str(port), "--insecure", "--workers", "1"],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:

        def healthy() -> bool:
            try:
                return httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(healthy, "the server to answer /healthz", timeout=60, interval=0.1)
    finally:
        proc.terminate()
        _, stderr = proc.communicate(timeout=30)
    assert "warning" in stderr and "--insecure" in stderr


def test_sigterm_drains_a_stream_in_flight(tmp_path: Path) -> None:
    # the client pauses below until the synthesis is done: no stall drop meanwhile
    srv = Server(tmp_path, workers=1, env={"ORATE_STALL_TIMEOUT": "300"})
    got = {}

    streaming = threading.Event()  # the first audio has arrived: a stream is in flight
    resume = threading.Event()  # read on: the server has been told to stop

    def listen() -> None:
        body = {"model": "tts-1", "voice": "alloy", "input": LONG, "response_format": "wav"}
        with httpx.stream("POST", f"{srv.url}/v1/audio/speech", json=body, timeout=120) as r:
            total = 0
            for chunk in r.iter_raw():
                total += len(chunk)
                if not streaming.is_set():
                    streaming.set()
                    resume.wait(180)
            got["bytes"] = total

    thread = threading.Thread(target=listen)
    thread.start()
    try:
        assert streaming.wait(60), "the stream never started"
        # SIGTERM once the synthesis has finished into the spool while its client waits: the
        # drain then has the rest of the audio to deliver, which takes the same on any
        # machine, not the rest of a synthesis, which on a busy one can outlast the server's
        # 10 s graceful-shutdown bound
        wait_until(
            lambda: srv.health()["engines"]["busy"] == 0,
            "the synthesis to finish while its client waits",
            timeout=120,
        )
        srv.proc.terminate()
    finally:
        resume.set()
    thread.join(120)
    srv.proc.wait(30)
    srv.log.close()
    assert got.get("bytes", 0) > 44 + 2 * 22050 * 60  # the whole stream, not cut off
