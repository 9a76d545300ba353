"""Durable jobs: accepted work that survives a crash and completes exactly once.

A job row is committed before the caller hears 202, so nothing accepted is
lost. A runner claims a job by taking its lease (a conditional UPDATE, safe
with several servers on one PostgreSQL) and renews it while it works. If the
runner dies, the lease runs out and another runner starts the job afresh.
Completion is conditional on still holding the lease, so a job can never be
completed twice.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, delete, func, or_, select, update

from orate.library.db import Sessions, rowcount
from orate.library.tables import Job

PENDING, PROCESSING, COMPLETED, FAILED = "pending", "processing", "completed", "failed"
MAX_ATTEMPTS = 3


def _now() -> datetime:
    return datetime.now(UTC)


class JobStore:
    def __init__(self, sessions: Sessions) -> None:
        self._sessions = sessions
        self._served: dict[str, int] = {}  # owner → when this process last claimed its job
        self._turn = 0

    async def pending(self, owner: str | None = None) -> int:
        """Jobs waiting or running: an owner's, or everyone's."""
        query = select(func.count()).select_from(Job).where(Job.status.in_((PENDING, PROCESSING)))
        if owner is not None:
            query = query.where(Job.owner == owner)
        async with self._sessions() as session:
            return int((await session.scalar(query)) or 0)

    async def submit(
        self,
        *,
        owner: str,
        dialect: str,
        model: str,
        request: dict[str, Any],
        characters: int,
        cost: float,
        currency: str,
    ) -> Job:
        now = _now()
        job = Job(
            id=str(uuid.uuid4()),
            owner=owner,
            dialect=dialect,
            model=model,
            status=PENDING,
            progress=0.0,
            request=request,
            characters=characters,
            cost=cost,
            currency=currency,
            attempts=0,
            created_at=now,
            updated_at=now,
        )
        async with self._sessions() as session, session.begin():
            session.add(job)
        return job

    async def get(self, job_id: str, owner: str | None) -> Job | None:
        try:
            job_id.encode("utf-8")
        except UnicodeEncodeError:
            return None  # not an id this store could have made
        async with self._sessions() as session:
            job = await session.get(Job, job_id)
        if job is None or (owner is not None and job.owner != owner):
            return None
        return job

    async def list(
        self, owner: str | None, limit: int = 50, status: str | None = None
    ) -> list[Job]:
        async with self._sessions() as session:
            query = select(Job).order_by(Job.created_at.desc()).limit(limit)
            if owner is not None:
                query = query.where(Job.owner == owner)
            if status is not None:
                query = query.where(Job.status == status)
            return list((await session.scalars(query)).all())

    async def claim(self, runner: str, lease: float) -> Job | None:
        """Take a job that is waiting, or whose runner stopped renewing it: the oldest of
        the owner whose turn it is (owners take turns, oldest job first within each).

        The claim is one statement:
        ``UPDATE … WHERE id = (SELECT … FOR UPDATE SKIP LOCKED) RETURNING``.
        On PostgreSQL, replicas polling at once each skip the rows another is claiming
        instead of queueing behind its lock; the claimable condition is repeated in the
        UPDATE, so a row can never be taken twice (SQLite has one writer and ignores
        the FOR UPDATE clause).
        """
        now = _now()
        claimable = or_(
            Job.status == PENDING, and_(Job.status == PROCESSING, Job.lease_until < now)
        )
        # turns go round the owners with claimable jobs: the one this process served
        # longest ago goes first, so one key's backlog never starves another's job
        async with self._sessions() as session:
            waiting = (
                await session.execute(
                    select(Job.owner, func.min(Job.created_at)).where(claimable).group_by(Job.owner)
                )
            ).all()
        if not waiting:
            return None
        owner = min(waiting, key=lambda row: (self._served.get(row[0], -1), row[1]))[0]
        taken = await self._claim(claimable, Job.owner == owner, runner, lease, now)
        if taken is None:  # another replica took that owner's job meanwhile
            taken = await self._claim(claimable, None, runner, lease, now)
        if taken is None:
            return None
        job = await self.get(taken, None)
        if job is not None:
            self._turn += 1
            self._served[job.owner] = self._turn
            if len(self._served) > 10_000:  # owners long gone keep no memory here
                self._served = dict(sorted(self._served.items(), key=lambda kv: kv[1])[-1000:])
        return job

    async def _claim(
        self,
        claimable: ColumnElement[bool],
        among: ColumnElement[bool] | None,
        runner: str,
        lease: float,
        now: datetime,
    ) -> str | None:
        where = claimable if among is None else and_(claimable, among)
        oldest = (
            select(Job.id)
            .where(where)
            .order_by(Job.created_at)
            .limit(1)
            .with_for_update(skip_locked=True)
            .scalar_subquery()
        )
        async with self._sessions() as session, session.begin():
            taken = (
                await session.execute(
                    update(Job)
                    .where(Job.id == oldest, claimable)
                    .values(
                        status=PROCESSING,
                        lease_owner=runner,
                        lease_until=now + timedelta(seconds=lease),
                        progress=0.0,
                        attempts=Job.attempts + 1,
                        updated_at=now,
                    )
                    .returning(Job.id)
                )
            ).first()
        return taken[0] if taken is not None else None

    async def heartbeat(self, job_id: str, runner: str, lease: float, progress: float) -> bool:
        """Renew the lease and record progress; False if the job is no longer ours."""
        now = _now()
        async with self._sessions() as session, session.begin():
            result = await session.execute(
                update(Job)
                .where(Job.id == job_id, Job.lease_owner == runner, Job.status == PROCESSING)
                .values(
                    lease_until=now + timedelta(seconds=lease),
                    progress=round(min(max(progress, 0.0), 1.0), 4),
                    updated_at=now,
                )
            )
        return rowcount(result) == 1

    async def complete(self, job_id: str, runner: str, generation_id: str, cost: float) -> bool:
        now = _now()
        async with self._sessions() as session, session.begin():
            result = await session.execute(
                update(Job)
                .where(Job.id == job_id, Job.lease_owner == runner, Job.status == PROCESSING)
                .values(
                    status=COMPLETED,
                    progress=1.0,
                    generation_id=generation_id,
                    cost=cost,
                    lease_owner=None,
                    lease_until=None,
                    finished_at=now,
                    updated_at=now,
                )
            )
        return rowcount(result) == 1

    async def fail(self, job_id: str, runner: str, error: str, *, retry: bool) -> None:
        """Record a failure; a job that may succeed on another try goes back to the queue."""
        now = _now()
        async with self._sessions() as session, session.begin():
            job = await session.get(Job, job_id)
            if job is None or job.lease_owner != runner:
                return
            if retry and job.attempts < MAX_ATTEMPTS:
                job.status, job.lease_owner, job.lease_until = PENDING, None, None
            else:
                job.status, job.error, job.finished_at = FAILED, error[:2000], now
                job.lease_owner, job.lease_until = None, None
            job.updated_at = now

    async def waiting(self) -> int:
        async with self._sessions() as session:
            rows = await session.scalars(select(Job.id).where(Job.status == PENDING))
            return len(rows.all())

    async def expire(self, before: datetime) -> int:
        """Forget finished jobs older than ``before`` (retention)."""
        async with self._sessions() as session, session.begin():
            result = await session.execute(
                delete(Job).where(Job.status.in_((COMPLETED, FAILED)), Job.finished_at < before)
            )
        return rowcount(result) or 0
