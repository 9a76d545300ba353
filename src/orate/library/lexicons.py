"""Pronunciation dictionaries in the library: versioned, per owner.

A dictionary is the rows sharing a ``dictionary_id``; each change (create, add or
remove rules) adds a version and never rewrites an old one, so requests naming a
version are reproducible and cache keys stay honest. Reads of a given version are
cached in memory (versions are immutable); deleting a dictionary removes every
version.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, func, select

from orate.library.db import Sessions, rowcount
from orate.library.tables import LexiconVersion

ID_PREFIX = "pd_"
VERSION_PREFIX = "pdv_"


def lexicon_json(row: LexiconVersion) -> dict[str, Any]:
    """ElevenLabs' pronunciation dictionary metadata, plus the rules."""
    return {
        "id": row.dictionary_id,
        "name": row.name,
        "description": row.description,
        "version_id": row.version_id,
        "latest_version_id": row.version_id,
        "version": row.version,
        "created_by": row.owner,
        "creation_time_unix": int(row.created_at.timestamp()),
        "rules_count": len(row.rules),
        "rules": row.rules,
    }


class LexiconStore:
    def __init__(self, sessions: Sessions) -> None:
        self._sessions = sessions
        self._versions: dict[str, LexiconVersion] = {}

    async def create(
        self, owner: str, name: str, rules: list[dict[str, Any]], description: str = ""
    ) -> LexiconVersion:
        return await self._add(
            owner, ID_PREFIX + secrets.token_hex(10), 1, name, description, rules
        )

    async def new_version(
        self, latest: LexiconVersion, rules: list[dict[str, Any]]
    ) -> LexiconVersion:
        return await self._add(
            latest.owner,
            latest.dictionary_id,
            latest.version + 1,
            latest.name,
            latest.description,
            rules,
        )

    async def _add(
        self,
        owner: str,
        dictionary_id: str,
        version: int,
        name: str,
        description: str,
        rules: list[dict[str, Any]],
    ) -> LexiconVersion:
        name = name.strip()
        if not name or len(name) > 200:
            raise ValueError("a dictionary name needs 1 to 200 characters")
        row = LexiconVersion(
            version_id=VERSION_PREFIX + secrets.token_hex(10),
            dictionary_id=dictionary_id,
            version=version,
            owner=owner,
            name=name,
            description=description,
            rules=rules,
            created_at=datetime.now(UTC),
        )
        async with self._sessions() as session, session.begin():
            session.add(row)
        return row

    async def get(
        self, owner: str | None, dictionary_id: str, version_id: str | None = None
    ) -> LexiconVersion | None:
        """A version (the latest when ``version_id`` is None) that ``owner`` may read
        (``None``: any owner, for admins and the CLI)."""
        row: LexiconVersion | None
        if version_id is not None and version_id in self._versions:
            row = self._versions[version_id]
            ok = row.dictionary_id == dictionary_id and (owner is None or row.owner == owner)
            return row if ok else None
        async with self._sessions() as session:
            query = select(LexiconVersion).where(LexiconVersion.dictionary_id == dictionary_id)
            if owner is not None:
                query = query.where(LexiconVersion.owner == owner)
            if version_id is not None:
                query = query.where(LexiconVersion.version_id == version_id)
            query = query.order_by(LexiconVersion.version.desc()).limit(1)
            row = (await session.execute(query)).scalar_one_or_none()
        if row is not None and version_id is not None:
            self._versions[version_id] = row
        return row

    async def list(
        self, owner: str | None, limit: int = 100, offset: int = 0
    ) -> list[LexiconVersion]:
        """The latest version of each dictionary, newest first."""
        async with self._sessions() as session:
            latest = select(
                LexiconVersion.dictionary_id, func.max(LexiconVersion.version).label("v")
            )
            if owner is not None:
                latest = latest.where(LexiconVersion.owner == owner)
            sub = latest.group_by(LexiconVersion.dictionary_id).subquery()
            query = (
                select(LexiconVersion)
                .join(
                    sub,
                    (LexiconVersion.dictionary_id == sub.c.dictionary_id)
                    & (LexiconVersion.version == sub.c.v),
                )
                .order_by(LexiconVersion.created_at.desc())
                .limit(limit)
                .offset(offset)
            )
            return list((await session.execute(query)).scalars())

    async def delete(self, owner: str | None, dictionary_id: str) -> bool:
        async with self._sessions() as session, session.begin():
            query = delete(LexiconVersion).where(LexiconVersion.dictionary_id == dictionary_id)
            if owner is not None:
                query = query.where(LexiconVersion.owner == owner)
            result = await session.execute(query)
        self._versions = {
            k: v for k, v in self._versions.items() if v.dictionary_id != dictionary_id
        }
        return bool(rowcount(result))
