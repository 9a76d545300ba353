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
from collections.abc import Callable, Iterator
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

_ONES = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen "
    "fourteen fifteen sixteen seventeen eighteen nineteen"
).split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
_SCALES = ((10**12, "trillion"), (10**9, "billion"), (10**6, "million"), (1000, "thousand"))
_ORDINAL_WORDS = {
    "one": "first",
    "two": "second",
    "three": "third",
    "five": "fifth",
    "eight": "eighth",
    "nine": "ninth",
    "twelve": "twelfth",
}
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
    """ "3.14" → "three point one four"; "-0.5" → "minus zero point five"."""
    neg = s.startswith("-")
    whole, _, frac = s.lstrip("-+").partition(".")
    words = cardinal(int(whole.replace(",", "") or "0"))
    if frac:
        words += " point " + digits(frac)
    return ("minus " + words) if neg else words


def year(n: int) -> str:
    """ "1990" → "nineteen ninety", "2005" → "two thousand five", "1905" → "nineteen oh five"."""
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

_CURRENCIES = {
    "$": ("dollar", "dollars", "cent", "cents"),
    "€": ("euro", "euros", "cent", "cents"),
    "£": ("pound", "pounds", "penny", "pence"),
    "¥": ("yen", "yen", "", ""),
}
_MAGNITUDES = {
    "k": "thousand",
    "thousand": "thousand",
    "m": "million",
    "mn": "million",
    "million": "million",
    "b": "billion",
    "bn": "billion",
    "billion": "billion",
    "trillion": "trillion",
}
_UNITS = {
    "km": ("kilometer", "kilometers"),
    "cm": ("centimeter", "centimeters"),
    "mm": ("millimeter", "millimeters"),
    "m": ("meter", "meters"),
    "kg": ("kilogram", "kilograms"),
    "mg": ("milligram", "milligrams"),
    "g": ("gram", "grams"),
    "lb": ("pound", "pounds"),
    "lbs": ("pounds", "pounds"),
    "oz": ("ounce", "ounces"),
    "mi": ("mile", "miles"),
    "ft": ("foot", "feet"),
    "mph": ("mile per hour", "miles per hour"),
    "km/h": ("kilometer per hour", "kilometers per hour"),
    "kph": ("kilometer per hour", "kilometers per hour"),
    "ml": ("milliliter", "milliliters"),
    "°c": ("degree Celsius", "degrees Celsius"),
    "°f": ("degree Fahrenheit", "degrees Fahrenheit"),
    "°": ("degree", "degrees"),
    "kb": ("kilobyte", "kilobytes"),
    "mb": ("megabyte", "megabytes"),
    "gb": ("gigabyte", "gigabytes"),
    "tb": ("terabyte", "terabytes"),
    "hz": ("hertz", "hertz"),
    "khz": ("kilohertz", "kilohertz"),
    "mhz": ("megahertz", "megahertz"),
    "ghz": ("gigahertz", "gigahertz"),
    "kw": ("kilowatt", "kilowatts"),
    "kwh": ("kilowatt hour", "kilowatt hours"),
    "ms": ("millisecond", "milliseconds"),
    "min": ("minute", "minutes"),
    "hr": ("hour", "hours"),
    "hrs": ("hours", "hours"),
}
_MONTHS = (
    "January February March April May June July August September October November December"
).split()
_MONTH_BY_PREFIX = {m[:3].lower(): m for m in _MONTHS}
# Abbreviations read as words: (written, read, case). "any" matches the written form in
# any case of its first letter ("Mr." and "mr."); "exact" only as written ("Sun." is
# Sunday, "sun." ends a sentence about the sun). The scanner's branch and its anchors
# are built from this table, so a row here is all a new abbreviation needs.
ABBREVIATIONS: tuple[tuple[str, str, str], ...] = (
    ("mr.", "Mister", "any"),
    ("mrs.", "Missus", "any"),
    ("ms.", "Miz", "any"),
    ("prof.", "Professor", "any"),
    ("jr.", "Junior", "any"),
    ("sr.", "Senior", "any"),
    ("mt.", "Mount", "any"),
    ("ave.", "Avenue", "any"),
    ("vs.", "versus", "exact"),
    ("etc.", "et cetera", "exact"),
    ("e.g.", "for example", "exact"),
    ("i.e.", "that is", "exact"),
    ("approx.", "approximately", "any"),
    ("dept.", "department", "any"),
    ("est.", "established", "exact"),
    ("ext.", "extension", "any"),
    ("fig.", "figure", "any"),
    ("no.", "", "special"),
    ("dr.", "", "title"),
    ("st.", "", "title"),
    # weekdays and months, capitalized as written in dates
    ("Mon.", "Monday", "exact"),
    ("Tue.", "Tuesday", "exact"),
    ("Tues.", "Tuesday", "exact"),
    ("Wed.", "Wednesday", "exact"),
    ("Thu.", "Thursday", "exact"),
    ("Thur.", "Thursday", "exact"),
    ("Thurs.", "Thursday", "exact"),
    ("Fri.", "Friday", "exact"),
    ("Sat.", "Saturday", "exact"),
    ("Sun.", "Sunday", "exact"),
    ("Jan.", "January", "exact"),
    ("Feb.", "February", "exact"),
    ("Mar.", "March", "exact"),
    ("Apr.", "April", "exact"),
    ("Jun.", "June", "exact"),
    ("Jul.", "July", "exact"),
    ("Aug.", "August", "exact"),
    ("Sep.", "September", "exact"),
    ("Sept.", "September", "exact"),
    ("Oct.", "October", "exact"),
    ("Nov.", "November", "exact"),
    ("Dec.", "December", "exact"),
)
_ABBREVIATIONS = {k.lower(): word for k, word, case in ABBREVIATIONS if word}
# "Dr. Smith" / "Elm Dr." and "St. John" / "Main St.": the next word decides
_TITLE_OR_PLACE = {"dr.": ("Doctor", "Drive"), "st.": ("Saint", "Street")}
_TITLES = frozenset({"mr.", "mrs.", "ms.", "prof.", "dr.", "st.", "mt.", "jr.", "sr."})

