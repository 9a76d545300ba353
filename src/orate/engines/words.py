"""Word spans of a text: what engines, the runtime's timestamps and the speech layer agree
a "word" is, so an engine's character positions snap to whole words everywhere alike.

It sits with the engines (the lowest layer that needs it), not with the speech layer's
text handling, so engines and the runtime never import upward.
"""

from __future__ import annotations

import re
import unicodedata
from bisect import bisect_left, bisect_right
from dataclasses import dataclass

_TOKEN = re.compile(r"[^\s<>]+")
_TAG = re.compile(r"<[^>]*>")


@dataclass(frozen=True)
class Tokens:
    """Word-like tokens of a text, for snapping engine positions to whole words."""

    spans: tuple[tuple[int, int], ...]

    @classmethod
    def of(cls, text: str, ssml: bool = False) -> Tokens:
        if ssml:  # blank the markup (same length) so tags and attributes are not words
            text = _TAG.sub(lambda m: " " * len(m.group()), text)
        return cls(tuple((m.start(), m.end()) for m in _TOKEN.finditer(text)))

    def between(self, start: int, end: int) -> range:
        """Indices of the tokens that begin within ``[start, end)``."""
        starts = [s for s, _ in self.spans]
        return range(bisect_left(starts, start), bisect_left(starts, end))

    def index_at(self, pos: int) -> int | None:
        """The token containing ``pos``, else the next one after it."""
        i = bisect_right([s for s, _ in self.spans], pos) - 1
        if i >= 0 and self.spans[i][0] <= pos < self.spans[i][1]:
            return i
        return i + 1 if i + 1 < len(self.spans) else None


_NUMBER_EDGES = ".,;:!?\"'()[]{}«»“”‘’"


def word_text(token: str) -> str:
    """A token without the punctuation around it ("(hello," → "hello"); a token with
    digits keeps its symbols ("$4.50," → "$4.50", "50%" stays), since they are read."""
    if any(ch.isdigit() for ch in token):
        return token.strip(_NUMBER_EDGES) or token
    s, e = 0, len(token)
    while s < e and unicodedata.category(token[s])[0] in "PS":
        s += 1
    while e > s and unicodedata.category(token[e - 1])[0] in "PS":
        e -= 1
    return token[s:e] or token
