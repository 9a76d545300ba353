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

from collections.abc import Callable

# imported here, not on first use: num2words and the scanner cost ~70 ms to load, which
# belongs to server start, not to the first request
from orate.runtime.spoken import Piece, Spoken
from orate.speech.normalize import normalize_text
from orate.speech.phonemes import ipa_to_espeak_lenient


class SpokenBuilder:
    """Appends spoken text piece by piece, recording where each came from.

    ``alphabet`` is how the engine reads phoneme input: ``"espeak"`` (espeak-ng's
    mnemonics, which espeak, and Piper and Kokoro through espeak, read), ``"ipa"`` (IPA
    that the engine turns into its own alphabet: hibari) or ``None`` (no phoneme input:
    an upstream provider; the word is read as written).
    """

    def __init__(
        self, alphabet: str | None = "espeak", check: Callable[[str], list[str]] | None = None
    ) -> None:
        self.alphabet = alphabet
        self.check = check  # the engine's own test: IPA symbols it has no phoneme for
        self.unapplied: list[str] = []  # what could not be read as written, for the caller
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

    def phoneme_input(self, ipa: str, src_start: int, src_end: int, written: str = "") -> None:
        """IPA for ``source[src_start:src_end]``, bracketed (``[[…]]``) in the engine's
        phoneme alphabet so it reads them as phonemes; ``written`` (the caller's own
        word) where the engine takes no phoneme input."""
        if self.alphabet is None:
            self.copy(written, src_start)
            return
        if self.alphabet == "espeak":
            body, missing = ipa_to_espeak_lenient(ipa)
        else:
            body, missing = " ".join(ipa.split()), list(self.check(ipa) if self.check else ())
        if missing:
            self.unapplied.append(
                f"/{ipa}/ for {written!r}: no phoneme for "
                f"{' '.join(missing)}" + ("; read as written" if not body else "; read without it")
            )
        if not body:
            self.copy(written, src_start)
            return
        self.phonemes = True
        self.rewrite(f"[[{body}]]", src_start, src_end)

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
