"""The speech pipeline: one canonical request in, a stream of typed events out.

Every dialect builds a ``SpeechRequest`` and consumes ``SpeechEvent``s, so
streaming, timestamps and (later) caching and metering come from this one
place. Planning (validation, voice resolution, sentence split) is cheap and
runs on the event loop; synthesis and encoding run in the engine pool.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from orate.audio.formats import FORMATS, AudioFormat
from orate.config import Settings
from orate.engines.base import UnknownVoice, VoiceParams
from orate.engines.catalog import Catalog, Model
from orate.engines.pool import EnginePool
from orate.engines.registry import engine_by_name
from orate.speech import render as R
from orate.speech.render import RenderJob, Segment, render
from orate.speech.text import TextError, check_ssml, is_ssml, normalize, split_sentences
from orate.speech.timestamps import Timestamp


class SpeechError(Exception):
    """A request the pipeline refuses; dialects render it in their own envelope."""

    def __init__(self, status: int, code: str, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.param = param


class SynthesisFailed(RuntimeError):
    """The engine failed after the request was accepted (a worker died, an engine error)."""


@dataclass
class Utterance:
    text: str
    voice: str | VoiceParams | None = None
    speed: float = 1.0
    trailing_silence: float = 0.0


@dataclass
class SpeechRequest:
    """What any dialect asks for, in the pipeline's own terms."""

    model: str
    utterances: list[Utterance]
    format: str = "mp3"
    sample_rate: int | None = None
    timestamps: frozenset[str] = frozenset()
    whole_file: bool = False


@dataclass
class Plan:
    request: SpeechRequest
    model: Model
    job: RenderJob
    voices: list[VoiceParams]
    format: AudioFormat
    characters: int
    sample_rate: int  # of the encoded output


@dataclass
class SpeechEvent:
    """``audio`` bytes, ``timestamps``, a ``sentence`` boundary, or ``done`` with stats."""

    kind: str
    audio: bytes = b""
    timestamps: list[Timestamp] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)


_KINDS = {R.AUDIO: "audio", R.TIMESTAMPS: "timestamps", R.SENTENCE: "sentence", R.DONE: "done"}


def _event(kind: int, payload: Any) -> SpeechEvent:
    if kind == R.AUDIO:
        return SpeechEvent("audio", audio=payload)
    if kind == R.TIMESTAMPS:
        return SpeechEvent("timestamps", timestamps=R.timestamps_from(payload))
    return SpeechEvent(_KINDS[kind], info=payload)


class Pipeline:
    def __init__(self, settings: Settings, catalog: Catalog, pool: EnginePool | None) -> None:
        self.settings = settings
        self.catalog = catalog
        self.pool = pool

    def plan(self, req: SpeechRequest) -> Plan:
        """Validate and resolve a request; raises ``SpeechError`` with what to fix."""
        model = self.catalog.model(req.model)
        if model is None:
            raise SpeechError(404, "no_provider", f"no provider serves the model {req.model!r}; "
                              f"available models: {', '.join(self.catalog.models)}", "model")
        fmt = FORMATS.get(req.format)
        if fmt is None:
            raise SpeechError(400, "invalid_format", f"unsupported format {req.format!r}; use one "
                              f"of {', '.join(FORMATS)}", "response_format")
        texts = [normalize(u.text) for u in req.utterances]
        characters = sum(len(t) for t in texts)
        if not req.utterances or all(not t.strip() for t in texts):
            raise SpeechError(400, "missing_input", "input is empty; give the text to speak",
                              "input")
        if characters > self.settings.max_input_chars:
            raise SpeechError(413, "request_too_large", f"input is {characters} characters; the "
                              f"limit is {self.settings.max_input_chars}", "input")
        ssml = len(texts) == 1 and is_ssml(texts[0])
        text = "".join(texts) if ssml else ""
        segments: list[Segment] = []
        voices: list[VoiceParams] = []
        voice: str | VoiceParams = self.settings.default_voice
        offset = 0
        for utt, utext in zip(req.utterances, texts, strict=True):
            voice = utt.voice if utt.voice is not None else voice  # a voice carries over
            try:
                params = self.catalog.resolve_voice(model, voice)
            except UnknownVoice as exc:
                raise SpeechError(400, "invalid_voice", str(exc), "voice") from None
            if ssml:
                try:
                    check_ssml(utext)
                except TextError as exc:
                    raise SpeechError(400, exc.code, str(exc), "input") from None
                spans = ((0, len(utext)),)
            else:
                spans = tuple((s + offset, e + offset) for s, e in split_sentences(utext))
                text += utext
                offset += len(utext)
            if spans or utt.trailing_silence:
                segments.append(Segment(params, spans, utt.speed, utt.trailing_silence))
                voices.append(params)
        if not any(seg.sentences for seg in segments):
            raise SpeechError(400, "missing_input", "input has nothing to speak (only "
                              "punctuation or markup); give words to speak", "input")
        job = RenderJob(text=text, segments=tuple(segments), format=fmt.name,
                        sample_rate=req.sample_rate, timestamps=req.timestamps, ssml=ssml,
                        bitrate=self.settings.mp3_bitrate if fmt.name == "mp3" else None,
                        whole_file=req.whole_file)
        engine_rate = engine_by_name(model.engine).sample_rate
        return Plan(req, model, job, voices, fmt, characters,
                    fmt.output_rate(engine_rate, req.sample_rate))

    async def stream(self, plan: Plan) -> AsyncIterator[SpeechEvent]:
        """Events of one synthesis, in order. Closing the iterator early stops the engine."""
        if self.pool is None:
            raise RuntimeError("this pipeline has no engine pool; use render_local")
        job = await self.pool.submit(plan.job)
        try:
            async for kind, payload in job:
                if kind == R.ERROR:
                    raise SynthesisFailed(payload.get("message", "synthesis failed"))
                yield _event(kind, payload)
        finally:
            if not job.finished:
                job.cancel()

    def render_local(self, plan: Plan, on_event: Callable[[SpeechEvent], None]) -> R.RenderStats:
        """Synthesize in this process (the CLI): no pool, same render code."""
        return render(plan.job, engine_by_name, lambda k, p: on_event(_event(k, p)))
