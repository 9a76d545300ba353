"""What the text layer makes is what every engine says, and each word's time holds it.

Through a real server: a sample of readings per engine heard by pocketsphinx against a
grammar of the right reading and plausible wrong ones; each returned word span cut from
the audio and heard against its own word and its neighbours (a drifting span lands on a
neighbour); IPA pronunciation rules changing hibari's and Piper's phonemes; ElevenLabs'
inline ``<break>`` as silence and never as words.
"""

from __future__ import annotations

import itertools
import json
import os
import threading

import httpx
import numpy as np
import pytest

from .conftest import Server, decode

ENGINES = [
    ("espeak", "tts-1", "en-us+f2"),
    ("hibari", "hibari", "heart"),
    ("piper", "piper:en_US-joe-medium", "default"),
]


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    server = Server(tmp_path_factory.mktemp("reading"), workers=1)
    yield server
    server.stop()


class Ear:
    """pocketsphinx: which of some phrases a piece of audio holds (not thread-safe, so
    one lock)."""

    def __init__(self) -> None:
        from pocketsphinx import Decoder

        self.decoder = Decoder(samprate=16000, logfn=os.devnull)
        self.lock = threading.Lock()

    @staticmethod
    def to16k(samples: np.ndarray, rate: int) -> np.ndarray:
        import av

        frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = rate
        rs = av.AudioResampler(format="s16", layout="mono", rate=16000)
        parts = [f.to_ndarray().reshape(-1) for f in rs.resample(frame)]
        parts += [f.to_ndarray().reshape(-1) for f in rs.resample(None)]
        return np.concatenate(parts)

    def _run(self, audio: np.ndarray) -> str:
        pad = np.zeros(4800, np.int16)  # 0.3 s each side, or the last word is lost
        self.decoder.start_utt()
        self.decoder.process_raw(np.concatenate([pad, audio, pad]).tobytes(), full_utt=True)
        self.decoder.end_utt()
        hyp = self.decoder.hyp()
        return hyp.hypstr if hyp else ""

    def which(self, audio: np.ndarray, phrases: list[str]) -> str:
        """The phrase heard: a grammar of the phrases; where the grammar search finds no
        path (it happens on one short word), the best forced alignment."""
        alternatives = " | ".join(f"( {p} )" for p in dict.fromkeys(phrases))
        with self.lock:
            self.decoder.add_jsgf_string(
                "c", f"#JSGF V1.0;\ngrammar c;\npublic <s> = {alternatives} ;\n"
            )
            self.decoder.activate_search("c")
            heard = self._run(audio)
            if heard:
                return heard
            best, score = "", -float("inf")
            for phrase in dict.fromkeys(phrases):
                self.decoder.set_align_text(phrase)
                if self._run(audio) and self.decoder.hyp().score > score:
                    best, score = phrase, self.decoder.hyp().score
            return best


@pytest.fixture(scope="module")
def ear() -> Ear:
    return Ear()


def speak(
    url: str, model: str, voice: str, text: str, **extra: object
) -> tuple[np.ndarray, int, list[dict], httpx.Response]:
    """16 kHz audio, its rate, the timestamps, and the response (SSE, pcm)."""
    r = httpx.post(
        f"{url}/v1/audio/speech",
        timeout=120,
        json={
            "model": model,
            "voice": voice,
            "input": text,
            "response_format": "pcm",
            "stream_format": "sse",
            "include_timestamp_types": ["word", "phoneme"],
            **extra,
        },
    )
    assert r.status_code == 200, r.text
    import base64

    frames = [json.loads(f.removeprefix("data: ")) for f in r.text.split("\n\n") if f.strip()]
    pcm = b"".join(
        base64.b64decode(f["audio"]) for f in frames if f["type"] == "speech.audio.delta"
    )
    rate = int(r.headers["x-orate-sample-rate"])
    samples, _ = decode(pcm, "pcm", rate)
    stamps = [t for f in frames if f["type"] == "speech.audio.timestamps" for t in f["timestamps"]]
    return Ear.to16k(samples, rate), rate, stamps, r


