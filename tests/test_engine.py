"""The embedded espeak-ng engine and the streaming encoders, in-process."""

from __future__ import annotations

import io
import struct

import av
import numpy as np
import pytest

from orate.audio.encoder import (
    CodecEncoder,
    LameEncoder,
    TimeStretch,
    fix_wav_sizes,
    make_encoder,
)
from orate.audio.formats import FORMATS
from orate.engines.base import EngineEvent, UnknownVoice, VoiceParams
from orate.engines.espeak import get_engine
from orate.engines.registry import EngineRegistry

from .conftest import decode

pytestmark = pytest.mark.fast  # in-process only: see the fast tier in tests/conftest.py


@pytest.fixture(scope="module")
def engine():
    return EngineRegistry().engine("espeak")


def synth(engine, text: str, voice: VoiceParams, speed: float = 1.0):
    chunks: list[np.ndarray] = []
    events: list[EngineEvent] = []

    def sink(pcm, evs):
        chunks.append(pcm.copy())
        events.extend(evs)
        return True

    engine.synthesize(text, engine.check_voice(voice), speed, sink)
    return np.concatenate(chunks), events, chunks


def test_all_voices_are_listed_with_language_and_gender(engine) -> None:
    voices = engine.voices()
    assert len(voices) >= 141
    ids = {v.id for v in voices}
    assert {"en-us", "en-gb", "fr-fr", "de", "es", "cmn", "ja"} <= ids
    assert len(ids) == len(voices)
    assert all(v.language and v.gender in ("male", "female", "neutral") for v in voices)
    assert len(engine.variants) >= 100 and "f3" in engine.variants


@pytest.mark.parametrize("voice", ["fr-fr", "de", "es", "ja", "cmn", "ru", "hi", "ar"])
def test_voices_in_many_languages_make_sound(engine, voice: str) -> None:
    pcm, _, _ = synth(engine, "123", VoiceParams(voice=voice))
    assert len(pcm) > engine.sample_rate * 0.2
    assert np.abs(pcm).max() > 1000


def test_names_are_resolved_and_bad_names_refused(engine) -> None:
    assert engine.check_voice(VoiceParams(voice="en-us+f3")).variant == "f3"
    assert engine.check_voice(VoiceParams(voice="French (France)")).voice == "fr-fr"
    assert engine.check_voice(VoiceParams(voice="roa/fr")).voice == "fr-fr"
    assert engine.check_voice(VoiceParams(voice="klingon")).voice == "piqd"  # it exists!
    for bad in ("elvish", "en-us+nope", "", "../../etc/passwd"):
        with pytest.raises(UnknownVoice):
            engine.check_voice(VoiceParams(voice=bad))
    with pytest.raises(UnknownVoice):
        engine.check_voice(VoiceParams(voice="en-us", pitch=500))


def test_variants_and_pitch_change_the_audio(engine) -> None:
    text = "Good morning everyone."
    base, _, _ = synth(engine, text, VoiceParams(voice="en-us"))
    female, _, _ = synth(engine, text, VoiceParams(voice="en-us", variant="f3"))
    high, _, _ = synth(engine, text, VoiceParams(voice="en-us", pitch=90))
    again, _, _ = synth(engine, text, VoiceParams(voice="en-us"))

    def f0(x: np.ndarray, rate: int = engine.sample_rate) -> float:
        """Median pitch of the voiced frames, by autocorrelation."""
        found = []
        for i in range(0, len(x) - 1024, 512):
            frame = x[i : i + 1024].astype(float)
            if np.abs(frame).max() < 2000:
                continue
            ac = np.correlate(frame, frame, "full")[1023:]
            lo, hi = rate // 400, rate // 60
            found.append(rate / (lo + int(np.argmax(ac[lo:hi]))))
        return float(np.median(found))

    assert abs(len(again) - len(base)) < len(base) * 0.02  # repeatable, within a few ms
    assert f0(female) > f0(base) * 1.5
    assert f0(high) > f0(base) * 1.25
    # the pitch override does not leak into the next request with the plain voice
    assert abs(f0(again) - f0(base)) < f0(base) * 0.05


