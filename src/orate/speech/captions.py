"""SRT and WebVTT captions from word timestamps.

Cues follow the usual subtitle conventions: a cue never runs past the end of a
sentence, a line holds at most ~42 characters and a cue at most two lines. Cue
times are the first word's start and the last word's end, so they match the
word timestamps exactly. The files are written by the ``srt`` and ``webvtt-py``
libraries rather than by hand (escaping, time formats).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from orate.runtime.timestamps import Timestamp

MAX_LINE = 42
MAX_LINES = 2
FORMATS = ("srt", "vtt")
_SENTENCE_END = (".", "!", "?", "…", "。", "！", "？")


@dataclass(frozen=True)
class Cue:
    start: float  # ms
    end: float
    lines: tuple[str, ...]


def _word(stamp: Timestamp, text: str | None) -> str:
    """The caller's own token (with its punctuation) when it is plain text."""
    if text is not None and stamp.char_start is not None and stamp.char_end is not None:
        token = text[stamp.char_start : stamp.char_end]
        if token and "<" not in token and ">" not in token and "&" not in token:
            return token
    return stamp.text


def cues(
    stamps: Iterable[Timestamp],
    text: str | None = None,
    max_line: int = MAX_LINE,
    max_lines: int = MAX_LINES,
) -> list[Cue]:
    """Group word timestamps into cues: split at sentence ends, lines ≤ ``max_line``."""
    words = sorted((s for s in stamps if s.type == "word"), key=lambda s: s.start)
    out: list[Cue] = []
    lines: list[str] = []
    start = end = 0.0

    def close() -> None:
        if lines:
            out.append(Cue(start, end, tuple(lines)))
            lines.clear()

    for stamp in words:
        token = _word(stamp, text)
        if not lines:
            start = stamp.start
            lines.append(token)
        elif len(lines[-1]) + 1 + len(token) <= max_line:
            lines[-1] += " " + token
        elif len(lines) < max_lines:
            lines.append(token)
        else:
            close()
            start = stamp.start
            lines.append(token)
        end = stamp.end
        if token.rstrip("\"')]»”’").endswith(_SENTENCE_END):
            close()
    close()
    return out


def to_srt(items: list[Cue]) -> str:
    import srt

    return str(
        srt.compose(
            [
                srt.Subtitle(
                    n + 1,
                    timedelta(milliseconds=c.start),
                    timedelta(milliseconds=max(c.end, c.start)),
                    "\n".join(c.lines),
                )
                for n, c in enumerate(items)
            ]
        )
    )


def _vtt_time(ms: float) -> str:
    total = round(ms)
    h, rest = divmod(total, 3_600_000)
    m, rest = divmod(rest, 60_000)
    s, milli = divmod(rest, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}.{milli:03d}"


def to_vtt(items: list[Cue]) -> str:
    import webvtt

    vtt = webvtt.WebVTT(
        captions=[
            webvtt.Caption(
                start=_vtt_time(c.start),
                end=_vtt_time(max(c.end, c.start)),
                text="\n".join(c.lines),
            )
            for c in items
        ]
    )
    return vtt.content


def captions(stamps: Iterable[Timestamp], fmt: str, text: str | None = None) -> str:
    """An SRT or WebVTT file (``fmt`` "srt" or "vtt") for word timestamps."""
    items = cues(stamps, text)
    return to_srt(items) if fmt == "srt" else to_vtt(items)


CONTENT_TYPES = {"srt": "application/x-subrip", "vtt": "text/vtt"}


def recorded_words(meta: dict[str, Any] | None) -> list[Timestamp]:
    """Word timestamps stored with a generation (its recorded events), in order."""
    out: list[Timestamp] = []
    for mark in (meta or {}).get("events", []):
        if mark.get("kind") == "timestamps":
            out.extend(Timestamp(**d) for d in mark["timestamps"] if d.get("type") == "word")
    return out
