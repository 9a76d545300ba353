"""The command line as a newcomer meets it: tables at 80 columns, cache numbers that
agree with the server, long text, and clear one-line errors instead of tracebacks.

Every case runs the real ``orate`` CLI as a subprocess against a real data dir, most
of them beside a real server that filled that data dir.
"""

from __future__ import annotations

import json
import os
import random
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from .conftest import Server, decode
from .waiting import wait_for

ORATE = [sys.executable, "-m", "orate.cli"]
LONG_MODEL = "gpt-4o-mini-tts-2025-12-15"
LONG_TEXT = (
    "The children are playing in the garden,\nand the weather is cold and windy "
    "today, so somebody should bring them a cup of hot tea before it gets dark."
)
TABLES = [
    ["history"],
    ["voices"],
    ["voices", "list"],
    ["models", "list"],
    ["jobs", "list"],
    ["keys", "list"],
    ["cache", "stats"],
]


def orate(
    data_dir: Path,
    *args: str,
    columns: int | None = 80,
    input: bytes | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``orate ARGS`` on ``data_dir`` in a terminal ``columns`` wide."""
    full = {**os.environ, "ORATE_DATA_DIR": str(data_dir), **(env or {})}
    full.pop("COLUMNS", None)
    if columns is not None:
        full["COLUMNS"] = str(columns)
    return subprocess.run(
        [*ORATE, *args],
        input=input.decode() if input else None,
        capture_output=True,
        text=True,
        timeout=120,
        env=full,
        cwd=data_dir,
    )


@dataclass
class Filled:
    """A server whose data dir holds a generation, a job, a saved voice and a key."""

    server: Server
    gen_ids: list[str]
    run_id: str
    voice_id: str
    key_id: str
    secret: str

    @property
    def data_dir(self) -> Path:
        return self.server.data_dir

    def get(self, path: str) -> httpx.Response:
        return httpx.get(
            f"{self.server.url}{path}",
            timeout=30,
            headers={"Authorization": f"Bearer {self.secret}"},
        )


def _speak(url: str, text: str, model: str = "tts-1") -> httpx.Response:
    r = httpx.post(
        f"{url}/v1/audio/speech",
        timeout=60,
        json={"model": model, "voice": "alloy", "input": text, "response_format": "wav"},
    )
    assert r.status_code == 200, r.text
    return r


@pytest.fixture(scope="module")
def filled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Filled]:
    data = tmp_path_factory.mktemp("orate-cli")
    srv = Server(data, workers=1)
    try:
        # cache traffic: two misses, then (once both are cached) three hits
        first, second = "A cup of hot tea would be nice.", "Turn left at the next light."
        gen_ids = [_speak(srv.url, t).headers["x-orate-generation-id"] for t in (first, second)]
        wait_for(
            lambda: httpx.get(f"{srv.url}/v1/cache", timeout=60).json()["entries"],
            lambda n: n >= 2,
            "both texts to be in the cache",
        )
        for _ in range(3):
            assert _speak(srv.url, first).headers["x-orate-cache"] == "hit"
        gen_ids.append(_speak(srv.url, LONG_TEXT, LONG_MODEL).headers["x-orate-generation-id"])
        job = httpx.post(
            f"{srv.url}/api/tts",
            timeout=30,
            headers={"Prefer": "respond-async"},
            json={
                "text": "Please call me back tomorrow morning.",
                "model": "Elevenlabs-Turbo-V2.5",
                "voice": "Rachel",
            },
        )
        assert job.status_code == 202, job.text
        run_id = job.json()["runId"]
        status = wait_for(
            lambda: httpx.get(
                f"{srv.url}/api/tts/status", params={"runId": run_id}, timeout=60
            ).json(),
            lambda s: s["status"] in ("completed", "failed"),
            "the nano-gpt job to finish",
            timeout=120,
        )
        assert status["status"] == "completed", status
        made = orate(
            data,
            "voices",
            "create",
            "newcomer-voice",
            "--description",
            "a deep, slow, older British man",
        )
        assert made.returncode == 0, made.stderr
        voice_id = json.loads(made.stdout)["id"]
        key = orate(
            data, "keys", "create", "--name", "a key for the team that reads tables", "--admin"
        )  # /v1/cache answers admins only
        assert key.returncode == 0, key.stderr
        secret = key.stdout.strip()
        key_id = key.stderr.split()[1]
        yield Filled(srv, gen_ids, run_id, voice_id, key_id, secret)
    finally:
        srv.stop()


@pytest.mark.parametrize("command", TABLES, ids=" ".join)
def test_tables_fit_80_columns_and_keep_ids_whole(filled: Filled, command: list[str]) -> None:
    result = orate(filled.data_dir, *command)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) >= 3
    too_wide = [line for line in lines if len(line) > 80]
    assert not too_wide, too_wide
    must_show = {
        "history": [*filled.gen_ids, LONG_MODEL, "tts-1", "The children"],
        "voices": ["en-gb", "English", "alloy"],
        # designed on the natural palette (American English: no natural British voice)
        "voices list": [filled.voice_id, "newcomer-voice", "en-us"],
        "models list": [LONG_MODEL, "Elevenlabs-Turbo-V2.5", "espeak"],
        "jobs list": [filled.run_id, "completed", "Elevenlabs-Turbo-V2.5"],
        "keys list": [filled.key_id, "a key for the"],
        "cache stats": ["hits", "misses", "entries"],
    }[" ".join(command)]
    for value in must_show:
        assert value in result.stdout, (value, result.stdout)


def test_wide_shows_every_column_in_full(filled: Filled) -> None:
    narrow = orate(filled.data_dir, "history").stdout
    wide = orate(filled.data_dir, "history", "--wide").stdout
    assert "created" not in narrow.splitlines()[1] and "…" in narrow
    header = wide.splitlines()[1].split()
    assert header == ["created", "id", "model", "voice", "format", "seconds", "cache", "text"]
    assert " ".join(LONG_TEXT.split()) in wide  # one line, nothing cut
    keys = orate(filled.data_dir, "keys", "list", "--wide").stdout
    assert "concurrency" in keys and "a key for the team that reads tables" in keys


@pytest.mark.parametrize("command", TABLES, ids=" ".join)
def test_json_parses(filled: Filled, command: list[str]) -> None:
    result = orate(filled.data_dir, *command, "--json", columns=40)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    if command == ["history"]:
        assert set(filled.gen_ids) <= {r["id"] for r in data}
        assert any(r["text"] == LONG_TEXT and r["model"] == LONG_MODEL for r in data)
    elif command == ["jobs", "list"]:
        assert [r["runId"] for r in data] == [filled.run_id]
    elif command == ["keys", "list"]:
        assert [r["id"] for r in data] == [filled.key_id] and "secret" not in data[0]
    elif command == ["cache", "stats"]:
        assert {"entries", "bytes", "hits", "misses", "shared"} <= set(data)
    else:
        assert isinstance(data, list) and data


def test_cache_stats_are_the_servers_numbers(filled: Filled) -> None:
    api = filled.get("/v1/cache").json()
    cli = json.loads(orate(filled.data_dir, "cache", "stats", "--json").stdout)
    assert cli == api
    assert api["hits"] == 3 and api["shared"] == 0
    assert api["misses"] >= 3  # the two texts, the long one (and the job's synthesis)
    assert api["entries"] >= 3

    # another hit, counted by the server, is seen by the CLI too (a keyed caller's cache
    # is its own, so the key speaks the text twice: a miss, then the hit)
    def speak_as_key() -> str:
        return httpx.post(
            f"{filled.server.url}/v1/audio/speech",
            timeout=60,
            headers={"Authorization": f"Bearer {filled.secret}"},
            json={
                "model": "tts-1",
                "voice": "alloy",
                "input": "A cup of hot tea would be nice.",
                "response_format": "wav",
            },
        ).headers["x-orate-cache"]

    assert speak_as_key() == "miss"
    # the entry is written after the response, in the background; until it is, the same
    # request joins the finished synthesis ("shared"), so wait for the entry, then hit
    wait_for(
        lambda: filled.get("/v1/cache").json(),
        lambda s: s["entries"] > api["entries"],
        "the key's entry in the cache",
        timeout=60,
    )
    assert speak_as_key() == "hit"
    after = wait_for(
        lambda: json.loads(orate(filled.data_dir, "cache", "stats", "--json").stdout),
        lambda s: s["hits"] == 4,
        "the CLI's cache stats to count the fourth hit",
    )
    assert after["hits"] == 4 and after == filled.get("/v1/cache").json()


def test_jobs_wait_on_an_unknown_id_is_one_clean_error(tmp_path: Path) -> None:
    result = orate(tmp_path, "jobs", "wait", "nope")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: no job 'nope'; `orate jobs list` shows the latest"
    ]
    assert "%" not in result.stderr and result.stdout == ""


def test_jobs_wait_without_a_server_says_why_it_gave_up(tmp_path: Path) -> None:
    import asyncio

    from orate.config import Settings
    from orate.library.library import Library

    async def submit() -> str:
        lib = await Library.open(Settings(data_dir=tmp_path), background=False)
        try:
            job = await lib.jobs.submit(
                owner="local",
                dialect="nanogpt",
                model="tts-1",
                request={},
                characters=5,
                cost=0.0,
                currency="USD",
            )
            return job.id
        finally:
            await lib.close()

    run_id = asyncio.run(submit())
    result = orate(tmp_path, "jobs", "wait", run_id, "--timeout", "1")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        f"error: job {run_id} is still pending after 1 s; jobs run inside `orate serve`: is a "
        "server running on this library?"
    )


def test_jobs_wait_saves_a_finished_job(filled: Filled, tmp_path: Path) -> None:
    out = tmp_path / "job.mp3"
    result = orate(filled.data_dir, "jobs", "wait", filled.run_id, "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["status"] == "completed"
    samples, rate = decode(out.read_bytes(), "mp3")
    assert len(samples) / rate > 1.0


def _long_text(characters: int) -> str:
    words = (
        "the quick brown fox jumps over lazy dog weather is cold and windy today please "
        "call me back tomorrow morning"
    ).split()
    rng = random.Random(7)
    sentences: list[str] = []
    while sum(len(s) + 1 for s in sentences) < characters:
        sentences.append(
            " ".join(rng.choice(words) for _ in range(rng.randint(6, 14))).capitalize() + "."
        )
    return " ".join(sentences)


def test_say_speaks_text_past_the_request_limit_into_one_file(tmp_path: Path) -> None:
    text = _long_text(6000)
    assert len(text) > 4096
    out = tmp_path / "long.mp3"
    result = orate(tmp_path, "say", "-", "-o", str(out), input=text.encode())
    assert result.returncode == 0, result.stderr
    samples, rate = decode(out.read_bytes(), "mp3")
    seconds = len(samples) / rate
    # espeak speaks about 14-17 characters a second at speed 1
    assert len(text) / 25 < seconds < len(text) / 8, seconds
    assert result.stderr.startswith(f"wrote {out}:")
    # the job limit still bounds the work up front, with a way out
    too_long = orate(
        tmp_path,
        "say",
        "-",
        "-o",
        str(out),
        input=text.encode(),
        env={"ORATE_MAX_JOB_CHARS": "5000"},
    )
    assert too_long.returncode == 2
    assert "limit is 5000" in too_long.stderr and "ORATE_MAX_JOB_CHARS" in too_long.stderr


def test_say_without_output_writes_to_a_pipe(tmp_path: Path) -> None:
    result = subprocess.run(
        [*ORATE, "say", "A cup of hot tea would be nice."],
        capture_output=True,
        timeout=120,
        cwd=tmp_path,
        env={**os.environ, "ORATE_DATA_DIR": str(tmp_path)},
    )
    assert result.returncode == 0, result.stderr
    samples, rate = decode(result.stdout, "mp3")
    assert len(samples) / rate > 1.0


def _reap(proc: subprocess.Popen[bytes]) -> float:
    """Wait for ``proc`` (pytest-timeout bounds the wait) and return the CPU seconds it and
    its children used: the work it did, which the machine's load does not change."""
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return usage.ru_utime + usage.ru_stime


def test_say_into_a_closed_pipe_stops_quietly(tmp_path: Path) -> None:
    def say(stdout: int) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            [*ORATE, "say", "-", "-o", "-", "--format", "wav"],
            stdin=subprocess.PIPE,
            stdout=stdout,
            stderr=subprocess.PIPE,
            cwd=tmp_path,
        )
        assert proc.stdin is not None
        proc.stdin.write(_long_text(20000).encode())
        proc.stdin.close()
        return proc

    proc = say(subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    assert proc.stdout.read(4) == b"RIFF"
    proc.stdout.close()  # like `orate say … | head -c 4`
    stopped = _reap(proc)
    assert proc.returncode == 141
    assert proc.stderr.read() == b""
    # it stopped, and did not speak the rest: less than half the CPU of speaking it all
    with open(os.devnull, "wb") as sink:
        whole = say(sink.fileno())
        spoken = _reap(whole)
    assert whole.returncode == 0 and whole.stderr is not None and whole.stderr.read() == b""
    assert stopped < spoken / 2, (stopped, spoken)


def test_say_to_a_full_disk_is_one_line(tmp_path: Path) -> None:
    result = orate(tmp_path, "say", "Hello there.", "-o", "/dev/full", "--format", "wav")
    assert result.returncode == 2
    assert result.stderr.strip() == "error: cannot write /dev/full: No space left on device"


def test_version(tmp_path: Path) -> None:
    from orate import __version__

    result = orate(tmp_path, "--version")
    assert result.returncode == 0 and result.stdout == f"orate {__version__}\n"


@pytest.mark.parametrize(
    "args,message",
    [
        (["say", "hi", "-o", "x.wav", "--voice", "nobody"], "no voice 'nobody'"),
        (["say", "hi", "-o", "x.wav", "--format", "xyz"], "unsupported format 'xyz'"),
        (["say", "hi", "-o", "x.wav", "--model", "nope"], "no provider serves the model 'nope'"),
        (["say", "hi", "-o", "no/such/dir/x.wav"], "cannot write no/such/dir/x.wav"),
        (["say", "hi", "-o", "x.wav", "--timestamps", "no/such/t.json"], "no folder no/such"),
        (["jobs", "show", "nope"], "no job 'nope'"),
        (["jobs", "list", "--status", "done"], "--status 'done'"),
        (["voices", "--model", "nope"], "unknown model 'nope'"),
        (["voices", "rm", "nope"], "no saved voice 'nope'"),
        (["keys", "revoke", "nope"], "no live key 'nope'"),
        (["keys", "create", "--name", "x", "--rate", "fast"], "--rate 'fast'"),
        (["serve", "--port", "99999"], "--port=99999"),
        (["serve", "--log-level", "loud"], "log level 'loud': use one of critical"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path: Path, args: list[str], message: str) -> None:
    result = orate(tmp_path, *args, columns=60)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), lines  # never wrapped
    assert message in lines[0]
    assert "Traceback" not in result.stderr


def test_serve_on_a_taken_port_fails_before_starting(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = orate(tmp_path, "serve", "--port", str(port), "--workers", "1")
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"error: cannot listen on 127.0.0.1:{port}: Address "
        "already in use (another orate running?); pass --port or "
        "set ORATE_PORT"
    )
    assert "Application startup" not in result.stderr  # refused before starting


@pytest.mark.parametrize(
    "command", [["history"], ["keys", "list"], ["jobs", "wait", "x"]], ids=" ".join
)
def test_an_unreachable_database_is_one_line_without_its_password(
    tmp_path: Path, command: list[str]
) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]  # bound, never listening: connections are refused
        result = orate(
            tmp_path,
            *command,
            env={"ORATE_DATABASE_URL": f"postgresql://orate:hunter2@127.0.0.1:{port}/orate"},
        )
    assert result.returncode == 2
    assert result.stderr.startswith(
        f"error: cannot open the library at postgresql://orate:***@127.0.0.1:{port}/orate: "
    )
    assert len(result.stderr.strip().splitlines()) == 1 and "hunter2" not in result.stderr


@pytest.mark.parametrize(
    "env,command,message",
    [
        ({"ORATE_PORT": "abc"}, ["history"], "error: bad setting: ORATE_PORT='abc'"),
        (
            {"ORATE_PRICES": "{bad"},
            ["models", "list"],
            'error: bad setting: error parsing value for field "prices"',
        ),
        (
            {"ORATE_PROVIDERS_FILE": "nope.toml"},
            ["models", "list"],
            "error: ORATE_PROVIDERS_FILE: nope.toml: No such file or directory",
        ),
        (
            {"ORATE_PROVIDERS_FILE": "bad.toml"},
            ["say", "hi", "-o", "x.wav"],
            "error: ORATE_PROVIDERS_FILE: bad.toml: not valid TOML",
        ),
        (
            {"ORATE_PROVIDERS_FILE": "bad.toml"},
            ["serve", "--workers", "1"],
            "error: ORATE_PROVIDERS_FILE: bad.toml: not valid TOML",
        ),
    ],
)
def test_bad_setting_names_the_variable(
    tmp_path: Path, env: dict[str, str], command: list[str], message: str
) -> None:
    (tmp_path / "bad.toml").write_text("x = [")
    if command[0] == "serve":
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            command = [*command, "--port", str(s.getsockname()[1])]
    result = orate(tmp_path, *command, env=env)
    assert result.returncode == 2
    assert result.stderr.startswith(message), result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "name,content,message",
    [
        ("bad.jsonl", '{"text": "hi"\n', "bad.jsonl, line 1: not JSON"),
        ("empty.txt", "\n\n", "has no prompts"),
        ("rows.csv", "voice,format\nalloy,mp3\n", "entry 1 has no text"),
    ],
)
def test_cache_warm_rejects_bad_prompt_files(
    tmp_path: Path, name: str, content: str, message: str
) -> None:
    (tmp_path / name).write_text(content)
    result = orate(tmp_path, "cache", "warm", name)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert message in result.stderr


