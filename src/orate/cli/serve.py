"""``orate serve``: the HTTP server (and Wyoming) over the composition root."""

from __future__ import annotations

import errno
import ipaddress
import logging
import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from orate.cli.bootstrap import bootstrap
from orate.cli.common import app, err, fail, load_services, load_settings, with_library
from orate.config import Settings

if TYPE_CHECKING:
    from orate.library.keys import KeyInfo
    from orate.library.library import Library


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="address to listen on")] = None,
    port: Annotated[int | None, typer.Option(help="port to listen on")] = None,
    workers: Annotated[int | None, typer.Option(help="engine worker processes")] = None,
    log_level: Annotated[str | None, typer.Option(help="uvicorn log level")] = None,
    insecure: Annotated[
        bool, typer.Option("--insecure", help="listen beyond loopback even with no API keys")
    ] = False,
    ssl_certfile: Annotated[
        Path | None,
        typer.Option(
            help="serve HTTPS and wss:// with this PEM certificate (the ElevenLabs SDK's "
            "WebSocket helper always uses wss://)"
        ),
    ] = None,
    ssl_keyfile: Annotated[
        Path | None, typer.Option(help="the certificate's PEM private key")
    ] = None,
    wyoming: Annotated[
        str | None,
        typer.Option(
            help="also serve the Wyoming protocol (Home Assistant), e.g. tcp://127.0.0.1:10200"
        ),
    ] = None,
    zeroconf: Annotated[
        bool | None,
        typer.Option("--zeroconf", help="announce the Wyoming listener over mDNS (_wyoming._tcp)"),
    ] = None,
) -> None:
    """Start the HTTP server (one process; engines run in a shared worker pool)."""
    import logging

    import uvicorn

    from orate.api.http.connections import protocol_class, websocket_protocol_class
    from orate.app import create_app

    overrides = {
        k: v
        for k, v in {
            "host": host,
            "port": port,
            "workers": workers,
            "log_level": log_level,
            "wyoming_uri": wyoming,
            "wyoming_zeroconf": zeroconf,
        }.items()
        if v is not None
    }
    settings = load_settings(**overrides)
    from uvicorn.config import LOG_LEVELS

    if settings.log_level.lower() not in LOG_LEVELS:
        fail(f"log level {settings.log_level!r}: use one of {', '.join(LOG_LEVELS)}")
    _check_port_free(settings.host, settings.port)
    bootstrap(settings)  # ORATE_ADMIN_KEY: the first key exists before any listener check
    services = load_services(settings)  # a broken providers file fails here, in one line
    try:
        loopback = ipaddress.ip_address(settings.host).is_loopback
    except ValueError:
        loopback = settings.host == "localhost"
    if not loopback:

        async def count(lib: Library) -> bool:
            return await lib.keys.auth_required(settings.auth)

        if not with_library(count):
            if not insecure:
                fail(
                    f"refusing to listen on {settings.host} with no API keys: anyone who can "
                    "reach it could use it. Set ORATE_ADMIN_KEY to a secret of 16+ "
                    "characters (e.g. `openssl rand -hex 32`) to create an admin key on "
                    "start, or create one with `orate keys create --name NAME`, or pass "
                    "--insecure if that is really what you want"
                )
            err.print(
                f"[yellow]warning:[/yellow] --insecure: listening on {escape(settings.host)} "
                "with no API keys; anyone who can reach this address can use the server"
            )
    if settings.wyoming_uri:
        _check_wyoming(settings, insecure)
    for name in ("uvicorn.access", "uvicorn.error"):
        logging.getLogger(name).addFilter(RedactKeys())
    # no permessage-deflate: audio does not compress, and deflating every frame cost
    # ~5x the CPU of the same stream over HTTP (benchmarks, Hume WebSocket)
    # the protocol bounds slow request headers and stalled readers (api/http/connections.py)
    uvicorn.run(
        create_app(services),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
        timeout_graceful_shutdown=10,
        ws_per_message_deflate=False,
        ws_max_size=1 << 20,  # a frame past 1 MiB is refused before it is parsed
        ssl_certfile=str(ssl_certfile) if ssl_certfile else None,
        ssl_keyfile=str(ssl_keyfile) if ssl_keyfile else None,
        http=protocol_class(settings.read_timeout, settings.stall_timeout),
        ws=websocket_protocol_class(30.0),
    )


@app.command("dev-cluster")
def dev_cluster(
    replicas: Annotated[int, typer.Option(min=1, max=8, help="orate API replicas")] = 2,
    ray_nodes: Annotated[int, typer.Option(min=1, max=4, help="Ray worker nodes")] = 2,
    base: Annotated[Path, typer.Option(help="logs and data of the cluster")] = Path(
        "/tmp/orate-dev-cluster"
    ),
    database_url: Annotated[
        str | None,
        typer.Option(
            help="a PostgreSQL server to create the orate_dev database on (default: the "
            "local Debian cluster)"
        ),
    ] = None,
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
        fail(f"--wyoming {settings.wyoming_uri!r}: use tcp://HOST:PORT or unix://PATH")
    if parsed.scheme == "unix":
        return
    try:
        if parsed.port is None or not parsed.hostname:
            raise ValueError
    except ValueError:
        fail(
            f"--wyoming {settings.wyoming_uri!r}: give a host and a port, "
            "e.g. tcp://127.0.0.1:10200"
        )
    try:
        loopback = ipaddress.ip_address(parsed.hostname).is_loopback
    except ValueError:
        loopback = parsed.hostname == "localhost"
    if loopback:
        return
    ref = settings.wyoming_key

    async def find(lib: Library) -> KeyInfo | None:
        return await lib.keys.find(ref) if ref else None

    if with_library(find) is None:
        if not insecure:
            fail(
                f"refusing to serve Wyoming on {parsed.hostname} unbound to a key: Wyoming "
                "has no authentication, so anyone who can reach it could use it. Create a "
                "key (`orate keys create --name wyoming`) and set ORATE_WYOMING_KEY=wyoming "
                "(its quota, limits and history apply), or pass --insecure"
            )
        err.print(
            f"[yellow]warning:[/yellow] --insecure: Wyoming on {parsed.hostname} with "
            "no key; anyone who can reach this address can use it"
        )


def _check_port_free(host: str, port: int) -> None:
    """Fail in one line before starting engines when the address is taken or unknown
    (uvicorn would start the worker pool first, then log the bind error among INFO lines)."""
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        fail(f"cannot listen on {host!r}: {exc.strerror}")
    family, _, _, _, address = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            probe.bind(address)
        except OSError as exc:
            hint = (
                " (another orate running?); pass --port or set ORATE_PORT"
                if exc.errno == errno.EADDRINUSE
                else ""
            )
            fail(f"cannot listen on {host}:{port}: {exc.strerror}{hint}")


class RedactKeys:
    """A logging filter: API keys in query strings (Hume's WebSocket) never reach logs."""

    _pattern = re.compile(r"((?:api_key|access_token)=)[^&\s\"']+")

    def filter(self, record: logging.LogRecord) -> bool:
        if record.args:
            record.args = tuple(
                self._pattern.sub(r"\1***", a) if isinstance(a, str) else a for a in record.args
            )
        if isinstance(record.msg, str):
            record.msg = self._pattern.sub(r"\1***", record.msg)
        return True
