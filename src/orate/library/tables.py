"""Tables of the library. Every row has an ``owner``: the API key that made it, or
``local`` when auth is off, so isolation needs no schema change later."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, DateTime, Float, Index, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

LOCAL_OWNER = "local"


class Base(DeclarativeBase):
    pass


class Generation(Base):
    """One synthesis (or cache hit) from any dialect, with what made it."""

    __tablename__ = "generations"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    owner: Mapped[str] = mapped_column(String(128), default=LOCAL_OWNER)
    dialect: Mapped[str] = mapped_column(String(32))
    model: Mapped[str] = mapped_column(String(128))
    engine: Mapped[str] = mapped_column(String(64))
    voice: Mapped[str] = mapped_column(String(256))
    voice_params: Mapped[list[Any]] = mapped_column(JSON)  # one entry per segment
    text: Mapped[str] = mapped_column(Text)
    characters: Mapped[int] = mapped_column(Integer)
    speed: Mapped[float] = mapped_column(Float)
    format: Mapped[str] = mapped_column(String(16))
    content_type: Mapped[str] = mapped_column(String(64))
    sample_rate: Mapped[int] = mapped_column(Integer)
    duration: Mapped[float] = mapped_column(Float)
    bytes: Mapped[int] = mapped_column(BigInteger)
    cost: Mapped[float] = mapped_column(Float)
    currency: Mapped[str] = mapped_column(String(8))
    cache_key: Mapped[str | None] = mapped_column(String(64), nullable=True)
    cache_hit: Mapped[bool] = mapped_column(Boolean, default=False)
    blob_key: Mapped[str | None] = mapped_column(String(128), nullable=True)
    meta: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    #: why the audio is not stored although it was meant to be (disk full, store down):
    #: the record is kept and its audio URL answers 410 with this reason
    audio_error: Mapped[str | None] = mapped_column(Text, nullable=True, default=None)

    __table_args__ = (
        Index("ix_generations_owner_created", "owner", "created_at"),
        Index("ix_generations_created", "created_at"),
        Index("ix_generations_blob", "blob_key"),
    )


class Voice(Base):
    """A custom voice: a name for a set of voice parameters."""

    __tablename__ = "voices"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    owner: Mapped[str] = mapped_column(String(128), default=LOCAL_OWNER)
    name: Mapped[str] = mapped_column(String(256))
    engine: Mapped[str] = mapped_column(String(64))
    params: Mapped[dict[str, Any]] = mapped_column(JSON)
    language: Mapped[str] = mapped_column(String(64))
    gender: Mapped[str] = mapped_column(String(16))
    description: Mapped[str] = mapped_column(Text, default="")
    source: Mapped[str] = mapped_column(String(32))  # params | generation | design
    source_generation_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (Index("uq_voices_owner_name", "owner", "name", unique=True),)


class CacheEntry(Base):
    """A pre-rendered response: its audio blob and the events to replay around it."""

    __tablename__ = "cache_entries"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    blob_key: Mapped[str] = mapped_column(String(128))
    bytes: Mapped[int] = mapped_column(BigInteger)
    content_type: Mapped[str] = mapped_column(String(64))
    duration: Mapped[float] = mapped_column(Float)
    events: Mapped[list[Any]] = mapped_column(JSON)
    hits: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_used_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)


class CacheCounter(Base):
    """A lifetime count of cache results (``hits``, ``misses``, ``shared``).

    Kept in the database, not in a process, so every process on the same library
    (the server, ``orate cache stats``, a second server) reads the same numbers.
    Servers add to it in the background (SpeechCache buffers increments).
    """

    __tablename__ = "cache_counters"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger, default=0)


class Job(Base):
    """An accepted asynchronous synthesis; it survives restarts and completes once.

    A runner owns a job while its lease lasts and renews it as it works; a job
    whose lease ran out (its runner died) is taken again from the start.
    """

    __tablename__ = "jobs"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    owner: Mapped[str] = mapped_column(String(128), default=LOCAL_OWNER)
    dialect: Mapped[str] = mapped_column(String(32))
    model: Mapped[str] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(16), index=True)
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    request: Mapped[dict[str, Any]] = mapped_column(JSON)
    characters: Mapped[int] = mapped_column(Integer)
    cost: Mapped[float] = mapped_column(Float, default=0.0)
    currency: Mapped[str] = mapped_column(String(8))
    generation_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    lease_owner: Mapped[str | None] = mapped_column(String(64), nullable=True)
    lease_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)

    __table_args__ = (Index("ix_jobs_owner_created", "owner", "created_at"),)


class ApiKey(Base):
    """An API key: only its SHA-256 is kept (keys are 256 random bits, so a fast hash
    is enough), with its limits and how many characters it has used."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    admin: Mapped[bool] = mapped_column(Boolean, default=False)
    rate_per_minute: Mapped[int | None] = mapped_column(Integer, nullable=True)
    concurrency: Mapped[int | None] = mapped_column(Integer, nullable=True)
    quota_chars: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    used_chars: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class ServerState(Base):
    """Small facts the server must remember across restarts (``auth`` = ``on``/``off``)."""

    __tablename__ = "server_state"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(256))


class LexiconVersion(Base):
    """One version of a pronunciation dictionary: every change adds a row, so a locator
    with a ``version_id`` always reads the rules it was made with."""

    __tablename__ = "lexicon_versions"
    __table_args__ = (Index("ix_lexicon_versions_dictionary", "dictionary_id", "version"),)

    version_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    dictionary_id: Mapped[str] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(Integer)
    owner: Mapped[str] = mapped_column(String(128), default=LOCAL_OWNER, index=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    rules: Mapped[list[Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class KeyLimitState(Base):
    """A key's token bucket and requests in progress, shared by every replica
    (library/shared.py); one row per key, changed by single conditional upserts."""

    __tablename__ = "key_limits"

    key_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    tokens: Mapped[float] = mapped_column(Float)
    stamp: Mapped[float] = mapped_column(Float)  # epoch seconds of the last refill
    active: Mapped[int] = mapped_column(Integer, default=0)


class ServiceLease(Base):
    """Who does a service-wide chore (retention) until when: one replica at a time."""

    __tablename__ = "service_leases"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(128))
    until: Mapped[float] = mapped_column(Float)
