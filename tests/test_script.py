"""The text layer end to end: normalization with character maps, SSML on espeak and on a
neural engine (the tiny Piper model), hostile SSML, captions, through real servers."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import httpx
import numpy as np
import pytest

from .conftest import Recognizer, Server, decode, duration
from .tiny_models import build_kokoro, build_piper
from .waiting import wait_for, wait_until


def sse(url: str, **body) -> tuple[bytes, list[dict], list[dict]]:
    """Audio, timestamps and the other frames of an OpenAI SSE response."""
    body = {
        "model": "tts-1",
        "voice": "alloy",
        "response_format": "wav",
        "stream_format": "sse",
        **body,
    }
    audio = bytearray()
    stamps: list[dict] = []
    frames: list[dict] = []
    with httpx.stream("POST", f"{url}/v1/audio/speech", json=body, timeout=60) as r:
        assert r.status_code == 200, r.read()
        for line in r.iter_lines():
            if not line.startswith("data: "):
                continue
            frame = json.loads(line[6:])
            if frame["type"] == "speech.audio.delta":
                audio += base64.b64decode(frame["audio"])
            elif frame["type"] == "speech.audio.timestamps":
                stamps += frame["timestamps"]
            else:
                frames.append(frame)
    return bytes(audio), stamps, frames


def wav(url: str, text: str, **kw) -> bytes:
    body = {"model": "tts-1", "voice": "alloy", "input": text, "response_format": "wav", **kw}
    r = httpx.post(f"{url}/v1/audio/speech", json=body, timeout=60)
    assert r.status_code == 200, r.text
    return r.content


# ------------------------------------------------------------------ normalization


@pytest.mark.parametrize(
    "text,target",
    [
        ("It costs $4.50 today.", "$4.50"),
        ("Meet me at 3:30 pm sharp.", "3:30 pm"),
        ("She came 2nd in the race.", "2nd"),
        ("Prices rose 50% in the 1990s.", "50%"),
        ("Henry VIII had six wives.", "Henry VIII"),
    ],
)
def test_word_timestamps_point_at_the_callers_characters(
    server: Server, text: str, target: str
) -> None:
    _, stamps, _ = sse(server.url, input=text, include_timestamp_types=["word"])
    words = [s for s in stamps if s["type"] == "word"]
    tokens = text.split()
    assert len(words) == len(tokens)  # one timestamp per word the caller wrote
    start = text.index(target)
    covering = [
        w for w in words if w["char_start"] >= start and w["char_end"] <= start + len(target) + 1
    ]
    assert covering and covering[0]["char_start"] == start
    assert max(w["char_end"] for w in covering) in (start + len(target), start + len(target) + 1)
    for w in words:  # every timestamp names a word of the input
        assert (
            text[w["char_start"] : w["char_end"]].strip(".,") in tokens
            or text[w["char_start"] : w["char_end"]] in tokens
        )


def test_a_rewrite_is_one_timestamp_spanning_its_spoken_words(server: Server) -> None:
    text = "It costs $4.50 today."
    _, stamps, _ = sse(server.url, input=text, include_timestamp_types=["word"])
    money = [s for s in stamps if s["type"] == "word" and s["char_start"] == 9]
    assert len(money) == 1 and money[0]["char_end"] == 14
    today = next(s for s in stamps if s["type"] == "word" and s["char_start"] == 15)
    # "four dollars fifty" takes longer than one short word
    assert money[0]["end"] - money[0]["start"] > 0.8 * (today["end"] - today["start"])


ASR_CASES = [
    (
        "It costs $4.50.",
        "it costs four dollars fifty",
        ["it costs four point five zero", "it costs dollar four fifty"],
    ),
    ("Dr. Smith is here.", "doctor smith is here", ["d r smith is here", "drive smith is here"]),
    ("She came 2nd.", "she came second", ["she came two n d", "she came two"]),
    (
        "Prices rose 50%.",
        "prices rose fifty percent",
        ["prices rose five zero", "prices rose fifty"],
    ),
    (
        "It was the 1990s.",
        "it was the nineteen nineties",
        ["it was the one thousand nine hundred ninety", "it was the nineteen ninety"],
    ),
    (
        "Call +1 555 0100.",
        "call plus one five five five zero one zero zero",
        [
            "call one five hundred fifty five one hundred",
            "call plus one five five five one hundred",
        ],
    ),
]


@pytest.mark.parametrize("text,spoken,wrong", ASR_CASES)
def test_normalized_text_is_heard_as_its_words(
    server: Server, text: str, spoken: str, wrong: list[str]
) -> None:
    heard = Recognizer([spoken, *wrong]).which(wav(server.url, text), "wav")
    assert heard == spoken


def test_normalize_false_reads_the_text_as_written(server: Server) -> None:
    text = "It costs $4.50"  # espeak alone reads "dollar four point five zero"
    grammar = ["it costs four dollars fifty", "it costs dollar four point five zero"]
    on = Recognizer(grammar).which(wav(server.url, text), "wav")
    off = Recognizer(grammar).which(wav(server.url, text, normalize=False), "wav")
    assert on == grammar[0] and off == grammar[1]


def test_normalization_is_part_of_the_cache_key(server: Server) -> None:

    body = {
        "model": "tts-1",
        "voice": "alloy",
        "input": "Room 101 costs $7.",
        "response_format": "wav",
    }
    wait_until(  # the first rendering is in the cache once its response has been sent
        lambda: (
            httpx.post(f"{server.url}/v1/audio/speech", json=body, timeout=60).headers[
                "x-orate-cache"
            ]
            == "hit"
        ),
        "the same request to come from the cache",
        interval=0.1,
    )
    off = httpx.post(f"{server.url}/v1/audio/speech", json={**body, "normalize": False}, timeout=60)
    assert off.headers["x-orate-cache"] == "miss"


# ------------------------------------------------------------------ SSML on espeak


def test_ssml_break_lengthens_audio_by_the_break(server: Server) -> None:
    plain = duration(wav(server.url, "<speak>Hello there. General Kenobi.</speak>"), "wav")
    broken = duration(
        wav(server.url, '<speak>Hello there. <break time="1500ms"/> General Kenobi.</speak>'), "wav"
    )
    assert broken - plain == pytest.approx(1.5, abs=0.15)


def test_ssml_prosody_rate_changes_duration(server: Server) -> None:
    text = "the quick brown fox jumps over the lazy dog"
    normal = duration(wav(server.url, f"<speak>{text}</speak>"), "wav")
    slow = duration(wav(server.url, f'<speak><prosody rate="50%">{text}</prosody></speak>'), "wav")
    assert slow / normal == pytest.approx(2.0, rel=0.2)


def test_ssml_say_as_characters_spells(server: Server) -> None:
    audio = wav(server.url, '<speak>Spell <say-as interpret-as="characters">cab</say-as></speak>')
    assert Recognizer(["spell c a b", "spell cab"]).which(audio, "wav") == "spell c a b"


def test_ssml_sub_and_phoneme_are_said(server: Server) -> None:
    audio = wav(server.url, '<speak>I like <sub alias="green tea">GT</sub></speak>')
    assert Recognizer(["i like green tea", "i like g t"]).which(audio, "wav") == "i like green tea"
    audio = wav(
        server.url,
        '<speak>I say <phoneme alphabet="ipa" ph="təˈmɑːtoʊ">tomato'
        '</phoneme> and <phoneme alphabet="ipa" ph="pəˈteɪtoʊ">x</phoneme>'
        "</speak>",
    )
    assert (
        Recognizer(["i say tomato and potato", "i say tomato and x"]).which(audio, "wav")
        == "i say tomato and potato"
    )


def test_ssml_marks_and_words_come_back_as_timestamps(server: Server) -> None:
    text = (
        '<speak>Hello <mark name="one"/>big <break time="500ms"/> world. <mark name="end"/></speak>'
    )
    _, stamps, _ = sse(server.url, input=text, include_timestamp_types=["word"])
    words = [s for s in stamps if s["type"] == "word"]
    marks = {s["text"]: s for s in stamps if s["type"] == "mark"}
    assert [text[w["char_start"] : w["char_end"]] for w in words] == ["Hello", "big", "world."]
    assert set(marks) == {"one", "end"}
    assert marks["one"]["start"] == pytest.approx(words[1]["start"], abs=1)
    assert marks["end"]["start"] >= words[2]["end"] - 1


def test_plain_text_with_angle_brackets_is_not_ssml(server: Server) -> None:
    audio = wav(server.url, "<speaker> is a word")
    assert duration(audio, "wav") > 0.5


@pytest.mark.parametrize(
    "body,code",
    [
        (
            '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 '
            '"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]><speak>&lol2;</speak>',
            "ssml_dtd",
        ),
        (
            '<!DOCTYPE speak [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><speak>&xxe;</speak>',
            "ssml_dtd",
        ),
        ("<speak>" + "<prosody>" * 100 + "x" + "</prosody>" * 100 + "</speak>", "ssml_too_deep"),
        ('<speak>a <break time="100000s"/> b</speak>', "ssml_breaks"),
        ('<speak>a <audio src="http://x/"/> b</speak>', "invalid_ssml"),
        ("<speak>\n  <p>unclosed\n</speak>", "invalid_ssml"),
    ],
)
def test_hostile_ssml_is_refused(server: Server, body: str, code: str) -> None:
    r = httpx.post(
        f"{server.url}/v1/audio/speech",
        json={"model": "tts-1", "voice": "alloy", "input": body},
        timeout=30,
    )
    assert r.status_code == 400, r.text
    assert r.json()["error"]["code"] == code


def test_invalid_ssml_names_line_and_column(server: Server) -> None:
    r = httpx.post(
        f"{server.url}/v1/audio/speech",
        json={"model": "tts-1", "voice": "alloy", "input": "<speak>\n  <p>unclosed\n</speak>"},
        timeout=60,
    )
    assert r.status_code == 400 and "line 3, column" in r.json()["error"]["message"]


# ------------------------------------------------------------------ SSML on a neural engine


@pytest.fixture(scope="module")
def neural(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    models: Path = tmp_path_factory.mktemp("models")
    build_piper(models, "en_US-tiny-low")
    build_kokoro(models)
    srv = Server(
        tmp_path_factory.mktemp("neural-ssml"), workers=1, env={"ORATE_MODELS_DIR": str(models)}
    )
    yield srv
    srv.stop()


NEURAL = {"piper": ("piper:en_US-tiny-low", "default"), "kokoro": ("kokoro", "af_bella")}


@pytest.mark.parametrize("engine", list(NEURAL))
def test_ssml_on_neural_engines_break_rate_say_as_and_phoneme(neural: Server, engine: str) -> None:
    model, voice = NEURAL[engine]

    def piper(url: str, text: str) -> float:
        return duration(wav(url, text, model=model, voice=voice), "wav")

    # a break splits the sentence, and the model pads each piece: compare like with like
    base = piper(neural.url, '<speak>Hello there <break time="0ms"/> world.</speak>')
    broken = piper(neural.url, '<speak>Hello there <break time="1s"/> world.</speak>')
    assert broken - base == pytest.approx(1.0, abs=0.15)
    whole = piper(neural.url, "<speak>Hello there world.</speak>")
    slow = piper(neural.url, '<speak><prosody rate="x-slow">Hello there world.</prosody></speak>')
    assert slow / whole == pytest.approx(2.0, rel=0.15)
    word = piper(neural.url, "<speak>world</speak>")
    spelled = piper(neural.url, '<speak><say-as interpret-as="characters">world</say-as></speak>')
    assert spelled > 1.5 * word  # five letter names are longer than one word
    short = piper(neural.url, '<speak><phoneme alphabet="ipa" ph="tə">tomato</phoneme></speak>')
    long = piper(
        neural.url,
        '<speak><phoneme alphabet="ipa" ph="təˈmeɪtoʊtəˈmeɪtoʊ">tomato</phoneme></speak>',
    )
    assert long > short  # the model read the IPA, not the word


# ------------------------------------------------------------------ captions


def seconds(stamp: str) -> float:
    """A WebVTT time (HH:MM:SS.mmm) in seconds, to the millisecond."""
    h, m, s = stamp.split(":")
    return int(h) * 3600 + int(m) * 60 + float(s)


def test_captions_from_sse_and_history_parse_and_match_word_times(server: Server) -> None:
    import srt
    import webvtt

    text = (
        "The quick brown fox jumps over the lazy dog and keeps on running far away "
        "from the farmer who owns the field and the barn. It was a cold and windy day."
    )
    _, stamps, frames = sse(
        server.url, input=text, include_timestamp_types=["word"], captions="vtt"
    )
    words = [s for s in stamps if s["type"] == "word"]
    vtt = next(f for f in frames if f["type"] == "speech.audio.captions")["captions"]
    cues = list(webvtt.from_buffer(io.StringIO(vtt)))
    assert len(cues) >= 3  # split at the sentence end and at two lines of ≤ 42 chars
    for cue in cues:
        lines = cue.text.split("\n")
        assert len(lines) <= 2 and all(len(line) <= 42 for line in lines)
    starts = [w["start"] / 1000 for w in words]
    ends = [w["end"] / 1000 for w in words]
    for cue in cues:
        assert min(abs(seconds(cue.start) - s) for s in starts) < 0.05
        assert min(abs(seconds(cue.end) - e) for e in ends) < 0.05
    assert any(c.text.rstrip().endswith("barn.") for c in cues)  # a cue ends at the sentence
    # the same generation's captions from history, as SRT
    r = httpx.post(
        f"{server.url}/v1/audio/speech",
        json={"model": "tts-1", "voice": "alloy", "input": text, "captions": "srt"},
        timeout=60,
    )
    url = r.headers["x-orate-captions-url"]
    got = wait_for(
        lambda: httpx.get(f"{server.url}{url}"),
        lambda got: got.status_code == 200,
        "the generation's captions",
        interval=0.1,
    )
    assert got.headers["content-type"].startswith("application/x-subrip")
    subs = list(srt.parse(got.text))
    assert len(subs) == len(cues)
    for sub, cue in zip(subs, cues, strict=True):
        assert abs(sub.start.total_seconds() - seconds(cue.start)) < 0.05
    vtt2 = httpx.get(f"{server.url}{url.replace('srt', 'vtt')}")
    assert vtt2.status_code == 200 and vtt2.text.startswith("WEBVTT")


def test_history_captions_for_a_generation_that_asked_for_no_timestamps(server: Server) -> None:
    """Word times are recorded with every generation: captions of any history item work,
    while the response itself carried no timestamps (none were asked for)."""
    r = httpx.post(
        f"{server.url}/v1/audio/speech",
        json={
            "model": "tts-1",
            "voice": "alloy",
            "input": "Captions arrive anyway.",
            "stream_format": "sse",
        },
        timeout=60,
    )
    assert "speech.audio.timestamps" not in r.text
    gen = r.headers["x-orate-generation-id"]
    got = wait_for(
        lambda: httpx.get(f"{server.url}/v1/history/{gen}/captions"),
        lambda got: got.status_code != 404,
        "the generation's captions",
        interval=0.1,
    )
    assert got.status_code == 200 and got.text.startswith("WEBVTT")
    assert "Captions arrive anyway." in got.text


def test_pcm_level_volume(server: Server) -> None:
    loud = decode(
        wav(server.url, '<speak><prosody volume="x-loud">Hello there.</prosody></speak>'), "wav"
    )[0]
    soft = decode(
        wav(server.url, '<speak><prosody volume="x-soft">Hello there.</prosody></speak>'), "wav"
    )[0]
    assert np.abs(loud.astype(float)).mean() > 3 * np.abs(soft.astype(float)).mean()


# ------------------------------------------------------------------ lexicons


def test_lexicon_changes_what_is_said_and_is_isolated_per_key(tmp_path: Path) -> None:
    from .test_security import create_key

    key_a, key_b = create_key(tmp_path, "--name", "a"), create_key(tmp_path, "--name", "b")
    srv = Server(tmp_path, workers=1)
    try:
        rules = {
            "name": "brands",
            "rules": [
                {"string_to_replace": "Kubernetes", "type": "alias", "alias": "green tea"},
                {
                    "string_to_replace": "Paris",
                    "type": "phoneme",
                    "phoneme": "ˈpɔɪzən",
                    "alphabet": "ipa",
                },
            ],
        }
        made = httpx.post(
            f"{srv.url}/v1/pronunciation-dictionaries", json=rules, headers=_auth(key_a), timeout=60
        )
        assert made.status_code == 200, made.text
        pd = made.json()
        assert pd["version"] == 1 and pd["rules_count"] == 2
        locator = [{"pronunciation_dictionary_id": pd["id"]}]
        body = {
            "model": "tts-1",
            "voice": "alloy",
            "input": "I like Kubernetes",
            "response_format": "wav",
            "pronunciation_dictionary_locators": locator,
        }
        said = httpx.post(f"{srv.url}/v1/audio/speech", json=body, headers=_auth(key_a), timeout=60)
        assert said.status_code == 200, said.text
        grammar = Recognizer(["i like green tea", "i like cooper net ease"])
        assert grammar.which(said.content, "wav") == "i like green tea"
        # key b can neither see nor use key a's dictionary
        assert (
            httpx.get(
                f"{srv.url}/v1/pronunciation-dictionaries/{pd['id']}", headers=_auth(key_b)
            ).status_code
            == 404
        )
        other = httpx.post(
            f"{srv.url}/v1/audio/speech", json=body, headers=_auth(key_b), timeout=60
        )
        assert other.status_code == 400
        assert other.json()["error"]["code"] == "invalid_pronunciation_dictionary"
        listed = httpx.get(f"{srv.url}/v1/pronunciation-dictionaries", headers=_auth(key_b))
        assert listed.json()["pronunciation_dictionaries"] == []
        # IPA rule: espeak reads the phonemes ("poison"), not the letters
        body["input"] = "I like Paris"
        said = httpx.post(f"{srv.url}/v1/audio/speech", json=body, headers=_auth(key_a), timeout=60)
        assert (
            Recognizer(["i like poison", "i like paris"]).which(said.content, "wav")
            == "i like poison"
        )
        # versions: a new rule set is a new version; the old version still reads the old way
        v2 = httpx.post(
            f"{srv.url}/v1/pronunciation-dictionaries/{pd['id']}/remove-rules",
            json={"rule_strings": ["Kubernetes"]},
            headers=_auth(key_a),
            timeout=60,
        ).json()
        assert v2["version"] == 2 and v2["rules_count"] == 1
        pls = httpx.get(
            f"{srv.url}/v1/pronunciation-dictionaries/{pd['id']}/{pd['version_id']}/download",
            headers=_auth(key_a),
        )
        assert pls.status_code == 200 and "<grapheme>Kubernetes</grapheme>" in pls.text
        # a PLS file round-trips through add-from-file
        again = httpx.post(
            f"{srv.url}/v1/pronunciation-dictionaries/add-from-file",
            data={"name": "from pls"},
            files={"file": ("x.pls", pls.content)},
            headers=_auth(key_a),
            timeout=60,
        )
        assert again.status_code == 200, again.text
        assert again.json()["rules_count"] == 2
        bad = httpx.post(
            f"{srv.url}/v1/pronunciation-dictionaries",
            json={
                "name": "bad",
                "rules": [
                    {"string_to_replace": r"(\w+) \1", "regex": True, "type": "alias", "alias": "x"}
                ],
            },
            headers=_auth(key_a),
            timeout=60,
        )
        assert bad.status_code == 400 and "backreference" in bad.json()["error"]["message"]
        gone = httpx.delete(
            f"{srv.url}/v1/pronunciation-dictionaries/{pd['id']}", headers=_auth(key_a)
        )
        assert gone.status_code == 200
    finally:
        srv.stop()


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_cli_say_writes_captions_and_manages_lexicons(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    import webvtt

    env = {**os.environ, "ORATE_DATA_DIR": str(tmp_path)}
    orate = [sys.executable, "-m", "orate.cli"]
    text = "It costs $4.50. The quick brown fox jumps over the lazy dog again and again."
    done = subprocess.run(
        [*orate, "say", text, "-o", str(tmp_path / "a.wav"), "--captions", str(tmp_path / "a.vtt")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    cues = list(webvtt.read(str(tmp_path / "a.vtt")))
    assert cues[0].text == "It costs $4.50." and len(cues) == 2
    made = subprocess.run(
        [*orate, "lexicon", "add", "brands", "--alias", "Nginx=engine x"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert made.returncode == 0, made.stderr
    pd = made.stdout.strip()
    shown = subprocess.run(
        [*orate, "lexicon", "show", pd], env=env, capture_output=True, text=True, timeout=60
    )
    assert json.loads(shown.stdout)["rules"][0]["alias"] == "engine x"
    assert subprocess.run([*orate, "lexicon", "rm", pd], env=env, timeout=60).returncode == 0


# ------------------------------------------------------------------ dialogue


def mean_pitch(samples: np.ndarray, rate: int) -> float:
    """Mean F0 (Hz) of the voiced 40 ms frames, by autocorrelation (60-400 Hz)."""
    frame = int(rate * 0.04)
    x = samples.astype(np.float64)
    found = []
    for start in range(0, len(x) - frame, frame):
        f = x[start : start + frame]
        if np.abs(f).mean() < 500:
            continue
        f = f - f.mean()
        ac = np.correlate(f, f, "full")[frame - 1 :]
        lo, hi = rate // 400, rate // 60
        lag = lo + int(np.argmax(ac[lo:hi]))
        if ac[lag] > 0.3 * ac[0]:
            found.append(rate / lag)
    return float(np.median(found))


def split_at_gap(samples: np.ndarray, rate: int, gap: float) -> tuple[np.ndarray, np.ndarray]:
    """The audio either side of its longest silence (the gap between turns)."""
    quiet = np.abs(samples) < 30
    best, best_at, run = 0, 0, 0
    for i, q in enumerate(quiet):
        run = run + 1 if q else 0
        if run > best:
            best, best_at = run, i
    assert best >= gap * rate * 0.9
    return samples[: best_at - best], samples[best_at:]


def test_two_speaker_script_is_one_file_with_both_lines_and_voices(
    server: Server, recognizer: Recognizer
) -> None:
    body = {
        "model": "tts-1",
        "text": "[S1] she sells sea shells by the sea shore [S2] my favorite color is green",
        "voices": {"S1": "en-us+m3", "S2": "en-us+f2"},
        "gap": 1.0,
        "response_format": "wav",
    }
    r = httpx.post(f"{server.url}/v1/voice/generations", json=body, timeout=60)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "audio/wav" and r.headers["x-orate-turns"] == "2"
    samples, rate = decode(r.content, "wav")
    first, second = split_at_gap(samples, rate, 1.0)
    grammar = ["she sells sea shells by the sea shore", "my favorite color is green"]
    rec = recognizer  # all ten test sentences

    def as_wav(part: np.ndarray) -> bytes:
        import wave

        buf = io.BytesIO()
        with wave.open(buf, "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(rate)
            w.writeframes(part.astype("<i2").tobytes())
        return buf.getvalue()

    assert rec.which(as_wav(first), "wav") == grammar[0]
    assert rec.which(as_wav(second), "wav") == grammar[1]
    low, high = mean_pitch(first, rate), mean_pitch(second, rate)
    assert high > 1.3 * low, (low, high)  # a male and a female voice
    # history keeps the lines with their times

    gen = r.headers["x-orate-generation-id"]
    h = wait_for(
        lambda: httpx.get(f"{server.url}/v1/history/{gen}"),
        lambda h: h.status_code == 200,
        "the generation's history record",
        interval=0.1,
    )
    lines = h.json()["lines"]
    assert [line["utterance"] for line in lines] == [0, 1]
    assert lines[1]["start_ms"] >= lines[0]["end_ms"] - 1


def test_dialogue_refuses_cloning_and_untagged_scripts(server: Server) -> None:
    r = httpx.post(
        f"{server.url}/v1/voice/generations",
        json={"text": "[S1] Hi. [S2] Hello.", "voice_samples": {"S1": "sample_123"}},
        timeout=60,
    )
    assert r.status_code == 400 and r.json()["error"]["code"] == "cloning_unavailable"
    assert "cloning" in r.json()["error"]["message"]
    r = httpx.post(f"{server.url}/v1/voice/generations", json={"text": "Hi there."}, timeout=60)
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_script"


# ------------------------------------------------------------------ through the SDKs


def test_openai_sdk_normalize_switch_and_captions_header(openai_client, server: Server) -> None:
    grammar = Recognizer(["it costs four dollars fifty", "it costs dollar four point five zero"])
    on = openai_client.audio.speech.create(
        model="tts-1", voice="alloy", input="It costs $4.50", response_format="wav"
    )
    off = openai_client.audio.speech.create(
        model="tts-1",
        voice="alloy",
        input="It costs $4.50",
        response_format="wav",
        extra_body={"normalize": False},
    )
    assert grammar.which(on.content, "wav") == "it costs four dollars fifty"
    assert grammar.which(off.content, "wav") == "it costs dollar four point five zero"
    raw = openai_client.audio.speech.with_raw_response.create(
        model="tts-1", voice="alloy", input="Hello there.", extra_body={"captions": "vtt"}
    )
    assert raw.headers["x-orate-captions-url"].endswith("/captions?format=vtt")


def test_hume_sdk_timestamps_point_at_the_callers_words(server: Server) -> None:
    from hume import HumeClient
    from hume.tts import FormatWav, PostedUtterance, PostedUtteranceVoiceWithName

    hume = HumeClient(api_key="test-key", base_url=server.url)
    text = "It costs $4.50 on the 2nd of May."
    result = hume.tts.synthesize_json(
        utterances=[
            PostedUtterance(
                text=text, voice=PostedUtteranceVoiceWithName(name="alloy", provider="HUME_AI")
            )
        ],
        format=FormatWav(),
        include_timestamp_types=["word"],
    )
    words = [t for s in result.generations[0].snippets[0] for t in s.timestamps if t.type == "word"]
    assert [w.text for w in words] == ["It", "costs", "$4.50", "on", "the", "2nd", "of", "May"]
    money = words[2]
    assert money.time.end - money.time.begin > 300  # "four dollars fifty", in one timestamp


def test_every_normalization_case_keeps_one_timestamp_per_written_word(server: Server) -> None:
    """The whole table of tests/test_normalize.py through the server: the engine reads the
    rewrites, and the word timestamps still name the caller's own tokens, in order."""
    from .test_normalize import CASES

    assert len(CASES) >= 60
    failures = []
    for written, _read in CASES:
        _, stamps, _ = sse(server.url, input=written, include_timestamp_types=["word"])
        words = [s for s in stamps if s["type"] == "word"]
        tokens = [
            (m.start(), m.end())
            for m in __import__("re").finditer(r"\S+", written)
            if any(ch.isalnum() for ch in m.group()) or m.group() in "&+=@"
        ]
        got = [(w["char_start"], w["char_end"]) for w in words]
        if got != tokens:
            failures.append((written, got, tokens))
    assert not failures, failures


