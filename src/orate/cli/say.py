"""``orate say``: synthesize in this process, no server (the same render code)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, BinaryIO

import typer

from orate.audio.formats import FORMATS, format_for_extension
from orate.cli.common import app, err, fail, load_services, load_settings, note
from orate.runtime.events import EventKind

if TYPE_CHECKING:
    from rich.progress import Progress

    from orate.catalog.models import Catalog
    from orate.config import Settings
    from orate.runtime.timestamps import Timestamp
    from orate.speech.types import Plan, SpeechEvent, SpeechRequest


@app.command()
def say(
    text: Annotated[str, typer.Argument(help="text to speak; '-' reads standard input")],
    output: Annotated[
        str | None,
        typer.Option(
            "-o",
            "--output",
            help="file to write; '-' is stdout (the default when stdout is a pipe or a file)",
        ),
    ] = None,
    voice: Annotated[str | None, typer.Option(help="voice name, e.g. alloy, en-us+f3")] = None,
    format: Annotated[
        str | None,
        typer.Option(
            "--format", "-f", help=f"one of {', '.join(FORMATS)}; default from the extension"
        ),
    ] = None,
    speed: Annotated[float, typer.Option(min=0.25, max=4.0, help="0.25 to 4.0")] = 1.0,
    model: Annotated[str | None, typer.Option(help="model id")] = None,
    timestamps: Annotated[
        Path | None, typer.Option(help="also write word and phoneme timestamps to this JSON file")
    ] = None,
    captions: Annotated[
        Path | None, typer.Option(help="also write captions to this file (.srt or .vtt)")
    ] = None,
    normalize: Annotated[
        bool, typer.Option(help="read numbers, money, dates… as words (--no-normalize: as written)")
    ] = True,
) -> None:
    """Synthesize TEXT in this process (no server needed) and write the audio.

    Long text is fine: past the per-request limit of the HTTP dialects (4,096
    characters) it is spoken sentence by sentence into the same file, up to the
    long-form limit of jobs (ORATE_MAX_JOB_CHARS, 200,000), as a job would be.
    """
    caption_format = _caption_format(captions)
    from orate.speech.service import SpeechService
    from orate.speech.types import SpeechError

    settings = load_settings()
    output = _output(output)
    if text == "-":
        text = sys.stdin.read()
    to_stdout = output == "-"
    fmt = _format(format, output, settings)
    catalog = load_services(settings).catalog
    kinds = {"word", "phoneme"} if timestamps else {"word"} if captions else set()
    request = _request(text, voice, fmt, speed, model, frozenset(kinds), normalize, settings)
    request.whole_file = not to_stdout
    try:
        plan = asyncio.run(_plan(catalog, request, settings))
    except SpeechError as exc:
        hint = (
            " (raise ORATE_MAX_JOB_CHARS, or split the text)"
            if exc.code == "request_too_large"
            else ""
        )
        fail(exc.message + hint)
    if timestamps is not None and not timestamps.parent.is_dir():
        fail(f"--timestamps {timestamps}: no folder {timestamps.parent}")
    progress = (
        _sentence_progress(len(plan.job.text))
        if len(plan.job.text) > settings.max_input_chars and not to_stdout
        else None
    )
    written = _Written(output, progress)
    try:
        with progress if progress is not None else contextlib.nullcontext():
            stats = SpeechService(settings, catalog, None).render_local(
                plan, written.on_event, lambda: bool(written.failed)
            )
    finally:
        written.close()
    if timestamps:
        try:
            timestamps.write_text(
                json.dumps([t.to_dict() for t in written.stamps], indent=1, ensure_ascii=False)
            )
        except OSError as exc:
            fail(f"cannot write {timestamps}: {exc.strerror}")
    if captions is not None and caption_format is not None:
        _write_captions(captions, caption_format, written.stamps, text)
    if not to_stdout:
        note(f"wrote {output}: {stats.duration:.2f} s of {fmt} ({plan.voices[0].label()})")


def _caption_format(captions: Path | None) -> str | None:
    """``srt`` or ``vtt`` from the captions file's name (``None``: no captions)."""
    if captions is None:
        return None
    caption_format = captions.suffix.lower().lstrip(".")
    if caption_format not in ("srt", "vtt"):
        fail(f"--captions {captions}: name a .srt or .vtt file")
    return caption_format


def _output(output: str | None) -> str:
    """Where the audio goes: the file named, or ``-`` (stdout) when it is not a terminal."""
    if output is not None:
        return output
    if sys.stdout.isatty():
        fail(
            "where should the audio go? pass -o hello.mp3 (format from the extension), "
            "or redirect: orate say … > hello.mp3"
        )
    return "-"


