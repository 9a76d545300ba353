"""The layers stay layers: ``lint-imports`` checks the import-linter contracts in
pyproject.toml (cli → app → services → dialects → speech → library → runtime →
catalog → engines → audio; the dialect packages independent of one another and over
api's guard and shared http pieces; engines importing no catalog and no dialect), so a
change that imports upward fails the build instead of quietly tangling the house."""

from __future__ import annotations

import ast
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


# -- the shape inside the rooms ------------------------------------------------------

SRC = ROOT / "src" / "orate"
BENCHMARKS = ROOT / "benchmarks"
MAX_CLASS_LINES = 300
MAX_COMPLEXITY = 25  # pyproject.toml's [tool.ruff.lint.mccabe]


def _python_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*.py") if "migrations" not in p.parts)


def _module_name(path: Path, root: Path, prefix: str) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join([prefix, *parts]) if prefix else ".".join(parts)


def _import_graph(root: Path, prefix: str) -> dict[str, set[str]]:
    """Module → the modules of the same tree it imports, read from the source with ast:
    top-level, function-level and ``TYPE_CHECKING`` imports alike (a loop hidden behind
    a function-level import is still a loop)."""
    files = {_module_name(p, root, prefix): p for p in _python_files(root)}
    graph: dict[str, set[str]] = {name: set() for name in files}

    def known(name: str) -> str | None:
        while name and name not in files:
            name = name.rpartition(".")[0]
        return name or None

    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*up, base] if base else up)
                # ``from pkg import mod`` imports the module when there is one
                targets = [
                    f"{base}.{a.name}" if f"{base}.{a.name}" in files else base for a in node.names
                ]
            for target in targets:
                found = known(target)
                if found is not None and found != name and not name.startswith(found + "."):
                    graph[name].add(found)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


@pytest.mark.parametrize(("root", "prefix"), [(SRC, "orate"), (BENCHMARKS, "")])
def test_no_import_loops(root: Path, prefix: str) -> None:
    """No module imports, by any path and at any level, a module that imports it back."""
    graph = _import_graph(root, prefix)
    assert sum(len(v) for v in graph.values()) > 20, "the import graph was not read"
    assert _cycles(graph) == []


def test_the_graph_sees_a_loop_behind_a_function_level_import(tmp_path: Path) -> None:
    """The check itself: two modules tied only by an import inside a function are a loop."""
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from pkg.b import g\n\ndef f():\n    return g()\n")
    (pkg / "b.py").write_text("def g():\n    from pkg import a\n    return a\n")
    assert _cycles(_import_graph(pkg, "pkg")) == [["pkg.a", "pkg.b"]]


def test_no_class_is_longer_than_300_lines() -> None:
    """A class past 300 lines is doing several jobs: split it by what it is for."""
    long = [
        f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1})"
        for path in _python_files(SRC)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.ClassDef)
        and node.end_lineno is not None
        and node.end_lineno - node.lineno + 1 > MAX_CLASS_LINES
    ]
    assert long == []


def test_no_function_is_more_complex_than_25() -> None:
    """McCabe complexity over 25 (ruff's C901, configured in pyproject.toml) fails."""
    exe = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
    assert exe is not None, "install the test extra: pip install -e '.[test]'"
    result = subprocess.run(
        [exe, "check", "--select", "C901", "--output-format", "concise", "src"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    config = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert f"max-complexity = {MAX_COMPLEXITY}" in config


def _probes(path: Path, root: Path = ROOT) -> list[str]:
    """``getattr``/``hasattr`` calls whose object is an engine (by name)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in ("getattr", "hasattr")
            and node.args
            and "engine" in ast.unparse(node.args[0]).lower()
        ):
            found.append(f"{path.relative_to(root)}:{node.lineno} {ast.unparse(node)}")
    return found


def test_engines_are_not_probed_for_abilities() -> None:
    """What an engine can do is declared on ``Engine`` (engines/base.py) and read as a
    typed attribute, never found out with getattr."""
    assert [p for path in _python_files(SRC) for p in _probes(path)] == []


def test_the_probe_check_finds_a_probe(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text('def f(engine):\n    return getattr(engine, "phoneme_input", False)\n')
    assert len(_probes(probe, tmp_path)) == 1


def test_every_engine_subclasses_the_declared_protocol() -> None:
    from orate.engines.base import Engine
    from orate.engines.espeak import EspeakEngine
    from orate.engines.hibari import HibariEngine
    from orate.engines.kokoro import KokoroEngine
    from orate.engines.palette import NaturalEngine
    from orate.engines.piper import PiperEngine
    from orate.engines.upstream.engine import UpstreamEngine

    engines = [EspeakEngine, HibariEngine, KokoroEngine, NaturalEngine, PiperEngine, UpstreamEngine]
    assert all(issubclass(cls, Engine) for cls in engines)
    # every engine module's engine class is in that list
    declared = {
        node.name
        for path in _python_files(SRC / "engines")
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.ClassDef)
        and any(isinstance(b, ast.Name) and b.id == "Engine" for b in node.bases)
    }
    assert declared == {cls.__name__ for cls in engines}
