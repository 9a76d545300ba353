"""The natural palette, voice by voice: intelligibility, pitch, speed, first audio, memory.

For each palette voice: open-vocabulary WER (pocketsphinx's default English model, no
grammar) on 20 everyday sentences, beside its base voice's; median F0 (WORLD's dio and
stonemask); real-time factor on one core (in-process, the engine alone); time to first
audio of a 3-sentence text through a real server (first body byte of a streamed wav);
and the server's process tree RSS once every palette voice has spoken.

    python benchmarks/palette.py [--sentences 20] [--out results.md]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SENTENCES = [
    "Please call me back when you get this message.",
    "The meeting has been moved to next Tuesday afternoon.",
    "I would like a cup of coffee with milk.",
    "The weather will be sunny and warm tomorrow.",
    "Turn left at the second traffic light.",
    "She bought three new books at the store.",
    "We need to finish the report by Friday.",
    "The train to the city leaves every hour.",
    "Can you help me find my keys?",
    "He plays the piano every evening after dinner.",
    "The children are playing in the garden.",
    "Our flight was delayed because of the storm.",
    "Thank you for your patience and support.",
    "The doctor said I should get more sleep.",
    "Let me know if you have any questions.",
    "The house at the end of the street is for sale.",
    "I forgot to bring my umbrella this morning.",
    "They opened a new restaurant downtown last week.",
    "Remember to turn off the lights before you leave.",
    "The music was so loud that nobody could talk.",
]
THREE = " ".join(SENTENCES[:3])


def _words(text: str) -> list[str]:
    return re.sub(r"[^a-z' ]", " ", text.lower()).split()


def _wer(ref: list[str], hyp: list[str]) -> int:
    """Word edit distance (substitutions, insertions, deletions)."""
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
    return row[-1]


class Asr:
    def __init__(self) -> None:
        from pocketsphinx import Decoder

        self.decoder = Decoder(samprate=16000, logfn=os.devnull)

    def __call__(self, pcm: np.ndarray, rate: int) -> str:
        import av

        rs = av.AudioResampler(format="s16", layout="mono", rate=16000)
        frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = rate
        parts = [f.to_ndarray().reshape(-1) for f in rs.resample(frame)]
        parts += [f.to_ndarray().reshape(-1) for f in rs.resample(None)]
        pad = np.zeros(4800, np.int16)
        self.decoder.start_utt()
        self.decoder.process_raw(np.concatenate([pad, *parts, pad]).tobytes(), full_utt=True)
        self.decoder.end_utt()
        hyp = self.decoder.hyp()
        return hyp.hypstr if hyp else ""


def median_f0(pcm: np.ndarray, rate: int) -> float:
    import pyworld

    x = pcm.astype(np.float64) / 32768.0
    f0, t = pyworld.dio(x, rate, frame_period=10.0, f0_floor=60, f0_ceil=500)
    f0 = pyworld.stonemask(x, f0, t, rate)
    return float(np.median(f0[f0 > 0])) if (f0 > 0).any() else 0.0


def engine_rows(n: int) -> list[dict[str, object]]:
    os.environ["OMP_NUM_THREADS"] = "1"
    from orate.engines.base import VoiceParams
    from orate.engines.registry import EngineRegistry

    engine = EngineRegistry().engine("natural")
    asr = Asr()
    rows = []
    for info in engine.voices():
        params = engine.check_voice(VoiceParams(engine="natural", voice=info.id))
        errors = words = 0
        audio = 0.0
        cpu = 0.0
        f0s = []
        for sentence in SENTENCES[:n]:
            parts: list[np.ndarray] = []
            start = time.process_time()
            engine.synthesize(
                sentence, params, 1.0, lambda p, e, parts=parts: parts.append(p) or True
            )
            cpu += time.process_time() - start
            pcm = np.concatenate(parts)
            audio += len(pcm) / engine.sample_rate
            ref = _words(sentence)
            errors += _wer(ref, _words(asr(pcm, engine.sample_rate)))
            words += len(ref)
            f0s.append(median_f0(pcm, engine.sample_rate))
        voice = engine.voice(info.id)
        rows.append(
            {
                "voice": info.id,
                "gender": info.gender,
                "base": voice.base,
                "transform": voice.transform.describe(),
                "wer": errors / words,
                "f0": statistics.median(f0s),
                "rtf": audio / cpu if cpu else 0.0,
            }
        )
    return rows


def server_figures() -> tuple[dict[str, float], float, float]:
    """First audio per voice (3 sentences, streamed wav), and the tree RSS (MiB) idle and
    after every palette voice has spoken."""
    import tempfile

    import httpx
    from benchmarks.memory_abuse import tree_rss
    from tests.conftest import Server

    first: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        srv = Server(Path(tmp), env={"ORATE_MODEL_ENGINES": "{}", "ORATE_CACHE_ENABLED": "false"})
        try:
            idle = tree_rss(srv.proc.pid) / 2**20
            voices = httpx.get(f"{srv.url}/v1/audio/voices", params={"model": "natural"}).json()[
                "voices"
            ]
            for voice in voices:
                times = []
                for k in range(3):
                    body = {
                        "model": "natural",
                        "voice": voice,
                        "response_format": "wav",
                        "input": f"{THREE} Take {k}.",
                    }
                    start = time.perf_counter()
                    seen = 0
                    with httpx.stream(
                        "POST", f"{srv.url}/v1/audio/speech", json=body, timeout=60
                    ) as r:
                        for chunk in r.iter_bytes():
                            seen += len(chunk)
                            if seen > 44 and len(times) == k:  # past the WAV header: audio
                                times.append(time.perf_counter() - start)
                first[voice] = statistics.median(times) * 1000
            loaded = tree_rss(srv.proc.pid) / 2**20
        finally:
            srv.stop()
    return first, idle, loaded


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sentences", type=int, default=20)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    rows = engine_rows(args.sentences)
    first, idle, loaded = server_figures()
    base_wer = {r["voice"]: r["wer"] for r in rows}
    lines = [
        "| voice | gender | base | transform | WER | WER - base's | median F0 Hz | "
        "x real time (1 core) | first audio ms |",
        "|---|---|---|---|--:|--:|--:|--:|--:|",
    ]
    for r in rows:
        base = "heart" if str(r["base"]).startswith("hibari") else "joe"
        lines.append(
            f"| {r['voice']} | {r['gender']} | {r['base']} | {r['transform']} | "
            f"{r['wer']:.3f} | {float(r['wer']) - float(base_wer[base]):+.3f} | "
            f"{r['f0']:.0f} | {r['rtf']:.1f} | {first.get(str(r['voice']), 0):.0f} |"
        )
    lines.append("")
    lines.append(
        f"Process tree RSS: idle {idle:.0f} MiB, every palette voice loaded {loaded:.0f} MiB."
    )
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
