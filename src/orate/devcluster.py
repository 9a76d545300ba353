"""``orate dev-cluster``: the scale-out topology on one machine, on loopback.

PostgreSQL (the Debian package's cluster, a database of our own in it), an S3
store (``moto_server``), a Ray head and Ray worker nodes as separate processes,
and several ``orate serve`` replicas on the Ray backend, one database and one
bucket. The tests (tests/test_scale.py) and the benchmark use the same class, so
what a developer runs by hand is what CI checks.

Every process is started in its own session and stopped by process group, never
by name: ``ray stop`` would also stop other people's Ray clusters on the machine.
Ray gets non-default ports (and one worker-port range per node), token auth with
a token of our own (not ``~/.ray``), and a fast node health check so a dead node
is noticed in ~3 s instead of ~15 s.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BUCKET = "orate-audio"


def _bin(name: str) -> str:
    here = Path(sys.executable).parent / name
    return str(here) if here.exists() else (shutil.which(name) or name)


def _wait_port(
    host: str,
    port: int,
    timeout: float,
    proc: subprocess.Popen[Any] | None = None,
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited with {proc.returncode}")
        with contextlib.suppress(OSError), socket.create_connection((host, port), 0.5):
            return
        time.sleep(0.2)
    raise RuntimeError(f"nothing listens on {host}:{port} after {timeout:g} s")


def _wait_http(url: str, timeout: float, proc: subprocess.Popen[Any] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited with {proc.returncode}")
        with (
            contextlib.suppress(OSError, urllib.error.URLError),
            urllib.request.urlopen(url, timeout=2) as r,
        ):
            if r.status == 200:
                return
        time.sleep(0.3)
    raise RuntimeError(f"{url} not ready after {timeout:g} s")


def _session_members(sid: int) -> list[int]:
    """Processes whose session id is ``sid`` (from /proc; Linux)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == sid:  # after "pid (comm)": state ppid pgrp session
            found.append(int(entry))
    return found


