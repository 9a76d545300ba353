"""Render one planned request: engine → audio stage → encoder, emitting as it goes.

This is the CPU-bound half of the pipeline. It runs inside an engine worker
process (runtime/pool.py) for the server, or in-process for ``orate say``;
either way it only calls ``emit``, so it cannot tell the difference. Encoded
bytes are pushed from inside the engine's audio callback: the first chunk
leaves immediately, later ones are coalesced into a few kilobytes per message
so that a long text costs the server tens of messages, not thousands.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from orate.audio.encoder import Encoder, Resampler, TimeStretch, make_encoder
from orate.audio.formats import FORMATS
from orate.engines.base import Engine, EngineEvent, VoiceParams
from orate.engines.words import Tokens
from orate.runtime.events import EventKind
from orate.runtime.spoken import Spoken
from orate.runtime.timestamps import Timestamp, sentence_timestamps

COALESCE_BYTES = 256 * 1024

Emit = Callable[[EventKind, Any], None]


@dataclass(frozen=True)
class Segment:
    """A run of the text spoken with one voice and speed (an utterance, or a stretch of
    SSML with one prosody).

    ``sentences`` are spans of the caller's text; ``spoken``, when given, holds what the
    engine reads for each (normalized, lexicon, SSML) with the map back to those spans
    (``None`` for a sentence read as written). ``gaps`` are silences after each sentence
    and ``lead`` one before the first (SSML breaks); ``gain`` scales the PCM (SSML
    volume, the same on every engine); ``marks`` are SSML marks as (caller offset, name).
    """

    voice: VoiceParams
    sentences: tuple[tuple[int, int], ...]
    speed: float = 1.0
    trailing_silence: float = 0.0
    spoken: tuple[Spoken | None, ...] = ()
    gaps: tuple[float, ...] = ()
    lead: float = 0.0
    gain: float = 1.0
    marks: tuple[tuple[int, str], ...] = ()


@dataclass(frozen=True)
class RenderJob:
    """Everything a worker needs; plain data so it pickles cheaply."""

    text: str
    segments: tuple[Segment, ...]
    format: str
    sample_rate: int | None = None
    timestamps: frozenset[str] = field(default_factory=frozenset)
    ssml: bool = False
    bitrate: int | None = None
    whole_file: bool = False
    max_bytes: int | None = None  # stop with OutputTooLarge past this much encoded audio


class OutputTooLarge(RuntimeError):
    """The encoded audio passed the job's ``max_bytes`` (the estimate was too low)."""

    code = "output_too_large"


@dataclass
class RenderStats:
    samples: int = 0
    sample_rate: int = 0
    bytes: int = 0
    cancelled: bool = False

    @property
    def duration(self) -> float:
        return self.samples / self.sample_rate if self.sample_rate else 0.0