# Acronyms and initialisms as people say them: spelled letter by letter, read as a word
# (written in title case so no engine spells it), or expanded. A word of capitals that is
# not here is left to the engine.
ACRONYMS: dict[str, str] = {
    "YoY": "year over year",
    "MoM": "month over month",
    "QoQ": "quarter over quarter",
    "WoW": "week over week",
    "YTD": "year to date",
    "MTD": "month to date",
    "NASA": "Nasa",
    "NATO": "Nato",
    "UNESCO": "Unesco",
    "UNICEF": "Unicef",
    "FIFA": "Fifa",
    "OPEC": "Opec",
    "JSON": "Jason",
    "SQL": "S Q L",
    "API": "A P I",
    "URL": "U R L",
    "CPU": "C P U",
    "GPU": "G P U",
    "USB": "U S B",
    "HTML": "H T M L",
    "CSS": "C S S",
    "PDF": "P D F",
    "HTTP": "H T T P",
    "HTTPS": "H T T P S",
    "AWS": "A W S",
    "IBM": "I B M",
    "BBC": "B B C",
    "FBI": "F B I",
    "CIA": "C I A",
    "USA": "U S A",
    "UK": "U K",
    "EU": "E U",
    "AI": "A I",
    "CEO": "C E O",
    "CFO": "C F O",
    "CTO": "C T O",
    "FAQ": "F A Q",
    "FYI": "F Y I",
    "ASAP": "A S A P",
    "ETA": "E T A",
    "TBD": "T B D",
    "DIY": "D I Y",
    "PhD": "P H D",
    "KPI": "K P I",
    "ROI": "R O I",
    "SaaS": "sass",
    "iOS": "eye O S",
    "TV": "T V",
    "PC": "P C",
    "DNA": "D N A",
    "VAT": "V A T",
}
# prefixes read letter by letter before a number: FY2024, Q3, H1
_PERIODS = {"FY": "F Y", "Q": "Q", "H": "H"}
# pre-release tags of versions (2.0.1-beta, v3.0-rc.1)
_PRERELEASE = {
    "rc": "R C",
    "beta": "beta",
    "alpha": "alpha",
    "dev": "dev",
    "pre": "pre",
    "preview": "preview",
    "final": "final",
    "lts": "L T S",
    "snapshot": "snapshot",
}
_SIGNS = {
    "−": "minus",
    "-": "minus",
    "+": "plus",
    "±": "plus or minus",
    "∓": "minus or plus",
    "≈": "approximately",
    "~": "about",
    "∼": "about",
}
_VULGAR = {
    "½": (1, 2),
    "⅓": (1, 3),
    "⅔": (2, 3),
    "¼": (1, 4),
    "¾": (3, 4),
    "⅕": (1, 5),
    "⅖": (2, 5),
    "⅗": (3, 5),
    "⅘": (4, 5),
    "⅙": (1, 6),
    "⅚": (5, 6),
    "⅛": (1, 8),
    "⅜": (3, 8),
    "⅝": (5, 8),
    "⅞": (7, 8),
}
# English regions that write dates day first (03/04/2025 is the 3rd of April there)
DAY_FIRST_REGIONS = frozenset(
    {
        "gb",
        "uk",
        "au",
        "ie",
        "in",
        "nz",
        "za",
        "sg",
        "my",
        "ng",
        "ke",
        "pk",
        "jm",
        "hk",
        "mt",
        "gh",
        "150",
    }
)


def _case_alt(keys: list[tuple[str, str]]) -> str:
    """A branch for written forms (key, case) that opens with one character class: the
    first letter, then a look-behind that it is no letter inside a word, then each rest
    behind a look-behind of its own first letter (what the scanner needs, see _BRANCHES)."""
    firsts: set[str] = set()
    rests = []
    for key, case in sorted(keys, key=lambda kc: -len(kc[0])):
        first = key[0]
        options = {first.upper(), first.lower()} if case != "exact" else {first}
        firsts |= options
        cls = "".join(sorted(options))
        rests.append(f"(?<=[{re.escape(cls)}]){re.escape(key[1:])}")
    return f"[{re.escape(''.join(sorted(firsts)))}](?<!\\w.)(?:{'|'.join(rests)})"


_ABBR_ALT = _case_alt([(k, case) for k, _, case in ABBREVIATIONS if case != "special"])
_ACRONYM_ALT = _case_alt([(k, "exact") for k in ACRONYMS]) + r"(?![\w])"
_CARDINAL_NUMERAL_AFTER = frozenset(
    "war part chapter volume vol book act scene phase stage level type class title article "
    "section apollo rocky episode season round world".split()
)
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


