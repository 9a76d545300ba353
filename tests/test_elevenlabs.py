"""The ElevenLabs dialect, driven by the official ``elevenlabs`` SDK against a real server.

One server with TLS (the SDK's WebSocket helper always uses wss://) and API keys
(isolation, quota, rate limits), a self-signed certificate made here.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import io
import ipaddress
import itertools
import json
import os
import ssl
import subprocess
import sys
import zipfile
from pathlib import Path

import httpx
import numpy as np
import pytest
from elevenlabs import VoiceSettings
from elevenlabs.client import ElevenLabs
from elevenlabs.core.api_error import ApiError
from websockets.exceptions import ConnectionClosed

from .conftest import Server, decode
from .waiting import wait_until

ORATE = [sys.executable, "-m", "orate.cli"]
TEXT = "The quick brown fox jumps over the lazy dog. Please call me back tomorrow morning."
RACHEL = "21m00Tcm4TlvDq8ikWAM"


def make_cert(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and localhost."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "orate-test")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def create_key(data: Path, *args: str) -> str:
    result = subprocess.run(
        [*ORATE, "keys", "create", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "ORATE_DATA_DIR": str(data)},
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    data = tmp_path_factory.mktemp("elevenlabs")
    cert, key = make_cert(data)
    keys = {
        "alice": create_key(data, "--name", "alice"),
        "bob": create_key(data, "--name", "bob"),
        "small": create_key(data, "--name", "small", "--quota-chars", "30"),
        "slow": create_key(data, "--name", "slow", "--rate", "1/min"),
    }
    server = Server(data, workers=2, args=["--ssl-certfile", str(cert), "--ssl-keyfile", str(key)])
    server.keys = keys  # type: ignore[attr-defined]
    server.cert = cert  # type: ignore[attr-defined]
    yield server
    server.stop()


def http(srv: Server) -> httpx.Client:
    ctx = ssl.create_default_context(cafile=str(srv.cert))  # type: ignore[attr-defined]
    return httpx.Client(verify=ctx, timeout=60)


def client(srv: Server, who: str = "alice") -> ElevenLabs:
    return ElevenLabs(
        api_key=srv.keys[who],
        base_url=srv.url,  # type: ignore[attr-defined]
        httpx_client=http(srv),
    )


@pytest.fixture(scope="module")
def el(srv: Server) -> ElevenLabs:
    return client(srv)


def xi(srv: Server, who: str = "alice") -> dict[str, str]:
    return {"xi-api-key": srv.keys[who]}  # type: ignore[attr-defined]


def rate_of(fmt: str) -> int:
    return int(fmt.split("_")[1])


def kind_of(fmt: str) -> str:
    return {
        "mp3": "mp3",
        "pcm": "pcm",
        "ulaw": "ulaw",
        "alaw": "alaw",
        "opus": "opus",
        "wav": "wav",
    }[fmt.split("_")[0]]


# -- speech -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def reference(el: ElevenLabs) -> float:
    """The duration of TEXT, from raw pcm at 16 kHz."""
    data = b"".join(el.text_to_speech.convert(RACHEL, text=TEXT, output_format="pcm_16000"))
    return len(data) / 2 / 16000


@pytest.mark.parametrize(
    "fmt",
    [
        "mp3_44100_128",
        "mp3_22050_32",
        "pcm_44100",
        "ulaw_8000",
        "alaw_8000",
        "opus_48000_64",
        "wav_16000",
    ],
)
def test_convert_decodes_to_the_expected_rate_and_duration(el, reference, fmt) -> None:
    data = b"".join(
        el.text_to_speech.convert(
            RACHEL, text=TEXT, output_format=fmt, model_id="eleven_multilingual_v2"
        )
    )
    samples, rate = decode(data, kind_of(fmt), rate_of(fmt))
    assert rate == rate_of(fmt)
    assert abs(len(samples) / rate - reference) < 0.08, (len(samples) / rate, reference)
    if fmt.startswith(("ulaw", "alaw")):
        assert len(data) == len(samples)  # headerless, one byte a sample
    assert np.abs(samples.astype(np.int32)).max() > 1000  # speech, not silence


def test_stream_sends_chunks_with_elevenlabs_headers(el, reference) -> None:
    raw = el.text_to_speech.with_raw_response.stream(
        RACHEL, text=TEXT, output_format="mp3_44100_128"
    )
    with raw as response:
        chunks = list(response.data)
        headers = response.headers
    assert len(chunks) > 1
    assert headers["request-id"] == headers["history-item-id"]
    assert int(headers["character-cost"]) == len(TEXT)
    samples, rate = decode(b"".join(chunks), "mp3")
    assert rate == 44100 and abs(len(samples) / rate - reference) < 0.1


@pytest.mark.parametrize("fmt", ["mp3_44100_128", "pcm_16000"])
def test_asr_round_trip(el, recognizer, fmt) -> None:
    sentence = "please call me back tomorrow morning"
    data = b"".join(
        el.text_to_speech.convert("Rachel", text=sentence.capitalize() + ".", output_format=fmt)
    )
    assert recognizer.which(data, kind_of(fmt), rate_of(fmt)) == sentence


def _check_alignment(
    chars: list[str], starts: list[float], ends: list[float], text: str, duration: float
) -> None:
    assert "".join(chars) == text, "every character of the input, in order"
    assert len(starts) == len(ends) == len(text)
    assert all(0 <= s <= e <= duration + 0.01 for s, e in zip(starts, ends, strict=True))
    assert all(a <= b for a, b in itertools.pairwise(starts)), "monotonic"
    assert starts[0] < 0.2 and ends[-1] > duration * 0.8


def test_convert_with_timestamps_aligns_every_character(el) -> None:
    res = el.text_to_speech.convert_with_timestamps(RACHEL, text=TEXT, output_format="pcm_24000")
    audio = base64.b64decode(res.audio_base_64)
    duration = len(audio) / 2 / 24000
    a = res.alignment
    _check_alignment(
        a.characters, a.character_start_times_seconds, a.character_end_times_seconds, TEXT, duration
    )
    assert res.normalized_alignment.characters == list(TEXT)
    # the word "lazy" is spoken after "quick": times follow the words
    assert (
        a.character_start_times_seconds[TEXT.index("lazy")]
        > a.character_start_times_seconds[TEXT.index("quick")] + 0.3
    )


def test_stream_with_timestamps_chunks_carry_their_own_characters(el) -> None:
    chunks = list(
        el.text_to_speech.stream_with_timestamps(RACHEL, text=TEXT, output_format="pcm_16000")
    )
    assert len(chunks) >= 2
    audio = b"".join(base64.b64decode(c.audio_base_64) for c in chunks)
    duration = len(audio) / 2 / 16000
    chars, starts, ends = [], [], []
    for c in chunks:
        if c.alignment is not None:
            chars += c.alignment.characters
            starts += c.alignment.character_start_times_seconds
            ends += c.alignment.character_end_times_seconds
    _check_alignment(chars, starts, ends, TEXT, duration)  # absolute times across chunks
    first = chunks[0].alignment.characters
    assert "".join(first).strip().endswith("dog."), "one sentence per chunk"


def test_seed_and_voice_settings(el, srv) -> None:
    def pcm(**kw) -> np.ndarray:  # type: ignore[no-untyped-def]
        data = b"".join(
            el.text_to_speech.convert(
                "Bella", text="Seeds make takes.", output_format="pcm_16000", **kw
            )
        )
        return np.frombuffer(data, "<i2")

    a, b, c = pcm(seed=7), pcm(seed=7), pcm(seed=8)
    assert abs(len(a) - len(b)) < 400 and not (len(a) == len(c) and np.array_equal(a, c))
    slow = pcm(voice_settings=VoiceSettings(speed=0.7))
    fast = pcm(voice_settings=VoiceSettings(speed=1.2))
    assert len(slow) > len(fast) * 1.3


def test_premade_names_and_ids_are_distinct_voices(el) -> None:
    def pcm(voice: str) -> bytes:
        return b"".join(
            el.text_to_speech.convert(voice, text="Who am I?", output_format="pcm_16000")
        )

    assert len(pcm("Rachel")) == pytest.approx(len(pcm(RACHEL)), rel=0.02)
    assert len({len(pcm(v)) for v in ("Rachel", "Adam", "George")}) >= 2


@pytest.mark.fast
def test_every_premade_name_and_id_is_its_own_voice() -> None:
    from orate.catalog.elevenlabs import ELEVENLABS_VOICE_IDS, ELEVENLABS_VOICES
    from orate.catalog.models import Catalog

    catalog = Catalog()
    for model_id in ("eleven_multilingual_v2", "Elevenlabs-Turbo-V2.5"):
        model = catalog.model(model_id)
        assert model is not None
        by_id = {catalog.resolve_voice(model, vid) for vid in ELEVENLABS_VOICE_IDS}
        by_name = {catalog.resolve_voice(model, n.capitalize()) for n in ELEVENLABS_VOICES}
        assert len(by_id) == len(ELEVENLABS_VOICE_IDS) == 20 and by_id == by_name


def test_nanogpt_elevenlabs_model_uses_the_same_voice_and_settings(srv) -> None:
    with http(srv) as h:
        key = srv.keys["bob"]  # type: ignore[attr-defined]
        ng = h.post(
            f"{srv.url}/api/tts",
            headers={"x-api-key": key},
            json={
                "text": "One voice in two dialects.",
                "model": "Elevenlabs-Turbo-V2.5",
                "voice": "Rachel",
                "stability": 0.2,
                "style": 0.6,
                "response_format": "pcm",
            },
        )
        assert ng.status_code == 202, ng.text  # nano-gpt's ElevenLabs model runs as a job
        run_id = ng.json()["runId"]

        def finished() -> dict | None:
            job = h.get(
                f"{srv.url}/api/tts/status", params={"runId": run_id}, headers={"x-api-key": key}
            ).json()
            return job if job["status"] not in ("pending", "processing") else None

        job = wait_until(finished, "the nano-gpt job to finish", timeout=120)
        assert job["status"] == "completed", job
        el = h.post(
            f"{srv.url}/v1/text-to-speech/{RACHEL}?output_format=pcm_24000",
            headers={"xi-api-key": key},
            json={
                "text": "One voice in two dialects.",
                "model_id": "eleven_turbo_v2_5",
                "voice_settings": {"stability": 0.2, "style": 0.6},
            },
        )
        assert el.status_code == 200
        bearer = {"authorization": f"Bearer {key}"}  # orate's own shape for this caller
        ids = [job["audioUrl"].rsplit("/", 1)[1], el.headers["request-id"]]
        rows = [h.get(f"{srv.url}/v1/history/{i}", headers=bearer).json() for i in ids]
    assert [r["dialect"] for r in rows] == ["nanogpt", "elevenlabs"]
    assert rows[0]["voice_params"] == rows[1]["voice_params"]
    assert rows[0]["voice_params"][0]["pitch_range"] != 50


# -- WebSocket stream-input ---------------------------------------------------------------


def test_websocket_helper_over_tls(el, srv, monkeypatch, recognizer) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(srv.cert))  # type: ignore[attr-defined]
    sentence = "the weather is cold and windy today"
    pieces = iter(["The weather is ", "cold and windy ", "today."])
    audio = b"".join(
        el.text_to_speech.convert_realtime(
            RACHEL, text=pieces, model_id="eleven_flash_v2_5", output_format="pcm_16000"
        )
    )
    assert recognizer.which(audio, "pcm", 16000) == sentence


def _ws(srv: Server, path: str, who: str | None = "alice"):  # type: ignore[no-untyped-def]
    from websockets.sync.client import connect

    ctx = ssl.create_default_context(cafile=str(srv.cert))  # type: ignore[attr-defined]
    url = srv.url.replace("https", "wss") + path
    return connect(url, ssl=ctx, additional_headers=xi(srv, who) if who else None, open_timeout=30)


def test_websocket_session_counts_against_the_quota(srv) -> None:
    path = f"/v1/text-to-speech/{RACHEL}/stream-input?output_format=pcm_8000"
    with _ws(srv, path, who="small") as ws:  # 30 characters in all
        ws.send(json.dumps({"text": " "}))
        ws.send(json.dumps({"text": "Twenty characters ok. ", "flush": True}))
        ws.send(json.dumps({"text": "Twenty more are not. ", "flush": True}))
        messages = []
        with pytest.raises(ConnectionClosed):
            while True:
                messages.append(json.loads(ws.recv(timeout=60)))
    assert any(m.get("audio") for m in messages)
    assert messages[-1]["error"] == "quota_exceeded" and ws.close_code == 1008


def test_websocket_key_in_the_bos_message(srv) -> None:
    path = f"/v1/text-to-speech/{RACHEL}/stream-input?output_format=pcm_8000"
    with _ws(srv, path, who=None) as ws:  # a raw client: the key in BOS, not a header
        ws.send(json.dumps({"text": " ", "xi_api_key": srv.keys["bob"]}))  # type: ignore
        ws.send(json.dumps({"text": "Bob speaks from the first message. ", "flush": True}))
        ws.send(json.dumps({"text": ""}))
        while not (msg := json.loads(ws.recv(timeout=60))).get("isFinal"):
            assert "message" not in msg
    # the session's generation is recorded once its audio is all out: wait for its row
    # rather than read the history once, right after isFinal
    wait_until(
        lambda: (
            (history := client(srv, "bob").history.list(page_size=1).history)
            and history[0].text.strip() == "Bob speaks from the first message."
        ),
        "bob's WebSocket generation as his newest history item",
        timeout=60,
    )
    for bos in ({"text": " ", "xi_api_key": "orate_wrong"}, {"text": " "}):
        with _ws(srv, path, who=None) as ws:
            ws.send(json.dumps(bos))
            with pytest.raises(ConnectionClosed):
                ws.recv(timeout=60)
            assert ws.close_code == 1008


def test_websocket_messages_alignment_and_final(srv) -> None:
    text = "Hello there. This is the second sentence, a bit longer than the first."
    with _ws(srv, f"/v1/text-to-speech/{RACHEL}/stream-input?output_format=pcm_16000") as ws:
        ws.send(
            json.dumps(
                {
                    "text": " ",
                    "voice_settings": {"stability": 0.5},
                    "generation_config": {"chunk_length_schedule": [500]},
                }
            )
        )
        ws.send(json.dumps({"text": "Hello there. ", "try_trigger_generation": True}))
        ws.send(json.dumps({"text": "This is the second sentence, "}))
        # before EOS: the first sentence is complete, so its audio comes now, at once
        # (alignment null), and its alignment with the last of its audio
        messages = [json.loads(ws.recv(timeout=60))]
        assert messages[0]["audio"] and messages[0]["isFinal"] is False
        while not messages[-1]["alignment"]:
            messages.append(json.loads(ws.recv(timeout=60)))
        assert "".join(messages[-1]["alignment"]["chars"]) == "Hello there. "
        ws.send(json.dumps({"text": "a bit longer than the first. "}))
        ws.send(json.dumps({"text": ""}))
        # to the server's close: only a close ends the loop (a slow message on a busy
        # machine is waited for, not taken for the end of the stream)
        with contextlib.suppress(ConnectionClosed):
            while True:
                messages.append(json.loads(ws.recv(timeout=60)))
        assert ws.close_code == 1000
    assert messages[-1] == {"isFinal": True}
    audio = b"".join(base64.b64decode(m["audio"]) for m in messages if m.get("audio"))
    duration_ms = len(audio) / 2 / 16
    chars, starts, durs = [], [], []
    for m in messages[:-1]:
        assert "message" not in m
        if m.get("alignment"):
            chars += m["alignment"]["chars"]
            starts += m["alignment"]["charStartTimesMs"]
            durs += m["alignment"]["charDurationsMs"]
            assert m["normalizedAlignment"]["chars"] == m["alignment"]["chars"]
    assert "".join(chars).strip() == text
    assert all(a <= b for a, b in itertools.pairwise(starts))
    assert starts[-1] + durs[-1] <= duration_ms + 5


def test_websocket_length_trigger_and_flush(srv) -> None:
    with _ws(srv, "/v1/text-to-speech/Adam/stream-input?output_format=ulaw_8000") as ws:
        ws.send(json.dumps({"text": " ", "generation_config": {"chunk_length_schedule": [20]}}))
        ws.send(
            json.dumps(
                {"text": "no sentence end here but long enough to ", "try_trigger_generation": True}
            )
        )
        while not (got := json.loads(ws.recv(timeout=60)))["alignment"]:
            assert got["audio"]
        assert "".join(got["alignment"]["chars"]).startswith("no sentence")
        ws.send(json.dumps({"text": "flush me", "flush": True}))
        spoken = ""
        while "flush me" not in spoken:
            got = json.loads(ws.recv(timeout=60))
            spoken += "".join((got.get("alignment") or {}).get("chars") or [])
        assert spoken.strip().endswith("flush me")
        ws.send(json.dumps({"text": ""}))
        while not (got := json.loads(ws.recv(timeout=60))).get("isFinal"):
            assert got["isFinal"] is False and "message" not in got  # a codec tail
        assert got == {"isFinal": True}


@pytest.mark.parametrize(
    "bad",
    ["not json", "[1, 2]", '{"no_text": 1}', '{"text": "x", "voice_settings": {"stability": 9}}'],
)
def test_websocket_malformed_messages_get_a_message_and_1008(srv, bad) -> None:
    with _ws(srv, f"/v1/text-to-speech/{RACHEL}/stream-input") as ws:
        ws.send(json.dumps({"text": " "}))
        ws.send(bad)
        msg = json.loads(ws.recv(timeout=60))
        assert msg["error"] == "invalid_message" and msg["message"]
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=60)
        assert ws.close_code == 1008


def test_websocket_errors_unknown_voice_format_and_timeout(srv) -> None:
    with _ws(srv, "/v1/text-to-speech/nobody/stream-input") as ws:
        ws.send(json.dumps({"text": "Hello there. More."}))
        ws.send(json.dumps({"text": ""}))
        msg = json.loads(ws.recv(timeout=60))
        assert msg["error"] == "voice_not_found"
    with _ws(srv, f"/v1/text-to-speech/{RACHEL}/stream-input?output_format=wav_16000") as ws:
        assert json.loads(ws.recv(timeout=60))["error"] == "invalid_output_format"
    with _ws(srv, f"/v1/text-to-speech/{RACHEL}/stream-input?inactivity_timeout=1") as ws:
        ws.send(json.dumps({"text": " "}))
        msg = json.loads(ws.recv(timeout=60))
        assert msg["error"] == "input_timeout_exceeded"
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=60)
        assert ws.close_code == 1008


# -- voices, models, user -----------------------------------------------------------------


def test_voices_get_all_search_get_and_preview(el, srv) -> None:
    voices = el.voices.get_all().voices
    by_id = {v.voice_id: v for v in voices}
    assert by_id[RACHEL].name == "Rachel" and by_id[RACHEL].category == "premade"
    assert by_id[RACHEL].labels["gender"] == "female"
    assert len(voices) >= 20
    page = el.voices.search(page_size=5)
    assert len(page.voices) == 5 and page.has_more and page.next_page_token
    nxt = el.voices.search(page_size=5, next_page_token=page.next_page_token)
    assert {v.voice_id for v in nxt.voices}.isdisjoint({v.voice_id for v in page.voices})
    found = el.voices.search(search="george").voices
    assert [v.name for v in found] == ["George"]
    one = el.voices.get(RACHEL)
    assert one.voice_id == RACHEL and one.settings.stability == 0.5
    with http(srv) as h:
        preview = h.get(one.preview_url, headers=xi(srv))
        assert preview.status_code == 200
        samples, rate = decode(preview.content, "mp3")
        assert 0.5 < len(samples) / rate < 6
        assert (
            h.get(f"{srv.url}/v1/voices/settings/default", headers=xi(srv)).json()[
                "similarity_boost"
            ]
            == 0.75
        )
        assert (
            h.get(f"{srv.url}/v1/voices/{RACHEL}/settings", headers=xi(srv)).json()["stability"]
            == 0.5
        )


def test_models_rule_for_both_sdks(el, srv) -> None:
    from openai import OpenAI

    ids = [m.model_id for m in el.models.list()]
    assert {"eleven_multilingual_v2", "eleven_turbo_v2_5", "eleven_flash_v2_5"} <= set(ids)
    oa = OpenAI(
        api_key=srv.keys["alice"],
        base_url=f"{srv.url}/v1",  # type: ignore[attr-defined]
        http_client=http(srv),
    )
    assert "tts-1" in [m.id for m in oa.models.list().data]
    bearer = {"authorization": f"Bearer {srv.keys['alice']}"}  # type: ignore[attr-defined]
    with http(srv) as h:  # a bare caller (curl) with a Bearer key gets orate's shapes
        assert h.get(f"{srv.url}/v1/models", headers=bearer).json()["object"] == "list"
        assert h.get(f"{srv.url}/v1/voices", headers=bearer).json()["object"] == "list"
        # …and the ElevenLabs shape under /elevenlabs, without the SDK's headers
        assert isinstance(h.get(f"{srv.url}/elevenlabs/v1/models", headers=bearer).json(), list)
    prefixed = ElevenLabs(
        api_key=srv.keys["alice"],  # type: ignore[attr-defined]
        base_url=f"{srv.url}/elevenlabs",
        httpx_client=http(srv),
    )
    assert RACHEL in {v.voice_id for v in prefixed.voices.get_all().voices}


def test_user_subscription_counts_characters(el) -> None:
    before = el.user.subscription.get().character_count
    b"".join(
        el.text_to_speech.convert(RACHEL, text="Count these characters.", output_format="pcm_8000")
    )
    after = el.user.subscription.get().character_count
    assert after - before == len("Count these characters.")
    assert el.user.get().subscription.character_count == after


# -- history and isolation ----------------------------------------------------------------


def test_history_list_get_audio_download_delete(srv) -> None:
    el = client(srv, "bob")
    raw = el.text_to_speech.with_raw_response.convert(
        "George", text="History is kept.", output_format="mp3_22050_32"
    )
    with raw as response:
        audio = b"".join(response.data)
        item_id = response.headers["history-item-id"]
    b"".join(el.text_to_speech.convert("George", text="Second item.", output_format="wav_8000"))
    hist = el.history.list(page_size=1)
    assert hist.has_more and len(hist.history) == 1
    newest = hist.history[0]
    assert newest.text == "Second item." and newest.voice_id == "JBFqnCBsd6RMkjVDRZzb"
    older = el.history.list(page_size=10, start_after_history_item_id=newest.history_item_id)
    assert item_id in [h.history_item_id for h in older.history]
    assert all(
        h.voice_name == "George" for h in el.history.list(voice_id="JBFqnCBsd6RMkjVDRZzb").history
    )
    item = el.history.get(item_id)
    assert item.character_count_change_to == len("History is kept.")
    stored = b"".join(el.history.get_audio(item_id))
    assert stored == audio
    zipped = b"".join(el.history.download(history_item_ids=[item_id, newest.history_item_id]))
    with zipfile.ZipFile(io.BytesIO(zipped)) as zf:
        assert sorted(n.rsplit(".", 1)[1] for n in zf.namelist()) == ["mp3", "wav"]
    el.history.delete(item_id)
    with pytest.raises(ApiError) as info:
        el.history.get(item_id)
    assert info.value.status_code == 404
    assert info.value.body["detail"]["status"] == "history_item_not_found"


def test_enable_logging_false_keeps_no_history(srv) -> None:
    with http(srv) as h:
        r = h.post(
            f"{srv.url}/v1/text-to-speech/{RACHEL}?enable_logging=false&output_format=pcm_8000",
            headers=xi(srv),
            json={"text": "Off the record."},
        )
        assert r.status_code == 200 and "history-item-id" not in r.headers
        rid = r.headers["request-id"]
        assert h.get(f"{srv.url}/v1/history/{rid}", headers=xi(srv)).status_code == 404


def test_history_and_voices_are_isolated_between_keys(srv) -> None:
    alice, bob = client(srv, "alice"), client(srv, "bob")
    raw = alice.text_to_speech.with_raw_response.convert(
        RACHEL, text="Alice only.", output_format="pcm_8000"
    )
    with raw as response:
        b"".join(response.data)
        item = response.headers["history-item-id"]
    with http(srv) as h:  # alice saves a voice (orate's own route)
        saved = h.post(
            f"{srv.url}/v1/voices",
            headers={"authorization": f"Bearer {srv.keys['alice']}"},  # type: ignore[attr-defined]
            json={"name": "alice-voice", "params": {"voice": "en-gb", "variant": "f3"}},
        )
        assert saved.status_code == 201
        vid = saved.json()["id"]
    assert vid in {v.voice_id for v in alice.voices.get_all().voices}
    assert alice.voices.get(vid).category == "generated"
    assert vid not in {v.voice_id for v in bob.voices.get_all().voices}
    for call in (
        lambda: bob.history.get(item),
        lambda: bob.voices.get(vid),
        lambda: b"".join(bob.history.get_audio(item)),
        lambda: b"".join(bob.text_to_speech.convert(vid, text="Hi.")),
    ):
        with pytest.raises(ApiError) as info:
            call()
        assert info.value.status_code == 404
    assert item not in {h.history_item_id for h in bob.history.list(page_size=100).history}
    b"".join(alice.text_to_speech.convert(vid, text="My own voice.", output_format="pcm_8000"))
    with pytest.raises(ApiError) as info:
        bob.voices.delete(vid)
    assert info.value.status_code == 404
    alice.voices.delete(vid)
    assert vid not in {v.voice_id for v in alice.voices.get_all().voices}
    with pytest.raises(ApiError) as info:
        alice.voices.delete(RACHEL)
    assert info.value.body["detail"]["status"] == "cannot_delete_premade"


# -- errors -------------------------------------------------------------------------------


def _err(r: httpx.Response, status: int, name: str | None) -> None:
    assert r.status_code == status, r.text
    detail = r.json()["detail"]
    if name is None:
        assert isinstance(detail, list) and detail[0]["loc"]  # FastAPI's 422 list
    else:
        assert detail["status"] == name and detail["message"]


def test_bad_inputs_get_their_status_and_envelope(srv) -> None:
    url = f"{srv.url}/v1/text-to-speech"
    with http(srv) as h:

        def post(path: str, body: dict, who: str = "alice", **q) -> httpx.Response:  # type: ignore
            return h.post(f"{url}/{path}", params=q, json=body, headers=xi(srv, who))

        _err(post("nobody", {"text": "Hi."}), 404, "voice_not_found")
        bad = post(RACHEL, {"text": "Hi."}, output_format="mp3_1_2")
        _err(bad, 400, "invalid_output_format")
        assert "mp3_44100_128" in bad.json()["detail"]["message"]
        _err(
            post(f"{RACHEL}/stream", {"text": "Hi."}, output_format="wav_16000"),
            400,
            "invalid_output_format",
        )
        _err(
            post(f"{RACHEL}/stream/with-timestamps", {"text": "Hi."}, output_format="wav_8000"),
            400,
            "invalid_output_format",
        )
        _err(post(RACHEL, {"text": "x" * 10_001}), 400, "text_too_long")
        _err(post(RACHEL, {"text": "Hi.", "voice_settings": {"stability": 1.5}}), 422, None)
        _err(post(RACHEL, {"text": "Hi.", "voice_settings": {"speed": 0.5}}), 422, None)
        _err(post(RACHEL, {"text": "Hi.", "seed": -1}), 422, None)
        _err(post(RACHEL, {"text": "Hi."}, optimize_streaming_latency=9), 422, None)
        _err(post(RACHEL, {"nope": "no text"}), 422, None)
        _err(post(RACHEL, {"text": "   "}), 400, "empty_text")
        _err(post(RACHEL, {"text": "Hi.", "model_id": "eleven_nope"}), 400, "model_not_found")
        _err(post(RACHEL, {"text": "Hi.", "language_code": "xx"}), 400, "unsupported_language")
        r = h.post(f"{url}/{RACHEL}", json={"text": "Hi."}, headers={"xi-api-key": "wrong"})
        _err(r, 401, "invalid_api_key")
        r = h.post(f"{url}/{RACHEL}", json={"text": "Hi."})
        _err(r, 401, "invalid_api_key")
        _err(h.get(f"{srv.url}/v1/history/nope", headers=xi(srv)), 404, "history_item_not_found")
        _err(h.get(f"{srv.url}/v1/voices/nope", headers=xi(srv)), 404, "voice_not_found")
        # quota: 401 quota_exceeded as upstream (a 429 would be retried by the SDK)
        _err(
            post(RACHEL, {"text": "This text is longer than thirty characters."}, "small"),
            401,
            "quota_exceeded",
        )
        # one request a minute: the second comes well within the 60 s refill on any machine
        # (at 2/min a token came back every 30 s, a bound a busy machine could reach)
        codes = [post(RACHEL, {"text": "Hi."}, "slow", output_format="pcm_8000") for _ in range(2)]
        assert codes[0].status_code == 200
        _err(codes[1], 429, "rate_limit_exceeded")
        assert int(codes[1].headers["retry-after"]) > 0


def test_sdk_raises_typed_errors(el) -> None:
    from elevenlabs.errors import UnprocessableEntityError

    with pytest.raises(ApiError) as info:
        b"".join(el.text_to_speech.convert("nobody", text="Hi."))
    assert info.value.status_code == 404
    assert info.value.body["detail"]["status"] == "voice_not_found"
    with pytest.raises(UnprocessableEntityError):
        el.text_to_speech.convert_with_timestamps(
            RACHEL, text="Hi.", voice_settings=VoiceSettings(stability=2.0)
        )


def test_language_code_and_continuity(srv) -> None:
    with http(srv) as h:
        fr = h.post(
            f"{srv.url}/v1/text-to-speech/{RACHEL}?output_format=pcm_8000",
            headers=xi(srv),
            json={"text": "Bonjour tout le monde.", "language_code": "fr"},
        )
        assert fr.status_code == 200
        first = h.post(
            f"{srv.url}/v1/text-to-speech/{RACHEL}?output_format=pcm_8000",
            headers=xi(srv),
            json={"text": "First part.", "seed": 5},
        )
        rid = first.headers["request-id"]
        nxt = h.post(
            f"{srv.url}/v1/text-to-speech/{RACHEL}?output_format=pcm_8000",
            headers=xi(srv),
            json={
                "text": "Second part.",
                "previous_text": "First part.",
                "next_text": "Third.",
                "previous_request_ids": [rid],
                "apply_text_normalization": "auto",
            },
        )
        assert nxt.status_code == 200
        bearer = {"authorization": f"Bearer {srv.keys['alice']}"}  # type: ignore[attr-defined]
        rows = [
            h.get(f"{srv.url}/v1/history/{r.headers['request-id']}", headers=bearer).json()
            for r in (fr, first, nxt)
        ]
    assert rows[0]["voice_params"][0]["voice"] == "fr-fr"
    # the continuation speaks with the voice the previous request used (its seed's take)
    assert rows[2]["voice_params"] == rows[1]["voice_params"]
    assert rows[1]["voice_params"][0]["pitch"] is not None


def test_pronunciation_dictionaries_and_normalization_switch(el, srv) -> None:
    """``pronunciation_dictionary_locators`` reach the lexicon layer (ASR hears the alias),
    and ``apply_text_normalization: off`` reads the text as written (a distinct rendering)."""
    from .conftest import Recognizer

    with http(srv) as h:
        made = h.post(
            f"{srv.url}/v1/pronunciation-dictionaries",
            headers=xi(srv),
            json={
                "name": "el",
                "rules": [
                    {"string_to_replace": "Kubernetes", "type": "alias", "alias": "green tea"}
                ],
            },
        )
        assert made.status_code == 200, made.text
        pd = made.json()
    locator = [{"pronunciation_dictionary_id": pd["id"], "version_id": pd["version_id"]}]
    said = b"".join(
        el.text_to_speech.convert(
            "Rachel",
            text="I like Kubernetes.",
            output_format="pcm_16000",
            pronunciation_dictionary_locators=locator,
        )
    )
    grammar = Recognizer(["i like green tea", "i like cooper net ease"])
    assert grammar.which(said, "pcm", 16000) == "i like green tea"
    with pytest.raises(ApiError) as info:  # bob cannot use alice's dictionary
        b"".join(
            client(srv, "bob").text_to_speech.convert(
                "Rachel",
                text="I like Kubernetes.",
                output_format="pcm_16000",
                pronunciation_dictionary_locators=locator,
            )
        )
    assert info.value.status_code == 400
    on = el.text_to_speech.convert_with_timestamps(
        "Rachel", text="It costs $4.50 now.", output_format="pcm_16000"
    )
    off = el.text_to_speech.convert_with_timestamps(
        "Rachel",
        text="It costs $4.50 now.",
        output_format="pcm_16000",
        apply_text_normalization="off",
    )
    # both align every character the caller sent; the spoken renderings differ
    assert (
        "".join(on.alignment.characters)
        == "".join(off.alignment.characters)
        == "It costs $4.50 now."
    )
    assert base64.b64decode(on.audio_base_64) != base64.b64decode(off.audio_base_64)


def test_websocket_reads_dictionaries_and_inline_tags_when_asked(srv) -> None:
    """stream-input takes ``pronunciation_dictionary_locators`` in its first message, and
    reads ``<break>`` only with ``enable_ssml_parsing=true`` (as ElevenLabs does)."""
    from .conftest import Recognizer

    with http(srv) as h:
        pd = h.post(
            f"{srv.url}/v1/pronunciation-dictionaries",
            headers=xi(srv),
            json={
                "name": "ws",
                "rules": [
                    {"string_to_replace": "Kubernetes", "type": "alias", "alias": "green tea"}
                ],
            },
        ).json()
    locator = [{"pronunciation_dictionary_id": pd["id"], "version_id": pd["version_id"]}]

    def session(path: str, first: dict, text: str) -> bytes:
        audio = b""
        with _ws(srv, path) as ws:
            ws.send(json.dumps({"text": " ", **first}))
            ws.send(json.dumps({"text": text, "flush": True}))
            ws.send(json.dumps({"text": ""}))
            while True:
                msg = json.loads(ws.recv(timeout=60))
                if msg.get("audio"):
                    audio += base64.b64decode(msg["audio"])
                if msg.get("isFinal"):
                    return audio

    base = f"/v1/text-to-speech/{RACHEL}/stream-input?output_format=pcm_16000"
    said = session(base, {"pronunciation_dictionary_locators": locator}, "I like Kubernetes.")
    grammar = Recognizer(["i like green tea", "i like cooper net ease"])
    assert grammar.which(said, "pcm", 16000) == "i like green tea"
    text = 'Hello <break time="1.5s"/> world.'
    paused = session(base + "&enable_ssml_parsing=true", {}, text)
    plain = session(base, {}, text)  # without the switch the tag is text, read aloud

    def longest_silence(audio: bytes) -> int:
        samples = np.frombuffer(audio, "<i2").astype(np.float32)
        frames = samples[: len(samples) // 160 * 160].reshape(-1, 160)  # 10 ms frames
        longest = run = 0
        for quiet in np.sqrt((frames**2).mean(axis=1)) < 100:
            run = run + 1 if quiet else 0
            longest = max(longest, run)
        return longest

    assert longest_silence(paused) >= 120  # at least 1.2 s where the break was
    assert longest_silence(plain) < 120
