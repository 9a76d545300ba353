#!/usr/bin/env python3
"""The floor under orate's espeak path: the least a FastAPI server can do for the request.

One route, ``POST /v1/audio/speech`` with the same JSON body, and nothing else in
front of it (no middleware, no planning, no text layer): the text goes as one
sentence to orate's own engine pool (the same worker processes, pipe framing and
render, wav), the audio streams back as it comes, and one history row (the
request's id, text, voice, sizes, time) is written to SQLite in a thread before
the response ends, as orate writes its history. The difference between orate and
this app on the same request is what orate's API layers cost; the difference
between this app and the raw engine is the floor of serving it over HTTP from
worker processes.

``python benchmarks/floor_app.py PORT`` (throughput2.py starts it).
"""

from __future__ import annotations

import asyncio
import sqlite3
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import uvicorn
from fastapi import FastAPI
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

from orate.engines.base import VoiceParams
from orate.runtime.events import EventKind
from orate.runtime.pool import EnginePool
from orate.runtime.render import RenderJob, Segment


class Speech(BaseModel):
    model: str
    voice: str
    input: str
    response_format: str = "wav"


DB = Path(tempfile.mkdtemp(prefix="orate-floor-")) / "history.db"
pool = EnginePool(2)


_db: sqlite3.Connection | None = None
_lock = threading.Lock()


def _history(row: tuple[str, str, str, int, float]) -> None:
    """One row per request on one connection, in WAL mode with synchronous=NORMAL (orate's
    SQLite settings: a commit does not wait for the disk)."""
    with _lock:
        _write(row)


def _write(row: tuple[str, str, str, int, float]) -> None:
    global _db
    if _db is None:
        _db = sqlite3.connect(DB, check_same_thread=False)
        _db.execute("PRAGMA journal_mode=WAL")
        _db.execute("PRAGMA synchronous=NORMAL")
    with _db:
        _db.execute("INSERT INTO generations VALUES (?, ?, ?, ?, ?)", row)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    with sqlite3.connect(DB) as db:
        db.execute(
            "CREATE TABLE IF NOT EXISTS generations (id TEXT PRIMARY KEY, text TEXT, "
            "voice TEXT, bytes INTEGER, created REAL)"
        )
    await pool.start()
    yield
    await pool.close()


app = FastAPI(lifespan=lifespan)


@app.post("/v1/audio/speech")
async def speech(req: Speech) -> StreamingResponse:
    job = RenderJob(
        req.input,
        (Segment(VoiceParams(engine="espeak", voice=req.voice), ((0, len(req.input)),)),),
        req.response_format,
    )
    stream = await pool.submit(job)

    async def body() -> AsyncIterator[bytes]:
        size = 0
        async for kind, payload in stream:
            if kind is EventKind.AUDIO:
                size += len(payload)
                yield payload
            elif kind is EventKind.ERROR:
                raise RuntimeError(payload)
            elif kind is EventKind.END:
                break
        await asyncio.to_thread(
            _history, (uuid.uuid4().hex, req.input, req.voice, size, time.time())
        )

    return StreamingResponse(body(), media_type="audio/wav")


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
