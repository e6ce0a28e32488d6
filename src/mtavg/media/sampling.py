"""Which frames to take: target times for a sampling request, and the output frame size."""

from __future__ import annotations

import math

import numpy as np


def frame_times_for(duration_s: float, *, fps: float | None, n_frames: int | None, max_frames: int) -> np.ndarray:
    """Target times (s): ``n_frames`` segment centres, or every 1/fps s from 0; at most ``max_frames``.

    Segment centres rather than endpoints so the last target is inside the clip, never at its end.
    """
    if n_frames is None and fps is None:
        n_frames = 8
    if max_frames < 1 or (n_frames is not None and n_frames < 1) or (fps is not None and fps <= 0):
        raise ValueError("n_frames, fps and max_frames must be positive")
    if duration_s <= 0:  # unknown length: the first frame is all we can promise
        return np.zeros(1)
    if n_frames is not None:
        n = min(n_frames, max_frames)
        return (np.arange(n) + 0.5) * (duration_s / n)
    assert fps is not None
    times = np.arange(math.ceil(duration_s * fps - 1e-9)) / fps
    if len(times) > max_frames:  # evenly thin, keeping the first and last
        times = times[np.round(np.linspace(0, len(times) - 1, max_frames)).astype(int)]
    return times


def fit_pixels(width: int, height: int, max_pixels: int | None) -> tuple[int, int]:
    """Keep aspect, even dims, width*height <= max_pixels (no upscaling; odd sizes lose one row/column)."""
    if max_pixels is None or width * height <= max_pixels:
        return max(2, width // 2 * 2), max(2, height // 2 * 2)
    scale = math.sqrt(max_pixels / (width * height))
    return max(2, int(width * scale) // 2 * 2), max(2, int(height * scale) // 2 * 2)
