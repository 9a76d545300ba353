"""hibari's G2P in a tenth of the memory: its lexicons and tagger weights as compact maps.

hibari's G2P keeps two lexicons (~180,000 words) and a perceptron's weights
(~80,000 features) as Python dicts: ~126 MiB per process, more than the
model itself, and every engine worker holds one. Only lookups by key are ever
made (``d.get(w)``, ``w in d``), so the same data as sorted UTF-8 keys and
marshalled values in a few flat buffers answers identically with binary
search, at ~15 MiB. The G2P code itself is hibari's, unchanged: only the
objects its loader returns are swapped while it is built.
"""

from __future__ import annotations

import gc
import marshal
import sys
from array import array
from collections.abc import Callable, Mapping
from typing import Any


class CompactMap:
    """A read-only ``str → value`` map over flat buffers (what a lookup-only dict needs)."""

    __slots__ = ("_keys", "_koff", "_n", "_values", "_voff")

    def __init__(self, mapping: Mapping[str, Any]) -> None:
        pairs = sorted((k.encode("utf-8"), v) for k, v in mapping.items())
        self._n = len(pairs)
        self._koff = array("I", [0])
        self._voff = array("I", [0])
        keys, values = bytearray(), bytearray()
        for key, value in pairs:
            keys += key
            values += marshal.dumps(value)
            self._koff.append(len(keys))
            self._voff.append(len(values))
        self._keys, self._values = bytes(keys), bytes(values)

    def _find(self, word: str) -> int:
        target = word.encode("utf-8", "surrogatepass")
        keys, koff = self._keys, self._koff
        lo, hi = 0, self._n
        while lo < hi:
            mid = (lo + hi) // 2
            if keys[koff[mid] : koff[mid + 1]] < target:
                lo = mid + 1
            else:
                hi = mid
        if lo < self._n and keys[koff[lo] : koff[lo + 1]] == target:
            return lo
        return -1

    def get(self, word: str, default: Any = None) -> Any:
        i = self._find(word)
        if i < 0:
            return default
        return marshal.loads(self._values[self._voff[i] : self._voff[i + 1]])

    def __contains__(self, word: object) -> bool:
        return isinstance(word, str) and self._find(word) >= 0

    def __getitem__(self, word: str) -> Any:
        i = self._find(word)
        if i < 0:
            raise KeyError(word)
        return marshal.loads(self._values[self._voff[i] : self._voff[i + 1]])

    def __len__(self) -> int:
        return self._n


def release_memory() -> None:
    """Hand the freed dicts' pages back to the kernel (the worker keeps a high trim
    threshold for its PCM buffers, so this is not automatic)."""
    gc.collect()
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            ctypes.CDLL("libc.so.6").malloc_trim(0)
        except (OSError, AttributeError):
            pass


def _compacting(load: Callable[[str], Any]) -> Callable[[str], Any]:
    def compact(name: str) -> Any:
        data = load(name)
        if name.startswith("lexicon_"):
            return CompactMap(data)
        if name.startswith("tagger") and isinstance(data, dict) and "weights" in data:
            data["weights"] = CompactMap(data["weights"])
        return data

    return compact


def load_g2p(british: bool) -> Any:
    """hibari's ``G2P`` with compact lexicons and tagger weights (same answers)."""
    import hibari.g2p as module

    original = module._load_json
    module._load_json = _compacting(original)
    try:
        g2p = module.G2P(british=british)
    finally:
        module._load_json = original
    release_memory()
    return g2p
