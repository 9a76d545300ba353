"""Text normalization: "$4.50" is read "four dollars fifty", and timestamps still point at "$4.50".

Engines read digits and symbols badly (neural ones worst: they were trained on words).
Before any engine sees a text, this module rewrites the spans a listener would read
differently from how they are written: numbers, ordinals, decimals, money, percentages,
times, dates, years and decades, phone numbers, units, common abbreviations, URLs and
e-mail addresses, and Roman numerals after names ("Henry VIII"). English is covered in
full; for other languages numbers are read with ``num2words`` in that language.

Every rewrite is recorded as a ``Span`` (where it came from, where it went), so
``Normalized.source_span`` maps any range of the spoken text back to the caller's
characters: the words "four dollars fifty" all point at the five characters "$4.50".

The scanner is one regular expression with bounded quantifiers only (no nested
repetition, no unbounded backtracking), run once over the text with ``finditer``; every
rewrite is O(length of its match). A 200 kB hostile input costs milliseconds, not the
minutes a pathological pattern would (tests/test_normalize.py, benchmarks/text_costs.py).
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import NamedTuple

from num2words import CONVERTER_CLASSES, num2words

# ---------------------------------------------------------------------------- results


class Span(NamedTuple):
    """One rewrite: ``source[src_start:src_end]`` became ``text[out_start:out_end]``.

    The layout of ``Normalized.spans``, which holds plain tuples in this order (a hostile
    input makes one per few characters, and a named tuple costs a Python call each);
    ``Span(*t)`` gives the names back."""

    src_start: int
    src_end: int
    out_start: int
    out_end: int


@dataclass(frozen=True)
class Normalized:
    """The text an engine reads, and the way back to the caller's characters."""

    source: str
    text: str
    spans: tuple[tuple[int, int, int, int], ...] = ()  # Span layout, as plain tuples

    @property
    def changed(self) -> bool:
        return bool(self.spans)

    def source_pos(self, pos: int) -> int:
        """The caller's offset for ``text[pos]`` (inside a rewrite: the rewrite's start)."""
        i = bisect_right(self._out_starts, pos) - 1
        if i < 0:
            return pos
        src_start, src_end, _, out_end = self.spans[i]
        if pos < out_end:
            return src_start
        return src_end + (pos - out_end)

    def source_span(self, start: int, end: int) -> tuple[int, int]:
        """The caller's characters behind ``text[start:end]``; a piece of a rewrite maps to
        the whole of what was rewritten ("dollars" → "$4.50")."""
        s = self.source_pos(start)
        if end <= start:
            return s, s
        last = end - 1
        i = bisect_right(self._out_starts, last) - 1
        inside = i >= 0 and last < self.spans[i][3]  # ends inside a rewrite: all of it
        e = self.spans[i][1] if inside else self.source_pos(last) + 1
        return s, max(e, s)

    @property
    def _out_starts(self) -> list[int]:
        cached = self.__dict__.get("_starts")
        if cached is None:
            cached = [s[2] for s in self.spans]
            object.__setattr__(self, "_starts", cached)
        return cached


# ---------------------------------------------------------------------------- English words

_ONES = ("zero one two three four five six seven eight nine ten eleven twelve thirteen "
         "fourteen fifteen sixteen seventeen eighteen nineteen").split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
_SCALES = ((10**12, "trillion"), (10**9, "billion"), (10**6, "million"), (1000, "thousand"))
_ORDINAL_WORDS = {"one": "first", "two": "second", "three": "third", "five": "fifth",
                  "eight": "eighth", "nine": "ninth", "twelve": "twelfth"}
_DIGIT_WORDS = dict(zip("0123456789", _ONES[:10], strict=True))