def test_bad_flags_show_usage_not_a_traceback(tmp_path: Path) -> None:
    result = orate(tmp_path, "history", "--bogus")
    assert result.returncode == 2
    assert "No such option: --bogus" in result.stderr and "Traceback" not in result.stderr
    assert "Usage: orate history" in result.stderr


@pytest.mark.parametrize(
    "command",
    [
        [],
        ["say"],
        ["history"],
        ["voices"],
        ["voices", "list"],
        ["models", "list"],
        ["jobs", "wait"],
        ["keys", "create"],
        ["cache", "stats"],
        ["serve"],
    ],
    ids=" ".join,
)
def test_help_fits_80_columns(tmp_path: Path, command: list[str]) -> None:
    result = orate(tmp_path, *command, "--help")
    assert result.returncode == 0, result.stderr
    assert "Usage: orate" in result.stdout
    assert all(len(line) <= 80 for line in result.stdout.splitlines())


@pytest.mark.fast
def test_every_command_and_option_says_what_it_is() -> None:
    import typer.main

    from orate.cli import app

    def walk(command, path: str):  # type: ignore[no-untyped-def]
        yield path, command
        for name, sub in (getattr(command, "commands", None) or {}).items():
            yield from walk(sub, f"{path} {name}")

    silent, seen = [], 0
    for path, command in walk(typer.main.get_command(app), "orate"):
        if not (command.help or command.short_help):
            silent.append(path)
        for param in command.params:
            seen += 1
            if param.name != "help" and not getattr(param, "help", None):
                silent.append(f"{path} {param.name}")
    assert seen > 50 and not silent, silent


