"""``orate``: serve the API, or synthesize and list voices without a server."""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import json
import os
import re
import sys
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from orate.audio.formats import FORMATS, format_for_extension
from orate.cli_tables import Column, field, show
from orate.config import Settings

app = typer.Typer(help="orate: a self-hosted text-to-speech server.", no_args_is_help=True,
                  add_completion=False,
                  # a crash must not print local variables: `keys create` holds a secret
                  pretty_exceptions_show_locals=False)
err = Console(stderr=True)


def _version(value: bool) -> None:
    if value:
        from orate import __version__

        print(f"orate {__version__}")
        raise typer.Exit()


@app.callback()
def main(version: Annotated[bool, typer.Option(
        "--version", callback=_version, is_eager=True, help="print the version and exit")]
         = False) -> None:
    """orate: a self-hosted text-to-speech server (OpenAI, Hume and nano-gpt dialects).

    Start with `orate serve`, or `orate say "Hello" -o hello.mp3` without a server.
    Settings come from ORATE_* environment variables (see the README).
    """


JSON_OPTION = typer.Option("--json", help="print JSON (every field, for scripts)")
WIDE_OPTION = typer.Option("--wide", help="every column in full, however wide")


def _settings(**overrides: object) -> Settings:
    """Settings from the environment (and ``orate serve``'s flags); a bad value is a
    one-line error naming the variable, not a pydantic traceback."""
    from pydantic import ValidationError
    from pydantic_settings import SettingsError

    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except SettingsError as exc:  # a value that is not even parseable, e.g. bad JSON
        _fail(f"bad setting: {exc}" + (f" ({exc.__cause__})" if exc.__cause__ else ""))
        raise  # unreachable: _fail exits
    except ValidationError as exc:
        problems = []
        for e in exc.errors():
            name = str(e["loc"][0]) if e["loc"] else "?"
            where = f"--{name.replace('_', '-')}" if name in overrides \
                else f"ORATE_{name.upper()}"
            problems.append(f"{where}={e.get('input')!r}: {e['msg']}")
        _fail("bad setting: " + "; ".join(problems))
        raise  # unreachable: _fail exits


def _catalog(settings: Settings):  # type: ignore[no-untyped-def]
    """The model catalog, or one line naming what is wrong in the providers file."""
    from orate.engines.catalog import Catalog

    try:
        return Catalog.from_settings(settings)
    except (OSError, ValueError) as exc:
        detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        named = detail if str(settings.providers_file) in detail \
            else f"{settings.providers_file}: {detail}"
        _fail(f"ORATE_PROVIDERS_FILE: {named}")


def _note(message: str) -> None:
    """One line of news on stderr, printed as is: names, paths and texts come from users,
    and rich would read "[/x]" in them as markup (and fail after the work was done)."""
    err.print(message, markup=False, highlight=False, soft_wrap=True)


def _fail(message: str) -> None:
    """Print one line, ``error: …``, and exit 2 (bad input), never a traceback."""
    err.print(f"[red]error:[/red] {escape(message)}", soft_wrap=True, highlight=False)
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

    from orate.api.connections import protocol_class
    from orate.app import create_app

    overrides = {k: v for k, v in {"host": host, "port": port, "workers": workers,
                                   "log_level": log_level, "wyoming_uri": wyoming,
                                   "wyoming_zeroconf": zeroconf}.items() if v is not None}
    settings = _settings(**overrides)
    from uvicorn.config import LOG_LEVELS

    if settings.log_level.lower() not in LOG_LEVELS:
        _fail(f"log level {settings.log_level!r}: use one of {', '.join(LOG_LEVELS)}")
    _check_port_free(settings.host, settings.port)
    _catalog(settings)  # a broken providers file fails here, in one line, not in startup
    if settings.wyoming_uri:
        _check_wyoming(settings, insecure)
    try:
        loopback = ipaddress.ip_address(settings.host).is_loopback
    except ValueError:
        loopback = settings.host == "localhost"
    if not loopback:
        async def count(lib):  # type: ignore[no-untyped-def]
            return await lib.keys.auth_required(settings.auth)

        if not _with_library(count):
            if not insecure:
                _fail(f"refusing to listen on {settings.host} with no API keys: anyone who can "
                      "reach it could use it. Create one with `orate keys create --name NAME`, "
                      "or pass --insecure if that is really what you want")
            err.print(f"[yellow]warning:[/yellow] --insecure: listening on {escape(settings.host)} "
                      "with no API keys; anyone who can reach this address can use the server")
    for name in ("uvicorn.access", "uvicorn.error"):
        logging.getLogger(name).addFilter(RedactKeys())
    # no permessage-deflate: audio does not compress, and deflating every frame cost
    # ~5x the CPU of the same stream over HTTP (benchmarks, Hume WebSocket)
    # the protocol bounds slow request headers and stalled readers (api/connections.py)
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port,
                log_level=settings.log_level.lower(), timeout_graceful_shutdown=10,
                ws_per_message_deflate=False,
                ssl_certfile=str(ssl_certfile) if ssl_certfile else None,
                ssl_keyfile=str(ssl_keyfile) if ssl_keyfile else None,
                http=protocol_class(settings.read_timeout, settings.stall_timeout))


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