def _below_thousand(n: int) -> str:
    words = []
    if n >= 100:
        words.append(f"{_ONES[n // 100]} hundred")
        n %= 100
    if n >= 20:
        words.append(_TENS[n // 10] + (f"-{_ONES[n % 10]}" if n % 10 else ""))
    elif n or not words:
        words.append(_ONES[n])
    return " ".join(words)


def cardinal(n: int) -> str:
    """American English cardinal ("one hundred twenty-three"). Written here rather than
    with num2words because it runs per number in every request: 1-2 µs against
    num2words' ~100 µs, which a 200 kB text full of numbers would feel."""
    if n < 0:
        return "minus " + cardinal(-n)
    if n < 1000:
        return _below_thousand(n)
    if n >= 10**15:
        return digits(str(n))
    words = []
    for value, name in _SCALES:
        if n >= value:
            words.append(f"{_below_thousand(n // value)} {name}")
            n %= value
    if n:
        words.append(_below_thousand(n))
    return " ".join(words)


def ordinal(n: int) -> str:
    words = cardinal(n)
    head, _, last = words.rpartition(" ")
    stem, dash, unit = last.rpartition("-")
    word = unit if dash else last
    if word in _ORDINAL_WORDS:
        word = _ORDINAL_WORDS[word]
    elif word.endswith("y"):
        word = word[:-1] + "ieth"
    else:
        word += "th"
    last = f"{stem}-{word}" if dash else word
    return f"{head} {last}" if head else last


def digits(s: str) -> str:
    return " ".join(_DIGIT_WORDS[c] for c in s if c in _DIGIT_WORDS)


def decimal(s: str) -> str:
    """"3.14" → "three point one four"; "-0.5" → "minus zero point five"."""
    neg = s.startswith("-")
    whole, _, frac = s.lstrip("-+").partition(".")
    words = cardinal(int(whole.replace(",", "") or "0"))
    if frac:
        words += " point " + digits(frac)
    return ("minus " + words) if neg else words


def year(n: int) -> str:
    """"1990" → "nineteen ninety", "2005" → "two thousand five", "1905" → "nineteen oh five"."""
    if n % 1000 == 0 or 2000 <= n <= 2009:
        return cardinal(n)
    hi, lo = divmod(n, 100)
    if lo == 0:
        return f"{cardinal(hi)} hundred"
    return f"{cardinal(hi)} {'oh ' + _ONES[lo] if lo < 10 else cardinal(lo)}"


def _plural_decade(words: str) -> str:
    head, sep, last = words.rpartition(" ")
    last = last[:-1] + "ies" if last.endswith("y") else last + "s"
    return head + sep + last


# ---------------------------------------------------------------------------- tables

_CURRENCIES = {"$": ("dollar", "dollars", "cent", "cents"),
               "€": ("euro", "euros", "cent", "cents"),
               "£": ("pound", "pounds", "penny", "pence"),
               "¥": ("yen", "yen", "", "")}
_MAGNITUDES = {"k": "thousand", "thousand": "thousand", "m": "million", "mn": "million",
               "million": "million", "b": "billion", "bn": "billion", "billion": "billion",
               "trillion": "trillion"}
_UNITS = {
    "km": ("kilometer", "kilometers"), "cm": ("centimeter", "centimeters"),
    "mm": ("millimeter", "millimeters"), "m": ("meter", "meters"),
    "kg": ("kilogram", "kilograms"), "mg": ("milligram", "milligrams"),
    "g": ("gram", "grams"), "lb": ("pound", "pounds"), "lbs": ("pounds", "pounds"),
    "oz": ("ounce", "ounces"), "mi": ("mile", "miles"), "ft": ("foot", "feet"),
    "mph": ("mile per hour", "miles per hour"), "km/h": ("kilometer per hour",
                                                         "kilometers per hour"),
    "kph": ("kilometer per hour", "kilometers per hour"),
    "ml": ("milliliter", "milliliters"), "°c": ("degree Celsius", "degrees Celsius"),
    "°f": ("degree Fahrenheit", "degrees Fahrenheit"), "°": ("degree", "degrees"),
    "kb": ("kilobyte", "kilobytes"), "mb": ("megabyte", "megabytes"),
    "gb": ("gigabyte", "gigabytes"), "tb": ("terabyte", "terabytes"),
    "hz": ("hertz", "hertz"), "khz": ("kilohertz", "kilohertz"),
    "mhz": ("megahertz", "megahertz"), "ghz": ("gigahertz", "gigahertz"),
    "kw": ("kilowatt", "kilowatts"), "kwh": ("kilowatt hour", "kilowatt hours"),
    "ms": ("millisecond", "milliseconds"), "min": ("minute", "minutes"),
    "hr": ("hour", "hours"), "hrs": ("hours", "hours"),
}
_MONTHS = ("January February March April May June July August September October November "
           "December").split()
_MONTH_BY_PREFIX = {m[:3].lower(): m for m in _MONTHS}
_ABBREVIATIONS = {
    "mr.": "Mister", "mrs.": "Missus", "ms.": "Miz", "prof.": "Professor",
    "jr.": "Junior", "sr.": "Senior", "mt.": "Mount", "ave.": "Avenue",
    "vs.": "versus", "etc.": "et cetera", "e.g.": "for example", "i.e.": "that is",
    "approx.": "approximately", "dept.": "department", "est.": "established",
}
# "Dr. Smith" / "Elm Dr." and "St. John" / "Main St.": the next word decides
_TITLE_OR_PLACE = {"dr.": ("Doctor", "Drive"), "st.": ("Saint", "Street")}
_CARDINAL_NUMERAL_AFTER = frozenset(
    "war part chapter volume vol book act scene phase stage level type class title article "
    "section apollo rocky episode season round world".split())
_ROMAN = {"I": 1, "V": 5, "X": 10, "L": 50, "C": 100, "D": 500, "M": 1000}
_SYMBOLS = {"&": "and", "+": "plus", "=": "equals", "@": "at"}

_UNIT_ALT = "|".join(sorted((re.escape(u) for u in _UNITS), key=len, reverse=True))
_MONTH_ALT = "|".join(f"{m[:3]}(?:{m[3:]})?" for m in _MONTHS)
_MAG_ALT = "thousand|million|billion|trillion|bn|mn|[kKmMbB]"

def _lead(before: str, minus: bool = True) -> str:
    """A number's first character, consumed before its look-behind (``before``: what may
    not precede it), so the branch opens with a character class (see _SCANNER)."""
    digit = rf"\d(?<!{before}\d)"
    return rf"(?:-(?<!{before}-)\d|{digit})" if minus else digit


_MONTH_REST = "|".join(f"(?<={m[0]}){m[1:3]}(?:{m[3:]})?" for m in _MONTHS)
# Every branch opens with a literal or a character class, and its look-behind comes after
# that first character ("\d(?<![\w.]\d)" is "(?<![\w.])\d"); the kind is an empty named
# group at the end (``lastgroup``). The regex engine then rejects a branch at a position
# with one character test in C, instead of running look-behinds and word-boundary checks
# for all 16 branches at every position: dense and hostile inputs ("1,1,1,…") cost ~10x
# less. Quantifiers are bounded and never nested, so no input backtracks badly.
_BRANCHES = {
    "url": r"h(?<!\w.)ttps?://[^\s<>\"']{1,2000}|w(?<!\w.)ww\.[^\s<>\"']{1,2000}",
    "email": r"\w(?<!\w\w)[\w.+-]{0,63}@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63}){1,8}\b",
    "phone": r"\+(?<![\w+].)\d{1,3}(?:[ .-]\d{2,5}){2,5}(?![\w])"
             r"|\((?<![\w(].)\d{3}\)\s?\d{3}[.-]\d{4}(?!\w)"
             r"|\d(?<![\w(]\d)\d{2}[.-]\d{3}[.-]\d{4}(?!\w)",
    "money": r"[$€£¥]\s?\d{1,3}(?:,\d{3}){0,6}(?:\.\d{1,2})?(?!\d)(?:\s?(?:" + _MAG_ALT
             + r")\b)?|[$€£¥]\s?\d{1,15}(?:\.\d{1,2})?(?!\d)(?:\s?(?:" + _MAG_ALT + r")\b)?",
    "time": r"\d(?<![\d:]\d)\d?:\d{2}(?::\d{2})?(?![\d:])(?:\s?(?:[aApP]\.?[mM]\.?)(?!\w))?",
    "iso": r"\d(?<![\d-]\d)\d{3}-\d{2}-\d{2}(?![\d-])",
    "slash": r"\d(?<![\d/]\d)\d?/\d{1,2}/(?:\d{4}|\d{2})(?![\d/])",
    "mdate": r"[JFMASOND](?<!\w.)(?:" + _MONTH_REST
             + r")\.? \d{1,2}(?:st|nd|rd|th)?(?:, \d{4})?(?!\d)",
    "decade": r"\d(?<!\w\d)\d\d0s\b|['’]\d0s\b|\d(?<!\w\d)0s\b",
    "percent": _lead(r"[\w.]") + r"\d{0,2}(?:,\d{3}){0,6}(?:\.\d{1,6})?\s?%"
               r"|" + _lead(r"[\w.]") + r"\d{0,14}(?:\.\d{1,6})?\s?%",
    "ordinal": r"\d(?<!\w\d)\d{0,11}(?:st|nd|rd|th)\b",
    "unit": r"\d(?<![\w.]\d)\d{0,11}(?:\.\d{1,6})?\s?(?=[A-Za-z°])(?i:" + _UNIT_ALT
            + r")(?![\w/°])",
    "number": _lead(r"[\w.,]") + r"\d{0,2}(?:,\d{3}){1,6}(?:\.\d{1,6})?(?![\d,]\d)"
              r"|" + _lead(r"[\w.]") + r"\d{0,14}(?:\.\d{1,15})?(?![\d]|\.\d)|\d{16,4096}",
    "abbr": r"[MmPpJjSsAaveDdi](?<!\w.)(?:(?<=[Mm])rs?|(?<=[Mm])s|(?<=[Pp])rof|(?<=[Jj])r"
            r"|(?<=[Ss])r|(?<=[Mm])t|(?<=[Aa])ve|(?<=v)s|(?<=e)tc|(?<=a)pprox|(?<=[Dd])ept"
            r"|(?<=e)st|(?<=[Dd])r|(?<=[Ss])t|(?<=e)\.g|(?<=i)\.e)\.",
    "numberword": r"N(?<!\wN)[oO]\.\s?(?=\d)|#(?<!\w#)\s?(?=\d)",
    "roman": r"[A-Z](?<!\w.)[a-z]{1,20} (?=[IVXLC]{2,8}\b|V\b)(?:C{0,3})(?:XC|XL|L?X{0,3})"
             r"(?:IX|IV|V?I{0,3})\b",
    "symbol": r"[&+=@](?<=\s.)(?=\s)",
}


# The branches that open with a digit, without that digit: at a digit the scanner tests
# it once and then tries these in their order, instead of entering each branch (a third
# of the scan of a number-dense text). Their order among themselves is the order of
# _BRANCHES; e-mail (which may also open with a digit) stays before them.
_AFTER_DIGIT = {
    "phone": r"(?<![\w(]\d)\d{2}[.-]\d{3}[.-]\d{4}(?!\w)",
    "time": _BRANCHES["time"][2:],
    "iso": _BRANCHES["iso"][2:],
    "slash": _BRANCHES["slash"][2:],
    "decade": r"(?<!\w\d)\d\d0s\b|(?<!\w\d)0s\b",
    "percent": r"(?<![\w.]\d)\d{0,2}(?:,\d{3}){0,6}(?:\.\d{1,6})?\s?%"
               r"|(?<![\w.]\d)\d{0,14}(?:\.\d{1,6})?\s?%",
    "ordinal": _BRANCHES["ordinal"][2:],
    "unit": _BRANCHES["unit"][2:],
    "number": r"(?<![\w.,]\d)\d{0,2}(?:,\d{3}){1,6}(?:\.\d{1,6})?(?![\d,]\d)"
              r"|(?<![\w.]\d)\d{0,14}(?:\.\d{1,15})?(?![\d]|\.\d)|\d{15,4095}",
}
# the same kinds' branches that open with something else ("+1 …", "'90s", "-5%")
_NOT_DIGIT = {
    "phone": r"\+(?<![\w+].)\d{1,3}(?:[ .-]\d{2,5}){2,5}(?![\w])"
             r"|\((?<![\w(].)\d{3}\)\s?\d{3}[.-]\d{4}(?!\w)",
    "decade": r"['’]\d0s\b",
    "percent": r"-(?<![\w.]-)\d{1,3}(?:,\d{3}){0,6}(?:\.\d{1,6})?\s?%"
               r"|-(?<![\w.]-)\d{1,15}(?:\.\d{1,6})?\s?%",
    "number": r"-(?<![\w.,]-)\d{1,3}(?:,\d{3}){1,6}(?:\.\d{1,6})?(?![\d,]\d)"
              r"|-(?<![\w.]-)\d{1,15}(?:\.\d{1,15})?(?![\d]|\.\d)",
}
_DIGIT_MARK = "_d"  # marker suffix of the digit group's kinds ("number_d" → "number")


def _scanner(kinds: list[str]) -> re.Pattern[str]:
    first = [k for k in ("url", "email") if k in kinds]
    digit = "|".join(f"(?:{_AFTER_DIGIT[k]})(?P<{k}{_DIGIT_MARK}>)"
                     for k in kinds if k in _AFTER_DIGIT)
    rest = [(k, _NOT_DIGIT[k] if k in _AFTER_DIGIT else _BRANCHES[k])
            for k in kinds if k not in first and (k not in _AFTER_DIGIT or k in _NOT_DIGIT)]
    parts = [f"(?:{_BRANCHES[k]})(?P<{k}>)" for k in first] + [rf"\d(?:{digit})"] + \
        [f"(?:{body})(?P<{k}>)" for k, body in rest]
    return re.compile("|".join(parts))


_SCANNER = _scanner(list(_BRANCHES))
# without the branches whose own scan is long (an e-mail reads up to 64 characters at each
# word start): used when the text has no "@" or "://"/"www" at all (a C-level check)
_SCANNER_NO_EMAIL = _scanner([k for k in _BRANCHES if k != "email"])
_SCANNER_PLAIN = _scanner([k for k in _BRANCHES if k not in ("email", "url")])

# Where a rewrite can start: characters no plain word contains, and upper-case runs that
# may be Roman numerals. A pattern that opens with a character class lets the regex
# engine skip ordinary prose in C, so the full scanner only runs in small windows
# around these anchors instead of at every position of the text.
_ANCHOR = re.compile(r"[\d$€£¥#&+=@%°]|[IVXLC]{2,8}\b|V\b|\.|www|://")
_ABBREVIATION_WORDS = frozenset(
    "mr mrs ms prof jr sr mt ave vs etc approx dept est dr st e.g i.e no".split())
_WINDOW_TOKENS = 3  # tokens each side of an anchor: "March 5, 2024", "Henry VIII", "3:30 pm"
_REACH = 2100  # the longest token a rewrite reads (a URL of 2,000 characters)


def _windows(text: str) -> list[tuple[int, int]]:
    """Merged ranges of ``text`` around every anchor, whole tokens each side.

    Each look for a token boundary is bounded (``_REACH`` characters) and never rescans a
    stretch already known to hold no space, so a text with no spaces at all still costs
    O(length), never O(length²).
    """
    out: list[tuple[int, int]] = []
    n = len(text)
    spaceless_until = 0  # text[a:spaceless_until] was scanned and holds no space
    for m in _ANCHOR.finditer(text):
        p = m.start()
        inside = bool(out) and p < out[-1][1]
        if m.group() == ".":  # a full stop matters only after an abbreviation
            w = text.rfind(" ", max(0, p - 16), p) + 1
            if text[max(w, p - 16):p].lower().lstrip("(\"'") not in _ABBREVIATION_WORDS:
                continue
        start = out[-1][0] if inside else p
        for _ in range(0 if inside else _WINDOW_TOKENS):
            if start <= 0:
                break
            floor = max(0, start - _REACH)
            start = max(text.rfind(" ", floor, max(start - 1, floor)) + 1, floor)
        end = m.end()
        for _ in range(_WINDOW_TOKENS):
            if end >= n:
                break
            ceiling = min(n, end + 1 + _REACH)
            nxt = text.find(" ", max(end + 1, spaceless_until), ceiling)
            if nxt < 0:
                spaceless_until = end = ceiling
            else:
                end = nxt
        if out and start <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return out


# ---------------------------------------------------------------------------- rewriters

Piece = tuple[int, int, str]  # start, end (relative to the match), replacement


def _money(m: re.Match[str], text: str) -> list[Piece]:
    raw = m.group()
    sym = raw[0]
    one, many, sub_one, sub_many = _CURRENCIES[sym]
    rest = raw[1:].strip()
    mag_match = re.search(r"(" + _MAG_ALT + r")$", rest)
    magnitude = None
    if mag_match:
        magnitude = _MAGNITUDES[mag_match.group(1).lower()]
        rest = rest[: mag_match.start()].strip()
    amount = rest.replace(",", "")
    whole, _, cents = amount.partition(".")
    if magnitude:
        return [(0, len(raw), f"{decimal(amount)} {magnitude} {many}")]
    n = int(whole or "0")
    c = int((cents + "0")[:2]) if cents else 0
    words = []
    if n or not c:
        words.append(f"{cardinal(n)} {one if n == 1 else many}")
    if c:
        if sub_one:
            words.append(f"{cardinal(c)} {sub_one if c == 1 else sub_many}" if not n
                         else cardinal(c))
        else:
            words.append(cardinal(c))
    return [(0, len(raw), " ".join(words))]


def _time(m: re.Match[str], text: str) -> list[Piece]:
    raw = m.group()
    clock, ampm = raw, ""
    tail = re.search(r"([aApP])\.?[mM]\.?$", raw)
    if tail:
        ampm = f" {tail.group(1).upper()} M"
        clock = raw[: tail.start()].strip()
    parts = clock.split(":")
    h, mi = int(parts[0]), int(parts[1])
    if h > 24 or mi > 59:
        return [(0, len(raw), " ".join(digits(p) for p in parts))]
    if mi == 0:
        words = f"{cardinal(h)} o'clock" if not ampm else cardinal(h)
    elif mi < 10:
        words = f"{cardinal(h)} oh {_ONES[mi]}"
    else:
        words = f"{cardinal(h)} {cardinal(mi)}"
    if len(parts) == 3 and int(parts[2]):
        words += f" and {cardinal(int(parts[2]))} seconds"
    if raw.endswith(".") and _ends_sentence(text, m.end()):
        ampm += "."  # "3:30 p.m." closing a sentence keeps its full stop
    return [(0, len(raw), words + ampm)]


def _ends_sentence(text: str, end: int) -> bool:
    """True when nothing, a line break, or a capitalized word follows ``end``."""
    after = text[end:end + 2]
    return not after.strip() or after[0] == "\n" or (after[0] == " " and after[1:].isupper())


def _date_words(y: int | None, mo: int, d: int) -> str | None:
    if not (1 <= mo <= 12 and 1 <= d <= 31):
        return None
    words = f"{_MONTHS[mo - 1]} {ordinal(d)}"
    return f"{words}, {year(y)}" if y is not None else words


def _iso(m: re.Match[str], text: str) -> list[Piece]:
    y, mo, d = (int(x) for x in m.group().split("-"))
    words = _date_words(y, mo, d)
    return [(0, len(m.group()), words)] if words else []


def _slash(m: re.Match[str], text: str) -> list[Piece]:
    mo, d, y = m.group().split("/")
    yy = int(y) + (2000 if len(y) == 2 and int(y) < 50 else 1900 if len(y) == 2 else 0)
    words = _date_words(yy, int(mo), int(d))
    return [(0, len(m.group()), words)] if words else []


def _mdate(m: re.Match[str], text: str) -> list[Piece]:
    raw = m.group()
    month = _MONTH_BY_PREFIX[raw[:3].lower()]
    rest = re.match(r"[A-Za-z]*\.? (\d{1,2})(?:st|nd|rd|th)?(?:, (\d{4}))?", raw)
    assert rest is not None  # the scanner matched this shape
    d = int(rest.group(1))
    if not 1 <= d <= 31:
        return []
    words = f"{month} {ordinal(d)}"
    if rest.group(2):
        words += f", {year(int(rest.group(2)))}"
    return [(0, len(raw), words)]


def _decade(m: re.Match[str], text: str) -> list[Piece]:
    raw = m.group()
    body = raw.lstrip("'’")[:-1]
    words = year(int(body)) if len(body) == 4 else cardinal(int(body))
    return [(0, len(raw), _plural_decade(words))]


def _percent(m: re.Match[str], text: str) -> list[Piece]:
    raw = m.group()
    return [(0, len(raw), f"{decimal(raw.rstrip('%').strip().replace(',', ''))} percent")]


def _ordinal(m: re.Match[str], text: str) -> list[Piece]:
    raw = m.group()
    return [(0, len(raw), ordinal(int(raw[:-2])))]


def _unit(m: re.Match[str], text: str) -> list[Piece]:
    raw = m.group()
    um = re.search(r"(" + _UNIT_ALT + r")$", raw, re.IGNORECASE)
    assert um is not None
    value = raw[: um.start()].strip()
    one, many = _UNITS[um.group(1).lower()]
    return [(0, len(raw), f"{decimal(value)} {one if value == '1' else many}")]


def _number(m: re.Match[str], text: str) -> list[Piece]:
    raw = m.group()
    plain = raw.replace(",", "")
    if "." not in plain and "," not in raw and len(plain) == 4 and 1100 <= int(plain) <= 2099:
        return [(0, len(raw), year(int(plain)))]
    if len(plain.lstrip("-")) > 15:
        return [(0, len(raw), digits(plain))]
    return [(0, len(raw), decimal(plain))]


def _abbr(m: re.Match[str], text: str) -> list[Piece]:
    raw = m.group()
    key = raw.lower()
    if key in _TITLE_OR_PLACE:
        title, place = _TITLE_OR_PLACE[key]
        after = text[m.end():m.end() + 2]
        word = title if (len(after) == 2 and after[0] == " " and after[1].isupper()) else place
    else:
        word = _ABBREVIATIONS[key]
    if raw[0].isupper() and word[0].islower():
        word = word[0].upper() + word[1:]
    # an abbreviation that ends the text or a sentence keeps its period as the full stop
    if key in ("etc.", "approx.") and _ends_sentence(text, m.end()):
        word += "."
    return [(0, len(raw), word)]


def _numberword(m: re.Match[str], text: str) -> list[Piece]:
    raw = m.group()
    word = "Number" if raw[0] == "N" else "number"
    return [(0, len(raw), word + (" " if raw[-1].isspace() or raw == "#" else ""))]


def _roman(m: re.Match[str], text: str) -> list[Piece]:
    raw = m.group()
    name, _, numeral = raw.partition(" ")
    value = _roman_value(numeral)
    if value is None or value == 0:
        return []
    start = len(name) + 1
    if name.lower() in _CARDINAL_NUMERAL_AFTER:
        return [(start, len(raw), cardinal(value))]
    return [(start, len(raw), f"the {ordinal(value)}")]


def _roman_value(numeral: str) -> int | None:
    total, prev = 0, 0
    for ch in reversed(numeral):
        v = _ROMAN.get(ch)
        if v is None:
            return None
        total = total - v if v < prev else total + v
        prev = max(prev, v)
    return total


def _url(m: re.Match[str], text: str) -> list[Piece]:
    raw = m.group().rstrip(".,;:!?)")
    body = re.sub(r"^https?://", "", raw)
    out = []
    for part in re.split(r"([./:?=&_-])", body):
        if part in (".",):
            out.append("dot")
        elif part == "/":
            out.append("slash")
        elif part in (":", "?", "=", "&", "_", "-"):
            out.append({":": "colon", "?": "question mark", "=": "equals", "&": "and",
                        "_": "underscore", "-": "dash"}[part])
        elif part:
            out.append(digits(part) if part.isdigit() else part)
    return [(0, len(raw), " ".join(out))]


def _email(m: re.Match[str], text: str) -> list[Piece]:
    raw = m.group()
    local, _, domain = raw.partition("@")
    say = lambda s: " ".join(  # noqa: E731
        {"." : "dot", "_": "underscore", "-": "dash", "+": "plus"}.get(p, p)
        for p in re.split(r"([._+-])", s) if p)
    return [(0, len(raw), f"{say(local)} at {say(domain)}")]


def _phone(m: re.Match[str], text: str) -> list[Piece]:
    raw = m.group()
    groups = re.findall(r"\d+", raw)
    words = ", ".join(digits(g) for g in groups)
    return [(0, len(raw), ("plus " if raw.startswith("+") else "") + words)]


def _symbol(m: re.Match[str], text: str) -> list[Piece]:
    return [(0, 1, _SYMBOLS[m.group()])]


_ENGLISH: dict[str, Callable[[re.Match[str], str], list[Piece]]] = {
    "url": _url, "email": _email, "phone": _phone, "money": _money, "time": _time,
    "iso": _iso, "slash": _slash, "mdate": _mdate, "decade": _decade, "percent": _percent,
    "ordinal": _ordinal, "unit": _unit, "number": _number, "numberword": _numberword,
    "roman": _roman, "symbol": _symbol,
}

# ---------------------------------------------------------------------------- other languages

_NUMBER_ONLY = re.compile(r"(?<![\w.,])-?\d{1,15}(?:[.,]\d{1,6})?(?![\d\w])")


@lru_cache(maxsize=8192)
def _foreign_number(raw: str, lang: str) -> str:
    value: int | float
    value = float(raw.replace(",", ".")) if "," in raw or "." in raw else int(raw)
    return num2words(value, lang=lang)


def num2words_language(language: str) -> str | None:
    """The num2words converter for a voice's language ("pt-br" → "pt_BR", "fr-fr" → "fr")."""
    lang = language.lower().replace("_", "-")
    base, _, region = lang.partition("-")
    for cand in (f"{base}_{region.upper()}" if region else "", base):
        if cand and cand in CONVERTER_CLASSES:
            return cand
    return None


# ---------------------------------------------------------------------------- entry point

_REWRITES: dict[str, str | list[Piece]] = {}  # "kind\0match" → replacement or pieces
_REWRITES_MAX = 8192
_CONTEXTUAL = frozenset({"time", "abbr", "roman", "symbol", "numberword"})  # read past the match
_DENSE = 64  # one anchor per this many characters or more: scan everything, skip windows
# (measured: a window costs ~60x the scan of one character, the whole-text scan ~0.3 µs a
# character now that every branch opens with a character class)


def _scan_ranges(text: str) -> list[tuple[int, int]]:
    """Where the scanner runs: windows around anchors in prose; all of the text when
    anchors are dense (counting them is one C-level ``findall``, while building windows
    costs Python work per anchor, which dense and hostile inputs would multiply)."""
    if len(_ANCHOR.findall(text)) * _DENSE > len(text):
        return [(0, len(text))]
    return _windows(text)



def normalize_text(text: str, language: str = "en") -> Normalized:
    """Rewrite what a listener would read differently from how it is written.

    ``language`` is the voice's language code; English gets the full set, other
    languages their numbers (when num2words knows the language), the rest nothing.
    """
    lang = language.lower()
    english = lang == "en" or lang.startswith(("en-", "en_"))
    if english:
        scanner = _SCANNER if "@" in text else _SCANNER_NO_EMAIL \
            if ("://" in text or "www." in text) else _SCANNER_PLAIN
        ranges = _scan_ranges(text)
        matches = scanner.finditer(text) if ranges == [(0, len(text))] else \
            (m for s, e in ranges for m in scanner.finditer(text, s, e))
    else:
        converter = num2words_language(lang)
        if converter is None:
            return Normalized(text, text)
        matches = _NUMBER_ONLY.finditer(text)
    out: list[str] = []
    spans: list[tuple[int, int, int, int]] = []  # plain tuples: 100k of them on a hostile
    # input, and a named tuple costs a Python call each
    put, mark = out.append, spans.append
    pos = length = 0
    cache = _REWRITES
    if len(cache) > _REWRITES_MAX:
        cache.clear()
    # one pass: each match is looked up (a rewrite that reads only its own match is
    # cached, since dense and hostile inputs repeat the same few tokens, "+1 +1 +1 …")
    # and written straight into the output with its span
    for m in matches:
        group = m.lastgroup or "foreign"
        raw = m.group()
        key = group + "\0" + raw
        got = cache.get(key)
        if got is None:
            kind = group.removesuffix(_DIGIT_MARK)
            if english:
                pieces = (_ENGLISH.get(kind) or _abbr)(m, text)
            else:
                pieces = [(0, len(raw), _foreign_number(raw, converter))]
            # the usual case, the whole match rewritten, is kept as the bare replacement
            whole = len(pieces) == 1 and pieces[0][:2] == (0, len(raw))
            got = pieces[0][2] if whole else pieces
            if kind not in _CONTEXTUAL:
                cache[key] = got
        at = m.start()
        if type(got) is str:
            put(text[pos:at])
            length += at - pos
            pos = m.end()
            mark((at, pos, length, length + len(got)))
            put(got)
            length += len(got)
            continue
        for s_, e_, r in got:
            s_ += at
            put(text[pos:s_])
            length += s_ - pos
            mark((s_, at + e_, length, length + len(r)))
            put(r)
            length += len(r)
            pos = at + e_
    if not spans:
        return Normalized(text, text)
    put(text[pos:])
    return Normalized(text, "".join(out), tuple(spans))
