"""docs/architecture.md stays the map of the code as it is: every file it names exists,
and every module of the package appears in it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.fast  # in-process only: see the fast tier in tests/conftest.py

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "orate"
DOC = ROOT / "docs" / "architecture.md"


def _named() -> set[str]:
    return set(re.findall(r"`([\w./-]+(?:\.py|/))`", DOC.read_text()))


def test_every_path_in_the_architecture_page_exists() -> None:
    modules = {p.relative_to(PACKAGE).as_posix() for p in PACKAGE.rglob("*.py")}
    missing = []
    for name in _named():
        if "/" in name.rstrip("/"):
            if not ((PACKAGE / name).exists() or (ROOT / name).exists()):
                missing.append(name)
        elif name.endswith("/"):
            if not ((PACKAGE / name).is_dir() or (ROOT / name).is_dir()):
                missing.append(name)
        elif not any(m == name or m.endswith("/" + name) for m in modules):
            missing.append(name)
    assert not missing, missing


def test_every_module_is_on_the_map() -> None:
    text = DOC.read_text()
    unmapped = [
        p.relative_to(PACKAGE).as_posix()
        for p in sorted(PACKAGE.rglob("*.py"))
        if p.name != "__init__.py" and "migrations" not in p.parts and f"{p.name}`" not in text
    ]
    assert not unmapped, unmapped


def test_readme_points_to_the_architecture_page() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "docs/architecture.md" in readme and "shared/DESIGN.md" not in readme
