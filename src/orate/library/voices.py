"""Custom voices: named sets of voice parameters, per owner, usable in every dialect."""

from __future__ import annotations

import secrets
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.exc import IntegrityError

from orate.engines.base import VoiceParams
from orate.library.db import Sessions
from orate.library.tables import Voice

VOICE_ID_PREFIX = "voice_"
MAX_NAME = 200


class VoiceExists(ValueError):
    pass


def params_of(row: Voice) -> VoiceParams:
    return VoiceParams(**row.params)


def voice_json(row: Voice) -> dict[str, Any]:
    return {
        "id": row.id,
        "voice_id": row.id,
        "name": row.name,
        "engine": row.engine,
        "language": row.language,
        "gender": row.gender,
        "description": row.description,
        "source": row.source,
        "source_generation_id": row.source_generation_id,
        "params": row.params,
        "created_at": row.created_at.isoformat(),
    }


class VoiceLibrary:
    def __init__(self, sessions: Sessions) -> None:
        self._sessions = sessions

    async def create(
        self,
        owner: str,
        name: str,
        params: VoiceParams,
        *,
        language: str,
        gender: str,
        description: str = "",
        source: str = "params",
        source_generation_id: str | None = None,
    ) -> Voice:
        name = name.strip()
        if not name or len(name) > MAX_NAME:
            raise ValueError(f"a voice name needs 1 to {MAX_NAME} characters")
        row = Voice(
            id=VOICE_ID_PREFIX + secrets.token_hex(12),
            owner=owner,
            name=name,
            engine=params.engine,
            params=asdict(params),
            language=language,
            gender=gender,
            description=description,
            source=source,
            source_generation_id=source_generation_id,
            created_at=datetime.now(UTC),
        )
        try:
            async with self._sessions() as session, session.begin():
                session.add(row)
        except IntegrityError:
            raise VoiceExists(
                f"you already have a voice named {name!r}; pick another name "
                "or delete that one first"
            ) from None
        return row

    async def find(self, owner: str | None, ref: str) -> Voice | None:
        """A voice by id or by name (names are unique per owner)."""
        try:
            ref.encode("utf-8")
        except UnicodeEncodeError:
            return None  # no stored name can hold a lone surrogate
        async with self._sessions() as session:
            query = select(Voice).where(or_(Voice.id == ref, Voice.name == ref))
            if owner is not None:
                query = query.where(Voice.owner == owner)
            rows = (await session.scalars(query.limit(2))).all()
        by_id = [r for r in rows if r.id == ref]
        return by_id[0] if by_id else (rows[0] if rows else None)

    async def list(
        self,
        owner: str | None,
        *,
        engine: str | None = None,
        language: str | None = None,
        limit: int = 50,
        offset: int = 0,
        ascending: bool = False,
    ) -> tuple[list[Voice], int]:
        async with self._sessions() as session:
            query = select(Voice)
            if owner is not None:
                query = query.where(Voice.owner == owner)
            if engine:
                query = query.where(Voice.engine == engine)
            if language:
                query = query.where(Voice.language.like(f"{language.lower()}%"))
            total = await session.scalar(select(func.count()).select_from(query.subquery()))
            order = Voice.created_at.asc() if ascending else Voice.created_at.desc()
            rows = (
                await session.scalars(query.order_by(order, Voice.id).offset(offset).limit(limit))
            ).all()
        return list(rows), int(total or 0)

    async def rename(self, owner: str | None, ref: str, name: str) -> Voice | None:
        """Give a voice a new name (unique per owner); None when there is no such voice."""
        name = name.strip()
        if not name or len(name) > MAX_NAME:
            raise ValueError(f"a voice name needs 1 to {MAX_NAME} characters")
        row = await self.find(owner, ref)
        if row is None:
            return None
        try:
            async with self._sessions() as session, session.begin():
                found = await session.get(Voice, row.id)
                if found is None:
                    return None
                found.name = name
                row = found
        except IntegrityError:
            raise VoiceExists(
                f"you already have a voice named {name!r}; pick another name"
            ) from None
        return row

    async def delete(self, owner: str | None, ref: str) -> bool:
        row = await self.find(owner, ref)
        if row is None:
            return False
        async with self._sessions() as session, session.begin():
            found = await session.get(Voice, row.id)
            if found is not None:
                await session.delete(found)
        return True
