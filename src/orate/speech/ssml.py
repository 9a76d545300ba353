"""SSML, parsed safely and mapped onto orate's own segments, the same on every engine.

espeak has an SSML parser of its own, but Piper, Kokoro and hibari have none, and
espeak's shifts its text positions by the tags. So orate parses SSML itself and
turns it into what every engine already understands: plain sentences (with a map
back to the caller's characters), silences, and per-segment prosody (speed, espeak
pitch, a gain for volume). Supported: ``speak, p, s, break, prosody (rate, pitch,
volume), emphasis, say-as (cardinal, ordinal, characters, date, time, telephone),
sub, phoneme (ipa), voice, lang, mark``; anything else is refused with its line and
column, so a caller never wonders why a tag was ignored.

Safety: defusedxml refuses DTDs, entity declarations and external references before
anything else reads the text (no billion laughs, no XXE; XInclude is never
processed); depth, size, breaks and marks are bounded.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace

from orate.runtime.spoken import Spoken
from orate.speech.spoken import SpokenBuilder
from orate.speech.text import TextError, split_sentences

SSML_MAX_CHARS = 100_000
SSML_MAX_DEPTH = 32
SSML_MAX_BREAK = 10.0  # one break
SSML_MAX_BREAKS = 60.0  # all breaks of a request
SSML_MAX_MARKS = 1000

_SSML_HEAD = re.compile(
    r"\s*(?:<\?xml[^>]{0,200}\?>\s*)?(?:<!--.*?-->\s*)*"
    r"(?:<!DOCTYPE[^\[>]{0,200}(?:\[.*?\])?\s*>\s*)?<speak[\s>/]",
    re.S | re.I,
)  # a DOCTYPE counts, so that it is refused, not read
_TOKEN = re.compile(
    r"<!--.*?-->|<!\[CDATA\[(?P<cdata>.*?)\]\]>|<\?.*?\?>"
    r"|<(?P<close>/?)(?P<name>[A-Za-z_][\w:.-]*)(?P<attrs>(?:\s+[^\s=/>]+\s*=\s*"
    r"(?:\"[^\"]*\"|'[^']*'))*)\s*(?P<empty>/?)>",
    re.S,
)
_ATTR = re.compile(r"([^\s=/>]+)\s*=\s*(?:\"([^\"]*)\"|'([^']*)')")
_ENTITY = re.compile(r"&(#\d{1,7}|#x[0-9a-fA-F]{1,6}|amp|lt|gt|quot|apos);")
_BREAK_STRENGTH = {
    "none": 0.0,
    "x-weak": 0.1,
    "weak": 0.25,
    "medium": 0.4,
    "strong": 0.75,
    "x-strong": 1.2,
}
_RATES = {"x-slow": 0.5, "slow": 0.75, "medium": 1.0, "default": 1.0, "fast": 1.3, "x-fast": 1.7}
_PITCHES = {"x-low": -30, "low": -15, "medium": 0, "default": 0, "high": 15, "x-high": 30}
_VOLUMES = {
    "silent": 0.0,
    "x-soft": 0.3,
    "soft": 0.6,
    "medium": 1.0,
    "default": 1.0,
    "loud": 1.5,
    "x-loud": 2.0,
}
_EMPHASIS = {
    "strong": (0.85, 1.3),
    "moderate": (0.92, 1.15),
    "none": (1.0, 1.0),
    "reduced": (1.1, 0.8),
}
_SAY_AS = (
    "cardinal",
    "number",
    "ordinal",
    "characters",
    "spell-out",
    "verbatim",
    "date",
    "time",
    "telephone",
)
_ELEMENTS = {
    "speak",
    "p",
    "s",
    "break",
    "prosody",
    "emphasis",
    "say-as",
    "sub",
    "phoneme",
    "voice",
    "lang",
    "mark",
    "paragraph",
    "sentence",
}
_CAPTURING = {"say-as", "sub", "phoneme"}


class SsmlError(ValueError):
    """Invalid or refused SSML; ``code`` is the API error code."""

    def __init__(self, message: str, code: str = "invalid_ssml") -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Style:
    """Prosody and voice in force for a stretch of SSML."""

    rate: float = 1.0  # multiplies the request's speed
    pitch: int = 0  # added to espeak's pitch (0-100, default 50); neural engines ignore it
    volume: float = 1.0  # PCM gain
    voice: str | None = None  # <voice name>
    lang: str | None = None  # xml:lang of <speak>/<lang>/<voice>


@dataclass
class Item:
    """One thing the SSML says, in document order.

    kind: ``text`` (read, normalized, from ``start``), ``rewrite`` (``text`` replaces
    ``source[start:end]``), ``phonemes`` (IPA for ``source[start:end]``),
    ``break`` (``seconds``), ``mark`` (``text`` is its name, at ``start``), ``boundary``
    (a sentence or paragraph edge).
    """

    kind: str
    text: str = ""
    start: int = 0
    end: int = 0
    style: Style = field(default_factory=Style)
    seconds: float = 0.0
    written: str = ""  # phonemes: the words they stand for, read where phonemes cannot be


def is_ssml(text: str) -> bool:
    """A root ``<speak>`` element (after an optional XML declaration): "<speaker> is a
    word" is plain text."""
    head = text[:4096]
    return (
        bool(_SSML_HEAD.match(head))
        or head.lstrip()[:9].lower() in ("<!doctype",)
        or head.lstrip()[:5].lower() == "<?xml"
    )


