"""The natural palette through the official SDKs: every vendor id speaks naturally by
default, vendor voice names are distinct natural voices of the right gender, and
directions, designs and voice settings change the audio in the asked direction.

Voices are told apart on the audio itself: median F0 (WORLD's dio + stonemask) and the
average spectral envelope of voiced frames (cheaptrick, in log bands). Two renders of one
voice (at two speeds) calibrate what "the same voice" looks like.
"""

from __future__ import annotations

import subprocess
import sys

import httpx
import numpy as np
import pytest
from hume import HumeClient
from hume.tts import PostedUtterance

from tests.conftest import SENTENCES, Recognizer, Server, decode
from tests.waiting import wait_for

NATURAL_DEFAULTS = {"ORATE_MODEL_ENGINES": "{}"}  # the shipped defaults, not the suite's pin

TEXT_A = "Please call me back when you get this message."
TEXT_B = "The weather will be sunny and warm tomorrow afternoon."
OPENAI_NAMES = (
    "alloy",
    "ash",
    "ballad",
    "coral",
    "echo",
    "fable",
    "onyx",
    "nova",
    "sage",
    "shimmer",
    "verse",
    "marin",
    "cedar",
)
MALE = {"ash", "ballad", "echo", "fable", "onyx", "verse", "cedar"}
PALETTE = (
    "heart",
    "wren",
    "dove",
    "linnet",
    "finch",
    "lark",
    "joe",
    "crow",
    "raven",
    "owl",
    "rook",
    "hawk",
    "heron",
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    srv = Server(tmp_path_factory.mktemp("palette"), env=NATURAL_DEFAULTS)
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def openai_client(server: Server):
    from openai import OpenAI

    return OpenAI(api_key="test-key", base_url=f"{server.url}/v1", max_retries=0, timeout=60)


def speak(
    server: Server, voice: str, text: str = TEXT_A, model: str = "tts-1", **extra: object
) -> httpx.Response:
    r = httpx.post(
        f"{server.url}/v1/audio/speech",
        timeout=60,
        json={"model": model, "voice": voice, "input": text, "response_format": "pcm", **extra},
    )
    assert r.status_code == 200, r.text
    return r


def pcm_of(server: Server, voice: str, text: str = TEXT_A, **extra: object) -> np.ndarray:
    return np.frombuffer(speak(server, voice, text, **extra).content, "<i2")


def analyse(pcm: np.ndarray, rate: int = 24000) -> tuple[float, float, np.ndarray]:
    """(median F0 of voiced frames, voiced fraction, mean log envelope in 24 bands)."""
    import pyworld

    x = pcm.astype(np.float64) / 32768.0
    f0, t = pyworld.dio(x, rate, frame_period=10.0, f0_floor=60, f0_ceil=500)
    f0 = pyworld.stonemask(x, f0, t, rate)
    sp = pyworld.cheaptrick(x, f0, t, rate)
    voiced = f0 > 0
    bands = np.array_split(np.log(sp[voiced] + 1e-12), 24, axis=1) if voiced.any() else []
    envelope = np.array([b.mean() for b in bands]) if voiced.any() else np.zeros(24)
    median = float(np.median(f0[voiced])) if voiced.any() else 0.0
    return median, float(voiced.mean()), envelope - envelope.mean()


def test_openai_names_are_distinct_natural_voices_of_their_gender(server) -> None:
    text = f"{TEXT_A} {TEXT_B}"
    # each name rendered twice (at speed 1 and 1.1: every frame differs, the voice does
    # not); the spread between one voice's two renders is what "not distinct" means
    stats = {
        name: (analyse(pcm_of(server, name, text)), analyse(pcm_of(server, name, text, speed=1.1)))
        for name in OPENAI_NAMES
    }
    same_f0 = max(abs(np.log2(a[0] / b[0])) for a, b in stats.values())
    same_env = max(float(np.abs(a[2] - b[2]).mean()) for a, b in stats.values())

    def distinct(x: str, y: str) -> bool:
        (a, _), (b, _) = stats[x], stats[y]
        return (
            abs(np.log2(a[0] / b[0])) > 1.5 * same_f0
            or float(np.abs(a[2] - b[2]).mean()) > 1.5 * same_env
        )

    groups: list[list[str]] = []
    for name in OPENAI_NAMES:  # greedy: a name joins the first group it is not distinct from
        for group in groups:
            if not distinct(name, group[0]):
                group.append(name)
                break
        else:
            groups.append([name])
    assert len(groups) >= 8, groups
    f0 = {n: stats[n][0][0] for n in OPENAI_NAMES}
    female = float(np.median([f0[n] for n in OPENAI_NAMES if n not in MALE]))
    assert float(np.median([f0[n] for n in MALE])) < female
    assert all(f0[n] < female for n in MALE), {n: round(v) for n, v in f0.items()}


@pytest.mark.parametrize("model", ["tts-1", "tts-1-hd", "gpt-4o-mini-tts", "Kokoro-82m"])
def test_openai_vendor_ids_speak_naturally_by_default(server, openai_client, model) -> None:
    raw = openai_client.audio.speech.with_raw_response.create(
        model=model, voice="onyx", input=TEXT_A, response_format="wav"
    )
    samples, rate = decode(raw.content, "wav")
    assert rate == 24000 and len(samples) / rate > 1.5
    gen = raw.headers["x-orate-generation-id"]
    assert raw.headers["x-orate-engine"] == "natural"
    assert record(server, gen)["engine"] == "natural"


def record(server: Server, gen_id: str) -> dict:
    return wait_for(  # the history writer is asynchronous: wait for the row
        lambda: httpx.get(f"{server.url}/v1/history/{gen_id}", timeout=30),
        lambda r: r.status_code == 200,
        f"the history record {gen_id}",
    ).json()


def test_hume_default_request_is_natural(server) -> None:
    hume = HumeClient(api_key="test-key", base_url=server.url)
    result = hume.tts.synthesize_json(utterances=[PostedUtterance(text=TEXT_A)])
    gen = result.generations[0]
    assert gen.duration > 1.0
    assert record(server, gen.generation_id)["engine"] == "natural"


def test_hume_library_names_and_designs_are_natural(server) -> None:
    hume = HumeClient(api_key="test-key", base_url=server.url)
    for voice in ("Ava Song", "Kora", "Ito"):
        result = hume.tts.synthesize_json(
            utterances=[PostedUtterance(text=TEXT_A, voice={"name": voice, "provider": "HUME_AI"})]
        )
        assert record(server, result.generations[0].generation_id)["engine"] == "natural"
    designed = hume.tts.synthesize_json(
        utterances=[PostedUtterance(text=TEXT_A, description="a deep, calm older man")]
    )
    row = record(server, designed.generations[0].generation_id)
    assert row["engine"] == "natural"
    assert row["voice_params"][0]["voice"] in {
        "owl",
        "raven",
        "crow",
        "hawk",
        "rook",
        "heron",
        "joe",
    }


def test_elevenlabs_and_nanogpt_ids_are_natural(server) -> None:
    r = httpx.post(
        f"{server.url}/v1/text-to-speech/21m00Tcm4TlvDq8ikWAM",
        params={"output_format": "pcm_24000"},
        timeout=60,
        json={"text": TEXT_A, "model_id": "eleven_multilingual_v2"},
    )
    assert r.status_code == 200, r.text
    assert record(server, r.headers["request-id"])["engine"] == "natural"
    models = {m["id"]: m for m in httpx.get(f"{server.url}/v1/models").json()["data"]}
    for vendor in (
        "tts-1",
        "tts-1-hd",
        "gpt-4o-mini-tts",
        "octave-1",
        "octave-2",
        "Kokoro-82m",
        "Elevenlabs-Turbo-V2.5",
    ):
        assert models[vendor]["engine"] == "natural", models[vendor]
    assert models["espeak-ng"]["engine"] == "espeak"


def test_every_palette_voice_is_understood(server) -> None:
    recognizer = Recognizer(SENTENCES)
    for voice in PALETTE:
        for sentence in SENTENCES[:2]:
            data = speak(server, voice, sentence).content
            assert recognizer.which(data, "pcm") == sentence, voice


def test_listings_say_gender_base_and_transform(server) -> None:
    voices = httpx.get(
        f"{server.url}/v1/audio/voices", params={"model": "tts-1", "format": "objects"}
    ).json()["voices"]
    by_id = {v["id"]: v for v in voices}
    assert by_id["onyx"]["gender"] == "male" and by_id["alloy"]["gender"] == "female"
    assert by_id["joe"]["gender"] == "male" and by_id["heart"]["gender"] == "female"
    assert sum(1 for p in PALETTE if by_id[p]["gender"] == "male") >= 3
    assert sum(1 for p in PALETTE if by_id[p]["gender"] == "female") >= 3


def test_directions_change_the_audio_in_the_asked_direction(server) -> None:
    plain = pcm_of(server, "alloy")
    f0, voiced, _ = analyse(plain)
    slow = pcm_of(server, "alloy", instructions="Speak slowly.")
    assert len(slow) > 1.1 * len(plain)
    whisper = pcm_of(server, "alloy", instructions="Whisper it.")
    assert analyse(whisper)[1] < 0.5 * voiced
    high = pcm_of(server, "alloy", instructions="excited, high-pitched")
    assert analyse(high)[0] > 1.1 * f0
    deep = pcm_of(server, "cedar", instructions="a deep voice")
    assert analyse(deep)[0] < 0.95 * analyse(pcm_of(server, "cedar"))[0]


def test_designed_voice_is_natural_and_reusable_from_the_cli(tmp_path) -> None:
    import os

    env = {**os.environ, "ORATE_DATA_DIR": str(tmp_path), **NATURAL_DEFAULTS}
    made = subprocess.run(
        [
            sys.executable,
            "-m",
            "orate.cli",
            "voices",
            "create",
            "grandpa",
            "--description",
            "a deep, slow, older man",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert made.returncode == 0, made.stderr
    out = tmp_path / "grandpa.wav"
    said = subprocess.run(
        [sys.executable, "-m", "orate.cli", "say", TEXT_A, "--voice", "grandpa", "-o", str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert said.returncode == 0, said.stderr
    samples, rate = decode(out.read_bytes(), "wav")
    assert rate == 24000
    assert analyse(samples, rate)[0] < 140  # a man's voice


def test_bad_voice_input_is_a_clear_error(server) -> None:
    r = httpx.post(
        f"{server.url}/v1/audio/speech",
        timeout=30,
        json={"model": "tts-1", "voice": "nobody", "input": TEXT_A},
    )
    assert r.status_code == 400
    message = r.json()["error"]["message"]
    assert "heart" in message and "onyx" in message
    # an out-of-range setting is clamped and said so, not a 500 or garbage
    r = httpx.post(
        f"{server.url}/v1/text-to-speech/21m00Tcm4TlvDq8ikWAM",
        params={"output_format": "pcm_24000"},
        timeout=60,
        json={
            "text": TEXT_A,
            "model_id": "eleven_multilingual_v2",
            "voice_settings": {"stability": 0.0, "style": 1.0},
        },
    )
    assert r.status_code == 200
    # a non-English espeak-ng voice still works on a vendor id
    french = speak(server, "fr-fr", "Bonjour tout le monde.")
    assert french.headers["x-orate-engine"] == "espeak"


def test_out_of_range_values_are_clamped_and_reported() -> None:
    from orate.engines.base import VoiceParams
    from orate.engines.registry import EngineRegistry
    from orate.speech.design import voice_notes

    wild = VoiceParams(engine="natural", voice="heart", formant=3.0, f0=float("nan"))
    notes = voice_notes([wild])
    assert any("formant" in n for n in notes) and any("f0" in n for n in notes)
    parts: list[np.ndarray] = []
    engine = EngineRegistry().engine("natural")
    engine.synthesize(
        TEXT_A, engine.check_voice(wild), 1.0, lambda pcm, events: parts.append(pcm) or True
    )
    audio = np.concatenate(parts)
    assert len(audio) > 24000 and np.isfinite(audio.astype(float)).all()
