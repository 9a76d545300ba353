"""The OpenAI dialect end to end: a real server on loopback, the official ``openai`` SDK."""

from __future__ import annotations

import base64
import json
import struct
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import openai
import pytest

from .conftest import SENTENCES, Server, buffered_at_most, decode, duration, slow_reader
from .waiting import wait_until

FORMATS = ["mp3", "opus", "aac", "flac", "wav", "pcm"]
TEXT = "The quick brown fox jumps over the lazy dog. It was a cold and windy day."
LONG = " ".join(f"Sentence number {i} tells a little more of the story." for i in range(60))


def speak(client, text: str = TEXT, **kw) -> bytes:
    args = {"model": "tts-1", "voice": "alloy", "input": text, **kw}
    return client.audio.speech.create(**args).content


@pytest.fixture(scope="module")
def reference(openai_client) -> float:
    """Duration of TEXT as plain WAV: what every other format must decode to."""
    return duration(speak(openai_client, response_format="wav"), "wav")


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_decodes_to_the_expected_duration(openai_client, reference, fmt) -> None:
    response = openai_client.audio.speech.with_raw_response.create(
        model="tts-1", voice="alloy", input=TEXT, response_format=fmt
    )
    data = response.content
    expected_type = {
        "mp3": "audio/mpeg",
        "opus": "audio/ogg",
        "aac": "audio/aac",
        "flac": "audio/flac",
        "wav": "audio/wav",
        "pcm": "audio/pcm",
    }[fmt]
    assert response.headers["content-type"] == expected_type
    got = duration(data, fmt)
    assert abs(got - reference) / reference < 0.03, (fmt, got, reference)
    if fmt == "mp3":
        assert data[:2] == b"\xff\xfb" or data[:3] == b"ID3" or data[:2] == b"\xff\xf3"
    if fmt == "opus":
        assert data[:4] == b"OggS" and b"OpusHead" in data[:100]


def test_default_format_is_mp3(openai_client) -> None:
    data = speak(openai_client)
    samples, rate = decode(data, "mp3")
    assert rate in (22050, 24000) and len(samples) > rate


def test_pcm_is_24khz_s16le(openai_client, reference) -> None:
    response = openai_client.audio.speech.with_raw_response.create(
        model="tts-1", voice="alloy", input=TEXT, response_format="pcm"
    )
    assert response.headers["x-orate-sample-rate"] == "24000"
    assert abs(len(response.content) / 2 / 24000 - reference) / reference < 0.02


def test_streamed_wav_uses_the_placeholder_size(openai_client) -> None:
    data = speak(openai_client, response_format="wav")
    assert data[:4] == b"RIFF" and data[8:12] == b"WAVE"
    assert struct.unpack_from("<I", data, 40)[0] == 0xFFFFFFFF


@pytest.mark.parametrize("speed,ratio", [(2.0, 0.5), (0.5, 2.0), (0.25, 4.0), (4.0, 0.25)])
def test_speed_scales_the_duration(openai_client, reference, speed, ratio) -> None:
    got = duration(speak(openai_client, response_format="wav", speed=speed), "wav")
    assert ratio * 0.75 < got / reference < ratio * 1.3, (speed, got / reference)


@pytest.fixture
def paced(tmp_path: Path) -> Iterator[Server]:
    """A server without the response spool: its engines are paced by their readers, which
    is what lets a reader that stops prove the order below (see ``buffered_at_most``).
    With the spool, the engine may finish first, by design (tests/test_slow_clients.py)."""
    srv = Server(tmp_path, workers=1, env={"ORATE_SPOOL_BYTES": "0"})
    yield srv
    srv.stop()