class _Feeder:
    """Batches PCM before the encoder: the first chunk goes straight in (first audio),
    later ones gather into blocks of up to a second, because a codec or resampler call
    per 60 ms chunk costs far more CPU than the same audio in larger blocks."""

    def __init__(self, encoder: Encoder, out: _Output, rate: int) -> None:
        self._encoder = encoder
        self._out = out
        self._parts: list[np.ndarray] = []
        self._held = 0
        self._block = 0
        # batching pays for codecs and for resampling (7x cheaper in 1 s blocks); WAV at
        # the engine's rate gains nothing from it, so its chunks pass straight through
        passthrough = encoder.format.codec is None and encoder.in_rate == encoder.out_rate
        self._max = 0 if passthrough else rate

    def add(self, pcm: np.ndarray) -> None:
        self._parts.append(pcm)
        self._held += len(pcm)
        if self._held >= self._block:
            self.flush()

    def flush(self) -> None:
        if not self._parts:
            return
        pcm = self._parts[0] if len(self._parts) == 1 else np.concatenate(self._parts)
        self._parts.clear()
        self._held = 0
        self._block = min(max(self._block * 4, self._max // 8), self._max)
        self._out.add(self._encoder.feed(pcm))


class _Output:
    """Coalesces encoded bytes into messages that grow from 4 kB to ``COALESCE_BYTES``.

    The first chunk is never held back and the next ones stay small, so a
    consumer that waits for the following chunk (to mark the last one of a
    snippet) waits about a millisecond; after that, messages grow fourfold,
    because every message costs a pipe write, a wake-up and an HTTP send,
    and the engine runs far ahead of playback anyway. Sentence ends flush.
    """

    def __init__(self, emit: Emit, max_bytes: int | None = None) -> None:
        self._emit = emit
        self._parts: list[bytes] = []  # joined once per message: one copy of each byte
        self._held = 0
        self._threshold = 0
        self.total = 0
        self._max = max_bytes

    def add(self, data: bytes) -> None:
        if not data:
            return
        self._parts.append(data)
        self._held += len(data)
        if self._held >= self._threshold:
            self.flush()

    def flush(self) -> None:
        if self._held:
            self.total += self._held
            if self._max is not None and self.total > self._max:
                raise OutputTooLarge(
                    f"the audio passed {self._max} bytes, the most this "
                    "request may produce (max_response_bytes)"
                )
            parts = self._parts
            one = len(parts) == 1 and type(parts[0]) is bytes  # (lameenc gives bytearrays)
            self._emit(EventKind.AUDIO, parts[0] if one else b"".join(parts))
            self._parts = []
            self._held = 0
            self._threshold = min(max(self._threshold * 4, 4096), COALESCE_BYTES)


def render(
    job: RenderJob,
    engines: Callable[[str], Engine],
    emit: Emit,
    should_stop: Callable[[], bool] = lambda: False,
) -> RenderStats:
    """Synthesize ``job`` and emit AUDIO, TIMESTAMPS, SENTENCE and finally DONE."""
    steps = render_steps(job, engines, emit, should_stop)
    while True:
        try:
            next(steps)
        except StopIteration as done:
            stats: RenderStats = done.value
            return stats


def render_steps(
    job: RenderJob,
    engines: Callable[[str], Engine],
    emit: Emit,
    should_stop: Callable[[], bool] = lambda: False,
) -> Generator[None, None, RenderStats]:
    """``render``, one sentence per step: it yields after each sentence's SENTENCE event.

    An engine worker interleaves the steps of several jobs (runtime/interleave.py), so a
    new request's first sentence need not wait for whole paragraphs queued before it.
    Between steps no engine call is in progress, so another job may use the engines
    (espeak-ng included) before this one goes on.
    """
    first_engine = engines(job.segments[0].voice.engine)
    in_rate = first_engine.sample_rate
    fmt = FORMATS[job.format]
    out_rate = fmt.output_rate(in_rate, job.sample_rate)
    encoder = make_encoder(
        job.format, in_rate, out_rate, bitrate=job.bitrate, whole_file=job.whole_file
    )
    out = _Output(emit, job.max_bytes)
    feeder = _Feeder(encoder, out, in_rate)
    stats = RenderStats(sample_rate=in_rate)
    tokens = Tokens.of(job.text, job.ssml) if job.timestamps else None
    over: list[OutputTooLarge] = []  # the cap, hit inside an engine's callback

    for seg_index, segment in enumerate(job.segments):
        engine = engines(segment.voice.engine)
        # a voice of another rate (an espeak-ng voice for French in a natural dialogue)
        # is resampled to the request's rate as it streams
        resample = Resampler(engine.sample_rate, in_rate) if engine.sample_rate != in_rate else None
        low, high = engine.speed_range
        engine_speed = min(max(segment.speed, low), high)
        stretch = (
            TimeStretch(in_rate, segment.speed / engine_speed)
            if not math.isclose(engine_speed, segment.speed)
            else None
        )
        scale = engine_speed / segment.speed  # audio time after stretching per engine ms

        if segment.lead > 0:
            _silence(segment.lead, in_rate, stats, feeder)
        gain = segment.gain
        for sent_index, (start, end) in enumerate(segment.sentences):
            sentence_start = stats.samples
            events: list[EngineEvent] = []
            spoken = segment.spoken[sent_index] if sent_index < len(segment.spoken) else None

            def sink(
                pcm: np.ndarray,
                evs: Sequence[EngineEvent],
                events: list[EngineEvent] = events,
                stretch: TimeStretch | None = stretch,
                spoken: Spoken | None = spoken,
                start: int = start,
                gain: float = gain,
                resample: Resampler | None = resample,
            ) -> bool:
                # called synchronously from inside engine.synthesize, chunk by chunk
                if should_stop():
                    return False
                if evs and tokens is not None:
                    events.extend(evs if spoken is None else _to_source(evs, spoken, start))
                if gain != 1.0:
                    pcm = np.clip(pcm.astype(np.float32) * gain, -32768, 32767).astype(np.int16)
                if stretch is not None:
                    pcm = stretch(pcm)
                if resample is not None:
                    pcm = resample(pcm).astype(np.int16, copy=False)
                if len(pcm):
                    stats.samples += len(pcm)
                    try:
                        feeder.add(pcm)
                    except OutputTooLarge as exc:
                        # an exception cannot cross the engine's C callback (ctypes would
                        # print it and carry on): stop the engine, raise after it returns
                        over.append(exc)
                        return False
                return True

            if spoken is not None and spoken.phonemes:
                result = engine.synthesize(
                    spoken.text, segment.voice, engine_speed, sink, phonemes=True
                )
            else:
                result = engine.synthesize(
                    spoken.text if spoken is not None else job.text[start:end],
                    segment.voice,
                    engine_speed,
                    sink,
                )
            if over:
                raise over[0]
            if result.stopped or should_stop():
                stats.cancelled = True
                return stats
            last = sent_index == len(segment.sentences) - 1
            if last:
                _tails(stretch, resample, stats, feeder)
            speech_end = stats.samples
            if last and segment.trailing_silence > 0:  # part of this utterance's last snippet
                _silence(segment.trailing_silence, in_rate, stats, feeder)
            if sent_index < len(segment.gaps) and segment.gaps[sent_index] > 0:
                _silence(segment.gaps[sent_index], in_rate, stats, feeder)
            feeder.flush()
            out.flush()  # the sentence's audio goes before its boundary marker
            start_ms = sentence_start * 1000 / in_rate
            end_ms = stats.samples * 1000 / in_rate
            if tokens is not None:
                spoken_ms = (speech_end - sentence_start) * 1000 / in_rate
                stamps = sentence_timestamps(
                    job.text, start, end, tokens, events, spoken_ms / scale, job.timestamps
                )
                stamps += _marks(segment, sent_index, start, end, stamps, spoken_ms / scale)
                if stamps:
                    emit(
                        EventKind.TIMESTAMPS, [t.shifted(start_ms, scale).to_dict() for t in stamps]
                    )
            emit(
                EventKind.SENTENCE,
                {
                    "segment": seg_index,
                    "sentence": sent_index,
                    "char_start": start,
                    "char_end": end,
                    "start_ms": start_ms,
                    "end_ms": end_ms,
                },
            )
            yield

        if segment.trailing_silence > 0 and not segment.sentences:
            silence = np.zeros(round(segment.trailing_silence * in_rate), dtype=np.int16)
            stats.samples += len(silence)
            feeder.add(silence)
            feeder.flush()

    out.add(encoder.finish())
    out.flush()
    stats.bytes = out.total
    emit(
        EventKind.DONE,
        {
            "samples": stats.samples,
            "sample_rate": in_rate,
            "output_rate": out_rate,
            "duration": stats.duration,
            "bytes": stats.bytes,
        },
    )
    return stats


def _tails(
    stretch: TimeStretch | None,
    resample: Resampler | None,
    stats: RenderStats,
    feeder: _Feeder,
) -> None:
    """The audio a segment's time-stretcher and resampler still hold, after its last
    sentence (the stretcher's tail goes through the resampler too)."""
    if stretch is not None:
        tail = stretch(None)
        if resample is not None:
            tail = resample(tail).astype(np.int16, copy=False)
        stats.samples += len(tail)
        feeder.add(tail)
    if resample is not None:
        tail = resample(None).astype(np.int16, copy=False)
        stats.samples += len(tail)
        feeder.add(tail)


def _silence(seconds: float, rate: int, stats: RenderStats, feeder: _Feeder) -> None:
    silence = np.zeros(round(seconds * rate), dtype=np.int16)
    stats.samples += len(silence)
    feeder.add(silence)


def _to_source(events: Sequence[EngineEvent], spoken: Spoken, start: int) -> list[EngineEvent]:
    """Engine events moved from the spoken text onto the caller's text (offsets from
    ``start``, the sentence's first character), so timestamps name the caller's words."""
    return [
        EngineEvent(e.kind, spoken.source_pos(e.text_pos) - start, e.length, e.time_ms, e.text)
        for e in events
    ]


def _marks(
    segment: Segment,
    sent_index: int,
    start: int,
    end: int,
    stamps: list[Timestamp],
    spoken_ms: float,
) -> list[Timestamp]:
    """SSML marks that fall in this sentence: each at the start of the first word after
    it (the sentence end when none follows); the first sentence also takes the marks
    before it, the last those after it."""
    out = []
    last = sent_index == len(segment.sentences) - 1
    prev_end = segment.sentences[sent_index - 1][1] if sent_index else -1
    for pos, name in segment.marks:
        if not (prev_end <= pos < end or (last and pos >= end)):
            continue
        if pos >= end and last:
            t = spoken_ms
        else:
            t = next(
                (s.start for s in stamps if s.type == "word" and (s.char_start or 0) >= pos),
                0.0 if pos <= start else spoken_ms,
            )
        out.append(Timestamp("mark", name, t, t, pos, pos))
    return out


def timestamps_from(payload: list[dict[str, Any]]) -> list[Timestamp]:
    return [Timestamp(**d) for d in payload]