_MONTH_REST = "(?<=S)ept|" + "|".join(f"(?<={m[0]}){m[1:3]}(?:{m[3:]})?" for m in _MONTHS)
# Every branch opens with a literal or a character class, and its look-behind comes after
# that first character ("\d(?<![\w.]\d)" is "(?<![\w.])\d"); the kind is an empty named
# group at the end (``lastgroup``). The regex engine then rejects a branch at a position
# with one character test in C, instead of running look-behinds and word-boundary checks
# for all 16 branches at every position: dense and hostile inputs ("1,1,1,…") cost ~10x
# less. Quantifiers are bounded and never nested, so no input backtracks badly.
_AMPM = r"\s?[aApP]\.?[mM]\.?(?!\w)"
_END = r"(?::\d{2})?(?:" + _AMPM + r")?"  # a range's end: 5, 5pm, 17:00
_UNIT_OPT = r"(?:\s?(?=[A-Za-z°])(?i:" + _UNIT_ALT + r")(?![\w/°]))?"
_EXT = r"(?:,?\s?(?:(?i:ext)\.?|x)\s?\d{1,6}(?!\w))?"
_VULGAR_CLASS = "[" + "".join(_VULGAR) + "]"
_PRE = r"(?:-[A-Za-z][A-Za-z0-9.]{0,15}(?<!\.))"
_BRANCHES = {
    "url": r"h(?<!\w.)ttps?://[^\s<>\"']{1,2000}|w(?<!\w.)ww\.[^\s<>\"']{1,2000}",
    "email": r"\w(?<!\w\w)[\w.+-]{0,63}@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63}){1,8}\b",
    "phone": r"\+(?<![\w+].)\d{1,3}(?:[ .-]\d{2,5}){2,5}(?![\w])"
    + _EXT
    + r"|\((?<![\w(].)\d{3}\)\s?\d{3}[.-]\d{4}(?!\w)"
    + _EXT
    + r"|\d(?<![\w(]\d)\d{2}[.-]\d{3}[.-]\d{4}(?!\w)"
    + _EXT,
    "money": r"[$€£¥]\s?\d{1,3}(?:,\d{3}){0,6}(?:\.\d{1,2})?(?!\d)(?:\s?(?:"
    + _MAG_ALT
    + r")\b)?|[$€£¥]\s?\d{1,15}(?:\.\d{1,2})?(?!\d)(?:\s?(?:"
    + _MAG_ALT
    + r")\b)?",
    "iso": r"\d(?<![\d-]\d)\d{3}-\d{2}-\d{2}(?![\d-])",
    "version": r"[vV](?<!\w.)\d{1,4}(?:\.\d{1,4}){1,3}" + _PRE + r"?(?![\w]|\.\d)",
    "sign": r"[−±≈∓∼](?=\s?\d)|[+~](?<![\w+~].)(?=\d)"
    r"|-(?<![\w.-]-)(?=\d{1,12}(?:\.\d{1,6})?\s?(?:°|(?i:" + _UNIT_ALT + r")(?![\w/°])))",
    "range": r"\d(?<![\w.]\d)\d{0,3}" + _END + r"\s?[–—]\s?\d{1,4}" + _END + r"(?:\s?%)?(?![\d])",
    "time": r"\d(?<![\d:]\d)\d?:\d{2}(?::\d{2})?(?![\d:])(?:\s?(?:[aApP]\.?[mM]\.?)(?!\w))?",
    "clock": r"\d(?<![\w.:]\d)\d?" + _AMPM,
    "slash": r"\d(?<![\d/]\d)\d?/\d{1,2}/(?:\d{4}|\d{2})(?![\d/])",
    "fraction": r"\d(?<![\w.,/]\d)\d?/\d{1,3}(?![\d/])"
    + _UNIT_OPT
    + "|"
    + _VULGAR_CLASS
    + _UNIT_OPT,
    "mdate": r"[JFMASOND](?<!\w.)(?:"
    + _MONTH_REST
    + r")\.? \d{1,2}(?:st|nd|rd|th)?(?:, \d{4})?(?!\d)",
    "decade": r"\d(?<!\w\d)\d\d0s\b|['’]\d0s\b|\d(?<!\w\d)0s\b",
    "percent": _lead(r"[\w.]") + r"\d{0,2}(?:,\d{3}){0,6}(?:\.\d{1,6})?\s?%"
    r"|" + _lead(r"[\w.]") + r"\d{0,14}(?:\.\d{1,6})?\s?%",
    "ordinal": r"\d(?<!\w\d)\d{0,11}(?:st|nd|rd|th)\b",
    "unit": r"\d(?<![\w.]\d)\d{0,11}(?:\.\d{1,6})?\s?(?=[A-Za-z°])(?i:"
    + _UNIT_ALT
    + r")(?![\w/°])",
    "alnum": r"\d(?<![\w.]\d)\d{0,3}[A-Z](?![\w])",
    "number": _lead(r"[\w.,]") + r"\d{0,2}(?:,\d{3}){1,6}(?:\.\d{1,6})?(?![\d,]\d)"
    r"|" + _lead(r"[\w.]") + r"\d{0,14}(?:\.\d{1,15})?(?![\d]|\.\d)|\d{16,4096}",
    "postcode": r"[A-Z](?<!\w.)[A-Z]?\d[A-Z\d]? \d[A-Z]{2}(?!\w)",
    "period": r"F(?<!\w.)Y(?:\d{4}|\d{2})(?!\w)|[QH](?<!\w.)\d(?!\w)",
    "acronym": _ACRONYM_ALT,
    "abbr": _ABBR_ALT + r"(?!\w)",
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
    "phone": r"(?<![\w(]\d)\d{2}[.-]\d{3}[.-]\d{4}(?!\w)"
    + _EXT
    + r"|(?<![\w(.-]\d)-\d{3}-\d{3}-\d{4}(?!\w)"
    + _EXT
    + r"|(?<![\w(.-]\d)\d{2}-\d{4}(?![\w-])"
    + _EXT,
    "iso": _BRANCHES["iso"][2:],
    "version": r"(?<![\w.]\d)\d{0,3}\.\d{1,4}\.\d{1,4}(?:\.\d{1,4})?" + _PRE + r"?(?![\w]|\.\d)"
    r"|(?<![\w.]\d)\d{0,3}\.\d{1,4}" + _PRE + r"(?![\w]|\.\d)",
    "range": _BRANCHES["range"][2:]
    + r"|(?<![\w.-]\d)\d{0,3}"
    + _END
    + r"-\d{1,4}"
    + _END
    + r"(?:\s?%)?(?![\d.,-])",
    "time": _BRANCHES["time"][2:],
    "clock": _BRANCHES["clock"][2:],
    "slash": _BRANCHES["slash"][2:],
    "fraction": r"(?<![\w.,/]\d)\d{0,5}"
    + _VULGAR_CLASS
    + _UNIT_OPT
    + r"|(?<![\w.,/]\d)\d? \d{1,2}/\d{1,3}(?![\d/])"
    + _UNIT_OPT
    + r"|(?<![\w.,/]\d)\d?/\d{1,3}(?![\d/])"
    + _UNIT_OPT,
    "decade": r"(?<!\w\d)\d\d0s\b|(?<!\w\d)0s\b",
    "percent": r"(?<![\w.]\d)\d{0,2}(?:,\d{3}){0,6}(?:\.\d{1,6})?\s?%"
    r"|(?<![\w.]\d)\d{0,14}(?:\.\d{1,6})?\s?%",
    "ordinal": _BRANCHES["ordinal"][2:],
    "unit": _BRANCHES["unit"][2:],
    "alnum": _BRANCHES["alnum"][2:],
    "number": r"(?<![\w.,]\d)\d{0,2}(?:,\d{3}){1,6}(?:\.\d{1,6})?(?![\d,]\d)"
    r"|(?<![\w.]\d)\d{0,14}(?:\.\d{1,15})?(?![\d]|\.\d)|\d{15,4095}",
}
# the same kinds' branches that open with something else ("+1 …", "'90s", "-5%", "½")
_NOT_DIGIT = {
    "phone": r"\+(?<![\w+].)\d{1,3}(?:[ .-]\d{2,5}){2,5}(?![\w])"
    + _EXT
    + r"|\((?<![\w(].)\d{3}\)\s?\d{3}[.-]\d{4}(?!\w)"
    + _EXT,
    "version": _BRANCHES["version"],
    "fraction": _VULGAR_CLASS + _UNIT_OPT,
    "decade": r"['’]\d0s\b",
    "percent": r"-(?<![\w.]-)\d{1,3}(?:,\d{3}){0,6}(?:\.\d{1,6})?\s?%"
    r"|-(?<![\w.]-)\d{1,15}(?:\.\d{1,6})?\s?%",
    "number": r"-(?<![\w.,]-)\d{1,3}(?:,\d{3}){1,6}(?:\.\d{1,6})?(?![\d,]\d)"
    r"|-(?<![\w.]-)\d{1,15}(?:\.\d{1,15})?(?![\d]|\.\d)",
}
_DIGIT_MARK = "_d"  # marker suffix of the digit group's kinds ("number_d" → "number")