def test_speed_maps_to_rate(engine) -> None:
    text = "The quick brown fox jumps over the lazy dog near the river bank."
    normal, _, _ = synth(engine, text, VoiceParams(voice="en-us"))
    fast, _, _ = synth(engine, text, VoiceParams(voice="en-us"), speed=2.0)
    assert 0.4 < len(fast) / len(normal) < 0.62


def test_audio_arrives_in_small_chunks_with_events(engine) -> None:
    text = "Hello wörld, naïve café."
    pcm, events, chunks = synth(engine, text, VoiceParams(voice="en-us"))
    assert len(chunks) > 5 and max(len(c) for c in chunks) <= engine.sample_rate * 0.07
    words = [e for e in events if e.kind == "word"]
    assert [text[e.text_pos : e.text_pos + e.length] for e in words] == [
        "Hello",
        "wörld",
        "naïve",
        "café",
    ]  # code points, not UTF-8 bytes
    phonemes = [e for e in events if e.kind == "phoneme" and e.text]
    assert len(phonemes) > 10 and any("ˈ" in p.text for p in phonemes)  # IPA with stress
    times = [e.time_ms for e in events]
    assert times == sorted(times) and times[-1] < len(pcm) / engine.sample_rate * 1000


def test_ssml_mode_reports_positions_in_the_source(engine) -> None:
    ssml = '<speak>Hello <break time="400ms"/> big world.</speak>'
    chunks, events = [], []
    engine.synthesize(
        ssml,
        engine.check_voice(VoiceParams()),
        1.0,
        lambda p, e: chunks.append(p) or events.extend(e) or True,
        ssml=True,
    )
    words = [ssml[e.text_pos : e.text_pos + e.length] for e in events if e.kind == "word"]
    assert words == ["Hello", "big", "world"]
    plain = np.concatenate(synth(engine, "Hello big world.", VoiceParams())[2])
    assert len(np.concatenate(chunks)) > len(plain) + 0.3 * engine.sample_rate  # the break


def test_sink_returning_false_stops_synthesis(engine) -> None:
    calls = []
    result = engine.synthesize(
        "word " * 400,
        engine.check_voice(VoiceParams()),
        1.0,
        lambda p, e: calls.append(1) or len(calls) < 3,
    )
    assert result.stopped and len(calls) == 3


@pytest.mark.parametrize("fmt", list(FORMATS))
@pytest.mark.parametrize("whole", [False, True])
def test_encoders_stream_and_decode_to_the_input_length(engine, fmt: str, whole: bool) -> None:
    _, _, chunks = synth(
        engine,
        "Testing every format of the encoder. Twice over.",
        VoiceParams(voice="en-us", variant="f2"),
    )
    n = sum(len(c) for c in chunks)
    rate = FORMATS[fmt].output_rate(engine.sample_rate)
    enc = make_encoder(fmt, engine.sample_rate, rate, bitrate=48000, whole_file=whole)
    parts = [enc.feed(c) for c in chunks]
    if not whole:
        assert sum(1 for p in parts if p) > 3, "a streaming encoder emits as it goes"
    data = b"".join(parts) + enc.finish()
    samples, out_rate = decode(data, fmt, rate)
    assert out_rate == (48000 if fmt == "opus" else rate)  # Opus always decodes at 48 kHz
    expected = n / engine.sample_rate
    # streamed mp3/aac carry the codec's priming delay (no seekable header to say so)
    tolerance = 0.002 if (whole and fmt != "aac") or not FORMATS[fmt].lossy else 0.03
    assert abs(len(samples) / out_rate - expected) <= max(tolerance * expected, 0.002)
    if fmt == "wav":
        size = struct.unpack_from("<I", data, 40)[0]
        assert size == (len(data) - 44 if whole else 0xFFFFFFFF)


