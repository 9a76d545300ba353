"""The feature transform's faster implementation gives bit-identical features.

The reference below is the transform's earlier, plainly written arithmetic (each
step a new array); the shipped one reuses its temporaries. Every palette voice is
run on the vocoder features hibari's model produces for a real sentence, so the
derived voices stay the voices that were tuned and listened to.
"""

from __future__ import annotations

import numpy as np
import pytest

from orate.engines import voicefx
from orate.engines.palette import PALETTE
from orate.engines.voicefx import Transform, transform_features, transform_pcm, warp_axis

pytestmark = pytest.mark.fast  # in-process only: see the fast tier in tests/conftest.py


def _warp_reference(env: np.ndarray, formant: float) -> np.ndarray:
    if formant == 1.0:
        return env
    low, high, frac = warp_axis(env.shape[0], formant)
    lo = env[low]
    return lo + (env[high] - lo) * frac


def _energy_reference(env: np.ndarray) -> np.ndarray:
    return np.maximum(np.exp(2.0 * np.minimum(env, 7.0)).sum(axis=0), 1e-12)


def _harmonic_energy_reference(lh: np.ndarray, f0: np.ndarray) -> np.ndarray:
    bins, frames = lh.shape
    f0 = np.asarray(f0, dtype=np.float32)
    voiced = f0 > 40.0
    out = np.ones(frames, dtype=np.float64)
    if not voiced.any():
        return out
    step = f0[voiced] / 20.0
    count = int((bins - 1) / step.min())
    where = np.arange(1, count + 1, dtype=np.float32)[:, None] * step[None, :]
    inside = where <= bins - 1
    index = np.minimum(np.rint(where).astype(np.intp), bins - 1)
    values = np.exp(2.0 * np.minimum(lh[:, voiced][index, np.arange(step.size)], 7.0))
    out[voiced] = np.maximum((values * inside).sum(axis=0), 1e-12)
    return out


@pytest.fixture(scope="module")
def features() -> tuple[np.ndarray, ...]:
    """hibari's vocoder features for one sentence (the model as the engine runs it)."""
    from orate.engines.hibari import HibariEngine

    engine = HibariEngine()
    session = engine.sessions["heart"].get().session
    phonemes = engine.phonemes("The quick brown fox jumps over the lazy dog at dawn.", "heart")[0]
    ids = [0, *(engine.vocab[ch] for ch in phonemes if ch in engine.vocab), 0]
    out = session.run(
        None, {"ids": np.asarray([ids], np.int64), "speed": np.asarray([1.0], np.float32)}
    )
    return tuple(o[0] for o in out[:6])


def test_helpers_match_the_reference(features: tuple[np.ndarray, ...]) -> None:
    lh, th, ln, lr, phi, f0 = features
    assert np.count_nonzero(f0 > 40.0) > 10  # the sentence has voiced frames
    for formant in (0.82, 0.9, 1.02, 1.1):
        for env in (lh, th, ln, lr, phi):
            assert np.array_equal(voicefx._warp(env, formant), _warp_reference(env, formant))
    for env in (ln, lr):
        assert np.array_equal(voicefx._energy(env), _energy_reference(env))
    for scale in (0.5, 1.0, 1.6):
        assert np.array_equal(
            voicefx._harmonic_energy(lh, f0 * scale), _harmonic_energy_reference(lh, f0 * scale)
        )


@pytest.mark.parametrize(
    "voice", [v for v in PALETTE if not v.transform.identity], ids=lambda v: v.id
)
def test_palette_voices_are_unchanged(voice, features, monkeypatch) -> None:
    shipped = transform_features(*features, voice.transform)
    monkeypatch.setattr(voicefx, "_warp", _warp_reference)
    monkeypatch.setattr(voicefx, "_energy", _energy_reference)
    monkeypatch.setattr(voicefx, "_harmonic_energy", _harmonic_energy_reference)
    reference = transform_features(*features, voice.transform)
    assert len(shipped) == len(reference) == 6
    for got, want in zip(shipped, reference, strict=True):
        assert got.dtype == want.dtype
        assert np.array_equal(got, want)


def test_waveform_transform_is_unchanged(monkeypatch) -> None:
    """The WORLD path (a Piper base) warps float64 envelopes with the same helper."""
    pytest.importorskip("pyworld")
    t = np.arange(24000) / 24000
    pcm = (np.sin(2 * np.pi * 140 * t) * 8000 * (1 + np.sin(2 * np.pi * 3 * t))).astype(np.int16)
    transform = Transform(f0=0.7, formant=0.86, breath=0.2)
    shipped = transform_pcm(pcm, 24000, transform)
    monkeypatch.setattr(voicefx, "_warp", _warp_reference)
    assert np.array_equal(shipped, transform_pcm(pcm, 24000, transform))
