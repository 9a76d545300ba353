"""Voice transforms: one natural voice made into others by source-filter changes.

A voice is a base model plus a ``Transform``: the pitch level (F0 scale) and
range, the vocal-tract length (a warp of the spectral envelope's frequency
axis, which moves the formants), breathiness (voicing traded for shaped noise,
up to a whisper) and energy. Rate is not here: the base engines render pace
natively (hibari's speed input, Piper's length scale), which keeps every frame
and so every word time exact.

Two ways to apply one transform, chosen by what the base engine exposes:

- ``transform_features`` works on hibari's vocoder features before its DSP
  turns them into audio (a harmonic envelope, its phase, a noise envelope and a
  free-phase branch per 12.5 ms frame, plus F0). The transform is a few array
  operations per frame, so a derived voice costs what its base voice costs.
- ``transform_pcm`` works on finished audio (Piper, whose model outputs a
  waveform) with the WORLD vocoder (``pyworld``): analysis, the same changes on
  F0, envelope and aperiodicity, resynthesis; about 15-19x real time per core.

Warping formants down (a longer vocal tract) stays intelligible far further than
warping them up, so the palette derives male voices from a female base by
lowering both F0 and formants, and keeps upward warps small.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: the range each parameter is clamped to (beyond it intelligibility falls apart)
LIMITS: dict[str, tuple[float, float]] = {
    "f0": (0.4, 2.0),
    "range": (0.0, 2.5),
    "formant": (0.75, 1.1),
    "breath": (0.0, 1.0),
    "gain": (0.1, 2.0),
}
_VOICED_HZ = 40.0  # hibari's pulse generator treats F0 below this as unvoiced
_BIN_HZ = 20.0  # hibari's STFT: 24 kHz over 1200 points


@dataclass(frozen=True)
class Transform:
    """What a derived voice changes on its base voice; the identity changes nothing."""

    f0: float = 1.0  # pitch level, as a factor on F0
    range: float = 1.0  # pitch range: the spread of log F0 around its median, as a factor
    formant: float = 1.0  # vocal-tract scale: <1 lowers the formants (a longer tract)
    breath: float = 0.0  # 0 = modal voice, 1 = whisper (no voicing at all)
    gain: float = 1.0  # energy, as a factor on amplitude

    @property
    def identity(self) -> bool:
        return self == Transform()

    def clamped(self) -> tuple[Transform, list[str]]:
        """This transform within ``LIMITS``, and a note for each value that was not."""
        values: dict[str, float] = {}
        notes = []
        for name, (low, high) in LIMITS.items():
            value = float(getattr(self, name))
            if not np.isfinite(value):
                value = float(getattr(Transform(), name))
                notes.append(f"{name} was not a number; used {value}")
            kept = min(max(value, low), high)
            if kept != value:
                notes.append(f"{name} {value:g} is outside {low:g}-{high:g}; clamped to {kept:g}")
            values[name] = kept
        return Transform(**values), notes

    def describe(self) -> str:
        """A short human account, for listings: 'F0 x0.60, formants -13%'."""
        parts = []
        if self.f0 != 1.0:
            parts.append(f"F0 x{self.f0:.2f}")
        if self.range != 1.0:
            parts.append(f"pitch range x{self.range:.2f}")
        if self.formant != 1.0:
            parts.append(f"formants {round((self.formant - 1) * 100):+d}%")
        if self.breath:
            parts.append("whisper" if self.breath >= 1 else f"breathiness {self.breath:.2f}")
        if self.gain != 1.0:
            parts.append(f"energy x{self.gain:.2f}")
        return ", ".join(parts) or "as recorded"


def shape_f0(f0: np.ndarray, t: Transform) -> np.ndarray:
    """F0 with its level scaled and its log-spread around the voiced median scaled;
    unvoiced frames (0) stay unvoiced."""
    f0 = np.asarray(f0, dtype=np.float32)
    voiced = f0 > _VOICED_HZ
    if not voiced.any() or (t.f0 == 1.0 and t.range == 1.0):
        return f0
    out = f0.copy()
    logf = np.log(f0[voiced])
    median = float(np.median(logf))
    out[voiced] = np.exp(median + (logf - median) * t.range) * t.f0
    # keep voiced frames voiced: a very low target must not fall under the threshold
    out[voiced] = np.maximum(out[voiced], _VOICED_HZ + 5.0)
    return out


def warp_axis(bins: int, formant: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Indices and weights to read an envelope at frequency ``f / formant`` for each bin
    ``f``: the formants of the result sit at ``formant`` times their old frequency."""
    src = np.arange(bins, dtype=np.float32) / formant
    src = np.minimum(src, bins - 1)
    low = np.floor(src).astype(np.intp)
    high = np.minimum(low + 1, bins - 1)
    return low, high, (src - low).astype(np.float32)[:, None]


def _warp(env: np.ndarray, formant: float) -> np.ndarray:
    """An envelope [bins, frames] warped along its frequency axis (linear interpolation)."""
    if formant == 1.0:
        return env
    low, high, frac = warp_axis(env.shape[0], formant)
    lo = env[low]
    # lo + (hi - lo) * frac, computed in the gathered array: one temporary, not three
    out: np.ndarray = env[high]
    out -= lo
    out *= frac
    out += lo
    return out


def _energy(env: np.ndarray) -> np.ndarray:
    """Per-frame power of a log-magnitude envelope [bins, frames] (never zero)."""
    power = np.minimum(env, 7.0)
    power *= 2.0
    energy: np.ndarray = np.maximum(np.exp(power, out=power).sum(axis=0), 1e-12)
    return energy


