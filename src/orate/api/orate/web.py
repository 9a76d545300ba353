"""The playground: a static page at ``/`` that calls only the public routes.

Plain HTML, CSS and JavaScript modules shipped in the package (``api/orate/web/``), no build
step and nothing fetched from elsewhere, so it works air-gapped. The page holds no
secret, so it is served without a key; every call it makes carries the key the person
typed in (kept in the browser's local storage).
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

WEB_DIR = Path(__file__).parent / "web"
ASSET_PREFIX = "/ui/"

router = APIRouter(include_in_schema=False)


@router.get("/")
async def index() -> FileResponse:
    return FileResponse(
        WEB_DIR / "index.html", media_type="text/html", headers={"Cache-Control": "no-cache"}
    )


def assets() -> StaticFiles:
    return StaticFiles(directory=WEB_DIR)