def _check_port_free(host: str, port: int) -> None:
    """Fail in one line before starting engines when the address is taken or unknown
    (uvicorn would start the worker pool first, then log the bind error among INFO lines)."""
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        _fail(f"cannot listen on {host!r}: {exc.strerror}")
    family, _, _, _, address = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            probe.bind(address)
        except OSError as exc:
            hint = " (another orate running?); pass --port or set ORATE_PORT" \
                if exc.errno == errno.EADDRINUSE else ""
            _fail(f"cannot listen on {host}:{port}: {exc.strerror}{hint}")


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


keys_app = typer.Typer(help="API keys: once the first is created, every route but /healthz "
                       "and /readyz needs one, until `orate keys open --yes`.",
                       add_completion=False, no_args_is_help=True)
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
    _note(f"created {info.id} ({info.name}{', admin' if info.admin else ''}); the key, "
              "shown only this once:")
    print(secret)


KEY_COLUMNS = (
    Column("id", field("id")),
    Column("name", field("name"), flex=True),
    Column("prefix", lambda r: r["prefix"] + "…", 1),
    Column("revoked", lambda r: "yes" if r["revoked"] else "no", 1),
    Column("admin", lambda r: "yes" if r["admin"] else "no", 2),
    Column("used / quota", lambda r: f"{r['used_chars']} / {r['quota_chars'] or '-'}", 2,
           justify="right"),
    Column("rate/min", field("rate_per_minute"), 3, justify="right"),
    Column("concurrency", field("concurrency"), 4, justify="right"),
)


@keys_app.command("list")
def keys_list(as_json: Annotated[bool, JSON_OPTION] = False,
              wide: Annotated[bool, WIDE_OPTION] = False) -> None:
    """Keys (never their secrets): name, prefix, limits, characters used."""
    async def work(lib):  # type: ignore[no-untyped-def]
        return await lib.keys.list()

    rows = _with_library(work)
    show(rows, KEY_COLUMNS, title=f"{len(rows)} keys", wide=wide, as_json=as_json)


@keys_app.command("revoke")
def keys_revoke(ref: Annotated[str, typer.Argument(help="key id, name or prefix")]) -> None:
    """Revoke a key (within two seconds on a running server)."""
    async def work(lib):  # type: ignore[no-untyped-def]
        return await lib.keys.revoke(ref)

    if not _with_library(work):
        _fail(f"no live key {ref!r}")
    _note(f"revoked {ref}")


@keys_app.command("open")
def keys_open(yes: Annotated[bool, typer.Option("--yes", help="yes, serve without keys")]
              = False) -> None:
    """Turn auth off: anyone who can reach the server may use it. Only once every key is
    revoked (revoking the last key alone keeps the server locked)."""
    if not yes:
        _fail("this lets anyone who can reach the server use it; confirm with --yes")

    async def work(lib):  # type: ignore[no-untyped-def]
        return await lib.keys.open_auth()

    live = _with_library(work)
    if live:
        _fail(f"{live} live keys remain; revoke them first (`orate keys revoke NAME`)")
    err.print("auth is off: requests need no key (within two seconds on a running server)")


