"""Pronunciation lexicons: a caller's words (or patterns) read as an alias or as IPA.

Rules have ElevenLabs' shape (``string_to_replace``, ``type`` "alias" or "phoneme",
``alias`` / ``phoneme`` + ``alphabet`` "ipa"); orate adds ``"regex": true`` to match
a pattern instead of a word. They come from JSON or from a W3C PLS file (what
ElevenLabs' add-from-file takes), parsed with defusedxml like SSML.

Applied before normalization, on the caller's own text, so a match keeps its map
back to the caller's characters: an alias is a rewrite; IPA becomes espeak phoneme
input (``[[…]]``, see speech/phonemes.py), which every local engine reads, because
Piper and Kokoro take their phonemes from espeak too.

Matching is linear in the text, whatever the caller writes: words match with one
Aho-Corasick automaton over every literal rule (pyahocorasick), and patterns with
RE2 (google-re2), which runs in time linear in the text and refuses what it cannot
run that way (backreferences, lookaround); such a pattern is refused when the rule is
saved, naming the construct. Application charges a per-request ``Budget`` (text
scanned plus matches found), so even many rules over a long text end in a clear 4xx
instead of a long stall; the pipeline runs it in a thread, off the event loop.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import ahocorasick
import re2

from orate.speech.phonemes import PhonemeError, check_ipa
from orate.speech.spoken import SpokenBuilder

MAX_RULES = 5000
MAX_PATTERN = 200
MAX_PLS_BYTES = 2_000_000
# work units one request may spend applying rules: characters scanned per pass plus
# matches found; ~1 s of Python at worst, far above any real dictionary on a long text
RULE_BUDGET = 2_000_000
_RE2_MEMORY = 64 << 20  # the compiled patterns of one set of dictionaries


class LexiconError(ValueError):
    """A rule or PLS file that cannot be used; the message says which and why."""


class RuleBudgetExceeded(LexiconError):
    """Applying the rules to this input would take more work than one request may."""


@dataclass
class Budget:
    """Work units a request may spend applying pronunciation rules (``RULE_BUDGET``)."""

    left: int = RULE_BUDGET
    spent: int = field(default=0)

    def charge(self, units: int) -> None:
        self.spent += units
        if self.spent > self.left:
            raise RuleBudgetExceeded(
                f"applying the pronunciation rules to this input takes more than "
                f"{self.left} units of work (characters scanned plus matches); use fewer "
                "rules or pattern rules, or send shorter text"
            )


_UNSUPPORTED = {  # constructs RE2 cannot run in linear time, by sre opcode name
    "GROUPREF": "a backreference (\\1 or (?P=name))",
    "GROUPREF_EXISTS": "a conditional group ((?(1)…|…))",
    "ASSERT": "a lookahead or lookbehind ((?=…), (?<=…))",
    "ASSERT_NOT": "a negative lookahead or lookbehind ((?!…), (?<!…))",
    "ATOMIC_GROUP": "an atomic group ((?>…))",
    "POSSESSIVE_REPEAT": "a possessive quantifier (a*+, a++)",
}


def _construct(pattern: str) -> str | None:
    """The first construct of ``pattern`` RE2 cannot run, named for the caller."""
    from re import _parser as sre_parse  # type: ignore[attr-defined]  # private, not in typeshed

    def walk(items: Any) -> str | None:
        for op, arg in items:
            name = str(op)
            if name in _UNSUPPORTED:
                return _UNSUPPORTED[name]
            for part in arg if isinstance(arg, (list, tuple)) else ():
                if isinstance(part, sre_parse.SubPattern):
                    found = walk(part)
                    if found:
                        return found
                elif isinstance(part, (list, tuple)):
                    for sub in part:
                        if isinstance(sub, sre_parse.SubPattern):
                            found = walk(sub)
                            if found:
                                return found
        return None

    return walk(sre_parse.parse(pattern))


def _re2_options(max_mem: int = _RE2_MEMORY) -> Any:
    options = re2.Options()
    options.log_errors = False  # errors come back as exceptions, not stderr lines
    options.max_mem = max_mem
    return options


_UNICODE_CLASSES = {"w": r"\p{L}\p{N}_", "d": r"\p{Nd}"}


def _unicode(pattern: str) -> str:
    """``pattern`` with ``\\w`` and ``\\d`` read as Python reads them (any script), not
    as RE2's ASCII classes."""
    out: list[str] = []
    in_class = False
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\" and i + 1 < len(pattern):
            nxt = pattern[i + 1]
            cls = _UNICODE_CLASSES.get(nxt.lower())
            if cls is not None and (nxt.islower() or not in_class):
                body = cls if in_class else f"[{'^' if nxt.isupper() else ''}{cls}]"
                out.append(body)
            else:
                out.append(pattern[i : i + 2])
            i += 2
            continue
        if ch == "[" and not in_class:
            in_class = True
            out.append(ch)
            if pattern[i + 1 : i + 2] == "^":
                out.append("^")
                i += 1
            if pattern[i + 1 : i + 2] == "]":  # a leading ] is a literal
                out.append("]")
                i += 1
        elif ch == "]" and in_class:
            in_class = False
            out.append(ch)
        else:
            out.append(ch)
        i += 1
    return "".join(out)