def postgres_database(url: str | None, name: str) -> str:
    """A fresh database ``name`` on the server of ``url`` (default: the Debian package's
    local cluster, started as .ci/run starts it), returned as a URL."""
    if url is None:
        versions = sorted(
            os.listdir("/usr/lib/postgresql"), key=lambda v: [int(x) for x in v.split(".")]
        )
        subprocess.run(
            ["pg_ctlcluster", versions[-1], "main", "start"], check=False, capture_output=True
        )
        subprocess.run(
            ["su", "postgres", "-c", "psql -qc \"ALTER USER postgres PASSWORD 'orate';\""],
            check=True,
            capture_output=True,
        )
        url = "postgresql://postgres:orate@127.0.0.1:5432/postgres"
    import asyncio

    import asyncpg

    base, _, _ = url.rpartition("/")

    async def recreate() -> None:
        conn = await asyncpg.connect(base + "/postgres")
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()

    asyncio.run(recreate())
    return f"{base}/{name}"


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[Any]
    url: str = ""
    log: Path | None = None

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Signal every process of the session we started it in: a Ray node is several
        processes, and Ray puts each worker (actor) in a process group of its own."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, sig)
        for pid in _session_members(self.popen.pid):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)

    def stop(self, timeout: float = 10.0) -> None:
        if self.popen.poll() is None:
            self.kill(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(timeout)
        self.kill(signal.SIGKILL)  # stragglers of the group (Ray workers) too
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(5)


@dataclass
class DevCluster:
    """The processes of a local cluster; ``start()`` then ``stop()`` (or ``with``)."""

    base: Path
    base_port: int = 19240  # replicas at base_port + i; moto at base_port + 9
    ray_port: int = 19379
    replicas: int = 2
    ray_nodes: int = 2
    actors_per_replica: int = 2
    database_url: str | None = None  # a server to create our database on
    database_name: str = "orate_dev"
    extra_env: dict[str, str] = field(default_factory=dict)
    procs: dict[str, Proc] = field(default_factory=dict)
    token: str = field(default_factory=lambda: secrets.token_hex(32))

    # -- environment ---------------------------------------------------------

    def _env(self, **more: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("ORATE_", "RAY_"))}
        env.update(
            {
                "RAY_AUTH_MODE": "token",
                "RAY_AUTH_TOKEN": self.token,
                "RAY_USAGE_STATS_ENABLED": "0",
                "RAY_health_check_period_ms": "1000",
                "RAY_health_check_failure_threshold": "3",
                "RAY_health_check_initial_delay_ms": "1000",
                "AWS_ACCESS_KEY_ID": "testing",
                "AWS_SECRET_ACCESS_KEY": "testing",
                "AWS_REGION": "us-east-1",
            }
        )
        env.update(more)
        return env

    def _spawn(self, name: str, args: list[str], env: dict[str, str]) -> Proc:
        self.base.mkdir(parents=True, exist_ok=True)
        log = self.base / f"{name}.log"
        with open(log, "ab") as out:
            popen = subprocess.Popen(
                args,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        proc = Proc(name, popen, log=log)
        self.procs[name] = proc
        return proc

    @property
    def ray_address(self) -> str:
        return f"127.0.0.1:{self.ray_port}"

    @property
    def s3_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.base_port + 9}"

    def replica_env(self, index: int, backend: str = "ray") -> dict[str, str]:
        env = self._env(
            ORATE_HOST="127.0.0.1",
            ORATE_PORT=str(self.base_port + index),
            ORATE_DATA_DIR=str(self.base / f"replica{index}"),
            ORATE_DATABASE_URL=self.database_url or "",
            ORATE_BLOB_URL=f"s3://{BUCKET}",
            ORATE_S3_ENDPOINT=self.s3_endpoint,
            ORATE_ENGINE_BACKEND=backend,
            ORATE_RAY_ADDRESS=self.ray_address,
            ORATE_RAY_ACTORS=str(self.actors_per_replica),
            ORATE_RAY_NUM_CPUS="0.5",
            ORATE_WORKERS="1",
            ORATE_LOG_LEVEL="warning",
        )
        env.update(self.extra_env)
        return env

    # -- parts ---------------------------------------------------------------

    def start_store(self) -> None:
        port = self.base_port + 9
        proc = self._spawn(
            "moto", [_bin("moto_server"), "-H", "127.0.0.1", "-p", str(port)], self._env()
        )
        _wait_port("127.0.0.1", port, 30, proc.popen)
        proc.url = self.s3_endpoint
        request = urllib.request.Request(f"{self.s3_endpoint}/{BUCKET}", method="PUT")
        with urllib.request.urlopen(request, timeout=10):
            pass

    def _ray_ports(self, slot: int) -> list[str]:
        # every port explicit and disjoint per node: Ray's defaults would land on other
        # people's servers on this shared machine (worker ports default to 10002-19999)
        lo = 19400 + slot * 40
        return [
            "--node-manager-port",
            str(lo),
            "--object-manager-port",
            str(lo + 1),
            "--metrics-export-port",
            str(lo + 2),
            "--dashboard-agent-listen-port",
            str(lo + 3),
            "--dashboard-agent-grpc-port",
            str(lo + 4),
            "--runtime-env-agent-port",
            str(lo + 5),
            "--min-worker-port",
            str(lo + 10),
            "--max-worker-port",
            str(lo + 39),
        ]

    def start_ray_head(self) -> None:
        temp = self.base / "ray"
        temp.mkdir(parents=True, exist_ok=True)
        proc = self._spawn(
            "ray-head",
            [
                _bin("ray"),
                "start",
                "--head",
                "--block",
                "--port",
                str(self.ray_port),
                "--num-cpus",
                "0",
                "--include-dashboard=false",
                "--disable-usage-stats",
                "--temp-dir",
                str(temp),
                *self._ray_ports(0),
            ],
            self._env(),
        )
        _wait_port("127.0.0.1", self.ray_port, 60, proc.popen)
        proc.url = self.ray_address

    def start_ray_node(self, index: int) -> Proc:
        """A Ray worker node (raylet + its workers) as one process group."""
        proc = self._spawn(
            f"ray-node{index}",
            [
                _bin("ray"),
                "start",
                "--block",
                "--address",
                self.ray_address,
                "--num-cpus",
                "2",
                "--disable-usage-stats",
                *self._ray_ports(index),
            ],
            self._env(),
        )
        proc.url = f"node {index}"
        return proc

    def add_ray_node(self, index: int, tries: int = 3) -> None:
        """Start node ``index`` and wait until it has joined; one at a time, because a
        node that takes over 30 s to register (a loaded machine) gives up, so retry."""
        for attempt in range(tries):
            proc = self.start_ray_node(index)
            try:
                self.wait_ray_nodes(index, timeout=60.0, proc=proc)
                return
            except RuntimeError:
                proc.stop()
                if attempt == tries - 1:
                    raise

    def start_replica(
        self, index: int, backend: str = "ray", env: dict[str, str] | None = None
    ) -> Proc:
        proc = self._spawn(
            f"replica{index}",
            [_bin("orate"), "serve"],
            {**self.replica_env(index, backend), **(env or {})},
        )
        proc.url = f"http://127.0.0.1:{self.base_port + index}"
        return proc

    def wait_replica(self, index: int, timeout: float = 120.0) -> None:
        proc = self.procs[f"replica{index}"]
        _wait_http(proc.url + "/readyz", timeout, proc.popen)

    def wait_ray_nodes(self, count: int, timeout: float = 120.0, proc: Proc | None = None) -> None:
        """Until ``count`` worker nodes are alive (asked through the ray CLI, not ray.init,
        so this process never becomes a Ray driver)."""
        deadline = time.monotonic() + timeout
        said = ""
        while time.monotonic() < deadline:
            if proc is not None and proc.popen.poll() is not None:
                raise RuntimeError(f"{proc.name} exited")
            out = subprocess.run(
                [_bin("ray"), "status", "--address", self.ray_address],
                capture_output=True,
                text=True,
                env=self._env(),
            )
            said = out.stdout + out.stderr
            alive = out.stdout.split("Pending:")[0].count("node_")
            if alive >= count + 1:  # + the head
                return
            time.sleep(0.5)
        raise RuntimeError(f"{count} Ray worker nodes did not join: {said[-2000:]}")

    # -- whole ---------------------------------------------------------------

    def start(self) -> DevCluster:
        try:
            self.database_url = postgres_database(self.database_url, self.database_name)
            self.start_store()
            self.start_ray_head()
            for i in range(1, self.ray_nodes + 1):
                self.add_ray_node(i)
            for i in range(self.replicas):
                self.start_replica(i)
            for i in range(self.replicas):
                self.wait_replica(i)
        except BaseException:
            self.stop()
            raise
        return self

    def urls(self) -> dict[str, str]:
        return {name: p.url for name, p in self.procs.items()}

    def stop(self) -> None:
        """Replicas first (they drain and release their actors), then Ray, the store."""
        order = sorted(
            self.procs.values(),
            key=lambda p: (
                0
                if p.name.startswith("replica")
                else 1
                if p.name.startswith("ray-node")
                else 2
                if p.name == "ray-head"
                else 3
            ),
        )
        for proc in order:
            proc.stop()
        self.procs.clear()

    def __enter__(self) -> DevCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main(base: Path, replicas: int, ray_nodes: int, database_url: str | None) -> None:
    """Run a dev cluster until Ctrl-C (the CLI's ``orate dev-cluster``)."""
    cluster = DevCluster(base, replicas=replicas, ray_nodes=ray_nodes, database_url=database_url)
    print(
        "starting PostgreSQL database, moto_server, a Ray head, "
        f"{ray_nodes} Ray worker nodes and {replicas} orate replicas…",
        flush=True,
    )
    stop = False

    def interrupted(*_: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, interrupted)
    signal.signal(signal.SIGINT, interrupted)  # also when started in the background
    with cluster:
        print(f"database   {cluster.database_url}")
        for name, url in cluster.urls().items():
            print(f"{name:<10} {url}")
        print(f"logs       {base}\nCtrl-C stops them all.", flush=True)
        while not stop:
            time.sleep(0.5)
            dead = [p.name for p in cluster.procs.values() if p.popen.poll() is not None]
            if dead:
                print(f"exited: {', '.join(dead)}; stopping", flush=True)
                break
        print("stopping…", flush=True)
