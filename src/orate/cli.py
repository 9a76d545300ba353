"""``orate``: serve the API, or synthesize and list voices without a server."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import re
import sys
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from orate.audio.formats import FORMATS, format_for_extension
from orate.config import Settings

app = typer.Typer(help="orate: a self-hosted text-to-speech server.", no_args_is_help=True,
                  add_completion=False)
err = Console(stderr=True)


def _fail(message: str) -> None:
    err.print(f"[red]error:[/red] {message}")
    raise typer.Exit(2)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="address to listen on")] = None,
    port: Annotated[int | None, typer.Option(help="port to listen on")] = None,
    workers: Annotated[int | None, typer.Option(help="engine worker processes")] = None,
    log_level: Annotated[str | None, typer.Option(help="uvicorn log level")] = None,
    insecure: Annotated[bool, typer.Option(
        "--insecure", help="listen beyond loopback even with no API keys")] = False,
    ssl_certfile: Annotated[Path | None, typer.Option(
        help="serve HTTPS and wss:// with this PEM certificate (the ElevenLabs SDK's "
        "WebSocket helper always uses wss://)")] = None,
    ssl_keyfile: Annotated[Path | None, typer.Option(
        help="the certificate's PEM private key")] = None,
    wyoming: Annotated[str | None, typer.Option(
        help="also serve the Wyoming protocol (Home Assistant), e.g. tcp://127.0.0.1:10200")]
    = None,
    zeroconf: Annotated[bool | None, typer.Option(
        "--zeroconf", help="announce the Wyoming listener over mDNS (_wyoming._tcp)")] = None,
) -> None:
    """Start the HTTP server (one process; engines run in a shared worker pool)."""
    import logging

    import uvicorn

    from orate.app import create_app

    overrides = {k: v for k, v in {"host": host, "port": port, "workers": workers,
                                   "log_level": log_level, "wyoming_uri": wyoming,
                                   "wyoming_zeroconf": zeroconf}.items() if v is not None}
    settings = Settings(**overrides)
    if settings.wyoming_uri:
        _check_wyoming(settings, insecure)
    try:
        loopback = ipaddress.ip_address(settings.host).is_loopback
    except ValueError:
        loopback = settings.host == "localhost"
    if not loopback:
        async def count(lib):  # type: ignore[no-untyped-def]
            return await lib.keys.any_active()

        if not _with_library(count):
            if not insecure:
                _fail(f"refusing to listen on {settings.host} with no API keys: anyone who can "
                      "reach it could use it. Create one with `orate keys create --name NAME`, "
                      "or pass --insecure if that is really what you want")
            err.print(f"[yellow]warning:[/yellow] --insecure: listening on {settings.host} "
                      "with no API keys; anyone who can reach this address can use the server")
    for name in ("uvicorn.access", "uvicorn.error"):
        logging.getLogger(name).addFilter(RedactKeys())
    # no permessage-deflate: audio does not compress, and deflating every frame cost
    # ~5x the CPU of the same stream over HTTP (benchmarks, Hume WebSocket)
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port,
                log_level=settings.log_level, timeout_graceful_shutdown=10,
                ws_per_message_deflate=False,
                ssl_certfile=str(ssl_certfile) if ssl_certfile else None,
                ssl_keyfile=str(ssl_keyfile) if ssl_keyfile else None)


@app.command("dev-cluster")
def dev_cluster(
    replicas: Annotated[int, typer.Option(min=1, max=8, help="orate API replicas")] = 2,
    ray_nodes: Annotated[int, typer.Option(min=1, max=4, help="Ray worker nodes")] = 2,
    base: Annotated[Path, typer.Option(help="logs and data of the cluster")] = Path(
        "/tmp/orate-dev-cluster"),
    database_url: Annotated[str | None, typer.Option(
        help="a PostgreSQL server to create the orate_dev database on (default: the "
        "local Debian cluster)")] = None,
) -> None:
    """Start, on loopback, PostgreSQL (a database of its own), moto_server (S3), a Ray
    head and Ray worker nodes, and API replicas on the Ray backend; Ctrl-C stops them."""
    from orate.devcluster import main

    main(base, replicas, ray_nodes, database_url)


def _check_wyoming(settings: Settings, insecure: bool) -> None:
    """Wyoming has no auth field: beyond loopback, the listener must be bound to a live key
    (``ORATE_WYOMING_KEY``) unless --insecure, as ``serve`` refuses an open HTTP port."""
    from urllib.parse import urlparse

    parsed = urlparse(settings.wyoming_uri or "")
    if parsed.scheme not in ("tcp", "unix"):
        _fail(f"--wyoming {settings.wyoming_uri!r}: use tcp://HOST:PORT or unix://PATH")
    if parsed.scheme == "unix":
        return
    try:
        if parsed.port is None or not parsed.hostname:
            raise ValueError
    except ValueError:
        _fail(f"--wyoming {settings.wyoming_uri!r}: give a host and a port, "
              "e.g. tcp://127.0.0.1:10200")
    try:
        loopback = ipaddress.ip_address(parsed.hostname).is_loopback
    except ValueError:
        loopback = parsed.hostname == "localhost"
    if loopback:
        return
    ref = settings.wyoming_key

    async def find(lib):  # type: ignore[no-untyped-def]
        return await lib.keys.find(ref) if ref else None

    if _with_library(find) is None:
        if not insecure:
            _fail(f"refusing to serve Wyoming on {parsed.hostname} unbound to a key: Wyoming "
                  "has no authentication, so anyone who can reach it could use it. Create a "
                  "key (`orate keys create --name wyoming`) and set ORATE_WYOMING_KEY=wyoming "
                  "(its quota, limits and history apply), or pass --insecure")
        err.print(f"[yellow]warning:[/yellow] --insecure: Wyoming on {parsed.hostname} with "
                  "no key; anyone who can reach this address can use it")


class RedactKeys:
    """A logging filter: API keys in query strings (Hume's WebSocket) never reach logs."""

    _pattern = re.compile(r"((?:api_key|access_token)=)[^&\s\"']+")

    def filter(self, record) -> bool:  # type: ignore[no-untyped-def]
        if record.args:
            record.args = tuple(self._pattern.sub(r"\1***", a) if isinstance(a, str) else a
                                for a in record.args)
        if isinstance(record.msg, str):
            record.msg = self._pattern.sub(r"\1***", record.msg)
        return True


keys_app = typer.Typer(help="API keys: when any exists, every route but /healthz and "
                       "/readyz needs one.", add_completion=False, no_args_is_help=True)
app.add_typer(keys_app, name="keys")


def _rate(value: str | None) -> int | None:
    """``60/min``, ``10/s``, ``1000/h`` or a bare number per minute → requests per minute."""
    if value is None:
        return None
    number, _, unit = value.partition("/")
    per = {"": 1, "m": 1, "min": 1, "minute": 1, "s": 60, "sec": 60, "second": 60,
           "h": 1 / 60, "hour": 1 / 60}.get(unit.strip().lower())
    try:
        rate = float(number) * per if per is not None else None
    except ValueError:
        rate = None
    if rate is None or rate < 1:
        _fail(f"--rate {value!r}: write it like 60/min, 2/s or 1000/hour (at least 1/min)")
    return int(rate)


@keys_app.command("create")
def keys_create(
    name: Annotated[str, typer.Option(help="who or what the key is for")],
    admin: Annotated[bool, typer.Option("--admin", help="may see everyone's records")]
    = False,
    rate: Annotated[str | None, typer.Option(help="requests allowed, e.g. 60/min")] = None,
    concurrency: Annotated[int | None, typer.Option(min=1, help="requests at once")] = None,
    quota_chars: Annotated[int | None, typer.Option(min=1, help="characters in all")] = None,
) -> None:
    """Create a key. Its secret is printed once: store it now, it cannot be shown again."""
    per_minute = _rate(rate)

    async def work(lib):  # type: ignore[no-untyped-def]
        return await lib.keys.create(name, admin=admin, rate_per_minute=per_minute,
                                     concurrency=concurrency, quota_chars=quota_chars)

    info, secret = _with_library(work)
    err.print(f"created {info.id} ({info.name}{', admin' if info.admin else ''}); the key, "
              "shown only this once:")
    print(secret)


@keys_app.command("list")
def keys_list(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Keys (never their secrets): name, prefix, limits, characters used."""
    async def work(lib):  # type: ignore[no-untyped-def]
        return await lib.keys.list()

    rows = _with_library(work)
    if as_json:
        print(json.dumps(rows, indent=1))
        return
    table = Table(title=f"{len(rows)} keys")
    for col in ("id", "name", "prefix", "admin", "rate/min", "concurrency", "used / quota",
                "revoked"):
        table.add_column(col)
    for r in rows:
        table.add_row(r["id"], r["name"], r["prefix"] + "…", str(r["admin"]),
                      str(r["rate_per_minute"] or "-"), str(r["concurrency"] or "-"),
                      f"{r['used_chars']} / {r['quota_chars'] or '-'}", str(r["revoked"]))
    Console().print(table)


@keys_app.command("revoke")
def keys_revoke(ref: Annotated[str, typer.Argument(help="key id, name or prefix")]) -> None:
    """Revoke a key (within two seconds on a running server)."""
    async def work(lib):  # type: ignore[no-untyped-def]
        return await lib.keys.revoke(ref)

    if not _with_library(work):
        _fail(f"no live key {ref!r}")
    err.print(f"revoked {ref}")


@app.command()
def say(
    text: Annotated[str, typer.Argument(help="text to speak; '-' reads standard input")],
    output: Annotated[str, typer.Option("-o", "--output", help="file to write; '-' is stdout")],
    voice: Annotated[str | None, typer.Option(help="voice name, e.g. alloy, en-us+f3")] = None,
    format: Annotated[str | None, typer.Option(
        "--format", "-f", help=f"one of {', '.join(FORMATS)}; default from the extension")] = None,
    speed: Annotated[float, typer.Option(min=0.25, max=4.0, help="0.25 to 4.0")] = 1.0,
    model: Annotated[str | None, typer.Option(help="model id")] = None,
    timestamps: Annotated[Path | None, typer.Option(
        help="also write word and phoneme timestamps to this JSON file")] = None,
) -> None:
    """Synthesize TEXT in this process (no server needed) and write the audio."""
    from orate.engines.catalog import Catalog
    from orate.speech.pipeline import Pipeline, SpeechError, SpeechEvent, SpeechRequest, Utterance

    settings = Settings()
    if text == "-":
        text = sys.stdin.read()
    to_stdout = output == "-"
    fmt = format or (None if to_stdout else format_for_extension(Path(output).suffix))
    if fmt is None:
        fmt = settings.default_format if to_stdout else None
    if fmt is None:
        _fail(f"cannot tell the format from {output!r}; pass --format "
              f"({', '.join(FORMATS)})")
    pipeline = Pipeline(settings, Catalog.from_settings(settings), pool=None)
    request = SpeechRequest(
        model=model or settings.default_model,
        utterances=[Utterance(text, voice or settings.default_voice, speed)], format=fmt,
        timestamps=frozenset({"word", "phoneme"}) if timestamps else frozenset(),
        whole_file=not to_stdout)
    try:
        plan = asyncio.run(pipeline.plan(request))
    except SpeechError as exc:
        _fail(exc.message)
    stamps: list[dict[str, object]] = []
    sink = sys.stdout.buffer if to_stdout else open(output, "wb")  # noqa: SIM115
    try:
        def on_event(event: SpeechEvent) -> None:
            if event.kind == "audio":
                sink.write(event.audio)
                if to_stdout:
                    sink.flush()
            elif event.kind == "timestamps":
                stamps.extend(t.to_dict() for t in event.timestamps)

        stats = pipeline.render_local(plan, on_event)
    finally:
        if not to_stdout:
            sink.close()
    if timestamps:
        timestamps.write_text(json.dumps(stamps, indent=1, ensure_ascii=False))
    if not to_stdout:
        err.print(f"wrote {output}: {stats.duration:.2f} s of {fmt} "
                  f"({plan.voices[0].label()})")


voices_app = typer.Typer(help="Built-in voices, and your saved voices (create, list, rm).",
                         add_completion=False)
app.add_typer(voices_app, name="voices")
cache_app = typer.Typer(help="The pre-render cache: warm it from a prompt list, see it, "
                        "empty it.", add_completion=False, no_args_is_help=True)
app.add_typer(cache_app, name="cache")


@voices_app.callback(invoke_without_command=True)
def voices(
    ctx: typer.Context,
    language: Annotated[str | None, typer.Option(help="only voices whose language starts so")]
    = None,
    model: Annotated[str | None, typer.Option(help="model id")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """List the built-in voices of a model (the OpenAI names are aliases of these)."""
    if ctx.invoked_subcommand:
        return
    from orate.engines.catalog import OPENAI_VOICES, Catalog

    settings = Settings()
    catalog = Catalog.from_settings(settings)
    found = catalog.model(model or settings.default_model)
    if found is None:
        _fail(f"unknown model {model!r}; models: {', '.join(catalog.models)}")
    rows = [v for v in [*catalog.named_voices(found), *catalog.voices(found)]
            if not language or any(lang.startswith(language.lower()) for lang in v.languages)]
    if as_json:
        print(json.dumps([v.__dict__ for v in rows], default=list, indent=1))
        return
    table = Table(title=f"{len(rows)} voices of {found.id}")
    for col in ("id", "name", "language", "gender"):
        table.add_column(col)
    for v in rows:
        table.add_row(v.id, v.name, v.language, v.gender)
    Console().print(table)
    if not language:
        aliases = ", ".join(f"{k}={p.label()}" for k, p in OPENAI_VOICES.items())
        Console().print(f"OpenAI names: {aliases}. Add a variant with +, e.g. en-us+f3.")


def _with_library(work):  # type: ignore[no-untyped-def]
    """Run ``work(library)`` against the configured library (the server may be running)."""
    from orate.library.library import Library

    async def main():  # type: ignore[no-untyped-def]
        lib = await Library.open(Settings(), background=False)
        try:
            return await work(lib)
        finally:
            await lib.close()

    return asyncio.run(main())


@voices_app.command("create")
def voices_create(
    name: Annotated[str, typer.Argument(help="a name, unique among your voices")],
    from_generation: Annotated[str | None, typer.Option(help="copy a generation's voice")]
    = None,
    description: Annotated[str | None, typer.Option(
        help="design from a description, e.g. 'a deep, slow, older British man'")] = None,
    seed: Annotated[int, typer.Option(help="another variation of the description")] = 0,
    voice: Annotated[str, typer.Option(help="base voice, e.g. en-gb or en-us+f3")] = "en-us",
    variant: Annotated[str | None, typer.Option(help="variant, e.g. f3, m2, whisper")] = None,
    pitch: Annotated[int | None, typer.Option(min=0, max=100)] = None,
    pitch_range: Annotated[int | None, typer.Option("--range", min=0, max=100)] = None,
    rate: Annotated[float, typer.Option(min=0.25, max=4.0)] = 1.0,
    volume: Annotated[int | None, typer.Option(min=0, max=200)] = None,
) -> None:
    """Save a voice from parameters, a description or a generation."""
    from orate.engines.base import UnknownVoice, VoiceParams
    from orate.engines.registry import engine_by_name
    from orate.library.models import LOCAL_OWNER
    from orate.library.voices import VoiceExists, voice_json
    from orate.speech.design import design_voice

    engine = engine_by_name("espeak")

    async def work(lib):  # type: ignore[no-untyped-def]
        source, gen_id = "params", None
        if from_generation:
            gen = await lib.generations.get(from_generation, None)
            if gen is None:
                _fail(f"no generation {from_generation!r}")
            params = VoiceParams(**gen.voice_params[0])
            source, gen_id = "generation", gen.id
        elif description:
            params = design_voice(description, engine, seed=seed)
            source = "design"
        else:
            params = VoiceParams(voice=voice, variant=variant, pitch=pitch,
                                 pitch_range=pitch_range, rate=rate, volume=volume)
        try:
            params = engine.check_voice(params)
        except UnknownVoice as exc:
            _fail(str(exc))
        info = next(v for v in engine.voices() if v.id == params.voice)
        gender = engine.variants.get((params.variant or "").lower(), (None, info.gender))[1]
        try:
            row = await lib.voices.create(LOCAL_OWNER, name, params, language=info.language,
                                          gender=gender, description=description or "",
                                          source=source, source_generation_id=gen_id)
        except (VoiceExists, ValueError) as exc:
            _fail(str(exc))
        return voice_json(row)

    print(json.dumps(_with_library(work), indent=1))


@voices_app.command("list")
def voices_list(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """List your saved voices."""
    from orate.library.voices import voice_json

    async def work(lib):  # type: ignore[no-untyped-def]
        rows, _ = await lib.voices.list(None, limit=1000)
        return [voice_json(r) for r in rows]

    rows = _with_library(work)
    if as_json:
        print(json.dumps(rows, indent=1))
        return
    table = Table(title=f"{len(rows)} saved voices")
    for col in ("id", "name", "voice", "language", "source"):
        table.add_column(col)
    for r in rows:
        label = r["params"]["voice"] + (f"+{r['params']['variant']}" if r["params"]["variant"]
                                        else "")
        table.add_row(r["id"], r["name"], label, r["language"], r["source"])
    Console().print(table)


@voices_app.command("rm")
def voices_rm(ref: Annotated[str, typer.Argument(help="voice id or name")]) -> None:
    """Delete a saved voice."""
    async def work(lib):  # type: ignore[no-untyped-def]
        return await lib.voices.delete(None, ref)

    if not _with_library(work):
        _fail(f"no saved voice {ref!r}")
    err.print(f"deleted {ref}")


@app.command()
def history(limit: Annotated[int, typer.Option(min=1, max=1000)] = 20,
            as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """The latest generations, newest first."""
    async def work(lib):  # type: ignore[no-untyped-def]
        rows, total = await lib.generations.list(None, limit)
        return [{"id": r.id, "created_at": r.created_at.isoformat(), "dialect": r.dialect,
                 "model": r.model, "voice": r.voice, "format": r.format,
                 "duration": round(r.duration, 3), "cost": r.cost, "cache_hit": r.cache_hit,
                 "text": r.text} for r in rows], total

    rows, total = _with_library(work)
    if as_json:
        print(json.dumps(rows, indent=1, ensure_ascii=False))
        return
    table = Table(title=f"{len(rows)} of {total} generations")
    for col in ("created", "id", "model", "voice", "format", "seconds", "text"):
        table.add_column(col, overflow="ellipsis", no_wrap=col == "text", max_width=40)
    for r in rows:
        table.add_row(r["created_at"][:19], r["id"], r["model"], r["voice"], r["format"],
                      f"{r['duration']:.2f}", r["text"])
    Console().print(table)


def _prompts(path: Path) -> list[dict[str, str]]:
    """One text per line, or CSV / JSONL rows with text and optional voice and format."""
    import csv

    raw = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".jsonl":
        rows = [json.loads(line) for line in raw.splitlines() if line.strip()]
    elif path.suffix.lower() == ".csv":
        rows = list(csv.DictReader(raw.splitlines()))
    else:
        rows = [{"text": line} for line in raw.splitlines() if line.strip()]
    for n, row in enumerate(rows, 1):
        if not isinstance(row, dict) or not str(row.get("text") or "").strip():
            _fail(f"{path}: entry {n} has no text")
    return rows


models_app = typer.Typer(help="Models: list the catalog; pull or remove Piper and Kokoro "
                         "voices in the model store.", add_completion=False,
                         no_args_is_help=True)
app.add_typer(models_app, name="models")


@models_app.command("list")
def models_list(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Every model this server would serve, with its engine, voices and price."""
    from orate.engines.catalog import Catalog

    settings = Settings()
    catalog = Catalog.from_settings(settings)
    rows = []
    for model in catalog.models.values():
        price = catalog.price(model.id)
        rows.append({"id": model.id, **catalog.describe(model),
                     "per_1k_chars": price.per_1k_chars, "per_second": price.per_second})
    if as_json:
        print(json.dumps(rows, indent=1))
        return
    table = Table(title=f"{len(rows)} models (store: {settings.resolved_models_dir()})")
    for col in ("id", "engine", "mode", "voices", "languages", "rate", "$/1k chars"):
        table.add_column(col)
    for r in rows:
        langs = r["languages"]
        table.add_row(r["id"], str(r["engine"]), str(r["mode"]), str(r["voice_count"] or "-"),
                      str(len(langs)) if len(langs) > 3 else ", ".join(langs) or "-",
                      str(r["sample_rate"] or "-"), f"{r['per_1k_chars']:g}")
    Console().print(table)


@models_app.command("pull")
def models_pull(
    spec: Annotated[str, typer.Argument(help="piper:en_US-lessac-medium, or kokoro")],
    base_url: Annotated[str | None, typer.Option(
        help="a mirror serving the publishers' paths (see engines/download.py)")] = None,
) -> None:
    """Download a voice into the model store (resumable, checksummed)."""
    from orate.engines.download import DownloadError, pull

    settings = Settings()
    try:
        files = pull(spec, settings.resolved_models_dir(), base_url=base_url, console=err)
    except (DownloadError, ValueError) as exc:
        _fail(str(exc))
    err.print(f"pulled {spec}: {', '.join(f.name for f in files)}; restart the server to "
              "serve it")


@models_app.command("rm")
def models_rm(spec: Annotated[str, typer.Argument(help="piper:NAME, kokoro or a file stem")]
              ) -> None:
    """Delete a voice from the model store."""
    from orate.engines.download import remove

    try:
        removed = remove(spec, Settings().resolved_models_dir())
    except ValueError as exc:
        _fail(str(exc))
    if not removed:
        _fail(f"no model {spec!r} in the store")
    err.print(f"removed {len(removed)} files")


jobs_app = typer.Typer(help="Asynchronous jobs (nano-gpt's 202 + runId): list, show, wait.",
                       add_completion=False, no_args_is_help=True)
app.add_typer(jobs_app, name="jobs")


def _job_json(job) -> dict[str, object]:  # type: ignore[no-untyped-def]
    return {"runId": job.id, "status": job.status, "progress": round(job.progress, 4),
            "model": job.model, "characters": job.characters, "cost": job.cost,
            "generation_id": job.generation_id, "error": job.error, "attempts": job.attempts,
            "created_at": job.created_at.isoformat(),
            "finished_at": job.finished_at.isoformat() if job.finished_at else None}


@jobs_app.command("list")
def jobs_list(limit: Annotated[int, typer.Option(min=1, max=1000)] = 20,
              status: Annotated[str | None, typer.Option(help="pending, processing, completed "
                                                          "or failed")] = None,
              as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """The latest jobs, newest first."""
    async def work(lib):  # type: ignore[no-untyped-def]
        return [_job_json(j) for j in await lib.jobs.list(None, limit, status)]

    rows = _with_library(work)
    if as_json:
        print(json.dumps(rows, indent=1))
        return
    table = Table(title=f"{len(rows)} jobs")
    for col in ("runId", "status", "progress", "model", "characters", "created"):
        table.add_column(col)
    for r in rows:
        table.add_row(str(r["runId"]), str(r["status"]), f"{r['progress']:.0%}", str(r["model"]),
                      str(r["characters"]), str(r["created_at"])[:19])
    Console().print(table)


@jobs_app.command("show")
def jobs_show(run_id: Annotated[str, typer.Argument(help="the runId")]) -> None:
    """One job, as JSON."""
    async def work(lib):  # type: ignore[no-untyped-def]
        job = await lib.jobs.get(run_id, None)
        return _job_json(job) if job else None

    found = _with_library(work)
    if found is None:
        _fail(f"no job {run_id!r}")
    print(json.dumps(found, indent=1))


@jobs_app.command("wait")
def jobs_wait(run_id: Annotated[str, typer.Argument(help="the runId")],
              timeout: Annotated[float, typer.Option(help="seconds to wait")] = 600.0,
              output: Annotated[Path | None, typer.Option("-o", "--output",
                                                          help="write the audio here")] = None
              ) -> None:
    """Wait for a job (a server must be running it) with a progress bar; optionally save it."""
    from rich.progress import BarColumn, Progress, TimeElapsedColumn

    from orate.library.library import Library

    async def main() -> dict[str, object]:
        lib = await Library.open(Settings(), background=False)
        try:
            deadline = time.monotonic() + timeout
            with Progress("[progress.description]{task.description}", BarColumn(),
                          "{task.percentage:>3.0f}%", TimeElapsedColumn(),
                          console=err) as progress:
                task = progress.add_task(run_id[:8], total=1.0)
                while True:
                    job = await lib.jobs.get(run_id, None)
                    if job is None:
                        _fail(f"no job {run_id!r}")
                    progress.update(task, completed=job.progress, description=job.status)
                    if job.status in ("completed", "failed"):
                        break
                    if time.monotonic() > deadline:
                        _fail(f"job {run_id} is still {job.status} after {timeout:g} s")
                    await asyncio.sleep(0.5)
            if job.status == "completed" and output is not None and job.generation_id:
                gen = await lib.generations.get(job.generation_id, None)
                if gen is not None:
                    from orate.speech.pipeline import file_bytes

                    output.write_bytes(file_bytes(gen, await lib.generations.audio(gen)))
            return _job_json(job)
        finally:
            await lib.close()

    result = asyncio.run(main())
    print(json.dumps(result, indent=1))
    if result["status"] == "failed":
        raise typer.Exit(1)


@cache_app.command("warm")
def cache_warm(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False,
                                         help=".txt (a text per line), .csv or .jsonl")],
    voice: Annotated[str | None, typer.Option(help="voice when a row names none")] = None,
    format: Annotated[str | None, typer.Option("--format", "-f")] = None,
    model: Annotated[str | None, typer.Option()] = None,
    workers: Annotated[int | None, typer.Option(help="engine processes")] = None,
) -> None:
    """Pre-render prompts into the cache, in parallel; already-cached ones are skipped."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    from orate.engines.catalog import Catalog
    from orate.engines.pool import EnginePool
    from orate.library.library import Library
    from orate.speech.pipeline import Context, Pipeline, SpeechError, SpeechRequest, Utterance

    settings = Settings() if workers is None else Settings(workers=workers)
    rows = _prompts(file)

    async def main() -> tuple[int, int, list[str]]:
        pool = EnginePool(settings.workers, settings.resolved_models_dir(),
                          settings.model_idle_seconds)
        await pool.start()
        lib = await Library.open(settings, background=False)
        pipeline = Pipeline(settings, Catalog.from_settings(settings), pool, lib)
        rendered = skipped = 0
        failures: list[str] = []
        limit = asyncio.Semaphore(settings.workers * 2)
        with Progress("[progress.description]{task.description}", BarColumn(),
                      MofNCompleteColumn(), TimeElapsedColumn(), console=err) as progress:
            task = progress.add_task("warming", total=len(rows))

            async def one(n: int, row: dict[str, str]) -> None:
                nonlocal rendered, skipped
                async with limit:
                    req = SpeechRequest(
                        model=row.get("model") or model or settings.default_model,
                        utterances=[Utterance(row["text"], row.get("voice") or voice
                                              or settings.default_voice)],
                        format=row.get("format") or format or settings.default_format)
                    try:
                        plan = await pipeline.plan(req, Context(dialect="cli", record=False))
                        speech = await pipeline.speak(plan)
                        async for _ in speech.events:
                            pass
                    except SpeechError as exc:
                        failures.append(f"entry {n}: {exc.message}")
                    else:
                        if speech.cache == "hit":
                            skipped += 1
                        else:
                            rendered += 1
                    progress.advance(task)

            try:
                await asyncio.gather(*(one(n, r) for n, r in enumerate(rows, 1)))
            finally:
                await lib.close()
                await pool.close()
        return rendered, skipped, failures

    rendered, skipped, failures = asyncio.run(main())
    for failure in failures:
        err.print(f"[red]skipped[/red] {failure}")
    err.print(f"rendered {rendered}, already cached {skipped}, failed {len(failures)}")
    if failures:
        raise typer.Exit(1)


@cache_app.command("stats")
def cache_stats() -> None:
    """Entries, size and hit counts of the cache."""
    async def work(lib):  # type: ignore[no-untyped-def]
        return await lib.cache.stats()

    print(json.dumps(_with_library(work), indent=1))


@cache_app.command("clear")
def cache_clear() -> None:
    """Empty the cache (history keeps its own copies of audio)."""
    async def work(lib):  # type: ignore[no-untyped-def]
        return await lib.cache.clear()

    err.print(f"removed {_with_library(work)} cache entries")


if __name__ == "__main__":
    app()
