"""Hardening: quotas that hold, auth that stays on, no records lost when the
database or the disk fails, no cross-tenant cache, read-your-writes history, and a 4xx
(never a 500) for every malformed input. Each test reproduces a failure once seen
against a real server on loopback, and waits on conditions with deadlines.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from .conftest import Server
from .waiting import wait_for, wait_until

ORATE = [sys.executable, "-m", "orate.cli"]


def cli(data: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [*ORATE, *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "ORATE_DATA_DIR": str(data)},
    )
    if check:
        assert result.returncode == 0, result.stderr
    return result


def create_key(data: Path, *args: str) -> str:
    return cli(data, "keys", "create", *args).stdout.strip()


def bearer(key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"} if key else {}


def speak(
    srv: Server, key: str | None = None, text: str = "Hello there.", **kw: Any
) -> httpx.Response:
    return httpx.post(
        f"{srv.url}/v1/audio/speech",
        headers=bearer(key),
        json={"model": "tts-1", "voice": "alloy", "input": text, "response_format": "wav", **kw},
        timeout=60,
    )


def ws_url(srv: Server, query: str = "") -> str:
    return srv.url.replace("http", "ws") + "/v0/tts/stream/input" + (f"?{query}" if query else "")


def drain_ws(ws: Any) -> tuple[list[Any], Any]:
    """Every message until the server closes; returns them and the close frame."""
    from websockets.exceptions import ConnectionClosed

    got: list[Any] = []
    try:
        while True:
            got.append(ws.recv(timeout=60))
    except ConnectionClosed as exc:
        return got, exc.rcvd


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    data = tmp_path_factory.mktemp("keyed")
    keys = {
        "admin": create_key(data, "--name", "root", "--admin"),
        "alice": create_key(data, "--name", "alice"),
        "bob": create_key(data, "--name", "bob"),
        "ws100": create_key(data, "--name", "ws100", "--quota-chars", "100"),
        "par100": create_key(data, "--name", "par100", "--quota-chars", "100"),
    }
    srv = Server(data, workers=1)
    srv.keys = keys  # type: ignore[attr-defined]
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = Server(tmp_path_factory.mktemp("plain"), workers=1)
    yield srv
    srv.stop()


# -- 3. quotas ----------------------------------------------------------------------------


def _used(srv: Server, name: str) -> int:
    rows = json.loads(cli(srv.data_dir, "keys", "list", "--json").stdout)
    return next(r["used_chars"] for r in rows if r["name"] == name)


def test_quota_holds_on_the_hume_websocket_piece_by_piece(keyed: Server) -> None:
    from websockets.sync.client import connect

    key = keyed.keys["ws100"]  # type: ignore[attr-defined]
    sentence = "This sentence is number {:02d}. "  # 27 characters a piece
    with connect(ws_url(keyed, f"api_key={key}&no_binary=true")) as ws:
        for n in range(20):
            ws.send(json.dumps({"text": sentence.format(n)}))
        ws.send(json.dumps({"close": True}))
        messages, close = drain_ws(ws)
    audio = [m for m in messages if json.loads(m).get("type") == "audio"]
    assert close is not None and close.code == 1008 and "quota" in close.reason, close
    assert 0 < len(audio) < 20  # the first pieces were spoken, then the quota stopped it
    assert _used(keyed, "ws100") <= 100
    usage = httpx.get(f"{keyed.url}/v1/usage", headers=bearer(key)).json()
    assert usage["total"]["characters"] <= 100


def test_concurrent_requests_cannot_overspend_a_quota(keyed: Server) -> None:
    key = keyed.keys["par100"]  # type: ignore[attr-defined]
    text = "Sixty characters of text to be spoken by the server, please."
    assert len(text) == 60
    with concurrent.futures.ThreadPoolExecutor(10) as pool:
        codes = list(pool.map(lambda _: speak(keyed, key, text).status_code, range(10)))
    assert sorted(codes) == [200] + [429] * 9, codes
    assert _used(keyed, "par100") == 60
    over = speak(keyed, key, text)
    assert over.json()["error"]["code"] == "quota_exceeded" and "retry-after" in over.headers


# -- 4. auth stays on ---------------------------------------------------------------------


def test_revoking_the_last_key_keeps_the_server_locked(tmp_path: Path) -> None:
    key = create_key(tmp_path, "--name", "only")
    srv = Server(tmp_path, workers=1)
    try:
        assert speak(srv, key).status_code == 200
        assert speak(srv, None).status_code == 401
        cli(tmp_path, "keys", "revoke", "only")
        wait_until(lambda: speak(srv, key).status_code == 401, what="the revoked key refused")
        assert speak(srv, None).status_code == 401  # still locked: nobody got in
        assert httpx.get(f"{srv.url}/v1/history").status_code == 401
        refused = cli(tmp_path, "keys", "open", check=False)
        assert refused.returncode != 0 and "--yes" in refused.stderr
        cli(tmp_path, "keys", "open", "--yes")
        wait_until(lambda: speak(srv, None).status_code == 200, what="auth turned off")
        assert speak(srv, key).status_code == 401  # a revoked key is always refused
        # a new key turns auth on again, and `open` refuses while a live key exists
        create_key(tmp_path, "--name", "again")
        wait_until(lambda: speak(srv, None).status_code == 401, what="auth back on")
        assert cli(tmp_path, "keys", "open", "--yes", check=False).returncode != 0
    finally:
        srv.stop()


# -- 5. a locked database -----------------------------------------------------------------


@contextlib.contextmanager
def locked(db: Path) -> Iterator[None]:
    """Hold ``BEGIN EXCLUSIVE`` on the SQLite file (another process's long write)."""
    conn = sqlite3.connect(db, timeout=30, isolation_level=None)
    conn.execute("BEGIN EXCLUSIVE")
    try:
        yield
    finally:
        conn.execute("ROLLBACK")
        conn.close()


def _history_ids(srv: Server, key: str | None = None) -> set[str]:
    r = httpx.get(f"{srv.url}/v1/history", params={"limit": 200}, headers=bearer(key), timeout=60)
    return {g["id"] for g in r.json()["data"]} if r.status_code == 200 else set()


def test_locked_database_loses_no_history_and_refuses_writes_with_503(tmp_path: Path) -> None:
    srv = Server(tmp_path, workers=1)
    try:
        assert speak(srv).status_code == 200  # the database is in WAL mode and warm
        with locked(tmp_path / "orate.db"):
            spoken = speak(srv, text="Spoken while the database is locked.")
            assert spoken.status_code == 200
            gen = spoken.headers["x-orate-generation-id"]
            assert gen in _history_ids(srv)  # listed while its write waits for the lock
            voice = httpx.post(
                f"{srv.url}/v1/voices",
                json={"name": "locked-out", "params": {"voice": "en-gb"}},
                timeout=60,
            )
            assert voice.status_code == 503 and voice.headers["retry-after"]
            assert voice.json()["error"]["code"] == "database_unavailable"
            job = httpx.post(
                f"{srv.url}/api/tts",
                headers={"prefer": "respond-async"},
                json={"text": "A job while locked."},
                timeout=60,
            )
            assert job.status_code == 503 and job.headers["retry-after"]
            assert job.json()["error"]["code"] == "database_unavailable"
            ready = httpx.get(f"{srv.url}/readyz", timeout=30)  # reads work, writes do not
            assert ready.status_code == 503 and ready.json()["database"] is False
        wait_until(lambda: gen in _history_ids(srv), timeout=60, what="the history row")
        wait_until(lambda: httpx.get(f"{srv.url}/readyz").status_code == 200, what="ready again")
        assert httpx.get(f"{srv.url}/v1/audio/files/{gen}").status_code == 200
        assert (
            httpx.post(
                f"{srv.url}/v1/voices",
                json={"name": "after", "params": {"voice": "en-gb"}},
                timeout=60,
            ).status_code
            == 201
        )
        assert "Traceback" not in (tmp_path / "server.log").read_text()
    finally:
        srv.stop()


def test_history_spools_to_disk_and_survives_a_crash(tmp_path: Path) -> None:
    env = {"ORATE_DB_RETRY_SECONDS": "0.5"}
    srv = Server(tmp_path, workers=1, env=env)
    spool = tmp_path / "spool" / "generations.jsonl"
    try:
        assert speak(srv).status_code == 200
        with locked(tmp_path / "orate.db"):
            r = speak(srv, text="Spooled while the database is locked.")
            assert r.status_code == 200
            gen = r.headers["x-orate-generation-id"]
            wait_until(
                lambda: spool.exists() and gen in spool.read_text(),
                timeout=30,
                what="the spooled row",
            )
            assert gen in _history_ids(srv)  # listed from the spool meanwhile
            srv.proc.send_signal(signal.SIGKILL)  # crash before the database is back
            srv.proc.wait(30)
            srv.log.close()
    finally:
        if srv.proc.poll() is None:
            srv.stop()
    again = Server(tmp_path, workers=1)
    try:
        wait_until(lambda: gen in _history_ids(again), timeout=30, what="the replayed row")
        assert httpx.get(f"{again.url}/v1/audio/files/{gen}").status_code == 200
        wait_until(lambda: gen not in spool.read_text(), what="the spool emptied")
    finally:
        again.stop()


# -- 6. a full disk -----------------------------------------------------------------------


@contextlib.contextmanager
def small_fs(path: Path, size: str = "4m") -> Iterator[Path]:
    """A small tmpfs at ``path`` (needs root); skips the test where it cannot mount."""
    path.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {done.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def fill(path: Path) -> Path:
    """Write a file until the filesystem is full (ENOSPC), as another program would."""
    filler = path / "filler"
    with open(filler, "wb") as f:
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError:
            pass
    return filler


LONG = "This sentence takes a while to say, so its audio is large. " * 40


def test_full_disk_keeps_the_record_answers_410_and_refuses_new_work(tmp_path: Path) -> None:
    with small_fs(tmp_path / "blobs") as blobs:
        srv = Server(
            tmp_path,
            workers=1,
            env={
                "ORATE_BLOB_URL": str(blobs),
                "ORATE_CACHE_ENABLED": "false",
                "ORATE_READY_MIN_FREE_BYTES": "65536",
            },
        )
        try:
            first = speak(srv, text="Stored while there is room.")
            assert first.status_code == 200
            assert httpx.get(f"{srv.url}/readyz").status_code == 200
            filler = fill(blobs)
            lost = speak(srv, text=LONG)
            assert lost.status_code == 200  # already streamed: its record must survive
            gen = lost.headers["x-orate-generation-id"]
            gone = wait_until(
                lambda: (
                    (r := httpx.get(f"{srv.url}/v1/audio/files/{gen}")).status_code == 410 and r
                ),
                what="410 for the unstored audio",
            )
            assert "space" in gone.json()["error"]["message"].lower()
            assert gen in _history_ids(srv)
            # /v1/usage reads the database only: the record is served (410) from memory
            # before its row is inserted, so wait for the row rather than read once
            wait_for(
                lambda: httpx.get(f"{srv.url}/v1/usage", timeout=60).json()["total"],
                lambda usage: usage["requests"] == 2,
                "both generations counted in the usage",
            )
            ready = httpx.get(f"{srv.url}/readyz")
            assert ready.status_code == 503 and ready.json()["storage"] is False
            refused = speak(srv, text="New work that would be stored.")
            assert refused.status_code == 507 and refused.headers["retry-after"]
            assert refused.json()["error"]["code"] == "storage_full"
            assert speak(srv, text="Not kept.", store=False).status_code == 200
            filler.unlink()  # room again: ready, and new work is taken
            wait_until(
                lambda: httpx.get(f"{srv.url}/readyz").status_code == 200, what="ready again"
            )
            assert speak(srv, text="Stored again.").status_code == 200
        finally:
            srv.stop()


def test_a_blob_the_os_refuses_keeps_its_record_without_root(tmp_path: Path) -> None:
    """The portable variant: a file size limit (RLIMIT_FSIZE) on the server process makes
    the OS refuse the large blob (EFBIG; Python ignores SIGXFSZ), as a full disk would."""
    import resource

    srv = Server(tmp_path, workers=1, env={"ORATE_CACHE_ENABLED": "false"})
    try:
        assert speak(srv, text="Stored before the limit.").status_code == 200
        limit = 1 << 20  # the database and log stay far below it; a long wav does not
        resource.prlimit(srv.proc.pid, resource.RLIMIT_FSIZE, (limit, limit))
        lost = speak(srv, text=LONG)
        assert lost.status_code == 200 and len(lost.content) > limit
        gen = lost.headers["x-orate-generation-id"]
        gone = wait_until(
            lambda: (r := httpx.get(f"{srv.url}/v1/audio/files/{gen}")).status_code == 410 and r,
            what="410 for the unstored audio",
        )
        assert "too large" in gone.json()["error"]["message"].lower()
        record = httpx.get(f"{srv.url}/v1/history/{gen}").json()
        assert record["audio_error"] and record["audio_url"]
        # /v1/usage reads the database only: the 410 and the record above can be served
        # from memory before the row is inserted
        wait_for(
            lambda: httpx.get(f"{srv.url}/v1/usage", timeout=60).json()["total"],
            lambda usage: usage["requests"] == 2,
            "both generations counted in the usage",
        )
        # the store works again for small files: after a probe, new work is taken
        wait_until(
            lambda: speak(srv, text="Small enough.").status_code == 200,
            what="new work accepted once a probe write succeeds",
        )
    finally:
        srv.stop()


# -- 7. cache per owner, admin routes -----------------------------------------------------


def test_cache_is_per_key_and_its_routes_are_admin_only(keyed: Server) -> None:
    keys = keyed.keys  # type: ignore[attr-defined]
    text = "Alice's secret sentence for the cache."
    assert speak(keyed, keys["alice"], text).headers["x-orate-cache"] == "miss"
    wait_until(
        lambda: speak(keyed, keys["alice"], text).headers["x-orate-cache"] == "hit",
        what="alice's cache entry",
    )
    assert speak(keyed, keys["bob"], text).headers["x-orate-cache"] != "hit"
    for method in ("GET", "DELETE"):
        r = httpx.request(method, f"{keyed.url}/v1/cache", headers=bearer(keys["bob"]), timeout=60)
        assert r.status_code == 404, method
    assert httpx.get(f"{keyed.url}/v1/cache", headers=bearer(keys["admin"])).json()["entries"]
    # PUT /metrics: hidden from non-admins exactly like GET
    for method in ("GET", "PUT", "POST", "DELETE"):
        r = httpx.request(method, f"{keyed.url}/metrics", headers=bearer(keys["bob"]), timeout=60)
        assert r.status_code == 404, method
    assert (
        httpx.put(f"{keyed.url}/metrics", headers=bearer(keys["admin"]), timeout=60).status_code
        == 405
    )


# -- 8. read-your-writes ------------------------------------------------------------------


def test_history_lists_a_generation_as_soon_as_its_response_ends(plain: Server) -> None:
    text = "Listed right away, as soon as the response has ended. " * 12  # ~1 MB of wav

    def speak_then_list(n: int) -> bool:
        with httpx.Client(base_url=plain.url, timeout=60) as client:
            r = client.post(
                "/v1/audio/speech",
                json={
                    "model": "tts-1",
                    "voice": "alloy",
                    "input": f"Take {n}. {text}",
                    "response_format": "wav",
                },
            )
            gen = r.headers["x-orate-generation-id"]
            listed = client.get("/v1/history", params={"limit": 50}).json()["data"]
            return gen in [g["id"] for g in listed]

    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        seen = list(pool.map(speak_then_list, range(12)))
    assert all(seen), seen


# -- 10. a 4xx for malformed input, never a 500 -------------------------------------------


def _raw(
    srv: Server, path: str, body: str, headers: dict[str, str] | None = None
) -> httpx.Response:
    return httpx.post(
        f"{srv.url}{path}",
        content=body.encode(),
        timeout=60,
        headers={"content-type": "application/json", **(headers or {})},
    )


def test_lone_surrogates_and_huge_offsets_are_4xx(plain: Server) -> None:
    cases = [
        ("/v1/audio/speech", '{"model":"tts-1","input":"Hi.","voice":"\\ud800"}'),
        ("/api/tts", '{"text":"Hi.","voice":"\\ud800"}'),
        ("/v1/voices", '{"name":"x","generation_id":"\\ud800"}'),
        ("/v1/voices", '{"name":"\\ud800","params":{"voice":"en-gb"}}'),
    ]
    for path, body in cases:
        r = _raw(plain, path, body)
        assert 400 <= r.status_code < 500, (path, body, r.status_code, r.text)
    for path in ("/v1/history", "/v1/voices"):
        r = httpx.get(f"{plain.url}{path}", params={"offset": "9223372036854775808"})
        assert r.status_code == 400, (path, r.text)
    engine = httpx.post(
        f"{plain.url}/v1/voices",
        json={"name": "x", "params": {"engine": "nope", "voice": "en"}},
        timeout=60,
    )
    assert engine.status_code == 400 and engine.json()["error"]["param"] == "params.engine"
    assert "Traceback" not in (plain.data_dir / "server.log").read_text()


def test_websocket_binary_and_deep_messages_close_with_1008(plain: Server) -> None:
    from websockets.sync.client import connect

    for payload in (b"\x00\x01binary", "[" * 30_000 + "]" * 30_000, "[" * 100_000 + "]" * 100_000):
        with connect(ws_url(plain, "no_binary=true"), max_size=None) as ws:
            ws.send(payload)
            _, close = drain_ws(ws)
        assert close is not None and close.code == 1008 and close.reason, payload[:10]
    log = (plain.data_dir / "server.log").read_text()
    assert "KeyError" not in log and "RecursionError" not in log


def test_corrupted_database_is_not_ready_and_answers_503_not_500(tmp_path: Path) -> None:
    srv = Server(tmp_path, workers=1)
    try:
        assert speak(srv).status_code == 200
        for name in ("orate.db", "orate.db-wal"):  # every page overwritten in place
            path = tmp_path / name
            if path.exists():
                garbage = b"this is not a database, it was overwritten. "
                size = path.stat().st_size
                path.write_bytes((garbage * (size // len(garbage) + 1))[:size])
        ready = wait_until(
            lambda: (r := httpx.get(f"{srv.url}/readyz", timeout=60)).status_code == 503 and r,
            what="readyz to fail",
        )
        assert ready.json()["database"] is False
        # a connection may still answer from its page cache; none may fail with a 500
        for r in (
            httpx.get(f"{srv.url}/v1/history", timeout=60),
            httpx.get(f"{srv.url}/v1/history", headers=bearer("orate_invalid"), timeout=60),
            httpx.get(f"{srv.url}/v1/usage", timeout=60),
            httpx.get(f"{srv.url}/v1/voices", params={"provider": "custom"}, timeout=60),
            httpx.post(
                f"{srv.url}/v1/voices",
                json={"name": "v", "params": {"voice": "en-gb"}},
                timeout=60,
            ),
            speak(srv, text="Spoken after the corruption."),
        ):
            assert r.status_code < 500 or r.status_code == 503, (r.status_code, r.text)
            if r.status_code >= 400:
                assert r.json()["error"]["code"] in ("database_unavailable", "invalid_api_key")
        assert "Traceback" not in (tmp_path / "server.log").read_text()
    finally:
        srv.stop()


# -- 11. consistency ----------------------------------------------------------------------


def test_nothing_to_say_is_missing_input_everywhere(plain: Server) -> None:
    for text in (
        "\u200b\u200f\u202e\u2066",
        "<speak></speak>",
        "<speak> <break time='1s'/></speak>",
        "?!.",
    ):
        r = speak(plain, text=text)
        assert r.status_code == 400 and r.json()["error"]["code"] == "missing_input", text
    nano = httpx.post(f"{plain.url}/api/tts", json={"text": "\u200b\u200b"}, timeout=60)
    assert nano.status_code == 400 and nano.json()["error"]["param"] == "text"
    assert nano.json()["error"]["code"] == "missing_text"  # as for an empty text
    hume = httpx.post(f"{plain.url}/v0/tts", json={"utterances": [{"text": "\u200b"}]}, timeout=60)
    assert hume.status_code == 400


def test_ssml_is_a_root_speak_element_not_a_prefix(plain: Server) -> None:
    word = speak(plain, text="<speaker> is a word")
    assert word.status_code == 200 and len(word.content) > 10_000
    assert speak(plain, text="<speak>Real SSML.</speak>").status_code == 200
    bad = speak(plain, text="<speak>unclosed")
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_ssml"


def test_errors_name_the_dialects_fields_and_do_not_echo_huge_values(plain: Server) -> None:
    long_instructions = speak(plain, instructions="whisper " * 200)
    assert long_instructions.status_code == 400
    assert long_instructions.json()["error"]["param"] == "instructions"
    huge = speak(plain, voice="v" * 100_000)
    assert huge.status_code == 400
    assert len(huge.content) < 3000 and huge.json()["error"]["param"] == "voice"
    nano = httpx.post(
        f"{plain.url}/api/tts", json={"text": "Hi.", "voice": "v" * 100_000}, timeout=60
    )
    assert nano.status_code == 400 and len(nano.content) < 3000


POSTGRES = os.environ.get("ORATE_TEST_POSTGRES_URL")


@pytest.mark.skipif(
    not POSTGRES,
    reason="set ORATE_TEST_POSTGRES_URL to a PostgreSQL database (.ci/run installs and starts one)",
)
def test_quota_reservations_hold_across_two_servers_on_postgresql(tmp_path: Path) -> None:
    """Two processes sharing one PostgreSQL: the conditional UPDATE still admits one."""
    env = {"ORATE_DATABASE_URL": POSTGRES or ""}
    name = f"pg-quota-{os.getpid()}"
    result = subprocess.run(
        [*ORATE, "keys", "create", "--name", name, "--quota-chars", "100"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "ORATE_DATA_DIR": str(tmp_path), **env},
    )
    assert result.returncode == 0, result.stderr
    key = result.stdout.strip()
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    servers = [
        Server(tmp_path / "a", workers=1, env=env),
        Server(tmp_path / "b", workers=1, env=env),
    ]
    try:
        text = "Sixty characters of text to be spoken by the server, please."
        with concurrent.futures.ThreadPoolExecutor(10) as pool:
            codes = list(
                pool.map(lambda n: speak(servers[n % 2], key, text).status_code, range(10))
            )
        assert sorted(codes) == [200] + [429] * 9, codes
    finally:
        for srv in servers:
            srv.stop()
        # leave the shared database as other tests expect it: no keys, auth off
        for args in (["keys", "revoke", name], ["keys", "open", "--yes"]):
            subprocess.run(
                [*ORATE, *args],
                capture_output=True,
                timeout=60,
                env={**os.environ, "ORATE_DATA_DIR": str(tmp_path), **env},
            )


def test_reservation_settles_and_releases(tmp_path: Path) -> None:
    """The one call every streaming input uses: reserve, then settle what was spoken."""
    import asyncio

    from orate.config import Settings
    from orate.library.keys import QuotaExceeded
    from orate.library.library import Library

    async def scenario() -> list[int]:
        lib = await Library.open(Settings(data_dir=tmp_path), background=False)
        try:
            info, _ = await lib.keys.create("q", quota_chars=100)

            async def used() -> int:
                return next(k["used_chars"] for k in await lib.keys.list())

            seen = []
            first = await lib.keys.reserve(info.id, 60)
            with pytest.raises(QuotaExceeded) as refused:
                await lib.keys.reserve(info.id, 50)
            assert refused.value.left == 40
            await first.settle(30)  # only 30 were spoken: 30 come back
            seen.append(await used())
            second = await lib.keys.reserve(info.id, 50)
            seen.append(await used())
            await second.release()
            await second.release()  # settled once only
            seen.append(await used())
            return seen
        finally:
            await lib.close()

    assert asyncio.run(scenario()) == [30, 80, 30]
