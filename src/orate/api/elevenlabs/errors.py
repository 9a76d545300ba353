"""ElevenLabs' error shape: ``{"detail": {"status", "message"}}`` with its status names
(an invalid body is FastAPI's 422 list, as upstream)."""

from __future__ import annotations

from fastapi.responses import JSONResponse

from orate.speech.pipeline import SpeechError

# orate error codes → ElevenLabs' status names (and the HTTP status ElevenLabs uses)
_STATUS: dict[str, tuple[int | None, str]] = {
    "missing_api_key": (None, "invalid_api_key"),
    "invalid_api_key": (None, "invalid_api_key"),
    "quota_exceeded": (401, "quota_exceeded"),  # as upstream; a 429 would be retried for a day
    "rate_limited": (None, "rate_limit_exceeded"),
    "too_many_streams": (None, "too_many_concurrent_requests"),
    "invalid_voice": (404, "voice_not_found"),
    "request_too_large": (400, "text_too_long"),
    "missing_input": (400, "empty_text"),
    "no_provider": (400, "model_not_found"),
    "engines_busy": (None, "system_busy"),
    "engine_unavailable": (None, "system_busy"),
    "not_found": (None, "not_found"),
    "invalid_json": (400, "invalid_json"),
}


def status_name(code: str) -> str:
    """ElevenLabs' name for an orate error code."""
    return _STATUS.get(code, (None, code))[1]


def envelope(err: SpeechError) -> JSONResponse:
    """``{"detail": {"status", "message"}}``: ElevenLabs' error shape."""
    status, name = _STATUS.get(err.code, (None, err.code))
    return JSONResponse(
        {"detail": {"status": name, "message": err.message}},
        status_code=status or err.status,
        headers=err.headers,
    )