# (written, right reading, plausible wrong readings) heard through every engine
SAMPLES = [
    (
        "Version 2.3.1 fixed 17 bugs.",
        "version two point three point one fixed seventeen bugs",
        [
            "version two three one fixed seventeen bugs",
            "version two point three point one fixed seven bugs",
        ],
    ),
    (
        "It was −5°F outside.",
        "it was minus five degrees fahrenheit outside",
        ["it was five degrees fahrenheit outside", "it was minus five degrees f outside"],
    ),
    (
        "Call 555-0142 now.",
        "call five five five zero one four two now",
        [
            "call five hundred fifty five one hundred forty two now",
            "call five hundred fifty five minus one hundred forty two now",
        ],
    ),
    (
        "Add 1/2 cup of milk.",
        "add one half cup of milk",
        ["add one slash two cup of milk", "add one two cup of milk"],
    ),
    (
        "Open 9am–5pm daily.",
        "open nine a m to five p m daily",
        ["open nine am five pm daily", "open nine a m five p m daily"],
    ),
]


@pytest.mark.parametrize(("engine", "model", "voice"), ENGINES, ids=[e[0] for e in ENGINES])
def test_readings_are_heard_on_every_engine(
    srv: Server, ear: Ear, engine: str, model: str, voice: str
) -> None:
    heard = {}
    for text, right, wrong in SAMPLES:
        audio, _, _, _ = speak(srv.url, model, voice, text)
        heard[text] = ear.which(audio, [right, *wrong])
    right_ones = [t for t, r, _ in SAMPLES if heard[t] == r]
    # pocketsphinx misses a reading now and then on a voice it was not trained on: all
    # but one must be heard as the right reading, and never the wrong one listed beside it
    assert len(right_ones) >= len(SAMPLES) - 1, heard
    assert heard["Version 2.3.1 fixed 17 bugs."] == SAMPLES[0][1], heard


def test_day_first_dates_on_a_british_voice(srv: Server, ear: Ear) -> None:
    audio, _, _, _ = speak(srv.url, "tts-1", "en-gb+f2", "Due 03/04/2025.")
    assert (
        ear.which(
            audio,
            [
                "due the third of april twenty twenty five",
                "due march fourth twenty twenty five",
                "due zero three zero four twenty twenty five",
            ],
        )
        == "due the third of april twenty twenty five"
    )


# sentences full of normalized tokens: each token's words as spoken
SPAN_SENTENCES = [
    (
        "Version 2.3.1 fixed 17 bugs.",
        ["version", "two point three point one", "fixed", "seventeen", "bugs"],
    ),
    (
        "Meet me at 221B Baker St., London.",
        ["meet", "me", "at", "two twenty one b", "baker", "street", "london"],
    ),
    (
        "It was −5°F in the morning.",
        ["it", "was", "minus five degrees fahrenheit", "in", "the", "morning"],
    ),
    (
        "Call 555-0142 today please.",
        ["call", "five five five zero one four two", "today", "please"],
    ),
]


@pytest.mark.parametrize(("engine", "model", "voice"), ENGINES, ids=[e[0] for e in ENGINES])
def test_each_word_span_holds_its_own_word(
    srv: Server, ear: Ear, engine: str, model: str, voice: str
) -> None:
    held, total, misses = 0, 0, []
    for text, phrases in SPAN_SENTENCES:
        audio, _, stamps, _ = speak(srv.url, model, voice, text)
        words = [t for t in stamps if t["type"] == "word"]
        assert len(words) == len(phrases), (engine, text, [w["text"] for w in words])
        for k, (word, phrase) in enumerate(zip(words, phrases, strict=True)):
            assert text[word["char_start"] : word["char_end"]].strip(".,") == word["text"]
            s, e = int(word["start"] * 16), int(word["end"] * 16)
            near = phrases[max(0, k - 1) : k + 2]
            heard = ear.which(audio[s:e], near) or ear.which(audio[max(0, s - 480) : e + 480], near)
            total += 1
            held += heard == phrase
            if heard != phrase:
                misses.append((word["text"], heard))
        if text.startswith("Version"):  # the drift the natural voice had: "Version" = "two"
            first = words[0]
            s, e = int(first["start"] * 16), int(first["end"] * 16)
            assert ear.which(audio[s:e], ["version", "two", "version two"]) == "version"
    assert held >= 0.85 * total, misses


