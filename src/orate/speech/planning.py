"""Planning: one canonical request in, a ``Plan`` out (text → segments → render job).

Planning validates the request against its bounds (speech/bounds.py), picks the voice
of every utterance and SSML stretch (speech/voicing.py), splits sentences, applies the
caller's pronunciation dictionaries and normalization into what each engine reads, and
fixes the render job, its cache key and its response cap. It is cheap and runs on the
event loop; long texts and pronunciation rules go to a thread. Nothing is synthesized
or charged here: the speech service reserves the quota once a plan is valid.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from orate.audio.formats import AudioFormat
from orate.catalog.models import Catalog, Model
from orate.config import Settings
from orate.engines.base import PhonemeCheck, VoiceParams
from orate.runtime.render import RenderJob, Segment
from orate.runtime.spoken import Spoken
from orate.speech.bounds import (
    check_bytes,
    check_spoken,
    check_text,
    model_and_format,
    spoken_chars,
)
from orate.speech.design import vary, voice_notes
from orate.speech.lexicon import Budget, Lexicon, LexiconError, RuleBudgetExceeded, rule_from
from orate.speech.spoken import SpokenBuilder
from orate.speech.ssml import (
    Run,
    SsmlError,
    Style,
    has_inline_tags,
    inline_items,
    is_ssml,
    parse_ssml,
    ssml_runs,
)
from orate.speech.text import normalize, split_sentences
from orate.speech.types import Context, Plan, SpeechError, SpeechRequest, Utterance
from orate.speech.voicing import Voices

if TYPE_CHECKING:
    from orate.library.library import Library

OFFLOAD_CHARS = 8192  # longer utterances are normalized in a thread, off the event loop
MAX_LEXICONS = 256  # compiled rule sets kept, by version ids

Apply = Callable[[SpokenBuilder, str, int, str | None], None]


@dataclass
class _Draft:
    """The segments of a request as planning builds them, utterance by utterance."""

    text: str  # the caller's whole text: every span and offset points into it
    segments: list[Segment] = field(default_factory=list)
    voices: list[VoiceParams] = field(default_factory=list)
    owners: list[int] = field(default_factory=list)  # the utterance of each segment
    unapplied: list[str] = field(default_factory=list)  # rules an engine could not read
    ssml: bool = False  # some utterance is SSML or has inline tags: the render reads tags

    def add(self, segment: Segment, utterance: int) -> None:
        self.segments.append(segment)
        self.voices.append(segment.voice)
        self.owners.append(utterance)


class Planner:
    """Turns requests into plans; one per speech service."""

    def __init__(self, settings: Settings, catalog: Catalog, library: Library | None) -> None:
        self.settings = settings
        self.catalog = catalog
        self.library = library
        self.voices = Voices(settings, catalog, library)
        self._lexicons: dict[tuple[str, ...], Lexicon] = {}  # compiled, by version ids

    async def plan(self, req: SpeechRequest, ctx: Context) -> Plan:
        """Validate and resolve a request; raises ``SpeechError`` with what to fix."""
        model, fmt = model_and_format(self.catalog, req)
        texts = [normalize(u.text) for u in req.utterances]
        characters = check_text(self.settings, req, texts)
        lexicon = await self._lexicon(req, ctx) if req.lexicons else None
        if lexicon is not None:  # one budget for the whole request, every utterance
            lexicon = lexicon.with_budget(Budget())
        try:
            draft = await self._draft(req, ctx, model, texts, lexicon)
        except RuleBudgetExceeded as exc:
            raise SpeechError(
                413, "pronunciation_rules_too_costly", str(exc), "pronunciation_dictionary_locators"
            ) from None
        plan = self._plan(req, ctx, model, fmt, characters, draft)
        await self._check_storage(ctx)
        return plan

    # -- segments ------------------------------------------------------------

    async def _draft(
        self,
        req: SpeechRequest,
        ctx: Context,
        model: Model,
        texts: list[str],
        lexicon: Lexicon | None,
    ) -> _Draft:
        """Every utterance's segments, each with its voice, in order."""
        inline = [req.inline_tags and not is_ssml(t) and has_inline_tags(t) for t in texts]
        ssml = any(is_ssml(t) for t in texts) or any(inline)
        draft = _Draft("".join(texts), ssml=ssml)
        current: VoiceParams | None = req.context_voice
        offset = 0
        for n, (utt, utext) in enumerate(zip(req.utterances, texts, strict=True)):
            params = await self.voices.of_utterance(model, utt, current, req.seed, ctx)
            current = params if utt.voice is not None or utt.description else current or params
            if req.seed and (utt.voice is not None or not utt.description):
                params = vary(params, req.seed, req.variation)
            if is_ssml(utext) or inline[n]:
                runs = await self._ssml_runs(utext, params, req, lexicon, inline[n], draft)
                segments = await self._ssml_segments(model, utt, runs, offset, params, ctx)
            else:
                segments = await self._plain_segments(
                    model, utt, utext, offset, params, req, lexicon, draft
                )
            for segment in segments:
                draft.add(segment, n)
            offset += len(utext)
        return draft

    async def _plain_segments(
        self,
        model: Model,
        utt: Utterance,
        utext: str,
        offset: int,
        params: VoiceParams,
        req: SpeechRequest,
        lexicon: Lexicon | None,
        draft: _Draft,
    ) -> list[Segment]:
        """A plain utterance as one segment: its sentences and what the engine reads."""
        # an upstream provider reads the caller's text
        local = not self.catalog.registry.engine(model.engine).runs_upstream
        language = self.voices.language(params) if req.normalize and local else None
        spans = tuple((s + offset, e + offset) for s, e in split_sentences(utext))
        rules = lexicon if local else None
        phonemes = self.voices.phoneme_input(params)
        check = self.voices.phoneme_check(params)

        def read() -> tuple[Spoken | None, ...]:
            return tuple(
                spoken_of(draft.text, s, e, language, rules, phonemes, check, draft.unapplied)
                for s, e in spans
            )

        # ~1 ms per 1,000 characters of dense text: long inputs, and every input with
        # pronunciation rules, go to a thread, so the event loop keeps serving others
        spoken = await asyncio.to_thread(read) if len(utext) > OFFLOAD_CHARS or rules else read()
        if not spans and not utt.trailing_silence:
            return []
        return [
            Segment(
                params,
                spans,
                utt.speed,
                utt.trailing_silence,
                spoken=spoken if any(spoken) else (),
            )
        ]

    async def _ssml_runs(
        self,
        utext: str,
        params: VoiceParams,
        req: SpeechRequest,
        lexicon: Lexicon | None,
        inline: bool,
        draft: _Draft,
    ) -> list[Run]:
        """An SSML utterance read into runs of one style. ``inline``: plain text with
        ElevenLabs' inline tags, read the same way."""
        apply: Apply | None = None
        alphabet = self.voices.phoneme_input(params)
        if lexicon:
            rules = lexicon

            def apply(builder: SpokenBuilder, chunk: str, at: int, lang: str | None) -> None:
                rules.apply(builder, chunk, at, lang, alphabet is not None)

        language = self.voices.language(params)
        check = self.voices.phoneme_check(params)

        def read() -> list[Run]:
            items = inline_items(utext, language) if inline else parse_ssml(utext, language)
            return ssml_runs(items, req.normalize, apply, alphabet, check, draft.unapplied)

        try:  # pronunciation rules run in a thread, off the event loop
            return await asyncio.to_thread(read) if apply is not None else read()
        except SsmlError as exc:
            raise SpeechError(400, exc.code, str(exc), "input") from None

    async def _ssml_segments(
        self,
        model: Model,
        utt: Utterance,
        runs: list[Run],
        offset: int,
        params: VoiceParams,
        ctx: Context,
    ) -> list[Segment]:
        """SSML runs as segments: one per stretch of one style (voice, language, rate,
        pitch, volume), with breaks as silences and marks attached."""
        out: list[Segment] = []
        voices: dict[Style, VoiceParams] = {}
        for run in runs:
            style = run.style
            if style not in voices:
                voices[style] = await self.voices.styled(model, params, style, ctx)
            out.append(
                Segment(
                    voices[style],
                    tuple((s + offset, e + offset) for s, e, _ in run.sentences),
                    utt.speed * style.rate,
                    0.0,
                    spoken=tuple(sp.shifted(offset) for _, _, sp in run.sentences),
                    gaps=tuple(run.gaps),
                    lead=run.lead,
                    gain=style.volume,
                    marks=tuple((p + offset, name) for p, name in run.marks),
                )
            )
        if out and utt.trailing_silence:
            out[-1] = replace(out[-1], trailing_silence=utt.trailing_silence)
        return out

    # -- the plan ------------------------------------------------------------

    def _plan(
        self,
        req: SpeechRequest,
        ctx: Context,
        model: Model,
        fmt: AudioFormat,
        characters: int,
        draft: _Draft,
    ) -> Plan:
        """The render job and the plan around it: rate, charge, cache key, byte cap."""
        segments = draft.segments
        if not any(seg.sentences for seg in segments):
            raise SpeechError(
                400,
                "missing_input",
                "input has nothing to speak (only punctuation or markup); give words to speak",
                "input",
            )
        characters = check_spoken(self.settings, req, characters, spoken_chars(segments))
        upstream = self.catalog.registry.engine(model.engine).runs_upstream
        # word times are recorded with every generation (captions of any history item),
        # whatever the caller asked to see; the events carry only what was asked
        recorded = req.timestamps if upstream else req.timestamps | {"word"}
        job = RenderJob(
            text=draft.text,
            segments=tuple(segments),
            format=fmt.name,
            sample_rate=req.sample_rate,
            timestamps=frozenset(recorded),
            ssml=draft.ssml,
            bitrate=self._bitrate(req, fmt),
            whole_file=req.whole_file,
        )
        # the audio's rate is its first voice's engine's (render resamples the others)
        engine = self.catalog.registry.engine(segments[0].voice.engine)
        plan = Plan(
            req,
            model,
            job,
            draft.voices,
            fmt,
            characters,
            fmt.output_rate(engine.sample_rate, req.sample_rate),
            ctx,
            segment_utterances=draft.owners,
            warnings=list(dict.fromkeys([*draft.unapplied, *voice_notes(draft.voices)]))[:20],
        )
        cap = check_bytes(self.settings, req, plan) if req.framing is not None else None
        if self.library is not None and self.settings.cache_enabled and ctx.cache:
            from orate.library.cache import cache_key

            # per owner unless shared: a hit would tell one key what another one said
            scope = None if self.settings.cache_shared or ctx.owner == "local" else ctx.owner
            plan.cache_key = cache_key(job, {model.engine: engine.version_of(model.id)}, scope)
        if cap is not None:  # after the cache key: the bound does not change the audio
            plan.job = replace(job, max_bytes=cap)
        return plan

    def _bitrate(self, req: SpeechRequest, fmt: AudioFormat) -> int | None:
        """A lossy format's bits per second: the caller's, else the server's for mp3."""
        if req.bitrate and fmt.lossy:
            return req.bitrate
        return self.settings.mp3_bitrate if fmt.name == "mp3" else None

    async def _check_storage(self, ctx: Context) -> None:
        """Refuse (507) a request whose audio is to be kept while the store cannot be
        written, before anything is synthesized or charged."""
        s = self.settings
        if self.library is None or not (ctx.store and ctx.record and s.history and s.store_audio):
            return
        if await self.library.blobs.writable():
            return
        raise SpeechError(
            507,
            "storage_full",
            "the audio store cannot be written "
            f"({self.library.blobs.write_error}); retry later, or ask for "
            "no stored copy (store=false)",
            headers={"Retry-After": "30"},
        )

    # -- pronunciation dictionaries ------------------------------------------

    async def _lexicon(self, req: SpeechRequest, ctx: Context) -> Lexicon:
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
            if len(self._lexicons) > MAX_LEXICONS:
                self._lexicons.clear()
            self._lexicons[key] = compiled
        return compiled


def spoken_of(
    text: str,
    start: int,
    end: int,
    language: str | None,
    lexicon: Lexicon | None = None,
    phonemes: str | None = "espeak",
    check: PhonemeCheck | None = None,
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
