"""The library end to end: history, audio URLs, the cache, voices, usage, persistence,
and the PostgreSQL and S3 back ends."""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from orate.config import Settings
from orate.engines.registry import EngineRegistry
from orate.library.library import Library
from orate.speech.design import apply_directions, design_voice

from .conftest import Server, decode, duration, free_port
from .waiting import accepts, wait_for, wait_until


def unique(text: str) -> str:
    """A text no other test has cached."""
    return f"{text} Number {secrets.randbelow(10**9)}."


def speak(url: str, text: str, **kw) -> httpx.Response:
    body = {"model": "tts-1", "voice": "alloy", "input": text, "response_format": "mp3", **kw}
    r = httpx.post(f"{url}/v1/audio/speech", json=body, timeout=60)
    assert r.status_code == 200, r.text
    return r


def test_every_generation_is_recorded_and_its_url_serves_the_audio(server) -> None:
    text = unique("The weather is cold and windy today.")
    r = speak(server.url, text, response_format="mp3")
    gen_id = r.headers["x-orate-generation-id"]
    assert len(gen_id) == 32 and int(gen_id, 16) >= 0  # 128 random bits
    record = httpx.get(f"{server.url}/v1/history/{gen_id}").json()
    assert record["text"] == text and record["model"] == "tts-1" and record["format"] == "mp3"
    assert record["voice"] == "en-us+f2" and record["voice_params"][0]["variant"] == "f2"
    # charged as spoken: "Number 825684702." is read (and counted) as words
    assert record["dialect"] == "openai" and record["characters"] > len(text)
    assert record["cost"] == 0.0  # local engines are free unless priced (test_fresh.py)
    assert abs(record["duration"] - duration(r.content, "mp3")) < 0.2
    audio = httpx.get(record["audio_url"])
    assert audio.status_code == 200 and audio.headers["content-type"] == "audio/mpeg"
    assert audio.content == r.content


def test_wav_files_get_exact_sizes_when_served(server) -> None:
    r = speak(server.url, unique("Open the window."), response_format="wav")
    url = f"{server.url}{r.headers['x-orate-audio-url']}"
    served = httpx.get(url).content
    assert served[44:] == r.content[44:]
    assert int.from_bytes(served[40:44], "little") == len(served) - 44
    assert abs(duration(served, "wav") - duration(r.content, "wav")) < 0.01


def test_range_and_etag(server) -> None:
    r = speak(server.url, unique("My favorite color is green."), response_format="mp3")
    url = f"{server.url}{r.headers['x-orate-audio-url']}"
    full = httpx.get(url)
    data, etag = full.content, full.headers["etag"]
    assert full.headers["accept-ranges"] == "bytes"
    for header, expected in [
        ("bytes=0-99", data[:100]),
        ("bytes=100-", data[100:]),
        ("bytes=-50", data[-50:]),
        (f"bytes=10-{len(data) + 99}", data[10:]),
    ]:
        part = httpx.get(url, headers={"Range": header})
        assert part.status_code == 206 and part.content == expected, header
        first = len(data) - 50 if header == "bytes=-50" else int(header[6:].split("-")[0])
        assert (
            part.headers["content-range"]
            == f"bytes {first}-{first + len(expected) - 1}/{len(data)}"
        )
    bad = httpx.get(url, headers={"Range": f"bytes={len(data)}-"})
    assert bad.status_code == 416 and bad.headers["content-range"] == f"bytes */{len(data)}"
    assert httpx.get(url, headers={"If-None-Match": etag}).status_code == 304
    stale = httpx.get(url, headers={"Range": "bytes=0-9", "If-Range": '"other"'})
    assert stale.status_code == 200 and stale.content == data
    head = httpx.head(url)
    assert head.status_code == 200 and int(head.headers["content-length"]) == len(data)


