"""The speech pipeline: one canonical request in, a stream of typed events out.

Every dialect builds a ``SpeechRequest`` and consumes ``SpeechEvent``s, so
streaming, timestamps, caching, history and metering come from this one
place. Planning (validation, voice resolution, sentence split) is cheap and
runs on the event loop; synthesis and encoding run in the engine pool.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from orate.audio.encoder import fix_wav_sizes
from orate.audio.formats import FORMATS
from orate.catalog.models import Catalog, Model
from orate.config import Settings
from orate.engines.base import (
    UnknownVoice,
    VoiceParams,
    VoiceUnavailable,
    designs_voices,
    runs_upstream,
    shorten,
    version_of,
)
from orate.runtime.pool import EnginePool
from orate.runtime.render import (
    AUDIO,
    DONE,
    ERROR,
    SENTENCE,
    TIMESTAMPS,
    OutputTooLarge,
    RenderJob,
    RenderStats,
    Segment,
    render,
    timestamps_from,
)
from orate.speech.design import apply_directions, design_voice, vary, voice_notes
from orate.speech.flight import Flight
from orate.speech.lexicon import Budget, Lexicon, LexiconError, RuleBudgetExceeded, rule_from
from orate.speech.spoken import Spoken, SpokenBuilder
from orate.speech.ssml import (
    SsmlError,
    Style,
    has_inline_tags,
    inline_items,
    is_ssml,
    parse_ssml,
    ssml_runs,
)
from orate.speech.text import normalize, split_sentences
from orate.speech.types import (
    Context,
    Plan,
    Speech,
    SpeechError,
    SpeechEvent,
    SpeechRequest,
    SynthesisFailed,
    Utterance,
)
from orate.speech.upstream import upstream_events

if TYPE_CHECKING:
    import httpx

    from orate.library.generations import PendingRecord
    from orate.library.keys import Reservation
    from orate.library.library import Library
    from orate.library.tables import Generation

__all__ = [
    "Context",
    "Pipeline",
    "Plan",
    "Speech",
    "SpeechError",
    "SpeechEvent",
    "SpeechRequest",
    "SynthesisFailed",
    "Utterance",
]

MAX_DESCRIPTION = 1000
OFFLOAD_CHARS = 8192  # longer utterances are normalized in a thread, off the event loop

_KINDS = {AUDIO: "audio", TIMESTAMPS: "timestamps", SENTENCE: "sentence", DONE: "done"}


def _event(kind: int, payload: Any) -> SpeechEvent:
    if kind == AUDIO:
        return SpeechEvent("audio", audio=payload)
    if kind == TIMESTAMPS:
        return SpeechEvent("timestamps", timestamps=timestamps_from(payload))
    return SpeechEvent(_KINDS[kind], info=payload)


def _recordable(events: list[SpeechEvent]) -> tuple[bytes, list[dict[str, Any]]]:
    """Audio joined, and every event in order with audio as chunk sizes (for replay).

    One ``join`` (one copy): growing a bytearray and copying it out cost 25x more
    for a 3 MB response (reallocations and fresh pages), ~2.7 ms per request."""
    audio: list[bytes] = []
    marks: list[dict[str, Any]] = []
    for e in events:
        if e.kind == "audio":
            audio.append(e.audio)
            marks.append({"kind": "audio", "size": len(e.audio)})
        elif e.kind == "timestamps":
            marks.append({"kind": e.kind, "timestamps": [t.to_dict() for t in e.timestamps]})
        else:
            marks.append({"kind": e.kind, "info": e.info})
    return b"".join(audio), marks


def visible(event: SpeechEvent, asked: frozenset[str]) -> SpeechEvent | None:
    """A timestamps event with only the kinds the caller asked for (marks with any), or
    ``None`` when nothing is left: word times are made for every generation, so that
    history keeps them, but a caller sees only what it asked for."""
    if not asked:
        return None
    stamps = [t for t in event.timestamps if t.type in asked or t.type == "mark"]
    if len(stamps) == len(event.timestamps):
        return event
    return SpeechEvent("timestamps", timestamps=stamps) if stamps else None


def replay(audio: bytes, marks: list[dict[str, Any]]) -> list[SpeechEvent]:
    """The events of a stored response, chunked and ordered exactly as first sent."""
    out: list[SpeechEvent] = []
    pos = 0
    for mark in marks:
        if mark["kind"] == "audio":
            out.append(SpeechEvent("audio", audio=audio[pos : pos + mark["size"]]))
            pos += mark["size"]
        elif mark["kind"] == "timestamps":
            out.append(SpeechEvent("timestamps", timestamps=timestamps_from(mark["timestamps"])))
        else:
            out.append(SpeechEvent(mark["kind"], info=mark["info"]))
    if pos < len(audio):
        out.append(SpeechEvent("audio", audio=audio[pos:]))
    return out


def voice_error(exc: UnknownVoice, param: str, prefix: str = "") -> SpeechError:
    """A refused voice as the dialects' error: 400 when the caller named a voice that is
    not there, 503 when the voice exists but this server cannot speak with it (a corrupt
    or unloadable model file, a missing package), so the caller knows whose fault it is."""
    if isinstance(exc, VoiceUnavailable):
        return SpeechError(503, VoiceUnavailable.code, f"{prefix}{exc}", param)
    return SpeechError(400, "invalid_voice", f"{prefix}{exc}", param)


class Pipeline:
    def __init__(
        self,
        settings: Settings,
        catalog: Catalog,
        pool: EnginePool | None,
        library: Library | None = None,
        metrics: Any = None,
    ) -> None:
        self.settings = settings
        self.catalog = catalog
        self.pool = pool
        self.library = library
        self._flights: dict[str, Flight] = {}
        self._storing: dict[str, asyncio.Task[object]] = {}  # cache writes in progress
        self._lexicons: dict[tuple[str, ...], Lexicon] = {}  # compiled, by version ids
        self._client: httpx.AsyncClient | None = None
        self._languages: dict[tuple[str, str], str] = {}  # (engine, voice) → language
        self.metrics: Any = metrics  # api.metrics.Metrics, when the app has one

    def _http(self) -> httpx.AsyncClient:
        """One client for all upstream calls: keeps connections to providers warm."""
        if self._client is None:
            import httpx  # only when an upstream provider is first called

            self._client = httpx.AsyncClient(limits=httpx.Limits(max_connections=64))
        return self._client

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()

    # -- planning ------------------------------------------------------------

    async def resolve_voice(
        self, model: Model, voice: str | VoiceParams, owner: str, provider: str = "any"
    ) -> tuple[VoiceParams, str | None]:
        """A voice by built-in name, engine name or custom voice (id or name).

        Returns the params and, for a custom voice, its id. ``provider`` limits the
        search to the built-in voices or to the owner's saved ones.
        """
        builtin_error: UnknownVoice | None = None
        if provider != "custom" or isinstance(voice, VoiceParams):
            try:
                return self.catalog.resolve_voice(model, voice), None
            except VoiceUnavailable:  # the voice is there but broken: no other voice stands in
                raise
            except UnknownVoice as exc:
                if isinstance(voice, VoiceParams) or self.library is None or provider == "builtin":
                    raise
                builtin_error = exc
        if self.library is None:
            raise UnknownVoice("saved voices need the library, which this process does not have")
        found = await self.library.voices.find(owner, voice.strip())
        if found is None:
            first = (
                f"{builtin_error}; nor is it"
                if builtin_error
                else f"no voice {shorten(voice)!r}: not"
            )
            raise UnknownVoice(f"{first} one of your saved voices (GET /v1/voices)")
        return self.catalog.resolve_voice(model, VoiceParams(**found.params)), found.id

    async def plan(self, req: SpeechRequest, ctx: Context | None = None) -> Plan:
        """Validate and resolve a request; raises ``SpeechError`` with what to fix."""
        ctx = ctx or Context()
        model = self.catalog.model(req.model)
        if model is None:
            raise SpeechError(
                404,
                "no_provider",
                f"no provider serves the model {req.model!r}; "
                f"available models: {', '.join(self.catalog.models)}",
                "model",
            )
        fmt = FORMATS.get(req.format)
        if fmt is None:
            raise SpeechError(
                400,
                "invalid_format",
                f"unsupported format {req.format!r}; use one of {', '.join(FORMATS)}",
                "response_format",
            )
        texts = [normalize(u.text) for u in req.utterances]
        characters = sum(len(t) for t in texts)
        if not req.utterances or all(not t.strip() for t in texts):
            raise SpeechError(
                400, "missing_input", "input is empty; give the text to speak", "input"
            )
        limit = req.max_chars or self.settings.max_input_chars
        if characters > limit:
            raise SpeechError(
                413,
                "request_too_large",
                f"input is {characters} characters; the limit is {limit}",
                "input",
            )
        self._check_work(req, characters)
        inline = [req.inline_tags and not is_ssml(t) and has_inline_tags(t) for t in texts]
        ssml = any(is_ssml(t) for t in texts) or any(inline)
        lexicon = await self._lexicon(req, ctx) if req.lexicons else None
        if lexicon is not None:  # one budget for the whole request, every utterance
            lexicon = lexicon.with_budget(Budget())
        try:
            return await self._plan(req, ctx, model, fmt, texts, characters, inline, ssml, lexicon)
        except RuleBudgetExceeded as exc:
            raise SpeechError(
                413, "pronunciation_rules_too_costly", str(exc), "pronunciation_dictionary_locators"
            ) from None

    async def _plan(
        self,
        req: SpeechRequest,
        ctx: Context,
        model: Model,
        fmt: Any,
        texts: list[str],
        characters: int,
        inline: list[bool],
        ssml: bool,
        lexicon: Lexicon | None,
    ) -> Plan:
        text = "".join(texts)
        segments: list[Segment] = []
        unapplied: list[str] = []  # pronunciation rules an engine could not read as given
        voices: list[VoiceParams] = []
        owners: list[int] = []
        current: VoiceParams | None = req.context_voice
        offset = 0
        for n, (utt, utext) in enumerate(zip(req.utterances, texts, strict=True)):
            params = await self._utterance_voice(model, utt, current, req.seed, ctx)
            current = params if utt.voice is not None or utt.description else current or params
            if req.seed and (utt.voice is not None or not utt.description):
                params = vary(params, req.seed, req.variation)
            if is_ssml(utext) or inline[n]:
                for seg in await self._ssml_segments(
                    model,
                    utt,
                    utext,
                    offset,
                    params,
                    req,
                    ctx,
                    lexicon,
                    inline=inline[n],
                    unapplied=unapplied,
                ):
                    segments.append(seg)
                    voices.append(seg.voice)
                    owners.append(n)
                offset += len(utext)
                continue
            # an upstream provider reads the caller's text
            local = not runs_upstream(self.catalog.registry.engine(model.engine))
            language = self._language(params) if req.normalize and local else None
            spans = tuple((s + offset, e + offset) for s, e in split_sentences(utext))
            phonemes = self._phoneme_input(params)
            work = (
                text,
                spans,
                language,
                lexicon if local else None,
                phonemes,
                self._phoneme_check(params),
                unapplied,
            )
            # ~1 ms per 1,000 characters of dense text: long inputs, and every input with
            # pronunciation rules, go to a thread, so the event loop keeps serving others
            spoken = (
                await asyncio.to_thread(_spoken_all, *work)
                if len(utext) > OFFLOAD_CHARS or work[3]
                else _spoken_all(*work)
            )
            offset += len(utext)
            if spans or utt.trailing_silence:
                segments.append(
                    Segment(
                        params,
                        spans,
                        utt.speed,
                        utt.trailing_silence,
                        spoken=spoken if any(spoken) else (),
                    )
                )
                voices.append(params)
                owners.append(n)
        if not any(seg.sentences for seg in segments):
            raise SpeechError(
                400,
                "missing_input",
                "input has nothing to speak (only punctuation or markup); give words to speak",
                "input",
            )
        characters = self._check_spoken(req, characters, _spoken_chars(text, segments))
        # word times are recorded with every generation (captions of any history item),
        # whatever the caller asked to see; the events carry only what was asked
        recorded = (
            req.timestamps | {"word"}
            if not runs_upstream(self.catalog.registry.engine(model.engine))
            else req.timestamps
        )
        job = RenderJob(
            text=text,
            segments=tuple(segments),
            format=fmt.name,
            sample_rate=req.sample_rate,
            timestamps=frozenset(recorded),
            ssml=ssml,
            bitrate=req.bitrate
            if req.bitrate and fmt.lossy
            else self.settings.mp3_bitrate
            if fmt.name == "mp3"
            else None,
            whole_file=req.whole_file,
        )
        # the audio's rate is its first voice's engine's (render resamples the others)
        engine = self.catalog.registry.engine(segments[0].voice.engine)
        rate = fmt.output_rate(engine.sample_rate, req.sample_rate)
        version = version_of(engine, model.id)
        plan = Plan(
            req,
            model,
            job,
            voices,
            fmt,
            characters,
            rate,
            ctx,
            segment_utterances=owners,
            warnings=list(dict.fromkeys([*unapplied, *voice_notes(voices)]))[:20],
        )
        cap = self._check_bytes(req, plan) if req.framing is not None else None
        if self.library is not None and self.settings.cache_enabled and ctx.cache:
            from orate.library.cache import cache_key

            # per owner unless shared: a hit would tell one key what another one said
            scope = None if self.settings.cache_shared or ctx.owner == "local" else ctx.owner
            plan.cache_key = cache_key(job, {model.engine: version}, scope)
        if cap is not None:  # after the cache key: the bound does not change the audio
            plan.job = replace(job, max_bytes=cap)
        if (
            self.library is not None
            and ctx.store
            and ctx.record
            and self.settings.history
            and self.settings.store_audio
            and not await self.library.blobs.writable()
        ):
            raise SpeechError(
                507,
                "storage_full",
                "the audio store cannot be written "
                f"({self.library.blobs.write_error}); retry later, or ask for "
                "no stored copy (store=false)",
                headers={"Retry-After": "30"},
            )
        # last, once everything else is valid: nothing is charged for a refused request
        plan.reservation = await self.reserve(ctx, characters)
        return plan

    async def reserve(self, ctx: Context, characters: int) -> Reservation | None:
        """Take ``characters`` from the caller's quota before any synthesis, atomically.

        Every input path charges through here (whole requests via ``plan``, and each
        piece of a streaming input, so a WebSocket cannot outrun its quota). Raises the
        429 ``quota_exceeded`` refusal when the characters do not fit. Settle the
        reservation with what was spoken, or release it when nothing was.
        """
        if ctx.key_id is None or ctx.quota_left is None or self.library is None:
            return None  # only keys with a quota need the count (a write costs ~2 ms)
        from orate.library.keys import QuotaExceeded

        try:
            return await self.library.keys.reserve(ctx.key_id, characters)
        except QuotaExceeded as exc:
            raise SpeechError(
                429,
                "quota_exceeded",
                f"this key has {exc.left} characters of "
                f"its quota left and the input is {characters}; ask an admin "
                "for a larger quota",
                "input",
                headers={"Retry-After": "86400"},
            ) from None

    def _check_work(self, req: SpeechRequest, characters: int) -> None:
        """Refuse up front what would take too long: characters x generations. An async
        job (no waiting response) is bounded by its own character limit instead."""
        limit = (
            self.settings.max_request_work
            if req.framing is not None
            else req.max_chars or self.settings.max_job_chars
        )
        work = characters * max(req.generations, 1)
        if work > limit:
            raise SpeechError(
                413,
                "request_too_large",
                f"this request asks for {work} "
                f"characters of synthesis ({characters} characters x "
                f"{req.generations} generations); the limit is {limit} "
                "(max_request_work)",
                "num_generations" if req.generations > 1 else "input",
            )

    def _check_spoken(self, req: SpeechRequest, written: int, spoken: int) -> int:
        """The characters a request is charged and bounded by: what is spoken, after
        pronunciation aliases and normalization, when that is more than was written.
        A request whose text grows past ``max_expansion`` times (beyond the first 1,000
        characters) is refused up front: a short alias repeated is not a way to get
        hours of synthesis for a few characters of quota."""
        charged = max(written, spoken)
        if charged == written:
            return written
        cap = self.settings.max_expansion
        if spoken > max(written * cap, 1000):
            raise SpeechError(
                413,
                "request_too_large",
                f"input is {written} characters but "
                f"speaks {spoken} after pronunciation rules and normalization, "
                f"more than {cap:g} times as many (max_expansion); shorten the "
                "aliases or the text",
                "input",
            )
        limit = req.max_chars or self.settings.max_input_chars
        if charged > limit:
            raise SpeechError(
                413,
                "request_too_large",
                f"input speaks {charged} characters "
                "after pronunciation rules and normalization; the limit is "
                f"{limit}",
                "input",
            )
        self._check_work(req, charged)
        return charged

    def _check_bytes(self, req: SpeechRequest, plan: Plan) -> int:
        """Refuse up front a response that would be too large (from an estimate of its
        audio), and return the cap each generation's render enforces as it goes."""
        framing = req.framing or 1.0
        limit = self.settings.max_response_bytes
        share = int(limit / framing / max(req.generations, 1))
        estimate = estimate_bytes(plan)
        total = int(estimate * framing * max(req.generations, 1))
        if total > limit:
            takes = f" x {req.generations} generations" if req.generations > 1 else ""
            raise SpeechError(
                413,
                "request_too_large",
                f"the response would be about {total} "
                f"bytes ({estimate_seconds(plan.job):.0f} s of "
                f"{plan.format.name}{takes}); the limit is {limit} bytes "
                "(max_response_bytes): ask for less text, fewer generations or "
                "a compressed format",
                "input",
            )
        return share

    async def _ssml_segments(
        self,
        model: Model,
        utt: Utterance,
        utext: str,
        offset: int,
        params: VoiceParams,
        req: SpeechRequest,
        ctx: Context,
        lexicon: Lexicon | None = None,
        inline: bool = False,
        unapplied: list[str] | None = None,
    ) -> list[Segment]:
        """An SSML utterance as segments: one per stretch of one style (voice, language,
        rate, pitch, volume), with breaks as silences and marks attached. ``inline``: plain
        text with ElevenLabs' inline tags, read the same way."""
        apply = None
        alphabet = self._phoneme_input(params)
        if lexicon:

            def apply(builder: SpokenBuilder, chunk: str, at: int, lang: str | None) -> None:
                lexicon.apply(builder, chunk, at, lang, alphabet is not None)

        language = self._language(params)
        check = self._phoneme_check(params)

        def read() -> list[Any]:
            items = inline_items(utext, language) if inline else parse_ssml(utext, language)
            return ssml_runs(items, req.normalize, apply, alphabet, check, unapplied)

        try:  # pronunciation rules run in a thread, off the event loop
            runs = await asyncio.to_thread(read) if apply is not None else read()
        except SsmlError as exc:
            raise SpeechError(400, exc.code, str(exc), "input") from None
        out: list[Segment] = []
        voices: dict[Style, VoiceParams] = {}
        for run in runs:
            style = run.style
            if style not in voices:
                voices[style] = await self._styled_voice(model, params, style, ctx)
            spoken = tuple(sp.shifted(offset) for _, _, sp in run.sentences)
            out.append(
                Segment(
                    voices[style],
                    tuple((s + offset, e + offset) for s, e, _ in run.sentences),
                    utt.speed * style.rate,
                    0.0,
                    spoken=spoken,
                    gaps=tuple(run.gaps),
                    lead=run.lead,
                    gain=style.volume,
                    marks=tuple((p + offset, name) for p, name in run.marks),
                )
            )
        if out and utt.trailing_silence:
            last = out[-1]
            out[-1] = Segment(
                last.voice,
                last.sentences,
                last.speed,
                utt.trailing_silence,
                last.spoken,
                last.gaps,
                last.lead,
                last.gain,
                last.marks,
            )
        return out

    async def _lexicon(self, req: SpeechRequest, ctx: Context) -> Lexicon | None:
        """The caller's pronunciation dictionaries (their own only), compiled once per set
        of versions; the first locator's rules win."""
        if self.library is None:
            raise SpeechError(
                400,
                "no_library",
                "pronunciation dictionaries need the library, which this process does not have",
                "pronunciation_dictionary_locators",
            )
        rows = []
        for dictionary_id, version_id in req.lexicons:
            row = await self.library.lexicons.get(ctx.owner, dictionary_id, version_id)
            if row is None:
                what = f"version {version_id!r} of " if version_id else ""
                raise SpeechError(
                    400,
                    "invalid_pronunciation_dictionary",
                    f"no {what}"
                    f"pronunciation dictionary {dictionary_id!r} among yours "
                    "(GET /v1/pronunciation-dictionaries)",
                    "pronunciation_dictionary_locators",
                )
            rows.append(row)
        key = tuple(r.version_id for r in rows)
        compiled = self._lexicons.get(key)
        if compiled is None:
            try:  # thousands of rules take a while to check and compile: off the loop
                compiled = await asyncio.to_thread(
                    lambda: Lexicon([rule_from(d) for r in rows for d in r.rules])
                )
            except LexiconError as exc:  # saved before patterns ran on RE2
                raise SpeechError(
                    400,
                    "invalid_pronunciation_dictionary",
                    str(exc),
                    "pronunciation_dictionary_locators",
                ) from None
            if len(self._lexicons) > 256:
                self._lexicons.clear()
            self._lexicons[key] = compiled
        return compiled

    async def _styled_voice(
        self, model: Model, params: VoiceParams, style: Style, ctx: Context
    ) -> VoiceParams:
        """The utterance's voice changed by SSML: <voice name>, <lang> (espeak switches to
        that language's voice; other engines keep theirs), and pitch (espeak only)."""
        try:
            if style.voice:
                params, _ = await self.resolve_voice(model, style.voice, ctx.owner)
            elif (
                style.lang
                and params.engine == "espeak"
                and self._language(params).lower() != style.lang.lower()
            ):
                params = self.catalog.resolve_voice(model, style.lang.lower())
        except UnknownVoice as exc:
            raise voice_error(exc, "input", "SSML: ") from None
        if style.pitch and params.engine == "espeak":
            base = 50 if params.pitch is None else params.pitch
            params = replace(params, pitch=max(0, min(100, base + style.pitch)))
        return params

    async def _utterance_voice(
        self, model: Model, utt: Utterance, current: VoiceParams | None, seed: int, ctx: Context
    ) -> VoiceParams:
        """The voice of one utterance: named, designed from its description, or carried over."""
        description = (utt.description or "").strip()
        if len(description) > MAX_DESCRIPTION:
            raise SpeechError(
                400,
                "description_too_long",
                f"description is {len(description)} characters; the limit is {MAX_DESCRIPTION}",
                "description",
            )
        engine = self.catalog.registry.engine(model.engine)
        if not designs_voices(engine):  # an upstream reads descriptions and directions
            try:
                return self.catalog.resolve_voice(
                    model, utt.voice or current or self.settings.default_voice
                )
            except UnknownVoice as exc:
                raise voice_error(exc, "voice") from None
        try:
            if utt.voice is not None:
                params, _ = await self.resolve_voice(
                    model, utt.voice, ctx.owner, utt.voice_provider
                )
                return self._directed(params, description)
            if current is not None:
                return self._directed(current, description)
            if description:
                return design_voice(description, engine, seed=seed)
            return self.catalog.resolve_voice(model, self.settings.default_voice)
        except UnknownVoice as exc:
            raise voice_error(exc, "voice") from None

    def _directed(self, params: VoiceParams, directions: str) -> VoiceParams:
        """Acting directions applied by the engine that speaks the voice (a natural
        model may answer a language it lacks with an espeak-ng voice)."""
        if not directions:
            return params
        return apply_directions(params, directions, self.catalog.registry.engine(params.engine))

    def _language(self, params: VoiceParams) -> str:
        """The language a voice reads (normalization follows it); an upstream's: English."""
        key = (params.engine, params.voice)
        if key not in self._languages:
            self._languages[key] = self._voice_language(*key)
        return self._languages[key]

    def _voice_language(self, engine_name: str, voice: str) -> str:
        try:
            engine = self.catalog.registry.engine(engine_name)
            if runs_upstream(engine):
                return "en"
            for info in engine.voices():
                if info.id == voice:
                    return info.language
        except Exception:  # an engine that cannot list voices: read as English
            return "en"
        return voice if engine_name == "espeak" else "en"

    def _phoneme_check(self, params: VoiceParams) -> Callable[[str], list[str]] | None:
        """The engine's test of a transcription: the IPA symbols it has no phoneme for."""
        return getattr(self.catalog.registry.engine(params.engine), "unsupported_phonemes", None)

    def _phoneme_input(self, params: VoiceParams) -> str | None:
        """The phoneme alphabet the voice's engine reads between ``[[…]]``: ``"espeak"``
        (mnemonics), ``"ipa"`` (turned into its own alphabet), or ``None`` (none)."""
        engine = self.catalog.registry.engine(params.engine)
        per_voice = getattr(engine, "phoneme_input_of", None)  # the palette: by base voice
        kind = (
            per_voice(params.voice)
            if per_voice is not None
            else getattr(engine, "phoneme_input", False)
        )
        return kind if isinstance(kind, str) else "espeak" if kind else None

    # -- synthesis -----------------------------------------------------------

    async def stream(self, plan: Plan) -> AsyncIterator[SpeechEvent]:
        """Events of one synthesis from the engine pool, in order; closing early stops it."""
        if runs_upstream(self.catalog.registry.engine(plan.model.engine)):
            async for event in upstream_events(plan, self.catalog.providers, self._http()):
                yield event
            return
        if self.pool is None:
            raise RuntimeError("this pipeline has no engine pool; use render_local")
        job = await self.pool.submit(plan.job)
        try:
            async for kind, payload in job:
                if kind == ERROR:
                    message = payload.get("message", "synthesis failed")
                    if payload.get("code") == OutputTooLarge.code:
                        raise SpeechError(413, "request_too_large", message, "input")
                    if payload.get("code") == VoiceUnavailable.code:  # a model that won't load
                        raise SpeechError(
                            503,
                            VoiceUnavailable.code,
                            message.removeprefix(f"{VoiceUnavailable.__name__}: "),
                            "voice",
                        )
                    raise SynthesisFailed(message)
                yield _event(kind, payload)
        finally:
            if not job.finished:
                job.cancel()

    async def speak(self, plan: Plan) -> Speech:
        """Serve a plan from the cache, from a synthesis in flight, or by synthesizing."""
        from orate.library.generations import new_id

        gen_id = new_id()
        key = plan.cache_key
        if key is not None and self.library is not None:
            cached = await self.library.cache.lookup(key)
            if cached is None:
                flight = self._flights.get(key)
                if flight is not None and (not flight.done or flight.succeeded):
                    self.library.cache.count("shared")
                    return Speech(
                        gen_id,
                        plan,
                        "shared",
                        self._recorded(gen_id, plan, flight.subscribe(), "shared"),
                    )
                # the lookup awaited the database; a synthesis may have finished and been
                # cached meanwhile (the cache holds it in memory before the flight is gone)
                cached = self.library.cache.peek(key)
            if cached is not None:
                audio = (
                    cached.audio
                    if cached.audio is not None
                    else await self.library.blobs.get(cached.blob_key)
                )
                events = replay(audio, cached.events)
                self.library.cache.count("hit")
                return Speech(
                    gen_id, plan, "hit", self._recorded(gen_id, plan, _iterate(events), "hit")
                )
        if key is None:  # nothing to share: stream straight from the engine
            return Speech(
                gen_id, plan, "off", self._recorded(gen_id, plan, self.stream(plan), "off")
            )
        if self.library is not None:
            self.library.cache.count("miss")
        flight = Flight(
            self.stream(plan),
            on_finish=self._finished(plan),
            window=self.settings.stream_buffer_bytes,
        )
        self._flights[key] = flight
        return Speech(
            gen_id, plan, "miss", self._recorded(gen_id, plan, flight.subscribe(), "miss")
        )

    def _finished(self, plan: Plan) -> Callable[[Flight], None]:
        """When a synthesis ends: cache it, and keep the finished flight joinable until the
        cache entry is written, so no identical request in between synthesizes again."""

        def forget(flight: Flight) -> None:
            if plan.cache_key is not None and self._flights.get(plan.cache_key) is flight:
                del self._flights[plan.cache_key]

        def done(flight: Flight) -> None:
            key = plan.cache_key
            if (
                key is None
                or not flight.succeeded
                or self.library is None
                or not plan.context.store
            ):
                forget(flight)
                return
            from orate.library.cache import Cached

            audio, marks = _recordable(flight.events)
            entry = Cached(
                key,
                f"audio/{key}",
                audio,
                len(audio),
                plan.format.content_type,
                _duration(flight.events),
                marks,
            )

            async def store() -> None:
                try:
                    await self.library.cache.store(entry)  # type: ignore[union-attr]
                finally:
                    forget(flight)

            task = self.library.track(store())
            self._storing[key] = task
            task.add_done_callback(lambda _t: self._storing.pop(key, None))

        return done

    async def _recorded(
        self, gen_id: str, plan: Plan, events: AsyncIterator[SpeechEvent], status: str
    ) -> AsyncIterator[SpeechEvent]:
        """Pass events through; once the caller has had them all, record the generation."""
        seen: list[SpeechEvent] = []
        reservation = plan.reservation
        asked = plan.request.timestamps
        try:
            async for event in events:
                seen.append(event)
                if event.kind == "timestamps":
                    shown = visible(event, asked)
                    if shown is not None:
                        yield shown
                    continue
                yield event
        except BaseException:
            # failed or abandoned: charge nothing if no audio went out, else all of it
            if reservation is not None:
                spoke = any(e.kind == "audio" for e in seen)
                self._settle(reservation, plan.characters if spoke else 0)
            raise
        finally:
            # closing this stream (client gone, request refused) must release the synthesis
            # now, not when the garbage collector gets to it
            with contextlib.suppress(Exception):
                await events.aclose()  # type: ignore[attr-defined]
        if reservation is not None:
            self._settle(reservation, plan.characters)
        if self.metrics is not None:
            self.metrics.cache.labels(status).inc()
            self.metrics.audio.labels(plan.context.dialect, plan.model.engine).inc(_duration(seen))
        record = None
        if self.library is not None and plan.context.record and self.settings.history:
            record = self._record(gen_id, plan, seen, status)
        if self.library is not None and self.library.shared:
            # several replicas: the response ends once its generation (and the cache entry
            # it made) is in the shared database and store, so the next request on any
            # replica finds it (read-your-writes across replicas; costs one batched write)
            storing = self._storing.get(plan.cache_key or "")
            waits = [w for w in (record.done if record is not None else None, storing) if w]
            if waits:
                await asyncio.wait([asyncio.ensure_future(w) for w in waits], timeout=10)

    def _settle(self, reservation: Reservation, actual: int) -> None:
        """Settle off the request path (a no-op write unless the charge changes)."""
        if self.library is not None and reservation.open:
            self.library.track(reservation.settle(actual))

    def _record(
        self, gen_id: str, plan: Plan, events: list[SpeechEvent], status: str
    ) -> PendingRecord:
        lib = self.library
        assert lib is not None
        audio, marks = _recordable(events)
        duration = _duration(events)
        store = plan.context.store and self.settings.store_audio
        blob_key = None
        if store:
            blob_key = f"audio/{plan.cache_key}" if plan.cache_key else f"audio/{gen_id}"
        hit = status in ("hit", "shared")
        cost = self.cost(plan, duration, status)
        first = plan.voices[0] if plan.voices else VoiceParams()
        return lib.generations.record(
            {
                "id": gen_id,
                "owner": plan.context.owner,
                "dialect": plan.context.dialect,
                "model": plan.model.id,
                "engine": plan.model.engine,
                "voice": first.label(),
                "voice_params": [asdict(v) for v in plan.voices],
                "text": plan.job.text,
                "characters": plan.characters,
                "speed": plan.job.segments[0].speed,
                "format": plan.format.name,
                "content_type": plan.format.content_type,
                "sample_rate": plan.sample_rate,
                "duration": duration,
                "bytes": len(audio),
                "cost": cost,
                "currency": self.settings.currency,
                "cache_key": plan.cache_key,
                "cache_hit": hit,
                "blob_key": blob_key,
                "meta": {
                    "events": marks,
                    **_lines(plan, events),
                    **({"warnings": plan.warnings} if plan.warnings else {}),
                }
                if plan.job.timestamps
                else {},
                "created_at": datetime.now(UTC),
            },
            audio if store else None,
        )

    def cost(self, plan: Plan, duration: float, cache: str = "miss") -> float:
        """What this speech costs its caller: the model's price (the catalog's: 0 for
        local engines unless the operator set one) for its characters and seconds; a
        replay from the cache, or a share of someone else's synthesis, costs nothing."""
        if cache in ("hit", "shared"):
            return 0.0
        return self.catalog.price(plan.model.id).cost(plan.characters, duration)

    def render_local(
        self,
        plan: Plan,
        on_event: Callable[[SpeechEvent], None],
        should_stop: Callable[[], bool] = lambda: False,
    ) -> RenderStats:
        """Synthesize in this process (the CLI): no pool, same render code.
        ``should_stop`` ends the synthesis early (the reader went away)."""
        asked = plan.request.timestamps

        def emit(kind: int, payload: Any) -> None:
            event = _event(kind, payload)
            shown = visible(event, asked) if event.kind == "timestamps" else event
            if shown is not None:
                on_event(shown)

        return render(plan.job, self.catalog.registry.engine, emit, should_stop)


