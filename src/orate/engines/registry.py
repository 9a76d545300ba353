"""Engines by name, created once per registry on first use.

Engine modules import heavy libraries (ctypes bindings, onnxruntime), so the
registry imports them lazily: a process that never uses an engine never loads
it. Each process holds one ``EngineRegistry``: the server's is built by the
composition root (``services.py``), each worker builds its own; nothing is a
module global, so building a catalog never reconfigures the process.
"""

from __future__ import annotations

import threading
from pathlib import Path

from orate.engines.base import Engine
from orate.engines.model_store import LocalModel, build, scan

BUILTIN = ("espeak", "hibari", "natural")  # engines that need no model store


class UnknownEngine(KeyError):
    pass


def hibari_available() -> bool:
    """hibari is a dependency, but an install without it still serves (espeak only)."""
    from orate.engines.hibari import available

    return available()


class EngineRegistry:
    """The engines one process can run, by name: the built-ins plus the model store's."""

    def __init__(self, models_dir: Path | None = None, idle: float = 300.0) -> None:
        self._engines: dict[str, Engine] = {}
        self._models: dict[str, LocalModel] = {}
        self._idle = idle
        self._lock = threading.Lock()
        self._models_dir = models_dir
        self.rescan()

    def rescan(self, models_dir: Path | None = None) -> list[LocalModel]:
        """Register the models found in the store (again after a pull or rm); engines of
        models that went away are dropped, and hibari looks for its voices again."""
        if models_dir is not None:
            self._models_dir = models_dir
        found = scan(self._models_dir)
        with self._lock:
            self._models.clear()
            self._models.update({m.id: m for m in found})
            for name in [
                n
                for n in self._engines
                if n not in BUILTIN and n not in self._models and not self._engines[n].runs_upstream
            ]:
                del self._engines[name]
            self._engines.pop("hibari", None)  # its voices in the store may have changed
        return found

    def add(self, engine: Engine) -> None:
        """Register an engine built elsewhere (the upstream providers' adapter)."""
        with self._lock:
            self._engines[engine.name] = engine

    def models(self) -> list[LocalModel]:
        return list(self._models.values())

    def engine(self, name: str) -> Engine:
        """The engine called ``name``, built on first use (``UnknownEngine`` if none)."""
        engine = self._engines.get(name)
        if engine is not None:
            return engine
        with self._lock:
            if name not in self._engines:
                self._engines[name] = self._build(name)
            return self._engines[name]

    def _build(self, name: str) -> Engine:
        if name == "espeak":
            from orate.engines.espeak import get_engine

            return get_engine()
        if name == "hibari" and hibari_available():
            from orate.engines.hibari import STORE_FOLDER, HibariEngine

            store = self._models_dir / STORE_FOLDER if self._models_dir is not None else None
            return HibariEngine(idle=self._idle, store=store)
        if name == "natural" and hibari_available():
            from orate.engines.palette import JOE, NaturalEngine

            bases = ["hibari", *([JOE] if JOE in self._models else [])]
            # its bases are looked up on first synthesis, outside this lock
            return NaturalEngine(self.engine, bases)
        if name in self._models:
            return build(self._models[name], self._idle)
        raise UnknownEngine(name)

    def sweep(self) -> None:
        """Unload neural sessions idle past their time (engines keep their metadata)."""
        unloaded = False
        for engine in list(self._engines.values()):
            unloaded = engine.sweep() or unloaded
        if unloaded:  # give the model's pages back to the kernel, not just to malloc
            from orate.engines.hibari_g2p import release_memory

            release_memory()