def _re2_message(exc: Exception) -> str:
    text = exc.args[0] if exc.args else exc
    return text.decode(errors="replace") if isinstance(text, bytes) else str(text)


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
        try:
            re.compile(target)
        except (re.error, RecursionError, OverflowError) as exc:
            raise LexiconError(
                f"{where}: the pattern {target!r} is not a valid regular expression: {exc}"
            ) from None
        construct = _construct(target)
        if construct is not None:
            raise LexiconError(
                f"{where}: the pattern {target!r} uses {construct}, which "
                "cannot be matched in linear time; patterns run on RE2 "
                "(see its syntax): rewrite it without that construct"
            )
        try:
            re2.compile(_unicode(target), _re2_options(8 << 20))
        except re2.error as exc:
            raise LexiconError(
                f"{where}: the pattern {target!r} cannot be used: "
                f"{_re2_message(exc)} (patterns run on RE2)"
            ) from None
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
        raise LexiconError(
            f"the PLS file is not well-formed XML at line {line}, column {col + 1}"
        ) from None
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
                items.append(
                    {
                        "string_to_replace": grapheme,
                        "type": "phoneme",
                        "phoneme": phoneme.text,
                        "alphabet": phoneme.get("alphabet") or alphabet,
                    }
                )
    if not items:
        raise LexiconError("the PLS file has no lexeme with a grapheme and an alias or phoneme")
    return rules_from(items)


def rules_to_pls(rules: Sequence[Rule]) -> str:
    """A PLS file of the rules (what ElevenLabs' download returns)."""
    from xml.sax.saxutils import escape

    out = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<lexicon version="1.0" xmlns="http://www.w3.org/2005/01/pronunciation-lexicon" '
        'alphabet="ipa" xml:lang="en-US">',
    ]
    for r in rules:
        body = (
            f"<alias>{escape(r.alias or '')}</alias>"
            if r.type == "alias"
            else f"<phoneme>{escape(r.phoneme or '')}</phoneme>"
        )
        out.append(f"  <lexeme><grapheme>{escape(r.string_to_replace)}</grapheme>{body}</lexeme>")
    out.append("</lexicon>")
    return "\n".join(out) + "\n"


def _word(ch: str) -> bool:
    """A word character as Python's ``\\w`` reads it."""
    return ch.isalnum() or ch == "_"


