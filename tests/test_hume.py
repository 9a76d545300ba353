"""The Hume Octave dialect, driven by the official ``hume`` SDK (raw HTTP where needed)."""

from __future__ import annotations

import base64
import json
import secrets

import httpx
import pytest
from hume import HumeClient
from hume.core.api_error import ApiError as HumeApiError
from hume.tts import (
    FormatMp3,
    FormatPcm,
    FormatWav,
    PostedContextWithGenerationId,
    PostedUtterance,
    PostedUtteranceVoiceWithId,
    PostedUtteranceVoiceWithName,
)

from .conftest import SENTENCES, decode, duration
from .waiting import wait_until

TEXT = "The quick brown fox jumps over the lazy dog. It was a cold and windy day."


@pytest.fixture(scope="module")
def hume(server) -> HumeClient:
    return HumeClient(api_key="test-key", base_url=server.url)


def alloy() -> PostedUtteranceVoiceWithName:
    return PostedUtteranceVoiceWithName(name="alloy", provider="HUME_AI")


def test_synthesize_json_with_word_and_phoneme_timestamps(hume) -> None:
    result = hume.tts.synthesize_json(
        utterances=[PostedUtterance(text=TEXT, voice=alloy())],
        format=FormatWav(),
        include_timestamp_types=["word", "phoneme"],
        version="2",
    )
    assert result.request_id
    gen = result.generations[0]
    audio = base64.b64decode(gen.audio)
    assert gen.encoding.format == "wav" and gen.encoding.sample_rate == 48000
    assert gen.file_size == len(audio)
    samples, rate = decode(audio, "wav")
    assert rate == 48000 and abs(len(samples) / rate - gen.duration) < 0.01
    snippets = gen.snippets[0]
    assert [s.text for s in snippets] == [
        "The quick brown fox jumps over the lazy dog.",
        "It was a cold and windy day.",
    ]
    words = [t for s in snippets for t in s.timestamps if t.type == "word"]
    assert [w.text for w in words] == [w.strip(".") for w in TEXT.split()]
    begins = [w.time.begin for w in words]
    assert begins == sorted(begins)
    assert all(0 <= w.time.begin <= w.time.end <= gen.duration * 1000 + 1 for w in words)
    assert any(t.type == "phoneme" for s in snippets for t in s.timestamps)
    for s in snippets:
        assert s.generation_id == gen.generation_id and s.utterance_index == 0
        assert decode(base64.b64decode(s.audio), "wav")[1] == 48000


def test_json_stream_with_strip_headers_concatenates_to_one_file(hume, recognizer) -> None:
    chunks = list(
        hume.tts.synthesize_json_streaming(
            utterances=[
                PostedUtterance(text="Open the window and let the fresh air in.", voice=alloy())
            ],
            format=FormatMp3(),
            strip_headers=True,
            include_timestamp_types=["word"],
        )
    )
    audio = [c for c in chunks if getattr(c, "type", "audio") == "audio"]
    stamps = [c for c in chunks if getattr(c, "type", None) == "timestamp"]
    assert audio and audio[-1].is_last_chunk and not any(c.is_last_chunk for c in audio[:-1])
    assert [c.chunk_index for c in audio] == list(range(len(audio)))
    data = b"".join(base64.b64decode(c.audio) for c in audio)
    assert recognizer.which(data, "mp3") == "open the window and let the fresh air in"
    assert [s.timestamp.text for s in stamps][:3] == ["Open", "the", "window"]
    assert {c.snippet_id for c in audio} == {s.snippet_id for s in stamps}


@pytest.mark.parametrize("fmt,cls", [("mp3", FormatMp3), ("wav", FormatWav), ("pcm", FormatPcm)])
def test_file_endpoints_in_every_format(hume, recognizer, fmt, cls) -> None:
    utt = [PostedUtterance(text="Turn left at the next traffic light.", voice=alloy())]
    whole = b"".join(hume.tts.synthesize_file(utterances=utt, format=cls()))
    streamed = b"".join(
        hume.tts.synthesize_file_streaming(utterances=utt, format=cls(), strip_headers=True)
    )
    for data in (whole, streamed):
        assert recognizer.which(data, fmt, pcm_rate=48000) == "turn left at the next traffic light"
    assert abs(duration(whole, fmt, 48000) - duration(streamed, fmt, 48000)) < 0.1
    if fmt == "wav":
        assert int.from_bytes(whole[40:44], "little") == len(whole) - 44


