"""``x-request-id`` on every HTTP response of every dialect (the generation id where there
is one), ``request-id`` for ElevenLabs; read the way the SDKs read them."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from .conftest import Server


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = Server(tmp_path_factory.mktemp("request-ids"), workers=1)
    yield server
    server.stop()


def test_openai_sdk_reads_the_generation_id(srv: Server) -> None:
    from openai import OpenAI

    client = OpenAI(api_key="k", base_url=f"{srv.url}/v1", max_retries=0)
    with client.audio.speech.with_streaming_response.create(
        model="tts-1", voice="alloy", input="Hi.", response_format="wav"
    ) as r:
        assert r.request_id and r.request_id == r.headers["x-orate-generation-id"]
        r.read()


@pytest.mark.parametrize(
    "method, path, body, status",
    [
        ("POST", "/v0/tts/file", {"utterances": [{"text": "Hi."}], "format": {"type": "wav"}}, 200),
        ("POST", "/api/tts", {"text": "Hi.", "response_format": "wav"}, 200),
        ("GET", "/v1/models", None, 200),
        ("GET", "/healthz", None, 200),
        ("GET", "/v1/no-such-route", None, 404),
        ("POST", "/v1/audio/speech", {"model": "tts-1"}, 400),
        ("POST", "/v0/tts", {"utterances": []}, 422),
    ],
)
def test_every_dialect_and_error_has_one(
    srv: Server, method: str, path: str, body: dict | None, status: int
) -> None:
    r = httpx.request(
        method,
        srv.url + path,
        json=body,
        timeout=60,
        headers={"accept": "audio/wav"} if path == "/api/tts" else None,
    )
    assert r.status_code == status, r.text
    rid = r.headers.get("x-request-id")
    assert rid, dict(r.headers)
    if "x-orate-generation-id" in r.headers:
        assert rid == r.headers["x-orate-generation-id"]
    assert "request-id" not in r.headers  # ElevenLabs' own header, on its routes only


def test_elevenlabs_gets_request_id_too_and_a_callers_id_is_kept(srv: Server) -> None:
    r = httpx.post(
        f"{srv.url}/v1/text-to-speech/21m00Tcm4TlvDq8ikWAM", json={"text": "Hi."}, timeout=60
    )
    assert r.status_code == 200
    assert r.headers["request-id"] == r.headers["x-request-id"] == r.headers["history-item-id"]
    r = httpx.get(f"{srv.url}/v1/voices/nobody", headers={"xi-api-key": "x"}, timeout=30)
    assert r.headers["request-id"] == r.headers["x-request-id"]
    r = httpx.get(f"{srv.url}/healthz", headers={"x-request-id": "trace-42"}, timeout=30)
    assert r.headers["x-request-id"] == "trace-42"
    r = httpx.get(f"{srv.url}/healthz", headers={"x-request-id": "bad id\t<x>"}, timeout=30)
    assert r.headers["x-request-id"] != "bad id\t<x>"