@app.command()
def say(
    text: Annotated[str, typer.Argument(help="text to speak; '-' reads standard input")],
    output: Annotated[str | None, typer.Option(
        "-o", "--output", help="file to write; '-' is stdout (the default when stdout is a "
        "pipe or a file)")] = None,
    voice: Annotated[str | None, typer.Option(help="voice name, e.g. alloy, en-us+f3")] = None,
    format: Annotated[str | None, typer.Option(
        "--format", "-f", help=f"one of {', '.join(FORMATS)}; default from the extension")] = None,
    speed: Annotated[float, typer.Option(min=0.25, max=4.0, help="0.25 to 4.0")] = 1.0,
    model: Annotated[str | None, typer.Option(help="model id")] = None,
    timestamps: Annotated[Path | None, typer.Option(
        help="also write word and phoneme timestamps to this JSON file")] = None,
    captions: Annotated[Path | None, typer.Option(
        help="also write captions to this file (.srt or .vtt)")] = None,
    normalize: Annotated[bool, typer.Option(
        help="read numbers, money, dates… as words (--no-normalize: as written)")] = True,
) -> None:
    """Synthesize TEXT in this process (no server needed) and write the audio.

    Long text is fine: past the per-request limit of the HTTP dialects (4,096
    characters) it is spoken sentence by sentence into the same file, up to the
    long-form limit of jobs (ORATE_MAX_JOB_CHARS, 200,000), as a job would be.
    """
    caption_format = None
    if captions is not None:
        caption_format = captions.suffix.lower().lstrip(".")
        if caption_format not in ("srt", "vtt"):
            _fail(f"--captions {captions}: name a .srt or .vtt file")
    from orate.speech.pipeline import Pipeline, SpeechError, SpeechEvent, SpeechRequest, Utterance

    settings = _settings()
    if output is None:
        if sys.stdout.isatty():
            _fail("where should the audio go? pass -o hello.mp3 (format from the extension), "
                  "or redirect: orate say … > hello.mp3")
        output = "-"
    if text == "-":
        text = sys.stdin.read()
    to_stdout = output == "-"
    fmt = format or (None if to_stdout else format_for_extension(Path(output).suffix))
    if fmt is None:
        fmt = settings.default_format if to_stdout else None
    if fmt is None:
        _fail(f"cannot tell the format from {output!r}; pass --format "
              f"({', '.join(FORMATS)})")
    pipeline = Pipeline(settings, _catalog(settings), pool=None)
    request = SpeechRequest(
        model=model or settings.default_model,
        utterances=[Utterance(text, voice or settings.default_voice, speed)], format=fmt,
        timestamps=frozenset({"word", "phoneme"}) if timestamps else
        frozenset({"word"}) if captions else frozenset(),
        whole_file=not to_stdout, normalize=normalize,
        framing=None,  # no HTTP response held in a server's memory: the job limits apply
        # the CLI has no wire limit: the pipeline renders sentence by sentence into one
        # encoder, so memory stays bounded; the job limit bounds the work up front
        max_chars=max(settings.max_job_chars, settings.max_input_chars))
    try:
        plan = asyncio.run(pipeline.plan(request))
    except SpeechError as exc:
        hint = " (raise ORATE_MAX_JOB_CHARS, or split the text)" \
            if exc.code == "request_too_large" else ""
        _fail(exc.message + hint)
    progress = _sentence_progress(len(plan.job.text)) \
        if len(plan.job.text) > settings.max_input_chars and not to_stdout else None
    if timestamps is not None and not timestamps.parent.is_dir():
        _fail(f"--timestamps {timestamps}: no folder {timestamps.parent}")
    stamps: list[dict[str, object]] = []
    try:
        sink = sys.stdout.buffer if to_stdout else open(output, "wb")  # noqa: SIM115
    except OSError as exc:
        _fail(f"cannot write {output}: {exc.strerror}")
    # events arrive inside the engine's ctypes callback, where an exception is only
    # printed and synthesis goes on: a failed write is kept here and stops the render
    failed: list[OSError] = []
    try:
        def on_event(event: SpeechEvent) -> None:
            if failed:
                return
            if event.kind == "audio":
                try:
                    sink.write(event.audio)
                    if to_stdout:
                        sink.flush()
                except OSError as exc:
                    failed.append(exc)
            elif event.kind == "timestamps":
                stamps.extend(t.to_dict() for t in event.timestamps)
            elif event.kind == "sentence" and progress is not None:
                progress.update(progress.task_ids[0], completed=event.info["char_end"])

        if progress is not None:
            with progress:
                stats = pipeline.render_local(plan, on_event, lambda: bool(failed))
        else:
            stats = pipeline.render_local(plan, on_event, lambda: bool(failed))
    finally:
        if not to_stdout:
            try:
                sink.close()
            except OSError as exc:
                failed.append(exc)
    if failed:
        if to_stdout and isinstance(failed[0], BrokenPipeError):
            # the reader stopped (`orate say … | head`): quiet, as other Unix tools are
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            raise typer.Exit(141)
        where = "standard output" if to_stdout else output
        _fail(f"cannot write {where}: {failed[0].strerror or failed[0]}")
    if timestamps:
        try:
            timestamps.write_text(json.dumps(stamps, indent=1, ensure_ascii=False))
        except OSError as exc:
            _fail(f"cannot write {timestamps}: {exc.strerror}")
    if captions is not None and caption_format is not None:
        from orate.speech.captions import captions as make_captions
        from orate.speech.timestamps import Timestamp

        captions.write_text(make_captions([Timestamp(**d) for d in stamps  # type: ignore[arg-type]
                                           if d["type"] == "word"], caption_format, text))
    if not to_stdout:
        _note(f"wrote {output}: {stats.duration:.2f} s of {fmt} "
                  f"({plan.voices[0].label()})")


