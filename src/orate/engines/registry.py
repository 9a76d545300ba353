"""Engines by name, created once per process on first use.

Engine modules import heavy libraries (ctypes bindings, onnxruntime), so the
registry imports them lazily: a process that never uses an engine never loads
it. ``configure`` tells each process (the server and every worker) where the
model store is.
"""

from __future__ import annotations

import threading
from pathlib import Path

from orate.engines.base import Engine
from orate.engines.models import LocalModel, build, scan

_engines: dict[str, Engine] = {}
_models: dict[str, LocalModel] = {}
_idle = 300.0
_lock = threading.Lock()


BUILTIN = ("espeak", "hibari")  # engines that need no model store


class UnknownEngine(KeyError):
    pass


def hibari_available() -> bool:
    """hibari is a dependency, but an install without it still serves (espeak only)."""
    from orate.engines.hibari import available

    return available()


def configure(models_dir: Path | None, idle: float = 300.0) -> list[LocalModel]:
    """Register the models found in ``models_dir`` (call again after a pull or rm)."""
    global _idle
    found = scan(models_dir)
    with _lock:
        _idle = idle
        _models.clear()
        _models.update({m.id: m for m in found})
        for name in [n for n in _engines if n not in BUILTIN and n not in _models]:
            del _engines[name]
    return found


def models() -> list[LocalModel]:
    return list(_models.values())


def engine_by_name(name: str) -> Engine:
    engine = _engines.get(name)
    if engine is not None:
        return engine
    with _lock:
        if name not in _engines:
            if name == "espeak":
                from orate.engines.espeak import get_engine

                _engines[name] = get_engine()
            elif name == "hibari" and hibari_available():
                from orate.engines.hibari import HibariEngine

                _engines[name] = HibariEngine(idle=_idle)
            elif name in _models:
                _engines[name] = build(_models[name], _idle)
            else:
                raise UnknownEngine(name)
        return _engines[name]


def sweep() -> None:
    """Unload neural sessions idle past their time (engines keep their metadata)."""
    unloaded = False
    for engine in list(_engines.values()):
        sweep_engine = getattr(engine, "sweep", None)
        session = getattr(engine, "session", None)
        if sweep_engine is not None:
            unloaded = bool(sweep_engine()) or unloaded
        elif session is not None:
            unloaded = session.sweep() or unloaded
    if unloaded:  # give the model's pages back to the kernel, not just to malloc
        from orate.engines.hibari_g2p import release_memory

        release_memory()
