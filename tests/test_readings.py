"""Numbers, abbreviations and codes as people read them, per language and region.

One row per reading: what is written, the voice's language, what the text layer gives
the engine. The rows are the table of what the text layer covers; a sample of them is
also heard through every engine (tests/test_reading_audio.py).
"""

from __future__ import annotations

import time

import pytest

from orate.speech.normalize import normalize_text

pytestmark = pytest.mark.fast  # in-process only: see the fast tier in tests/conftest.py

READINGS: list[tuple[str, str, str, str]] = [
    # (kind, language, written, read)
    # telephone numbers
    ("phone", "en-us", "Call 555-0142 now.", "Call five five five, zero one four two now."),
    (
        "phone",
        "en-us",
        "Call (555) 123-4567.",
        "Call five five five, one two three, four five six seven.",
    ),
    (
        "phone",
        "en-us",
        "Dial 555-123-4567 ext. 89.",
        "Dial five five five, one two three, four five six seven, extension eight nine.",
    ),
    (
        "phone",
        "en-us",
        "Dial 555-123-4567 x12 today.",
        "Dial five five five, one two three, four five six seven, extension one two today.",
    ),
    (
        "phone",
        "en-us",
        "Call 1-800-555-0199.",
        "Call one, eight zero zero, five five five, zero one nine nine.",
    ),
    (
        "phone",
        "en-gb",
        "Ring +44 20 7946 0958.",
        "Ring plus four four, two zero, seven nine four six, zero nine five eight.",
    ),
    # fractions and mixed numbers, with units
    ("fraction", "en-us", "Add 1/2 cup.", "Add one half cup."),
    ("fraction", "en-us", "Add ½ cup.", "Add one half cup."),
    ("fraction", "en-us", "It weighs 3½ kg.", "It weighs three and a half kilograms."),
    ("fraction", "en-us", "Walk 2 3/4 miles.", "Walk two and three quarters miles."),
    ("fraction", "en-us", "Use 3/4 of it.", "Use three quarters of it."),
    ("fraction", "en-us", "Only 2/3 left.", "Only two thirds left."),
    ("fraction", "en-us", "About 1/2 kg.", "About half a kilogram."),
    ("fraction", "en-us", "Drive 1½ km/h.", "Drive one and a half kilometers per hour."),
    ("fraction", "en-us", "Open 24/7.", "Open twenty-four seven."),
    # signs
    ("sign", "en-us", "It was −5°F.", "It was minus five degrees Fahrenheit."),
    ("sign", "en-us", "It was -5°F.", "It was minus five degrees Fahrenheit."),
    ("sign", "en-us", "Within ±2 mm.", "Within plus or minus two millimeters."),
    ("sign", "en-us", "It is ≈3 kg.", "It is approximately three kilograms."),
    ("sign", "en-us", "A gain of +5 points.", "A gain of plus five points."),
    ("sign", "en-us", "It fell −12%.", "It fell minus twelve percent."),
    # ranges
    ("range", "en-us", "Pages 10–20.", "Pages ten to twenty."),
    ("range", "en-us", "Open 9am–5pm daily.", "Open nine A M to five P M daily."),
    ("range", "en-us", "From 1990–95 only.", "From nineteen ninety to ninety-five only."),
    (
        "range",
        "en-us",
        "From 1990–1995 only.",
        "From nineteen ninety to nineteen ninety-five only.",
    ),
    ("range", "en-us", "Ages 10-12 welcome.", "Ages ten to twelve welcome."),
    ("range", "en-us", "Up 5–10% today.", "Up five to ten percent today."),
    # dates: month first in the US, day first where the region writes it so, ISO everywhere
    ("date", "en-us", "Due 03/04/2025.", "Due March fourth, twenty twenty-five."),
    ("date", "en-gb", "Due 03/04/2025.", "Due the third of April, twenty twenty-five."),
    ("date", "en-au", "Due 03/04/2025.", "Due the third of April, twenty twenty-five."),
    ("date", "en-in", "Due 03/04/2025.", "Due the third of April, twenty twenty-five."),
    ("date", "en-ie", "Due 03/04/2025.", "Due the third of April, twenty twenty-five."),
    ("date", "en-us", "Due 2025-04-03.", "Due April third, twenty twenty-five."),
    ("date", "en-gb", "Due 2025-04-03.", "Due the third of April, twenty twenty-five."),
    (
        "date",
        "de",
        "Am 03.04.2025 geht es los.",
        "Am dritten April zweitausendfünfundzwanzig geht es los.",
    ),
    ("date", "fr", "Le 01/04/2025 arrive.", "Le premier avril deux mille vingt-cinq arrive."),
    ("date", "es", "El 03/04/2025 llega.", "El tres de abril de dos mil veinticinco llega."),
    ("date", "de", "Stand 2025-04-03.", "Stand dritten April zweitausendfünfundzwanzig."),
    # versions
    (
        "version",
        "en-us",
        "Install v2.3.1 today.",
        "Install version two point three point one today.",
    ),
    (
        "version",
        "en-us",
        "Version 2.3.1 fixed 17 bugs.",
        "Version two point three point one fixed seventeen bugs.",
    ),
    ("version", "en-us", "Try 2.0.1-beta now.", "Try two point zero point one beta now."),
    ("version", "en-us", "Try v3.0-rc.1 now.", "Try version three point zero R C one now."),
    ("version", "en-us", "Version v2 is out.", "Version v2 is out."),
    # times
    ("time", "en-us", "Meet at 3:30 pm.", "Meet at three thirty P M."),
    ("time", "en-us", "Meet at 9am sharp.", "Meet at nine A M sharp."),
    ("time", "en-us", "Meet at 7 p.m. tomorrow.", "Meet at seven P M tomorrow."),
    ("time", "en-us", "It starts at 10:00.", "It starts at ten o'clock."),
    # currencies, in the order each language writes them
    ("money", "en-us", "It costs $4.50 today.", "It costs four dollars fifty today."),
    ("money", "en-gb", "It is £3.20 each.", "It is three pounds twenty each."),
    (
        "money",
        "de",
        "Es kostet €1.234,56.",
        "Es kostet eintausendzweihundertvierunddreißig Euro und sechsundfünfzig Cent.",
    ),
    (
        "money",
        "de",
        "Es kostet 1.234,56 €.",
        "Es kostet eintausendzweihundertvierunddreißig Euro und sechsundfünfzig Cent.",
    ),
    ("money", "fr", "Prix 12,50 €.", "Prix douze euros et cinquante centimes."),
    ("number", "de", "Es kamen 1.000 Leute.", "Es kamen eintausend Leute."),
    ("number", "de", "Es sind 3,5 Liter.", "Es sind drei Komma fünf Liter."),
    # abbreviations
    ("abbr", "en-us", "Call ext. 5 now.", "Call extension five now."),
    ("abbr", "en-us", "It is approx. 5 km.", "It is approximately five kilometers."),
    ("abbr", "en-us", "Cats vs. dogs.", "Cats versus dogs."),
    ("abbr", "en-us", "Fruit, e.g. apples.", "Fruit, for example apples."),
    ("abbr", "en-us", "Apples, pears, etc.", "Apples, pears, et cetera."),
    ("abbr", "en-us", "Open Tue. and Thurs. only.", "Open Tuesday and Thursday only."),
    ("abbr", "en-us", "Closed on Sun.", "Closed on Sunday."),
    ("abbr", "en-us", "Due Sept. 5.", "Due September fifth."),
    ("abbr", "en-us", "Since Aug. last year.", "Since August last year."),
    ("abbr", "en-us", "Dr. Smith lives on Elm Dr. now.", "Doctor Smith lives on Elm Drive now."),
    (
        "abbr",
        "en-us",
        "St. John lives on Main St. today.",
        "Saint John lives on Main Street today.",
    ),
    (
        "abbr",
        "en-gb",
        "Meet me at 221B Baker St., London.",
        "Meet me at two twenty-one B Baker Street, London.",
    ),
    # acronyms
    ("acronym", "en-us", "Revenue grew 5% YoY.", "Revenue grew five percent year over year."),
    ("acronym", "en-us", "In FY2024 we grew.", "In F Y twenty twenty-four we grew."),
    ("acronym", "en-us", "In FY24 we grew.", "In F Y twenty-four we grew."),
    ("acronym", "en-us", "Results for Q3 are in.", "Results for Q three are in."),
    ("acronym", "en-us", "NASA launched it.", "Nasa launched it."),
    ("acronym", "en-us", "I write SQL daily.", "I write S Q L daily."),
    ("acronym", "en-us", "The API is up.", "The A P I is up."),
    ("acronym", "en-us", "The sun is up.", "The sun is up."),
    # ordinals
    ("ordinal", "en-us", "She came 2nd.", "She came second."),
    ("ordinal", "en-us", "The 21st century.", "The twenty-first century."),
    # alphanumerics and postcodes
    ("alnum", "en-us", "Flat 4A is free.", "Flat four A is free."),
    ("alnum", "en-gb", "Send it to SW1A 1AA.", "Send it to S W one A, one A A."),
    ("alnum", "en-gb", "Send it to EC1A 1BB today.", "Send it to E C one A, one B B today."),
]


