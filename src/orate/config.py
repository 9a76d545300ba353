"""Typed settings, read from ``ORATE_*`` environment variables and an optional ``.env``.

One object carries every knob so that the app factory, the CLI and the tests
build servers from the same description instead of reading the environment
in scattered places.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from orate.audio.formats import FORMATS


def _default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(Path.home(), ".local", "share")
    return Path(base) / "orate"


class Price(BaseModel):
    """What a model costs the caller: per 1,000 input characters and per audio second."""

    per_1k_chars: float = 0.0
    per_second: float = 0.0

    def cost(self, characters: int, seconds: float) -> float:
        return round(characters / 1000 * self.per_1k_chars + seconds * self.per_second, 8)


# A self-hosted server bills no one unless its operator says so: no model has a price
# by default (ORATE_PRICES sets them; upstream providers carry theirs in the providers
# file). Copying a vendor's list prices here would report charges nobody pays.
DEFAULT_PRICES: dict[str, Price] = {}


class Settings(BaseSettings):
    """Server and pipeline settings; every field maps to ``ORATE_<FIELD>``."""

    model_config = SettingsConfigDict(env_prefix="ORATE_", env_file=".env", extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    data_dir: Path = Field(default_factory=_default_data_dir)
    workers: int = Field(default_factory=lambda: os.cpu_count() or 1, ge=1, le=256)
    max_input_chars: int = Field(4096, ge=1, description="OpenAI-dialect limit per request")
    max_request_chars: int = Field(
        25_000,
        ge=1,
        description="limit for dialects that take several utterances (Hume: 5,000 each)",
    )
    max_job_chars: int = Field(200_000, ge=1, description="long-form limit of an async job")
    async_threshold_chars: int = Field(
        4096, ge=1, description="nano-gpt: longer texts run as async jobs"
    )
    job_workers: int = Field(
        1, ge=0, le=64, description="jobs run at once (each holds an engine worker while it runs)"
    )
    max_pending_jobs_per_key: int = Field(
        50, ge=1, description="jobs one key may have waiting or running; past it, 429"
    )
    max_pending_jobs: int = Field(
        2000, ge=1, description="jobs all keys together may have waiting or running; past it, 429"
    )
    job_lease_seconds: float = Field(
        30.0, gt=0, description="a job whose runner stops renewing it this long is run again"
    )
    default_model: str = "tts-1"
    default_voice: str = "alloy"
    default_format: str = "mp3"
    mp3_bitrate: int = Field(48_000, ge=8_000, le=320_000)
    log_level: str = "info"
    max_body_bytes: int = Field(4 << 20, ge=1024, description="largest request body")
    max_queue: int = Field(
        64, ge=0, description="requests that may wait for an engine worker; past it they get 503"
    )
    queue_timeout: float = Field(
        30.0, gt=0, description="longest wait for an engine worker before 503"
    )
    worker_streams: int = Field(  # runtime/interleave.py; 1: one after another
        64, ge=1, le=256, description="requests an engine worker holds, a sentence of each in turn"
    )
    # bounds on one request's memory and time (tests/test_bounds.py)
    max_request_work: int = Field(
        25_000,
        ge=1,
        description="characters x generations one "
        "request may synthesize; past it, 413 before any work",
    )
    max_expansion: float = Field(
        10.0,
        ge=1,
        description="most characters spoken per "
        "character sent (pronunciation aliases, normalization) "
        "past the first 1,000; past it, 413 before any work",
    )
    max_response_bytes: int = Field(
        64 << 20,
        ge=1024,
        description="largest response body, "
        "estimated before synthesis (413) and enforced during it",
    )
    stream_buffer_bytes: int = Field(
        256 << 10,
        ge=4096,
        description="audio a response keeps in "
        "memory for a client that has not read it; past it, the rest goes to the spool "
        "on disk (or, when the spool is full or off, its engine worker waits)",
    )
    spool_bytes: int = Field(
        1 << 30,
        ge=0,
        description="disk all responses together "
        "may use for audio their clients have not read yet, so an engine never waits on "
        "a slow client; 0 turns the spool off (engines wait on their clients)",
    )
    spool_bytes_per_key: int = Field(
        256 << 20,
        ge=0,
        description="of ``spool_bytes``, what the "
        "responses of one API key (or one unauthenticated owner) may take together; past "
        "it, that key's slow clients make their own engines wait",
    )
    spool_dir: Path | None = Field(
        None,
        description="where spool files live (anonymous: deleted as they are made); "
        "default: data_dir/spool",
    )
    stall_timeout: float = Field(
        30.0,
        gt=0,
        description="a client that reads nothing of its "
        "response this long is disconnected (its synthesis stops)",
    )
    ready_min_free_bytes: int = Field(
        16 << 20,
        ge=0,
        description="/readyz says not ready while the local audio store has less free space",
    )
    ws_idle_timeout: float = Field(
        60.0,
        gt=0,
        description="a Hume WebSocket that sends "
        "nothing this long while no audio is coming is closed "
        "(1008)",
    )
    read_timeout: float = Field(
        10.0,
        gt=0,
        description="longest time to receive a request's "
        "headers, and then its body; past it, 408 and close",
    )

    auth: Literal["auto", "on", "open"] = Field(
        "auto",
        description="auto: keys are required once the first key is created, until "
        "`orate keys open --yes` (revoking the last key locks the server, never opens it); "
        "on: always required; open: required only while a live key exists",
    )
    # first start of a container: the admin key comes from outside (cli/bootstrap.py);
    # SecretStr so that no repr, log line or validation error ever shows it
    admin_key: SecretStr | None = Field(
        None,
        description="the secret of an admin key "
        "named `admin`, created (or adopted) before the "
        "server listens; 16+ characters, no whitespace",
    )
    admin_key_file: Path | None = Field(
        None,
        description="a file holding that secret "
        "(a mounted secret); one trailing newline is ignored",
    )
    db_retry_seconds: float = Field(
        30.0,
        ge=0,
        description="background writes (history) "
        "retry this long on a locked or unreachable database, "
        "then go to a crash-safe spool on disk, replayed later",
    )
    cache_shared: bool = Field(
        False,
        description="share pre-render cache entries between "
        "API keys (off: each key has its own entries, so no key learns "
        "what another said)",
    )

    models_dir: Path | None = Field(
        None, description="neural voices (Piper, Kokoro); default: data_dir/models"
    )
    model_engines: dict[str, str] = Field(
        default_factory=dict,
        description="JSON: a "
        "model id → the engine that serves it, over the "
        'catalog\'s choice, e.g. {"tts-1": "hibari"}',
    )
    model_idle_seconds: float = Field(300.0, gt=0, description="unload a model unused this long")
    providers_file: Path | None = Field(
        None,
        description="TOML of upstream TTS providers (a gateway); their models join the catalog",
    )

    # Wyoming (Home Assistant): off unless a URI is given; see wyoming/server.py
    wyoming_uri: str | None = Field(
        None,
        description="tcp://HOST:PORT (or unix://PATH) to "
        "serve the Wyoming protocol on, beside HTTP",
    )
    wyoming_key: str | None = Field(
        None,
        description="API key (id or name) the Wyoming "
        "listener acts as: its quota, limits and history",
    )
    wyoming_max_connections: int = Field(
        32, ge=1, description="Wyoming connections at once; more are refused with an error event"
    )
    wyoming_max_connections_per_address: int = Field(
        8, ge=1, description="Wyoming connections from one IP address at once; more are refused"
    )
    wyoming_event_timeout: float = Field(
        5.0,
        gt=0,
        description="a new Wyoming connection "
        "sends its first event, and every event once "
        "begun arrives whole, within this; else it closes",
    )
    wyoming_write_timeout: float = Field(
        30.0, gt=0, description="a Wyoming client that takes no audio this long is disconnected"
    )
    wyoming_idle_timeout: float = Field(
        300.0, gt=0, description="close a Wyoming connection silent this long"
    )
    wyoming_max_event_bytes: int = Field(
        1 << 20, ge=1024, description="largest Wyoming event data or payload"
    )
    wyoming_zeroconf: bool = Field(False, description="announce _wyoming._tcp over mDNS")
    wyoming_zeroconf_name: str | None = Field(
        None, description="zeroconf instance name; default orate-HOSTNAME"
    )

    def resolved_models_dir(self) -> Path:
        return self.models_dir or self.data_dir / "models"

    def resolved_spool_dir(self) -> Path:
        return self.spool_dir or self.data_dir / "spool"

    # library: where state lives (see library/)
    database_url: str | None = Field(
        None, description="sqlite:///path or postgresql://…; default: SQLite in data_dir"
    )
    blob_url: str | None = Field(
        None,
        description="a folder path, file:///path or s3://bucket/prefix; default: data_dir/blobs",
    )
    s3_endpoint: str | None = Field(None, description="S3 endpoint URL (MinIO, moto, …)")
    s3_create_bucket: bool = Field(
        False,
        description="`orate serve` creates the s3:// "
        "bucket of ORATE_BLOB_URL when it does not exist",
    )
    history: bool = Field(
        True, description="record every generation (off: nothing is recorded, no audio URLs)"
    )
    store_audio: bool = Field(
        True,
        description="keep each generation's audio (callers can "
        "opt out per request with store=false)",
    )
    retention_days: float | None = Field(
        30.0, gt=0, description="prune generations older than this; unset keeps them forever"
    )
    retention_max_bytes: int | None = Field(
        None, gt=0, description="prune the oldest generations' audio beyond this total size"
    )
    cache_enabled: bool = True
    cache_max_bytes: int = Field(1 << 30, ge=0, description="pre-render cache size bound (LRU)")
    cache_memory_bytes: int = Field(64 << 20, ge=0, description="hot cache entries kept in memory")
    prices: dict[str, Price] = Field(
        default_factory=lambda: dict(DEFAULT_PRICES),
        description="model id → price; '*' applies to the rest. "
        "Default: none, so local engines cost 0",
    )
    currency: str = "USD"

    # scale-out (docs/deployment.md): engines on a Ray cluster, several API replicas
    engine_backend: Literal["local", "ray"] = Field(
        "local",
        description="local: a pool of engine processes here; ray: engine actors "
        "on a Ray cluster (ORATE_RAY_ADDRESS)",
    )
    ray_address: str = Field(
        "auto", description="the Ray cluster: auto, host:6379 or ray://host:10001"
    )
    ray_actors: int | None = Field(
        None, ge=1, description="engine actors to run on Ray; default: ORATE_WORKERS"
    )
    ray_num_cpus: float = Field(1.0, gt=0, description="CPUs Ray reserves per engine actor")
    ray_num_gpus: float = Field(
        0.0, ge=0, description="GPUs per engine actor (neural engines on GPU nodes)"
    )
    ray_neural_actors: int = Field(
        0,
        ge=0,
        description="extra Ray actors only for neural "
        "engines (hibari, Piper, Kokoro), with their own "
        "resources; 0: every actor runs every engine",
    )
    ray_neural_num_cpus: float = Field(1.0, gt=0, description="CPUs per neural actor")
    ray_neural_num_gpus: float = Field(
        0.0, ge=0, description="GPUs per neural actor: Ray places them on nodes that have GPUs"
    )
    replicas_shared: bool | None = Field(
        None,
        description="this replica shares its database with others: limits held in "
        "the database, chores under a lease, history written before a response ends. "
        "Default: on for PostgreSQL, off for SQLite",
    )

    def replicated(self) -> bool:
        if self.replicas_shared is not None:
            return self.replicas_shared
        return self.resolved_database_url().startswith(("postgresql", "postgres"))

    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'orate.db'}"

    def resolved_blob_url(self) -> str:
        return self.blob_url or str(self.data_dir / "blobs")

    @field_validator("default_format")
    @classmethod
    def _known_format(cls, value: str) -> str:
        if value not in FORMATS:
            raise ValueError(f"unknown format {value!r}; use one of {', '.join(FORMATS)}")
        return value
