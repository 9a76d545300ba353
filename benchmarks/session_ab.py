#!/usr/bin/env python3
"""Latency of orate's natural voices under different onnxruntime session settings, turn about.

One process (the engine worker's malloc settings), one session per configuration for
hibari ``heart`` and one for Piper ``joe`` (one intra-op thread, as under load, or
``--threads 2``, the wide session); every round runs each configuration once on each
text through the engine's own ``synthesize`` (hibari: G2P, model, DSP; joe: espeak,
model), so load from outside falls on every configuration alike. Prints the median
per cell and its ratio to the first configuration, and whether the audio is identical.

Configurations: ``bytes`` (the model's bytes given to onnxruntime, the weights copied
into the session: orate before mapped models) or ``mapped`` (the page-aligned external
weights ``open_session`` maps), with ``+arena`` (onnxruntime's CPU arena and memory
pattern on, as before), ``+arena0`` (``enable_cpu_mem_arena = False``), ``+pattern0``
(``enable_mem_pattern = False``), ``+shrink`` (the arena kept but shrunk after every
run: run option ``memory.enable_memory_arena_shrinkage``); unnamed, what
``session_options`` says.

``--heap nommap``: ``keep`` and no block mapped on its own (``M_MMAP_MAX`` 0).
``--heap worker``: malloc as the engine worker sets it (``tune_malloc``: freed heap
past 128 MiB goes back to the kernel); ``--heap keep`` (default): as ``open_session``
leaves it (``keep_heap``). The heap setting is the process's, so it is compared
between runs, the session settings within one.

    python benchmarks/session_ab.py [--rounds 15] [--configs bytes+arena,mapped] [--heap keep]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import LONG_TEXT, SHORT_TEXT

SENTENCES = [s.strip() + "." for s in LONG_TEXT.split(". ") if s.strip()]
LONGEST = max(SENTENCES[:6], key=len)
TEXTS = {"11 words": SHORT_TEXT, "longest sentence": LONGEST}


class _Session:
    """An onnxruntime session whose runs carry run options (for ``shrink``)."""

    def __init__(self, session: Any, run_options: Any) -> None:
        self._session = session
        self._run_options = run_options

    def get_inputs(self) -> Any:
        return self._session.get_inputs()

    def run(self, names: Any, feeds: dict[str, Any]) -> Any:
        return self._session.run(names, feeds, self._run_options)


def build(cfg: str, path: Path, threads: int) -> Any:
    import onnxruntime as ort

    from orate.engines import onnx_base
    from orate.engines.onnx_graph import with_durations

    flags = set(cfg.split("+"))
    options = onnx_base.session_options(threads)
    if "arena" in flags:
        options.enable_cpu_mem_arena = True
        options.enable_mem_pattern = True
    if "arena0" in flags:
        options.enable_cpu_mem_arena = False
    if "pattern0" in flags:
        options.enable_mem_pattern = False
    if "bytes" in flags:
        source: Any = with_durations(path.read_bytes())[0]
    else:
        source = str(onnx_base.mapped_model(path))
    session = ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])
    if "shrink" in flags:
        run_options = ort.RunOptions()
        run_options.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")
        return _Session(session, run_options)
    return session


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--configs", default="bytes+arena,mapped+arena,mapped")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--threads", type=int, default=1, help="joe's intra-op threads")
    parser.add_argument("--voices", default="heart,joe")
    parser.add_argument("--heap", choices=("keep", "worker", "nommap"), default="keep")
    parser.add_argument("--keep-mib", type=int, default=0, help="KEEP_HEAP for this run")
    args = parser.parse_args()

    from orate.engines import onnx_base
    from orate.engines.base import VoiceParams
    from orate.engines.registry import EngineRegistry
    from orate.runtime.worker import tune_malloc

    tune_malloc()
    if args.heap in ("keep", "nommap"):
        if args.keep_mib:
            onnx_base.KEEP_HEAP = args.keep_mib << 20
        onnx_base.keep_heap()
        if args.heap == "nommap":  # and never a block mapped of its own: all from the heap
            import ctypes

            ctypes.CDLL("libc.so.6").mallopt(-4, 0)  # M_MMAP_MAX
    else:
        onnx_base.keep_heap = lambda: None  # type: ignore[assignment]
    onnx_base.set_thread_budget(1)
    registry = EngineRegistry()
    configs = args.configs.split(",")
    engines: dict[str, tuple[Any, VoiceParams, dict[str, Any]]] = {}
    if "heart" in args.voices:
        hib = registry.engine("hibari")
        loaded = hib.sessions["heart"].get()
        per = {c: build(c, hib.paths["heart"], 1) for c in configs}
        engines["heart"] = (hib, VoiceParams(engine=hib.name, voice="heart"), per)
    if "joe" in args.voices:
        joe = registry.engine("piper:en_US-joe-medium")
        per = {c: build(c, joe.model_path, args.threads) for c in configs}
        engines["joe"] = (joe, VoiceParams(engine=joe.name, voice="default"), per)

    def once(voice: str, cfg: str, text: str) -> tuple[float, bytes]:
        engine, params, per = engines[voice]
        if voice == "heart":
            loaded.session = per[cfg]
        else:
            engine.session._session = per[cfg]
        parts: list[bytes] = []
        t = time.perf_counter()
        engine.synthesize(text, params, 1.0, lambda pcm, ev: parts.append(pcm.tobytes()) or True)
        return time.perf_counter() - t, b"".join(parts)

    times: dict[tuple[str, str, str], list[float]] = {}
    audio: dict[tuple[Any, ...], bytes] = {}
    for voice in engines:
        for cfg in configs:
            for label, text in TEXTS.items():
                audio[(voice, label, cfg)] = once(voice, cfg, text)[1]  # warm
    differ: set[tuple[str, str]] = set()
    for r in range(args.rounds):  # each round starts with the next configuration
        for voice in engines:
            for label, text in TEXTS.items():
                for cfg in configs[r % len(configs) :] + configs[: r % len(configs)]:
                    dt, pcm = once(voice, cfg, text)
                    times.setdefault((voice, label, cfg), []).append(dt)
                    # Piper's noise comes from a generator in the session, so its n-th run
                    # is compared with the other sessions' n-th runs
                    if pcm != audio.setdefault((voice, label, "round", r), pcm):
                        differ.add((voice, label))
    print(f"joe threads {args.threads}, {args.rounds} rounds, median ms (ratio to {configs[0]})")
    print()
    print("| voice | text | " + " | ".join(configs) + " | audio identical |")
    print("|---|---|" + "---:|" * len(configs) + "---|")
    for voice in engines:
        for label in TEXTS:
            base = statistics.median(times[(voice, label, configs[0])])
            cells = []
            for cfg in configs:
                m = statistics.median(times[(voice, label, cfg)])
                cells.append(f"{m * 1000:.1f} ({m / base:.2f}x)")
            same = (voice, label) not in differ and all(
                audio[(voice, label, c)] == audio[(voice, label, configs[0])] for c in configs
            )
            print(f"| {voice} | {label} | " + " | ".join(cells) + f" | {same} |")


if __name__ == "__main__":
    main()
