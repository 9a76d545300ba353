"""Per-character alignment from word timestamps (ElevenLabs' ``alignment``).

Engines report words, not characters. Each character of the caller's text gets a
share of its word's time; characters between words (spaces, punctuation) fill the
gap between the words around them. The result covers every character, in order,
with times that never go backwards and never leave ``[start_ms, end_ms]``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from orate.runtime.timestamps import Timestamp


@dataclass
class CharAlignment:
    """Characters with start and end times in ms, three lists of equal length."""

    characters: list[str] = field(default_factory=list)
    starts: list[float] = field(default_factory=list)
    ends: list[float] = field(default_factory=list)

    def _spread(self, text: str, t0: float, t1: float) -> None:
        if not text:
            return
        step = (t1 - t0) / len(text)
        for n, ch in enumerate(text):
            self.characters.append(ch)
            self.starts.append(t0 + n * step)
            self.ends.append(t0 + (n + 1) * step)


def char_alignment(
    text: str, lo: int, hi: int, stamps: Sequence[Timestamp], start_ms: float, end_ms: float
) -> CharAlignment:
    """Align ``text[lo:hi]`` over ``[start_ms, end_ms]`` using the word timestamps
    whose character spans fall inside it (positions index ``text``)."""
    out = CharAlignment()
    end_ms = max(end_ms, start_ms)
    words = sorted(
        (
            s
            for s in stamps
            if s.type == "word"
            and s.char_start is not None
            and s.char_end is not None
            and lo <= s.char_start < hi
        ),
        key=lambda s: s.char_start or 0,
    )
    pos, clock = lo, start_ms
    for w in words:
        cs, ce = w.char_start or 0, min(w.char_end or 0, hi)
        if cs < pos:  # overlapping spans (merged tokens): keep text order
            continue
        w_start = min(max(w.start, clock), end_ms)
        w_end = min(max(w.end, w_start), end_ms)
        out._spread(text[pos:cs], clock, w_start)
        out._spread(text[cs:ce], w_start, w_end)
        pos, clock = ce, w_end
    out._spread(text[pos:hi], clock, end_ms)
    return out