# The digit kinds that need a separator within a few digits (a dash, point, colon, slash,
# vulgar fraction, am/pm, or a space before one of those or a digit): one look-ahead
# skips them all at a number that has none ("1,1,1…", "+1 +1 …"), the usual case.
_SEPARATED = ("phone", "iso", "version", "range", "time", "clock", "slash", "fraction")
_SEPARATOR = r"(?=\d{0,4}(?:[./–—aApP" + "".join(_VULGAR) + r"]| [\d–—aApP-]))"
_COLON = r"(?=\d{0,4}:)"  # clock times, alone or as a range's ends: time and range only
_HYPHEN = r"(?=\d{0,4}-)"  # 555-0142, 2024-03-05, 10-20: phone, ISO date and range only


def _scanner(kinds: list[str]) -> re.Pattern[str]:
    first = [k for k in ("url", "email") if k in kinds]
    separated = "|".join(
        f"(?:{_AFTER_DIGIT[k]})(?P<{k}{_DIGIT_MARK}>)"
        for k in kinds
        if k in _AFTER_DIGIT and k in _SEPARATED
    )
    plain = "|".join(
        f"(?:{_AFTER_DIGIT[k]})(?P<{k}{_DIGIT_MARK}>)"
        for k in kinds
        if k in _AFTER_DIGIT and k not in _SEPARATED
    )
    colon = "|".join(
        f"(?:{_AFTER_DIGIT[k]})(?P<{k}{_DIGIT_MARK}c>)" for k in ("range", "time") if k in kinds
    )
    hyphen = "|".join(
        f"(?:{_AFTER_DIGIT[k]})(?P<{k}{_DIGIT_MARK}h>)"
        for k in ("phone", "iso", "range")
        if k in kinds
    )
    digit = (
        f"{_COLON}(?:{colon})|{_HYPHEN}(?:{hyphen})|{_SEPARATOR}(?:{separated})|{plain}"
        if separated
        else plain
    )
    rest = [
        (k, _NOT_DIGIT[k] if k in _AFTER_DIGIT else _BRANCHES[k])
        for k in kinds
        if k not in first and (k not in _AFTER_DIGIT or k in _NOT_DIGIT)
    ]
    parts = (
        [f"(?:{_BRANCHES[k]})(?P<{k}>)" for k in first]
        + [rf"\d(?:{digit})"]
        + [f"(?:{body})(?P<{k}>)" for k, body in rest]
    )
    # every branch's first character, tested once: a position that opens none of them
    # (",", ":", a space in a dense text) skips all ~25 branches with one C-level test
    return re.compile(f"(?={_FIRST})(?:" + "|".join(parts) + ")")


_FIRST = "[\\w$€£¥'’+(\\-−±≈∓∼~#&=@" + "".join(_VULGAR) + "]"


_SCANNER = _scanner(list(_BRANCHES))
# without the branches whose own scan is long (an e-mail reads up to 64 characters at each
# word start): used when the text has no "@" or "://"/"www" at all (a C-level check)
_SCANNER_NO_EMAIL = _scanner([k for k in _BRANCHES if k != "email"])
_SCANNER_PLAIN = _scanner([k for k in _BRANCHES if k not in ("email", "url")])

# Where a rewrite can start: characters no plain word contains, and upper-case runs that
# may be Roman numerals. A pattern that opens with a character class lets the regex
# engine skip ordinary prose in C, so the full scanner only runs in small windows
# around these anchors instead of at every position of the text.
_ANCHOR = re.compile(
    r"[\d$€£¥#&+=@%°−±≈∓∼~" + "".join(_VULGAR) + r"]|[IVXLC]{2,8}\b|V\b"
    r"|\.|www|://|" + _ACRONYM_ALT + r"|[A-Z](?<!\w.)[A-Z]?\d[A-Z\d]? \d"
)
_ABBREVIATION_WORDS = frozenset(k.lower().rstrip(".") for k, _, _ in ABBREVIATIONS)
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
            if text[max(w, p - 16) : p].lower().lstrip("(\"'") not in _ABBREVIATION_WORDS:
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


