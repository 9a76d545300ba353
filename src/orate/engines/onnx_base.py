"""What the ONNX engines (Piper, Kokoro) share: sessions, idle unloading, and events.

A neural model renders a whole sentence per run, not in callbacks like
espeak, so the engine pushes the sentence's audio to the sink in 60 ms
chunks with the word and phoneme events that fall in each. Where the model
outputs per-symbol durations, those become the timestamps; the frame length
is taken from the output itself (audio samples / total frames), so it needs
no per-model constant.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import os
import re
import sys
import threading
import time
import unicodedata
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from orate.engines.base import EngineEvent, Sink, SynthesisResult

CHUNK_SECONDS = 0.06


def providers() -> list[str]:
    """CUDA first when onnxruntime-gpu sees a GPU; always the CPU."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    return [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]


def cores() -> int:
    """The CPUs this process may run on (its affinity, not the machine's count)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)  # pragma: no cover - macOS


_budget = 1  # intra-op threads the job running in this process may use


def set_thread_budget(threads: int) -> None:
    """How many intra-op threads the next model runs may use: the engine worker sets it
    per job from what the pool says is idle (``EnginePool.submit``)."""
    global _budget
    _budget = max(1, min(int(threads), cores()))


def thread_budget() -> int:
    return _budget


def open_session(path: Path, threads: int = 1) -> Any:
    """An onnxruntime session for ``path`` with its phoneme durations exposed as an output.

    One intra-op and one inter-op thread by default: under load parallelism comes
    from the worker processes (one per core), so two workers on two cores never fight
    over them. ``threads`` > 1 is the session a job uses when the other cores are idle;
    its pool threads sleep instead of spinning between runs, so an idle wide session
    takes no CPU from the other workers.
    """
    import onnxruntime as ort

    from orate.engines.onnx_graph import with_durations

    options = session_options(threads)
    mapped = mapped_model(path)
    if mapped is not None:
        try:
            return ort.InferenceSession(str(mapped), options, providers=providers())
        except Exception:  # a damaged cache entry: drop it, load from the model itself
            for suffix in (".onnx", ".weights", ".source"):
                mapped.with_suffix(suffix).unlink(missing_ok=True)
    model, _ = with_durations(path.read_bytes())
    return ort.InferenceSession(model, options, providers=providers())


KEEP_HEAP = 512 << 20  # freed heap a process running models keeps (above: back to the kernel)
_kept = False


def keep_heap() -> None:
    """Let malloc keep up to ``KEEP_HEAP`` of freed memory at the top of the heap (glibc
    returns it past 128 kB by default; orate's workers raise that to 128 MiB), enough
    for the tensors of a long sentence's run to be reused by the next run instead of
    given back and faulted in again (joe, longest sentence, arena off against on:
    1.08x the time keeping 256 MiB, 1.02x keeping 512, 0.95x keeping 1024;
    ``benchmarks/session_ab.py``). It never holds more than the process once used at
    once. Once per process; nothing off glibc."""
    global _kept
    if _kept or not sys.platform.startswith("linux"):
        return
    _kept = True
    with contextlib.suppress(OSError, AttributeError):  # not glibc
        ctypes.CDLL("libc.so.6").mallopt(-1, KEEP_HEAP)  # M_TRIM_THRESHOLD


MAPPED_FORMAT = "1"  # bump when with_durations or with_external_data change their output
MAPPED_MIN_BYTES = 4 << 20  # smaller models load from their bytes (test models, a few kB)


def mapped_dir() -> Path:
    """Where the mapped copies of models live: ``$XDG_CACHE_HOME/orate/onnx``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "orate" / "onnx"


def mapped_model(path: Path) -> Path | None:
    """``path`` as onnxruntime maps it: the graph (durations exposed) in a small file, the
    weights in a page-aligned file beside it, written once per model file and machine.

    onnxruntime maps such weights into memory instead of copying them into each
    session, so a Piper voice's narrow and wide sessions and every worker process
    share one copy of the weights (the page cache) instead of holding one each (joe:
    ~60 MiB per session). The name comes from the model's path, size and mtime, so a
    replaced model gets a new copy. ``None`` for a model under ``MAPPED_MIN_BYTES`` or
    when the cache cannot be written (the caller then loads the model's bytes).
    """
    from orate.engines.onnx_graph import with_durations, with_external_data

    try:
        if path.stat().st_size < MAPPED_MIN_BYTES:
            return None
        key = _mapped_key(path)
        folder = mapped_dir()
        graph = folder / f"{path.name.removesuffix('.onnx')}-{key}.onnx"
        weights, source = graph.with_suffix(".weights"), graph.with_suffix(".source")
        if graph.is_file() and weights.is_file():
            return graph
        folder.mkdir(parents=True, exist_ok=True)
        _prune(folder)
        model, _ = with_durations(path.read_bytes())
        patched, pieces = with_external_data(model, weights.name)
        # weights first, the graph last, each complete under a private name before it is
        # renamed: two workers converting at once write the same bytes, and a reader
        # never sees half a file
        _publish(weights, pieces)
        _publish(source, [(0, memoryview(str(path.resolve()).encode()))])
        _publish(graph, [(0, memoryview(patched))])
        return graph
    except OSError:
        return None


def _mapped_key(path: Path) -> str:
    st = path.stat()
    return hashlib.sha256(
        f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}|{MAPPED_FORMAT}".encode()
    ).hexdigest()[:16]


def _prune(folder: Path) -> None:
    """Delete the copies whose model is gone or has changed since (each copy's
    ``.source`` names its model): a replaced or deleted model leaves no copy behind
    for longer than until the next copy is written. A session that still maps a
    deleted file keeps its pages."""
    for source in folder.glob("*.source"):
        try:
            model = Path(source.read_text(encoding="utf-8"))
            if model.is_file() and source.stem.endswith("-" + _mapped_key(model)):
                continue
        except (OSError, UnicodeDecodeError):
            pass
        for suffix in (".onnx", ".weights", ".source"):
            source.with_suffix(suffix).unlink(missing_ok=True)


def _publish(target: Path, pieces: list[tuple[int, memoryview]]) -> None:
    partial = target.with_name(f".{target.name}.{os.getpid()}")
    with open(partial, "wb") as f:
        for offset, data in pieces:
            f.seek(offset)
            f.write(data)
    os.replace(partial, target)


def session_options(threads: int = 1) -> Any:
    """The onnxruntime options of every session orate opens (see ``open_session``).

    No CPU memory arena and no memory pattern: these models' shapes follow the text,
    and an arena keeps the peak of every run it ever served, one arena per session
    (Piper joe: ~130 MiB more per session after a few long sentences, its narrow and
    wide session each, on top of its weights; a worker held ~750 MiB). Without them
    each tensor comes from malloc, and ``keep_heap`` lets the process keep what was
    freed, so the next run does not fault the pages in again (without that, a long joe
    sentence took 11% longer than with the arena): one reserve for all the sessions
    of a worker, the size of its largest run, instead of one per session.
    """
    import onnxruntime as ort

    keep_heap()
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    options.enable_cpu_mem_arena = False
    options.enable_mem_pattern = False
    if threads > 1:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return options


class LazySession:
    """A model loaded on first use (in the worker that needs it) and dropped after ``idle``
    seconds; ``load`` builds it (an onnxruntime session by default).

    ``wide``: the model may also run with more intra-op threads when the other cores
    are idle (``get(threads)``). onnxruntime fixes a session's threads when it is
    built, so that is a second session, loaded the first time a job may use it and
    dropped with the first; both map the same weights (``mapped_model``), so it costs
    its own working memory, not a second copy of the weights.
    """

    def __init__(
        self,
        path: Path | Callable[[], Path],
        idle: float,
        load: Callable[[Path], Any] = open_session,
        *,
        wide: bool = False,
    ) -> None:
        self.path = path
        self.idle = idle
        self._load = load
        self.wide = wide
        self._session: Any = None
        self._wide: tuple[int, Any] | None = None  # (threads, session)
        self._used = 0.0
        self._lock = threading.Lock()

    def get(self, threads: int = 1) -> Any:
        with self._lock:
            path = self.path() if callable(self.path) else self.path
            if self._session is None:
                self._session = self._load(path)
            self._used = time.monotonic()
            if threads <= 1 or not self.wide:
                return self._session
            if self._wide is None or self._wide[0] != threads:
                self._wide = (threads, open_session(path, threads))
            return self._wide[1]

    def sweep(self) -> bool:
        """Unload if idle; True when it did."""
        with self._lock:
            if self._session is not None and time.monotonic() - self._used > self.idle:
                self._session = None
                self._wide = None
                return True
        return False

    @property
    def loaded(self) -> bool:
        return self._session is not None


