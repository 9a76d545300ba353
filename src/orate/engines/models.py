"""The model store: neural voices found in ``ORATE_MODELS_DIR``, registered as models.

Layout (what ``orate models pull`` writes, and what a user can drop in by hand):
``NAME.onnx`` + ``NAME.onnx.json`` is the Piper voice ``piper:NAME``;
``NAME.onnx`` + ``NAME.voices.bin`` (+ optional ``NAME.config.json``) is the
Kokoro model ``kokoro`` (when NAME is ``kokoro``) or ``kokoro:NAME``.
Nothing is loaded at scan time; engines load on first use.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from orate.engines.base import Engine


@dataclass(frozen=True)
class LocalModel:
    id: str
    kind: str  # "piper" or "kokoro"
    files: tuple[Path, ...]

    @property
    def size(self) -> int:
        return sum(f.stat().st_size for f in self.files if f.exists())


def scan(models_dir: Path | None) -> list[LocalModel]:
    if models_dir is None or not models_dir.is_dir():
        return []
    found = []
    for onnx in sorted(models_dir.glob("*.onnx")):
        stem = onnx.name[: -len(".onnx")]
        config = models_dir / f"{stem}.onnx.json"
        voices = models_dir / f"{stem}.voices.bin"
        if config.exists():
            found.append(LocalModel(f"piper:{stem}", "piper", (onnx, config)))
        elif voices.exists():
            vocab = models_dir / f"{stem}.config.json"
            files = (onnx, voices, vocab) if vocab.exists() else (onnx, voices)
            found.append(LocalModel("kokoro" if stem == "kokoro" else f"kokoro:{stem}",
                                    "kokoro", files))
    return found


def build(model: LocalModel, idle: float) -> Engine:
    """The engine object for a stored model (cheap: reads configs, not weights)."""
    if model.kind == "piper":
        from orate.engines.piper import PiperEngine

        return PiperEngine(model.files[0], model.files[1], idle=idle)
    from orate.engines.kokoro import KokoroEngine

    config = model.files[2] if len(model.files) > 2 else None
    return KokoroEngine(model.files[0], model.files[1], config, name=model.id, idle=idle)
