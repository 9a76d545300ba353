"""Streamed mp3 (LameEncoder): libmp3lame through ctypes, and lameenc when that can't load.

A streamed mp3 is bare MPEG frames, so it is checked frame by frame (headers tile the
bytes exactly, each says the asked bitrate, rate and mono), decoded with PyAV for its
length, and listened to by pocketsphinx.
"""

from __future__ import annotations

import gc
import io
import subprocess
import sys
import threading

import av
import numpy as np
import pytest

from orate.audio import encoder as encoder_mod
from orate.audio.encoder import LameEncoder, LameLibrary, lame_library, make_encoder
from orate.audio.formats import FORMATS
from orate.engines.base import VoiceParams
from orate.engines.espeak import get_engine

MP3 = FORMATS["mp3"]
RATE = 22050
CHUNK = 1323  # 60 ms at 22.05 kHz, what the engine's callback delivers
LAME_DELAY = 576 + 529  # LAME's encoder delay in samples, which a bare stream can't state

# MPEG audio frame headers: version bits -> (sample rates, kb/s of layer III)
_RATES = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000), 0: (11025, 12000, 8000)}
_KBPS_V1 = (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320)
_KBPS_V2 = (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160)


def frames(data: bytes) -> list[tuple[int, int, int]]:
    """(kb/s, sample rate, channel mode) of each layer III frame; asserts they tile ``data``
    exactly from its first byte (no tag, no Xing frame, no garbage between frames)."""
    out = []
    pos = 0
    while pos < len(data):
        assert pos + 4 <= len(data), f"a truncated frame header at byte {pos}"
        h = int.from_bytes(data[pos : pos + 4], "big")
        assert h >> 21 == 0x7FF, f"no frame sync at byte {pos}"
        version, layer = (h >> 19) & 3, (h >> 17) & 3
        assert layer == 1, "layer III"
        kbps = (_KBPS_V1 if version == 3 else _KBPS_V2)[(h >> 12) & 15]
        rate = _RATES[version][(h >> 10) & 3]
        padding, mode = (h >> 9) & 1, (h >> 6) & 3
        size = (144 if version == 3 else 72) * kbps * 1000 // rate + padding
        out.append((kbps, rate, mode))
        pos += size
    assert pos == len(data), "the last frame is cut short"
    return out


@pytest.fixture(scope="module")
def speech() -> list[np.ndarray]:
    chunks: list[np.ndarray] = []
    get_engine().synthesize(
        "The weather is cold and windy today. Please call me back tomorrow morning.",
        VoiceParams(voice="en-us", variant="f2"),
        1.0,
        lambda pcm, _ev: chunks.append(pcm.copy()) or True,
    )
    return chunks


def run(enc: LameEncoder, chunks: list[np.ndarray]) -> tuple[list[bytes], bytes]:
    parts = [enc.feed(c) for c in chunks]
    parts.append(enc.finish())
    return parts, b"".join(parts)


def decoded_samples(data: bytes) -> tuple[int, int]:
    with av.open(io.BytesIO(data)) as c:
        return sum(f.samples for f in c.decode(audio=0)), c.streams.audio[0].rate


@pytest.mark.fast
def test_the_library_loads_from_lameenc_and_is_the_default() -> None:
    lib = lame_library()
    assert lib is not None, "lameenc's extension module exports LAME's C API"
    assert LameEncoder(MP3, RATE, RATE, bitrate=48_000).library is lib


@pytest.mark.parametrize("library", ["auto", "lameenc"])
def test_streamed_mp3_is_whole_frames_at_the_asked_settings(speech, library) -> None:
    parts, data = run(LameEncoder(MP3, RATE, RATE, bitrate=48_000, library=library), speech)
    assert parts[0] or parts[1], "the first 60 ms chunk's frames leave at once"
    assert sum(1 for p in parts if p) > len(parts) // 2, "frames leave as they are made"
    heads = frames(data)
    assert {h for h in heads} == {(48, RATE, 3)}  # 48 kb/s CBR, 22.05 kHz, mono
    n = sum(len(c) for c in speech)
    samples, rate = decoded_samples(data)
    assert rate == RATE
    # everything comes out: the input plus LAME's priming delay, plus at most a frame
    assert n + LAME_DELAY <= samples <= n + LAME_DELAY + 576
    assert len(heads) == samples // 576


@pytest.mark.fast
@pytest.mark.parametrize("kbps", [32, 64])
def test_bitrate_is_what_was_asked(speech, kbps: int) -> None:
    _, data = run(make_encoder("mp3", RATE, RATE, bitrate=kbps * 1000), speech)
    assert {h[0] for h in frames(data)} == {kbps}


