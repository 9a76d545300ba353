"""A neural model runs on the idle cores when it is alone, on one thread under load.

The pool gives each job the cores no other job is using; a Piper voice then runs on
a session with that many intra-op threads (a second session, loaded on first use and
unloaded with the first), and on its one-thread session otherwise. The audio is the
same either way.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from orate.engines import onnx_base
from orate.engines.base import VoiceParams
from orate.engines.onnx_base import cores, set_thread_budget, thread_budget
from orate.engines.piper import PiperEngine
from orate.runtime.pool import thread_budget as pool_budget

from .tiny_models import build_piper

pytestmark = pytest.mark.fast  # in-process only: see the fast tier in tests/conftest.py


def test_the_pool_gives_a_job_the_cores_nobody_uses() -> None:
    assert pool_budget(0, 2) == 2  # alone on two cores
    assert pool_budget(1, 2) == 1  # the other core is busy
    assert pool_budget(3, 2) == 1  # more jobs than cores: never below one
    assert pool_budget(0, 8) == 8
    assert pool_budget(2, 8) == 6


def test_the_worker_budget_never_passes_the_cores() -> None:
    try:
        set_thread_budget(10_000)
        assert thread_budget() == cores()
        set_thread_budget(0)
        assert thread_budget() == 1
    finally:
        set_thread_budget(1)


def _render(engine: PiperEngine) -> np.ndarray:
    parts: list[np.ndarray] = []
    engine.synthesize(
        "Hello there, this is a test.",
        VoiceParams(engine=engine.name, voice="default"),
        1.0,
        lambda pcm, ev: parts.append(pcm) or True,
    )
    return np.concatenate(parts)


@pytest.fixture
def piper(tmp_path: Path) -> PiperEngine:
    model = build_piper(tmp_path, "en_US-tiny-low")
    return PiperEngine(model, model.with_suffix(".onnx.json"), idle=300.0)


def test_piper_runs_wide_when_the_budget_allows(piper: PiperEngine, monkeypatch) -> None:
    monkeypatch.setattr(onnx_base, "cores", lambda: 2)  # the rule, whatever this box has
    try:
        set_thread_budget(1)
        narrow = _render(piper)
        session = piper.session.get(thread_budget())
        assert session.get_session_options().intra_op_num_threads == 1
        set_thread_budget(2)
        wide = _render(piper)
        session = piper.session.get(thread_budget())
        assert session.get_session_options().intra_op_num_threads == 2
        assert session is not piper.session.get(1)
    finally:
        set_thread_budget(1)
    assert np.array_equal(narrow, wide)


def test_both_sessions_unload_together(piper: PiperEngine) -> None:
    piper.session.get(1)
    piper.session.get(2)
    piper.session.idle = 0.0
    assert piper.session.sweep()
    assert not piper.session.loaded
    assert piper.session._wide is None