def _sentence_progress(characters: int):  # type: ignore[no-untyped-def]
    """A progress bar over characters spoken, for long text on a terminal (else None)."""
    if not err.is_terminal:
        return None
    from rich.progress import BarColumn, Progress, TimeElapsedColumn

    progress = Progress("speaking", BarColumn(), "{task.percentage:>3.0f}%",
                        TimeElapsedColumn(), console=err, transient=True)
    progress.add_task("speaking", total=characters)
    return progress


voices_app = typer.Typer(help="Built-in voices, and your saved voices (create, list, rm).",
                         add_completion=False)
app.add_typer(voices_app, name="voices")
cache_app = typer.Typer(help="The pre-render cache: warm it from a prompt list, see it, "
                        "empty it.", add_completion=False, no_args_is_help=True)
app.add_typer(cache_app, name="cache")


@voices_app.callback(invoke_without_command=True)
def voices(
    ctx: typer.Context,
    language: Annotated[str | None, typer.Option(
        help="only voices whose language starts with this, e.g. fr or en-gb")] = None,
    model: Annotated[str | None, typer.Option(help="model id")] = None,
    as_json: Annotated[bool, JSON_OPTION] = False,
    wide: Annotated[bool, WIDE_OPTION] = False,
) -> None:
    """List the built-in voices of a model (the OpenAI names are aliases of these)."""
    if ctx.invoked_subcommand:
        return
    from orate.engines.catalog import OPENAI_VOICES

    settings = _settings()
    catalog = _catalog(settings)
    found = catalog.model(model or settings.default_model)
    if found is None:
        _fail(f"unknown model {model!r}; models: {', '.join(catalog.models)}")
    rows = [v for v in [*catalog.named_voices(found), *catalog.voices(found)]
            if not language or any(lang.startswith(language.lower()) for lang in v.languages)]
    if as_json:
        print(json.dumps([v.__dict__ for v in rows], default=list, indent=1))
        return
    show([v.__dict__ for v in rows], BUILTIN_VOICE_COLUMNS,
         title=f"{len(rows)} voices of {found.id}", wide=wide)
    if not language and found.aliases_openai_voices:
        aliases = ", ".join(f"{k}={catalog.resolve_voice(found, k).label()}"
                            for k in OPENAI_VOICES)
        hint = " Add a variant with +, e.g. en-us+f3." if found.engine == "espeak" else ""
        Console().print(f"OpenAI names: {aliases}.{hint}")


BUILTIN_VOICE_COLUMNS = (
    Column("id", field("id")),
    Column("name", field("name"), flex=True),
    Column("language", field("language")),
    Column("gender", field("gender"), 1),
    Column("languages", lambda v: ", ".join(v["languages"]), 2),
)


