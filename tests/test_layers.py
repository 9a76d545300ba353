"""The layers stay layers: ``lint-imports`` checks the import-linter contracts in
pyproject.toml (cli → app → services → dialects → speech → library → runtime →
catalog → engines → audio; the dialect packages independent of one another and over
api's guard and shared http pieces; engines importing no catalog and no dialect), so a
change that imports upward fails the build instead of quietly tangling the house."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_import_contracts_hold() -> None:
    exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or shutil.which(
        "lint-imports"
    )
    assert exe is not None, "install the test extra: pip install -e '.[test]'"
    result = subprocess.run(
        [exe, "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout


@pytest.mark.parametrize("module", ["orate.runtime.render", "orate.app"])
def test_the_render_path_and_the_app_do_not_import_pyav(module: str) -> None:
    """PyAV (FFmpeg) costs ~17 MiB of resident memory per process; an engine worker that
    makes wav, pcm or streamed mp3 never needs it, so it is imported only where used."""
    code = f"import sys, {module}; print('av' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == "False"


def test_every_dialect_package_is_listed_and_under_contract() -> None:
    """A dialect is a package in api/ with one ``Dialect`` in its ``__init__.py``; the
    app's ``DIALECTS`` lists each, and the import contracts name each, so a new dialect
    cannot be mounted without being kept independent (or kept without being mounted)."""
    import importlib
    import pkgutil
    import tomllib

    import orate.api
    from orate.app import DIALECTS

    packages = sorted(
        m.name
        for m in pkgutil.iter_modules(orate.api.__path__)
        if m.ispkg and m.name != "http"  # http/ holds the pieces dialects share
    )
    listed = [importlib.import_module(f"orate.api.{name}").DIALECT for name in packages]
    assert sorted(id(d) for d in listed) == sorted(id(d) for d in DIALECTS)
    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    independent = next(c for c in contracts["contracts"] if c["type"] == "independence")
    assert {f"orate.api.{name}" for name in packages} <= set(independent["modules"])
    inside = next(c for c in contracts["contracts"] if c.get("containers") == ["orate.api"])
    assert set(inside["layers"][0].replace(" ", "").split("|")) == set(packages)