def to_pcm(audio: np.ndarray) -> np.ndarray:
    return (np.clip(np.asarray(audio, dtype=np.float32).ravel(), -1.0, 1.0) * 32767).astype(
        np.int16
    )


def word_positions(text: str, words: int) -> list[tuple[int, int]]:
    """Start and length in ``text`` of the ``words`` phoneme-words the model spoke, for an
    engine that cannot say which word each phoneme-word belongs to (Kokoro's Japanese
    front end): groups are spread evenly over the text's words, so every event still
    points at a real word. Engines that know (hibari, Piper, Kokoro through espeak) pass
    ``owners`` to ``symbol_events`` instead."""
    spans = spoken_words(text)
    if not spans or not words:
        return []
    if len(spans) != words:
        spans = [spans[min(len(spans) - 1, k * len(spans) // words)] for k in range(words)]
    return [(s, e - s) for s, e in spans]


_PHONEME_MARK = re.compile(r"\[\[[^\[\]]{0,2000}\]\]|(?:[^\s\[]|\[(?!\[))+")


def spoken_words(text: str) -> list[tuple[int, int]]:
    """The spans of ``text`` that are read as words: tokens holding a letter or digit,
    and phoneme input ``[[…]]`` as one word even when it holds spaces."""
    return [
        (m.start(), m.end())
        for m in _PHONEME_MARK.finditer(text)
        if m.group().startswith("[[") or any(ch.isalnum() for ch in m.group())
    ]


STRESS = frozenset("ˈˌ")
# marks that modify the phoneme before them (length, aspiration, palatalization,
# rhotacization, nasalization and other combining diacritics)
_MODIFIERS = frozenset("ːˑʰʲʷˠˤ˞ⁿˡ")


def _modifier(symbol: str) -> bool:
    return all(ch in _MODIFIERS or unicodedata.category(ch) == "Mn" for ch in symbol)


def symbol_events(
    text: str,
    symbols: Sequence[str],
    durations: np.ndarray,
    samples: int,
    rate: int,
    owners: Sequence[int] | None = None,
    spans: Sequence[tuple[int, int]] | None = None,
    lead_ms: float = 0.0,
) -> list[EngineEvent]:
    """Word and phoneme events from per-symbol durations (symbols: one per duration).

    ``""`` marks pads and punctuation (they take time, nothing else) and ``" "`` a word
    break. ``owners`` (one per symbol) says which of ``spans`` (start, end in ``text``)
    each symbol belongs to, ``-1`` for none: a word starts at the first phoneme of its
    span. Without owners, a word starts at each first phoneme after a break and the
    phoneme-words are spread over the text's words (``word_positions``).

    Phonemes come out as IPA segments: a stress mark is put on the phoneme it precedes
    (``ˈɑ``, starting when the mark's frames start) and a length mark or diacritic on the
    phoneme before it (``ɑː``), never a phoneme of its own.

    ``lead_ms``: how far the engine's sound runs ahead of its frames (a constant of the
    vocoder, measured against forced alignment); every time moves earlier by it.
    """
    durations = np.asarray(durations, dtype=np.float64).ravel()[: len(symbols)]
    total = float(durations.sum())
    if total <= 0:
        return []
    ms_per_frame = samples / total / rate * 1000
    starts = np.maximum(
        np.concatenate([[0.0], np.cumsum(durations)[:-1]]) * ms_per_frame - lead_ms, 0.0
    )
    if owners is None or spans is None:
        owners, spans = _owners_by_breaks(text, symbols)
    events: list[EngineEvent] = []
    current = -1  # the span of the last word event
    gap = -1  # the word break (" ") before the next phoneme: where a new word's sound begins
    pending = ""  # stress marks waiting for their phoneme
    pending_at = -1
    last_phoneme = -1  # index in events of the last phoneme event
    for i, sym in enumerate(symbols):
        if i >= len(durations):
            break
        owner = owners[i] if i < len(owners) else -1
        if sym.isspace() and gap < 0:
            gap = i
        if not sym or sym.isspace():
            # a pause, a word break or the end pad: where the sound of the word before ends
            if last_phoneme >= 0 and durations[i] > 0 and events[-1].text:
                events.append(
                    EngineEvent("phoneme", events[last_phoneme].text_pos, 0, float(starts[i]), "")
                )
            continue
        if sym in STRESS:
            if not pending:
                pending_at = i
            pending += sym
            continue
        if _modifier(sym) and not pending and last_phoneme >= 0:
            prev = events[last_phoneme]
            events[last_phoneme] = EngineEvent(
                "phoneme", prev.text_pos, 0, prev.time_ms, prev.text + sym
            )
            continue
        at = pending_at if pending else i
        pos = (
            spans[owner][0]
            if 0 <= owner < len(spans)
            else (events[last_phoneme].text_pos if last_phoneme >= 0 else 0)
        )
        if 0 <= owner < len(spans) and owner != current:
            current = owner
            s, e = spans[owner]
            # the model's frames of the break before a word already carry its onset (the
            # frames of a phoneme are its steady part): measured against forced
            # alignment, a word starts at its break, not at its first phoneme's frames
            onset = min(at, gap) if gap >= 0 else at
            events.append(EngineEvent("word", s, e - s, float(starts[onset])))
        events.append(EngineEvent("phoneme", pos, 0, float(starts[at]), pending + sym))
        last_phoneme = len(events) - 1
        pending = ""
        gap = -1
    return events


def _owners_by_breaks(text: str, symbols: Sequence[str]) -> tuple[list[int], list[tuple[int, int]]]:
    """Owners when the engine knows only where words break: the n-th phoneme-word is
    placed by ``word_positions``."""
    heads = 0
    after_break = True
    word_of: list[int] = []
    for sym in symbols:
        if not sym:
            word_of.append(-1)
            continue
        if sym.isspace():
            after_break = True
            word_of.append(-1)
            continue
        if after_break:
            heads += 1
        after_break = False
        word_of.append(heads - 1)
    positions = word_positions(text, heads)
    spans = [(p, p + n) for p, n in positions]
    # phoneme-words spread over the same text word share one owner
    index: dict[tuple[int, int], int] = {}
    unique: list[tuple[int, int]] = []
    remap = []
    for span in spans:
        if span not in index:
            index[span] = len(unique)
            unique.append(span)
        remap.append(index[span])
    return [remap[w] if 0 <= w < len(remap) else -1 for w in word_of], unique


def push(pcm: np.ndarray, events: list[EngineEvent], rate: int, sink: Sink) -> SynthesisResult:
    """Feed a rendered sentence to the sink in 60 ms chunks, each with its events."""
    result = SynthesisResult()
    step = max(1, int(rate * CHUNK_SECONDS))
    events = sorted(events, key=lambda e: e.time_ms)
    k = 0
    for start in range(0, max(len(pcm), 1), step):
        chunk = pcm[start : start + step]
        end_ms = (start + len(chunk)) * 1000 / rate
        batch = []
        while k < len(events) and (events[k].time_ms < end_ms or start + step >= len(pcm)):
            batch.append(events[k])
            k += 1
        result.samples += len(chunk)
        if not sink(chunk, batch):
            result.stopped = True
            break
    return result
