"""The one vocabulary of event kinds, from the render step in a worker to a route.

A render emits ``(EventKind, payload)``; a worker frames the kind onto its pipe (or a
Ray actor pickles it); the backend's stream hands it to the speech layer, which wraps
it in a ``SpeechEvent`` of the same kind; a dialect reads ``event.kind``. The kind is
the same object all the way: no table translates one numbering into another.

It is a ``StrEnum`` so a kind reads as its name in logs and history (``"audio"``) and
compares equal to it; over the worker pipe it travels as one byte, ``kind.code``.
"""

from __future__ import annotations

from enum import StrEnum


class EventKind(StrEnum):
    """What one frame of a synthesis carries."""

    #: encoded audio bytes
    AUDIO = "audio"
    #: word, phoneme and mark times of one sentence
    TIMESTAMPS = "timestamps"
    #: a sentence's boundary (its span and times), after its audio
    SENTENCE = "sentence"
    #: the render finished: samples, rates, duration, bytes
    DONE = "done"
    #: the render failed: a message and an optional code
    ERROR = "error"
    #: a worker's first frame: it has loaded its engines (worker protocol only)
    READY = "ready"
    #: the last frame of every job, after DONE or ERROR or a cancel (worker protocol only)
    END = "end"

    @property
    def code(self) -> int:
        """The kind as one byte on the worker pipe."""
        return _CODES[self]

    @classmethod
    def of_code(cls, code: int) -> EventKind:
        """The kind a pipe byte stands for (``ValueError`` for a byte that is none)."""
        try:
            return _KINDS[code]
        except IndexError:
            raise ValueError(f"no event kind has the code {code}") from None


_KINDS: tuple[EventKind, ...] = tuple(EventKind)
_CODES: dict[EventKind, int] = {kind: n for n, kind in enumerate(_KINDS)}
