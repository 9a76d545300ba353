#!/usr/bin/env python3
"""CPU per request of the worker's steps, in-process, alternating: what IPC, framing and
encoding add to the bare engine ("where do the ms go", worker side).

Per text (11 and 218 words), each round in turn, CPU time (``time.process_time``):

- ``engine``: espeak one sentence per call, no-op sink (the benchmark's raw engine);
- ``render wav`` / ``render mp3``: orate's ``render()`` as the worker runs it, with an
  ``emit`` that drops the messages (no IPC);
- ``render wav + pipe``: the same with the worker's framing (JSON for events, header
  pack, one ``writev``) into a real 1 MiB pipe that ``cat`` drains, after the worker's
  malloc tuning (the pipe writes count here, the reads in ``cat``);
- ``lameenc q7`` / ``q9``: the encoder alone on the request's PCM in the engine's
  chunks (lameenc clamps quality to 7: both rows are q7).

The worker's CPU per request under load (throughput.py) minus ``render`` is then what the
pipe costs the worker. Prints a Markdown table (medians over rounds, ms per request).

    python benchmarks/render_cost.py [--rounds 7]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import TEXTS


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()

    import lameenc
    import numpy as np

    from orate.engines.base import VoiceParams
    from orate.engines.registry import EngineRegistry
    from orate.runtime.events import EventKind
    from orate.runtime.pool import _grow_pipe
    from orate.runtime.render import RenderJob, Segment, render
    from orate.runtime.worker import HEADER, _send_frame, tune_malloc
    from orate.speech.text import split_sentences

    engine_by_name = EngineRegistry().engine
    engine = engine_by_name("espeak")
    params = engine.check_voice(VoiceParams(voice="en-us", variant="f2"))
    tune_malloc()  # as a worker does
    # a real 1 MiB pipe drained by `cat`, so the kernel's pipe writes count here as in a
    # worker (the reader's copy counts in cat, as it counts in the server's main process)
    read_end, pipe = os.pipe()
    _grow_pipe(pipe)
    drain = subprocess.Popen(["cat"], stdin=read_end, stdout=subprocess.DEVNULL)
    os.close(read_end)

    def frame(kind: EventKind, payload: object) -> None:
        body = payload if kind is EventKind.AUDIO else json.dumps(payload).encode()
        _send_frame(pipe, HEADER.pack(len(body), 1, kind.code), body)

    rows: dict[str, dict[str, float]] = {}
    for label, text in TEXTS.items():
        sentences = tuple(split_sentences(text))
        chunks: list[np.ndarray] = []

        def engine_only(t: str = text) -> None:
            for s, e in split_sentences(t):
                engine.synthesize(t[s:e], params, 1.0, lambda pcm, ev: True)

        for s, e in sentences:
            engine.synthesize(
                text[s:e], params, 1.0, lambda pcm, ev, ch=chunks: ch.append(pcm.copy()) or True
            )

        def job(fmt: str, t: str = text, sents: tuple = sentences) -> RenderJob:
            return RenderJob(t, (Segment(params, sents),), fmt)

        def lame(q: int, ch: list = chunks) -> None:
            enc = lameenc.Encoder()
            enc.set_channels(1)
            enc.set_in_sample_rate(engine.sample_rate)
            enc.set_out_sample_rate(engine.sample_rate)
            enc.set_bit_rate(48)
            enc.set_quality(q)
            for c in ch:
                enc.encode(c.tobytes())
            enc.flush()

        steps: dict[str, Callable[[], object]] = {
            "engine": engine_only,
            "render wav": lambda j=job("wav"): render(j, engine_by_name, lambda k, p: None),
            "render wav + pipe": lambda j=job("wav"): render(j, engine_by_name, frame),
            "render mp3": lambda j=job("mp3"): render(j, engine_by_name, lambda k, p: None),
            "lameenc q7 alone": lambda: lame(7),
            "lameenc q9 alone": lambda: lame(9),
        }
        reps = 40 if label == "11 words" else 3
        samples: dict[str, list[float]] = {k: [] for k in steps}
        for step in steps.values():
            step()  # warm
        for _ in range(args.rounds):
            for name, step in steps.items():
                t = time.process_time()
                for _ in range(reps):
                    step()
                samples[name].append(1e3 * (time.process_time() - t) / reps)
        rows[label] = {k: statistics.median(v) for k, v in samples.items()}
        print(
            f"{label}: " + ", ".join(f"{k} {v:.2f}" for k, v in rows[label].items()),
            file=sys.stderr,
        )
    os.close(pipe)
    drain.wait()
    names = list(next(iter(rows.values())))
    print("| CPU ms per request (median of rounds) | " + " | ".join(rows) + " |")
    print("|---|" + "---:|" * len(rows))
    for n in names:
        print(f"| {n} | " + " | ".join(f"{rows[t][n]:.2f}" for t in rows) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
