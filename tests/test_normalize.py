"""Text normalization: what a listener hears for what people write, and the way back.

Each case is (written, read). The reading is what the engine is given; the map back
is checked separately: every rewritten span points at the caller's own characters.
"""

from __future__ import annotations

import time

import pytest

from orate.speech.normalize import cardinal, normalize_text, num2words_language, ordinal, year

pytestmark = pytest.mark.fast  # in-process only: see the fast tier in tests/conftest.py

CASES = [
    # cardinals, decimals, negatives
    ("I have 3 cats.", "I have three cats."),
    ("It was 12,345 people.", "It was twelve thousand three hundred forty-five people."),
    ("That is 1000000.", "That is one million."),
    ("Pi is 3.14159.", "Pi is three point one four one five nine."),
    ("It was -5 outside.", "It was minus five outside."),
    ("Add 0.5 cups.", "Add zero point five cups."),
    ("We sold 101 units.", "We sold one hundred one units."),
    (
        "Code 1234567890123456789 now.",
        "Code one two three four five six seven eight nine zero one two three four five six "
        "seven eight nine now.",
    ),
    ("There were 999 of them.", "There were nine hundred ninety-nine of them."),
    ("A 40 minute wait.", "A forty minute wait."),
    # ordinals
    ("She came 2nd.", "She came second."),
    ("The 21st century.", "The twenty-first century."),
    ("On the 3rd floor.", "On the third floor."),
    ("His 100th birthday.", "His one hundredth birthday."),
    ("The 12th man.", "The twelfth man."),
    ("The 42nd street.", "The forty-second street."),
    # money
    ("It costs $4.50 today.", "It costs four dollars fifty today."),
    ("Only $1 left.", "Only one dollar left."),
    ("Just $0.99 now.", "Just ninety-nine cents now."),
    ("It was $1,000 flat.", "It was one thousand dollars flat."),
    ("A $2.5 million deal.", "A two point five million dollars deal."),
    ("Pay €5 now.", "Pay five euros now."),
    ("It is £3.20 each.", "It is three pounds twenty each."),
    ("About ¥100 total.", "About one hundred yen total."),
    ("Raised $3bn last year.", "Raised three billion dollars last year."),
    # percentages
    ("Up 50% today.", "Up fifty percent today."),
    ("A 3.5% rate.", "A three point five percent rate."),
    ("Fell 12 % overnight.", "Fell twelve percent overnight."),
    # times
    ("Meet at 3:30 pm.", "Meet at three thirty P M."),
    ("Meet at 3:30 p.m. tomorrow.", "Meet at three thirty P M tomorrow."),
    ("It starts at 10:00.", "It starts at ten o'clock."),
    ("Leave at 7:05 am sharp.", "Leave at seven oh five A M sharp."),
    ("The train at 15:45 is late.", "The train at fifteen forty-five is late."),
    # dates, years, decades
    ("On 2024-03-05 we met.", "On March fifth, twenty twenty-four we met."),
    ("Due 12/25/2025 please.", "Due December twenty-fifth, twenty twenty-five please."),
    ("On March 5, 2024 we met.", "On March fifth, twenty twenty-four we met."),
    ("Born Jan 1st in Ohio.", "Born January first in Ohio."),
    ("Up 50% in 2024.", "Up fifty percent in twenty twenty-four."),
    ("It was 1990 then.", "It was nineteen ninety then."),
    ("Built in 1905.", "Built in nineteen oh five."),
    ("Back in 2005.", "Back in two thousand five."),
    ("Since 1900 at least.", "Since nineteen hundred at least."),
    ("The 1990s were fun.", "The nineteen nineties were fun."),
    ("In the '90s.", "In the nineties."),
    ("The 2000s began.", "The two thousands began."),
    # phone numbers
    ("Call +1 555 0100 now.", "Call plus one, five five five, zero one zero zero now."),
    ("Call (555) 123-4567.", "Call five five five, one two three, four five six seven."),
    ("Dial 555-123-4567 today.", "Dial five five five, one two three, four five six seven today."),
    # units
    ("It is 5 km away.", "It is five kilometers away."),
    ("1 kg and 2 kg.", "one kilogram and two kilograms."),
    ("Temperature 21°C.", "Temperature twenty-one degrees Celsius."),
    ("A 16 GB card.", "A sixteen gigabytes card."),
    ("Going 60 mph.", "Going sixty miles per hour."),
    ("Weighs 3.5 lbs.", "Weighs three point five pounds."),
    # abbreviations
    ("Dr. Smith lives on Elm Dr. now.", "Doctor Smith lives on Elm Drive now."),
    ("St. John lives on Main St. today.", "Saint John lives on Main Street today."),
    ("Mr. and Mrs. Jones.", "Mister and Missus Jones."),
    ("Apples, pears, etc.", "Apples, pears, et cetera."),
    ("Fruit, e.g. apples.", "Fruit, for example apples."),
    ("Cats vs. dogs.", "Cats versus dogs."),
    ("Room #12 and No. 5.", "Room number twelve and Number five."),
    # URLs and e-mail
    ("Visit https://example.com/docs today.", "Visit example dot com slash docs today."),
    ("See www.orate.dev now.", "See www dot orate dot dev now."),
    ("Mail john.doe@example.com please.", "Mail john dot doe at example dot com please."),
    # Roman numerals in names
    ("Henry VIII had six wives.", "Henry the eighth had six wives."),
    ("Louis XIV was king.", "Louis the fourteenth was king."),
    ("World War II ended.", "World War two ended."),
    ("Henry V won.", "Henry the fifth won."),
    # symbols and things left alone
    ("Salt & pepper.", "Salt and pepper."),
    ("Nothing to change here.", "Nothing to change here."),
    ("I went home.", "I went home."),
    ("Version v2 is out.", "Version v2 is out."),
]


