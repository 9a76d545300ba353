"""``orate say``: synthesize in this process, no server (the same render code)."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from orate.audio.formats import FORMATS, format_for_extension
from orate.cli.common import app, err, fail, load_services, load_settings, note

if TYPE_CHECKING:
    from orate.config import Settings
    from orate.speech.pipeline import Pipeline, Plan, SpeechRequest


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
    caption_format = None
    if captions is not None:
        caption_format = captions.suffix.lower().lstrip(".")
        if caption_format not in ("srt", "vtt"):
            fail(f"--captions {captions}: name a .srt or .vtt file")
    from orate.speech.pipeline import Pipeline, SpeechError, SpeechEvent, SpeechRequest, Utterance

    settings = load_settings()
    if output is None:
        if sys.stdout.isatty():
            fail(
                "where should the audio go? pass -o hello.mp3 (format from the extension), "
                "or redirect: orate say … > hello.mp3"
            )
        output = "-"
    if text == "-":
        text = sys.stdin.read()
    to_stdout = output == "-"
    fmt = format or (None if to_stdout else format_for_extension(Path(output).suffix))
    if fmt is None:
        fmt = settings.default_format if to_stdout else None
    if fmt is None:
        fail(f"cannot tell the format from {output!r}; pass --format ({', '.join(FORMATS)})")
    pipeline = Pipeline(settings, load_services(settings).catalog, pool=None)
    request = SpeechRequest(
        model=model or settings.default_model,
        utterances=[Utterance(text, voice or settings.default_voice, speed)],
        format=fmt,
        timestamps=frozenset({"word", "phoneme"})
        if timestamps
        else frozenset({"word"})
        if captions
        else frozenset(),
        whole_file=not to_stdout,
        normalize=normalize,
        framing=None,  # no HTTP response held in a server's memory: the job limits apply
        # the CLI has no wire limit: the pipeline renders sentence by sentence into one
        # encoder, so memory stays bounded; the job limit bounds the work up front
        max_chars=max(settings.max_job_chars, settings.max_input_chars),
    )
    try:
        plan = asyncio.run(_plan(pipeline, request, settings))
    except SpeechError as exc:
        hint = (
            " (raise ORATE_MAX_JOB_CHARS, or split the text)"
            if exc.code == "request_too_large"
            else ""
        )
        fail(exc.message + hint)
    progress = (
        _sentence_progress(len(plan.job.text))
        if len(plan.job.text) > settings.max_input_chars and not to_stdout
        else None
    )
    if timestamps is not None and not timestamps.parent.is_dir():
        fail(f"--timestamps {timestamps}: no folder {timestamps.parent}")
    stamps: list[dict[str, object]] = []
    try:
        sink = sys.stdout.buffer if to_stdout else open(output, "wb")  # noqa: SIM115
    except OSError as exc:
        fail(f"cannot write {output}: {exc.strerror}")
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
        fail(f"cannot write {where}: {failed[0].strerror or failed[0]}")
    if timestamps:
        try:
            timestamps.write_text(json.dumps(stamps, indent=1, ensure_ascii=False))
        except OSError as exc:
            fail(f"cannot write {timestamps}: {exc.strerror}")
    if captions is not None and caption_format is not None:
        from orate.runtime.timestamps import Timestamp
        from orate.speech.captions import captions as make_captions

        captions.write_text(
            make_captions(
                [
                    Timestamp(**d)
                    for d in stamps  # type: ignore[arg-type]
                    if d["type"] == "word"
                ],
                caption_format,
                text,
            )
        )
    if not to_stdout:
        note(f"wrote {output}: {stats.duration:.2f} s of {fmt} ({plan.voices[0].label()})")


def _sentence_progress(characters: int):  # type: ignore[no-untyped-def]
    """A progress bar over characters spoken, for long text on a terminal (else None)."""
    if not err.is_terminal:
        return None
    from rich.progress import BarColumn, Progress, TimeElapsedColumn

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


async def _plan(pipeline: Pipeline, request: SpeechRequest, settings: Settings) -> Plan:
    """The request planned; a voice that is no built-in one is looked up among the saved
    voices (``orate voices create``), which needs the library, opened only then."""
    from orate.engines.base import UnknownVoice

    model = pipeline.catalog.model(request.model)
    voice = request.utterances[0].voice
    if model is None or not isinstance(voice, str):
        return await pipeline.plan(request)
    try:
        pipeline.catalog.resolve_voice(model, voice)
    except UnknownVoice:
        from orate.cli.common import open_library

        pipeline.library = await open_library(settings)
        try:
            return await pipeline.plan(request)
        finally:
            await pipeline.library.close()
            pipeline.library = None
    return await pipeline.plan(request)