async def _open_library(settings: Settings):  # type: ignore[no-untyped-def]
    """The library, or one line saying which database could not be opened and why
    (a wrong ORATE_DATABASE_URL or data dir is a setting to fix, not a traceback)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import SQLAlchemyError

    from orate.library.library import Library

    url = settings.resolved_database_url()
    try:
        return await Library.open(settings, background=False)
    except (OSError, SQLAlchemyError, ImportError, ValueError) as exc:
        try:
            shown = make_url(url).render_as_string(hide_password=True)
        except Exception:
            shown = "ORATE_DATABASE_URL"
        _fail(f"cannot open the library at {shown}: {exc}; check ORATE_DATABASE_URL "
              "and ORATE_DATA_DIR")


def _with_library(work):  # type: ignore[no-untyped-def]
    """Run ``work(library)`` against the configured library (the server may be running)."""
    async def main():  # type: ignore[no-untyped-def]
        lib = await _open_library(_settings())
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
    pitch: Annotated[int | None, typer.Option(min=0, max=100,
                                              help="base pitch, 0 low to 100 high (espeak 50)")]
    = None,
    pitch_range: Annotated[int | None, typer.Option(
        "--range", min=0, max=100, help="pitch variation, 0 monotone to 100 lively")] = None,
    rate: Annotated[float, typer.Option(min=0.25, max=4.0, help="speaking rate, 1 is normal")]
    = 1.0,
    volume: Annotated[int | None, typer.Option(min=0, max=200, help="loudness, 100 is normal")]
    = None,
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


def _voice_label(row: dict[str, object]) -> str:
    params: dict[str, object] = row["params"]  # type: ignore[assignment]
    return f"{params['voice']}" + (f"+{params['variant']}" if params.get("variant") else "")


SAVED_VOICE_COLUMNS = (
    Column("id", field("id")),
    Column("name", field("name")),
    Column("voice", _voice_label),
    Column("language", field("language"), 1),
    Column("source", field("source"), 2),
    Column("gender", field("gender"), 3),
    Column("created", lambda r: str(r.get("created_at", ""))[:19].replace("T", " "), 4),
    Column("description", field("description"), 5, flex=True),
)


@voices_app.command("list")
def voices_list(as_json: Annotated[bool, JSON_OPTION] = False,
                wide: Annotated[bool, WIDE_OPTION] = False) -> None:
    """List your saved voices."""
    from orate.library.voices import voice_json

    async def work(lib):  # type: ignore[no-untyped-def]
        rows, _ = await lib.voices.list(None, limit=1000)
        return [voice_json(r) for r in rows]

    rows = _with_library(work)
    show(rows, SAVED_VOICE_COLUMNS, title=f"{len(rows)} saved voices", wide=wide,
         as_json=as_json)


@voices_app.command("rm")
def voices_rm(ref: Annotated[str, typer.Argument(help="voice id or name")]) -> None:
    """Delete a saved voice."""
    async def work(lib):  # type: ignore[no-untyped-def]
        return await lib.voices.delete(None, ref)

    if not _with_library(work):
        _fail(f"no saved voice {ref!r}")
    _note(f"deleted {ref}")


HISTORY_COLUMNS = (
    Column("created", lambda r: r["created_at"][:19].replace("T", " "), 3),
    Column("id", field("id")),
    Column("model", field("model")),
    Column("voice", field("voice"), 2),
    Column("format", field("format"), 4),
    Column("seconds", lambda r: f"{r['duration']:.2f}", 1, justify="right"),
    Column("cache", lambda r: "hit" if r["cache_hit"] else "", 5),
    Column("text", field("text"), flex=True),
)


@app.command()
def history(limit: Annotated[int, typer.Option(min=1, max=1000, help="how many")] = 20,
            as_json: Annotated[bool, JSON_OPTION] = False,
            wide: Annotated[bool, WIDE_OPTION] = False) -> None:
    """The latest generations, newest first (ids for `orate voices create
    --from-generation` and /v1/audio/files/ID)."""
    async def work(lib):  # type: ignore[no-untyped-def]
        rows, total = await lib.generations.list(None, limit)
        return [{"id": r.id, "created_at": r.created_at.isoformat(), "dialect": r.dialect,
                 "model": r.model, "voice": r.voice, "format": r.format,
                 "duration": round(r.duration, 3), "cost": r.cost, "cache_hit": r.cache_hit,
                 "text": r.text} for r in rows], total

    rows, total = _with_library(work)
    show(rows, HISTORY_COLUMNS, title=f"{len(rows)} of {total} generations", wide=wide,
         as_json=as_json)


def _prompts(path: Path) -> list[dict[str, str]]:
    """One text per line, or CSV / JSONL rows with text and optional voice and format."""
    import csv

    try:
        raw = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        _fail(f"cannot read {path}: {exc}")
    if path.suffix.lower() == ".jsonl":
        rows = []
        for n, line in enumerate(raw.splitlines(), 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    _fail(f"{path}, line {n}: not JSON ({exc.msg}); each line is an object "
                          'like {"text": "…", "voice": "nova"}')
    elif path.suffix.lower() == ".csv":
        rows = list(csv.DictReader(raw.splitlines()))
    else:
        rows = [{"text": line} for line in raw.splitlines() if line.strip()]
    if not rows:
        _fail(f"{path} has no prompts: write one text per line (or .csv / .jsonl rows)")
    for n, row in enumerate(rows, 1):
        if not isinstance(row, dict) or not str(row.get("text") or "").strip():
            _fail(f"{path}: entry {n} has no text")
    return rows


models_app = typer.Typer(help="Models: list the catalog; pull or remove Piper and Kokoro "
                         "voices in the model store.", add_completion=False,
                         no_args_is_help=True)
app.add_typer(models_app, name="models")


MODEL_COLUMNS = (
    Column("id", field("id")),
    Column("engine", field("engine")),
    Column("voices", field("voice_count"), 1, justify="right"),
    Column("$/1k chars", lambda r: f"{r['per_1k_chars']:g}", 1, justify="right"),
    Column("mode", field("mode"), 2),
    Column("rate", field("sample_rate"), 3, justify="right"),
    Column("languages", lambda r: f"{len(r['languages'])}: {', '.join(r['languages'])}"
           if r["languages"] else "-", 4, flex=True),
)


@models_app.command("list")
def models_list(as_json: Annotated[bool, JSON_OPTION] = False,
                wide: Annotated[bool, WIDE_OPTION] = False) -> None:
    """Every model this server would serve, with its engine, voices and price."""

    settings = _settings()
    catalog = _catalog(settings)
    rows = []
    for model in catalog.models.values():
        price = catalog.price(model.id)
        rows.append({"id": model.id, **catalog.describe(model),
                     "per_1k_chars": price.per_1k_chars, "per_second": price.per_second})
    show(rows, MODEL_COLUMNS, title=f"{len(rows)} models (store: "
         f"{settings.resolved_models_dir()})", wide=wide, as_json=as_json)


@models_app.command("pull")
def models_pull(
    spec: Annotated[str, typer.Argument(help="piper:en_US-lessac-medium, or kokoro")],
    base_url: Annotated[str | None, typer.Option(
        help="a mirror with the same paths as the publishers' download sites")] = None,
) -> None:
    """Download a voice into the model store (resumable, checksummed)."""
    from orate.engines.download import DownloadError, pull

    settings = _settings()
    try:
        files = pull(spec, settings.resolved_models_dir(), base_url=base_url, console=err)
    except (DownloadError, ValueError) as exc:
        _fail(str(exc))
    _note(f"pulled {spec}: {', '.join(f.name for f in files)}; restart the server to "
              "serve it")


@models_app.command("rm")
def models_rm(spec: Annotated[str, typer.Argument(help="piper:NAME, kokoro or a file stem")]
              ) -> None:
    """Delete a voice from the model store."""
    from orate.engines.download import remove

    try:
        removed = remove(spec, _settings().resolved_models_dir())
    except ValueError as exc:
        _fail(str(exc))
    if not removed:
        _fail(f"no model {spec!r} in the store")
    _note(f"removed {len(removed)} files")


jobs_app = typer.Typer(help="Asynchronous jobs (nano-gpt's 202 + runId): list, show, wait.",
                       add_completion=False, no_args_is_help=True)
app.add_typer(jobs_app, name="jobs")


def _job_json(job) -> dict[str, object]:  # type: ignore[no-untyped-def]
    return {"runId": job.id, "status": job.status, "progress": round(job.progress, 4),
            "model": job.model, "characters": job.characters, "cost": job.cost,
            "generation_id": job.generation_id, "error": job.error, "attempts": job.attempts,
            "created_at": job.created_at.isoformat(),
            "finished_at": job.finished_at.isoformat() if job.finished_at else None}


JOB_COLUMNS = (
    Column("runId", field("runId")),
    Column("status", field("status")),
    Column("progress", lambda r: f"{r['progress']:.0%}", 1, justify="right"),
    Column("model", field("model")),
    Column("characters", field("characters"), 2, justify="right"),
    Column("created", lambda r: str(r["created_at"])[:19].replace("T", " "), 3),
    Column("error", field("error", ""), 4, flex=True),
)
JOB_STATUSES = ("pending", "processing", "completed", "failed")


@jobs_app.command("list")
def jobs_list(limit: Annotated[int, typer.Option(min=1, max=1000, help="how many")] = 20,
              status: Annotated[str | None, typer.Option(help="pending, processing, completed "
                                                          "or failed")] = None,
              as_json: Annotated[bool, JSON_OPTION] = False,
              wide: Annotated[bool, WIDE_OPTION] = False) -> None:
    """The latest jobs, newest first."""
    if status is not None and status not in JOB_STATUSES:
        _fail(f"--status {status!r}: use one of {', '.join(JOB_STATUSES)}")

    async def work(lib):  # type: ignore[no-untyped-def]
        return [_job_json(j) for j in await lib.jobs.list(None, limit, status)]

    rows = _with_library(work)
    show(rows, JOB_COLUMNS, title=f"{len(rows)} jobs", wide=wide, as_json=as_json)


@jobs_app.command("show")
def jobs_show(run_id: Annotated[str, typer.Argument(help="the runId")]) -> None:
    """One job, as JSON."""
    async def work(lib):  # type: ignore[no-untyped-def]
        job = await lib.jobs.get(run_id, None)
        return _job_json(job) if job else None

    found = _with_library(work)
    if found is None:
        _fail(f"no job {run_id!r}; `orate jobs list` shows the latest")
    print(json.dumps(found, indent=1))


@jobs_app.command("wait")
def jobs_wait(run_id: Annotated[str, typer.Argument(help="the runId")],
              timeout: Annotated[float, typer.Option(help="seconds to wait")] = 600.0,
              output: Annotated[Path | None, typer.Option("-o", "--output",
                                                          help="write the audio here")] = None
              ) -> None:
    """Wait for a job (a server must be running it) with a progress bar; optionally save it."""
    from rich.progress import BarColumn, Progress, TimeElapsedColumn

    async def main() -> dict[str, object]:
        lib = await _open_library(_settings())
        try:
            # look before drawing anything: an unknown id is an error, not a 0% bar
            job = await lib.jobs.get(run_id, None)
            if job is None:
                _fail(f"no job {run_id!r}; `orate jobs list` shows the latest")
            deadline = time.monotonic() + timeout
            with Progress("[progress.description]{task.description}", BarColumn(),
                          "{task.percentage:>3.0f}%", TimeElapsedColumn(),
                          console=err) as progress:
                task = progress.add_task(run_id[:8], total=1.0)
                problem = None  # said after the bar is gone, as the last line
                while True:
                    job = await lib.jobs.get(run_id, None)
                    if job is None:  # removed by retention while we waited
                        problem = f"job {run_id!r} is gone"
                        break
                    progress.update(task, completed=job.progress, description=job.status)
                    if job.status in ("completed", "failed"):
                        break
                    if time.monotonic() > deadline:
                        hint = "; jobs run inside `orate serve`: is a server running on this " \
                            "library?" if job.status == "pending" else ""
                        problem = f"job {run_id} is still {job.status} after {timeout:g} s{hint}"
                        break
                    await asyncio.sleep(0.5)
            if problem is not None or job is None:
                _fail(problem or f"job {run_id!r} is gone")
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
    format: Annotated[str | None, typer.Option(
        "--format", "-f", help=f"format when a row names none: {', '.join(FORMATS)}")] = None,
    model: Annotated[str | None, typer.Option(help="model when a row names none")] = None,
    workers: Annotated[int | None, typer.Option(min=1, help="engine processes")] = None,
) -> None:
    """Pre-render prompts into the cache, in parallel; already-cached ones are skipped."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    from orate.engines.pool import EnginePool
    from orate.speech.pipeline import Context, Pipeline, SpeechError, SpeechRequest, Utterance

    settings = _settings() if workers is None else _settings(workers=workers)
    rows = _prompts(file)

    async def main() -> tuple[int, int, list[str]]:
        pool = EnginePool(settings.workers, settings.resolved_models_dir(),
                          settings.model_idle_seconds)
        lib = await _open_library(settings)
        await pool.start()
        pipeline = Pipeline(settings, _catalog(settings), pool, lib)
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
        err.print(f"[red]skipped[/red] {escape(failure)}", soft_wrap=True)
    _note(f"rendered {rendered}, already cached {skipped}, failed {len(failures)}")
    if failures:
        raise typer.Exit(1)


