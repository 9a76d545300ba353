#!/usr/bin/env python3
"""Which mp3 encoder streams speech cheapest at a quality a listener accepts.

Every candidate gets the same espeak PCM (en-us+f2, the 218-word text of the throughput
benchmark, ~68 s) in the same ~60 ms chunks the engine delivers, in alternating rounds so
machine drift hits all alike; CPU is ``time.process_time`` per whole encode, median over
rounds. Quality is measured on the decoded output:

- SNR against the input, after the codec delay that fits best (a lower output rate is
  decoded, resampled back to 22.05 kHz and compared with the original, so the lost
  bandwidth counts);
- decoded length minus input length (a streamed mp3 has no header to say the encoder's
  delay, so ~50 ms of priming plus the last frame's padding is expected);
- an ASR round trip: each of the test suite's ten sentences spoken, encoded, decoded and
  transcribed by pocketsphinx against a grammar of all ten (0.3 s of silence each side).

The candidates are LAME through ``lameenc``'s Python API (the streaming path until
2026-12-01), LAME through ctypes (``orate.audio.encoder.LameLibrary``) from each build on
this machine and at the settings ``lameenc`` can't reach, the same at lower output rates
(a quality trade, not a setting), and PyAV's libmp3lame behind its muxer. Prints a
Markdown table.

    python benchmarks/mp3_encoders.py [--rounds 9]
"""

from __future__ import annotations

import argparse
import glob
import io
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT))

from tests.conftest import SENTENCES, Recognizer  # noqa: E402

from harness import LONG_TEXT  # noqa: E402
from orate.audio.encoder import (  # noqa: E402
    CodecEncoder,
    Encoder,
    LameEncoder,
    LameLibrary,
    _lame_candidates,
)
from orate.audio.formats import FORMATS  # noqa: E402
from orate.engines.base import VoiceParams  # noqa: E402
from orate.engines.espeak import get_engine  # noqa: E402

RATE = 22050
MP3 = FORMATS["mp3"]
VOICE = VoiceParams(voice="en-us", variant="f2")


@dataclass(frozen=True)
class Candidate:
    label: str
    make: Callable[[], Encoder]
    out_rate: int = RATE


def speech_chunks(text: str) -> list[np.ndarray]:
    chunks: list[np.ndarray] = []
    get_engine().synthesize(
        text, VOICE, 1.0, lambda pcm, _events: chunks.append(pcm.copy()) or True
    )
    return chunks


def encode(cand: Candidate, chunks: list[np.ndarray]) -> bytes:
    enc = cand.make()
    out = [enc.feed(c) for c in chunks]
    out.append(enc.finish())
    return b"".join(out)


def decode(data: bytes, back_to: int = RATE) -> tuple[np.ndarray, int]:
    """Decoded samples as float64, resampled to ``back_to``; and the stream's own count."""
    with av.open(io.BytesIO(data)) as c:
        frames = list(c.decode(audio=0))
    rs = av.AudioResampler(format="s16", layout="mono", rate=back_to)
    own = sum(f.samples for f in frames)
    parts = [g.to_ndarray().reshape(-1) for f in frames for g in rs.resample(f)]
    parts += [g.to_ndarray().reshape(-1) for g in rs.resample(None)]
    return np.concatenate(parts).astype(np.float64), own


def snr(ref: np.ndarray, out: np.ndarray, max_lag: int = 3000) -> float:
    """SNR in dB at the codec delay that fits best (0..max_lag samples), found exactly:
    the error at each lag is |ref|^2 - 2 xcorr + |out segment|^2, all by FFT/cumsum."""
    ref = ref.astype(np.float64)
    n = len(ref)
    out = np.concatenate([out, np.zeros(max(0, n + max_lag - len(out)))])
    size = 1 << int(np.ceil(np.log2(len(out) + n)))
    xc = np.fft.irfft(np.fft.rfft(out, size) * np.conj(np.fft.rfft(ref, size)), size)
    lags = np.arange(max_lag + 1)
    csum = np.concatenate([[0.0], np.cumsum(out**2)])
    err = float(np.sum(ref**2)) - 2 * xc[lags] + (csum[lags + n] - csum[lags])
    return 10 * np.log10(float(np.sum(ref**2)) / max(float(np.min(err)), 1e-9))


