"""Engines by name, created once per process on first use.

Engine modules import heavy libraries (ctypes bindings, onnxruntime), so the
registry imports them lazily: a process that never uses an engine never loads it.
"""

from __future__ import annotations

import threading

from orate.engines.base import Engine

_engines: dict[str, Engine] = {}
_lock = threading.Lock()


class UnknownEngine(KeyError):
    pass


def engine_by_name(name: str) -> Engine:
    engine = _engines.get(name)
    if engine is not None:
        return engine
    with _lock:
        if name not in _engines:
            if name == "espeak":
                from orate.engines.espeak import get_engine

                _engines[name] = get_engine()
            else:
                raise UnknownEngine(name)
        return _engines[name]