def _harmonic_energy(lh: np.ndarray, f0: np.ndarray) -> np.ndarray:
    """Per-frame power of the harmonics F0 would sound through the envelope ``lh``: the
    envelope read at each harmonic's bin (1 for unvoiced frames, which have none)."""
    bins, frames = lh.shape
    f0 = np.asarray(f0, dtype=np.float32)
    voiced = f0 > _VOICED_HZ
    out = np.ones(frames, dtype=np.float64)
    if not voiced.any():
        return out
    step = f0[voiced] / _BIN_HZ
    count = int((bins - 1) / step.min())
    where = np.arange(1, count + 1, dtype=np.float32)[:, None] * step[None, :]
    inside = where <= bins - 1
    index = np.minimum(np.rint(where).astype(np.intp), bins - 1)
    # gather the harmonic bins of the voiced frames straight from lh (no copy of its
    # voiced columns first)
    gathered = lh[index, np.flatnonzero(voiced)[None, :]]
    np.minimum(gathered, 7.0, out=gathered)
    gathered *= 2.0
    values = np.exp(gathered, out=gathered)
    out[voiced] = np.maximum((values * inside).sum(axis=0), 1e-12)
    return out


def transform_features(
    lh: np.ndarray,
    th: np.ndarray,
    ln: np.ndarray,
    lr: np.ndarray,
    phi: np.ndarray,
    f0: np.ndarray,
    t: Transform,
) -> tuple[np.ndarray, ...]:
    """hibari's vocoder features ([bins, frames] log magnitudes and phases, F0 per frame)
    changed by ``t``, ready for ``hibari.dsp.synth``.

    Breathiness moves the harmonic envelope's energy into the noise branch: the noise
    gets the harmonics' envelope (spread over the bins between harmonics, hence the
    F0-dependent factor) and the harmonics fade; at 1 they are gone (a whisper)."""
    if t.identity:
        return lh, th, ln, lr, phi, f0
    new_f0 = shape_f0(f0, t)
    warped = [_warp(a, t.formant) for a in (lh, th, ln, lr, phi)]
    # keep the voice's loudness frame by frame: the model's harmonic envelope is only
    # meaningful where its own harmonics fell, so new harmonics (another F0) or a warped
    # envelope can sum to far more or less energy; each branch is rescaled to the energy
    # it had (harmonics: summed at the harmonic bins; noise branches: over all bins)
    ratio = _harmonic_energy(lh, f0) / _harmonic_energy(warped[0], new_f0)
    warped[0] = warped[0] + (0.5 * np.log(ratio)).astype(np.float32)
    if t.formant != 1.0:
        for i, before in ((2, ln), (3, lr)):
            ratio = _energy(before) / _energy(warped[i])
            warped[i] = warped[i] + (0.5 * np.log(ratio)).astype(np.float32)
    lh, th, ln, lr, phi = warped
    f0 = new_f0
    if t.breath > 0:
        voiced = f0 > _VOICED_HZ
        # per-bin noise power that carries a harmonic's power: harmonics are f0/20 Hz
        # bins apart (24 kHz, 1200-point frames) and a Hann lobe holds ~1.5 bins of power
        spacing = np.where(voiced, f0, 200.0) / 20.0
        # (at 0.6 of the harmonics' power: a whisper is quieter than the voice)
        share = np.log(np.sqrt(0.6 * 1.5 / (2.0 * spacing) * t.breath))[None, :]
        ln = np.logaddexp(ln, lh + share).astype(np.float32)
        if t.breath >= 1.0:
            f0 = np.zeros_like(f0)
            lr = lr - 6.0  # the free-phase branch carries voicing too: mostly silence it
        else:
            lh = lh + np.log1p(-0.85 * t.breath)
    if t.gain != 1.0:
        g = np.float32(np.log(t.gain))
        lh, ln, lr = lh + g, ln + g, lr + g
    return lh, th, ln, lr, phi, f0


def transform_pcm(pcm: np.ndarray, rate: int, t: Transform) -> np.ndarray:
    """Finished int16 audio changed by ``t`` through the WORLD vocoder (same length)."""
    if t.identity or len(pcm) < rate // 50:
        return pcm
    import pyworld

    x = pcm.astype(np.float64) / 32768.0
    period = 5.0
    f0, times = pyworld.dio(x, rate, frame_period=period)
    f0 = pyworld.stonemask(x, f0, times, rate)
    sp = pyworld.cheaptrick(x, f0, times, rate)
    ap = pyworld.d4c(x, f0, times, rate)
    f0 = shape_f0(f0.astype(np.float32), Transform(f0=t.f0, range=t.range)).astype(np.float64)
    if t.formant != 1.0:
        sp = np.ascontiguousarray(_warp(sp.T, t.formant).T)
        ap = np.ascontiguousarray(_warp(ap.T, t.formant).T)
    if t.breath > 0:
        ap = ap + (1.0 - ap) * t.breath
        if t.breath >= 1.0:
            f0 = np.zeros_like(f0)
    y: np.ndarray = pyworld.synthesize(f0, sp, ap, rate, frame_period=period)[: len(pcm)]
    if len(y) < len(pcm):
        y = np.pad(y, (0, len(pcm) - len(y)))
    y *= t.gain
    pcm16: np.ndarray = (np.clip(y, -1.0, 1.0) * 32767).astype(np.int16)
    return pcm16
