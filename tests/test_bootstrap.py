"""First start without a terminal (the container image): ORATE_ADMIN_KEY or
ORATE_ADMIN_KEY_FILE creates, or adopts, the admin key before ``serve`` checks its
listeners; a bad secret is one line and exit 2 without echoing it; a different secret
never silently replaces the key. ORATE_S3_CREATE_BUCKET creates a missing bucket."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from orate.cli.bootstrap import BadAdminKey, admin_secret, secret_problem
from orate.config import Settings
from orate.library.library import Library
from orate.library.s3bucket import ensure_bucket, sigv4_headers

from .conftest import Server, free_port
from .waiting import accepts, wait_until

ORATE = [sys.executable, "-m", "orate.cli"]
GOOD = "a-proper-secret-0123456789abcdef"


def serve(data: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("ORATE_ADMIN_KEY")}
    return subprocess.run(
        [*ORATE, "serve", "--port", str(free_port()), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**clean, "ORATE_DATA_DIR": str(data), **env},
    )


def one_error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    return lines[0]


@pytest.mark.parametrize(
    ("secret", "problem"),
    [
        ("", "is empty"),
        ("short-secret", "shorter than 16"),
        ("fifteen-chars!!", "shorter than 16"),
        ("has a space in the middle", "whitespace"),
        ("tab\tinside-the-secret-here", "whitespace"),
        ("newline-inside\nthe-secret-here", "whitespace"),
        (" leading-space-secret-long", "whitespace"),
        ("non-ascii-secret-ÿÿÿÿÿÿÿÿ", "printable ASCII"),
        ("x" * 1025, "longer than 1024"),
    ],
)
def test_bad_secrets_are_named(secret: str, problem: str) -> None:
    assert problem in (secret_problem(secret) or "")
    with pytest.raises(BadAdminKey) as caught:
        admin_secret(Settings(admin_key=secret))
    assert problem in str(caught.value) and "ORATE_ADMIN_KEY" in str(caught.value)
    if secret:
        assert secret not in str(caught.value)


@pytest.mark.fast
def test_good_secret_and_its_file(tmp_path: Path) -> None:
    assert secret_problem(GOOD) is None and secret_problem("0123456789abcdef") is None
    assert admin_secret(Settings()) is None
    assert admin_secret(Settings(admin_key=GOOD)) == ("ORATE_ADMIN_KEY", GOOD)
    mounted = tmp_path / "admin_key"
    mounted.write_text(GOOD + "\n")  # as `echo`, docker and Kubernetes secrets leave it
    assert admin_secret(Settings(admin_key_file=mounted)) == ("ORATE_ADMIN_KEY_FILE", GOOD)
    mounted.write_text(GOOD + "\n\n")  # two newlines: not a trailing newline any more
    with pytest.raises(BadAdminKey, match="the key in ORATE_ADMIN_KEY_FILE contains whitesp"):
        admin_secret(Settings(admin_key_file=mounted))
    mounted.write_bytes(b"")
    with pytest.raises(BadAdminKey, match="is empty"):
        admin_secret(Settings(admin_key_file=mounted))
    mounted.write_bytes(b"k" * (65 << 10))
    with pytest.raises(BadAdminKey, match="larger than"):
        admin_secret(Settings(admin_key_file=mounted))
    with pytest.raises(BadAdminKey, match="No such file"):
        admin_secret(Settings(admin_key_file=tmp_path / "missing"))
    with pytest.raises(BadAdminKey, match="not both"):
        admin_secret(Settings(admin_key=GOOD, admin_key_file=mounted))
    assert GOOD not in repr(Settings(admin_key=GOOD))


@pytest.mark.parametrize("secret", ["", "pw-9x7q", "white space in this secret"])
def test_serve_refuses_a_bad_key_in_one_line(tmp_path: Path, secret: str) -> None:
    done = serve(tmp_path, {"ORATE_ADMIN_KEY": secret})
    assert done.returncode == 2
    line = one_error_line(done.stderr)
    assert "ORATE_ADMIN_KEY" in line and (not secret or secret not in done.stderr + done.stdout)


def test_serve_refuses_a_bad_key_file(tmp_path: Path) -> None:
    (tmp_path / "key").write_text("not long\n")
    done = serve(tmp_path, {"ORATE_ADMIN_KEY_FILE": str(tmp_path / "key")})
    assert done.returncode == 2
    assert "ORATE_ADMIN_KEY_FILE" in one_error_line(done.stderr)
    assert "not long" not in done.stderr


def test_without_a_key_the_open_address_says_what_to_set(tmp_path: Path) -> None:
    done = serve(tmp_path, {}, "--host", "0.0.0.0")
    assert done.returncode != 0
    assert "ORATE_ADMIN_KEY" in one_error_line(done.stderr)


def test_an_existing_admin_key_is_not_replaced(tmp_path: Path) -> None:
    made = subprocess.run(
        [*ORATE, "keys", "create", "--name", "admin", "--admin"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "ORATE_DATA_DIR": str(tmp_path)},
    )
    assert made.returncode == 0, made.stderr
    done = serve(tmp_path, {"ORATE_ADMIN_KEY": GOOD})
    assert done.returncode == 2
    line = one_error_line(done.stderr)
    assert "not replaced" in line and "orate keys revoke admin" in line
    assert GOOD not in done.stderr


def test_the_admin_key_serves_and_is_adopted_on_the_next_start(tmp_path: Path) -> None:
    srv = Server(tmp_path, workers=1, env={"ORATE_ADMIN_KEY": GOOD})
    try:
        body = {"model": "tts-1", "voice": "alloy", "input": "Keyed."}
        url = f"{srv.url}/v1/audio/speech"
        assert httpx.post(url, json=body, timeout=60).status_code == 401
        keyed = httpx.post(url, json=body, headers={"Authorization": f"Bearer {GOOD}"}, timeout=60)
        assert keyed.status_code == 200 and keyed.headers["content-type"] == "audio/mpeg"
        keys = httpx.get(f"{srv.url}/v1/keys", headers={"Authorization": f"Bearer {GOOD}"})
        assert keys.status_code == 200, keys.text  # an admin key: it may list keys
    finally:
        srv.stop()
    log = (tmp_path / "server.log").read_text()
    assert "created the admin key 'admin'" in log and GOOD not in log
    again = Server(tmp_path, workers=1, env={"ORATE_ADMIN_KEY": GOOD})
    again.stop()
    log = (tmp_path / "server.log").read_text()
    assert "created the admin key" not in log and GOOD not in log


@pytest.mark.asyncio
async def test_adopt_outcomes(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    first, second = (
        await Library.open(settings, background=False),
        await Library.open(settings, background=False),
    )
    try:
        # two replicas starting together on one database: one creates, the other adopts
        outcomes = await asyncio.gather(
            first.keys.adopt("admin", GOOD), second.keys.adopt("admin", GOOD)
        )
        assert sorted(o for o, _ in outcomes) == ["adopted", "created"]
        assert outcomes[0][1] == outcomes[1][1]
        info = await first.keys.check(GOOD)
        assert info is not None and info.admin and info.name == "admin"
        listed = await first.keys.list()
        assert len(listed) == 1 and GOOD[:4] not in listed[0]["prefix"]
        assert await first.keys.auth_required()
        assert (await first.keys.adopt("admin", GOOD))[0] == "adopted"
        assert (await first.keys.adopt("admin", GOOD + "-other"))[0] == "conflict"
        await first.keys.revoke("admin")
        # a revoked secret does not come back; a new one becomes the admin key
        assert (await first.keys.adopt("admin", GOOD))[0] == "taken"
        assert (await first.keys.adopt("admin", GOOD + "-new"))[0] == "created"
        assert await first.keys.check(GOOD) is None
    finally:
        await first.close()
        await second.close()


@pytest.mark.fast
def test_sigv4_matches_botocore() -> None:
    from botocore.auth import S3SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    url = "http://127.0.0.1:8333/orate-audio"
    body = b"<CreateBucketConfiguration/>"
    request = AWSRequest(method="PUT", url=url, data=body)
    S3SigV4Auth(Credentials("AKID", "SECRET", "TOKEN"), "s3", "eu-west-1").add_auth(request)
    stamp = request.context["timestamp"]
    now = datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    ours = sigv4_headers(
        "PUT",
        url,
        body,
        access_key="AKID",
        secret_key="SECRET",
        region="eu-west-1",
        session_token="TOKEN",
        now=now,
    )
    assert ours["authorization"] == request.headers["Authorization"]


def test_ensure_bucket_creates_a_missing_bucket(monkeypatch: pytest.MonkeyPatch) -> None:
    import boto3

    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        # moto's imports take seconds, more on a busy machine
        wait_until(lambda: accepts(port), "moto_server to listen", timeout=120, interval=0.1)
        for var, value in (
            ("AWS_ACCESS_KEY_ID", "test"),
            ("AWS_SECRET_ACCESS_KEY", "test"),
            ("AWS_REGION", "eu-west-1"),
        ):
            monkeypatch.setenv(var, value)
        assert ensure_bucket("s3://orate-fresh/audio", endpoint) is True
        assert ensure_bucket("s3://orate-fresh/audio", endpoint) is False
        s3 = boto3.client(
            "s3",
            endpoint_url=endpoint,
            aws_access_key_id="test",
            aws_secret_access_key="test",
            region_name="eu-west-1",
        )
        assert s3.get_bucket_location(Bucket="orate-fresh")["LocationConstraint"] == "eu-west-1"
    finally:
        proc.terminate()
        proc.wait(10)