@dataclass(frozen=True)
class Region:
    """What a voice's region changes in English readings."""

    day_first: bool = False  # 03/04/2025 is the third of April
    key: str = ""  # part of the rewrite cache's key


_US = Region()
_DAY_FIRST = Region(day_first=True, key="\0d")


def _money(m: re.Match[str], text: str, ctx: Region) -> list[Piece]:
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
            words.append(
                f"{cardinal(c)} {sub_one if c == 1 else sub_many}" if not n else cardinal(c)
            )
        else:
            words.append(cardinal(c))
    return [(0, len(raw), " ".join(words))]


def _time(m: re.Match[str], text: str, ctx: Region) -> list[Piece]:
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
    after = text[end : end + 2]
    return not after.strip() or after[0] == "\n" or (after[0] == " " and after[1:].isupper())


def _date_words(y: int | None, mo: int, d: int, day_first: bool = False) -> str | None:
    """ "March fifth, twenty twenty-four"; day first: "the fifth of March, twenty …"."""
    if not (1 <= mo <= 12 and 1 <= d <= 31):
        return None
    words = (
        f"the {ordinal(d)} of {_MONTHS[mo - 1]}" if day_first else f"{_MONTHS[mo - 1]} {ordinal(d)}"
    )
    return f"{words}, {year(y)}" if y is not None else words


def _iso(m: re.Match[str], text: str, ctx: Region) -> list[Piece]:
    y, mo, d = (int(x) for x in m.group().split("-"))
    words = _date_words(y, mo, d, ctx.day_first)
    return [(0, len(m.group()), words)] if words else []


def _slash(m: re.Match[str], text: str, ctx: Region) -> list[Piece]:
    mo, d, y = m.group().split("/")
    if ctx.day_first:
        mo, d = d, mo
    yy = int(y) + (2000 if len(y) == 2 and int(y) < 50 else 1900 if len(y) == 2 else 0)
    words = _date_words(yy, int(mo), int(d), ctx.day_first)
    return [(0, len(m.group()), words)] if words else []


def _mdate(m: re.Match[str], text: str, ctx: Region) -> list[Piece]:
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


def _decade(m: re.Match[str], text: str, ctx: Region) -> list[Piece]:
    raw = m.group()
    body = raw.lstrip("'’")[:-1]
    words = year(int(body)) if len(body) == 4 else cardinal(int(body))
    return [(0, len(raw), _plural_decade(words))]


def _percent(m: re.Match[str], text: str, ctx: Region) -> list[Piece]:
    raw = m.group()
    return [(0, len(raw), f"{decimal(raw.rstrip('%').strip().replace(',', ''))} percent")]


def _ordinal(m: re.Match[str], text: str, ctx: Region) -> list[Piece]:
    raw = m.group()
    return [(0, len(raw), ordinal(int(raw[:-2])))]


def _unit(m: re.Match[str], text: str, ctx: Region) -> list[Piece]:
    raw = m.group()
    um = re.search(r"(" + _UNIT_ALT + r")$", raw, re.IGNORECASE)
    assert um is not None
    value = raw[: um.start()].strip()
    one, many = _UNITS[um.group(1).lower()]
    return [(0, len(raw), f"{decimal(value)} {one if value == '1' else many}")]


def _number(m: re.Match[str], text: str, ctx: Region) -> list[Piece]:
    raw = m.group()
    plain = raw.replace(",", "")
    if "." not in plain and "," not in raw and len(plain) == 4 and 1100 <= int(plain) <= 2099:
        return [(0, len(raw), year(int(plain)))]
    if len(plain.lstrip("-")) > 15:
        return [(0, len(raw), digits(plain))]
    return [(0, len(raw), decimal(plain))]


def _abbr(m: re.Match[str], text: str, ctx: Region) -> list[Piece]:
    raw = m.group()
    key = raw.lower()
    if key in _TITLE_OR_PLACE:
        title, place = _TITLE_OR_PLACE[key]
        after = text[m.end() : m.end() + 2]
        word = title if (len(after) == 2 and after[0] == " " and after[1].isupper()) else place
    else:
        word = _ABBREVIATIONS[key]
    if raw[0].isupper() and word[0].islower():
        word = word[0].upper() + word[1:]
    # an abbreviation that ends the text or a sentence keeps its period as the full stop
    if key not in _TITLES and _ends_sentence(text, m.end()):
        word += "."
    return [(0, len(raw), word)]


def _numberword(m: re.Match[str], text: str, ctx: Region) -> list[Piece]:
    raw = m.group()
    word = "Number" if raw[0] == "N" else "number"
    return [(0, len(raw), word + (" " if raw[-1].isspace() or raw == "#" else ""))]


def _roman(m: re.Match[str], text: str, ctx: Region) -> list[Piece]:
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


def _url(m: re.Match[str], text: str, ctx: Region) -> list[Piece]:
    raw = m.group().rstrip(".,;:!?)")
    body = re.sub(r"^https?://", "", raw)
    out = []
    for part in re.split(r"([./:?=&_-])", body):
        if part in (".",):
            out.append("dot")
        elif part == "/":
            out.append("slash")
        elif part in (":", "?", "=", "&", "_", "-"):
            out.append(
                {
                    ":": "colon",
                    "?": "question mark",
                    "=": "equals",
                    "&": "and",
                    "_": "underscore",
                    "-": "dash",
                }[part]
            )
        elif part:
            out.append(digits(part) if part.isdigit() else part)
    return [(0, len(raw), " ".join(out))]


def _email(m: re.Match[str], text: str, ctx: Region) -> list[Piece]:
    raw = m.group()
    local, _, domain = raw.partition("@")

    def say(s: str) -> str:
        return " ".join(
            {".": "dot", "_": "underscore", "-": "dash", "+": "plus"}.get(p, p)
            for p in re.split(r"([._+-])", s)
            if p
        )

    return [(0, len(raw), f"{say(local)} at {say(domain)}")]


_EXTENSION = re.compile(r",?\s?(?:(?i:ext)\.?|x)\s?(\d{1,6})$")