def test_wav_chunks_are_files_of_their_own_without_strip_headers(server) -> None:
    body = {
        "utterances": [{"text": LONG_TEXT, "voice": {"name": "alloy"}}],
        "format": {"type": "wav"},
    }
    r = httpx.post(f"{server.url}/v0/tts/stream/json", json=body, timeout=60)
    lines = [json.loads(x) for x in r.text.splitlines()]
    chunks = [base64.b64decode(x["audio"]) for x in lines if x["type"] == "audio"]
    assert len(chunks) > 2 and all(c[:4] == b"RIFF" for c in chunks)
    assert all(int.from_bytes(c[40:44], "little") == len(c) - 44 for c in chunks)


LONG_TEXT = " ".join(s.capitalize() + "." for s in SENTENCES[:6])


def test_num_generations_gives_different_audio(hume) -> None:
    result = hume.tts.synthesize_json(
        utterances=[PostedUtterance(text="Hello there, how are you?", voice=alloy())],
        num_generations=3,
        format=FormatPcm(),
    )
    audios = [base64.b64decode(g.audio) for g in result.generations]
    ids = {g.generation_id for g in result.generations}
    assert len(ids) == 3 and len(set(audios)) == 3


def test_designed_voices_differ_per_generation(hume) -> None:
    result = hume.tts.synthesize_json(
        utterances=[
            PostedUtterance(
                text="Welcome aboard.", description="a bright young woman, speaking quickly"
            )
        ],
        num_generations=2,
        format=FormatPcm(),
    )
    assert len({g.audio for g in result.generations}) == 2


def test_context_generation_keeps_the_voice(hume, server) -> None:
    first = hume.tts.synthesize_json(
        utterances=[
            PostedUtterance(text="Good evening.", description="a deep, slow, older British man")
        ]
    )
    gen_id = first.generations[0].generation_id
    record = httpx.get(f"{server.url}/v1/history/{gen_id}").json()
    follow = hume.tts.synthesize_json(
        utterances=[PostedUtterance(text="Shall we begin?")],
        context=PostedContextWithGenerationId(generation_id=gen_id),
    )
    follow_id = follow.generations[0].generation_id
    record2 = httpx.get(f"{server.url}/v1/history/{follow_id}").json()
    assert record2["voice_params"] == record["voice_params"]
    assert record["voice_params"][0]["voice"] == "en-gb"


def test_voice_carries_over_and_trailing_silence(hume) -> None:
    result = hume.tts.synthesize_json(
        utterances=[
            PostedUtterance(
                text="One.",
                voice=PostedUtteranceVoiceWithName(name="onyx", provider="HUME_AI"),
                trailing_silence=1.0,
            ),
            PostedUtterance(text="Two."),
        ],
        format=FormatWav(),
    )
    gen = result.generations[0]
    assert len(gen.snippets) == 2 and all(len(s) == 1 for s in gen.snippets)
    first = base64.b64decode(gen.snippets[0][0].audio)
    samples, rate = decode(first, "wav")
    assert abs(samples[-int(0.9 * rate) :]).max() < 50  # a second of silence ends it


def test_split_utterances_false_gives_one_snippet_each(hume) -> None:
    result = hume.tts.synthesize_json(
        utterances=[
            PostedUtterance(text="First sentence. Second sentence.", voice=alloy()),
            PostedUtterance(text="Third one here."),
        ],
        split_utterances=False,
    )
    snippets = result.generations[0].snippets
    assert [[s.text for s in group] for group in snippets] == [
        ["First sentence. Second sentence."],
        ["Third one here."],
    ]


