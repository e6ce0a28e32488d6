"""Shot detector against camera motion on fine texture: slow pans and jolts are no boundaries, edits are."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from mtavg.metrics.base import ClipMedia
from mtavg.metrics.shots import aligned_structure_similarity, shots_metric, structure_similarity

FPS = 24.0
H, W = 108, 192


def texture(seed: int, fine: float = 3.0, width: int = 3 * W + 80) -> np.ndarray:
    """Blobs at three scales (finest ``fine`` px), RGB with a random tint: foliage, a crowd, a fretboard."""
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal((H + 40, width))
    img = sum(ndimage.gaussian_filter(noise, s) * s for s in (fine, 2 * fine, 12))
    img = (img - img.mean()) / img.std() * 45 + 120
    return np.stack([img * t for t in rng.uniform(0.6, 1.3, 3)], -1)


def take(scene: np.ndarray, xs: np.ndarray, ys: np.ndarray | None = None) -> np.ndarray:
    ys = np.full(len(xs), 20) if ys is None else ys
    return np.stack([scene[int(y): int(y) + H, int(x): int(x) + W] for x, y in zip(xs, ys, strict=True)])


def clip(frames: np.ndarray, seed: int = 0) -> ClipMedia:
    rng = np.random.default_rng(seed)
    frames = np.clip(frames + rng.normal(0, 1.5, frames.shape), 0, 255).astype(np.uint8)  # sensor noise
    return ClipMedia(path=Path("synthetic.mp4"), frames=frames, frame_times=np.arange(len(frames)) / FPS,
                     fps=FPS, audio=None, sample_rate=16000, duration_s=len(frames) / FPS)


@pytest.mark.parametrize("seed", [2, 3])
def test_slow_pan_over_fine_texture_is_no_dissolve(seed):
    """Neighbouring frames of a slow pan over fine texture mix almost linearly (a 'blend') and the ends
    decorrelate, but they are one layout displaced."""
    frames = take(texture(seed), np.linspace(0, 60, 72))  # 0.85 px per frame for 3 s
    r = shots_metric(clip(frames, seed))
    assert r["n_shots"] == 1, r["cuts"]


def test_camera_jolt_on_a_textured_close_up_is_no_cut():
    scene = texture(5, fine=2.0)
    xs = np.r_[np.full(40, 30.0), np.full(40, 34.0)]  # the camera jolts 4 px sideways and 2 px down
    ys = np.r_[np.full(40, 20), np.full(40, 22)]
    r = shots_metric(clip(take(scene, xs, ys)))
    assert r["n_shots"] == 1, r["cuts"]
    assert r["rejected"] and all(x["reason"] == "same layout, shifted (camera jolt)" and x["structure"] > 0.9
                                 and abs(x["time"] - 40 / FPS) <= 1.01 / FPS for x in r["rejected"])


def test_aligned_structure_undoes_a_shift_but_not_a_scene_change():
    a, b = texture(7)[20: 20 + H, 30: 30 + W].mean(-1), texture(8)[20: 20 + H, 30: 30 + W].mean(-1)
    shifted = texture(7)[26: 26 + H, 45: 45 + W].mean(-1)
    assert structure_similarity(a, shifted) < 0.3 < 0.95 < aligned_structure_similarity(a, shifted)
    assert aligned_structure_similarity(a, b) < 0.2
    assert aligned_structure_similarity(a, a) == pytest.approx(1.0)


def test_edit_with_cuts_a_dissolve_and_a_whip_pan():
    """slow pan | cut | locked-off | 0.5 s dissolve | whip pan (two frame widths in 0.4 s) | cut | pan."""
    scenes = [texture(s) for s in (11, 12, 13, 14)]
    a = take(scenes[0], np.linspace(0, 20, 38))
    b = take(scenes[1], np.full(50, 40.0))
    whip = 30 + 2 * W * (0.5 - 0.5 * np.cos(np.linspace(0, np.pi, 10)))
    c = take(scenes[2], np.r_[np.full(31, 30.0), whip, np.full(19, 30 + 2 * W)])
    e = take(scenes[3], np.linspace(100, 130, 38))
    w = np.linspace(0, 1, 14)[1:-1, None, None, None]
    frames = np.concatenate([a, b[:-12], b[-12:] * (1 - w) + c[:12] * w, c[12:], e])
    r = shots_metric(clip(frames))
    assert [c["kind"] for c in r["cuts"]] == ["cut", "dissolve", "cut"], r["cuts"]
    assert r["cut_times"][0] == round(38 / FPS, 3) and r["cut_times"][2] == round((38 + 38 + 60) / FPS, 3)
    assert (38 + 38) / FPS <= r["cut_times"][1] <= (38 + 38 + 12) / FPS
