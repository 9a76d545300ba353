"""Pronunciation lexicons: a caller's words (or patterns) read as an alias or as IPA.

Rules have ElevenLabs' shape (``string_to_replace``, ``type`` "alias" or "phoneme",
``alias`` / ``phoneme`` + ``alphabet`` "ipa"); orate adds ``"regex": true`` to match
a pattern instead of a word. They come from JSON or from a W3C PLS file (what
ElevenLabs' add-from-file takes), parsed with defusedxml like SSML.

Applied before normalization, on the caller's own text, so a match keeps its map
back to the caller's characters: an alias is a rewrite; IPA becomes espeak phoneme
input (``[[…]]``, see speech/phonemes.py), which every local engine reads, because
Piper and Kokoro take their phonemes from espeak too. Patterns are screened for
nested repetition (the classic catastrophic backtracking) and bounded in size, and
they only ever run over one sentence at a time (≤ 300 characters).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from orate.speech.phonemes import PhonemeError, check_ipa
from orate.speech.spoken import SpokenBuilder

MAX_RULES = 5000
MAX_PATTERN = 200
MAX_PLS_BYTES = 2_000_000
# a quantified group that itself holds a quantifier: (a+)+, (\w*x)*, (a|aa){2,}
_NESTED = re.compile(r"\((?:[^()\\]|\\.)*[*+}](?:[^()\\]|\\.)*\)\s*[*+{?]")


class LexiconError(ValueError):
    """A rule or PLS file that cannot be used; the message says which and why."""


@dataclass(frozen=True)
class Rule:
    string_to_replace: str
    type: str  # "alias" | "phoneme"
    alias: str | None = None
    phoneme: str | None = None
    alphabet: str = "ipa"
    regex: bool = False

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"string_to_replace": self.string_to_replace, "type": self.type}
        if self.type == "alias":
            out["alias"] = self.alias
        else:
            out["phoneme"] = self.phoneme
            out["alphabet"] = self.alphabet
        if self.regex:
            out["regex"] = True
        return out


def rule_from(data: dict[str, Any], n: int = 0) -> Rule:
    """A rule from its JSON form, checked (IPA converts, patterns are safe)."""
    where = f"rule {n + 1}"
    target = str(data.get("string_to_replace") or "")
    if not target.strip() or len(target) > MAX_PATTERN:
        raise LexiconError(f"{where}: string_to_replace needs 1 to {MAX_PATTERN} characters")
    kind = data.get("type") or ("phoneme" if data.get("phoneme") else "alias")
    regex = bool(data.get("regex"))
    if regex:
        if _NESTED.search(target):
            raise LexiconError(f"{where}: the pattern {target!r} nests repetition "
                               "(like (a+)+), which can take exponential time; simplify it")
        try:
            re.compile(target)
        except re.error as exc:
            raise LexiconError(f"{where}: the pattern {target!r} is not a valid regular "
                               f"expression: {exc}") from None
    if kind == "alias":
        alias = str(data.get("alias") or "")
        if not alias.strip() or len(alias) > 1000:
            raise LexiconError(f"{where}: an alias rule needs an alias (1 to 1000 characters)")
        return Rule(target, "alias", alias=alias, regex=regex)
    if kind == "phoneme":
        alphabet = str(data.get("alphabet") or "ipa").lower()
        if alphabet != "ipa":
            raise LexiconError(f"{where}: alphabet {alphabet!r} is not supported; use 'ipa'")
        phoneme = str(data.get("phoneme") or "")
        try:
            check_ipa(phoneme)
        except PhonemeError as exc:
            raise LexiconError(f"{where}: {exc}") from None
        return Rule(target, "phoneme", phoneme=phoneme, alphabet="ipa", regex=regex)
    raise LexiconError(f"{where}: type must be 'alias' or 'phoneme', not {kind!r}")


def rules_from(items: Sequence[dict[str, Any]]) -> list[Rule]:
    if len(items) > MAX_RULES:
        raise LexiconError(f"{len(items)} rules; a dictionary holds at most {MAX_RULES}")
    return [rule_from(dict(item), n) for n, item in enumerate(items)]


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def rules_from_pls(data: bytes) -> list[Rule]:
    """The rules of a W3C Pronunciation Lexicon (PLS) file: each grapheme of a lexeme
    maps to its first alias, else its first phoneme (IPA)."""
    from xml.etree.ElementTree import ParseError

    import defusedxml.ElementTree as DET
    from defusedxml import DefusedXmlException

    if len(data) > MAX_PLS_BYTES:
        raise LexiconError(f"the PLS file is {len(data)} bytes; the limit is {MAX_PLS_BYTES}")
    try:
        root = DET.fromstring(data, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException:
        raise LexiconError("the PLS file may not contain a DTD or entities") from None
    except ParseError as exc:
        line, col = exc.position
        raise LexiconError(f"the PLS file is not well-formed XML at line {line}, column "
                           f"{col + 1}") from None
    if _local(root.tag) != "lexicon":
        raise LexiconError("a PLS file has <lexicon> as its root element")
    alphabet = (root.get("alphabet") or "ipa").lower()
    items: list[dict[str, Any]] = []
    for lexeme in root:
        if _local(lexeme.tag) != "lexeme":
            continue
        graphemes = [g.text or "" for g in lexeme if _local(g.tag) == "grapheme"]
        alias = next((a.text for a in lexeme if _local(a.tag) == "alias" and a.text), None)
        phoneme = next((p for p in lexeme if _local(p.tag) == "phoneme" and p.text), None)
        for grapheme in graphemes:
            if alias is not None:
                items.append({"string_to_replace": grapheme, "type": "alias", "alias": alias})
            elif phoneme is not None:
                items.append({"string_to_replace": grapheme, "type": "phoneme",
                              "phoneme": phoneme.text,
                              "alphabet": phoneme.get("alphabet") or alphabet})
    if not items:
        raise LexiconError("the PLS file has no lexeme with a grapheme and an alias or phoneme")
    return rules_from(items)


def rules_to_pls(rules: Sequence[Rule]) -> str:
    """A PLS file of the rules (what ElevenLabs' download returns)."""
    from xml.sax.saxutils import escape

    out = ['<?xml version="1.0" encoding="UTF-8"?>',
           '<lexicon version="1.0" xmlns="http://www.w3.org/2005/01/pronunciation-lexicon" '
           'alphabet="ipa" xml:lang="en-US">']
    for r in rules:
        body = f"<alias>{escape(r.alias or '')}</alias>" if r.type == "alias" else \
            f"<phoneme>{escape(r.phoneme or '')}</phoneme>"
        out.append(f"  <lexeme><grapheme>{escape(r.string_to_replace)}</grapheme>{body}"
                   "</lexeme>")
    out.append("</lexicon>")
    return "\n".join(out) + "\n"


class Lexicon:
    """Rules compiled into one pattern; earlier dictionaries (and rules) win."""

    def __init__(self, rules: Sequence[Rule]) -> None:
        self.rules = list(rules)
        parts = []
        for n, r in enumerate(self.rules):
            body = r.string_to_replace if r.regex else re.escape(r.string_to_replace)
            edge_l = r"(?<!\w)" if not r.regex and r.string_to_replace[:1].isalnum() else ""
            edge_r = r"(?!\w)" if not r.regex and r.string_to_replace[-1:].isalnum() else ""
            parts.append(f"(?P<r{n}>{edge_l}(?:{body}){edge_r})")
        self._pattern = re.compile("|".join(parts)) if parts else None

    def __bool__(self) -> bool:
        return self._pattern is not None

    def apply(self, builder: SpokenBuilder, text: str, at: int, language: str | None,
              phonemes: bool = True) -> None:
        """Add ``text`` (found at ``at``) to ``builder`` with the rules applied and the
        rest normalized in ``language`` (``None``: as written). Without phoneme input
        (``phonemes`` false: an upstream provider), IPA rules leave the word as written."""
        pos = 0
        if self._pattern is not None:
            for m in self._pattern.finditer(text):
                if m.end() == m.start():
                    continue
                rule = self.rules[int((m.lastgroup or "r0")[1:])]
                builder.normalized(text[pos:m.start()], at + pos, language)
                if rule.type == "alias":
                    builder.rewrite(rule.alias or "", at + m.start(), at + m.end())
                elif phonemes:
                    builder.phoneme_input(rule.phoneme or "", at + m.start(), at + m.end(),
                                          m.group())
                else:
                    builder.copy(m.group(), at + m.start())
                pos = m.end()
        builder.normalized(text[pos:], at + pos, language)