@pytest.mark.parametrize(("engine", "model", "voice"), ENGINES, ids=[e[0] for e in ENGINES])
def test_phoneme_timestamps_are_ipa_with_stress_on_the_phoneme(
    srv: Server, engine: str, model: str, voice: str
) -> None:
    _, _, stamps, _ = speak(srv.url, model, voice, "Hello big world, how are you today?")
    phonemes = [t["text"] for t in stamps if t["type"] == "phoneme"]
    assert phonemes, engine
    assert not any(p in ("ˈ", "ˌ", "ː") for p in phonemes), phonemes  # never on their own
    assert any(p.startswith("ˈ") for p in phonemes), phonemes  # stress rides on its phoneme
    misaki = set("AIOQWYT")  # hibari's shorthand (eɪ aɪ oʊ …) never reaches a caller
    assert not any(ch in misaki for p in phonemes for ch in p), phonemes


def _dictionary(url: str, rules: list[dict]) -> list[dict]:
    r = httpx.post(
        f"{url}/v1/pronunciation-dictionaries/add-from-rules",
        json={"name": "reading", "rules": rules},
        timeout=30,
    )
    assert r.status_code == 200, r.text
    return [{"pronunciation_dictionary_id": r.json()["id"], "version_id": None}]


@pytest.mark.parametrize(("engine", "model", "voice"), ENGINES[1:], ids=["hibari", "piper"])
def test_ipa_rules_change_the_phonemes(srv: Server, engine: str, model: str, voice: str) -> None:
    locators = _dictionary(
        srv.url,
        [
            {
                "string_to_replace": "tomato",
                "type": "phoneme",
                "phoneme": "təˈmɑːtoʊ",
                "alphabet": "ipa",
            }
        ],
    )

    def tomato(**extra: object) -> list[str]:
        _, _, stamps, _ = speak(srv.url, model, voice, "I like a tomato.", **extra)
        at = "I like a tomato.".index("tomato")
        return [t["text"] for t in stamps if t["type"] == "phoneme" and t["char_start"] == at]

    plain = tomato()
    ruled = tomato(pronunciation_dictionary_locators=locators)
    assert plain and ruled and plain != ruled
    assert any("ɑ" in p for p in ruled) and not any("ɑ" in p for p in plain), (plain, ruled)


def test_an_ipa_symbol_an_engine_lacks_is_reported(srv: Server) -> None:
    locators = _dictionary(
        srv.url,
        [
            {
                "string_to_replace": "Llanelli",
                "type": "phoneme",
                "phoneme": "ɬaˈnɛɬi",
                "alphabet": "ipa",
            }
        ],
    )
    _, _, _, r = speak(
        srv.url,
        "hibari",
        "heart",
        "We drove to Llanelli.",
        pronunciation_dictionary_locators=locators,
    )
    warnings = json.loads(r.headers["x-orate-warnings"])
    assert any("ɬ" in w and "Llanelli" in w for w in warnings), warnings


