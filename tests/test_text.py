"""Text planning and timestamp mapping, without an engine."""

from __future__ import annotations

import pytest

from orate.engines.base import EngineEvent
from orate.engines.words import Tokens, word_text
from orate.runtime.timestamps import sentence_timestamps
from orate.speech.ssml import check_ssml, is_ssml
from orate.speech.text import TextError, normalize, split_sentences

pytestmark = pytest.mark.fast  # in-process only: see the fast tier in tests/conftest.py


def spans_text(text: str) -> list[str]:
    return [text[s:e] for s, e in split_sentences(text)]


def test_sentences_split_on_terminal_punctuation() -> None:
    text = "Hello there. How are you? I'm fine!  Thanks…\n\nNew paragraph"
    assert spans_text(text) == [
        "Hello there.",
        "How are you?",
        "I'm fine!",
        "Thanks…",
        "New paragraph",
    ]


def test_abbreviations_and_initials_do_not_end_sentences() -> None:
    text = "Dr. Smith met Mr. J. Doe at 3.5 km from St. Paul. Then they left."
    assert spans_text(text) == [
        "Dr. Smith met Mr. J. Doe at 3.5 km from St. Paul.",
        "Then they left.",
    ]


def test_quotes_stay_with_their_sentence() -> None:
    assert spans_text('He said "stop." She ran.') == ['He said "stop."', "She ran."]


def test_long_sentence_is_cut_at_clauses_within_the_limit() -> None:
    text = ", ".join(["word " * 8] * 20)
    spans = split_sentences(text, limit=100)
    assert all(e - s <= 100 for s, e in spans)
    assert "".join(text[s:e] for s, e in spans).replace(" ", "") == text.replace(" ", "")


def test_punctuation_only_and_blank_spans_are_dropped() -> None:
    assert split_sentences("   ...  !!! ") == []
    assert spans_text("Hi. ... Bye.") == ["Hi.", "Bye."]


def test_normalize_keeps_length_and_replaces_controls() -> None:
    text = "a\x00b\x07c\ud800d\ne\tf"
    out = normalize(text)
    assert len(out) == len(text)
    assert out == "a b c d\ne\tf"
    out.encode("utf-8")  # no lone surrogate survives


def test_emoji_and_non_latin_text_are_kept() -> None:
    text = "Привет мир. 😀 你好。"
    assert normalize(text) == text
    assert len(split_sentences(text)) == 2


@pytest.mark.parametrize(
    "ssml,code",
    [
        ('<!DOCTYPE speak [<!ENTITY a "x">]><speak>&a;</speak>', "ssml_dtd"),
        ("<speak>unclosed", "invalid_ssml"),
        ("<speak>" + "<prosody>" * 40 + "x" + "</prosody>" * 40 + "</speak>", "ssml_too_deep"),
        ("<speak>" + '<break time="10s"/>' * 7 + "</speak>", "ssml_breaks"),
        ("<speaker>hi</speaker>", "invalid_ssml"),
    ],
)
def test_bad_ssml_is_refused_with_a_reason(ssml: str, code: str) -> None:
    with pytest.raises(TextError) as info:
        check_ssml(ssml)
    assert info.value.code == code
    assert str(info.value)


def test_good_ssml_passes() -> None:
    ssml = '<speak>Hello <break time="300ms"/> <emphasis>world</emphasis>.</speak>'
    assert is_ssml("  " + ssml)
    assert is_ssml('<?xml version="1.0"?>' + ssml)
    assert is_ssml("<!DOCTYPE speak>" + ssml)
    assert not is_ssml("<notssml> speak")
    check_ssml(ssml)


def test_word_text_strips_surrounding_punctuation_only() -> None:
    assert word_text('("hello,")') == "hello"
    assert word_text("o'clock.") == "o'clock"
    assert word_text("...") == "..."
    assert word_text("😀") == "😀"


def test_events_snap_to_the_callers_tokens() -> None:
    # espeak reports "o'clock" as two words and skips the space; both map to one token
    text = "At 5 o'clock, go."
    events = [
        EngineEvent("word", 0, 2, 0.0),
        EngineEvent("phoneme", 0, 0, 0.0, "a"),
        EngineEvent("word", 3, 1, 200.0),
        EngineEvent("phoneme", 3, 0, 200.0, "f"),
        EngineEvent("word", 5, 1, 400.0),
        EngineEvent("phoneme", 5, 0, 400.0, "ə"),
        EngineEvent("word", 7, 5, 500.0),
        EngineEvent("phoneme", 7, 0, 500.0, "k"),
        EngineEvent("phoneme", 13, 0, 800.0, ""),  # the pause at the comma
        EngineEvent("word", 14, 2, 900.0),
        EngineEvent("phoneme", 14, 0, 900.0, "g"),
    ]
    stamps = sentence_timestamps(
        text, 0, len(text), Tokens.of(text), events, 1200.0, frozenset({"word", "phoneme"})
    )
    words = [(t.text, t.start, t.end) for t in stamps if t.type == "word"]
    assert words == [("At", 0, 200), ("5", 200, 400), ("o'clock", 400, 800), ("go", 900, 1200)]
    phonemes = [(t.text, t.start, t.end) for t in stamps if t.type == "phoneme"]
    assert phonemes[0] == ("a", 0, 200) and phonemes[-1] == ("g", 900, 1200)
    first = next(t for t in stamps if t.type == "word" and t.text == "o'clock")
    assert text[first.char_start : first.char_end] == "o'clock,"


def test_words_the_engine_merged_still_get_their_share() -> None:
    text = "It was a cold day."
    events = [
        EngineEvent("word", 0, 2, 0.0),
        EngineEvent("word", 3, 3, 100.0),
        EngineEvent("phoneme", 3, 0, 100.0, "w"),
        EngineEvent("phoneme", 3, 0, 250.0, "ɐ"),
        EngineEvent("word", 9, 4, 300.0),
        EngineEvent("word", 14, 3, 500.0),
    ]
    stamps = sentence_timestamps(
        text, 0, len(text), Tokens.of(text), events, 700.0, frozenset({"word"})
    )
    assert [(t.text, round(t.start), round(t.end)) for t in stamps] == [
        ("It", 0, 100),
        ("was", 100, 250),
        ("a", 250, 300),
        ("cold", 300, 500),
        ("day", 500, 700),
    ]


def test_ssml_markup_is_not_tokenized_as_words() -> None:
    ssml = '<speak>Hi <break time="1s"/> there</speak>'
    tokens = Tokens.of(ssml, ssml=True)
    assert [ssml[s:e] for s, e in tokens.spans] == ["Hi", "there"]