@cache_app.command("stats")
def cache_stats(as_json: Annotated[bool, JSON_OPTION] = False,
                wide: Annotated[bool, WIDE_OPTION] = False) -> None:
    """Entries, size, and the hits and misses of every server on this library (the same
    numbers as GET /v1/cache)."""
    async def work(lib):  # type: ignore[no-untyped-def]
        return await lib.cache.stats()

    stats = _with_library(work)
    if as_json:
        print(json.dumps(stats, indent=1))
        return
    rows = [{"what": k, "value": v} for k, v in stats.items()]
    show(rows, (Column("what", field("what")), Column("value", field("value"), justify="right")),
         title="cache", wide=wide)


@cache_app.command("clear")
def cache_clear() -> None:
    """Empty the cache (history keeps its own copies of audio)."""
    async def work(lib):  # type: ignore[no-untyped-def]
        return await lib.cache.clear()

    _note(f"removed {_with_library(work)} cache entries")




lexicon_app = typer.Typer(help="Pronunciation dictionaries (lexicons): words or patterns read "
                          "as an alias or as IPA; use them with pronunciation_dictionary_"
                          "locators.", no_args_is_help=True)
app.add_typer(lexicon_app, name="lexicon")


@lexicon_app.command("add")
def lexicon_add(
    name: Annotated[str, typer.Argument(help="a name for the dictionary")],
    file: Annotated[Path | None, typer.Option(help="a PLS file (W3C lexicon)")] = None,
    alias: Annotated[list[str] | None, typer.Option(
        help="WORD=ALIAS, repeatable")] = None,
    ipa: Annotated[list[str] | None, typer.Option(help="WORD=IPA, repeatable")] = None,
    description: Annotated[str, typer.Option(help="what the dictionary is for")] = "",
) -> None:
    """Create a dictionary (owned by 'local', the owner when keys are off)."""
    from orate.library.models import LOCAL_OWNER
    from orate.speech.lexicon import LexiconError, rules_from, rules_from_pls

    items: list[dict[str, str]] = []
    for spec, kind in [(a, "alias") for a in alias or []] + [(p, "phoneme") for p in ipa or []]:
        word, sep, value = spec.partition("=")
        if not sep:
            _fail(f"{spec!r}: write WORD=VALUE")
        items.append({"string_to_replace": word, "type": kind, kind: value})
    try:
        rules = rules_from_pls(file.read_bytes()) if file else []
        rules += rules_from(items)
    except LexiconError as exc:
        _fail(str(exc))
    if not rules:
        _fail("give --file, --alias or --ipa")

    async def work(lib):  # type: ignore[no-untyped-def]
        return await lib.lexicons.create(LOCAL_OWNER, name, [r.to_dict() for r in rules],
                                         description)

    row = _with_library(work)
    err.print(f"created {row.dictionary_id} ({len(rules)} rules), version {row.version_id}")
    print(row.dictionary_id)


