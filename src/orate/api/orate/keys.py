"""API keys over HTTP, for admins: list, create (the secret is shown once), revoke.

The same operations as ``orate keys`` (library/keys.py does the work). Only an admin
key may call them; while no key exists auth is off and the local owner is the admin,
so the first key can be made from the playground on a loopback server, as from the CLI.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from orate.api.http.deps import library_of
from orate.api.http.errors import ApiError, documented
from orate.api.http.owners import is_admin

router = APIRouter(tags=["keys"], responses=documented(400, 403, 404))


def _admin(request: Request) -> None:
    if not is_admin(request):
        raise ApiError(
            403, "admin_only", "managing API keys needs an admin key (orate keys create --admin)"
        )


class CreateKey(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    admin: bool = False
    rate_per_minute: int | None = Field(None, ge=1)
    concurrency: int | None = Field(None, ge=1)
    quota_chars: int | None = Field(None, ge=1)


@router.get("/v1/keys", summary="API keys (admin keys only; secrets are never shown again)")
async def list_keys(request: Request) -> JSONResponse:
    _admin(request)
    rows = await library_of(request).keys.list()
    return JSONResponse({"object": "list", "data": rows})


@router.post(
    "/v1/keys",
    summary="Create an API key (admin keys only); the secret is in this answer and nowhere else",
    status_code=201,
)
async def create_key(body: CreateKey, request: Request) -> JSONResponse:
    _admin(request)
    info, secret = await library_of(request).keys.create(
        body.name,
        admin=body.admin,
        rate_per_minute=body.rate_per_minute,
        concurrency=body.concurrency,
        quota_chars=body.quota_chars,
    )
    return JSONResponse(
        {
            "id": info.id,
            "object": "api_key",
            "name": info.name,
            "admin": info.admin,
            "key": secret,
            "prefix": secret[:12],
            "rate_per_minute": info.rate_per_minute,
            "concurrency": info.concurrency,
            "quota_chars": info.quota_chars,
        },
        status_code=201,
    )


@router.delete(
    "/v1/keys/{ref}", summary="Revoke an API key by id, name or prefix (admin keys only)"
)
async def revoke_key(ref: str, request: Request) -> JSONResponse:
    _admin(request)
    if not await library_of(request).keys.revoke(ref):
        raise ApiError(404, "not_found", f"no active key {ref!r}", "key")
    return JSONResponse({"id": ref, "object": "api_key", "revoked": True})
