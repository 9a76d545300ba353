"""Hume Octave framing: one generation's events become snippets and chunk messages.

Hume groups audio into snippets (a sentence each, or an utterance each with
``split_utterances=false``), numbers chunks within a snippet and flags the
last one, and with ``strip_headers=false`` makes every WAV chunk a file of
its own. The pipeline knows none of that; this module only re-frames its
events. A chunk is held until the next one (or the snippet's end) arrives so
it can carry ``is_last_chunk``; the pipeline keeps early chunks small, so
that costs about a millisecond.
"""

from __future__ import annotations

import base64
import contextlib
import uuid
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from orate.audio.encoder import WAV_HEADER_BYTES, wav_header
from orate.speech.pipeline import Speech


@dataclass
class Snippet:
    id: str
    text: str
    utterance_index: int
    audio: bytearray = field(default_factory=bytearray)  # its payload (no WAV header)
    timestamps: list[dict[str, Any]] = field(default_factory=list)
    chunks: int = 0


@dataclass
class Chunk:
    """One audio chunk as Hume sends it: the JSON object and the raw bytes it carries."""

    message: dict[str, Any]
    data: bytes


@dataclass
class TimestampFrame:
    message: dict[str, Any]


def hume_timestamp(t: Any) -> dict[str, Any]:
    return {"text": t.text, "time": {"begin": round(t.start), "end": round(t.end)}, "type": t.type}


def _snippet_plan(speech: Speech, split: bool) -> list[tuple[str, int, int]]:
    """(text, utterance index, number of sentences) of each snippet, in order."""
    plan = speech.plan
    out: list[tuple[str, int, int]] = []
    for seg_index, segment in enumerate(plan.job.segments):
        utt = plan.segment_utterances[seg_index] if plan.segment_utterances else seg_index
        if split:
            out += [(plan.job.text[s:e], utt, 1) for s, e in segment.sentences]
        elif segment.sentences:
            out.append((plan.request.utterances[utt].text, utt, len(segment.sentences)))
    return out


class HumeGeneration:
    """Re-frames one generation; iterate ``frames()``, then read snippets and totals.

    ``keep`` keeps the audio (whole and per snippet) for the responses that answer with
    files; streams pass each chunk on and keep nothing, so their memory stays bounded.
    """

    def __init__(
        self,
        speech: Speech,
        request_id: str,
        *,
        split: bool,
        strip_headers: bool,
        keep: bool = False,
    ) -> None:
        self.speech = speech
        self.request_id = request_id
        self.generation_id = speech.id
        self.format = speech.plan.format.name
        self.rate = speech.plan.sample_rate
        self.strip_headers = strip_headers
        self.snippets = [
            Snippet(str(uuid.uuid4()), text, utt) for text, utt, _ in _snippet_plan(speech, split)
        ]
        self._sizes = [n for _, _, n in _snippet_plan(speech, split)]
        self.keep = keep
        self.payload = bytearray()  # the whole generation, without a WAV header (keep only)
        self.duration = 0.0
        self._sent_header = False

    def whole_file(self) -> bytes:
        """The generation as one file (exact WAV sizes)."""
        if self.format == "wav":
            return wav_header(self.rate, len(self.payload)) + bytes(self.payload)
        return bytes(self.payload)

    def snippet_file(self, snippet: Snippet) -> bytes:
        if self.format == "wav":
            return wav_header(self.rate, len(snippet.audio)) + bytes(snippet.audio)
        return bytes(snippet.audio)

    def _wire(self, data: bytes) -> bytes:
        """What one chunk carries: its own WAV file, or the next piece of one file."""
        if self.format != "wav":
            return data
        if not self.strip_headers:
            return wav_header(self.rate, len(data)) + data
        if not self._sent_header:
            self._sent_header = True
            return wav_header(self.rate) + data
        return data

    def _chunk(self, snippet: Snippet, data: bytes, last: bool) -> Chunk:
        wire = self._wire(data)
        message = {
            "type": "audio",
            "audio": base64.b64encode(wire).decode(),
            "audio_format": self.format,
            "chunk_index": snippet.chunks,
            "generation_id": self.generation_id,
            "is_last_chunk": last,
            "request_id": self.request_id,
            "snippet_id": snippet.id,
            "text": snippet.text,
            "transcribed_text": None,
            "utterance_index": snippet.utterance_index,
            "snippet": None,
        }
        snippet.chunks += 1
        return Chunk(message, wire)

    async def frames(self) -> AsyncGenerator[Chunk | TimestampFrame, None]:
        """The generation as Hume frames; closing this stops the synthesis behind it."""
        try:
            async for frame in self._frames():
                yield frame
        finally:
            with contextlib.suppress(Exception):
                await self.speech.events.aclose()

    async def _frames(self) -> AsyncIterator[Chunk | TimestampFrame]:
        index = 0  # current snippet
        sentences_left = self._sizes[0] if self._sizes else 0
        pending: bytes | None = None
        stripped = self.format != "wav"
        async for event in self.speech.events:
            if event.kind == "audio":
                data = event.audio
                if not stripped:  # the pipeline's stream header: Hume frames its own
                    data, stripped = data[WAV_HEADER_BYTES:], True
                if not data:
                    continue
                snippet = self.snippets[min(index, len(self.snippets) - 1)]
                if self.keep:
                    self.payload += data
                    snippet.audio += data
                if pending is not None:
                    yield self._chunk(snippet, pending, False)
                pending = data
            elif event.kind == "timestamps" and self.snippets:
                snippet = self.snippets[min(index, len(self.snippets) - 1)]
                for t in event.timestamps:
                    stamp = hume_timestamp(t)
                    snippet.timestamps.append(stamp)
                    yield TimestampFrame(
                        {
                            "type": "timestamp",
                            "generation_id": self.generation_id,
                            "request_id": self.request_id,
                            "snippet_id": snippet.id,
                            "timestamp": stamp,
                        }
                    )
            elif event.kind == "sentence":
                sentences_left -= 1
                if sentences_left == 0 and index < len(self.snippets) - 1:
                    yield self._chunk(self.snippets[index], pending or b"", True)
                    pending = None
                    index += 1
                    sentences_left = self._sizes[index]
            elif event.kind == "done":
                self.duration = float(event.info.get("duration", 0.0))
        if self.snippets:
            yield self._chunk(
                self.snippets[min(index, len(self.snippets) - 1)], pending or b"", True
            )
