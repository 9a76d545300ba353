"""Error envelopes, one per dialect, chosen by the path the request came in on.

A client SDK only understands its own dialect's error shape, so every error
(validation, pipeline refusal, engine failure, unknown route) is rendered in
the envelope of the dialect that owns the path. Dialects register their path
prefix and renderer; OpenAI's envelope is the fallback.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from orate.api.http.jsonbody import json_hint
from orate.audio.formats import FORMATS
from orate.library.db import DB_ERRORS
from orate.runtime.pool import EngineBusy
from orate.speech.pipeline import SpeechError, SynthesisFailed

log = logging.getLogger("orate.api")


_REASONS = {
    400: "invalid input",
    401: "missing or invalid API key",
    403: "needs an admin key",
    404: "not found (or not yours)",
    405: "method not allowed",
    408: "the request's headers or body did not arrive in time",
    409: "conflict",
    410: "the record exists but its audio is not stored (the reason says why)",
    413: "request too large",
    416: "range not satisfiable",
    422: "invalid body (FastAPI's validation list)",
    429: "rate, concurrency or quota limit; see Retry-After",
    502: "an upstream provider failed",
    503: "engines busy or unavailable, or the database is; see Retry-After",
    507: "the audio store is full or cannot be written; see Retry-After",
}


def documented(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for error statuses, so clients and fuzzers know every answer."""
    return {
        code: {
            "description": _REASONS.get(code, "error"),
            "content": {"application/json": {"schema": {"type": "object"}}},
        }
        for code in codes
    }


# the audio content types routes document, from the one format table (G.711 is
# ElevenLabs-only and documented there)
AUDIO_TYPES = tuple(FORMATS[f].content_type for f in ("mp3", "opus", "aac", "flac", "wav", "pcm"))


def audio_response(*extra: str) -> dict[int | str, dict[str, Any]]:
    """A 200 that is audio bytes (any output format), or one of ``extra`` types."""
    content: dict[str, Any] = {
        t: {"schema": {"type": "string", "format": "binary"}} for t in AUDIO_TYPES
    }
    content.update({t: {"schema": {"type": "string"}} for t in extra})
    return {200: {"description": "audio", "content": content}}


MAX_ECHO = 80  # characters of a caller's value repeated in an error message
MAX_MESSAGE = 2000  # an error message never grows past this, whatever it quotes


def clip(value: object, limit: int = MAX_ECHO) -> str:
    """A caller's value, shortened for an error message (a 100 kB voice id is not news)."""
    text = str(value)
    return text if len(text) <= limit else text[:limit] + f"… ({len(text)} characters)"


class ApiError(SpeechError):
    """An error a route or the guard raises on purpose. It carries what the pipeline's
    refusals carry (status, code, message, param, headers), and renders the same way."""


@contextmanager
def fields(names: dict[str, str]) -> Iterator[None]:
    """Name the pipeline's fields as the dialect's body does (nano-gpt's ``text`` is the
    pipeline's ``input``; OpenAI's ``instructions`` is its ``description``)."""
    try:
        yield
    except SpeechError as exc:
        if exc.param in names:
            exc.param = names[exc.param]
        raise


Renderer = Callable[[SpeechError], JSONResponse]
Validation = Callable[[RequestValidationError], ApiError | JSONResponse]


# error types that gateways of the OpenAI dialect name themselves (docs/wire.md, OpenAI)
_WIRE_TYPES = frozenset({"missing_input", "request_too_large", "no_provider", "upstream_error"})


def openai_type(status: int, code: str) -> str:
    if code in _WIRE_TYPES:
        return code
    if status == 401:
        return "authentication_error"
    if status == 429:
        return "rate_limit_error"
    return "invalid_request_error" if status < 500 else "server_error"


def openai_envelope(err: SpeechError) -> JSONResponse:
    """``{"error": {message, type, param, code}}``: ``code`` says precisely what was wrong."""
    body = {
        "error": {
            "message": err.message,
            "type": openai_type(err.status, err.code),
            "param": err.param,
            "code": err.code,
        }
    }
    return JSONResponse(body, status_code=err.status, headers=err.headers)


def _field(loc: tuple[Any, ...]) -> str | None:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or None


def openai_validation(exc: RequestValidationError) -> ApiError:
    """Turn FastAPI's validation list into one OpenAI-style 400 naming the field."""
    errors = exc.errors()
    first = errors[0] if errors else {"loc": (), "msg": "invalid request", "type": ""}
    param = _field(tuple(first.get("loc", ())))
    kind = first.get("type", "")
    if kind == "json_invalid":
        msg = str(first.get("msg", ""))
        return ApiError(
            400,
            "invalid_json",
            msg
            if msg.startswith("the request body")
            else f"the request body is not valid JSON: {msg}",
        )
    if param == "input" and kind == "missing":
        return ApiError(400, "missing_input", "input is required: the text to speak", "input")
    msg = str(first.get("msg", "invalid value"))
    detail = f"{param}: {msg}" if param else msg
    if kind == "missing" and param is None:
        detail = "the request body is required (JSON with model, input and voice)"
    return ApiError(400, "missing_field" if kind == "missing" else "invalid_value", detail, param)