def test_long_text_streams_before_synthesis_ends(paced: Server) -> None:
    """The first audio reaches the client while the server still reports this request's
    synthesis running (ordering read from the server's counters, not from a clock)."""
    server = paced
    # at quarter speed LONG is about four minutes of speech, ~10 MB of WAV: more than every
    # buffer between the engine and a client that stops reading can hold (checked below)
    body = {"model": "tts-1", "voice": "alloy", "input": LONG, "response_format": "wav"}
    body["speed"] = 0.25
    before = server.health()["engines"]
    with (
        slow_reader() as client,
        client.stream("POST", f"{server.url}/v1/audio/speech", json=body) as r,
    ):
        assert r.status_code == 200
        assert "content-length" not in r.headers  # chunked: sent as it is made
        chunks = r.iter_raw()
        size = 0
        while size < 64 << 10:  # past the WAV header: audio itself has arrived
            size += len(next(chunks))
        engines = server.health()["engines"]
        # this request's engine is still at work: the server did not wait for the whole text
        assert engines["busy"] >= 1, engines
        assert engines["completed"] == before["completed"], engines
        count = 1
        for chunk in chunks:
            count += 1
            size += len(chunk)
    assert count > 10
    assert size > 44 + 2 * 22050 * 60 * 3  # over three minutes of audio
    assert size > buffered_at_most(), "too short to prove the order on this machine's buffers"
    wait_until(
        lambda: server.health()["engines"]["completed"] == before["completed"] + 1,
        "the synthesis to be counted as completed once all its audio was sent",
    )


def test_sse_events_parse_and_concatenate_to_the_same_audio(openai_client, reference) -> None:
    with openai_client.audio.speech.with_streaming_response.create(
        model="tts-1", voice="alloy", input=TEXT, response_format="pcm", stream_format="sse"
    ) as response:  # the reference's engine (espeak)
        assert response.headers["content-type"].startswith("text/event-stream")
        raw = response.read().decode()
    frames = [f for f in raw.split("\n\n") if f.strip()]
    events = [json.loads(f.removeprefix("data: ")) for f in frames]
    assert all(f.startswith("data: ") for f in frames)
    deltas = [e for e in events if e["type"] == "speech.audio.delta"]
    assert events[-1]["type"] == "speech.audio.done"
    usage = events[-1]["usage"]
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"] > 0
    pieces = [base64.b64decode(e["audio"], validate=True) for e in deltas]
    assert all(len(p) % 2 == 0 for p in pieces)  # no sample split across events
    assert abs(len(b"".join(pieces)) / 2 / 24000 - reference) / reference < 0.02
    assert "[DONE]" not in raw


def test_sse_timestamps_extension_lists_the_words(openai_client) -> None:
    with openai_client.audio.speech.with_streaming_response.create(
        model="tts-1",
        voice="alloy",
        input=TEXT,
        response_format="mp3",
        stream_format="sse",
        extra_body={"include_timestamp_types": ["word", "phoneme"]},
    ) as response:
        raw = response.read().decode()
    events = [json.loads(f.removeprefix("data: ")) for f in raw.split("\n\n") if f.strip()]
    stamps = [t for e in events if e["type"] == "speech.audio.timestamps" for t in e["timestamps"]]
    words = [t for t in stamps if t["type"] == "word"]
    assert [w["text"] for w in words] == [w.strip(".") for w in TEXT.split()]
    starts = [w["start"] for w in words]
    assert starts == sorted(starts) and all(w["end"] >= w["start"] for w in words)
    for w in words:
        assert TEXT[w["char_start"] : w["char_end"]].strip(".") == w["text"]
    assert any(t["type"] == "phoneme" for t in stamps)


@pytest.mark.parametrize("fmt", ["mp3", "wav", "opus"])
def test_asr_round_trip_hears_the_right_sentence(openai_client, recognizer, fmt) -> None:
    for sentence in SENTENCES[:3]:
        data = speak(openai_client, sentence.capitalize() + ".", response_format=fmt)
        assert recognizer.which(data, fmt) == sentence


