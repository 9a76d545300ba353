"""Section "library": the pre-render cache (hit against miss) and what recording a
generation in the history costs a request that was synthesized.

Two measurements, each against servers of its own in temporary data dirs:

1. cache hit vs miss: one server with default settings (cache, history and
   stored audio on). Misses send a text never sent before; hits repeat one
   text that was rendered once first, and every measured hit must carry
   ``X-Orate-Cache: hit`` (the run stops otherwise).
2. history on vs off: two servers up at once, both with the cache off (every
   request is synthesized), one with ``ORATE_HISTORY=false``; short windows of
   requests alternate between them so the machine's drift hits both alike.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from harness import (
    HOST,
    SPEECH_PATH,
    TEXTS,
    BenchmarkError,
    Cell,
    HttpClient,
    OnOffSide,
    cpu_snapshot,
    env_text,
    fmt_cpu_split,
    fmt_ms,
    fmt_num,
    load_cell,
    on_off_rows,
    progress,
    serving,
    settle,
    speech_body,
    verdict,
)

FORMAT = "mp3"
HIT_CONCURRENCY = 4
GOAL_HIT_MS = 2.0  # p50 at c=1
GOAL_HIT_RPS = 1000.0  # at c=4
GOAL_HISTORY_MS = 1.0  # p50 difference, history on − off, 11-word misses at c=1

# A miss replaces one two-syllable word of the text by a made-up two-syllable word
# (CVCVC, e.g. "bakot") that no request used before: the text stays 11 / 218 words
# and about as long to speak, but its cache key is new.
REPLACED = {"11 words": (7, "lazy"), "218 words": (1, "morning")}
_CONSONANTS = "bdfgklmnprstvz"
_VOWELS = "aeiou"

CACHE_ENV = {
    "ORATE_CACHE_ENABLED": "true",
    "ORATE_HISTORY": "true",
    "ORATE_STORE_AUDIO": "true",
}  # the defaults, spelled out
HISTORY_ENV = {
    "on": {"ORATE_CACHE_ENABLED": "false", "ORATE_HISTORY": "true"},
    "off": {"ORATE_CACHE_ENABLED": "false", "ORATE_HISTORY": "false"},
}


@dataclass(frozen=True)
class LibraryBudget:
    hit_cell: float  # seconds per hit cell (c=1 and c=4)
    miss_cell: float  # seconds of 11-word misses at c=4
    long_misses: int  # requests of 218-word misses at c=4 (about 0.5 s of CPU each)
    history_window: float  # seconds per window of the history on/off alternation
    history_rounds: int  # windows per server


FULL = LibraryBudget(
    hit_cell=3.0, miss_cell=4.0, long_misses=12, history_window=1.5, history_rounds=8
)
QUICK = LibraryBudget(
    hit_cell=1.0, miss_cell=1.2, long_misses=8, history_window=0.5, history_rounds=3
)


def made_up_word(n: int) -> str:
    """The ``n``-th pronounceable non-word of the form consonant-vowel-consonant-vowel-consonant."""
    letters = []
    for alphabet in (_CONSONANTS, _VOWELS, _CONSONANTS, _VOWELS, _CONSONANTS):
        n, i = divmod(n, len(alphabet))
        letters.append(alphabet[i])
    if n:
        raise BenchmarkError("ran out of made-up words (68,600 per run)")
    return "".join(letters)


class UniqueTexts:
    """Texts never sent before in this run, one word away from the original."""

    def __init__(self) -> None:
        self.count = 0
        for label, (index, word) in REPLACED.items():
            assert TEXTS[label].split(" ")[index] == word, "texts changed"

    def text(self, label: str) -> str:
        index, _ = REPLACED[label]
        words = TEXTS[label].split(" ")
        words[index] = made_up_word(self.count)
        self.count += 1
        return " ".join(words)

    def bodies(self, label: str) -> Callable[[], bytes]:
        return lambda: speech_body(self.text(label), FORMAT)


@dataclass
class LibraryResults:
    cache: dict[tuple[str, str, int], Cell] = field(default_factory=dict)  # (text, kind, c)
    history: dict[str, OnOffSide] = field(default_factory=dict)  # "on" / "off"
    cache_env: dict[str, str] = field(default_factory=dict)
    history_env: dict[str, dict[str, str]] = field(default_factory=dict)


def _check(cell: Cell, expected: str, what: str) -> None:
    """Every successful response must say it was a cache ``expected``; fail loudly if not."""
    wrong: dict[str, int] = {}
    for s in cell.good:
        if s.cache != expected:
            wrong[s.cache or "(no header)"] = wrong.get(s.cache or "(no header)", 0) + 1
    if wrong:
        got = ", ".join(f"{k}×{v}" for k, v in sorted(wrong.items()))
        raise BenchmarkError(
            f"{what}: expected X-Orate-Cache: {expected} on every response, "
            f"got {got} of {len(cell.good)}"
        )
    if not cell.good:
        raise BenchmarkError(f"{what}: no request succeeded ({cell.failures()})")


def _measure(runner: asyncio.Runner, pid: int, load: Coroutine[Any, Any, Cell]) -> Cell:
    """Run one cell and note the CPU the server, its workers and this process used."""
    before = cpu_snapshot(pid)
    result = runner.run(load)
    after = cpu_snapshot(pid)
    result.cpu = (after[0] - before[0], after[1] - before[1], after[2] - before[2])
    return result


async def _warm_hit(port: int, body: bytes) -> None:
    """Render ``body`` once and repeat it until the server answers from the cache
    (the entry is written in the background just after the first response)."""
    client = HttpClient(HOST, port)
    try:
        for _ in range(200):
            sample = await client.safe_post(SPEECH_PATH, body)
            if not sample.ok:
                raise BenchmarkError(f"warming the cache failed (status {sample.status})")
            if sample.cache == "hit":
                return
            await asyncio.sleep(0.02)
    finally:
        await client.close()
    raise BenchmarkError("the cache never answered a repeated request with a hit")


def bench_cache(
    runner: asyncio.Runner,
    budget: LibraryBudget,
    extra_env: dict[str, str],
    texts: UniqueTexts,
    results: LibraryResults,
    notes: list[str],
) -> None:
    env = {**extra_env, **CACHE_ENV}
    results.cache_env = env
    with serving(env, notes, "library (cache)") as (proc, port, _):
        progress(f"library: cache server ready (pid {proc.pid}, port {port})")
        for label in TEXTS:  # every worker renders each text once
            warm = runner.run(load_cell(port, texts.bodies(label), 2, 0.0, 0, requests=4))
            _check(warm, "miss", f"warm-up misses {label}")
        for label, text in TEXTS.items():
            key = f"{label} {FORMAT}"
            # a 218-word mp3 miss takes about 0.5 s of CPU: a fixed, small number of them
            long_ = label == "218 words"
            miss = _measure(
                runner,
                proc.pid,
                load_cell(
                    port,
                    texts.bodies(label),
                    HIT_CONCURRENCY,
                    0.0 if long_ else budget.miss_cell,
                    0,
                    requests=budget.long_misses if long_ else None,
                ),
            )
            _check(miss, "miss", f"misses {key}")
            results.cache[(label, "miss", HIT_CONCURRENCY)] = miss
            settle(proc.pid)
            body = speech_body(text, FORMAT)
            runner.run(_warm_hit(port, body))
            settle(proc.pid)
            for conc in (1, HIT_CONCURRENCY):
                hit = _measure(runner, proc.pid, load_cell(port, body, conc, budget.hit_cell, 0))
                _check(hit, "hit", f"hits {key} c={conc}")
                results.cache[(label, "hit", conc)] = hit
                settle(proc.pid)
            for kind, conc in (("miss", HIT_CONCURRENCY), ("hit", 1), ("hit", HIT_CONCURRENCY)):
                cell = results.cache[(label, kind, conc)]
                if cell.errors:
                    notes.append(
                        f"library {key} {kind} c={conc}: {cell.errors} of "
                        f"{len(cell.samples)} requests failed ({cell.failures()})"
                    )
                progress(
                    f"library {key} {kind} c={conc}: p50 {cell.p50_latency * 1e3:.2f} ms, "
                    f"{cell.rps:.1f} req/s ({len(cell.good)} requests)"
                )
        if proc.poll() is not None:
            notes.append(f"the cache server exited early (code {proc.returncode})")


def bench_history(
    runner: asyncio.Runner,
    budget: LibraryBudget,
    extra_env: dict[str, str],
    texts: UniqueTexts,
    results: LibraryResults,
    notes: list[str],
) -> None:
    label = "11 words"
    envs = {name: {**extra_env, **env} for name, env in HISTORY_ENV.items()}
    results.history_env = envs
    sides = {name: OnOffSide() for name in envs}
    results.history = sides
    with (
        serving(envs["on"], notes, "library (history on)") as (on, on_port, _),
        serving(envs["off"], notes, "library (history off)") as (off, off_port, _),
    ):
        servers = {"on": (on, on_port), "off": (off, off_port)}
        progress(f"library: history servers ready (on: port {on_port}, off: port {off_port})")
        for name, (proc, port) in servers.items():
            warm = runner.run(load_cell(port, texts.bodies(label), 2, 0.0, 0, requests=6))
            _check(warm, "off", f"warm-up history {name}")
            settle(proc.pid)
        start = {name: cpu_snapshot(proc.pid) for name, (proc, _) in servers.items()}
        for r in range(budget.history_rounds):
            order = ("on", "off") if r % 2 == 0 else ("off", "on")  # ABBA: no side always first
            for name in order:
                proc, port = servers[name]
                cell = runner.run(load_cell(port, texts.bodies(label), 1, budget.history_window, 3))
                _check(cell, "off", f"history {name} window {r + 1}")
                side = sides[name]
                side.latencies += [s.latency for s in cell.good]
                side.windows.append(cell.p50_latency)
                side.errors += cell.errors
                settle(proc.pid)  # its history writer is done before the other side runs
        for name, (proc, _) in servers.items():
            settle(proc.pid)
            end = cpu_snapshot(proc.pid)
            sides[name].cpu = (end[0] - start[name][0], end[1] - start[name][1])
            if sides[name].errors:
                notes.append(f"library history {name}: {sides[name].errors} requests failed")
            if proc.poll() is not None:
                notes.append(f"the history-{name} server exited early (code {proc.returncode})")
    for name, side in sides.items():
        progress(
            f"library history {name}: p50 {side.p50 * 1e3:.2f} ms over "
            f"{len(side.latencies)} requests; windows "
            + " ".join(f"{w * 1e3:.2f}" for w in side.windows)
        )


def run_library(
    runner: asyncio.Runner, quick: bool, extra_env: dict[str, str], notes: list[str]
) -> LibraryResults:
    budget = QUICK if quick else FULL
    texts = UniqueTexts()
    results = LibraryResults()
    bench_cache(runner, budget, extra_env, texts, results, notes)
    bench_history(runner, budget, extra_env, texts, results, notes)
    return results


# -- report ---------------------------------------------------------------------------


def _times(a: float, b: float) -> str:
    return "n/a" if not b or math.isnan(a) or math.isnan(b) else f"{a / b:.3g}×"


def render_library(r: LibraryResults, quick: bool) -> list[str]:
    budget = QUICK if quick else FULL
    c = HIT_CONCURRENCY
    labels = list(TEXTS)

    def cell(label: str, kind: str, conc: int) -> Cell:
        return r.cache[(label, kind, conc)]

    rows: list[tuple[str, Callable[[str], str]]] = [
        (f"miss p50 latency, c={c} (ms)", lambda t: fmt_ms(cell(t, "miss", c).p50_latency)),
        (f"miss req/s, c={c}", lambda t: fmt_num(cell(t, "miss", c).rps)),
        (f"hit p50 latency, c={c} (ms)", lambda t: fmt_ms(cell(t, "hit", c).p50_latency)),
        (f"hit req/s, c={c}", lambda t: fmt_num(cell(t, "hit", c).rps)),
        (
            f"hit/miss p50 latency, c={c}",
            lambda t: _times(cell(t, "hit", c).p50_latency, cell(t, "miss", c).p50_latency),
        ),
        (f"hit/miss req/s, c={c}", lambda t: _times(cell(t, "hit", c).rps, cell(t, "miss", c).rps)),
        ("hit p50 latency, c=1 (ms)", lambda t: fmt_ms(cell(t, "hit", 1).p50_latency)),
        (
            f"CPU ms per miss at c={c}: server main / workers / client",
            lambda t: fmt_cpu_split(cell(t, "miss", c)),
        ),
        (
            f"CPU ms per hit at c={c}: server main / workers / client",
            lambda t: fmt_cpu_split(cell(t, "hit", c)),
        ),
        ("response size (kB)", lambda t: f"{cell(t, 'hit', 1).good[0].nbytes / 1000:.1f}"),
        (
            f"requests measured: miss c={c} / hit c=1 / hit c={c}",
            lambda t: " / ".join(
                str(len(cell(t, k, n).good)) for k, n in (("miss", c), ("hit", 1), ("hit", c))
            ),
        ),
    ]
    lines = [
        "## Library: cache and history",
        "",
        f"Cache hit vs miss, {FORMAT}: one server with `{env_text(r.cache_env)}` (the defaults). "
        "A miss is a text never sent before: the word "
        + " / ".join(f"“{w}”" for _, w in REPLACED.values())
        + " of the 11- / 218-word text is replaced by a made-up two-syllable word unique to "
        "the request (e.g. “bakot”), so the word count is unchanged. A hit repeats the "
        "original text, rendered once before; every measured hit had `X-Orate-Cache: hit`. "
        f"218-word misses: {budget.long_misses} requests; other cells "
        f"{budget.miss_cell:g} s (misses) / {budget.hit_cell:g} s (hits) of closed-loop load.",
        "",
        "| metric | " + " | ".join(f"{t} {FORMAT}" for t in labels) + " |",
        "|---|" + "|".join(["---:"] * len(labels)) + "|",
    ]
    lines += ["| " + " | ".join([name, *(f(t) for t in labels)]) + " |" for name, f in rows]
    hit_p50 = {t: cell(t, "hit", 1).p50_latency * 1e3 for t in labels}
    hit_rps = {t: cell(t, "hit", c).rps for t in labels}
    lines += [
        "",
        f"- {verdict(all(v < GOAL_HIT_MS for v in hit_p50.values()))} cache hit p50 latency "
        "at c=1: "
        + ", ".join(f"{t} {v:.2f} ms" for t, v in hit_p50.items())
        + f" (goal < {GOAL_HIT_MS:g} ms each)",
        f"- {verdict(all(v > GOAL_HIT_RPS for v in hit_rps.values()))} cache hit req/s at "
        f"c={c}: "
        + ", ".join(f"{t} {v:.0f}" for t, v in hit_rps.items())
        + f" (goal > {GOAL_HIT_RPS:g} each)",
        "",
    ]
    on, off = r.history["on"], r.history["off"]
    diff = (on.p50 - off.p50) * 1e3
    lines += [
        f"Cost of recording a generation on a miss, 11 words {FORMAT}, c=1, every request a "
        f"new text: two servers up at once, history on (`{env_text(r.history_env['on'])}`) and "
        f"off (`{env_text(r.history_env['off'])}`), {budget.history_rounds} alternating windows "
        f"of {budget.history_window:g} s each (on/off, then off/on, …; each server idle "
        "again before the other runs). CPU is the server's over all its windows, including "
        "history writes that finish after the response.",
        "",
        "| metric | history on | history off | on − off |",
        "|---|---:|---:|---:|",
        *on_off_rows(on, off, diff),
        "",
        f"- {verdict(diff < GOAL_HISTORY_MS)} history on − off, p50 latency of an 11-word "
        f"{FORMAT} miss at c=1: {diff:+.2f} ms ({on.p50 * 1e3:.2f} − {off.p50 * 1e3:.2f}, "
        f"measured alternately; goal < {GOAL_HISTORY_MS:g} ms)",
        "",
    ]
    return lines