def _phone(m: re.Match[str], text: str, ctx: Region) -> list[Piece]:
    """Digit by digit, a pause between groups; "ext. 12" / "x12" is "extension one two"."""
    raw = m.group()
    number, extension = raw, ""
    ext = _EXTENSION.search(raw)
    if ext:
        number, extension = raw[: ext.start()], f", extension {digits(ext.group(1))}"
    groups = re.findall(r"\d+", number)
    words = ", ".join(digits(g) for g in groups)
    return [(0, len(raw), ("plus " if raw.startswith("+") else "") + words + extension)]


def _symbol(m: re.Match[str], text: str, ctx: Region) -> list[Piece]:
    return [(0, 1, _SYMBOLS[m.group()])]


def _spoken_number(raw: str) -> str:
    """A plain number as read inside another reading (a range end, a version part)."""
    plain = raw.replace(",", "")
    return decimal(plain) if plain else ""


def _version(m: re.Match[str], text: str, ctx: Region) -> list[Piece]:
    """ "v2.3.1" → "version two point three point one"; "2.0.1-beta" → "… point one beta"."""
    raw = m.group()
    body = raw
    lead = ""
    if raw[0] in "vV":
        body = raw[1:]
        before = text[max(0, m.start() - 9) : m.start()].lower().rstrip()
        lead = "" if before.endswith("version") else "version "
    number, _, tag = body.partition("-")
    words = " point ".join(cardinal(int(p)) for p in number.split("."))
    if tag:
        parts = []
        for piece in re.findall(r"[A-Za-z]+|\d+", tag):
            parts.append(
                cardinal(int(piece)) if piece.isdigit() else _PRERELEASE.get(piece.lower(), piece)
            )
        words += " " + " ".join(parts)
    return [(0, len(raw), lead + words)]


_RANGE_SPLIT = re.compile(r"\s?[–—-]\s?")
_HAS_AMPM = re.compile(r"[aApP]\.?[mM]\.?$")


def _range_end(raw: str, ctx: Region) -> str:
    raw = raw.strip()
    tail = _HAS_AMPM.search(raw)
    if ":" in raw or tail:
        clock = raw[: tail.start()].strip() if tail else raw
        h, _, mi = clock.partition(":")
        words = cardinal(int(h))
        if mi and int(mi):
            words += f" oh {_ONES[int(mi)]}" if int(mi) < 10 else f" {cardinal(int(mi))}"
        elif mi and not tail:
            words += " hundred" if int(h) > 12 else " o'clock"
        return words + (f" {tail.group()[0].upper()} M" if tail else "")
    return cardinal(int(raw))


def _range(m: re.Match[str], text: str, ctx: Region) -> list[Piece]:
    """ "10–20" → "ten to twenty", "9am–5pm" → "nine A M to five P M", "1990–95" →
    "nineteen ninety to ninety-five"."""
    raw = m.group()
    body, percent = (raw.rstrip("%").rstrip(), " percent") if raw.endswith("%") else (raw, "")
    a, b = (x.strip() for x in _RANGE_SPLIT.split(body, maxsplit=1))
    if a.isdigit() and len(a) == 4 and 1100 <= int(a) <= 2099 and b.isdigit():
        if len(b) == 4:
            return [(0, len(raw), f"{year(int(a))} to {year(int(b))}")]
        if len(b) == 2:
            tail = f"oh {_ONES[int(b)]}" if int(b) < 10 else cardinal(int(b))
            return [(0, len(raw), f"{year(int(a))} to {tail}")]
    return [(0, len(raw), f"{_range_end(a, ctx)} to {_range_end(b, ctx)}{percent}")]


def _clock(m: re.Match[str], text: str, ctx: Region) -> list[Piece]:
    """ "9am" → "nine A M"."""
    raw = m.group()
    tail = _HAS_AMPM.search(raw)
    assert tail is not None
    words = f"{cardinal(int(raw[: tail.start()].strip()))} {tail.group()[0].upper()} M"
    if raw.endswith(".") and _ends_sentence(text, m.end()):
        words += "."
    return [(0, len(raw), words)]


def _fraction_words(num: int, den: int) -> str:
    """ "three quarters", "one half", "two thirds"."""
    name = {2: "half", 4: "quarter"}.get(den) or ordinal(den)
    if num != 1:
        name = "halves" if den == 2 else name + "s"
    return f"{cardinal(num)} {name}"


def _article(word: str) -> str:
    return "an" if word[:1].lower() in "aeio" or word.lower().startswith("hour") else "a"


def _fraction(m: re.Match[str], text: str, ctx: Region) -> list[Piece]:
    """ "1/2" → "one half", "3½ kg" → "three and a half kilograms", "2 3/4" → "two and three
    quarters", "½ cup" → "one half cup", "1/2 kg" → "half a kilogram"; "24/7" and other
    fractions no one reads as such: the two numbers ("twenty-four seven")."""
    raw = m.group()
    um = (
        re.search(r"\s?(" + _UNIT_ALT + r")$", raw, re.IGNORECASE)
        if raw[-1:].isalpha() or raw[-1:] == "°"
        else None
    )
    body = raw[: um.start()] if um else raw
    whole = 0
    vulgar = next((c for c in body if c in _VULGAR), None)
    if vulgar:
        num, den = _VULGAR[vulgar]
        head = body[: body.index(vulgar)].strip()
        whole = int(head) if head else 0
    else:
        head, _, frac = body.strip().rpartition(" ")
        n_, _, d_ = frac.partition("/")
        num, den = int(n_), int(d_)
        whole = int(head) if head else 0
        if not (0 < num < den <= 100) or den == 1:
            if whole:
                return []
            return [
                (
                    0,
                    len(raw),
                    f"{cardinal(num)} {cardinal(den)}"
                    + (f" {_UNITS[um.group(1).lower()][1]}" if um else ""),
                )
            ]
    part = _fraction_words(num, den)
    if whole:
        name = part.split(" ", 1)[1]
        part = f"{cardinal(whole)} and " + (f"{_article(name)} {name}" if num == 1 else part)
    if um:
        one, many = _UNITS[um.group(1).lower()]
        if whole:
            return [(0, len(raw), f"{part} {many}")]
        if num == 1 and den == 2:
            return [(0, len(raw), f"half {_article(one)} {one}")]
        return [(0, len(raw), f"{part} of {_article(one)} {one}")]
    return [(0, len(raw), part)]