# Up-front size estimates. English prose comes out of espeak at ~16.5 characters a second
# (measured, default rate); 12 leaves room for slower voices and punctuation. Texts that
# speak far longer than they read (digit strings, "1. 1. 1.") meet the render's cap.
CHARS_PER_SECOND = 12.0
SSML_BREAKS_SECONDS = 60.0  # SSML may add up to this much silence (speech/text.py)


def estimate_seconds(job: RenderJob) -> float:
    seconds = 0.0
    for seg in job.segments:  # what is spoken: aliases and normalization included
        chars = 0
        for n, (start, end) in enumerate(seg.sentences):
            spoken = seg.spoken[n] if n < len(seg.spoken) else None
            chars += len(spoken.text) if spoken is not None else end - start
        seconds += chars / CHARS_PER_SECOND / max(seg.speed, 0.01) + seg.trailing_silence
    return seconds + (SSML_BREAKS_SECONDS if job.ssml else 0.0)


def estimate_bytes(plan: Plan) -> int:
    """An upper estimate of one generation's encoded audio."""
    # lossy: the codec's rate plus container; otherwise 16-bit mono (flac is less)
    per_second = (
        (plan.job.bitrate or 128_000) / 8 + 2_000 if plan.format.lossy else 2 * plan.sample_rate
    )
    return int(estimate_seconds(plan.job) * per_second) + 1024


