"""Typed settings, read from ``ORATE_*`` environment variables and an optional ``.env``.

One object carries every knob so that the app factory, the CLI and the tests
build servers from the same description instead of reading the environment
in scattered places.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from orate.audio.formats import FORMATS


def _default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(Path.home(), ".local", "share")
    return Path(base) / "orate"


class Settings(BaseSettings):
    """Server and pipeline settings; every field maps to ``ORATE_<FIELD>``."""

    model_config = SettingsConfigDict(env_prefix="ORATE_", env_file=".env", extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    data_dir: Path = Field(default_factory=_default_data_dir)
    workers: int = Field(default_factory=lambda: os.cpu_count() or 1, ge=1, le=256)
    max_input_chars: int = Field(4096, ge=1)
    default_model: str = "tts-1"
    default_voice: str = "alloy"
    default_format: str = "mp3"
    mp3_bitrate: int = Field(48_000, ge=8_000, le=320_000)
    log_level: str = "info"

    @field_validator("default_format")
    @classmethod
    def _known_format(cls, value: str) -> str:
        if value not in FORMATS:
            raise ValueError(f"unknown format {value!r}; use one of {', '.join(FORMATS)}")
        return value
