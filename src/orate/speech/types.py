"""The pipeline's vocabulary: requests, plans, events and the errors dialects render."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from orate.audio.formats import AudioFormat
from orate.catalog.models import Model
from orate.engines.base import VoiceParams
from orate.runtime.events import EventKind
from orate.runtime.render import RenderJob
from orate.runtime.timestamps import Timestamp

if TYPE_CHECKING:
    from orate.library.keys import Reservation

MAX_MESSAGE = 1000


class SpeechError(Exception):
    """A request the pipeline refuses; dialects render it in their own envelope."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        if len(message) > MAX_MESSAGE:  # whatever it quotes, an error stays readable
            message = message[:MAX_MESSAGE] + "…"
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.param = param
        self.headers = headers or {}


class SynthesisFailed(RuntimeError):
    """The engine failed after the request was accepted (a worker died, an engine error)."""


@dataclass
class Utterance:
    """A piece of text with its voice. ``description`` designs a voice when there is
    none, and is read as acting directions ("whisper", "slower") when there is."""

    text: str
    voice: str | VoiceParams | None = None
    speed: float = 1.0
    trailing_silence: float = 0.0
    description: str | None = None
    voice_provider: str = "any"  # "builtin" or "custom" restricts where the name is looked up


@dataclass
class SpeechRequest:
    """What any dialect asks for, in the pipeline's own terms."""

    model: str
    utterances: list[Utterance]
    format: str = "mp3"
    sample_rate: int | None = None
    timestamps: frozenset[str] = frozenset()
    whole_file: bool = False
    seed: int = 0  # a distinct take: another designed voice, or a nudge of a fixed one
    variation: float = 1.0  # how far a seed moves a fixed voice (Hume's temperature)
    context_voice: VoiceParams | None = None  # the voice to continue (Hume's context)
    max_chars: int | None = None  # the dialect's own limit on total characters
    bitrate: int | None = None  # lossy codecs: bits per second (default: settings.mp3_bitrate)
    generations: int = 1  # takes of this text the same request makes (Hume num_generations)
    # response bytes per audio byte (base64, copies) for the response-size bound; None: not
    # a response held by a client (an async job, bounded by max_job_chars instead)
    framing: float | None = 1.0
    normalize: bool = True  # read "$4.50" as "four dollars fifty" (orate extension; ElevenLabs'
    # apply_text_normalization)
    # pronunciation dictionaries as (id, version or None for the latest), in order of
    # precedence (ElevenLabs' pronunciation_dictionary_locators)
    lexicons: tuple[tuple[str, str | None], ...] = ()
    # ElevenLabs' inline tags: <break time="1.5s"/> and <phoneme …>word</phoneme> inside
    # plain text (no <speak> root) are read as a pause and as phonemes; other dialects keep
    # plain text plain
    inline_tags: bool = False


@dataclass
class Context:
    """Who asks, through which dialect, and whether the audio may be kept."""

    owner: str = "local"
    dialect: str = "openai"
    store: bool = True
    cache: bool = True
    record: bool = True  # add to history (cache warming does not)
    key_id: str | None = None  # the API key to charge characters to
    quota_left: int | None = None  # None: the key has no quota (no reservation needed);
    # otherwise a hint only: the reservation in the database decides


@dataclass
class Plan:
    request: SpeechRequest
    model: Model
    job: RenderJob
    voices: list[VoiceParams]
    format: AudioFormat
    characters: int
    sample_rate: int  # of the encoded output
    context: Context = field(default_factory=Context)
    cache_key: str | None = None
    segment_utterances: list[int] = field(default_factory=list)  # utterance of each segment
    reservation: Reservation | None = None  # characters taken from the quota
    # what could not be done as asked, reported to the caller, never dropped silently: a
    # pronunciation rule's IPA symbol the engine has no phoneme for, a voice value out of
    # range (clamped)
    warnings: list[str] = field(default_factory=list)


@dataclass
class SpeechEvent:
    """``audio`` bytes, ``timestamps``, a ``sentence`` boundary, or ``done`` with stats:
    the kinds the render step emitted, unchanged (``runtime.events.EventKind``)."""

    kind: EventKind
    audio: bytes = b""
    timestamps: list[Timestamp] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)


class EventStream(Protocol):
    """A speech's events as delivery hands them on: an async iterator that can be closed
    early (an async generator, or a reader of a synthesis in flight), so a caller that
    goes away releases its synthesis at once."""

    def __aiter__(self) -> AsyncIterator[SpeechEvent]: ...

    async def __anext__(self) -> SpeechEvent: ...

    async def aclose(self) -> None: ...


@dataclass
class Speech:
    """One accepted request: its generation id, whether the cache served it, its events."""

    id: str
    plan: Plan
    cache: str  # "hit", "miss" (synthesized now), "shared" (joined a synthesis), "off"
    events: EventStream


def request_to_dict(req: SpeechRequest) -> dict[str, Any]:
    """A request as JSON-able data, for work that outlives the HTTP call (jobs)."""
    out = asdict(req)
    out["timestamps"] = sorted(req.timestamps)
    return out


def request_from_dict(data: dict[str, Any]) -> SpeechRequest:
    def voice(v: Any) -> str | VoiceParams | None:
        return VoiceParams(**v) if isinstance(v, dict) else v

    fields = dict(data)
    fields["utterances"] = [
        Utterance(**{**u, "voice": voice(u.get("voice"))}) for u in data["utterances"]
    ]
    fields["timestamps"] = frozenset(data.get("timestamps") or ())
    fields["lexicons"] = tuple(tuple(x) for x in data.get("lexicons") or ())
    cv = data.get("context_voice")
    fields["context_voice"] = VoiceParams(**cv) if cv else None
    return SpeechRequest(**fields)