async def _iterate(events: list[SpeechEvent]) -> AsyncIterator[SpeechEvent]:
    for event in events:
        yield event


def _spoken_chars(text: str, segments: list[Segment]) -> int:
    """Characters the engines read: each sentence's spoken text, or its own text."""
    total = 0
    for seg in segments:
        for n, (start, end) in enumerate(seg.sentences):
            spoken = seg.spoken[n] if n < len(seg.spoken) else None
            total += len(spoken.text) if spoken is not None else end - start
    return total


def _spoken_all(
    text: str,
    spans: tuple[tuple[int, int], ...],
    language: str | None,
    lexicon: Lexicon | None,
    phonemes: str | None,
    check: Callable[[str], list[str]] | None = None,
    unapplied: list[str] | None = None,
) -> tuple[Spoken | None, ...]:
    return tuple(
        _spoken(text, s, e, language, lexicon, phonemes, check, unapplied) for s, e in spans
    )


def _spoken(
    text: str,
    start: int,
    end: int,
    language: str | None,
    lexicon: Lexicon | None = None,
    phonemes: str | None = "espeak",
    check: Callable[[str], list[str]] | None = None,
    unapplied: list[str] | None = None,
) -> Spoken | None:
    """What the engine reads for ``text[start:end]``: the caller's lexicon applied, the
    rest normalized in ``language`` (``None``: as written); ``None`` when that is the
    text itself."""
    if language is None and not lexicon:
        return None
    builder = SpokenBuilder(phonemes, check)
    if lexicon:
        lexicon.apply(builder, text[start:end], start, language, phonemes is not None)
        if unapplied is not None:
            unapplied += builder.unapplied
    else:
        builder.normalized(text[start:end], start, language)
    return None if builder.is_identity_of(text, start, end) else builder.build()


def _lines(plan: Plan, events: list[SpeechEvent]) -> dict[str, Any]:
    """Per-utterance (dialogue line) times of a multi-utterance request, for history."""
    if len(plan.request.utterances) < 2:
        return {}
    lines: dict[int, dict[str, Any]] = {}
    for e in events:
        if e.kind != "sentence":
            continue
        seg = e.info["segment"]
        n = plan.segment_utterances[seg] if seg < len(plan.segment_utterances) else seg
        line = lines.setdefault(
            n, {"utterance": n, "start_ms": e.info["start_ms"], "char_start": e.info["char_start"]}
        )
        line["end_ms"] = e.info["end_ms"]
        line["char_end"] = e.info["char_end"]
    return {"lines": [lines[k] for k in sorted(lines)]}


def _duration(events: list[SpeechEvent]) -> float:
    for event in reversed(events):
        if event.kind == "done":
            return float(event.info.get("duration", 0.0))
    return 0.0


def file_bytes(row: Generation, data: bytes) -> bytes:
    """Stored audio as a file: a streamed WAV header gets its real sizes."""
    return fix_wav_sizes(data) if row.format == "wav" else data