def _where(text: str, pos: int) -> str:
    line = text.count("\n", 0, pos) + 1
    col = pos - (text.rfind("\n", 0, pos) + 1) + 1
    return f"line {line}, column {col}"


def _check_xml(text: str) -> None:
    """Well-formed, and free of DTDs, entities and external references (defusedxml)."""
    from xml.etree.ElementTree import ParseError

    import defusedxml.ElementTree as DET
    from defusedxml import DefusedXmlException

    if len(text) > SSML_MAX_CHARS:
        raise SsmlError(
            f"SSML is {len(text)} characters; the limit is {SSML_MAX_CHARS}", "ssml_too_large"
        )
    try:
        DET.fromstring(text, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException:
        raise SsmlError(
            "SSML may not contain a DTD, entity declarations or external "
            "references; remove <!DOCTYPE …>",
            "ssml_dtd",
        ) from None
    except ParseError as exc:
        line, col = exc.position
        reason = str(exc).split(":")[0]
        raise SsmlError(
            f"SSML is not well-formed XML: {reason} at line {line}, column {col + 1}"
        ) from None


def _seconds(value: str, text: str, pos: int) -> float:
    m = re.fullmatch(r"\s*(\d{1,6}(?:\.\d{1,3})?)\s*(ms|s)\s*", value.lower())
    if not m:
        raise SsmlError(
            f"break time {value!r} at {_where(text, pos)}: write it as '500ms' or '1.5s'"
        )
    n = float(m.group(1))
    return n / 1000 if m.group(2) == "ms" else n


def _relative(
    value: str,
    table: Mapping[str, float],
    unit_scale: dict[str, float],
    text: str,
    pos: int,
    what: str,
) -> tuple[str, float]:
    """('abs'|'mul'|'add', number) for a prosody value."""
    v = value.strip().lower()
    if v in table:
        return "abs", float(table[v])
    m = re.fullmatch(r"([+-]?)(\d{1,4}(?:\.\d{1,3})?)\s*(%|st|hz|db)?", v)
    if not m:
        raise SsmlError(
            f"prosody {what} {value!r} at {_where(text, pos)} is not understood; "
            f"use one of {', '.join(table)} or a percentage"
        )
    sign, number, unit = m.group(1), float(m.group(2)), m.group(3) or ""
    if unit == "%":
        if sign:
            return "add", (-number if sign == "-" else number) / 100
        return "mul", number / 100
    scale = unit_scale.get(unit)
    if scale is None:
        raise SsmlError(
            f"prosody {what} {value!r} at {_where(text, pos)}: unit {unit!r} is not supported here"
        )
    return "units", (-number if sign == "-" else number) * scale


def _prosody(style: Style, attrs: dict[str, str], text: str, pos: int) -> Style:
    if "rate" in attrs:
        kind, n = _relative(attrs["rate"], _RATES, {"": 1.0}, text, pos, "rate")
        rate = {"abs": n, "mul": n, "add": 1 + n, "units": n}[kind]
        style = replace(style, rate=min(max(style.rate * rate, 0.25), 4.0))
    if "pitch" in attrs:
        kind, n = _relative(attrs["pitch"], _PITCHES, {"st": 5.0, "hz": 0.25}, text, pos, "pitch")
        delta = {"abs": n, "mul": (n - 1) * 50, "add": n * 50, "units": n}[kind]
        style = replace(style, pitch=int(max(min(style.pitch + delta, 50), -50)))
    if "volume" in attrs:
        kind, n = _relative(attrs["volume"], _VOLUMES, {"db": 1.0}, text, pos, "volume")
        gain = {"abs": n, "mul": n, "add": 1 + n, "units": 10 ** (n / 20)}[kind]
        style = replace(style, volume=min(max(style.volume * gain, 0.0), 4.0))
    return style


def _say_as(kind: str, content: str, attrs: dict[str, str], lang: str) -> str:
    """What a <say-as> element reads: English numbers, digits, letters and dates in
    words; anything else (or another language) normalized as ordinary text."""
    from orate.speech import normalize as N

    raw = content.strip()
    words = _say_as_english(kind, raw, attrs) if lang.lower().startswith("en") else None
    if words is not None:
        return words
    if kind in ("characters", "spell-out", "verbatim"):
        return " ".join(ch for ch in raw if not ch.isspace())
    if kind == "telephone":
        return raw
    return N.normalize_text(raw, lang).text


def _say_as_english(kind: str, raw: str, attrs: dict[str, str]) -> str | None:
    """An English reading of a say-as kind, or ``None`` when the content is not one."""
    from orate.speech import normalize as N

    if kind in ("characters", "spell-out", "verbatim"):
        return " ".join(N.digits(ch) if ch.isdigit() else ch for ch in raw if not ch.isspace())
    if kind == "telephone":
        groups = re.findall(r"\d+", raw)
        return ", ".join(N.digits(g) for g in groups) if groups else raw
    digits_only = re.sub(r"[,\s]", "", raw)
    if kind in ("cardinal", "number") and re.fullmatch(r"-?\d{1,15}", digits_only):
        n = int(digits_only)
        return ("minus " if n < 0 else "") + N.cardinal(abs(n))
    if kind == "ordinal":
        m = re.fullmatch(r"(\d{1,12})(?:st|nd|rd|th)?", digits_only)
        return N.ordinal(int(m.group(1))) if m else None
    if kind == "date":
        return _date_words(raw, (attrs.get("format") or "mdy").lower())
    return None


def _date_words(raw: str, fmt: str) -> str | None:
    """A date's numbers in the order ``fmt`` names (``mdy``, ``ymd`` …) as words."""
    from orate.speech import normalize as N

    parts = [int(p) for p in re.findall(r"\d+", raw)]
    if len(parts) != len(fmt) or not set(fmt) <= set("ymd"):
        return None
    values = dict(zip(fmt, parts, strict=True))
    if "d" not in values or "m" not in values:
        return None
    return N._date_words(values.get("y"), values.get("m", 1), values.get("d", 1)) or None


def check_ssml(text: str) -> None:
    """Refuse (``TextError``) SSML the parser refuses (DTDs, entities, depth, breaks)."""
    try:
        parse_ssml(text)
    except SsmlError as exc:
        raise TextError(str(exc), exc.code) from None


def parse_ssml(text: str, lang: str = "en") -> list[Item]:
    """The items of an SSML document, in order; raises ``SsmlError`` naming the place."""
    _check_xml(text)
    return _Parser(text, lang).parse()


_Open = tuple[str, Style, int, dict[str, str]]  # name, style before, position, attributes
_Capture = tuple[str, dict[str, str], int, list[str]]  # name, attributes, depth, text


class _Parser:
    """One pass over the tags of a well-formed document (``_check_xml`` ran first),
    keeping the style in force, the open elements and the bounds on breaks and marks."""

    def __init__(self, text: str, lang: str) -> None:
        self.text = text
        self.lang = lang
        self.items: list[Item] = []
        self.stack: list[_Open] = []
        self.style = Style(lang=lang)
        self.capture: _Capture | None = None  # say-as, sub, phoneme: their text is read whole
        self.breaks = 0.0
        self.marks = 0

    def parse(self) -> list[Item]:
        text, pos, seen_root = self.text, 0, False
        for m in _TOKEN.finditer(text):
            if m.start() > pos:
                self.add_text(text[pos : m.start()], pos)
            pos = m.end()
            if m.group("cdata") is not None:
                self.add_text(m.group("cdata"), m.start("cdata"))
                continue
            name = m.group("name")
            if name is None:
                continue  # comment or processing instruction
            local = name.rsplit(":", 1)[-1] if name != "xml:lang" else name
            where = _where(text, m.start())
            if local not in _ELEMENTS:
                raise SsmlError(
                    f"SSML element <{name}> at {where} is not supported; use speak, p, "
                    "s, break, prosody, emphasis, say-as, sub, phoneme, voice, lang, "
                    "mark"
                )
            if not seen_root and local != "speak":
                raise SsmlError(f"SSML must have <speak> as its root element ({where})")
            seen_root = True
            if m.group("close"):
                self.close(m)
            else:
                self.open(m, name, local, where)
        return self.items

    def add_text(self, chunk: str, at: int) -> None:
        if self.capture is not None:
            self.capture[3].append(chunk)
            return
        if not self.stack:
            return  # whitespace outside <speak>
        # entities map to their whole reference; other characters one for one
        last = 0
        for m in _ENTITY.finditer(chunk):
            if m.start() > last:
                self.add("text", chunk[last : m.start()], at + last, at + m.start())
            self.add("rewrite", _entity(m), at + m.start(), at + m.end())
            last = m.end()
        if last < len(chunk):
            self.add("text", chunk[last:], at + last, at + len(chunk))

    def add(self, kind: str, text: str = "", start: int = 0, end: int = 0) -> None:
        self.items.append(Item(kind, text, start, end, self.style))

    def close(self, m: re.Match[str]) -> None:
        if not self.stack:
            return
        opened, before, start_pos, _ = self.stack.pop()
        capture = self.capture
        if capture is not None and capture[0] == opened and len(self.stack) == capture[2]:
            self.capture = None
            self.captured(capture, start_pos, m.start())
        if opened in ("p", "s", "paragraph", "sentence"):
            self.items.append(Item("boundary"))
        self.style = before

    def captured(self, capture: _Capture, start: int, end: int) -> None:
        """The item of a closed say-as, sub or phoneme, from the text it held."""
        from orate.speech.phonemes import PhonemeError, check_ipa

        opened, attrs, _, parts = capture
        content = "".join(html.unescape(p) for p in parts)
        if opened == "sub":
            self.add("rewrite", attrs.get("alias", content), start, end)
        elif opened == "phoneme":
            alphabet = (attrs.get("alphabet") or "ipa").lower()
            if alphabet != "ipa":
                raise SsmlError(
                    f"<phoneme alphabet={alphabet!r}> at "
                    f"{_where(self.text, start)}: only alphabet='ipa'"
                )
            try:
                check_ipa(attrs.get("ph", ""))
            except PhonemeError as exc:
                raise SsmlError(f"<phoneme> at {_where(self.text, start)}: {exc}") from None
            self.items.append(
                Item("phonemes", attrs.get("ph", ""), start, end, self.style, written=content)
            )
        else:
            lang = self.style.lang or self.lang
            self.add("rewrite", _say_as(attrs["interpret-as"], content, attrs, lang), start, end)

    def open(self, m: re.Match[str], name: str, local: str, where: str) -> None:
        attrs = {
            a: (b if b is not None and c is None else c or b or "")
            for a, b, c in _ATTR.findall(m.group("attrs"))
        }
        attrs = {k: html.unescape(v) for k, v in attrs.items()}
        if self.capture is not None:
            raise SsmlError(f"<{name}> at {where} may not sit inside <{self.capture[0]}>")
        if local in ("break", "mark"):
            self.pause(m, local, attrs, where)
            if not m.group("empty"):
                self.stack.append((local, self.style, m.end(), attrs))
            return
        if len(self.stack) >= SSML_MAX_DEPTH:
            raise SsmlError(
                f"SSML nests deeper than {SSML_MAX_DEPTH} elements ({where})", "ssml_too_deep"
            )
        before = self.style
        self.style = self.styled(local, attrs, m.start(), where)
        if local in ("p", "s", "paragraph", "sentence"):
            self.items.append(Item("boundary"))
        if m.group("empty"):
            if local == "sub" and attrs.get("alias"):  # an empty <sub/> still says its alias
                self.add("rewrite", attrs["alias"], m.start(), m.end())
            self.style = before
            return
        self.stack.append((local, before, m.end(), attrs))
        if local in _CAPTURING:
            self.capture = (local, attrs, len(self.stack) - 1, [])

    def pause(self, m: re.Match[str], local: str, attrs: dict[str, str], where: str) -> None:
        """A <break> (a silence, bounded one by one and in total) or a <mark>."""
        if local == "mark":
            self.marks += 1
            if self.marks > SSML_MAX_MARKS:
                raise SsmlError(f"more than {SSML_MAX_MARKS} marks", "ssml_too_many_marks")
            self.add("mark", attrs.get("name", ""), m.start(), m.start())
            return
        seconds = (
            _seconds(attrs["time"], self.text, m.start())
            if "time" in attrs
            else _BREAK_STRENGTH.get(attrs.get("strength", "medium"), 0.4)
        )
        if seconds > SSML_MAX_BREAK:
            raise SsmlError(
                f"break of {seconds:g} s at {where}; one break may last at "
                f"most {SSML_MAX_BREAK:g} s",
                "ssml_breaks",
            )
        self.breaks += seconds
        if self.breaks > SSML_MAX_BREAKS:
            raise SsmlError(f"SSML breaks add up to more than {SSML_MAX_BREAKS:g} s", "ssml_breaks")
        self.items.append(Item("break", seconds=seconds, style=self.style))

    def styled(self, local: str, attrs: dict[str, str], pos: int, where: str) -> Style:
        """The style inside an opening element (and its checks: say-as, phoneme)."""
        style = self.style
        new_lang = attrs.get("xml:lang") or attrs.get("lang")
        if new_lang:
            style = replace(style, lang=new_lang)
        if local == "prosody":
            style = _prosody(style, attrs, self.text, pos)
        elif local == "emphasis":
            rate, gain = _EMPHASIS.get(attrs.get("level", "moderate"), _EMPHASIS["moderate"])
            style = replace(style, rate=style.rate * rate, volume=style.volume * gain)
        elif local == "voice" and attrs.get("name"):
            style = replace(style, voice=attrs["name"])
        elif local == "say-as":
            kind = attrs.get("interpret-as", "").lower()
            if kind not in _SAY_AS:
                raise SsmlError(
                    f"say-as interpret-as={kind!r} at {where} is not supported; "
                    f"use one of {', '.join(_SAY_AS)}"
                )
            attrs["interpret-as"] = kind
        elif local == "phoneme" and not attrs.get("ph"):
            raise SsmlError(f"<phoneme> at {where} needs a ph attribute (IPA)")
        return style


def _entity(m: re.Match[str]) -> str:
    """The character an entity or character reference stands for."""
    ref = m.group(1)
    if ref.startswith("#x"):
        return chr(int(ref[2:], 16))
    if ref.startswith("#"):
        return chr(int(ref[1:]))
    return html.unescape(m.group())


@dataclass
class Run:
    """A stretch of SSML with one style: sentences (caller span + what is spoken), the
    silence after each, one before the first, and marks."""

    style: Style
    sentences: list[tuple[int, int, Spoken]] = field(default_factory=list)
    gaps: list[float] = field(default_factory=list)
    lead: float = 0.0
    marks: list[tuple[int, str]] = field(default_factory=list)


def ssml_runs(
    items: list[Item],
    normalize: bool,
    lexicon: Callable[[SpokenBuilder, str, int, str | None], None] | None = None,
    alphabet: str | None = "espeak",
    check: Callable[[str], list[str]] | None = None,
    unapplied: list[str] | None = None,
) -> list[Run]:
    """Group parsed items into runs of one style and sentences within them.

    Plain text is split at sentence ends (the same splitter as plain requests) and
    normalized in the style's language unless ``normalize`` is off; ``lexicon`` (when
    given) adds a text piece with the caller's pronunciations applied.
    """
    runs: list[Run] = []
    builder = SpokenBuilder(alphabet, check)

    def run_for(style: Style) -> Run:
        if not runs or runs[-1].style != style:
            flush()
            runs.append(Run(style))
        return runs[-1]

    def flush() -> None:
        nonlocal builder
        if runs and builder.length and builder.build().text.strip():
            spoken = builder.build()
            s, e = spoken.source_range()
            runs[-1].sentences.append((s, e, spoken))
            runs[-1].gaps.append(0.0)
        if unapplied is not None:
            unapplied.extend(builder.unapplied)
        builder = SpokenBuilder(alphabet, check)

    def add_text(chunk: str, at: int, style: Style) -> None:
        language = style.lang if normalize else None
        if lexicon is not None:
            lexicon(builder, chunk, at, language)
        else:
            builder.normalized(chunk, at, language)

    for item in items:
        if item.kind == "boundary":
            flush()
        elif item.kind == "break":
            flush()
            if runs and runs[-1].sentences:
                runs[-1].gaps[-1] += item.seconds
            else:
                run_for(item.style).lead += item.seconds
        elif item.kind == "mark":
            run_for(item.style).marks.append((item.start, item.text))
        elif item.kind == "text":
            run_for(item.style)
            spans = split_sentences(item.text) if item.text.strip() else []
            if not spans:
                builder.copy(" ", item.start) if item.text else None
                continue
            # text before the first sentence end joins the sentence in progress
            for n, (s, e) in enumerate(spans):
                if n:
                    flush()
                if n == 0 and s > 0:
                    builder.copy(" ", item.start)
                add_text(item.text[s:e], item.start + s, item.style)
            if spans[-1][1] < len(item.text):
                builder.copy(" ", item.start + spans[-1][1])
        elif item.kind == "rewrite":
            run_for(item.style)
            builder.rewrite(item.text, item.start, item.end)
        elif item.kind == "phonemes":
            run_for(item.style)
            builder.phoneme_input(item.text, item.start, item.end, item.written)
    flush()
    return [r for r in runs if r.sentences or r.lead or r.marks]


# ---------------------------------------------------------------------------- inline tags

# ElevenLabs reads two tags inside plain text, with no <speak> root: a pause and a word's
# phonemes. Anything else that looks like a tag ("<speaker>") stays words.
_INLINE = re.compile(
    r"<break(?P<battrs>(?:\s+[^\s=/>]{1,20}\s*=\s*(?:\"[^\"<>]{0,40}\"|'[^'<>]{0,40}'))"
    r"{1,3})\s*/>"
    r"|<phoneme(?P<pattrs>(?:\s+[^\s=/>]{1,20}\s*=\s*(?:\"[^\"<>]{0,300}\"|'[^'<>]{0,300}'))"
    r"{1,3})\s*>(?P<word>[^<>]{1,200})</phoneme\s*>",
    re.I,
)
# CMU ARPAbet (ElevenLabs' other phoneme alphabet) as IPA; a digit after a vowel is its
# stress (1 primary, 2 secondary)
ARPABET = {
    "AA": "ɑ",
    "AE": "æ",
    "AH": "ʌ",
    "AO": "ɔ",
    "AW": "aʊ",
    "AX": "ə",
    "AY": "aɪ",
    "EH": "ɛ",
    "ER": "ɝ",
    "EY": "eɪ",
    "IH": "ɪ",
    "IX": "ɨ",
    "IY": "i",
    "OW": "oʊ",
    "OY": "ɔɪ",
    "UH": "ʊ",
    "UW": "u",
    "B": "b",
    "CH": "tʃ",
    "D": "d",
    "DH": "ð",
    "DX": "ɾ",
    "F": "f",
    "G": "ɡ",
    "HH": "h",
    "JH": "dʒ",
    "K": "k",
    "L": "l",
    "M": "m",
    "N": "n",
    "NG": "ŋ",
    "P": "p",
    "R": "ɹ",
    "S": "s",
    "SH": "ʃ",
    "T": "t",
    "TH": "θ",
    "V": "v",
    "W": "w",
    "Y": "j",
    "Z": "z",
    "ZH": "ʒ",
}


def arpabet_to_ipa(arpabet: str) -> str:
    """ "T AH0 M EY1 T OW2" → "təmˈeɪtˌoʊ" (an unstressed AH is a schwa)."""
    out = []
    for symbol in arpabet.upper().split():
        stress = symbol[-1] if symbol[-1].isdigit() else ""
        base = symbol.rstrip("012")
        if base not in ARPABET:
            raise SsmlError(f"ARPAbet symbol {symbol!r} is not one of CMU's phonemes")
        ipa = "ə" if base == "AH" and stress == "0" else ARPABET[base]
        out.append({"1": "ˈ", "2": "ˌ"}.get(stress, "") + ipa)
    return "".join(out)


def has_inline_tags(text: str) -> bool:
    """Whether plain text holds a tag ElevenLabs reads inline (``<break>``, ``<phoneme>``)."""
    return "<" in text and _INLINE.search(text) is not None


def inline_items(text: str, lang: str = "en") -> list[Item]:
    """The items of plain text with ElevenLabs' inline tags: text as written (offsets into
    the caller's text), ``<break time="1.5s"/>`` as a pause, ``<phoneme alphabet="ipa"
    ph="…">word</phoneme>`` (or ``cmu-arpabet``) as that word's phonemes. Raises
    ``SsmlError`` for a tag it cannot read (a bad time, an unknown symbol)."""
    from orate.speech.phonemes import PhonemeError, check_ipa

    style = Style(lang=lang)
    items: list[Item] = []
    pos = 0
    breaks = 0.0
    for m in _INLINE.finditer(text):
        if m.start() > pos:
            items.append(Item("text", text[pos : m.start()], pos, m.start(), style))
        pos = m.end()
        raw = m.group("battrs") or m.group("pattrs") or ""
        attrs = {
            a.lower(): html.unescape(b if b is not None and c is None else c or b or "")
            for a, b, c in _ATTR.findall(raw)
        }
        if m.group("battrs") is not None:
            if "time" not in attrs:
                raise SsmlError(
                    f'<break> at {_where(text, m.start())} needs a time, like time="1.5s"'
                )
            seconds = _seconds(attrs["time"], text, m.start())
            if seconds > SSML_MAX_BREAK:
                raise SsmlError(
                    f"<break time={attrs['time']!r}> at {_where(text, m.start())}"
                    f" is longer than {SSML_MAX_BREAK:g} s"
                )
            breaks += seconds
            if breaks > SSML_MAX_BREAKS:
                raise SsmlError(f"breaks add up to more than {SSML_MAX_BREAKS:g} s")
            items.append(Item("break", start=m.start(), end=m.end(), style=style, seconds=seconds))
            continue
        alphabet = (attrs.get("alphabet") or "ipa").lower()
        ph = attrs.get("ph", "")
        try:
            ipa = arpabet_to_ipa(ph) if alphabet in ("cmu-arpabet", "arpabet") else ph
            if alphabet not in ("ipa", "cmu-arpabet", "arpabet"):
                raise SsmlError(
                    f"<phoneme alphabet={alphabet!r}> at "
                    f"{_where(text, m.start())}: use 'ipa' or 'cmu-arpabet'"
                )
            check_ipa(ipa)
        except (PhonemeError, SsmlError) as exc:
            raise SsmlError(f"<phoneme> at {_where(text, m.start())}: {exc}") from None
        items.append(Item("phonemes", ipa, m.start(), m.end(), style, written=m.group("word")))
    if pos < len(text):
        items.append(Item("text", text[pos:], pos, len(text), style))
    return items
