"""Upstream providers through the pipeline: orate as a gateway in front of another server.

The upstream is a second orate (an OpenAI-compatible /v1/audio/speech), so
pass-through can be checked byte for byte and re-encoding by duration.
"""

from __future__ import annotations

import socket
from pathlib import Path

import httpx
import openai
import pytest

from .conftest import Server, duration
from .waiting import wait_for

TEXT = "The quick brown fox jumps over the lazy dog."


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    srv = Server(tmp_path_factory.mktemp("upstream"), workers=1)
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def silent_port():  # type: ignore[no-untyped-def]
    """A port that accepts connections and never answers (a hung provider)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    yield sock.getsockname()[1]
    sock.close()


@pytest.fixture(scope="module")
def closed_port():  # type: ignore[no-untyped-def]
    """A port bound for the module but never listening: connecting is refused. Held, not
    closed at once, so no server starting on the shared machine (the gateway itself
    included) can take it and answer for the provider that is meant to be down."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


@pytest.fixture(scope="module")
def gateway(upstream, silent_port, closed_port, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    tmp = tmp_path_factory.mktemp("gateway")
    closed = closed_port  # nothing listens here
    up = f"{upstream.url}/v1"
    (tmp / "providers.toml").write_text(f"""
[[provider]]
name = "direct"
kind = "openai"
base_url = "{up}"
api_key_env = "UPSTREAM_KEY"
models = ["relay-1"]
upstream_model = {{ "relay-1" = "tts-1" }}
formats = ["mp3", "wav", "pcm"]

[[provider]]
name = "down"
kind = "openai"
base_url = "http://127.0.0.1:{closed}/v1"
models = ["relay-2", "relay-down"]

[[provider]]
name = "hung"
kind = "openai"
base_url = "http://127.0.0.1:{silent_port}/v1"
models = ["relay-slow"]
timeout = 0.5

[[provider]]
name = "backup"
kind = "openai"
base_url = "{up}"
models = ["relay-2"]
upstream_model = {{ "relay-2" = "tts-1" }}

[[provider]]
name = "wrong-model"
kind = "openai"
base_url = "{up}"
models = ["relay-bad"]
upstream_model = {{ "relay-bad" = "no-such-model" }}

[[provider]]
name = "ignored"
type = "stt"
kind = "openai"
base_url = "{up}"
models = ["relay-stt"]
""")
    srv = Server(
        tmp,
        workers=1,
        env={"ORATE_PROVIDERS_FILE": str(tmp / "providers.toml"), "UPSTREAM_KEY": "sk-upstream"},
    )
    yield srv
    srv.stop()


def direct(upstream, fmt: str) -> bytes:
    r = httpx.post(
        f"{upstream.url}/v1/audio/speech",
        json={"model": "tts-1", "voice": "alloy", "input": TEXT, "response_format": fmt},
        timeout=60,
    )
    return r.content


def test_models_from_providers_are_in_the_catalog(gateway) -> None:
    models = {m["id"]: m for m in httpx.get(f"{gateway.url}/v1/models").json()["data"]}
    assert models["relay-1"]["engine"] == "remote" and models["relay-1"]["providers"] == ["direct"]
    assert models["relay-2"]["providers"] == ["down", "backup"]
    assert "relay-stt" not in models  # only type = "tts" providers serve speech


def test_native_format_passes_through_byte_for_byte(gateway, upstream) -> None:
    client = openai.OpenAI(api_key="k", base_url=f"{gateway.url}/v1", max_retries=0)
    got = client.audio.speech.create(
        model="relay-1", voice="alloy", input=TEXT, response_format="mp3"
    ).content
    assert got == direct(upstream, "mp3")  # the upstream's cache makes the two identical


def test_other_formats_are_reencoded(gateway, upstream) -> None:
    reference = duration(direct(upstream, "wav"), "wav")
    for fmt in ("opus", "flac", "aac"):
        r = httpx.post(
            f"{gateway.url}/v1/audio/speech",
            timeout=60,
            json={"model": "relay-1", "voice": "alloy", "input": TEXT, "response_format": fmt},
        )
        assert r.status_code == 200, r.text
        assert abs(duration(r.content, fmt) - reference) / reference < 0.03, fmt


def test_fails_over_from_an_unreachable_provider(gateway) -> None:
    r = httpx.post(
        f"{gateway.url}/v1/audio/speech",
        timeout=60,
        json={"model": "relay-2", "voice": "alloy", "input": TEXT, "response_format": "wav"},
    )
    assert r.status_code == 200 and r.content[:4] == b"RIFF"


@pytest.mark.parametrize(
    "model,status,code,needle",
    [
        ("relay-down", 404, "no_provider", "down"),
        ("relay-slow", 404, "no_provider", "hung"),
        ("relay-bad", 502, "upstream_error", "404"),
    ],
)
def test_upstream_failures_get_gateway_errors(gateway, model, status, code, needle) -> None:
    r = httpx.post(
        f"{gateway.url}/v1/audio/speech",
        timeout=60,
        json={"model": model, "voice": "alloy", "input": TEXT},
    )
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert err["type"] == code and needle in err["message"]


def test_upstream_generations_are_recorded(gateway) -> None:
    r = httpx.post(
        f"{gateway.url}/v1/audio/speech",
        timeout=60,
        json={
            "model": "relay-1",
            "voice": "alloy",
            "input": TEXT + " Recorded.",
            "response_format": "wav",
        },
    )
    gen_id = r.headers["x-orate-generation-id"]
    # by state, with a deadline: a hundred back-to-back reads could all come before it
    record = wait_for(
        lambda: httpx.get(f"{gateway.url}/v1/history/{gen_id}", timeout=60),
        lambda got: got.status_code == 200,
        "the relayed generation in the history",
    )
    assert record.json()["engine"] == "remote" and record.json()["duration"] > 1.0


def test_bad_providers_file_stops_the_server_with_a_reason(tmp_path: Path) -> None:
    (tmp_path / "p.toml").write_text(
        '[[provider]]\nname = "x"\nkind = "carrier-pigeon"\nbase_url = "http://h"\nmodels = ["m"]\n'
    )
    with pytest.raises(RuntimeError, match="kind"):
        Server(tmp_path, workers=1, env={"ORATE_PROVIDERS_FILE": str(tmp_path / "p.toml")})
