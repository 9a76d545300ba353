"""What planning a request costs on the event loop: this tree against a baseline tree.

Plans the same requests (a sentence, a paragraph, SSML, a dialogue of three
utterances) through the speech service of each tree, in separate processes that
alternate round by round (so both see the same machine drift), and prints the median
microseconds per plan of each and their ratio. Planning is CPU on the event loop for
every request, so a restructuring of the speech layer must not make it dearer.

    python benchmarks/plan_cost.py --baseline-src /path/to/other/checkout/src

The baseline may be a tree from before the speech service composed planning,
delivery and recording (its ``orate.speech.pipeline.Pipeline`` is used then).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SRC = HERE.parent / "src"

CHILD = r"""
import asyncio, json, sys, tempfile, time
from pathlib import Path
from orate.config import Settings
from orate.catalog.models import Catalog
from orate.speech.types import SpeechRequest, Utterance

PARAGRAPH = (
    "On 12 March 2024 the committee met at 3:30 pm to review the budget of $4.5 million. "
    "Dr. Smith said the plan was sound, but the 2nd draft needed work; the vote was 7 to 2. "
    "Nobody expected the meeting to run past five, yet it did, and the coffee ran out at four."
)
CASES = {
    "sentence": [Utterance("The quick brown fox jumps over the lazy dog.", "alloy")],
    "paragraph": [Utterance(PARAGRAPH, "alloy")],
    "ssml": [Utterance(
        '<speak>Hello <break time="300ms"/> there. <prosody rate="slow">Slowly now,</prosody>'
        ' and <say-as interpret-as="cardinal">1234</say-as> items.</speak>', "alloy")],
    "dialogue": [Utterance("Good morning.", "alloy"), Utterance("Morning to you.", "onyx"),
                 Utterance("Shall we begin at 9:15?", "nova")],
}

def planner(settings):
    import importlib.util
    catalog = Catalog.from_settings(settings)
    if importlib.util.find_spec("orate.speech.planning") is None:  # before the split
        from orate.speech.pipeline import Pipeline
        return Pipeline(settings, catalog, pool=None).plan
    from orate.speech.service import SpeechService
    return SpeechService(settings, catalog, None).plan

async def main(n):
    settings = Settings(data_dir=Path(tempfile.mkdtemp()), cache_enabled=False)
    plan = planner(settings)
    out = {}
    for name, utts in CASES.items():
        req = lambda: SpeechRequest(model="tts-1", utterances=list(utts), format="wav")
        for _ in range(20):
            await plan(req())
        walls = []
        for _ in range(n):
            t = time.perf_counter()
            await plan(req())
            walls.append(time.perf_counter() - t)
        walls.sort()
        out[name] = walls[len(walls) // 2] * 1e6
    print(json.dumps(out))

asyncio.run(main(int(sys.argv[1])))
"""


def run(src: Path, n: int) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(src)}
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(n)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline-src", type=Path, required=True)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--plans", type=int, default=200, help="plans per case per round")
    args = parser.parse_args()
    this: dict[str, list[float]] = {}
    base: dict[str, list[float]] = {}
    for r in range(args.rounds):
        for src, into in ((SRC, this), (args.baseline_src, base)):
            for name, us in run(src, args.plans).items():
                into.setdefault(name, []).append(us)
        print(f"round {r + 1}/{args.rounds} done", file=sys.stderr)
    print("| request | this tree (µs per plan, median of rounds) | baseline | ratio |")
    print("|---|---:|---:|---:|")
    for name in this:
        a, b = statistics.median(this[name]), statistics.median(base[name])
        print(f"| {name} | {a:.0f} | {b:.0f} | {a / b:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
