"""Time-stretching and resampling on (channels, samples) arrays, in numpy/scipy (no librosa, no torch).

``time_stretch`` is WSOLA (waveform-similarity overlap-add, Verhelst & Roelands 1993): Hann windows at a
fixed synthesis hop, each taken from near its nominal analysis position at the offset whose waveform
best continues the previous window. It keeps the pitch and changes the duration; ``resample`` changes
both. A pitch shift is the two in a row (stretch by r, then resample by 1/r).
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
from scipy.signal import fftconvolve, resample_poly

#: WSOLA window: 46 ms spans two periods of a 44 Hz tone (the lowest notes of a bass guitar) and is
#: short enough that speech onsets are not smeared.
WINDOW_S = 0.046
#: How far a window may move from its nominal position to find the best continuation.
TOLERANCE_S = 0.012


def resample(x: np.ndarray, ratio: float, max_denominator: int = 2000) -> np.ndarray:
    """Resample by ``ratio`` (output length ~ input length x ratio) with a polyphase filter.

    The ratio is taken as a fraction with denominator <= ``max_denominator``: exact to 0.05 %.
    """
    if ratio <= 0:
        raise ValueError(f"resample ratio must be positive, got {ratio}")
    frac = Fraction(ratio).limit_denominator(max_denominator)
    if frac == 1:
        return np.array(x, dtype=np.float32, copy=True)
    return resample_poly(x, frac.numerator, frac.denominator, axis=-1).astype(np.float32)


def time_stretch(x: np.ndarray, rate: float, sample_rate: int) -> np.ndarray:
    """Play ``x`` (channels, n) ``rate`` times as fast, keeping the pitch: length ~ n / rate."""
    if rate <= 0:
        raise ValueError(f"stretch rate must be positive, got {rate}")
    x = np.atleast_2d(np.asarray(x, dtype=np.float32))
    n_in = x.shape[1]
    n_out = int(round(n_in / rate))
    if abs(rate - 1.0) < 1e-9:
        return x.copy()
    size = max(64, int(round(WINDOW_S * sample_rate)) // 2 * 2)
    hop = size // 2  # Hann at 50 % overlap sums to one
    tol = int(round(TOLERANCE_S * sample_rate))
    window = np.hanning(size + 1)[:size].astype(np.float32)  # periodic Hann: exact constant overlap-add
    # Output window k sits at k * hop and is taken from near input position (k - 1) * hop * rate: output
    # sample ``hop`` is input sample 0, so the first window's fade-in falls before the part we keep.
    n_frames = (n_out + hop) // hop + 2
    lead = int(np.ceil(hop * rate)) + tol
    tail = int(np.ceil((n_frames * hop) * rate)) - n_in + size + 2 * tol + hop
    xp = np.pad(x, ((0, 0), (lead, max(tail, 0))))
    guide = xp.mean(axis=0)
    out = np.zeros((x.shape[0], n_frames * hop + size), np.float32)
    prev = 0
    for k in range(n_frames):
        nominal = lead + int(round((k - 1) * hop * rate))
        if k == 0:
            best = nominal
        else:
            # The natural continuation of the previous window, one synthesis hop later in the input.
            template = guide[prev + hop: prev + hop + size]
            lo = max(0, nominal - tol)
            best = lo + _best_offset(guide[lo: nominal + tol + size], template)
        out[:, k * hop: k * hop + size] += xp[:, best: best + size] * window
        prev = best
    return np.ascontiguousarray(out[:, hop: hop + n_out])


def _best_offset(region: np.ndarray, template: np.ndarray) -> int:
    """Offset in ``region`` where ``template`` fits best (normalised cross-correlation)."""
    m = len(template)
    if len(region) <= m:
        return 0
    corr = fftconvolve(region, template[::-1], mode="valid")
    energy = np.sqrt(np.maximum(fftconvolve(region * region, np.ones(m, np.float32), mode="valid"), 1e-12))
    return int(np.argmax(corr / energy))


def fit_length(x: np.ndarray, n: int) -> np.ndarray:
    """Trim or zero-pad (channels, m) to (channels, n)."""
    if x.shape[1] >= n:
        return np.ascontiguousarray(x[:, :n])
    return np.pad(x, ((0, 0), (0, n - x.shape[1])))


def pitch_shift(x: np.ndarray, semitones: float, sample_rate: int) -> np.ndarray:
    """Shift the pitch by ``semitones`` and keep the duration (stretch by r = 2^(s/12), resample by 1/r)."""
    r = 2.0 ** (semitones / 12.0)
    n = np.atleast_2d(x).shape[1]
    frac = Fraction(1.0 / r).limit_denominator(2000)
    r_exact = 1.0 / float(frac)  # stretch by the ratio the resampler really applies: pitch is exact
    longer = time_stretch(x, 1.0 / r_exact, sample_rate)
    return fit_length(resample(longer, float(frac)), n)
