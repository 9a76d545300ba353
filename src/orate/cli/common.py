"""The Typer app and what every ``orate`` command shares: settings, the composition
root's services, the library, and one-line errors."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Annotated, NoReturn, TypeVar, overload

import typer
from rich.console import Console
from rich.markup import escape

from orate.config import Settings

if TYPE_CHECKING:  # imported where used: `orate --help` stays quick
    from orate.library.library import Library
    from orate.services import Services
    from orate.speech.service import SpeechService

T = TypeVar("T")

app = typer.Typer(
    help="orate: a self-hosted text-to-speech server.",
    no_args_is_help=True,
    add_completion=False,
    # a crash must not print local variables: `keys create` holds a secret
    pretty_exceptions_show_locals=False,
)
err = Console(stderr=True)


def _version(value: bool) -> None:
    if value:
        from orate import __version__

        print(f"orate {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="print the version and exit"
        ),
    ] = False,
) -> None:
    """orate: a self-hosted text-to-speech server (OpenAI, Hume and nano-gpt dialects).

    Start with `orate serve`, or `orate say "Hello" -o hello.mp3` without a server.
    Settings come from ORATE_* environment variables (see the README).
    """


def load_settings(**overrides: object) -> Settings:
    """Settings from the environment (and ``orate serve``'s flags); a bad value is a
    one-line error naming the variable, not a pydantic traceback."""
    from pydantic import ValidationError
    from pydantic_settings import SettingsError

    try:
        return Settings(**overrides)  # type: ignore[arg-type]  # flag values, checked by pydantic
    except SettingsError as exc:  # a value that is not even parseable, e.g. bad JSON
        fail(f"bad setting: {exc}" + (f" ({exc.__cause__})" if exc.__cause__ else ""))
        raise  # unreachable: fail exits
    except ValidationError as exc:
        problems = []
        for e in exc.errors():
            name = str(e["loc"][0]) if e["loc"] else "?"
            where = f"--{name.replace('_', '-')}" if name in overrides else f"ORATE_{name.upper()}"
            problems.append(f"{where}={e.get('input')!r}: {e['msg']}")
        fail("bad setting: " + "; ".join(problems))
        raise  # unreachable: fail exits


def load_services(settings: Settings) -> Services:
    """The composition root's services (the same graph the server builds), or one line
    naming what is wrong in the providers file."""
    from orate.services import build_services

    try:
        return build_services(settings)
    except (OSError, ValueError) as exc:
        detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        named = (
            detail
            if str(settings.providers_file) in detail
            else f"{settings.providers_file}: {detail}"
        )
        fail(f"ORATE_PROVIDERS_FILE: {named}")


def note(message: str) -> None:
    """One line of news on stderr, printed as is: names, paths and texts come from users,
    and rich would read "[/x]" in them as markup (and fail after the work was done)."""
    err.print(message, markup=False, highlight=False, soft_wrap=True)


def fail(message: str) -> NoReturn:
    """Print one line, ``error: …``, and exit 2 (bad input), never a traceback."""
    err.print(f"[red]error:[/red] {escape(message)}", soft_wrap=True, highlight=False)
    raise typer.Exit(2)


@overload
async def open_library(settings: Settings, services: None = None, pool: bool = True) -> Library: ...
@overload
async def open_library(
    settings: Settings, services: Services, pool: bool = True
) -> SpeechService: ...
async def open_library(
    settings: Settings,
    services: Services | None = None,
    pool: bool = True,
) -> Library | SpeechService:
    """The library, or one line saying which database could not be opened and why
    (a wrong ORATE_DATABASE_URL or data dir is a setting to fix, not a traceback)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import SQLAlchemyError

    from orate.library.library import Library

    url = settings.resolved_database_url()
    try:
        if services is not None:  # the composition root opens it, with its pool
            return await services.start(pool=pool, jobs=False, background=False)
        return await Library.open(settings, background=False)
    except (OSError, SQLAlchemyError, ImportError, ValueError) as exc:
        try:
            shown = make_url(url).render_as_string(hide_password=True)
        except Exception:
            shown = "ORATE_DATABASE_URL"
        fail(
            f"cannot open the library at {shown}: {exc}; check ORATE_DATABASE_URL "
            "and ORATE_DATA_DIR"
        )


def with_library(work: Callable[[Library], Awaitable[T]]) -> T:
    """Run ``work(library)`` against the configured library (the server may be running)."""

    async def main() -> T:
        lib = await open_library(load_settings())
        try:
            return await work(lib)
        finally:
            await lib.close()

    return asyncio.run(main())


def with_speech(work: Callable[[SpeechService], Awaitable[T]]) -> T:
    """Run ``work(speech_service)`` over the composition root, without engine workers
    (what a command does here needs the library and engine facts, not synthesis)."""

    async def main() -> T:
        services = load_services(load_settings())
        try:
            speech = await open_library(services.settings, services, pool=False)
            return await work(speech)
        finally:
            await services.close()

    return asyncio.run(main())