def test_counters_migrate_onto_an_existing_library_and_persist(tmp_path: Path) -> None:
    import asyncio

    from alembic import command
    from alembic.config import Config

    from orate.config import Settings
    from orate.library.db import MIGRATIONS, make_engine
    from orate.library.library import Library

    settings = Settings(data_dir=tmp_path)

    def upgrade_to_0003(connection) -> None:  # type: ignore[no-untyped-def]
        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, "0003")

    async def scenario() -> tuple[dict[str, int], dict[str, int]]:
        engine = make_engine(settings.resolved_database_url())  # a library made before 0004
        async with engine.begin() as conn:
            await conn.run_sync(upgrade_to_0003)
        await engine.dispose()
        lib = await Library.open(settings, background=False)
        try:
            for result in ("hit", "miss", "miss", "shared"):
                lib.cache.count(result)
            first = await lib.cache.stats()
        finally:
            await lib.close()
        again = await Library.open(settings, background=False)  # another process, later
        try:
            return first, await again.cache.stats()
        finally:
            await again.close()

    first, later = asyncio.run(scenario())
    assert (first["hits"], first["misses"], first["shared"]) == (1, 2, 1)
    assert later == first
    cli = json.loads(orate(tmp_path, "cache", "stats", "--json").stdout)
    assert cli == first