@pytest.mark.parametrize(("written", "read"), CASES, ids=[c[0] for c in CASES])
def test_reads_as_a_listener_would(written: str, read: str) -> None:
    assert normalize_text(written).text == read


def test_the_table_is_large() -> None:
    assert len(CASES) >= 60


def test_every_spoken_piece_points_at_the_callers_characters() -> None:
    src = "It costs $4.50 at 3:30 pm, says Dr. Who."
    norm = normalize_text(src)
    text = norm.text
    for word in ("four", "dollars", "fifty"):
        i = text.index(word)
        assert norm.source_span(i, i + len(word)) == (9, 14)  # "$4.50"
        assert src[9:14] == "$4.50"
    i = text.index("thirty")
    s, e = norm.source_span(i, i + len("thirty"))
    assert src[s:e] == "3:30 pm"
    i = text.index("Doctor")
    s, e = norm.source_span(i, i + len("Doctor"))
    assert src[s:e] == "Dr."
    # untouched words map to themselves, before and after rewrites
    for word in ("It", "costs", "says", "Who"):
        i, j = text.index(word), src.index(word)
        assert norm.source_span(i, i + len(word)) == (j, j + len(word))


def test_unchanged_text_is_returned_as_is() -> None:
    norm = normalize_text("plain words only")
    assert not norm.changed and norm.text == norm.source
    assert norm.source_span(6, 11) == (6, 11)


@pytest.mark.parametrize(
    ("language", "written", "read"),
    [
        ("fr-fr", "J'ai 21 ans.", "J'ai vingt et un ans."),
        ("de", "Es sind 42 Tage.", "Es sind zweiundvierzig Tage."),
        ("es", "Son 3,5 litros.", "Son tres punto cinco litros."),
        ("pt-br", "Tenho 2 gatos.", "Tenho dois gatos."),
    ],
)
def test_other_languages_read_their_numbers(language: str, written: str, read: str) -> None:
    assert normalize_text(written, language).text == read


def test_a_language_num2words_does_not_know_is_left_alone() -> None:
    assert num2words_language("zz") is None
    assert normalize_text("x 12 y", "zz").text == "x 12 y"


def test_number_words() -> None:
    assert cardinal(0) == "zero"
    assert cardinal(1_000_001) == "one million one"
    assert ordinal(23) == "twenty-third"
    assert ordinal(90) == "ninetieth"
    assert year(2024) == "twenty twenty-four"
    assert year(2000) == "two thousand"


HOSTILE = [
    "1" * 200_000,
    "1," * 100_000,
    "$1," * 66_000,
    "a@" * 100_000,
    "a." * 100_000 + "@b",
    "http://" + "a" * 200_000,
    "+1 " * 66_000,
    "1:" * 100_000,
    "(555 " * 40_000,
    "1." * 100_000,
    "Dr. " * 50_000,
    "Henry " * 33_000 + "VIII",
    " ".join(str(i) for i in range(30_000)),
]


@pytest.mark.parametrize("text", HOSTILE, ids=[t[:12] for t in HOSTILE])
def test_hostile_input_is_linear(text: str) -> None:
    """No pathological backtracking: 200 kB of worst cases cost about four times the CPU of
    their last quarter (a quadratic scan would cost 16x, a ReDoS far more). A ratio of CPU
    in one process, not a time limit; benchmarks/text_costs.py reports the real figures."""
    assert _cpu(text, runs=1) < 10 * _cpu(text[len(text) * 3 // 4 :]) + 0.02


def _cpu(text: str, runs: int = 3) -> float:
    """The least CPU of ``runs`` normalizations of ``text`` (noise only ever adds)."""
    best = 1e9
    for _ in range(runs):
        t = time.process_time()
        normalize_text(text)
        best = min(best, time.process_time() - t)
    return best


@pytest.mark.parametrize("unit", ["+1 ", "1,", "1:", "a.", "(555 ", "Dr. ", "a@", "$1 "])
def test_cost_grows_linearly(unit: str) -> None:
    """Four times the input costs about four times the CPU (a quadratic scan would cost
    16x, a backtracking pattern far more): a check that survives a loaded machine."""
    small = unit * (40_000 // len(unit))
    assert _cpu(small * 4) < 10 * _cpu(small) + 0.02  # noisy neighbours: a loose bound
