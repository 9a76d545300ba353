"""What the ONNX engines (Piper, Kokoro) share: sessions, idle unloading, and events.

A neural model renders a whole sentence per run, not in callbacks like
espeak, so the engine pushes the sentence's audio to the sink in 60 ms
chunks with the word and phoneme events that fall in each. Where the model
outputs per-symbol durations, those become the timestamps; the frame length
is taken from the output itself (audio samples / total frames), so it needs
no per-model constant.
"""

from __future__ import annotations

import threading
import time
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


def open_session(path: Path) -> Any:
    """An onnxruntime session for ``path`` with its phoneme durations exposed as an output.

    One intra-op and one inter-op thread: parallelism comes from the worker
    processes (one per core), so two workers on two cores never fight over them.
    """
    import onnxruntime as ort

    from orate.engines.onnx_graph import with_durations

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    model, _ = with_durations(path.read_bytes())
    return ort.InferenceSession(model, options, providers=providers())


class LazySession:
    """A model loaded on first use (in the worker that needs it) and dropped after ``idle``
    seconds; ``load`` builds it (an onnxruntime session by default)."""

    def __init__(self, path: Path | Callable[[], Path], idle: float,
                 load: Callable[[Path], Any] = open_session) -> None:
        self.path = path
        self.idle = idle
        self._load = load
        self._session: Any = None
        self._used = 0.0
        self._lock = threading.Lock()

    def get(self) -> Any:
        with self._lock:
            if self._session is None:
                path = self.path() if callable(self.path) else self.path
                self._session = self._load(path)
            self._used = time.monotonic()
            return self._session

    def sweep(self) -> bool:
        """Unload if idle; True when it did."""
        with self._lock:
            if self._session is not None and time.monotonic() - self._used > self.idle:
                self._session = None
                return True
        return False

    @property
    def loaded(self) -> bool:
        return self._session is not None


def to_pcm(audio: np.ndarray) -> np.ndarray:
    return (np.clip(np.asarray(audio, dtype=np.float32).ravel(), -1.0, 1.0) * 32767).astype(
        np.int16)


def word_positions(text: str, words: int) -> list[tuple[int, int]]:
    """Start and length in ``text`` of the ``words`` phoneme-words the model spoke.

    espeak's IPA keeps one space-separated group per word, but may fold short
    words into a neighbour; when the counts differ, groups are spread evenly
    over the text's words so every event still points at a real word.
    """
    from orate.speech.text import Tokens

    spans = [(s, e) for s, e in Tokens.of(text).spans
             if any(ch.isalnum() for ch in text[s:e])]
    if not spans or not words:
        return []
    if len(spans) != words:
        spans = [spans[min(len(spans) - 1, k * len(spans) // words)] for k in range(words)]
    return [(s, e - s) for s, e in spans]


def symbol_events(text: str, symbols: Sequence[str], durations: np.ndarray,
                  samples: int, rate: int) -> list[EngineEvent]:
    """Word and phoneme events from per-symbol durations (symbols: one per duration).

    ``""`` marks pads and sentence marks (they take time, nothing else) and
    ``" "`` a word break; a word starts at its first phoneme after a break.
    """
    durations = np.asarray(durations, dtype=np.float64).ravel()[:len(symbols)]
    total = float(durations.sum())
    if total <= 0:
        return []
    ms_per_frame = samples / total / rate * 1000
    starts = np.concatenate([[0.0], np.cumsum(durations)[:-1]]) * ms_per_frame
    heads = []
    after_break = True
    for sym in symbols:
        if not sym:
            continue
        if sym.isspace():
            after_break = True
            continue
        heads.append(after_break)
        after_break = False
    positions = word_positions(text, sum(heads))
    events: list[EngineEvent] = []
    word = -1
    k = 0
    for i, sym in enumerate(symbols):
        if not sym or sym.isspace():
            continue
        if heads[k]:
            word += 1
            if word < len(positions):
                pos, length = positions[word]
                events.append(EngineEvent("word", pos, length, float(starts[i])))
        k += 1
        pos = positions[word][0] if 0 <= word < len(positions) else 0
        events.append(EngineEvent("phoneme", pos, 0, float(starts[i]), sym))
    return events


def push(pcm: np.ndarray, events: list[EngineEvent], rate: int, sink: Sink) -> SynthesisResult:
    """Feed a rendered sentence to the sink in 60 ms chunks, each with its events."""
    result = SynthesisResult()
    step = max(1, int(rate * CHUNK_SECONDS))
    events = sorted(events, key=lambda e: e.time_ms)
    k = 0
    for start in range(0, max(len(pcm), 1), step):
        chunk = pcm[start:start + step]
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
