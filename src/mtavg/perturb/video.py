"""Picture perturbations as streaming ``VideoOp`` s (one frame at a time, looking back only).

Freeze and stutter keep every frame's timestamp and show an earlier picture instead, so the clip's
length and the soundtrack's timing are unchanged; colour cast and blur change pixels only.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mtavg.perturb.io import VideoOp


class Freeze(VideoOp):
    """The picture on screen at ``start_s`` stays for ``duration_s`` (the sound goes on)."""

    name = "freeze"

    def __init__(self, *, start_s: float, duration_s: float) -> None:
        if start_s < 0 or duration_s <= 0:
            raise ValueError(f"freeze needs start_s >= 0 and duration_s > 0, got {start_s}, {duration_s}")
        self.start_s, self.end_s = start_s, start_s + duration_s
        self.held: np.ndarray | None = None
        self.frozen = 0

    def __call__(self, index: int, t: float, frame: np.ndarray) -> np.ndarray:
        if self.start_s <= t < self.end_s:
            if self.held is None:
                self.held = frame
            else:
                self.frozen += 1
                return self.held
        return frame

    def facts(self) -> dict[str, Any]:
        return {"frames_held": self.frozen}


class Stutter(VideoOp):
    """Frame drop: of every ``period`` frames the last ``hold`` repeat the one before them.

    period 2, hold 1 halves the motion rate (24 -> 12 fps); period 6, hold 2 is an irregular judder.
    """

    name = "stutter"

    def __init__(self, *, period: int, hold: int) -> None:
        if period < 2 or not 1 <= hold < period:
            raise ValueError(f"stutter needs period >= 2 and 1 <= hold < period, got {period}, {hold}")
        self.period, self.hold = int(period), int(hold)
        self.last: np.ndarray | None = None
        self.dropped = 0

    def __call__(self, index: int, t: float, frame: np.ndarray) -> np.ndarray:
        if index % self.period >= self.period - self.hold and self.last is not None:
            self.dropped += 1
            return self.last
        self.last = frame
        return frame

    def facts(self) -> dict[str, Any]:
        return {"frames_dropped": self.dropped}


class ColourCast(VideoOp):
    """Scale the R, G, B channels by ``gains`` (e.g. [1.2, 1.0, 0.8] is a warm cast)."""

    name = "colour_cast"

    def __init__(self, *, gains: list[float]) -> None:
        if len(gains) != 3 or min(gains) <= 0:
            raise ValueError(f"colour cast needs three positive gains, got {gains}")
        levels = np.arange(256, dtype=np.float32)
        # One lookup table per channel: 4x faster than float arithmetic on every pixel.
        self.luts = [np.clip(np.round(levels * g), 0, 255).astype(np.uint8) for g in gains]

    def __call__(self, index: int, t: float, frame: np.ndarray) -> np.ndarray:
        out = np.empty_like(frame)
        for c, lut in enumerate(self.luts):
            out[..., c] = lut[frame[..., c]]
        return out


class Blur(VideoOp):
    """Gaussian blur, ``sigma_px`` at the clip's own resolution (OpenCV when installed, else SciPy)."""

    name = "blur"

    def __init__(self, *, sigma_px: float) -> None:
        if sigma_px <= 0:
            raise ValueError(f"blur needs sigma_px > 0, got {sigma_px}")
        self.sigma = float(sigma_px)
        try:
            import cv2

            self._cv2 = cv2
        except ImportError:
            self._cv2 = None

    def __call__(self, index: int, t: float, frame: np.ndarray) -> np.ndarray:
        if self._cv2 is not None:
            return self._cv2.GaussianBlur(frame, (0, 0), self.sigma, borderType=self._cv2.BORDER_REFLECT)
        from scipy.ndimage import gaussian_filter

        return gaussian_filter(frame, sigma=(self.sigma, self.sigma, 0), mode="reflect", truncate=3.0)