def fastapi_validation(exc: RequestValidationError) -> JSONResponse:
    """FastAPI's own 422 list (Hume's SDK parses it as ``HTTPValidationError``; ElevenLabs'
    answers invalid bodies with it too)."""
    detail = [
        {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
        for e in exc.errors()
    ]
    return JSONResponse({"detail": detail}, status_code=422)


class Envelopes:
    """Which dialect's error envelope a path gets: ``create_app`` registers each dialect's
    prefix explicitly (nothing is registered by importing a module); any other path
    answers in OpenAI's envelope."""

    def __init__(self) -> None:
        self._dialects: list[tuple[str, Renderer, Validation]] = []

    def register(self, prefix: str, renderer: Renderer, validation: Validation) -> None:
        """Claim a path prefix: errors under it use this dialect's envelope."""
        self._dialects.append((prefix, renderer, validation))
        self._dialects.sort(key=lambda d: len(d[0]), reverse=True)

    def for_path(self, path: str) -> tuple[Renderer, Validation]:
        for prefix, renderer, validation in self._dialects:
            if path.startswith(prefix):
                return renderer, validation
        return openai_envelope, openai_validation


def install(app: FastAPI, envelopes: Envelopes) -> None:
    """Turn every error into the envelope of the dialect that owns the path."""
    dialect_for = envelopes.for_path

    @app.exception_handler(SpeechError)  # ApiError included
    async def _speech_error(request: Request, exc: SpeechError) -> JSONResponse:
        return dialect_for(request.url.path)[0](exc)

    @app.exception_handler(EngineBusy)
    async def _busy(request: Request, exc: EngineBusy) -> JSONResponse:
        err = ApiError(
            503,
            "engines_busy",
            f"all engines are busy ({exc}); retry shortly",
            headers={"Retry-After": str(exc.retry_after)},
        )
        return dialect_for(request.url.path)[0](err)

    async def _database(request: Request, exc: Exception) -> JSONResponse:
        # locked, unreachable or corrupted: nothing was written; the caller may retry
        log.error(
            "database unavailable on %s %s: %s",
            request.method,
            request.url.path,
            str(exc).splitlines()[0][:300],
        )
        err = ApiError(
            503,
            "database_unavailable",
            "the server's database cannot take this request right now; retry shortly",
            headers={"Retry-After": "5"},
        )
        return dialect_for(request.url.path)[0](err)

    for kind in DB_ERRORS:
        app.add_exception_handler(kind, _database)

    @app.exception_handler(SynthesisFailed)
    async def _synthesis_failed(request: Request, exc: SynthesisFailed) -> JSONResponse:
        log.error("synthesis failed: %s", exc)
        err = ApiError(
            503,
            "engine_unavailable",
            f"synthesis failed: {exc}; retry the request",
            headers={"Retry-After": "1"},
        )
        return dialect_for(request.url.path)[0](err)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        renderer, validation = dialect_for(request.url.path)
        hint = json_hint(request.scope)
        if hint and any(e.get("type") == "json_invalid" for e in exc.errors()):
            # the body was not labelled JSON and is not JSON: say which header is missing
            exc = RequestValidationError([{"loc": ("body",), "msg": hint, "type": "json_invalid"}])
        result = validation(exc)
        return result if isinstance(result, JSONResponse) else renderer(result)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed", 408: "request_timeout"}.get(
            exc.status_code, "http_error"
        )
        message = (
            f"no route {request.method} {request.url.path}"
            if exc.status_code in (404, 405)
            else str(exc.detail)
        )
        if exc.status_code == 400 and "parsing the body" in message:
            code = "invalid_json"
            message = json_hint(request.scope) or (
                "the request body is not valid JSON in UTF-8; send a JSON object"
            )
        return dialect_for(request.url.path)[0](
            ApiError(
                exc.status_code,
                code,
                message,
                headers=dict(exc.headers) if exc.headers is not None else None,
            )
        )

    @app.exception_handler(UnicodeEncodeError)
    async def _unencodable(request: Request, exc: UnicodeEncodeError) -> JSONResponse:
        # only a caller's text can hold a lone surrogate (JSON "\\ud800"); say so
        err = ApiError(
            400,
            "invalid_text",
            "the request holds a lone UTF-16 surrogate "
            f"(U+{ord(exc.object[exc.start]):04X}), which is not text; send valid "
            "Unicode",
        )
        return dialect_for(request.url.path)[0](err)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        err = ApiError(500, "internal_error", f"internal error: {type(exc).__name__}")
        return dialect_for(request.url.path)[0](err)
