"""``orate jobs``: asynchronous jobs (list, show, wait)."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from orate.cli.common import app, err, fail, load_settings, open_library, with_library
from orate.cli.tables import JSON_OPTION, WIDE_OPTION, Column, field, show

if TYPE_CHECKING:
    from orate.library.library import Library
    from orate.library.tables import Job

jobs_app = typer.Typer(
    help="Asynchronous jobs (nano-gpt's 202 + runId): list, show, wait.",
    add_completion=False,
    no_args_is_help=True,
)
app.add_typer(jobs_app, name="jobs")


def _job_json(job: Job) -> dict[str, object]:
    return {
        "runId": job.id,
        "status": job.status,
        "progress": round(job.progress, 4),
        "model": job.model,
        "characters": job.characters,
        "cost": job.cost,
        "generation_id": job.generation_id,
        "error": job.error,
        "attempts": job.attempts,
        "created_at": job.created_at.isoformat(),
        "finished_at": job.finished_at.isoformat() if job.finished_at else None,
    }


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
def jobs_list(
    limit: Annotated[int, typer.Option(min=1, max=1000, help="how many")] = 20,
    status: Annotated[
        str | None, typer.Option(help="pending, processing, completed or failed")
    ] = None,
    as_json: Annotated[bool, JSON_OPTION] = False,
    wide: Annotated[bool, WIDE_OPTION] = False,
) -> None:
    """The latest jobs, newest first."""
    if status is not None and status not in JOB_STATUSES:
        fail(f"--status {status!r}: use one of {', '.join(JOB_STATUSES)}")

    async def work(lib: Library) -> list[dict[str, object]]:
        return [_job_json(j) for j in await lib.jobs.list(None, limit, status)]

    rows = with_library(work)
    show(rows, JOB_COLUMNS, title=f"{len(rows)} jobs", wide=wide, as_json=as_json)


@jobs_app.command("show")
def jobs_show(run_id: Annotated[str, typer.Argument(help="the runId")]) -> None:
    """One job, as JSON."""

    async def work(lib: Library) -> dict[str, object] | None:
        job = await lib.jobs.get(run_id, None)
        return _job_json(job) if job else None

    found = with_library(work)
    if found is None:
        fail(f"no job {run_id!r}; `orate jobs list` shows the latest")
    print(json.dumps(found, indent=1))


@jobs_app.command("wait")
def jobs_wait(
    run_id: Annotated[str, typer.Argument(help="the runId")],
    timeout: Annotated[float, typer.Option(help="seconds to wait")] = 600.0,
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="write the audio here")
    ] = None,
) -> None:
    """Wait for a job (a server must be running it) with a progress bar; optionally save it."""
    from rich.progress import BarColumn, Progress, TimeElapsedColumn

    async def main() -> dict[str, object]:
        lib = await open_library(load_settings())
        try:
            # look before drawing anything: an unknown id is an error, not a 0% bar
            job = await lib.jobs.get(run_id, None)
            if job is None:
                fail(f"no job {run_id!r}; `orate jobs list` shows the latest")
            deadline = time.monotonic() + timeout
            with Progress(
                "[progress.description]{task.description}",
                BarColumn(),
                "{task.percentage:>3.0f}%",
                TimeElapsedColumn(),
                console=err,
            ) as progress:
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
                        hint = (
                            "; jobs run inside `orate serve`: is a server running on this library?"
                            if job.status == "pending"
                            else ""
                        )
                        problem = f"job {run_id} is still {job.status} after {timeout:g} s{hint}"
                        break
                    await asyncio.sleep(0.5)
            if problem is not None or job is None:
                fail(problem or f"job {run_id!r} is gone")
            if job.status == "completed" and output is not None and job.generation_id:
                gen = await lib.generations.get(job.generation_id, None)
                if gen is not None:
                    from orate.speech.events import file_bytes

                    output.write_bytes(file_bytes(gen, await lib.generations.audio(gen)))
            return _job_json(job)
        finally:
            await lib.close()

    result = asyncio.run(main())
    print(json.dumps(result, indent=1))
    if result["status"] == "failed":
        raise typer.Exit(1)
