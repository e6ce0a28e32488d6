"""Plucked-string test signals with exact pitch (Karplus-Strong), for the pitch metric's tests and validation."""

from __future__ import annotations

import numpy as np
from scipy import signal

SR = 16000


def karplus_strong(f0: float, seconds: float, rng: np.random.Generator, decay: float = 0.997) -> np.ndarray:
    """A plucked string (unit peak): a smoothed noise burst circulating through a one-period delay line and a two-tap
    average. Rendered at the rate where the loop (n + 1/2 samples) is exactly one period, then resampled,
    so the pitch is exact."""
    n = max(64, int(np.ceil(3 * SR / f0)))
    rate = f0 * (n + 0.5)
    total = int(seconds * rate)
    y = np.empty(total + n + 1)
    # a pick is softer than white noise: smoothing the burst over 1/8 period keeps ~8 strong harmonics
    burst = np.convolve(rng.uniform(-1, 1, n + 1), np.hanning(n // 8 + 2), mode="same")
    y[: n + 1] = burst - burst.mean()
    for start in range(n + 1, len(y), n):  # each period depends only on the one before
        k = np.arange(start, min(start + n, len(y)))
        y[k] = decay * 0.5 * (y[k - n] + y[k - n - 1])
    out = signal.resample(y[:total], int(round(seconds * SR)))
    return out / np.abs(out).max()


def pink_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    spec = np.fft.rfft(rng.standard_normal(n)) / np.sqrt(np.maximum(np.fft.rfftfreq(n, 1 / SR), 20.0))
    x = np.fft.irfft(spec, n)
    return x / np.sqrt(np.mean(x**2))


def pluck_clip(freqs: tuple[float, ...], seed: int, *, snr_db: float = 30.0, hum_db: float | None = None,
               times: tuple[float, ...] = (0.5, 2.3, 4.1, 5.9), seconds: float = 8.0) -> np.ndarray:
    """Four plucks (each sounding all ``freqs`` at once), peak 0.3, pink noise ``snr_db`` under the pluck
    RMS and optionally a 60 Hz hum ``hum_db`` under the peak."""
    rng = np.random.default_rng(seed)
    x = np.zeros(int(seconds * SR))
    for t in times:
        p = sum(karplus_strong(f, 1.8, rng) * rng.uniform(0.7, 1.0) for f in freqs)
        a = int(t * SR)
        x[a: a + len(p)] += p[: len(x) - a]
    x *= 0.3 / np.abs(x).max()
    x += np.sqrt(np.mean(x[x != 0] ** 2)) * 10 ** (-snr_db / 20) * pink_noise(len(x), rng)
    if hum_db is not None:
        x += 0.3 * 10 ** (hum_db / 20) * np.sin(2 * np.pi * 60 * np.arange(len(x)) / SR)
    return x
