"""``GET /v1/audio/files/{id}``: a generation's stored audio, with Range and ETag.

Players seek with Range requests and caches revalidate with ETags; the audio
of a generation never changes, so its id makes a strong validator.
"""

from __future__ import annotations

import re

from fastapi import APIRouter, Request, Response

from orate.api.http.deps import library_of
from orate.api.http.errors import AUDIO_TYPES, ApiError, audio_response, documented
from orate.api.http.owners import reader_of
from orate.speech.pipeline import file_bytes

router = APIRouter(tags=["library"])
_FILE_RESPONSES = {
    **audio_response(),
    206: {
        "description": "a byte range",
        "content": {t: {"schema": {"type": "string", "format": "binary"}} for t in AUDIO_TYPES},
    },
    304: {"description": "not modified (ETag)"},
    **documented(404, 410, 416),
}
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
_ID = re.compile(r"^[0-9a-f]{32}$")


def _parse_range(header: str, size: int) -> tuple[int, int] | None:
    """``[start, end)`` of a single ``bytes=`` range; None to send the whole file."""
    m = _RANGE.match(header.strip())
    if not m or (not m.group(1) and not m.group(2)):
        return None
    if not m.group(1):  # suffix: the last N bytes
        n = int(m.group(2))
        if n == 0:
            raise ApiError(
                416,
                "range_not_satisfiable",
                "an empty suffix range selects nothing",
                headers={"Content-Range": f"bytes */{size}"},
            )
        return max(size - n, 0), size
    start = int(m.group(1))
    end = int(m.group(2)) + 1 if m.group(2) else size
    if start >= size or end <= start:
        raise ApiError(
            416,
            "range_not_satisfiable",
            f"range {header!r} is outside the {size} bytes of this file",
            headers={"Content-Range": f"bytes */{size}"},
        )
    return start, min(end, size)


# GET and HEAD as two routes: one route with both methods gives both operations the
# same operationId, which makes the OpenAPI document invalid (ids must be unique).
@router.get(
    "/v1/audio/files/{gen_id}",
    name="get_file",
    operation_id="get_file",
    summary="A generation's audio (Range and ETag supported)",
    responses=_FILE_RESPONSES,
)
@router.head(
    "/v1/audio/files/{gen_id}",
    name="head_file",
    operation_id="head_file",
    summary="A generation's audio headers (size, ETag, Range)",
    responses=_FILE_RESPONSES,
)
async def get_file(gen_id: str, request: Request) -> Response:
    lib = library_of(request)
    row = await lib.generations.get(gen_id, reader_of(request)) if _ID.match(gen_id) else None
    if row is not None and not row.blob_key and row.audio_error:
        raise ApiError(
            410,
            "audio_not_stored",
            f"the generation {gen_id} exists but its audio was not kept: {row.audio_error}",
            "id",
        )
    if row is None or not row.blob_key:
        raise ApiError(
            404,
            "not_found",
            f"no audio file {gen_id!r}: it does not exist, was "
            "deleted, or was made with store=false",
            "id",
        )
    etag = f'"{row.id}"'
    headers = {
        "ETag": etag,
        "Accept-Ranges": "bytes",
        "Cache-Control": "private, max-age=31536000, immutable",
    }
    if etag in [t.strip() for t in request.headers.get("if-none-match", "").split(",")]:
        return Response(status_code=304, headers=headers)
    size = row.bytes
    wanted = request.headers.get("range")
    if_range = request.headers.get("if-range")
    span = _parse_range(wanted, size) if wanted and (not if_range or if_range == etag) else None
    if request.method == "HEAD":
        length = size if span is None else span[1] - span[0]
        return Response(
            status_code=200 if span is None else 206,
            media_type=row.content_type,
            headers={**headers, "Content-Length": str(length)},
        )
    try:
        if row.format == "wav":  # its header is patched with the real sizes: read it whole
            data = file_bytes(row, await lib.generations.audio(row))
            body = data if span is None else data[span[0] : span[1]]
        else:
            body = await lib.generations.audio(row, *(span or (None, None)))
    except FileNotFoundError:
        raise ApiError(
            410,
            "audio_gone",
            f"the generation {gen_id} exists but its audio is no longer in the store",
            "id",
        ) from None
    if span is None:
        return Response(body, media_type=row.content_type, headers=headers)
    headers["Content-Range"] = f"bytes {span[0]}-{span[1] - 1}/{size}"
    return Response(body, status_code=206, media_type=row.content_type, headers=headers)
