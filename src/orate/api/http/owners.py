"""Who a request acts for, and what it may read.

The guard (api/guard.py) puts the caller's key in the request state; without
keys every request is the local owner. Admin keys read everything; anyone
else reads only their own records, and another owner's ids look like missing
ones (404, never 403, so ids do not leak).
"""

from __future__ import annotations

from typing import Any

from starlette.requests import HTTPConnection

from orate.library.tables import LOCAL_OWNER
from orate.speech.types import Context


def owner_of(request: HTTPConnection) -> str:
    """The owner of what this request creates."""
    return getattr(request.state, "owner", LOCAL_OWNER)


def reader_of(request: HTTPConnection) -> str | None:
    """The owner whose records this request may read; None reads all (admin keys)."""
    key = getattr(request.state, "key", None)
    if key is not None and key.admin:
        return None
    return owner_of(request)


def is_admin(request: HTTPConnection) -> bool:
    key = getattr(request.state, "key", None)
    return key is None or key.admin


def context(request: HTTPConnection, dialect: str, **kw: Any) -> Context:
    """The pipeline context of a request: owner, dialect, and the key's character quota."""
    key = getattr(request.state, "key", None)
    quota = None
    if key is not None and key.quota_chars is not None:
        quota = max(key.quota_chars - key.used_chars, 0)
    return Context(
        owner=owner_of(request),
        dialect=dialect,
        key_id=key.id if key is not None else None,
        quota_left=quota,
        **kw,
    )
