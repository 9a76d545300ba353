"""What each process imports and starts (throughput and memory): an engine worker
loads only the engine side, the server imports Alembic only in a child when the schema
is behind, and the pool starts no helper processes besides its workers."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from orate.runtime.pool import EnginePool
from tests.conftest import Server
from tests.waiting import wait_until

SERVER_ONLY = (
    "pydantic",
    "pydantic_settings",
    "fastapi",
    "starlette",
    "sqlalchemy",
    "typer",
    "rich",
    "uvicorn",
    "alembic",
    "httpx",
)


def _modules_after(code: str) -> set[str]:
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            code + "\nimport sys, json\n"
            "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def test_an_engine_worker_imports_no_server_modules() -> None:
    loaded = _modules_after(
        "import orate.runtime.worker as w\n"
        "from orate.engines.registry import EngineRegistry\n"
        "EngineRegistry().engine('espeak')"
    )
    assert not loaded & set(SERVER_ONLY), loaded & set(SERVER_ONLY)


def test_head_revision_matches_alembic() -> None:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from orate.library.db import MIGRATIONS, head_revision

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    assert ScriptDirectory.from_config(cfg).get_heads() == [head_revision()]


def test_migrations_run_in_a_child_and_alembic_stays_out(tmp_path: Path) -> None:
    db = tmp_path / "orate.db"
    code = (
        "import asyncio\n"
        "from orate.library.db import make_engine, migrate, head_revision\n"
        "from sqlalchemy import text\n"
        f"e = make_engine('sqlite:///{db}')\n"
        "async def go():\n"
        "    await migrate(e)\n"
        "    await migrate(e)\n"
        "    async with e.connect() as c:\n"
        "        v = (await c.execute(text('SELECT version_num FROM alembic_version')))"
        ".scalar()\n"
        "        n = (await c.execute(text('SELECT count(*) FROM generations'))).scalar()\n"
        "    assert v == head_revision() and n == 0, (v, n)\n"
        "    await e.dispose()\n"
        "asyncio.run(go())"
    )
    assert "alembic" not in _modules_after(code)


def _children(parent: int | None = None) -> dict[int, str]:
    """Command lines of a process's children (this one's by default), from /proc."""
    parent = os.getpid() if parent is None else parent
    out = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == parent:
            out[int(entry.name)] = cmd
    return out


def test_the_pool_starts_only_its_workers() -> None:
    async def scenario() -> tuple[list[int], list[str]]:
        pool = EnginePool(2)
        await pool.start()
        try:
            return sorted(pool.pids()), list((await asyncio.to_thread(_children)).values())
        finally:
            await pool.close()

    pids, children = asyncio.run(scenario())
    workers = [c for c in children if "-m orate.runtime.worker" in c]
    assert len(pids) == 2 and len(workers) == 2
    assert not [c for c in children if "resource_tracker" in c or "multiprocessing" in c]


def test_a_started_server_has_not_imported_what_it_may_never_use(tmp_path: Path) -> None:
    """A fresh server (first start: its schema is migrated by a child) keeps Alembic, PyAV
    and httpx out until something needs them: together ~30 MiB of the main process."""
    code = (
        "import asyncio, os\n"
        f"os.environ['ORATE_DATA_DIR'] = {str(tmp_path)!r}\n"
        "from orate.app import create_app\n"
        "from orate.config import Settings\n"
        "from orate.services import build_services\n"
        "services = build_services(Settings())\n"
        "async def go():\n"
        "    await services.start()\n"
        "    create_app(services)\n"
        "    await services.close()\n"
        "asyncio.run(go())"
    )
    loaded = _modules_after(code)
    assert not loaded & {"alembic", "mako", "av", "httpx"}, loaded & {"alembic", "av", "httpx"}


def test_workers_exit_when_the_server_is_killed(tmp_path: Path) -> None:
    """No multiprocessing daemon flag any more: a worker notices its server is gone (its
    jobs pipe closes) and exits, even after a SIGKILL that runs no cleanup."""
    srv = Server(tmp_path, workers=2)
    try:
        workers = [
            pid for pid, cmd in _children(srv.proc.pid).items() if "orate.runtime.worker" in cmd
        ]
        assert len(workers) == 2
        srv.proc.send_signal(signal.SIGKILL)
        srv.proc.wait(10)
        wait_until(
            lambda: not any(Path(f"/proc/{p}").exists() and "Z" not in _state(p) for p in workers),
            "the workers to exit after their server was killed",
            timeout=60,
        )
    finally:
        srv.stop()


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "Z"