def test_concurrent_requests_each_say_their_own_text(openai_client, recognizer) -> None:
    fmts = ["mp3", "wav", "pcm", "flac", "mp3", "wav", "aac", "opus"]
    jobs = list(zip(SENTENCES[:8], fmts, strict=True))
    with ThreadPoolExecutor(8) as pool:
        results = list(
            pool.map(
                lambda job: speak(openai_client, job[0].capitalize() + ".", response_format=job[1]),
                jobs,
            )
        )
    for (sentence, fmt), data in zip(jobs, results, strict=True):
        assert recognizer.which(data, fmt) == sentence, fmt


def test_voices_differ_and_voice_objects_work(openai_client) -> None:
    a = decode(speak(openai_client, "Hello there.", voice="alloy", response_format="wav"), "wav")
    b = decode(speak(openai_client, "Hello there.", voice="onyx", response_format="wav"), "wav")
    c = speak(
        openai_client, "Bonjour tout le monde.", voice={"id": "fr-fr+m3"}, response_format="wav"
    )
    assert len(a[0]) != len(b[0]) or (a[0] != b[0]).any()
    assert duration(c, "wav") > 0.5


def test_client_disconnect_stops_synthesis(server) -> None:
    before = server.health()["engines"]["cancelled"]
    body = {"model": "tts-1", "voice": "alloy", "input": LONG, "response_format": "mp3"}
    with httpx.stream("POST", f"{server.url}/v1/audio/speech", json=body, timeout=60) as r:
        assert r.status_code == 200
        next(r.iter_raw())
    wait_until(
        lambda: server.health()["engines"]["cancelled"] != before,
        "the server to count the synthesis of the client that left as cancelled",
    )
    assert server.health()["engines"]["cancelled"] == before + 1
    assert len(speak_raw(server, "Still serving.")) > 1000


def speak_raw(server, text: str) -> bytes:
    body = {"model": "tts-1", "voice": "alloy", "input": text, "response_format": "wav"}
    return httpx.post(f"{server.url}/v1/audio/speech", json=body, timeout=30).content


def test_models_and_voices_endpoints(openai_client, server) -> None:
    ids = {m.id for m in openai_client.models.list().data}
    assert {"tts-1", "tts-1-hd", "gpt-4o-mini-tts"} <= ids
    model = openai_client.models.retrieve("tts-1")
    assert model.object == "model" and model.owned_by and model.created > 0
    with pytest.raises(openai.NotFoundError) as info:
        openai_client.models.retrieve("whisper-9")
    assert info.value.body["type"] == "no_provider"
    voices = httpx.get(f"{server.url}/v1/audio/voices", params={"model": "tts-1"}).json()
    assert {"alloy", "cedar", "en-us", "fr-fr"} <= set(voices["voices"])
    missing = httpx.get(f"{server.url}/v1/audio/voices", params={"model": "nope"})
    assert missing.status_code == 404 and missing.json()["error"]["type"] == "no_provider"


def test_sdk_without_v1_in_base_url_hits_the_alias(server) -> None:
    client = openai.OpenAI(api_key="k", base_url=server.url, max_retries=0)
    data = client.audio.speech.create(
        model="tts-1", voice="alloy", input="Hi.", response_format="wav"
    ).content
    assert data[:4] == b"RIFF"


