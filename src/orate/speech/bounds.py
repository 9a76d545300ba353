"""The bounds a request meets before any synthesis: its model and format exist, it has
text, and its characters, its work (characters x generations), its spoken length after
aliases and normalization, and its response size stay within the operator's limits.

Every check raises ``SpeechError`` saying what to change; nothing here touches state, so
planning calls them in order and a refused request costs nothing.
"""

from __future__ import annotations

from orate.audio.formats import FORMATS, AudioFormat
from orate.catalog.models import Catalog, Model
from orate.config import Settings
from orate.runtime.render import RenderJob, Segment
from orate.speech.types import Plan, SpeechError, SpeechRequest

# Up-front size estimates. English prose comes out of espeak at ~16.5 characters a second
# (measured, default rate); 12 leaves room for slower voices and punctuation. Texts that
# speak far longer than they read (digit strings, "1. 1. 1.") meet the render's cap.
CHARS_PER_SECOND = 12.0
SSML_BREAKS_SECONDS = 60.0  # SSML may add up to this much silence (speech/ssml.py)


def model_and_format(catalog: Catalog, req: SpeechRequest) -> tuple[Model, AudioFormat]:
    """The model and the audio format a request names, or the refusal that lists them."""
    model = catalog.model(req.model)
    if model is None:
        raise SpeechError(
            404,
            "no_provider",
            f"no provider serves the model {req.model!r}; "
            f"available models: {', '.join(catalog.models)}",
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
    return model, fmt


def check_text(settings: Settings, req: SpeechRequest, texts: list[str]) -> int:
    """The written characters of a request with text to speak, within its limits."""
    characters = sum(len(t) for t in texts)
    if not req.utterances or all(not t.strip() for t in texts):
        raise SpeechError(400, "missing_input", "input is empty; give the text to speak", "input")
    limit = req.max_chars or settings.max_input_chars
    if characters > limit:
        raise SpeechError(
            413,
            "request_too_large",
            f"input is {characters} characters; the limit is {limit}",
            "input",
        )
    check_work(settings, req, characters)
    return characters


def check_work(settings: Settings, req: SpeechRequest, characters: int) -> None:
    """Refuse up front what would take too long: characters x generations. An async
    job (no waiting response) is bounded by its own character limit instead."""
    limit = (
        settings.max_request_work
        if req.framing is not None
        else req.max_chars or settings.max_job_chars
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


def check_spoken(settings: Settings, req: SpeechRequest, written: int, spoken: int) -> int:
    """The characters a request is charged and bounded by: what is spoken, after
    pronunciation aliases and normalization, when that is more than was written.
    A request whose text grows past ``max_expansion`` times (beyond the first 1,000
    characters) is refused up front: a short alias repeated is not a way to get
    hours of synthesis for a few characters of quota."""
    charged = max(written, spoken)
    if charged == written:
        return written
    cap = settings.max_expansion
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
    limit = req.max_chars or settings.max_input_chars
    if charged > limit:
        raise SpeechError(
            413,
            "request_too_large",
            f"input speaks {charged} characters "
            "after pronunciation rules and normalization; the limit is "
            f"{limit}",
            "input",
        )
    check_work(settings, req, charged)
    return charged


def check_bytes(settings: Settings, req: SpeechRequest, plan: Plan) -> int:
    """Refuse up front a response that would be too large (from an estimate of its
    audio), and return the cap each generation's render enforces as it goes."""
    framing = req.framing or 1.0
    limit = settings.max_response_bytes
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


def spoken_chars(segments: list[Segment]) -> int:
    """Characters the engines read: each sentence's spoken text, or its own text."""
    total = 0
    for seg in segments:
        for n, (start, end) in enumerate(seg.sentences):
            spoken = seg.spoken[n] if n < len(seg.spoken) else None
            total += len(spoken.text) if spoken is not None else end - start
    return total


def estimate_seconds(job: RenderJob) -> float:
    """An upper estimate of a render's audio: what is spoken (aliases and normalization
    included) at a slow pace, plus silences."""
    seconds = 0.0
    for seg in job.segments:
        chars = spoken_chars([seg])
        seconds += chars / CHARS_PER_SECOND / max(seg.speed, 0.01) + seg.trailing_silence
    return seconds + (SSML_BREAKS_SECONDS if job.ssml else 0.0)


def estimate_bytes(plan: Plan) -> int:
    """An upper estimate of one generation's encoded audio."""
    # lossy: the codec's rate plus container; otherwise 16-bit mono (flac is less)
    per_second = (
        (plan.job.bitrate or 128_000) / 8 + 2_000 if plan.format.lossy else 2 * plan.sample_rate
    )
    return int(estimate_seconds(plan.job) * per_second) + 1024