def test_voices_create_list_use_delete(hume, server) -> None:
    gen = hume.tts.synthesize_json(
        utterances=[PostedUtterance(text="Remember me.", description="a calm Scottish lady")]
    ).generations[0]
    name = f"lady-{secrets.token_hex(3)}"
    created = hume.tts.voices.create(generation_id=gen.generation_id, name=name)
    assert created.name == name and created.provider == "CUSTOM_VOICE"
    mine = [v.name for v in hume.tts.voices.list(provider="CUSTOM_VOICE")]
    assert name in mine
    builtin = list(hume.tts.voices.list(provider="HUME_AI", page_size=25))
    assert len(builtin) >= 141 + 13  # the pager walked every page to the empty one
    again = hume.tts.synthesize_json(
        utterances=[
            PostedUtterance(
                text="Remember me.",
                voice=PostedUtteranceVoiceWithName(name=name, provider="CUSTOM_VOICE"),
            )
        ]
    )
    by_id = hume.tts.synthesize_json(
        utterances=[
            PostedUtterance(text="Remember me.", voice=PostedUtteranceVoiceWithId(id=created.id))
        ]
    )
    assert again.generations[0].audio and by_id.generations[0].audio
    hume.tts.voices.delete(name=name)
    assert name not in [v.name for v in hume.tts.voices.list(provider="CUSTOM_VOICE")]
    with pytest.raises(HumeApiError) as info:
        hume.tts.synthesize_json(
            utterances=[
                PostedUtterance(
                    text="Hi.",
                    voice=PostedUtteranceVoiceWithName(name=name, provider="CUSTOM_VOICE"),
                )
            ]
        )
    assert info.value.status_code == 400 and name in str(info.value.body)


def test_voice_pages_past_the_end_are_empty(server) -> None:
    r = httpx.get(
        f"{server.url}/v0/tts/voices",
        params={"provider": "HUME_AI", "page_number": 999, "page_size": 10},
    )
    body = r.json()
    assert r.status_code == 200 and body["voices_page"] == [] and body["total_pages"] >= 16
    french = httpx.get(
        f"{server.url}/v0/tts/voices",
        params={"provider": "HUME_AI", "filter_tag": "language:fr", "page_size": 100},
    ).json()
    assert french["voices_page"] and all(v["id"].startswith("fr") for v in french["voices_page"])
    missing = httpx.get(f"{server.url}/v0/tts/voices")
    assert missing.status_code == 422 and isinstance(missing.json()["detail"], list)


def test_websocket_pieces_flush_and_close(hume, recognizer) -> None:
    audio_json, binary, stamps = [], [], []
    with hume.tts.stream_input.connect(
        format_type="pcm", strip_headers=True, include_timestamp_types=["word"], instant_mode=True
    ) as socket:
        for piece in ("She sells ", "sea shells ", "by the sea shore."):
            socket._send({"text": piece, "voice": {"name": "alloy", "provider": "HUME_AI"}})
        socket._send({"flush": True})
        socket._send({"text": "Please call me back tomorrow morning."})
        socket._send({"close": True})
        for message in socket:
            if isinstance(message, bytes):
                binary.append(message)
            elif message.type == "audio":
                audio_json.append(message)
            else:
                stamps.append(message)
    assert len(binary) == len(audio_json) > 0
    assert b"".join(binary) == b"".join(base64.b64decode(m.audio) for m in audio_json)
    by_generation: dict[str, bytes] = {}
    for m, raw in zip(audio_json, binary, strict=True):
        by_generation[m.generation_id] = by_generation.get(m.generation_id, b"") + raw
    heard = [recognizer.which(a, "pcm", pcm_rate=48000) for a in by_generation.values()]
    assert heard == [
        "she sells sea shells by the sea shore",
        "please call me back tomorrow morning",
    ]
    assert [s.timestamp.text for s in stamps][:2] == ["She", "sells"]


def test_websocket_trailing_slash_and_bad_message(server) -> None:
    from websockets.exceptions import ConnectionClosedError
    from websockets.sync.client import connect

    url = server.url.replace("http", "ws") + "//v0/tts/stream/input?no_binary=True"
    with connect(url) as ws:
        ws.send(json.dumps({"text": "Hi there.", "flush": True}))
        first = json.loads(ws.recv(timeout=30))
        assert first["type"] == "audio" and first["audio_format"] == "mp3"
        ws.send("not json")
        with pytest.raises(ConnectionClosedError) as info:
            while True:
                ws.recv(timeout=30)
    assert info.value.rcvd.code == 1008 and "invalid message" in info.value.rcvd.reason