def _alnum(m: re.Match[str], text: str, ctx: Region) -> list[Piece]:
    """House numbers and other number + letter codes: "221B" → "two twenty-one B"."""
    raw = m.group()
    n = int(raw[:-1])
    if 100 <= n <= 999:
        rest = n % 100
        tail = f"oh {_ONES[rest]}" if 0 < rest < 10 else "hundred" if rest == 0 else cardinal(rest)
        words = f"{_ONES[n // 100]} {tail}"
    elif 1000 <= n <= 9999 and n % 1000:
        words = year(n)
    else:
        words = cardinal(n)
    return [(0, len(raw), f"{words} {raw[-1]}")]


def _sign(m: re.Match[str], text: str, ctx: Region) -> list[Piece]:
    """ "−5°F" → "minus" + the rest read on its own; "±2" → "plus or minus two"."""
    return [(0, len(m.group()), _SIGNS[m.group()] + " ")]


def _spell(code: str) -> str:
    return " ".join(digits(ch) if ch.isdigit() else ch for ch in code)


def _postcode(m: re.Match[str], text: str, ctx: Region) -> list[Piece]:
    """A UK postcode, as said: "SW1A 1AA" → "S W one A, one A A"."""
    out, inward = m.group().split(" ")
    return [(0, len(m.group()), f"{_spell(out)}, {_spell(inward)}")]


def _period(m: re.Match[str], text: str, ctx: Region) -> list[Piece]:
    """Fiscal years, quarters and halves: "FY2024" → "F Y twenty twenty-four", "Q3" →
    "Q three"."""
    raw = m.group()
    letters = raw.rstrip("0123456789")
    number = raw[len(letters) :]
    words = year(int(number)) if len(number) == 4 else cardinal(int(number))
    return [(0, len(raw), f"{_PERIODS[letters]} {words}")]


def _acronym(m: re.Match[str], text: str, ctx: Region) -> list[Piece]:
    return [(0, len(m.group()), ACRONYMS[m.group()])]


_ENGLISH: dict[str, Callable[[re.Match[str], str, Region], list[Piece]]] = {
    "url": _url,
    "email": _email,
    "phone": _phone,
    "money": _money,
    "time": _time,
    "iso": _iso,
    "slash": _slash,
    "mdate": _mdate,
    "decade": _decade,
    "percent": _percent,
    "ordinal": _ordinal,
    "unit": _unit,
    "number": _number,
    "numberword": _numberword,
    "roman": _roman,
    "symbol": _symbol,
    "version": _version,
    "range": _range,
    "clock": _clock,
    "fraction": _fraction,
    "alnum": _alnum,
    "sign": _sign,
    "postcode": _postcode,
    "period": _period,
    "acronym": _acronym,
}

# ---------------------------------------------------------------------------- other languages

# Languages that write 1.234,56 (a comma before the decimals, points or spaces between
# thousands); the others write 1,234.56.
DECIMAL_COMMA = frozenset(
    "de fr es it pt nl ru pl cs sk da sv no nb nn fi tr ro hu uk id "
    "ca gl eu hr sl sr bg el lt lv et is az kk vi".split()
)
# Month names for dates read in other languages (day first everywhere here: 03.04.2025,
# 03/04/2025 and ISO 2025-04-03 are all the third of April), with how a date is said.
FOREIGN_MONTHS: dict[str, tuple[str, ...]] = {
    "de": tuple(
        "Januar Februar März April Mai Juni Juli August September Oktober November Dezember".split()
    ),
    "fr": tuple(
        "janvier février mars avril mai juin juillet août septembre octobre "
        "novembre décembre".split()
    ),
    "es": tuple(
        "enero febrero marzo abril mayo junio julio agosto septiembre octubre "
        "noviembre diciembre".split()
    ),
    "it": tuple(
        "gennaio febbraio marzo aprile maggio giugno luglio agosto settembre "
        "ottobre novembre dicembre".split()
    ),
    "pt": tuple(
        "janeiro fevereiro março abril maio junho julho agosto setembro outubro "
        "novembro dezembro".split()
    ),
    "nl": tuple(
        "januari februari maart april mei juni juli augustus september oktober "
        "november december".split()
    ),
}
_CURRENCY_CODES = {"€": "EUR", "$": "USD", "£": "GBP", "¥": "JPY"}
_GROUPED = r"\d{1,3}(?:[.\u00a0\u202f ]\d{3}){1,5}"
_FOREIGN_COMMA = re.compile(
    r"(?P<money>[€$£¥]\s?(?:" + _GROUPED + r"|\d{1,15})(?:,\d{1,2})?(?![\d,])"
    r"|(?<![\w.,])(?:" + _GROUPED + r"|\d{1,15})(?:,\d{1,2})?\s?[€$£¥])"
    r"|(?P<date>(?<![\w.,/])\d{1,2}[./]\d{1,2}[./]\d{4}(?![\d.,/]\d))"
    r"|(?P<iso>(?<![\w-])\d{4}-\d{2}-\d{2}(?![\w-]))"
    r"|(?P<number>(?<![\w.,])-?(?:\d{1,3}(?:\.\d{3}){1,5}|\d{1,15})(?:,\d{1,6})?(?![\d\w]))"
)
_FOREIGN_POINT = re.compile(
    r"(?P<money>[€$£¥]\s?\d{1,3}(?:,\d{3}){0,5}(?:\.\d{1,2})?(?![\d.]))"
    r"|(?P<iso>(?<![\w-])\d{4}-\d{2}-\d{2}(?![\w-]))"
    r"|(?P<number>(?<![\w.,])-?\d{1,15}(?:[.,]\d{1,6})?(?![\d\w]))"
)