BAD = [
    ({"voice": "alloy", "input": "hi"}, 400, "missing_field", "model"),
    ({"model": "tts-1", "voice": "alloy"}, 400, "missing_input", "input"),
    ({"model": "tts-1", "voice": "alloy", "input": ""}, 400, "missing_input", "input"),
    ({"model": "tts-1", "voice": "alloy", "input": " \n\t "}, 400, "missing_input", "input"),
    ({"model": "tts-1", "voice": "alloy", "input": "x" * 4097}, 413, "request_too_large", "input"),
    ({"model": "tts-9", "voice": "alloy", "input": "hi"}, 404, "no_provider", "model"),
    ({"model": "tts-1", "voice": "nobody", "input": "hi"}, 400, "invalid_voice", "voice"),
    ({"model": "tts-1", "voice": "en-us+nope", "input": "hi"}, 400, "invalid_voice", "voice"),
    ({"model": "tts-1", "voice": "", "input": "hi"}, 400, "invalid_voice", "voice"),
    ({"model": "tts-1", "voice": {"id": "../../x"}, "input": "hi"}, 400, "invalid_voice", "voice"),
    ({"model": "tts-1", "voice": 7, "input": "hi"}, 400, "invalid_value", "voice.str"),
    (
        {"model": "tts-1", "voice": "alloy", "input": "hi", "response_format": "ogg"},
        400,
        "invalid_format",
        "response_format",
    ),
    (
        {"model": "tts-1", "voice": "alloy", "input": "hi", "speed": 0.1},
        400,
        "invalid_speed",
        "speed",
    ),
    (
        {"model": "tts-1", "voice": "alloy", "input": "hi", "speed": 4.5},
        400,
        "invalid_speed",
        "speed",
    ),
    (
        {"model": "tts-1", "voice": "alloy", "input": "hi", "speed": "fast"},
        400,
        "invalid_value",
        "speed",
    ),
    (
        {"model": "tts-1", "voice": "alloy", "input": "hi", "stream_format": "ws"},
        400,
        "invalid_value",
        "stream_format",
    ),
    ({"model": "tts-1", "voice": "alloy", "input": 42}, 400, "invalid_value", "input"),
    (
        {
            "model": "tts-1",
            "voice": "alloy",
            "input": '<!DOCTYPE x [<!ENTITY a "b">]><speak>&a;</speak>',
        },
        400,
        "ssml_dtd",
        "input",
    ),
    (
        {"model": "tts-1", "voice": "alloy", "input": "<speak><p>unclosed</speak>"},
        400,
        "invalid_ssml",
        "input",
    ),
]


@pytest.mark.parametrize("body,status,code,param", BAD)
def test_bad_input_gets_status_and_envelope(server, body, status, code, param) -> None:
    r = httpx.post(f"{server.url}/v1/audio/speech", json=body, timeout=30)
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert err["code"] == code and err["param"] == param
    assert err["type"] in (
        "invalid_request_error",
        "missing_input",
        "request_too_large",
        "no_provider",
    )
    assert len(err["message"]) > 10


def test_bad_input_raises_the_typed_sdk_errors(openai_client) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        speak(openai_client, voice="nobody")
    assert info.value.param == "voice" and "nobody" in info.value.message
    with pytest.raises(openai.NotFoundError):
        speak(openai_client, model="nope")
    with pytest.raises(openai.APIStatusError) as too_long:
        speak(openai_client, "word " * 1000)
    assert too_long.value.status_code == 413


@pytest.mark.parametrize(
    "raw,ctype",
    [
        (b"{not json", "application/json"),
        (b"[1, 2]", "application/json"),
        (b"", "application/json"),
        (b"\xff\xfe\x00garbage", "application/json"),
        (b"model=tts-1", "application/x-www-form-urlencoded"),
    ],
)
def test_malformed_bodies_get_a_400_envelope(server, raw, ctype) -> None:
    r = httpx.post(
        f"{server.url}/v1/audio/speech", content=raw, headers={"content-type": ctype}, timeout=30
    )
    assert r.status_code == 400, r.text
    assert r.json()["error"]["message"]


def test_odd_but_valid_text_is_spoken(server) -> None:
    for text in ["😀😀", "Привет, мир.", "a\x00b\x07c", "...!?", "1234567890", "<notssml>"]:
        body = {"model": "tts-1", "voice": "alloy", "input": text, "response_format": "wav"}
        r = httpx.post(f"{server.url}/v1/audio/speech", json=body, timeout=30)
        assert r.status_code in (200, 400), (text, r.text)
        if r.status_code == 400:
            assert r.json()["error"]["code"] == "missing_input", text
        else:
            assert r.content[:4] == b"RIFF"


def test_unknown_routes_answer_in_the_envelope(server) -> None:
    r = httpx.get(f"{server.url}/v1/nothing-here")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    r = httpx.get(f"{server.url}/v1/audio/speech")
    assert r.status_code == 405 and r.json()["error"]["message"]