def candidates() -> list[Candidate]:
    libs = _lame_candidates()
    own = LameLibrary(libs[0])  # lameenc's extension module: its LAME, same build
    system = LameLibrary(libs[1]) if len(libs) > 1 else None
    bundled = glob.glob(os.path.join(os.path.dirname(av.__file__) + ".libs", "libmp3lame*"))
    pyav_lib = LameLibrary(bundled[0]) if bundled else None

    def lame(
        library: LameLibrary | str = "auto",
        quality: int = 7,
        short: bool = False,
        rate: int = RATE,
        kbps: int = 48,
    ) -> Callable[[], Encoder]:
        return lambda: LameEncoder(
            MP3,
            RATE,
            rate,
            bitrate=kbps * 1000,
            library=library,
            quality=quality,
            short_blocks=short,
        )

    out = [
        Candidate("lameenc q7 (before)", lame("lameenc")),
        Candidate(f"ctypes q7, lameenc's LAME {own.version}", lame(own, short=True)),
        Candidate(f"ctypes q9, lameenc's LAME {own.version}", lame(own, 9, short=True)),
    ]
    if system is not None:
        out.append(
            Candidate(f"ctypes q9, system libmp3lame {system.version}", lame(system, 9, short=True))
        )
    if pyav_lib is not None:
        out.append(
            Candidate(
                f"ctypes q7, PyAV's bundled libmp3lame {pyav_lib.version}",
                lame(pyav_lib, short=True),
            )
        )
    out += [
        Candidate("**ctypes q7, no short blocks (now)**", lame(own)),
        Candidate(
            "ctypes q7, no short blocks, 16 kHz 40 kb/s", lame(own, rate=16000, kbps=40), 16000
        ),
        Candidate(
            "ctypes q7, no short blocks, 11.025 kHz 32 kb/s", lame(own, rate=11025, kbps=32), 11025
        ),
        Candidate(
            "PyAV libmp3lame q7 + muxer",
            lambda: CodecEncoder(MP3, RATE, RATE, bitrate=48_000, whole_file=False),
        ),
    ]
    return out


def asr(
    cand: Candidate, sentences: list[tuple[str, list[np.ndarray]]], recognizer: Recognizer
) -> int:
    return sum(recognizer.which(encode(cand, chunks), "mp3") == text for text, chunks in sentences)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=9)
    args = ap.parse_args()
    chunks = speech_chunks(LONG_TEXT)
    pcm = np.concatenate(chunks)
    seconds = len(pcm) / RATE
    cands = candidates()
    load = os.getloadavg()[0]
    times: dict[str, list[float]] = {c.label: [] for c in cands}
    data: dict[str, bytes] = {}
    for _ in range(args.rounds):
        for cand in cands:  # alternate, so drift hits all
            t = time.process_time()
            data[cand.label] = encode(cand, chunks)
            times[cand.label].append(time.process_time() - t)
    load = max(load, os.getloadavg()[0])
    recognizer = Recognizer(SENTENCES)
    sentences = [(s, speech_chunks(s.capitalize() + ".")) for s in SENTENCES]
    base = statistics.median(times[cands[0].label])
    print(
        f"{len(LONG_TEXT.split())} words of espeak en-us+f2: {seconds:.1f} s of speech in "
        f"{len(chunks)} chunks; CBR 48 kb/s mono at 22.05 kHz unless said; "
        f"CPU medians of {args.rounds} alternating rounds (load average up to {load:.1f} "
        f"on {os.cpu_count()} CPUs); ASR: sentences of {len(SENTENCES)} transcribed "
        "right\n"
    )
    print("| encoder | CPU ms | x real time | vs lameenc q7 | SNR dB | decoded - input ms | ASR |")
    print("|---|---|---|---|---|---|---|")
    for cand in cands:
        p50 = statistics.median(times[cand.label])
        dec, own = decode(data[cand.label])
        err_ms = (own / cand.out_rate - seconds) * 1000
        print(
            f"| {cand.label} | {p50 * 1000:.1f} | {seconds / p50:.0f} | {base / p50:.2f}x | "
            f"{snr(pcm, dec):.1f} | {err_ms:+.0f} | "
            f"{asr(cand, sentences, recognizer)}/{len(SENTENCES)} |"
        )


if __name__ == "__main__":
    main()