def _format(format: str | None, output: str, settings: Settings) -> str:
    """The format asked for, else the output file's extension's, else the default (stdout)."""
    to_stdout = output == "-"
    fmt = format or (None if to_stdout else format_for_extension(Path(output).suffix))
    if fmt is None:
        fmt = settings.default_format if to_stdout else None
    if fmt is None:
        fail(f"cannot tell the format from {output!r}; pass --format ({', '.join(FORMATS)})")
    return fmt


def _request(
    text: str,
    voice: str | None,
    fmt: str,
    speed: float,
    model: str | None,
    kinds: frozenset[str],
    normalize: bool,
    settings: Settings,
) -> SpeechRequest:
    """The one-utterance request ``say`` plans, bounded like a job (no HTTP response)."""
    from orate.speech.types import SpeechRequest, Utterance

    return SpeechRequest(
        model=model or settings.default_model,
        utterances=[Utterance(text, voice or settings.default_voice, speed)],
        format=fmt,
        timestamps=kinds,
        normalize=normalize,
        framing=None,  # no HTTP response held in a server's memory: the job limits apply
        # the CLI has no wire limit: the render goes sentence by sentence into one
        # encoder, so memory stays bounded; the job limit bounds the work up front
        max_chars=max(settings.max_job_chars, settings.max_input_chars),
    )


class _Written:
    """The audio's destination (a file or stdout), and the timestamps seen on the way.

    Events arrive inside the engine's ctypes callback, where an exception is only
    printed and synthesis goes on: a failed write is kept here and stops the render."""

    def __init__(self, output: str, progress: Progress | None) -> None:
        self.output = output
        self.to_stdout = output == "-"
        self.progress = progress
        self.stamps: list[Timestamp] = []
        self.failed: list[OSError] = []
        try:
            self.sink: BinaryIO = sys.stdout.buffer if self.to_stdout else open(output, "wb")  # noqa: SIM115
        except OSError as exc:
            fail(f"cannot write {output}: {exc.strerror}")

    def on_event(self, event: SpeechEvent) -> None:
        if self.failed:
            return
        if event.kind == EventKind.AUDIO:
            try:
                self.sink.write(event.audio)
                if self.to_stdout:
                    self.sink.flush()
            except OSError as exc:
                self.failed.append(exc)
        elif event.kind == EventKind.TIMESTAMPS:
            self.stamps.extend(event.timestamps)
        elif event.kind == EventKind.SENTENCE and self.progress is not None:
            self.progress.update(self.progress.task_ids[0], completed=event.info["char_end"])

    def close(self) -> None:
        """Close the file; fail (or exit quietly, for a closed pipe) if a write failed."""
        if not self.to_stdout:
            try:
                self.sink.close()
            except OSError as exc:
                self.failed.append(exc)
        if not self.failed:
            return
        if self.to_stdout and isinstance(self.failed[0], BrokenPipeError):
            # the reader stopped (`orate say … | head`): quiet, as other Unix tools are
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            raise typer.Exit(141)
        where = "standard output" if self.to_stdout else self.output
        fail(f"cannot write {where}: {self.failed[0].strerror or self.failed[0]}")


def _write_captions(path: Path, kind: str, stamps: list[Timestamp], text: str) -> None:
    from orate.speech.captions import captions as make_captions

    words = [t for t in stamps if t.type == "word"]
    path.write_text(make_captions(words, kind, text))


def _sentence_progress(characters: int) -> Progress | None:
    """A progress bar over characters spoken, for long text on a terminal (else None)."""
    if not err.is_terminal:
        return None
    from rich.progress import BarColumn, TimeElapsedColumn

    progress = Progress(
        "speaking",
        BarColumn(),
        "{task.percentage:>3.0f}%",
        TimeElapsedColumn(),
        console=err,
        transient=True,
    )
    progress.add_task("speaking", total=characters)
    return progress


async def _plan(catalog: Catalog, request: SpeechRequest, settings: Settings) -> Plan:
    """The request planned; a voice that is no built-in one is looked up among the saved
    voices (``orate voices create``), which needs the library, opened only then."""
    from orate.engines.base import UnknownVoice
    from orate.speech.service import SpeechService

    model = catalog.model(request.model)
    voice = request.utterances[0].voice
    if model is None or not isinstance(voice, str):
        return await SpeechService(settings, catalog, None).plan(request)
    try:
        catalog.resolve_voice(model, voice)
    except UnknownVoice:
        from orate.cli.common import open_library

        library = await open_library(settings)
        try:
            return await SpeechService(settings, catalog, None, library).plan(request)
        finally:
            await library.close()
    return await SpeechService(settings, catalog, None).plan(request)