def test_deleted_generation_url_answers_404(server) -> None:
    r = speak(server.url, unique("Turn left at the light."))
    gen_id = r.headers["x-orate-generation-id"]
    url = f"{server.url}/v1/audio/files/{gen_id}"
    assert httpx.get(url).status_code == 200
    gone = httpx.delete(f"{server.url}/v1/history/{gen_id}")
    assert gone.status_code == 200 and gone.json()["deleted"] is True
    assert httpx.get(url).status_code == 404
    assert httpx.get(f"{server.url}/v1/history/{gen_id}").status_code == 404
    assert httpx.delete(f"{server.url}/v1/history/{gen_id}").status_code == 404


@pytest.mark.parametrize("bad_id", ["../../etc/passwd", "0" * 32, "x" * 500, "%2e%2e%2f"])
def test_bad_file_ids_are_404(server, bad_id: str) -> None:
    r = httpx.get(f"{server.url}/v1/audio/files/{bad_id}")
    assert r.status_code == 404 and r.json()["error"]["message"]


def test_history_lists_newest_first_with_paging(server) -> None:
    ids = [
        speak(server.url, unique(f"Entry {n}.")).headers["x-orate-generation-id"] for n in range(3)
    ]
    page = wait_for(
        lambda: httpx.get(f"{server.url}/v1/history", params={"limit": 2}).json(),
        lambda p: p["data"] and p["data"][0]["id"] == ids[-1],
        "the newest generation first in the history",
    )
    assert [g["id"] for g in page["data"]] == [ids[2], ids[1]] and page["has_more"]
    nxt = httpx.get(f"{server.url}/v1/history", params={"limit": 2, "offset": 2}).json()
    assert nxt["data"][0]["id"] == ids[0]
    assert httpx.get(f"{server.url}/v1/history", params={"limit": 0}).status_code == 400


def test_store_false_keeps_the_record_but_not_the_audio(server) -> None:
    r = speak(server.url, unique("Keep nothing."), store=False)
    gen_id = r.headers["x-orate-generation-id"]
    record = wait_for(
        lambda: httpx.get(f"{server.url}/v1/history/{gen_id}"),
        lambda x: x.status_code == 200,
        "the generation's history record",
    ).json()
    assert record["audio_url"] is None
    assert httpx.get(f"{server.url}/v1/audio/files/{gen_id}").status_code == 404


def test_cache_hit_is_byte_identical_and_marked(server) -> None:
    text = unique("A cup of hot tea would be nice.")
    for fmt in ("mp3", "wav", "opus"):
        first = speak(server.url, text, response_format=fmt)
        assert first.headers["x-orate-cache"] == "miss"
        second = wait_for(
            lambda fmt=fmt: speak(server.url, text, response_format=fmt),
            lambda x: x.headers["x-orate-cache"] == "hit",
            f"the {fmt} rendering to come from the cache",
        )
        assert second.headers["x-orate-cache"] == "hit"
        assert second.content == first.content, fmt
    other_voice = speak(server.url, text, voice="onyx")
    assert other_voice.headers["x-orate-cache"] == "miss"


def test_cached_sse_replays_timestamps(server) -> None:
    text = unique("Please call me back tomorrow.")
    body = {
        "model": "tts-1",
        "voice": "alloy",
        "input": text,
        "response_format": "pcm",
        "stream_format": "sse",
        "include_timestamp_types": ["word"],
    }

    def run() -> httpx.Response:
        return httpx.post(f"{server.url}/v1/audio/speech", json=body, timeout=60)

    first = run()
    second = wait_for(
        run, lambda x: x.headers["x-orate-cache"] == "hit", "the SSE request to hit the cache"
    )
    assert second.headers["x-orate-cache"] == "hit"
    assert second.text == first.text and "speech.audio.timestamps" in second.text


