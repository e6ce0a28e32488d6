"""Synthetic clips with audio-visual events at known times, for the offset estimator's tests and validation."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mtavg.metrics.base import ClipMedia

SR = 16000


def synthetic_clip(frames: np.ndarray, fps: float, audio: np.ndarray | None, sample_rate: int = SR) -> ClipMedia:
    """A decoded clip from arrays (audio clipped to [-1, 1]); no file behind it."""
    return ClipMedia(path=Path("synthetic.mp4"), frames=frames, frame_times=np.arange(len(frames)) / fps, fps=fps,
                     audio=None if audio is None else np.clip(audio, -1, 1).astype(np.float32),
                     sample_rate=sample_rate, duration_s=len(frames) / fps)


def flash_click(shift: float, seed: int = 0, fps: float = 24.0, dur: float = 8.0, n_events: int = 9,
                cuts: tuple[float, ...] = ()) -> ClipMedia:
    """One-frame white squares at random places and times; a click ``shift`` s after each (+: audio late).
    ``cuts``: from each of these times on, the picture is replaced (luma inverted) -- a hard cut."""
    rng = np.random.default_rng(seed)
    n, h, w = int(dur * fps), 72, 96
    frames = (40 + rng.integers(0, 3, (n, h, w, 3))).astype(np.uint8)
    audio = 0.01 * rng.standard_normal(int(dur * SR))
    for t in np.sort(rng.uniform(0.5, dur - 0.5, n_events)):
        k = int(np.ceil(t * fps))
        y, x = rng.integers(0, h - 20), rng.integers(0, w - 20)
        frames[k, y:y + 20, x:x + 20] = 230
        i = int(round((k / fps + shift) * SR))
        if 0 <= i < len(audio) - 400:
            audio[i:i + 400] += 0.5 * rng.standard_normal(400) * np.exp(-np.arange(400) / 60)
    for c in cuts:
        frames[int(c * fps):] = 255 - frames[int(c * fps):]
    return synthetic_clip(frames, fps, audio)