def test_websocket_unknown_voice_closes_with_policy(server) -> None:
    from websockets.exceptions import ConnectionClosedError
    from websockets.sync.client import connect

    url = server.url.replace("http", "ws") + "/v0/tts/stream/input"
    with connect(url) as ws:
        ws.send(json.dumps({"text": "Hi.", "voice": {"name": "nobody"}, "flush": True}))
        with pytest.raises(ConnectionClosedError) as info:
            while True:
                ws.recv(timeout=30)
    assert info.value.rcvd.code == 1008 and "nobody" in info.value.rcvd.reason


@pytest.mark.parametrize(
    "body,field",
    [
        ({"utterances": [{"text": "hi"}], "instant_mode": True}, "instant_mode"),
        (
            {
                "utterances": [{"text": "hi", "voice": {"name": "alloy"}}],
                "instant_mode": True,
                "num_generations": 2,
            },
            "instant_mode",
        ),
    ],
)
def test_instant_mode_rules(server, body, field) -> None:
    r = httpx.post(f"{server.url}/v0/tts/stream/json", json=body, timeout=60)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", field]
    assert "instant_mode" in r.json()["detail"][0]["msg"]
    ok = {**body, "instant_mode": False}
    assert httpx.post(f"{server.url}/v0/tts/stream/json", json=ok, timeout=60).status_code == 200
    on_json = httpx.post(
        f"{server.url}/v0/tts",
        json={"utterances": [{"text": "hi", "voice": {"name": "alloy"}}], "instant_mode": True},
        timeout=60,
    )
    assert on_json.status_code == 422


BAD = [
    ({}, 422, "utterances"),
    ({"utterances": []}, 422, "utterances"),
    ({"utterances": [{"text": "x" * 5001}]}, 422, "text"),
    ({"utterances": [{"text": "hi", "description": "d" * 1001}]}, 422, "description"),
    ({"utterances": [{"text": "hi", "speed": 3}]}, 422, "speed"),
    ({"utterances": [{"text": "hi", "speed": 0.1}]}, 422, "speed"),
    ({"utterances": [{"text": "hi", "trailing_silence": 9}]}, 422, "trailing_silence"),
    ({"utterances": [{"text": "hi"}], "num_generations": 6}, 422, "num_generations"),
    ({"utterances": [{"text": "hi"}], "format": {"type": "ogg"}}, 422, "format"),
    ({"utterances": [{"text": "hi"}], "version": "3"}, 422, "version"),
    ({"utterances": [{"text": "hi", "voice": {"name": "nobody"}}]}, 400, "invalid_voice"),
    ({"utterances": [{"text": "   "}]}, 400, "missing_input"),
    (
        {"utterances": [{"text": "hi"}], "context": {"generation_id": "f" * 32}},
        400,
        "generation_not_found",
    ),
]


@pytest.mark.parametrize("body,status,what", BAD)
def test_bad_input_gets_hume_shaped_errors(server, body, status, what) -> None:
    r = httpx.post(f"{server.url}/v0/tts", json=body, timeout=60)
    assert r.status_code == status, r.text
    payload = r.json()
    if status == 422:
        assert isinstance(payload["detail"], list)
        assert any(what in [str(p) for p in d["loc"]] for d in payload["detail"])
    else:
        assert payload["code"] == what and isinstance(payload["code"], str)
        assert payload["error"] and payload["message"]


def test_version_accepts_string_and_int(server) -> None:
    # Octave's version picks the model (1 → octave-1; 2 or none → octave-2), as a string
    # or a number
    expected = {"2": "octave-2", 2: "octave-2", "1": "octave-1", 1: "octave-1", None: "octave-2"}
    for version, model in expected.items():
        body = {"utterances": [{"text": "Hi.", "voice": {"name": "alloy"}}], "version": version}
        r = httpx.post(f"{server.url}/v0/tts", json=body, timeout=60)
        assert r.status_code == 200, version
        gen_id = r.json()["generations"][0]["generation_id"]
        url = f"{server.url}/v1/history/{gen_id}"
        row = wait_until(
            lambda url=url: (h := httpx.get(url)).status_code == 200 and h.json(),
            f"generation {gen_id} in the history",
        )
        assert row["model"] == model, version


def test_sdk_raises_typed_errors(hume) -> None:
    from hume.tts.errors import UnprocessableEntityError

    with pytest.raises(UnprocessableEntityError):
        hume.tts.synthesize_json(utterances=[PostedUtterance(text="x" * 5001)])
