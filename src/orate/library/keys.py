"""API keys: created once (the secret is shown then and never again), stored hashed.

Keys carry 256 random bits, so a SHA-256 of the key is a safe lookup handle
(no slow hash is needed against guessing); the final equality check is
constant-time. Lookups are cached for a few seconds so a request costs no
database round trip, which also bounds how long a revoked key keeps working.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select, update

from orate.library.models import ApiKey

KEY_PREFIX = "orate_"
CACHE_SECONDS = 2.0


def hash_key(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "replace")).hexdigest()


@dataclass(frozen=True)
class KeyInfo:
    """What a request needs to know about its key (no secret in it)."""

    id: str
    name: str
    admin: bool
    rate_per_minute: int | None
    concurrency: int | None
    quota_chars: int | None
    used_chars: int


def _info(row: ApiKey) -> KeyInfo:
    return KeyInfo(row.id, row.name, row.admin, row.rate_per_minute, row.concurrency,
                   row.quota_chars, row.used_chars)


class KeyStore:
    def __init__(self, sessions: Any) -> None:
        self._sessions = sessions
        self._cache: dict[str, tuple[float, KeyInfo | None]] = {}
        self._any: tuple[float, bool] = (0.0, False)

    async def create(self, name: str, *, admin: bool = False, rate_per_minute: int | None = None,
                     concurrency: int | None = None, quota_chars: int | None = None
                     ) -> tuple[KeyInfo, str]:
        """A new key and its secret (the only time the secret exists outside the caller)."""
        secret = KEY_PREFIX + secrets.token_urlsafe(32)
        row = ApiKey(id="key_" + secrets.token_hex(8), name=name.strip() or "key",
                     hash=hash_key(secret), prefix=secret[:12], admin=admin,
                     rate_per_minute=rate_per_minute, concurrency=concurrency,
                     quota_chars=quota_chars, used_chars=0, created_at=datetime.now(UTC))
        async with self._sessions() as session, session.begin():
            session.add(row)
        self._any = (0.0, True)
        return _info(row), secret

    async def list(self) -> list[dict[str, Any]]:
        async with self._sessions() as session:
            rows = (await session.scalars(select(ApiKey).order_by(ApiKey.created_at))).all()
        return [{"id": r.id, "name": r.name, "prefix": r.prefix, "admin": r.admin,
                 "rate_per_minute": r.rate_per_minute, "concurrency": r.concurrency,
                 "quota_chars": r.quota_chars, "used_chars": r.used_chars,
                 "created_at": r.created_at.isoformat(),
                 "revoked": r.revoked_at is not None} for r in rows]

    async def revoke(self, ref: str) -> bool:
        """Revoke by id, name or the shown prefix."""
        async with self._sessions() as session, session.begin():
            result = await session.execute(
                update(ApiKey).where((ApiKey.id == ref) | (ApiKey.name == ref)
                                     | (ApiKey.prefix == ref), ApiKey.revoked_at.is_(None))
                .values(revoked_at=datetime.now(UTC)))
        self._cache.clear()
        return (result.rowcount or 0) > 0

    async def any_active(self) -> bool:
        """Whether auth is on (any unrevoked key exists); cached for a moment."""
        checked, value = self._any
        if time.monotonic() - checked < CACHE_SECONDS:
            return value
        async with self._sessions() as session:
            count = await session.scalar(select(func.count()).select_from(ApiKey)
                                         .where(ApiKey.revoked_at.is_(None)))
        value = bool(count)
        self._any = (time.monotonic(), value)
        return value

    async def check(self, secret: str) -> KeyInfo | None:
        """The key's info if the secret is a live key, else None."""
        digest = hash_key(secret)
        cached = self._cache.get(digest)
        if cached is not None and time.monotonic() - cached[0] < CACHE_SECONDS:
            return cached[1]
        async with self._sessions() as session:
            row = await session.scalar(select(ApiKey).where(ApiKey.hash == digest))
        info = None
        if row is not None and row.revoked_at is None and hmac.compare_digest(row.hash, digest):
            info = _info(row)
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[digest] = (time.monotonic(), info)
        return info

    async def find(self, ref: str) -> KeyInfo | None:
        """A live key by id or name, for listeners bound to a key (Wyoming has no auth
        field); cached like ``check``, so a revocation or a used quota shows in seconds."""
        cached = self._cache.get("ref:" + ref)
        if cached is not None and time.monotonic() - cached[0] < CACHE_SECONDS:
            return cached[1]
        async with self._sessions() as session:
            row = await session.scalar(
                select(ApiKey).where((ApiKey.id == ref) | (ApiKey.name == ref),
                                     ApiKey.revoked_at.is_(None))
                .order_by(ApiKey.created_at.desc()).limit(1))
        info = _info(row) if row is not None else None
        self._cache["ref:" + ref] = (time.monotonic(), info)
        return info

    async def charge(self, key_id: str, characters: int) -> None:
        """Count characters against a key, here and in the cached copy (no re-read)."""
        async with self._sessions() as session, session.begin():
            await session.execute(update(ApiKey).where(ApiKey.id == key_id)
                                  .values(used_chars=ApiKey.used_chars + characters))
        for digest, (stamp, info) in list(self._cache.items()):
            if info is not None and info.id == key_id:
                self._cache[digest] = (stamp, replace(info,
                                                      used_chars=info.used_chars + characters))