def test_ssml_voice_and_lang_switch_voices(server: Server) -> None:
    one = decode(
        wav(server.url, '<speak><voice name="en-us+m3">my favorite color is green</voice></speak>'),
        "wav",
    )
    two = decode(
        wav(server.url, '<speak><voice name="en-us+f2">my favorite color is green</voice></speak>'),
        "wav",
    )
    assert mean_pitch(*two) > 1.3 * mean_pitch(*one)
    english = duration(wav(server.url, "<speak>Bonjour, comment allez-vous?</speak>"), "wav")
    french = duration(
        wav(
            server.url, '<speak><lang xml:lang="fr-fr">Bonjour, comment allez-vous?</lang></speak>'
        ),
        "wav",
    )
    assert abs(french - english) > 0.05  # read by another language's voice
    bad = httpx.post(
        f"{server.url}/v1/audio/speech",
        json={
            "model": "tts-1",
            "voice": "alloy",
            "input": '<speak><voice name="nobody-here">x</voice></speak>',
        },
        timeout=60,
    )
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_voice"


@pytest.mark.fast
def test_normalization_does_not_break_sentence_splitting() -> None:
    from orate.speech.text import split_sentences

    text = "Dr. Smith paid $4.50 at 3:30 p.m. on Main St. today. Then he left, etc. for home."
    spans = [text[s:e] for s, e in split_sentences(text)]
    assert spans[0].startswith("Dr. Smith paid $4.50") and spans[-1].startswith("Then")
    assert not any(s in ("Dr.", "$4.50", "St.") for s in spans)
