"""Per-key limits on requests: a rate (requests a minute) and requests in progress.

One ``KeyLimits`` per process, shared by every listener (the HTTP guard, the Wyoming
server), so a key's limits hold across them; when replicas share a database the
limits are held there instead, for the whole service (library/shared.py). A refusal
is a ``LimitReached`` (429 with ``Retry-After``), which each listener words in its
own dialect.
"""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass, field

from orate.library.keys import KeyInfo
from orate.library.shared import SharedLimits
from orate.speech.types import SpeechError


class LimitReached(SpeechError):
    """A key is over its request rate or its requests in progress (429)."""


@dataclass
class Bucket:
    """A token bucket: ``rate`` requests per minute, bursts up to ``rate``."""

    rate: int
    tokens: float = -1.0
    stamp: float = field(default_factory=time.monotonic)

    def take(self) -> float:
        """0 when allowed; otherwise seconds until a token is free."""
        now = time.monotonic()
        if self.tokens < 0:
            self.tokens = float(self.rate)
        self.tokens = min(float(self.rate), self.tokens + (now - self.stamp) * self.rate / 60)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) * 60 / self.rate


class KeyLimits:
    """Per-key request rate and requests in progress, for every listener of the process."""

    def __init__(self) -> None:
        self._buckets: dict[str, Bucket] = {}
        self._active: dict[str, int] = {}
        #: set when replicas share a database: the limits are then held there, for the
        #: whole service (library/shared.py), instead of in this process
        self.shared: SharedLimits | None = None

    async def admit(self, key: KeyInfo | None) -> None:
        """``enter``, held service-wide when the limits are shared."""
        if self.shared is None or key is None or not (key.rate_per_minute or key.concurrency):
            self.enter(key)
            return
        refusal = await self.shared.enter(key.id, key.rate_per_minute, key.concurrency)
        if refusal is None:
            return
        wait = max(math.ceil(refusal.retry_after), 1)
        if refusal.reason == "rate":
            raise LimitReached(
                429,
                "rate_limited",
                f"this key may make {key.rate_per_minute} requests a minute; retry in {wait} s",
                headers={"Retry-After": str(wait)},
            )
        raise LimitReached(
            429,
            "too_many_streams",
            f"this key may have {key.concurrency} "
            "requests in progress at once; retry when one has finished",
            headers={"Retry-After": "1"},
        )

    async def release(self, key: KeyInfo | None) -> None:
        if self.shared is None or key is None or not (key.rate_per_minute or key.concurrency):
            self.leave(key)
            return
        await asyncio.shield(self.shared.leave(key.id))  # a cancelled request still leaves

    def enter(self, key: KeyInfo | None) -> None:
        """Count a request in, or raise ``LimitReached`` (429) saying when to retry."""
        if key is None:
            return
        if key.rate_per_minute:
            bucket = self._buckets.setdefault(key.id, Bucket(key.rate_per_minute))
            bucket.rate = key.rate_per_minute
            wait = bucket.take()
            if wait > 0:
                raise LimitReached(
                    429,
                    "rate_limited",
                    f"this key may make {key.rate_per_minute} "
                    f"requests a minute; retry in {math.ceil(wait)} s",
                    headers={"Retry-After": str(math.ceil(wait))},
                )
        active = self._active.get(key.id, 0)
        if key.concurrency and active >= key.concurrency:
            raise LimitReached(
                429,
                "too_many_streams",
                f"this key may have {key.concurrency} "
                "requests in progress at once; retry when one has finished",
                headers={"Retry-After": "1"},
            )
        self._active[key.id] = active + 1

    def leave(self, key: KeyInfo | None) -> None:
        if key is not None:
            self._active[key.id] = max(self._active.get(key.id, 1) - 1, 0)