class Lexicon:
    """Rules compiled for linear matching; earlier dictionaries (and rules) win.

    At each position the earliest rule that matches there wins, and matching goes on
    after it, as one alternation of the rules in order would read: words come from an
    Aho-Corasick automaton (a word only matches as a whole word when its ends are
    word characters), patterns from one RE2 alternation."""

    def __init__(self, rules: Sequence[Rule]) -> None:
        self.rules = list(rules)
        self._words: Any = None
        self._edges: dict[int, tuple[bool, bool]] = {}
        self._regex: Any = None
        self._regex_rules: list[int] = []
        words: dict[str, int] = {}
        parts: list[str] = []
        for n, r in enumerate(self.rules):
            if r.regex:
                parts.append(f"({_unicode(r.string_to_replace)})")
                self._regex_rules.append(n)
            elif r.string_to_replace not in words:
                words[r.string_to_replace] = n
                self._edges[n] = (
                    r.string_to_replace[:1].isalnum(),
                    r.string_to_replace[-1:].isalnum(),
                )
        if words:
            automaton = ahocorasick.Automaton()
            for word, n in words.items():
                automaton.add_word(word, (n, len(word)))
            automaton.make_automaton()
            self._words = automaton
        if parts:
            # groups are numbered in rule order; each rule's own groups come after its own
            counts = [re.compile(self.rules[n].string_to_replace).groups for n in self._regex_rules]
            self._group_rule: dict[int, int] = {}
            group = 1
            for n, extra in zip(self._regex_rules, counts, strict=True):
                self._group_rule[group] = n
                group += 1 + extra
            try:
                self._regex = re2.compile("|".join(parts), _re2_options())
            except re2.error as exc:
                raise LexiconError(
                    f"the pattern rules together cannot be compiled: "
                    f"{_re2_message(exc)}; use fewer pattern rules"
                ) from None

    _budget: Budget | None = None

    def __bool__(self) -> bool:
        return bool(self.rules)

    def with_budget(self, budget: Budget) -> Lexicon:
        """This lexicon (sharing its compiled matchers) charging one request's
        ``budget`` on every ``apply``."""
        import copy

        bounded = copy.copy(self)
        bounded._budget = budget
        return bounded

    def _word_matches(self, text: str, budget: Budget) -> list[tuple[int, int, int]]:
        """Every whole-word literal match as (start, rule, end), sorted."""
        if self._words is None:
            return []
        budget.charge(len(text))
        found: list[tuple[int, int, int]] = []
        for end, (n, size) in self._words.iter(text):
            budget.charge(1)
            start, stop = end - size + 1, end + 1
            left, right = self._edges[n]
            if left and start > 0 and _word(text[start - 1]):
                continue
            if right and stop < len(text) and _word(text[stop]):
                continue
            found.append((start, n, stop))
        found.sort()
        return found

    def _pattern_at(self, text: str, pos: int, budget: Budget) -> tuple[int, int, int] | None:
        """The first non-empty pattern match at or after ``pos`` as (start, rule, end)."""
        while pos <= len(text):
            budget.charge(len(text) - pos + 1)
            m = self._regex.search(text, pos)
            if m is None:
                return None
            if m.end() > m.start():
                group = next(g for g in self._group_rule if m.start(g) >= 0)
                return m.start(), self._group_rule[group], m.end()
            pos = m.start() + 1
        return None

    def matches(self, text: str, budget: Budget | None = None) -> list[tuple[int, int, int]]:
        """The matches applied to ``text``, in order, as (start, rule, end)."""
        budget = budget or self._budget or Budget()
        words = self._word_matches(text, budget)
        out: list[tuple[int, int, int]] = []
        pos = 0
        w = 0
        pattern = self._pattern_at(text, 0, budget) if self._regex is not None else None
        while True:
            while w < len(words) and words[w][0] < pos:
                w += 1
            if pattern is not None and pattern[0] < pos:
                pattern = self._pattern_at(text, pos, budget)
            best = words[w] if w < len(words) else None
            if pattern is not None and (best is None or pattern[:2] < best[:2]):
                best = pattern
            if best is None:
                return out
            out.append(best)
            pos = best[2]

    def apply(
        self,
        builder: SpokenBuilder,
        text: str,
        at: int,
        language: str | None,
        phonemes: bool = True,
        budget: Budget | None = None,
    ) -> None:
        """Add ``text`` (found at ``at``) to ``builder`` with the rules applied and the
        rest normalized in ``language`` (``None``: as written). Without phoneme input
        (``phonemes`` false: an upstream provider), IPA rules leave the word as written.
        Raises ``RuleBudgetExceeded`` when ``budget`` runs out."""
        pos = 0
        for start, n, end in self.matches(text, budget):
            rule = self.rules[n]
            builder.normalized(text[pos:start], at + pos, language)
            if rule.type == "alias":
                builder.rewrite(rule.alias or "", at + start, at + end)
            elif phonemes:
                builder.phoneme_input(rule.phoneme or "", at + start, at + end, text[start:end])
            else:
                builder.copy(text[start:end], at + start)
            pos = end
        builder.normalized(text[pos:], at + pos, language)