def test_identical_concurrent_requests_synthesize_once(server) -> None:
    text = unique("We will meet at the train station at noon.") * 3
    idle = wait_for(
        lambda: server.health()["engines"],  # earlier tests' work has finished
        lambda h: h["busy"] == 0 and h["waiting"] == 0,
        "the engines to be idle",
    )
    before = idle["completed"]
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: speak(server.url, text, response_format="wav"), range(8)))
    after = wait_for(
        lambda: server.health()["engines"], lambda h: h["busy"] == 0, "the engines to be idle"
    )["completed"]
    assert after - before == 1
    bodies = {r.content for r in results}
    assert len(bodies) == 1 and len(results[0].content) > 44
    assert {r.headers["x-orate-cache"] for r in results} <= {"miss", "shared", "hit"}
    assert sum(r.headers["x-orate-cache"] == "miss" for r in results) == 1


def test_custom_voices_from_params_generation_and_description(server, openai_client) -> None:
    name = f"narrator-{secrets.token_hex(4)}"
    created = httpx.post(
        f"{server.url}/v1/voices",
        json={"name": name, "params": {"voice": "en-gb", "variant": "m3", "pitch": 30}},
        timeout=60,
    )
    assert created.status_code == 201, created.text
    voice = created.json()
    assert voice["id"].startswith("voice_") and voice["params"]["pitch"] == 30
    dup = httpx.post(f"{server.url}/v1/voices", json={"name": name, "params": {}}, timeout=60)
    assert dup.status_code == 409 and "already" in dup.json()["error"]["message"]
    by_name = openai_client.audio.speech.with_raw_response.create(
        model="tts-1", voice=name, input="Hello there.", response_format="wav"
    )
    by_id = openai_client.audio.speech.with_raw_response.create(
        model="tts-1", voice={"id": voice["id"]}, input="Hello there.", response_format="wav"
    )
    assert by_name.headers["x-orate-voice"] == by_id.headers["x-orate-voice"] == "en-gb+m3"
    gen_id = by_name.headers["x-orate-generation-id"]
    wait_for(
        lambda: httpx.get(f"{server.url}/v1/history/{gen_id}"),
        lambda x: x.status_code == 200,
        "the generation's history record",
    )
    copy = httpx.post(
        f"{server.url}/v1/voices",
        json={"name": name + "-copy", "generation_id": gen_id},
        timeout=60,
    ).json()
    assert copy["params"] == voice["params"] and copy["source"] == "generation"
    designed = httpx.post(
        f"{server.url}/v1/voices",
        json={"name": name + "-design", "description": "a bright, fast young woman"},
        timeout=60,
    ).json()
    assert designed["source"] == "design" and designed["gender"] == "female"
    listed = httpx.get(f"{server.url}/v1/voices", params={"provider": "custom"}).json()
    assert {name, name + "-copy", name + "-design"} <= {v["name"] for v in listed["voices"]}
    builtin = httpx.get(
        f"{server.url}/v1/voices", params={"provider": "builtin", "language": "fr"}
    ).json()
    assert builtin["voices"] and all(v["language"].startswith("fr") for v in builtin["voices"])
    paged = httpx.get(f"{server.url}/v1/voices", params={"limit": 5, "offset": 5}).json()
    assert len(paged["voices"]) == 5 and paged["total"] > 141
    assert httpx.get(f"{server.url}/v1/voices/{name}").json()["id"] == voice["id"]
    assert httpx.delete(f"{server.url}/v1/voices/{name}").status_code == 200
    assert httpx.get(f"{server.url}/v1/voices/{name}").status_code == 404
    gone = httpx.post(
        f"{server.url}/v1/audio/speech",
        json={"model": "tts-1", "voice": name, "input": "Hi."},
        timeout=60,
    )
    assert gone.status_code == 400 and gone.json()["error"]["param"] == "voice"


