"""``Spoken``: the string an engine reads for one sentence, and the map back to the
caller's characters (built by speech/spoken.py from normalization, lexicons and SSML).

Plain data that travels to the worker processes inside the render job, so it lives
on the runtime floor: the render moves engine word events back onto the caller's
words with it before timestamps are built.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass

# (out_start, out_end, src_start, src_end, exact): exact pieces map char for char,
# the others (rewrites) map every character to the whole source range.
Piece = tuple[int, int, int, int, bool]


@dataclass(frozen=True)
class Spoken:
    """The engine's text of one sentence; ``pieces`` cover it, in order."""

    text: str
    pieces: tuple[Piece, ...]
    phonemes: bool = False  # holds espeak phoneme input ``[[…]]`` (lexicon IPA, <phoneme>)

    def source_pos(self, pos: int) -> int:
        """The caller's offset behind ``text[pos]`` (inside a rewrite: its start)."""
        if not self.pieces:
            return pos
        i = bisect_right([p[0] for p in self.pieces], pos) - 1
        if i < 0:
            return self.pieces[0][2]
        out_start, _out_end, src_start, src_end, exact = self.pieces[i]
        if exact:
            return min(src_start + (pos - out_start), max(src_end - 1, src_start))
        return src_start

    def shifted(self, offset: int) -> Spoken:
        """The same sentence with source offsets moved by ``offset`` (the utterance's
        place in the request's text)."""
        if not offset:
            return self
        return Spoken(
            self.text,
            tuple((a, b, c + offset, d + offset, x) for a, b, c, d, x in self.pieces),
            self.phonemes,
        )

    def source_range(self) -> tuple[int, int]:
        """The caller's characters this sentence was made from."""
        if not self.pieces:
            return 0, len(self.text)
        return min(p[2] for p in self.pieces), max(p[3] for p in self.pieces)
