"""The layers stay layers: ``lint-imports`` checks the import-linter contracts in
pyproject.toml (cli → app → services → dialects → speech → library → runtime →
engines → audio, dialects independent, engines blind to dialect name tables), so a
change that imports upward fails the build instead of quietly tangling the house."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_import_contracts_hold() -> None:
    exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) \
        or shutil.which("lint-imports")
    assert exe is not None, "install the test extra: pip install -e '.[test]'"
    result = subprocess.run([exe, "--no-cache"], cwd=ROOT, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout
