"""IPA → espeak-ng phoneme mnemonics, for lexicon entries and SSML ``<phoneme>``.

espeak reads phonemes written in its own ASCII mnemonics between ``[[`` and ``]]``
(``təˈmeɪtoʊ`` is ``[[t@m'eItoU]]``), not IPA. Every engine here reads text through
espeak (Piper and Kokoro use espeak's IPA as their front end), so one conversion
serves them all. The conversion is restricted to the phonemes of English (the
symbols in ``_IPA``): anything else is refused with the symbol named rather than
read as something arbitrary.
"""

from __future__ import annotations

_IPA = {
    # diphthongs and long vowels first (longest match wins)
    "eɪ": "eI",
    "aɪ": "aI",
    "ɔɪ": "OI",
    "aʊ": "aU",
    "oʊ": "oU",
    "əʊ": "oU",
    "ɪə": "i@",
    "eə": "e@",
    "ɛə": "e@",
    "ʊə": "U@",
    "tʃ": "tS",
    "dʒ": "dZ",
    "ɑː": "A:",
    "ɜː": "3:",
    "iː": "i:",
    "uː": "u:",
    "ɔː": "O:",
    "ɑɹ": "A@",
    "ɔɹ": "O@",
    "ɑ": "A:",
    "æ": "a",
    "ʌ": "V",
    "ə": "@",
    "ɚ": "3",
    "ɝ": "3:",
    "ɜ": "3:",
    "ɪ": "I",
    "i": "i",
    "ʊ": "U",
    "u": "u:",
    "ɔ": "O:",
    "ɒ": "0",
    "ɛ": "E",
    "e": "E",
    "o": "o",
    "a": "a",
    "ɐ": "a#",
    "ᵻ": "I2",
    "ɨ": "I2",
    "p": "p",
    "b": "b",
    "t": "t",
    "d": "d",
    "k": "k",
    "g": "g",
    "ɡ": "g",
    "f": "f",
    "v": "v",
    "θ": "T",
    "ð": "D",
    "s": "s",
    "z": "z",
    "ʃ": "S",
    "ʒ": "Z",
    "h": "h",
    "m": "m",
    "n": "n",
    "ŋ": "N",
    "l": "l",
    "ɫ": "l",
    "r": "r",
    "ɹ": "r",
    "j": "j",
    "w": "w",
    "ɾ": "t",
    "ʔ": "?",
    "x": "x",
    "ç": "C",
}
_STRESS = {"ˈ": "'", "ˌ": ","}
_VOWELS = set("aeiouAEIOUV@03")
_SKIP = set(".‿ː()/[]")  # syllable marks, slashes and lengths espeak works out itself


class PhonemeError(ValueError):
    """An IPA string with a symbol the conversion does not know."""


def ipa_to_espeak(ipa: str) -> str:
    """espeak mnemonics for an IPA transcription; raises ``PhonemeError`` naming a symbol
    outside the supported set. Stress marks move onto the next vowel, where espeak
    expects them."""
    return _convert(ipa, strict=True)[0]


def ipa_to_espeak_lenient(ipa: str) -> tuple[str, list[str]]:
    """espeak mnemonics for the symbols it has, and the symbols it has none for (the
    caller reports them; the rest of the word is still read with its phonemes)."""
    try:
        return _convert(ipa, strict=False)
    except PhonemeError:
        return "", [ch for ch in ipa if not ch.isspace()][:8]


def check_ipa(ipa: str) -> None:
    """A transcription orate can carry: some symbols, no brackets or markup (it travels
    between ``[[`` and ``]]``). Symbols no engine knows are reported when used."""
    if not ipa.strip():
        raise PhonemeError("the IPA transcription is empty")
    if len(ipa) > 1000:
        raise PhonemeError("the IPA transcription is longer than 1000 characters")
    bad = next(
        (ch for ch in ipa if ch in '[]<>&"\\' or (not ch.isprintable() and not ch.isspace())), None
    )
    if bad is not None:
        raise PhonemeError(f"{bad!r} is not an IPA symbol")


def _convert(ipa: str, strict: bool) -> tuple[str, list[str]]:
    missing: list[str] = []
    words = []
    for word in ipa.strip().split():
        out: list[str] = []
        pending = ""
        i = 0
        while i < len(word):
            ch = word[i]
            if ch in _STRESS:
                pending = _STRESS[ch]
                i += 1
                continue
            if ch in _SKIP:
                i += 1
                continue
            two = word[i : i + 2]
            if two in _IPA:
                sym, i = _IPA[two], i + 2
            elif ch in _IPA:
                sym, i = _IPA[ch], i + 1
            else:
                if strict:
                    raise PhonemeError(
                        f"IPA symbol {ch!r} (U+{ord(ch):04X}) is not "
                        "supported; use the IPA of English phonemes"
                    )
                if ch not in missing:
                    missing.append(ch)
                i += 1
                continue
            if pending and sym[0] in _VOWELS:
                out.append(pending)
                pending = ""
            out.append(sym)
        if out:
            words.append("".join(out))
    if not words:
        raise PhonemeError("the IPA transcription is empty")
    return " ".join(words), missing
