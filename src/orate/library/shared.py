"""State that several API replicas must hold together: per-key limits and service leases.

One replica can keep a key's token bucket and its count of requests in progress
in memory; several replicas behind a load balancer cannot (a 5/min key would
get 5 per replica). So on a shared database each key's bucket lives in one row,
and a request is admitted by ONE conditional upsert that refills the bucket,
takes a token and counts the request in, or changes nothing (no row returned =
refused). No lock is held across statements, so the cost is one round trip
(measured in benchmarks/scale_section.py). PostgreSQL is enough; Redis would
save a fraction of a millisecond at the price of another system to run.

Leases (``service_leases``) make periodic work (retention, pruning) run on one
replica of the service: whoever holds the lease does it, and a holder that dies
loses it when it runs out.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine


@dataclass(frozen=True)
class Refusal:
    """Why a request was not admitted, and when to try again."""

    reason: str  # "rate" | "concurrency"
    retry_after: float


def _least(engine: AsyncEngine) -> str:
    return "LEAST" if engine.dialect.name == "postgresql" else "MIN"


class SharedLimits:
    """Per-key rate and concurrency, held in the database for every replica."""

    def __init__(self, engine: AsyncEngine) -> None:
        # each statement is atomic on its own: autocommit saves the BEGIN and COMMIT
        # round trips (0.69 → 0.60 ms p50 per admit on PostgreSQL here)
        self._engine = engine.execution_options(isolation_level="AUTOCOMMIT")
        least = _least(engine)
        refill = f"{least}(:rate, key_limits.tokens + (:now - key_limits.stamp) * :rate / 60.0)"
        # one statement: create the row on first use, or refill + take + count in,
        # but only where both limits allow it
        self._enter = text(
            "INSERT INTO key_limits (key_id, tokens, stamp, active) "
            "VALUES (:key, :rate - 1, :now, 1) "
            "ON CONFLICT (key_id) DO UPDATE SET "
            f"tokens = CASE WHEN :rate > 0 THEN {refill} - 1 ELSE 0 END, "
            "stamp = :now, active = key_limits.active + 1 "
            f"WHERE (:rate = 0 OR {refill} >= 1) "
            "AND (:conc = 0 OR key_limits.active < :conc) "
            "RETURNING active"
        )
        self._leave = text(
            "UPDATE key_limits SET active = CASE WHEN active > 0 "
            "THEN active - 1 ELSE 0 END WHERE key_id = :key"
        )
        self._state = text("SELECT tokens, stamp, active FROM key_limits WHERE key_id = :key")

    async def enter(self, key_id: str, rate: int | None, concurrency: int | None) -> Refusal | None:
        """Admit one request of ``key_id`` (None) or say why not."""
        now = time.time()
        params = {
            "key": key_id,
            "rate": float(rate or 0),
            "conc": int(concurrency or 0),
            "now": now,
        }
        async with self._engine.begin() as conn:
            admitted = (await conn.execute(self._enter, params)).first()
            if admitted is not None:
                return None
            row = (await conn.execute(self._state, {"key": key_id})).first()
        if row is None:  # deleted meanwhile: let the next try create it again
            return Refusal("rate", 1.0)
        tokens, stamp, _active = row
        if rate:
            level = min(float(rate), tokens + (now - stamp) * rate / 60.0)
            if level < 1:
                return Refusal("rate", (1 - level) * 60 / rate)
        return Refusal("concurrency", 1.0)

    async def leave(self, key_id: str) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(self._leave, {"key": key_id})


class Leases:
    """Named leases in the database: one holder at a time, taken over when they expire."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._take = text(
            "INSERT INTO service_leases (name, holder, until) VALUES (:name, :holder, :until) "
            "ON CONFLICT (name) DO UPDATE SET holder = :holder, until = :until "
            "WHERE service_leases.until < :now OR service_leases.holder = :holder "
            "RETURNING holder"
        )

    async def acquire(self, name: str, holder: str, seconds: float) -> bool:
        """Take or renew ``name`` for ``seconds``; False if another live holder has it."""
        now = time.time()
        async with self._engine.begin() as conn:
            row = (
                await conn.execute(
                    self._take, {"name": name, "holder": holder, "until": now + seconds, "now": now}
                )
            ).first()
        return row is not None

    async def holder(self, name: str) -> str | None:
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(
                    text("SELECT holder, until FROM service_leases WHERE name = :name"),
                    {"name": name},
                )
            ).first()
        return row[0] if row is not None and row[1] > time.time() else None