@pytest.mark.parametrize(
    "body,status",
    [
        ({"name": "x"}, 400),
        ({"name": "x", "params": {"voice": "elvish"}}, 400),
        ({"name": "x", "params": {"voice": "en-us", "pitch": 101}}, 400),
        ({"name": "x", "generation_id": "f" * 32}, 404),
        ({"name": "", "description": "calm"}, 400),
        ({"name": "x", "description": "d" * 1001}, 400),
    ],
)
def test_bad_voice_requests(server, body, status) -> None:
    r = httpx.post(f"{server.url}/v1/voices", json=body, timeout=60)
    assert r.status_code == status, r.text
    assert r.json()["error"]["message"]


def test_instructions_act_on_the_voice(server) -> None:
    text = unique("The children are playing in the garden.")
    plain = speak(server.url, text, response_format="wav")
    slow = speak(server.url, text, response_format="wav", instructions="speak slowly and sadly")
    whisper = speak(server.url, text, response_format="wav", instructions="whisper")
    assert duration(slow.content, "wav") > duration(plain.content, "wav") * 1.1
    assert whisper.headers["x-orate-voice"] == "en-us+whisperf"


def test_usage_adds_up_by_day_and_model(server) -> None:
    before = httpx.get(f"{server.url}/v1/usage", params={"group_by": "model"}).json()
    text = unique("Count me.")
    speak(server.url, text, model="tts-1-hd")
    after = wait_for(
        lambda: httpx.get(f"{server.url}/v1/usage", params={"group_by": "model"}).json(),
        lambda u: u["total"]["requests"] > before["total"]["requests"],
        "the request counted in the usage",
    )
    hd = next(g for g in after["data"] if g["model"] == "tts-1-hd")
    old = next((g for g in before["data"] if g["model"] == "tts-1-hd"), {"cost": 0.0})
    assert hd["cost"] == old["cost"] == 0.0  # free by default; priced in test_fresh.py
    today = datetime.now(UTC).date().isoformat()
    days = httpx.get(f"{server.url}/v1/usage", params={"from": today}).json()
    assert days["data"][-1]["day"] == today and days["data"][-1]["requests"] >= 1
    future = httpx.get(f"{server.url}/v1/usage", params={"from": "2999-01-01"}).json()
    assert future["data"] == [] and future["total"]["requests"] == 0
    bad = httpx.get(f"{server.url}/v1/usage", params={"from": "yesterday"})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "from"


def test_restart_keeps_generations_voices_cache_and_files(tmp_path: Path) -> None:
    first = Server(tmp_path, workers=1)
    try:
        text = unique("Keep this across a restart.")
        r = speak(first.url, text, response_format="mp3")
        gen_id = r.headers["x-orate-generation-id"]
        voice = httpx.post(
            f"{first.url}/v1/voices", json={"name": "kept", "params": {}}, timeout=60
        ).json()
        wait_for(
            lambda: httpx.get(f"{first.url}/v1/cache").json()["entries"], bool, "a cache entry"
        )
    finally:
        first.stop()
    second = Server(tmp_path, workers=1)
    try:
        assert httpx.get(f"{second.url}/v1/history/{gen_id}").json()["text"] == text
        assert httpx.get(f"{second.url}/v1/audio/files/{gen_id}").content == r.content
        assert httpx.get(f"{second.url}/v1/voices/kept").json()["id"] == voice["id"]
        again = speak(second.url, text, response_format="mp3")
        assert again.headers["x-orate-cache"] == "hit" and again.content == r.content
    finally:
        second.stop()


