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
from orate.engines.words import Tokens, word_text


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
        return Timestamp(
            self.type,
            self.text,
            self.start * scale + ms,
            self.end * scale + ms,
            self.char_start,
            self.char_end,
        )

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def _word_end(
    start: float, limit: float, idx: int, offset: int, tokens: Tokens, phonemes: list[EngineEvent]
) -> float:
    """Where a word ends: the engine moves to another token, or pauses after the token's
    last phoneme (a pause inside it, between the words of "three and a half kilograms",
    does not end it), else ``limit``."""
    pause: float | None = None
    for p in phonemes:
        if p.time_ms <= start:
            continue
        if p.time_ms >= limit:
            break
        if not p.text.strip():
            if pause is None:
                pause = p.time_ms
            continue
        if tokens.index_at(offset + p.text_pos) != idx:
            return pause if pause is not None else p.time_ms
        pause = None  # the token goes on after the pause
    return pause if pause is not None else limit


def sentence_timestamps(
    text: str,
    offset: int,
    end: int,
    tokens: Tokens,
    events: Iterable[EngineEvent],
    duration_ms: float,
    kinds: frozenset[str],
) -> list[Timestamp]:
    """Timestamps for one synthesized sentence ``text[offset:end]``, in ms from its start.

    Event positions count from ``offset``. Tokens the engine ran into a
    neighbour ("was a" is one espeak word) share that neighbour's time by
    character length, so every word of the sentence gets a timestamp, in order.
    """
    evs = sorted(events, key=lambda e: e.time_ms)
    starts: dict[int, float] = {}
    for e in evs:
        if e.kind == "word":
            idx = tokens.index_at(offset + e.text_pos)
            if idx is not None and idx not in starts and tokens.spans[idx][0] < end:
                starts[idx] = e.time_ms
    phonemes = [e for e in evs if e.kind == "phoneme"]
    out: list[Timestamp] = []
    if "word" in kinds and starts:
        out += _word_stamps(text, offset, end, tokens, starts, phonemes, duration_ms)
    if "phoneme" in kinds:
        out += _phoneme_stamps(offset, tokens, phonemes, duration_ms)
    out.sort(key=lambda t: (t.start, t.type != "word", t.char_start or 0))
    return out


def _word_stamps(
    text: str,
    offset: int,
    end: int,
    tokens: Tokens,
    starts: dict[int, float],
    phonemes: list[EngineEvent],
    duration_ms: float,
) -> list[Timestamp]:
    """One timestamp per token the engine started (``starts``), and per token it ran
    into a neighbour, sharing that neighbour's time by character length."""
    out: list[Timestamp] = []
    spoken = [
        i
        for i in tokens.between(offset, end)
        if i in starts or any(ch.isalnum() for ch in text[slice(*tokens.spans[i])])
    ]
    heads = sorted(starts, key=lambda i: (starts[i], i))
    for n, idx in enumerate(heads):
        start = starts[idx]
        limit = starts[heads[n + 1]] if n + 1 < len(heads) else duration_ms
        stop = _word_end(start, limit, idx, offset, tokens, phonemes)
        nxt = heads[n + 1] if n + 1 < len(heads) else None
        group = [idx] + [
            i for i in spoken if idx < i and (nxt is None or i < nxt) and i not in starts
        ]
        if len(group) > 1:  # merged tokens: the group spans up to the next word
            stop = limit
        weights = [tokens.spans[i][1] - tokens.spans[i][0] for i in group]
        t = start
        for i, w in zip(group, weights, strict=True):
            share = (stop - start) * w / sum(weights)
            s_, e_ = tokens.spans[i]
            out.append(Timestamp("word", word_text(text[s_:e_]), t, t + share, s_, e_))
            t += share
    return out


def _phoneme_stamps(
    offset: int, tokens: Tokens, phonemes: list[EngineEvent], duration_ms: float
) -> list[Timestamp]:
    """One timestamp per phoneme, until the next one, with the span of its token."""
    out: list[Timestamp] = []
    for n, p in enumerate(phonemes):
        if not p.text.strip():
            continue
        stop = phonemes[n + 1].time_ms if n + 1 < len(phonemes) else duration_ms
        idx = tokens.index_at(offset + p.text_pos)
        span = tokens.spans[idx] if idx is not None else (None, None)
        out.append(Timestamp("phoneme", p.text, p.time_ms, max(stop, p.time_ms), *span))
    return out
