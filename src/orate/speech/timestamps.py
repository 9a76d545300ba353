"""Word and phoneme timestamps from engine events, pointing into the caller's text.

Engines report word starts at their own idea of a word (espeak splits
"o'clock" and reads an emoji as two words), so word events are snapped to the
tokens of the caller's text: each token gets one timestamp, and the text of a
timestamp is always a word the caller wrote.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass

from orate.engines.base import EngineEvent
from orate.speech.text import Tokens, word_text


@dataclass(frozen=True)
class Timestamp:
    """One word or phoneme: ``start``/``end`` in ms from the start of the output audio."""

    type: str
    text: str
    start: float
    end: float
    char_start: int | None = None
    char_end: int | None = None

    def shifted(self, ms: float, scale: float = 1.0) -> Timestamp:
        return Timestamp(self.type, self.text, self.start * scale + ms, self.end * scale + ms,
                         self.char_start, self.char_end)

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def sentence_timestamps(text: str, offset: int, tokens: Tokens, events: Iterable[EngineEvent],
                        duration_ms: float, kinds: frozenset[str]) -> list[Timestamp]:
    """Timestamps for one synthesized sentence, in ms from the sentence's own start.

    ``text`` is the whole request text and ``offset`` where the sentence begins;
    event positions count from ``offset``. A word ends where the engine moves to
    another token or pauses (an empty phoneme), else where the sentence ends.
    """
    evs = sorted(events, key=lambda e: e.time_ms)
    words: list[tuple[int, float]] = []  # (token index, start ms)
    seen: set[int] = set()
    for e in evs:
        if e.kind != "word":
            continue
        idx = tokens.index_at(offset + e.text_pos)
        if idx is None or idx in seen:
            continue
        seen.add(idx)
        words.append((idx, e.time_ms))
    phonemes = [e for e in evs if e.kind == "phoneme"]
    out: list[Timestamp] = []
    if "word" in kinds:
        for n, (idx, start) in enumerate(words):
            limit = words[n + 1][1] if n + 1 < len(words) else duration_ms
            end = limit
            for p in phonemes:
                if p.time_ms <= start:
                    continue
                if p.time_ms >= limit:
                    break
                if not p.text.strip() or tokens.index_at(offset + p.text_pos) != idx:
                    end = p.time_ms
                    break
            s, e = tokens.spans[idx]
            out.append(Timestamp("word", word_text(text[s:e]), start, max(end, start), s, e))
    if "phoneme" in kinds:
        for n, p in enumerate(phonemes):
            if not p.text.strip():
                continue
            end = phonemes[n + 1].time_ms if n + 1 < len(phonemes) else duration_ms
            idx = tokens.index_at(offset + p.text_pos)
            span = tokens.spans[idx] if idx is not None else (None, None)
            out.append(Timestamp("phoneme", p.text, p.time_ms, max(end, p.time_ms), *span))
    out.sort(key=lambda t: (t.start, t.type != "word"))
    return out
