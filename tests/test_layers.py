"""The layers stay layers: ``lint-imports`` checks the import-linter contracts in
pyproject.toml (cli → app → services → dialects → speech → library → runtime →
engines → audio, dialects independent, engines blind to dialect name tables), so a
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