@pytest.mark.fast
def test_tables_measure_wide_characters_in_terminal_cells() -> None:
    import io

    from rich.cells import cell_len
    from rich.console import Console

    from orate.cli.tables import Column, field, show

    rows = [
        {
            "id": "key_0123456789abcdef",
            "name": "日本語のチーム [/laughs]",
            "text": "こんにちは世界、これは長いテキストです。" * 4,
            "extra": "x" * 30,
        }
    ]
    columns = (
        Column("id", field("id")),
        Column("name", field("name")),
        Column("extra", field("extra"), 1),
        Column("text", field("text"), flex=True),
    )
    out = io.StringIO()
    show(rows, columns, title="t", console=Console(file=out, width=60))
    lines = out.getvalue().splitlines()
    assert all(cell_len(line) <= 60 for line in lines), lines
    assert "日本語のチーム [/laughs]" in out.getvalue()  # whole, and not taken as markup
    assert "key_0123456789abcdef" in out.getvalue()
    assert "extra" not in lines[1] and "…" in lines[-1]  # the optional column made way


def test_names_with_brackets_are_printed_as_written(tmp_path: Path) -> None:
    made = orate(tmp_path, "keys", "create", "--name", "team [/ops] [bold]")
    assert made.returncode == 0, made.stderr
    assert made.stdout.startswith("orate_") and "Traceback" not in made.stderr
    assert "(team [/ops] [bold])" in made.stderr
    assert "team [/ops] [bold]" in orate(tmp_path, "keys", "list").stdout