LEXICON_COLUMNS = (
    Column("id", field("id")),
    Column("name", field("name"), flex=True),
    Column("version", field("version"), 1, justify="right"),
    Column("rules", field("rules_count"), 1, justify="right"),
    Column("owner", field("created_by"), 2),
)


@lexicon_app.command("list")
def lexicon_list(as_json: Annotated[bool, JSON_OPTION] = False,
                 wide: Annotated[bool, WIDE_OPTION] = False) -> None:
    """Every dictionary's latest version."""
    from orate.library.lexicons import lexicon_json

    async def work(lib):  # type: ignore[no-untyped-def]
        return [lexicon_json(r) for r in await lib.lexicons.list(None, limit=1000)]

    rows = _with_library(work)
    show(rows, LEXICON_COLUMNS, title=f"{len(rows)} pronunciation dictionaries", wide=wide,
         as_json=as_json)


@lexicon_app.command("show")
def lexicon_show(ref: Annotated[str, typer.Argument(help="dictionary id")]) -> None:
    """A dictionary's latest version, as JSON."""
    from orate.library.lexicons import lexicon_json

    async def work(lib):  # type: ignore[no-untyped-def]
        return await lib.lexicons.get(None, ref)

    row = _with_library(work)
    if row is None:
        _fail(f"no pronunciation dictionary {ref!r}")
    print(json.dumps(lexicon_json(row), indent=1, ensure_ascii=False))


@lexicon_app.command("rm")
def lexicon_rm(ref: Annotated[str, typer.Argument(help="dictionary id")]) -> None:
    """Delete a dictionary and all its versions."""
    async def work(lib):  # type: ignore[no-untyped-def]
        return await lib.lexicons.delete(None, ref)

    if not _with_library(work):
        _fail(f"no pronunciation dictionary {ref!r}")
    err.print(f"deleted {ref}")


if __name__ == "__main__":
    app(prog_name="orate")