@pytest.mark.fast
def test_voice_design_table() -> None:
    engine = EngineRegistry().engine("espeak")
    cases = {
        "a deep, slow, older British man": dict(
            voice="en-gb", gender="male", pitch_max=30, rate_max=0.9
        ),
        "a bright, fast young woman, whispering": dict(
            voice="en-us", variant="whisperf", pitch_min=60, rate_min=1.1
        ),
        "a calm Scottish lady": dict(voice="en-gb-scotland", gender="female", range_max=35),
        "an excited little girl": dict(gender="female", pitch_min=70, range_min=65),
        "a raspy old pirate": dict(variant="croak"),
        "a French woman speaking softly": dict(voice="fr-fr", gender="female"),
        "a loud New York cab driver": dict(voice="en-us-nyc"),
    }
    for text, want in cases.items():
        p = design_voice(text, engine)
        assert p == design_voice(text, engine), "the same description gives the same voice"
        gender = engine.variants[p.variant.lower()][1]
        assert want.get("voice", p.voice) == p.voice, text
        assert want.get("variant", p.variant) == p.variant, text
        assert want.get("gender", gender) == gender, text
        assert p.pitch <= want.get("pitch_max", 100) and p.pitch >= want.get("pitch_min", 0), text
        assert want.get("rate_min", 0) <= p.rate <= want.get("rate_max", 9), text
        assert want.get("range_min", 0) <= p.pitch_range <= want.get("range_max", 100), text
    seeds = {design_voice("a calm narrator", engine, seed=s) for s in range(6)}
    assert len(seeds) >= 4, "seeds give distinct variations"
    calm = design_voice("a calm Scottish lady", engine)
    assert apply_directions(calm, "whisper", engine).variant == "whisperf"
    assert apply_directions(calm, "slower", engine).rate < calm.rate
    assert apply_directions(calm, "very excited", engine).pitch_range > calm.pitch_range + 30
    assert apply_directions(calm, "", engine) == calm


def test_retention_prunes_old_and_oversized(tmp_path: Path) -> None:
    async def scenario() -> None:
        settings = Settings(data_dir=tmp_path)
        lib = await Library.open(settings, background=False)
        try:
            now = datetime.now(UTC)
            for n, age in enumerate([40, 20, 1, 0]):
                gid = f"{n:032x}"
                lib.generations.record(
                    dict(
                        id=gid,
                        owner="local",
                        dialect="t",
                        model="m",
                        engine="e",
                        voice="v",
                        voice_params=[],
                        text="t",
                        characters=1,
                        speed=1.0,
                        format="mp3",
                        content_type="audio/mpeg",
                        sample_rate=22050,
                        duration=1.0,
                        bytes=1000,
                        cost=0.0,
                        currency="USD",
                        cache_key=None,
                        cache_hit=False,
                        blob_key=f"audio/{gid}",
                        meta={},
                        created_at=now - timedelta(days=age),
                    ),
                    b"x" * 1000,
                )
            await lib.generations.flushed()
            assert await lib.generations.prune(30, None) == 1
            assert await lib.generations.prune(None, 2000) == 1
            rows, total = await lib.generations.list(None, 10)
            assert total == 2 and {r.id for r in rows} == {f"{2:032x}", f"{3:032x}"}
            assert not await lib.blobs.exists(f"audio/{0:032x}")
            assert await lib.blobs.exists(f"audio/{3:032x}")
        finally:
            await lib.close()

    asyncio.run(scenario())


def test_cache_evicts_least_recently_used(tmp_path: Path) -> None:
    srv = Server(
        tmp_path, workers=1, env={"ORATE_CACHE_MAX_BYTES": "450000", "ORATE_STORE_AUDIO": "false"}
    )
    try:
        texts = [unique(f"Eviction test number {n} has some words.") for n in range(6)]
        for t in texts:
            speak(srv.url, t, response_format="wav")
        # cache writes run after each response, in the background: the newest is stored
        # once it is served from the cache (a miss on the way stores it again, newest still)
        wait_for(
            lambda: speak(srv.url, texts[-1], response_format="wav"),
            lambda r: r.headers["x-orate-cache"] == "hit",
            "the newest text to be served from the cache",
            timeout=60,
        )
        # eviction runs after each store, in the background too: wait for it to settle.
        # Read before the newest was stored, the bound alone could already hold
        stats = wait_for(
            lambda: httpx.get(f"{srv.url}/v1/cache", timeout=60).json(),
            lambda s: 1 <= s["entries"] < 6 and s["bytes"] <= 450000,
            "the cache evicted down to its bound",
            timeout=60,
        )
        assert stats["bytes"] <= 450000 and 1 <= stats["entries"] < 6
        assert speak(srv.url, texts[0], response_format="wav").headers["x-orate-cache"] == "miss"
    finally:
        srv.stop()


