"""``/v1/pronunciation-dictionaries``: ElevenLabs' shapes, over the library's lexicons.

Translation only: rule checking and PLS parsing live in speech/lexicon.py, storage
and versions in library/lexicons.py. Every dictionary belongs to the key that made
it; another key sees a 404, exactly as if it did not exist.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Query, Request, UploadFile
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from orate.api.http.deps import library_of
from orate.api.http.errors import ApiError, documented
from orate.api.http.owners import owner_of, reader_of
from orate.library.lexicons import lexicon_json
from orate.library.tables import LexiconVersion
from orate.speech.lexicon import LexiconError, rules_from, rules_from_pls, rules_to_pls

router = APIRouter(tags=["pronunciation dictionaries"], responses=documented(400, 404))
PREFIX = "/v1/pronunciation-dictionaries"


class RulesBody(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    rules: list[dict[str, Any]] = Field(min_length=1)
    description: str | None = Field(None, max_length=2000)


class AddRules(BaseModel):
    rules: list[dict[str, Any]] = Field(min_length=1)


class RemoveRules(BaseModel):
    rule_strings: list[str] = Field(min_length=1)


async def _checked(rules: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rules checked (patterns parsed and compiled), in a thread: thousands of
    them take a while, and the event loop serves other requests meanwhile."""
    try:
        return [r.to_dict() for r in await asyncio.to_thread(rules_from, rules)]
    except LexiconError as exc:
        raise ApiError(400, "invalid_rules", str(exc), "rules") from None


async def _latest(
    request: Request, dictionary_id: str, version_id: str | None = None
) -> LexiconVersion:
    row = await library_of(request).lexicons.get(reader_of(request), dictionary_id, version_id)
    if row is None:
        raise ApiError(404, "not_found", f"no pronunciation dictionary {dictionary_id!r}", "id")
    return row


@router.post(PREFIX, summary="Create a pronunciation dictionary from rules (JSON)")
@router.post(f"{PREFIX}/add-from-rules", summary="Create from rules (ElevenLabs)")
async def create_from_rules(body: RulesBody, request: Request) -> JSONResponse:
    rules = await _checked(body.rules)
    row = await library_of(request).lexicons.create(
        owner_of(request), body.name, rules, body.description or ""
    )
    return JSONResponse(lexicon_json(row), status_code=200)


@router.post(f"{PREFIX}/add-from-file", summary="Create from a PLS file (ElevenLabs)")
async def create_from_file(
    request: Request,
    name: Annotated[str, Form(max_length=200)],
    file: Annotated[UploadFile, File()],
    description: Annotated[str | None, Form()] = None,
) -> JSONResponse:
    data = await file.read(2_000_001)
    try:
        rules = [r.to_dict() for r in await asyncio.to_thread(rules_from_pls, data)]
    except LexiconError as exc:
        raise ApiError(400, "invalid_pls", str(exc), "file") from None
    row = await library_of(request).lexicons.create(
        owner_of(request), name, rules, description or ""
    )
    return JSONResponse(lexicon_json(row))


@router.get(PREFIX, summary="List pronunciation dictionaries (latest versions)")
async def list_dictionaries(
    request: Request,
    page_size: Annotated[int, Query(ge=1, le=100)] = 30,
    cursor: Annotated[int, Query(ge=0)] = 0,
) -> JSONResponse:
    rows = await library_of(request).lexicons.list(reader_of(request), page_size + 1, cursor)
    more = len(rows) > page_size
    return JSONResponse(
        {
            "pronunciation_dictionaries": [lexicon_json(r) for r in rows[:page_size]],
            "has_more": more,
            "next_cursor": str(cursor + page_size) if more else None,
        }
    )


@router.get(PREFIX + "/{dictionary_id}", summary="A pronunciation dictionary (latest version)")
async def get_dictionary(dictionary_id: str, request: Request) -> JSONResponse:
    return JSONResponse(lexicon_json(await _latest(request, dictionary_id)))


@router.get(
    PREFIX + "/{dictionary_id}/{version_id}/download",
    summary="One version as a PLS file (ElevenLabs)",
    responses={200: {"content": {"application/pls+xml": {}}}},
)
async def download(dictionary_id: str, version_id: str, request: Request) -> Response:
    from orate.speech.lexicon import rule_from

    row = await _latest(request, dictionary_id, version_id)
    return Response(
        rules_to_pls([rule_from(r) for r in row.rules]), media_type="application/pls+xml"
    )


@router.post(PREFIX + "/{dictionary_id}/add-rules", summary="Add rules: a new version")
async def add_rules(dictionary_id: str, body: AddRules, request: Request) -> JSONResponse:
    latest = await _latest(request, dictionary_id)
    added = await _checked(body.rules)
    targets = {r["string_to_replace"] for r in added}
    rules = [r for r in latest.rules if r["string_to_replace"] not in targets] + added
    row = await library_of(request).lexicons.new_version(latest, rules)
    return JSONResponse(lexicon_json(row))


@router.post(PREFIX + "/{dictionary_id}/remove-rules", summary="Remove rules: a new version")
async def remove_rules(dictionary_id: str, body: RemoveRules, request: Request) -> JSONResponse:
    latest = await _latest(request, dictionary_id)
    drop = set(body.rule_strings)
    rules = [r for r in latest.rules if r["string_to_replace"] not in drop]
    row = await library_of(request).lexicons.new_version(latest, rules)
    return JSONResponse(lexicon_json(row))


@router.delete(PREFIX + "/{dictionary_id}", summary="Delete a dictionary and all its versions")
async def delete_dictionary(dictionary_id: str, request: Request) -> JSONResponse:
    if not await library_of(request).lexicons.delete(reader_of(request), dictionary_id):
        raise ApiError(404, "not_found", f"no pronunciation dictionary {dictionary_id!r}", "id")
    return JSONResponse({"id": dictionary_id, "deleted": True})
