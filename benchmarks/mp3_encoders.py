#!/usr/bin/env python3
"""Which mp3 encoder streams speech cheapest at equal quality (issue "throughput").

Both candidates get the same espeak PCM in the same ~60 ms chunks the engine
delivers, at the same bitrate (48 kb/s) and LAME quality (-q7), alternately, so
machine drift hits both: PyAV's libmp3lame behind a muxer (the streaming path until
2026-11-30) and ``lameenc`` (libmp3lame called directly; the streaming path now).
Quality is compared on the decoded output: SNR against the input after aligning
the codec delay, and the decoded length. Prints a Markdown table.

    python benchmarks/mp3_encoders.py [--rounds 15]
"""

from __future__ import annotations

import argparse
import io
import statistics
import time

import av
import numpy as np

from orate.audio.encoder import CodecEncoder, LameEncoder
from orate.audio.formats import FORMATS
from orate.engines.base import VoiceParams
from orate.engines.espeak import get_engine

TEXT = ("The quick brown fox jumps over the lazy dog. We will meet at the train station "
        "at noon, and then walk to the museum together. ") * 10
RATE = 22050


def speech_chunks() -> list[np.ndarray]:
    chunks: list[np.ndarray] = []
    get_engine().synthesize(TEXT, VoiceParams(voice="en-us", variant="f2"), 1.0,
                            lambda pcm, _events: chunks.append(pcm.copy()) or True)
    return chunks


def encode(kind: str, chunks: list[np.ndarray]) -> bytes:
    fmt = FORMATS["mp3"]
    enc = (LameEncoder(fmt, RATE, RATE, bitrate=48_000) if kind == "lameenc" else
           CodecEncoder(fmt, RATE, RATE, bitrate=48_000, whole_file=False))
    out = [enc.feed(c) for c in chunks]
    out.append(enc.finish())
    return b"".join(out)


def decode(data: bytes) -> np.ndarray:
    with av.open(io.BytesIO(data)) as c:
        frames = [f.to_ndarray().reshape(-1) for f in c.decode(audio=0)]
    x = np.concatenate(frames)
    return x * 32768.0 if x.dtype.kind == "f" else x.astype(np.float64)


def snr(ref: np.ndarray, out: np.ndarray) -> float:
    """SNR in dB after the codec delay that fits best (searched over 0-3000 samples)."""
    ref = ref.astype(np.float64)
    best = np.inf
    for lag in range(0, 3000, 1):
        seg = out[lag:lag + len(ref)]
        if len(seg) < 0.95 * len(ref):
            break
        best = min(best, float(np.sum((ref[:len(seg)] - seg) ** 2)))
    return 10 * np.log10(float(np.sum(ref ** 2)) / best)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=15)
    args = ap.parse_args()
    chunks = speech_chunks()
    pcm = np.concatenate(chunks)
    seconds = len(pcm) / RATE
    times: dict[str, list[float]] = {"pyav": [], "lameenc": []}
    data: dict[str, bytes] = {}
    for _ in range(args.rounds):
        for kind in times:  # alternate, so drift hits both
            t = time.perf_counter()
            data[kind] = encode(kind, chunks)
            times[kind].append(time.perf_counter() - t)
    print(f"{seconds:.1f} s of espeak speech in {len(chunks)} chunks, 48 kb/s, LAME -q7, "
          f"{args.rounds} rounds alternating\n")
    print("| encoder | p50 ms | x real time | bytes | decoded s | SNR dB |")
    print("|---|---|---|---|---|---|")
    for kind, ts in times.items():
        p50 = statistics.median(ts)
        dec = decode(data[kind])
        print(f"| {kind} | {p50 * 1000:.1f} | {seconds / p50:.0f} | {len(data[kind])} | "
              f"{len(dec) / RATE:.2f} | {snr(pcm, dec):.2f} |")
    ratio = statistics.median(times["pyav"]) / statistics.median(times["lameenc"])
    print(f"\nlameenc is {ratio:.2f}x the speed of PyAV's libmp3lame at the same settings")


if __name__ == "__main__":
    main()