def test_fix_wav_sizes_patches_a_streamed_header() -> None:
    enc = make_encoder("wav", 22050, 22050)
    data = enc.feed(np.zeros(1000, np.int16)) + enc.finish()
    fixed = fix_wav_sizes(data)
    assert struct.unpack_from("<I", fixed, 40)[0] == 2000
    assert av.open(io.BytesIO(fixed)).streams.audio[0].rate == 22050


def test_time_stretch_slows_without_losing_the_tail() -> None:
    stretch = TimeStretch(22050, 0.5)
    tone = (np.sin(np.arange(22050) / 22050 * 2 * np.pi * 200) * 8000).astype(np.int16)
    out = np.concatenate(
        [stretch(tone[i : i + 1000]) for i in range(0, len(tone), 1000)] + [stretch(None)]
    )
    assert abs(len(out) - 44100) < 600


def test_streamed_mp3_matches_pyav_libmp3lame_at_equal_settings() -> None:
    """The streaming path (LAME through ctypes, no short blocks) decodes to the same length
    as PyAV's libmp3lame at -q7 and to nearly the same samples."""
    chunks: list[np.ndarray] = []
    get_engine().synthesize(
        "The weather is cold and windy today.",
        VoiceParams(),
        1.0,
        lambda pcm, _ev: chunks.append(pcm.copy()) or True,
    )
    pcm = np.concatenate(chunks)

    def run(enc) -> np.ndarray:
        data = b"".join([enc.feed(c) for c in chunks] + [enc.finish()])
        with av.open(io.BytesIO(data)) as c:
            assert c.streams.audio[0].rate == 22050
            return np.concatenate([f.to_ndarray().reshape(-1) for f in c.decode(audio=0)])

    fmt = FORMATS["mp3"]
    lame = run(LameEncoder(fmt, 22050, 22050, bitrate=48_000))
    pyav = run(CodecEncoder(fmt, 22050, 22050, bitrate=48_000, whole_file=False))
    assert abs(len(lame) - len(pyav)) <= 1152  # at most one mp3 frame apart
    assert len(lame) >= len(pcm)  # nothing lost at the tail
    n = min(len(lame), len(pyav))
    energy = float(np.sum(pyav[:n].astype(np.float64) ** 2))
    diff = float(np.sum((lame[:n].astype(np.float64) - pyav[:n].astype(np.float64)) ** 2))
    assert diff < 0.05 * energy  # the same encoder, short blocks aside: near-identical output


def test_streamed_mp3_of_no_audio_is_empty_not_an_error() -> None:
    """An engine that makes no samples (an emoji-only text on a neural voice) must not
    break the encoder: finishing an mp3 that was never fed gives no bytes."""
    enc = LameEncoder(FORMATS["mp3"], 24000, 22050, bitrate=48_000)
    assert enc.feed(np.empty(0, dtype=np.int16)) == b""
    assert enc.finish() == b""


@pytest.mark.parametrize("rates", [(22050, 22050), (22050, 48000), (24000, 16000)])
def test_streamed_mp3_keeps_the_tail_through_the_resampler(rates: tuple[int, int]) -> None:
    """The resampler's flushed tail is encoded, not resampled a second time."""
    in_rate, out_rate = rates
    tone = (np.sin(np.arange(in_rate) * 2 * np.pi * 220 / in_rate) * 8000).astype(np.int16)
    enc = LameEncoder(FORMATS["mp3"], in_rate, out_rate, bitrate=48_000)
    data = b"".join(
        [enc.feed(tone[i : i + 1323]) for i in range(0, len(tone), 1323)] + [enc.finish()]
    )
    with av.open(io.BytesIO(data)) as c:
        assert c.streams.audio[0].rate == out_rate
        samples = sum(f.samples for f in c.decode(audio=0))
    assert abs(samples / out_rate - 1.0) < 0.1