POSTGRES = os.environ.get("ORATE_TEST_POSTGRES_URL")


@pytest.mark.skipif(
    not POSTGRES,
    reason="set ORATE_TEST_POSTGRES_URL to a PostgreSQL database "
    "(.ci/run installs and starts one; see the README)",
)
def test_postgresql_backend(tmp_path: Path) -> None:
    srv = Server(tmp_path, workers=1, env={"ORATE_DATABASE_URL": POSTGRES or ""})
    try:
        text = unique("Stored in PostgreSQL.")
        r = speak(srv.url, text)
        gen_id = r.headers["x-orate-generation-id"]
        record = wait_for(
            lambda: httpx.get(f"{srv.url}/v1/history/{gen_id}"),
            lambda x: x.status_code == 200,
            "the generation's history record",
        ).json()
        assert record["text"] == text
        assert httpx.get(record["audio_url"]).content == r.content
        name = f"pg-{secrets.token_hex(3)}"
        assert (
            httpx.post(
                f"{srv.url}/v1/voices", json={"name": name, "params": {}}, timeout=60
            ).status_code
            == 201
        )
        hit = wait_for(
            lambda: speak(srv.url, text),
            lambda x: x.headers["x-orate-cache"] == "hit",
            "the request to hit the cache",
        )
        assert hit.content == r.content
        usage = httpx.get(f"{srv.url}/v1/usage", params={"group_by": "model"}).json()
        assert usage["total"]["requests"] >= 2
    finally:
        srv.stop()


@pytest.fixture()
def s3_server(tmp_path: Path):  # type: ignore[no-untyped-def]
    """moto's S3 stand-in on a loopback port, with a fresh bucket."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: accepts(port), "moto_server to listen", interval=0.1)
        import boto3

        s3 = boto3.client(
            "s3",
            endpoint_url=endpoint,
            aws_access_key_id="test",
            aws_secret_access_key="test",
            region_name="us-east-1",
        )
        s3.create_bucket(Bucket="orate-test")
        yield endpoint, s3
    finally:
        proc.terminate()
        proc.wait(10)


def test_s3_blob_backend(tmp_path: Path, s3_server) -> None:
    endpoint, s3 = s3_server
    srv = Server(
        tmp_path,
        workers=1,
        env={
            "ORATE_BLOB_URL": "s3://orate-test/audio-store",
            "ORATE_S3_ENDPOINT": endpoint,
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_REGION": "us-east-1",
        },
    )
    try:
        r = speak(srv.url, unique("Stored in S3."), response_format="flac")
        gen_id = r.headers["x-orate-generation-id"]
        url = f"{srv.url}/v1/audio/files/{gen_id}"
        served = wait_for(
            lambda: httpx.get(url), lambda x: x.status_code == 200, "the audio file to be served"
        )
        assert served.content == r.content
        part = httpx.get(url, headers={"Range": "bytes=4-11"})
        assert part.status_code == 206 and part.content == r.content[4:12]
        keys = wait_for(
            lambda: [o["Key"] for o in s3.list_objects_v2(Bucket="orate-test").get("Contents", [])],
            bool,
            "the audio in the bucket",
        )
        assert keys and all(k.startswith("audio-store/audio/") for k in keys)
        assert decode(served.content, "flac")[1] == 22050
        httpx.delete(f"{srv.url}/v1/history/{gen_id}")
        assert httpx.get(url).status_code == 404
    finally:
        srv.stop()