@pytest.mark.parametrize(
    ("kind", "language", "written", "read"),
    READINGS,
    ids=[f"{r[0]}-{r[1]}-{r[2]}" for r in READINGS],
)
def test_reading(kind: str, language: str, written: str, read: str) -> None:
    assert normalize_text(written, language).text == read


def test_every_kind_the_text_layer_covers_has_rows() -> None:
    kinds = {r[0] for r in READINGS}
    assert kinds >= {
        "phone",
        "fraction",
        "sign",
        "range",
        "date",
        "version",
        "time",
        "money",
        "abbr",
        "acronym",
        "ordinal",
        "alnum",
    }


@pytest.mark.parametrize(
    ("written", "word", "source"),
    [
        ("It was −5°F outside.", "minus", "−"),
        ("It was −5°F outside.", "Fahrenheit", "5°F"),
        ("Version 2.3.1 fixed 17 bugs.", "three", "2.3.1"),
        ("Meet at 221B Baker St., London.", "Street", "St."),
        ("Call 555-0142 ext. 12 now.", "extension", "555-0142 ext. 12"),
        ("Walk 2 3/4 mi today.", "quarters", "2 3/4 mi"),
    ],
)
def test_each_spoken_word_points_at_what_was_written(written: str, word: str, source: str) -> None:
    norm = normalize_text(written, "en-us")
    i = norm.text.index(word)
    s, e = norm.source_span(i, i + len(word))
    assert written[s:e] == source


HOSTILE = {
    "digits": "1" * 200_000,
    "fractions": "1/2 " * 50_000,
    "nested fractions": "1/2/3/4/5/6/7/8/9 " * 10_000,
    "vulgar": "3½½½ " * 40_000,
    "signs": "−±≈" * 60_000 + "5",
    "ranges": "1–2–3–4–5–" * 20_000,
    "versions": "v1.2.3.4.5.6.7 " * 12_000,
    "huge number": "9" * 100_000,
    "acronyms": "YoY SQL " * 25_000,
    "abbreviations": "Tue. ext. " * 20_000,
    "phone": "555-0142 x1 " * 16_000,
}


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_text_is_linear(name: str) -> None:
    """Four times the input costs about four times the CPU (a quadratic scan would cost
    16x, a backtracking pattern far more)."""
    big = HOSTILE[name]
    small = big[: len(big) // 4]

    def cpu(text: str) -> float:
        best = 1e9
        for _ in range(2):
            t = time.process_time()
            normalize_text(text, "en-us")
            best = min(best, time.process_time() - t)
        return best

    assert cpu(big) < 10 * cpu(small) + 0.05
