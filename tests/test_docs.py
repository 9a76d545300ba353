"""The docs stay true and stand alone: docs/architecture.md is the map of the code as it
is (every file it names exists, every module of the package appears in it), docs/wire.md
names every route a dialect serves, and nothing in the repository points at files or
issue numbers a reader of the repository cannot open."""

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


def test_readme_points_to_the_project_docs() -> None:
    readme = (ROOT / "README.md").read_text()
    for page in ("docs/architecture.md", "docs/wire.md", "CONTRIBUTING.md"):
        assert f"]({page})" in readme, page
        assert (ROOT / page).is_file(), page


# Where the project's own text lives (generated and installed trees are not scanned).
SCANNED = ("src", "tests", "benchmarks", "docs", "deploy", ".ci")
TOP_FILES = ("README.md", "CONTRIBUTING.md", "Dockerfile", "pyproject.toml")
SKIPPED_DIRS = {"__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache", "node_modules"}
# Built from pieces so that this file does not match itself.
OUTSIDE = re.compile(
    "|".join(
        (
            r"\.\./" + "shared",  # the folder beside the repository
            "shared" + r"/(?:spec|seeds|hooks|DESIGN)",
            r"(?-i:\bWIRE" + r"\.md\b)",  # the upper-case names of files outside
            r"(?-i:\bDESIGN" + r"\.md\b)",
            r"\bissues?\s*#?\d+",  # the word issue, then a number
        )
    ),
    re.IGNORECASE,
)


def _text_files() -> list[Path]:
    files = [ROOT / name for name in TOP_FILES if (ROOT / name).is_file()]
    for top in SCANNED:
        for path in sorted((ROOT / top).rglob("*")):
            if path.is_file() and not SKIPPED_DIRS.intersection(path.parts):
                files.append(path)
    return files


def test_nothing_points_outside_the_repository() -> None:
    """Docs, docstrings and comments describe the project in its own words: a path to a
    folder beside the repository or an issue number is a dead end for its reader."""
    found = []
    for path in _text_files():
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue  # audio, images, models
        for number, line in enumerate(text.splitlines(), 1):
            match = OUTSIDE.search(line)
            if match:
                found.append(f"{path.relative_to(ROOT)}:{number}: {match.group(0)!r}")
    assert not found, "\n".join(found)


WIRE = ROOT / "docs" / "wire.md"
DIALECT_TAGS = {"openai", "hume", "elevenlabs", "nano-gpt", "inference.club"}
WEBSOCKETS = (
    "/v0/tts/stream/input",
    "/v1/text-to-speech/{voice_id}/stream-input",
    "/v1/text-to-speech/{voice_id}/multi-stream-input",
)


def test_the_wire_page_names_every_dialect_route(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A route a dialect serves is described in docs/wire.md (by its path as the client
    sends it: ElevenLabs' routes without the ``/elevenlabs`` prefix)."""
    monkeypatch.setenv("ORATE_DATA_DIR", str(tmp_path))
    from orate.app import create_app

    schema = create_app().openapi()
    paths = {
        path.removeprefix("/elevenlabs")
        for path, operations in schema["paths"].items()
        if DIALECT_TAGS.intersection(
            tag for op in operations.values() for tag in op.get("tags", [])
        )
    }
    assert len(paths) > 20, sorted(paths)  # the schema still tags the dialects' routes
    text = WIRE.read_text()
    missing = sorted(
        p for p in (*paths, *WEBSOCKETS) if not any(f"{p}{end}" in text for end in "` ?")
    )
    assert not missing, missing
