"""Who a request acts for. Until API keys exist every request is the local owner;
the security issue replaces this one function, and every route already uses it."""

from __future__ import annotations

from starlette.requests import HTTPConnection

from orate.library.models import LOCAL_OWNER


def owner_of(request: HTTPConnection) -> str:
    return getattr(request.state, "owner", LOCAL_OWNER)