@pytest.mark.fast
def test_any_cut_of_the_stream_into_chunks_concatenates_to_one_stream(speech) -> None:
    """Chunks of any size (a sample, a frame and a bit, the engine's) give the same bytes:
    the encoder keeps no per-call state a chunk boundary could break."""
    pcm = np.concatenate(speech)
    whole = run(LameEncoder(MP3, RATE, RATE, bitrate=48_000), [pcm])[1]
    for size in (1, 577, CHUNK, 5000):
        pieces = [pcm[i : i + size] for i in range(0, len(pcm), size)]
        assert run(LameEncoder(MP3, RATE, RATE, bitrate=48_000), pieces)[1] == whole


@pytest.mark.fast
def test_encoders_in_threads_do_not_share_state(speech) -> None:
    expected = run(LameEncoder(MP3, RATE, RATE, bitrate=48_000), speech)[1]
    results: list[bytes] = []

    def work() -> None:
        for _ in range(3):
            results.append(run(LameEncoder(MP3, RATE, RATE, bitrate=48_000), speech)[1])

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 12 and all(r == expected for r in results)


@pytest.mark.fast
def test_lame_state_is_freed_when_finished_or_dropped() -> None:
    enc = LameEncoder(MP3, RATE, RATE, bitrate=48_000)
    enc.feed(np.zeros(CHUNK, np.int16))
    assert enc._close.alive
    assert enc.finish() and not enc._close.alive
    assert enc.finish() == b""  # a second finish is harmless
    dropped = LameEncoder(MP3, RATE, RATE, bitrate=48_000)
    dropped.feed(np.zeros(CHUNK, np.int16))
    closer = dropped._close
    del dropped
    gc.collect()
    assert not closer.alive


@pytest.mark.fast
def test_falls_back_to_lameenc_when_no_library_loads(speech, monkeypatch) -> None:
    monkeypatch.setattr(encoder_mod, "_lame_candidates", lambda: ["/nonexistent/libmp3lame.so"])
    lame_library.cache_clear()
    try:
        assert lame_library() is None
        enc = make_encoder("mp3", RATE, RATE, bitrate=48_000)
        assert isinstance(enc, LameEncoder) and enc.library is None
        _, data = run(enc, speech)
    finally:
        lame_library.cache_clear()
    assert {h for h in frames(data)} == {(48, RATE, 3)}
    n = sum(len(c) for c in speech)
    assert n + LAME_DELAY <= decoded_samples(data)[0] <= n + LAME_DELAY + 576


@pytest.mark.fast
def test_a_file_without_lames_api_is_not_a_library(tmp_path) -> None:
    with pytest.raises((OSError, AttributeError)):
        LameLibrary(str(tmp_path / "nothing.so"))
    libc = encoder_mod.ctypes.util.find_library("c")
    with pytest.raises(AttributeError):
        LameLibrary(libc)


@pytest.mark.fast
def test_a_streamed_sentence_is_understood(recognizer) -> None:
    chunks: list[np.ndarray] = []
    get_engine().synthesize(
        "Turn left at the next traffic light.",
        VoiceParams(voice="en-us", variant="f2"),
        1.0,
        lambda pcm, _ev: chunks.append(pcm.copy()) or True,
    )
    _, data = run(LameEncoder(MP3, RATE, RATE, bitrate=48_000), chunks)
    assert recognizer.which(data, "mp3") == "turn left at the next traffic light"


def test_a_streamed_mp3_render_does_not_load_pyav() -> None:
    """PyAV costs ~17 MiB per process: encoding wav, pcm or streamed mp3 at the engine's
    rate must not load it (test_layers.py checks the imports alone)."""
    code = (
        "import sys, numpy as np\n"
        "from orate.audio.encoder import make_encoder\n"
        "for fmt in ('mp3', 'wav', 'pcm'):\n"
        "    enc = make_encoder(fmt, 22050, 22050, bitrate=48000)\n"
        "    enc.feed(np.zeros(1323, np.int16)); enc.finish()\n"
        "print('av' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == "False"


@pytest.mark.fast
def test_feeding_after_finish_is_an_error_not_a_use_after_free() -> None:
    enc = LameEncoder(MP3, RATE, RATE, bitrate=48_000)
    enc.feed(np.zeros(CHUNK, np.int16))
    enc.finish()
    with pytest.raises(RuntimeError):
        enc.feed(np.zeros(CHUNK, np.int16))
