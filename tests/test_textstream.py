"""The shared incremental-text session: sentences leave as soon as they are complete,
in order, with the settings in force when they were taken, and every bound holds."""

from __future__ import annotations

import asyncio

import pytest

from orate.speech.textstream import TextStream, TextStreamOverflow

pytestmark = pytest.mark.fast  # in-process only: see the fast tier in tests/conftest.py


@pytest.mark.asyncio
async def test_sentences_leave_as_completed_in_order_with_their_settings() -> None:
    spoken: list[tuple[str, str]] = []
    first = asyncio.Event()

    async def speak(text: str, voice: str) -> None:
        spoken.append((text, voice))
        first.set()

    stream: TextStream[str] = TextStream(speak)
    text = "Hello there. How are you today? Fine"
    for i in range(0, len(text), 3):  # as an LLM writes: a few characters at a time
        stream.write(text[i : i + 3], "a" if i < 15 else "b")
    await asyncio.wait_for(first.wait(), 30)
    assert spoken[0] == ("Hello there. ", "a")  # spoken before the stream ended
    stream.flush("c")
    await asyncio.wait_for(stream.finish(), 30)
    assert [t for t, _ in spoken] == ["Hello there. ", "How are you today? ", "Fine"]
    assert [v for _, v in spoken] == ["a", "b", "c"]
    assert stream.buffered == ""


@pytest.mark.asyncio
async def test_whitespace_only_pieces_are_not_spoken() -> None:
    spoken: list[str] = []

    async def speak(text: str, _: None) -> None:
        spoken.append(text)

    stream: TextStream[None] = TextStream(speak)
    assert stream.flush(None) == []
    stream.write("   ", None)
    assert stream.flush(None) == []
    await asyncio.wait_for(stream.finish(), 30)
    assert spoken == []


@pytest.mark.asyncio
async def test_buffer_without_sentence_end_is_bounded() -> None:
    async def speak(text: str, _: None) -> None:
        return None

    stream: TextStream[None] = TextStream(speak, max_buffer=100)
    stream.write("x" * 100, None)
    with pytest.raises(TextStreamOverflow) as info:
        stream.write("x", None)
    assert "flush" in info.value.message
    await stream.aclose()


@pytest.mark.asyncio
async def test_pending_pieces_are_bounded_while_speech_is_slow() -> None:
    release = asyncio.Event()

    async def speak(text: str, _: None) -> None:
        await release.wait()

    stream: TextStream[None] = TextStream(speak, max_pending=2)
    stream.flush(None)
    for i in range(3):  # one taken by the speaker (once it runs), two waiting
        stream.write(f"Sentence {i}. ", None)
        stream.flush(None)
        await asyncio.sleep(0)
    with pytest.raises(TextStreamOverflow):
        stream.write("One more. ", None)
        stream.flush(None)
    release.set()
    await stream.aclose()


@pytest.mark.asyncio
async def test_a_failing_piece_stops_the_session_and_says_why() -> None:
    async def speak(text: str, _: None) -> None:
        raise RuntimeError("engine broke")

    stream: TextStream[None] = TextStream(speak)
    stream.flush(None)
    stream.write("Boom.", None)
    stream.flush(None)
    with pytest.raises(RuntimeError, match="engine broke"):
        await asyncio.wait_for(stream.task, 30)  # a deadline: it ends at once
    await stream.aclose()
