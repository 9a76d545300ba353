#!/usr/bin/env python3
"""Where a worker's memory goes: per model, per onnxruntime session, per run.

Each configuration runs in a fresh interpreter that does what an engine worker does
(``tune_malloc``, espeak loaded), then step by step: hibari ``heart`` loaded, its first
short run, its long runs; Piper ``joe``'s one-thread session loaded, a short run, the
long runs; joe's wide session (2 intra-op threads, what a job gets when a core is free)
loaded and run the same way. After each step: the process's RSS, and the peak RSS
*during* the step (``VmHWM``, reset before each step through ``/proc/self/clear_refs``),
so transient activations show even where the memory is freed again.

Configurations (``--configs``; onnxruntime ``SessionOptions`` applied to every session
orate opens, by replacing ``onnx_base.session_options`` in the child):

- ``shipped``: what ``open_session`` does in this tree: mapped weights, no arena, no
  memory pattern, ``keep_heap`` (the models' mapped copies are made before the
  children start, so no step includes the one-time conversion);
- ``bytes``: the model's bytes handed to onnxruntime, which copies the weights into
  each session (how orate loaded models before mapped copies);
- ``arena``: onnxruntime's CPU arena and memory pattern on (as before);
- ``arena0``: ``enable_cpu_mem_arena = False``;
- ``pattern0``: ``enable_mem_pattern = False``;
- ``workerheap``: malloc as the engine worker sets it, without ``keep_heap``;
- ``prepack0``: ``session.disable_prepacking = 1``;
- ``envarena``: one arena for every session of the process (``use_env_allocators``,
  extended by what is requested rather than in powers of two).

``python benchmarks/model_memory.py [--configs shipped,arena0] [--runs 3]``; also prints
the milliseconds each run took (one child, no turn about: latency is measured by
``session_ab.py``, not here).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import LONG_TEXT, SHORT_TEXT

SENTENCES = [s.strip() + "." for s in LONG_TEXT.split(". ") if s.strip()][:6]

CHILD = r"""
import json, os, sys, time
cfg, sentences, short, runs = json.loads(sys.argv[1])

def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1]) / 1024
    return 0.0

def reset_peak():
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")

out = []
def step(name, fn):
    reset_peak()
    t = time.perf_counter()
    fn()
    ms = (time.perf_counter() - t) * 1000
    out.append([name, status("VmRSS:"), status("VmHWM:"), ms])

from orate.runtime import worker
worker.tune_malloc()
from orate.engines import onnx_base
flags = set(cfg.split("+"))
shipped = onnx_base.session_options

if "workerheap" in flags:  # malloc as the worker sets it, without keep_heap
    onnx_base.keep_heap = lambda: None

def options(threads=1):
    o = shipped(threads)
    if "arena" in flags:
        o.enable_cpu_mem_arena = True
        o.enable_mem_pattern = True
    if "arena0" in flags:
        o.enable_cpu_mem_arena = False
    if "pattern0" in flags:
        o.enable_mem_pattern = False
    if "envarena" in flags:
        o.add_session_config_entry("session.use_env_allocators", "1")
    if "prepack0" in flags:
        o.add_session_config_entry("session.disable_prepacking", "1")
    return o

onnx_base.session_options = options
if "envarena" in flags:  # one arena for every session of the process
    import onnxruntime as ort
    ort.create_and_register_allocator(
        ort.OrtMemoryInfo(
            "Cpu", ort.OrtAllocatorType.ORT_ARENA_ALLOCATOR, 0, ort.OrtMemType.DEFAULT
        ),
        ort.OrtArenaCfg({"arena_extend_strategy": 1}),
    )
if "bytes" in flags:  # the weights copied into each session, as before mapped models
    onnx_base.mapped_model = lambda path: None
from orate.engines.registry import EngineRegistry
from orate.engines.base import VoiceParams
reg = EngineRegistry()
step("espeak worker base", lambda: reg.engine("espeak"))
sink = lambda pcm, ev: True

step("import onnxruntime", lambda: __import__("onnxruntime"))
hib = reg.engine("hibari")
held = []
step("hibari session alone (opened, then dropped)",
     lambda: held.append(onnx_base.open_session(hib.paths["heart"])))
held.clear()
hp = VoiceParams(engine=hib.name, voice="heart")
step("hibari heart: load", lambda: hib.sessions["heart"].get())
step("hibari: first short run", lambda: hib.synthesize(short, hp, 1.0, sink))
for i in range(runs):
    step(f"hibari: long sentences, pass {i + 1}",
         lambda: [hib.synthesize(s, hp, 1.0, sink) for s in sentences])

joe = reg.engine("piper:en_US-joe-medium")
jp = VoiceParams(engine=joe.name, voice="default")
step("joe narrow (1 thread): load", lambda: joe.session.get(1))
onnx_base.set_thread_budget(1)
step("joe narrow: first short run", lambda: joe.synthesize(short, jp, 1.0, sink))
for i in range(runs):
    step(f"joe narrow: long sentences, pass {i + 1}",
         lambda: [joe.synthesize(s, jp, 1.0, sink) for s in sentences])
if os.cpu_count() and len(os.sched_getaffinity(0)) > 1:
    step("joe wide (2 threads): load", lambda: joe.session.get(2))
    onnx_base.set_thread_budget(2)
    step("joe wide: first short run", lambda: joe.synthesize(short, jp, 1.0, sink))
    for i in range(runs):
        step(f"joe wide: long sentences, pass {i + 1}",
             lambda: [joe.synthesize(s, jp, 1.0, sink) for s in sentences])
print(json.dumps(out))
"""


def prepare() -> None:
    """Write the mapped copies of heart and joe once, outside the measured children."""
    from orate.engines.onnx_base import mapped_model
    from orate.engines.registry import EngineRegistry

    registry = EngineRegistry()
    mapped_model(registry.engine("hibari").paths["heart"])
    mapped_model(registry.engine("piper:en_US-joe-medium").model_path)


def run(cfg: str, runs: int) -> list[tuple[str, float, float, float]]:
    src = Path(__file__).resolve().parent.parent / "src"
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps([cfg, SENTENCES, SHORT_TEXT, runs])],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": str(src), "PATH": "/usr/bin:/bin", "HOME": str(Path.home())},
    )
    return [tuple(x) for x in json.loads(proc.stdout.strip().splitlines()[-1])]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--configs", default="bytes+arena+workerheap,shipped+arena+workerheap,shipped"
    )
    parser.add_argument("--runs", type=int, default=2, help="passes over the long sentences")
    args = parser.parse_args()
    configs = args.configs.split(",")
    prepare()
    results = {cfg: run(cfg, args.runs) for cfg in configs}
    print(f"long sentences: the first {len(SENTENCES)} of the harness's 218-word text")
    print()
    head = " | ".join(f"{c}: RSS (Δ) / peak in step / ms" for c in configs)
    print(f"| step | {head} |")
    print("|---|" + "---:|" * len(configs))
    steps = [s[0] for s in results[configs[0]]]
    prev = {c: 0.0 for c in configs}
    for i, name in enumerate(steps):
        cells = []
        for c in configs:
            _, rss, hwm, ms = results[c][i]
            cells.append(f"{rss:.0f} ({rss - prev[c]:+.0f}) / {hwm:.0f} / {ms:.0f}")
            prev[c] = rss
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
