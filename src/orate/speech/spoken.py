"""What an engine reads for one sentence, and the way back to the caller's characters.

Normalization ("$4.50" → "four dollars fifty"), lexicon aliases and SSML (where the
words sit between tags) all make the engine read a different string than the caller
wrote. A ``Spoken`` carries that string plus pieces that map each of its characters
to the caller's text, so engine word events are moved back onto the caller's words
before timestamps are built: every timestamp still points at "$4.50", and the three
spoken words of that rewrite share the one token (see speech/timestamps.py).

Plain data only: it travels to the worker processes inside the render job and is
hashed into the cache key (so normalization on/off and lexicon versions key apart).
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass

# imported here, not on first use: num2words and the scanner cost ~70 ms to load, which
# belongs to server start, not to the first request
from orate.speech.normalize import normalize_text

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
        return Spoken(self.text, tuple((a, b, c + offset, d + offset, x)
                                       for a, b, c, d, x in self.pieces), self.phonemes)

    def source_range(self) -> tuple[int, int]:
        """The caller's characters this sentence was made from."""
        if not self.pieces:
            return 0, len(self.text)
        return min(p[2] for p in self.pieces), max(p[3] for p in self.pieces)


class SpokenBuilder:
    """Appends spoken text piece by piece, recording where each came from."""

    def __init__(self) -> None:
        self._parts: list[str] = []
        self._pieces: list[Piece] = []
        self._length = 0
        self.phonemes = False

    @property
    def length(self) -> int:
        return self._length

    def copy(self, text: str, src_start: int) -> None:
        """Text read as written, from ``src_start`` in the caller's text."""
        if text:
            self._add(text, src_start, src_start + len(text), True)

    def rewrite(self, text: str, src_start: int, src_end: int) -> None:
        """Text that replaces ``source[src_start:src_end]`` as a whole."""
        if text:
            self._add(text, src_start, src_end, False)

    def phoneme_input(self, mnemonics: str, src_start: int, src_end: int) -> None:
        """espeak phoneme mnemonics, bracketed so espeak reads them as phonemes."""
        self.phonemes = True
        self.rewrite(f"[[{mnemonics}]]", src_start, src_end)

    def normalized(self, text: str, src_start: int, language: str | None) -> None:
        """``text`` (found at ``src_start``) after normalization in ``language``;
        ``None`` copies it unchanged."""
        if language is None:
            self.copy(text, src_start)
            return
        n = normalize_text(text, language)
        pos = 0
        for s_start, s_end, o_start, o_end in n.spans:
            self.copy(text[pos:s_start], src_start + pos)
            self.rewrite(n.text[o_start:o_end], src_start + s_start, src_start + s_end)
            pos = s_end
        self.copy(text[pos:], src_start + pos)

    def _add(self, text: str, src_start: int, src_end: int, exact: bool) -> None:
        self._parts.append(text)
        self._pieces.append((self._length, self._length + len(text), src_start, src_end, exact))
        self._length += len(text)

    def build(self) -> Spoken:
        return Spoken("".join(self._parts), tuple(self._pieces), self.phonemes)

    def is_identity_of(self, source: str, start: int, end: int) -> bool:
        """True when the spoken text is exactly ``source[start:end]`` (nothing to carry)."""
        return all(p[4] for p in self._pieces) and "".join(self._parts) == source[start:end]