def _silences(samples: np.ndarray, rate: int) -> float:
    """The longest run of near silence, in seconds (20 ms windows)."""
    win = rate // 50
    levels = np.abs(samples[: len(samples) // win * win].astype(np.float32)).reshape(-1, win)
    quiet = levels.mean(axis=1) < 100
    best = run = 0
    for q in quiet:
        run = run + 1 if q else 0
        best = max(best, run)
    return best * 0.02


def test_elevenlabs_inline_break_is_a_pause_and_never_words(srv: Server, ear: Ear) -> None:
    text = 'Hello there <break time="1.5s" /> my friend.'
    r = httpx.post(
        f"{srv.url}/v1/text-to-speech/21m00Tcm4TlvDq8ikWAM",
        params={"output_format": "pcm_24000"},
        timeout=120,
        json={"text": text, "model_id": "eleven_flash_v2_5"},
    )
    assert r.status_code == 200, r.text
    samples, rate = decode(r.content, "pcm", 24000)
    assert _silences(samples, rate) >= 1.2
    heard = ear.which(
        Ear.to16k(samples, rate),
        [
            "hello there my friend",
            "hello there break time equals one point five seconds my friend",
            "hello there break time one point five s my friend",
        ],
    )
    assert heard == "hello there my friend"
    # the same text on the OpenAI dialect stays plain text: no pause is made of it
    plain = httpx.post(
        f"{srv.url}/v1/audio/speech",
        timeout=120,
        json={"model": "tts-1", "voice": "alloy", "input": text, "response_format": "wav"},
    )
    assert plain.status_code == 200
    assert _silences(*decode(plain.content, "wav")) < 1.0


def test_elevenlabs_inline_phoneme_and_a_bad_break(srv: Server) -> None:
    text = 'A <phoneme alphabet="cmu-arpabet" ph="T AH0 M AA1 T OW2">tomato</phoneme> here.'
    ok = httpx.post(
        f"{srv.url}/v1/text-to-speech/21m00Tcm4TlvDq8ikWAM/with-timestamps",
        timeout=120,
        json={"text": text},
    )
    assert ok.status_code == 200, ok.text
    align = ok.json()["alignment"]
    lengths = [
        e - s
        for s, e in zip(
            align["character_start_times_seconds"],
            align["character_end_times_seconds"],
            strict=True,
        )
    ]
    word = text.index(">tomato<") + 1
    assert sum(lengths[word : word + 6]) > 0.2  # the word is spoken, with its time
    assert sum(lengths[2:word]) < 0.01  # the tag takes none
    bad = httpx.post(
        f"{srv.url}/v1/text-to-speech/21m00Tcm4TlvDq8ikWAM",
        timeout=60,
        json={"text": 'Wait <break time="forever" /> now.'},
    )
    assert bad.status_code == 400 and "break time" in bad.text


def test_captions_for_history_of_a_natural_voice(srv: Server) -> None:
    r = httpx.post(
        f"{srv.url}/v1/audio/speech",
        timeout=120,
        json={
            "model": "hibari",
            "voice": "heart",
            "input": "Version 2.3.1 fixed 17 bugs.",
            "response_format": "wav",
        },
    )
    gen = r.headers["x-orate-generation-id"]
    from .waiting import wait_until

    def captions() -> httpx.Response | None:
        c = httpx.get(f"{srv.url}/v1/history/{gen}/captions")
        return c if c.status_code == 200 else None

    got = wait_until(captions, "the generation's captions")
    assert "Version 2.3.1 fixed 17 bugs." in got.text


def test_kokoro_spans_land_on_every_token(tmp_path_factory: pytest.TempPathFactory) -> None:
    """No English Kokoro voice is installable here, so the repository's tiny Kokoro model
    (real inputs and outputs, no weights) shows the mapping: one span per written token,
    normalized ones included, in order, each from the model's own durations."""
    from .tiny_models import build_kokoro

    models = tmp_path_factory.mktemp("kokoro-models")
    build_kokoro(models)
    server = Server(
        tmp_path_factory.mktemp("kokoro"), workers=1, env={"ORATE_MODELS_DIR": str(models)}
    )
    try:
        text = "It was −5°F at 9am on the 2nd, said Dr. Smith."
        _, _, stamps, _ = speak(server.url, "kokoro", "af_bella", text)
    finally:
        server.stop()
    words = [t for t in stamps if t["type"] == "word"]
    assert [w["text"] for w in words] == [
        "It",
        "was",
        "−5°F",
        "at",
        "9am",
        "on",
        "the",
        "2nd",
        "said",
        "Dr",
        "Smith",
    ]
    assert all(a["start"] < b["start"] for a, b in itertools.pairwise(words))
    phonemes = [t["text"] for t in stamps if t["type"] == "phoneme"]
    assert not any(p in ("ˈ", "ˌ", "ː") for p in phonemes)
