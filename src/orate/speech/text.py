"""Text preparation: character cleanup, sentence planning, word tokens.

``normalize`` here is only a length-preserving cleanup (a character is only ever
replaced by one character), so offsets into it are offsets into the caller's
text. Reading numbers, money and dates as words is speech/normalize.py, and what
the engine then reads (with its map back) is speech/spoken.py; SSML is parsed by
speech/ssml.py, which uses the sentence splitter here (never the other way).
"""

from __future__ import annotations

import re
import unicodedata

MAX_SENTENCE_CHARS = 300

_SENTENCE_END = re.compile(r"[.!?…。！？]+[\"'”’»)\]]*(?=\s|$)|\n[ \t]*\n")
_ABBREVIATIONS = frozenset(
    "mr mrs ms dr prof sr jr st vs etc e.g i.e fig no vol approx mt ft ave dept ext est "
    "mon tue tues wed thu thur thurs fri jan feb apr jun jul aug sep sept oct nov dec".split()
)
_CLAUSE = re.compile(r"[,;:—–]\s")


class TextError(ValueError):
    """The text cannot be synthesized as given; the message says what to fix."""

    def __init__(self, message: str, code: str = "invalid_input") -> None:
        super().__init__(message)
        self.code = code


def normalize(text: str) -> str:
    """Replace characters espeak must not see, one for one.

    Control characters (other than tab and newlines) and lone surrogates, which
    JSON can carry but UTF-8 cannot encode, become spaces.
    """
    if text.isprintable():
        return text
    out = []
    for ch in text:
        if ch in "\n\t\r" or ch.isprintable() or unicodedata.category(ch) in ("Zs", "Cf"):
            out.append(ch if unicodedata.category(ch) != "Cs" else " ")
        else:
            out.append(" ")
    return "".join(out)


def speakable(ch: str) -> bool:
    """A character that can make a sound: letters and digits anywhere, and non-ASCII
    symbols (emoji, currency). Spaces, punctuation, and invisible format characters
    (zero-width, bidi controls) cannot."""
    if ch.isalnum():
        return True
    return not ch.isascii() and unicodedata.category(ch)[0] not in "CZP"


def _is_abbreviation(text: str, end: int) -> bool:
    """True when the period ending at ``end`` closes an abbreviation or an initial."""
    start = end
    while start > 0 and not text[start - 1].isspace():
        start -= 1
    word = text[start:end].rstrip(".").lower()
    return word in _ABBREVIATIONS or (len(word) == 1 and word.isalpha())


def _split_long(text: str, start: int, end: int, limit: int) -> list[tuple[int, int]]:
    """Cut an over-long sentence at clause marks, else at spaces, into ≤ limit pieces."""
    pieces = []
    while end - start > limit:
        window = text[start : start + limit]
        cut = max((m.end() for m in _CLAUSE.finditer(window)), default=0)
        if cut < limit // 3:
            cut = window.rfind(" ") + 1
        if cut <= 0:
            cut = limit
        pieces.append((start, start + cut))
        start += cut
    pieces.append((start, end))
    return pieces


def split_sentences(text: str, limit: int = MAX_SENTENCE_CHARS) -> list[tuple[int, int]]:
    """Spans of ``text`` to synthesize one at a time, whitespace trimmed, empties dropped."""
    spans: list[tuple[int, int]] = []
    start = 0
    for m in _SENTENCE_END.finditer(text):
        if (
            m.group().startswith(".")
            and _is_abbreviation(text, m.start() + 1)
            and len(m.group()) == 1
        ):
            continue
        spans.append((start, m.end()))
        start = m.end()
    spans.append((start, len(text)))
    out: list[tuple[int, int]] = []
    for s, e in spans:
        while s < e and text[s].isspace():
            s += 1
        while e > s and text[e - 1].isspace():
            e -= 1
        if s < e and any(speakable(ch) for ch in text[s:e]):
            out.extend(_split_long(text, s, e, limit))
    return out