@lru_cache(maxsize=8192)
def _foreign_number(raw: str, lang: str) -> str:
    """A number in another language; ``raw`` is in Python's own notation (1234.5)."""
    value: int | float
    value = float(raw) if "." in raw else int(raw)
    return str(num2words(value, lang=lang))


def _plain(raw: str, comma: bool) -> str:
    """A written number in Python's notation: "1.234,5" → "1234.5" where a comma marks
    the decimals, "1,234.5" → "1234.5" where a point does."""
    raw = re.sub(r"[\s\u00a0\u202f]", "", raw)
    if comma:
        return raw.replace(".", "").replace(",", ".")
    return raw.replace(",", "") if re.search(r",\d{3}(?!\d)", raw) else raw.replace(",", ".")


def _foreign(m: re.Match[str], converter: str, base: str, comma: bool, text: str) -> str:
    """What a number, amount or date says in another language (num2words' readings)."""
    raw = m.group()
    kind = m.lastgroup
    if kind == "money":
        symbol = next(ch for ch in raw if ch in _CURRENCY_CODES)
        amount = _plain(raw.replace(symbol, ""), comma)
        try:
            return str(
                num2words(
                    float(amount), lang=converter, to="currency", currency=_CURRENCY_CODES[symbol]
                )
            )
        except (NotImplementedError, KeyError, ValueError, TypeError):
            return f"{_foreign_number(amount, converter)} {_CURRENCY_CODES[symbol]}"
    if kind in ("date", "iso"):
        parts = [int(x) for x in re.split(r"[./-]", raw)]
        d, mo, y = (parts[2], parts[1], parts[0]) if kind == "iso" else parts
        months = FOREIGN_MONTHS.get(base)
        if months is None or not (1 <= mo <= 12 and 1 <= d <= 31):
            return " ".join(_foreign_number(str(x), converter) for x in (d, mo, y))
        try:
            said_year = str(num2words(y, lang=converter, to="year"))
        except (NotImplementedError, TypeError):
            said_year = _foreign_number(str(y), converter)
        day = _foreign_number(str(d), converter)
        before = text[max(0, m.start() - 4) : m.start()].lower().split()
        if base == "de":  # "am dritten April", as running text says it
            day = f"{num2words(d, lang=converter, to='ordinal')}n"
        elif base == "fr":
            day = "premier" if d == 1 else day
            article = "" if before and before[-1] in ("le", "du", "au") else "le "
            return f"{article}{day} {months[mo - 1]} {said_year}"
        elif base == "it" and d == 1:
            day = "primo"
        joint = " de " if base in ("es", "pt") else " "
        return f"{day}{joint}{months[mo - 1]}{joint}{said_year}"
    return _foreign_number(_plain(raw, comma), converter)


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
_CONTEXTUAL = frozenset({"time", "abbr", "roman", "symbol", "numberword", "version", "clock"})
# (these read past the match: the rewrite cache cannot hold them)
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


@dataclass(frozen=True)
class _Foreign:
    """How numbers of a language other than English are read (num2words)."""

    converter: str  # num2words' name for the language
    base: str  # the language without its region
    comma: bool  # a decimal comma ("3,5")


def _english_matches(text: str) -> Iterator[re.Match[str]]:
    """The English scanner's matches: the cheapest scanner the text needs (e-mail and
    URL patterns only when it has their marks), over the windows around anchors."""
    scanner = (
        _SCANNER
        if "@" in text
        else _SCANNER_NO_EMAIL
        if ("://" in text or "www." in text)
        else _SCANNER_PLAIN
    )
    ranges = _scan_ranges(text)
    if ranges == [(0, len(text))]:
        return scanner.finditer(text)
    return (m for s, e in ranges for m in scanner.finditer(text, s, e))


def _rewrite(
    m: re.Match[str], group: str, text: str, ctx: Region, foreign: _Foreign | None
) -> tuple[str, str | list[tuple[int, int, str]]]:
    """A match's kind and its rewrite: the bare replacement when the whole match is
    rewritten (the usual case), else the pieces (start, end, replacement) in it."""
    raw = m.group()
    kind = (
        group[:-1].removesuffix(_DIGIT_MARK)
        if group.endswith((_DIGIT_MARK + "c", _DIGIT_MARK + "h"))
        else group.removesuffix(_DIGIT_MARK)
    )
    if foreign is None:
        pieces = (_ENGLISH.get(kind) or _abbr)(m, text, ctx)
    else:
        pieces = [(0, len(raw), _foreign(m, foreign.converter, foreign.base, foreign.comma, text))]
    whole = len(pieces) == 1 and pieces[0][:2] == (0, len(raw))
    return kind, pieces[0][2] if whole else pieces


def normalize_text(text: str, language: str = "en") -> Normalized:
    """Rewrite what a listener would read differently from how it is written.

    ``language`` is the voice's language code; English gets the full set, other
    languages their numbers (when num2words knows the language), the rest nothing.
    """
    lang = language.lower().replace("_", "-")
    english = lang == "en" or lang.startswith("en-")
    ctx = _DAY_FIRST if english and lang.partition("-")[2] in DAY_FIRST_REGIONS else _US
    foreign: _Foreign | None = None
    if english:
        matches = _english_matches(text)
    else:
        converter = num2words_language(lang)
        if converter is None:
            return Normalized(text, text)
        base = lang.partition("-")[0]
        foreign = _Foreign(converter, base, base in DECIMAL_COMMA)
        matches = (_FOREIGN_COMMA if foreign.comma else _FOREIGN_POINT).finditer(text)
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
        if foreign is not None:  # a date reads the word before it (French "le")
            group = "foreign" + lang + (str(m.start()) if m.lastgroup in ("date", "iso") else "")
        raw = m.group()
        key = group + "\0" + raw + ctx.key
        got = cache.get(key)
        if got is None:
            kind, got = _rewrite(m, group, text, ctx, foreign)
            if kind not in _CONTEXTUAL:
                cache[key] = got
        at = m.start()
        if isinstance(got, str):
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
