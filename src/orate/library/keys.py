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
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from orate.library.db import Sessions, rowcount
from orate.library.tables import ApiKey, ServerState

KEY_PREFIX = "orate_"
CACHE_SECONDS = 1.5  # < 2 s: a revocation reaches every replica within 2 s


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


class QuotaExceeded(Exception):
    """A reservation that does not fit in what is left of the key's quota."""

    def __init__(self, left: int, wanted: int) -> None:
        super().__init__(f"{left} characters left, {wanted} wanted")
        self.left = left
        self.wanted = wanted


@dataclass
class Reservation:
    """Characters taken from a key's quota before synthesis, settled after it.

    ``reserve`` takes them with one conditional UPDATE (``used + n <= quota``), so
    concurrent requests, or several processes sharing PostgreSQL, can never spend
    more than the quota between them. ``settle(actual)`` corrects the charge to what
    was really spoken; ``release()`` gives it all back (nothing was spoken).
    """

    store: KeyStore | None
    key_id: str | None
    chars: int
    open: bool = True

    async def settle(self, actual: int | None = None) -> None:
        if not self.open:
            return
        self.open = False
        delta = (self.chars if actual is None else actual) - self.chars
        if delta and self.store is not None and self.key_id is not None:
            await self.store.adjust(self.key_id, delta)

    async def release(self) -> None:
        await self.settle(0)


def _info(row: ApiKey) -> KeyInfo:
    return KeyInfo(
        row.id,
        row.name,
        row.admin,
        row.rate_per_minute,
        row.concurrency,
        row.quota_chars,
        row.used_chars,
    )


class KeyStore:
    def __init__(self, sessions: Sessions) -> None:
        self._sessions = sessions
        self._cache: dict[str, tuple[float, KeyInfo | None]] = {}
        self._any: tuple[float, bool] = (0.0, False)
        self._auth: tuple[float, bool] = (0.0, False)
        self._revoked: dict[str, float] = {}  # digests of revoked keys seen: always 401

    async def create(
        self,
        name: str,
        *,
        admin: bool = False,
        rate_per_minute: int | None = None,
        concurrency: int | None = None,
        quota_chars: int | None = None,
    ) -> tuple[KeyInfo, str]:
        """A new key and its secret (the only time the secret exists outside the caller)."""
        secret = KEY_PREFIX + secrets.token_urlsafe(32)
        row = ApiKey(
            id="key_" + secrets.token_hex(8),
            name=name.strip() or "key",
            hash=hash_key(secret),
            prefix=secret[:12],
            admin=admin,
            rate_per_minute=rate_per_minute,
            concurrency=concurrency,
            quota_chars=quota_chars,
            used_chars=0,
            created_at=datetime.now(UTC),
        )
        async with self._sessions() as session, session.begin():
            session.add(row)
            await self._set_state(session, "auth", "on")  # stays on until opened explicitly
        self._any = (0.0, True)
        self._auth = (0.0, True)
        return _info(row), secret

    async def adopt(self, name: str, secret: str) -> tuple[str, str | None]:
        """Make ``secret`` the live admin key named ``name``, the operator's first key.

        Used on every start with a secret given from outside (``ORATE_ADMIN_KEY``), so it
        must be idempotent and safe to race: replicas starting together against one
        database may all try; the unique hash lets one insert win and the others adopt.
        Returns ``(outcome, key id)``: ``created`` or ``adopted`` (this secret is already
        that key), ``conflict`` (a live key of that name has another secret: it is never
        replaced silently), ``taken`` (the secret belongs to another key, or to a revoked
        one: a revoked secret must not come back). The secret's characters are not kept
        anywhere, not even as the shown prefix (an operator's secret may be short).
        """
        digest = hash_key(secret)
        for _ in range(3):
            async with self._sessions() as session:
                same = await session.scalar(select(ApiKey).where(ApiKey.hash == digest))
                named = await session.scalar(
                    select(ApiKey)
                    .where(ApiKey.name == name, ApiKey.revoked_at.is_(None))
                    .order_by(ApiKey.created_at.desc())
                    .limit(1)
                )
            if same is not None:
                if same.name == name and same.revoked_at is None:
                    return "adopted", same.id
                return "taken", same.id
            if named is not None:
                return "conflict", named.id
            row = ApiKey(
                id="key_" + secrets.token_hex(8),
                name=name,
                hash=digest,
                prefix="env_" + digest[:8],
                admin=True,
                used_chars=0,
                created_at=datetime.now(UTC),
            )
            try:
                async with self._sessions() as session, session.begin():
                    session.add(row)
                    await self._set_state(session, "auth", "on")
            except IntegrityError:  # another replica inserted it (or "auth") first
                continue
            self._any = (0.0, True)
            self._auth = (0.0, True)
            return "created", row.id
        raise RuntimeError("could not create or adopt the admin key (database contention)")

    @staticmethod
    async def _set_state(session: AsyncSession, key: str, value: str) -> None:
        row = await session.get(ServerState, key)
        if row is None:
            session.add(ServerState(key=key, value=value))
        else:
            row.value = value

    async def auth_enabled(self) -> bool:
        """Whether the operator ever turned auth on (by creating a key) and has not
        turned it off with ``orate keys open``; cached for a moment."""
        checked, value = self._auth
        if time.monotonic() - checked < CACHE_SECONDS:
            return value
        async with self._sessions() as session:
            row = await session.get(ServerState, "auth")
        value = row is not None and row.value == "on"
        self._auth = (time.monotonic(), value)
        return value

    async def auth_required(self, mode: str = "auto") -> bool:
        """Whether requests need a key. ``auto``: once a key was created, until opened
        explicitly; ``on``: always; ``open``: only while a live key exists (the old rule)."""
        if mode == "on":
            return True
        if await self.any_active():
            return True
        return mode == "auto" and await self.auth_enabled()

    async def open_auth(self) -> int:
        """Turn auth off. Refused (returns the count) while live keys remain."""
        async with self._sessions() as session, session.begin():
            live = await session.scalar(
                select(func.count()).select_from(ApiKey).where(ApiKey.revoked_at.is_(None))
            )
            if live:
                return int(live)
            await self._set_state(session, "auth", "off")
        self._auth = (0.0, False)
        return 0

    async def list(self) -> list[dict[str, Any]]:
        async with self._sessions() as session:
            rows = (await session.scalars(select(ApiKey).order_by(ApiKey.created_at))).all()
        return [
            {
                "id": r.id,
                "name": r.name,
                "prefix": r.prefix,
                "admin": r.admin,
                "rate_per_minute": r.rate_per_minute,
                "concurrency": r.concurrency,
                "quota_chars": r.quota_chars,
                "used_chars": r.used_chars,
                "created_at": r.created_at.isoformat(),
                "revoked": r.revoked_at is not None,
            }
            for r in rows
        ]

    async def revoke(self, ref: str) -> bool:
        """Revoke by id, name or the shown prefix."""
        async with self._sessions() as session, session.begin():
            result = await session.execute(
                update(ApiKey)
                .where(
                    (ApiKey.id == ref) | (ApiKey.name == ref) | (ApiKey.prefix == ref),
                    ApiKey.revoked_at.is_(None),
                )
                .values(revoked_at=datetime.now(UTC))
            )
        self._cache.clear()
        return (rowcount(result) or 0) > 0

    async def any_active(self) -> bool:
        """Whether auth is on (any unrevoked key exists); cached for a moment."""
        checked, value = self._any
        if time.monotonic() - checked < CACHE_SECONDS:
            return value
        async with self._sessions() as session:
            count = await session.scalar(
                select(func.count()).select_from(ApiKey).where(ApiKey.revoked_at.is_(None))
            )
        value = bool(count)
        self._any = (time.monotonic(), value)
        return value

    def is_revoked(self, secret: str) -> bool:
        """Whether ``check`` has seen this secret as a revoked key (call after check)."""
        return hash_key(secret) in self._revoked

    async def check(self, secret: str) -> KeyInfo | None:
        """The key's info if the secret is a live key, else None."""
        digest = hash_key(secret)
        cached = self._cache.get(digest)
        if cached is not None and time.monotonic() - cached[0] < CACHE_SECONDS:
            return cached[1]
        async with self._sessions() as session:
            row = await session.scalar(select(ApiKey).where(ApiKey.hash == digest))
        info = None
        if row is not None and hmac.compare_digest(row.hash, digest):
            if row.revoked_at is None:
                info = _info(row)
            else:
                if len(self._revoked) > 10_000:
                    self._revoked.clear()
                self._revoked[digest] = time.monotonic()
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
                select(ApiKey)
                .where((ApiKey.id == ref) | (ApiKey.name == ref), ApiKey.revoked_at.is_(None))
                .order_by(ApiKey.created_at.desc())
                .limit(1)
            )
        info = _info(row) if row is not None else None
        self._cache["ref:" + ref] = (time.monotonic(), info)
        return info

    async def reserve(self, key_id: str, characters: int) -> Reservation:
        """Take ``characters`` from the key's quota now, atomically, or raise QuotaExceeded.

        One conditional UPDATE decides: it adds the characters only if they still fit,
        so no interleaving of requests (threads, processes, servers on one database)
        can overspend. A key without a quota is counted the same way (it always fits).
        """
        async with self._sessions() as session, session.begin():
            result = await session.execute(
                update(ApiKey)
                .where(
                    ApiKey.id == key_id,
                    ApiKey.revoked_at.is_(None),
                    (ApiKey.quota_chars.is_(None))
                    | (ApiKey.used_chars + characters <= ApiKey.quota_chars),
                )
                .values(used_chars=ApiKey.used_chars + characters)
            )
            if (rowcount(result) or 0) != 1:
                row = await session.get(ApiKey, key_id)
                left = max((row.quota_chars or 0) - row.used_chars, 0) if row else 0
                raise QuotaExceeded(left, characters)
        self._bump(key_id, characters)
        return Reservation(self, key_id, characters)

    async def adjust(self, key_id: str, delta: int) -> None:
        """Correct a key's count by ``delta`` (a settled or released reservation)."""
        async with self._sessions() as session, session.begin():
            await session.execute(
                update(ApiKey)
                .where(ApiKey.id == key_id)
                .values(used_chars=ApiKey.used_chars + delta)
            )
        self._bump(key_id, delta)

    async def charge(self, key_id: str, characters: int) -> None:
        """Count characters against a key unconditionally (no quota check)."""
        await self.adjust(key_id, characters)

    def _bump(self, key_id: str, characters: int) -> None:
        """Keep the cached copies' counts in step (no re-read)."""
        for digest, (stamp, info) in list(self._cache.items()):
            if info is not None and info.id == key_id:
                self._cache[digest] = (
                    stamp,
                    replace(info, used_chars=info.used_chars + characters),
                )
