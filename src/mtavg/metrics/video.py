"""Picture-signal metrics of one clip (``frames``): frozen frames, flicker, sharpness, colour drift and jumps.

Everything is measured on the analysis decode (``ClipMedia.gray`` / ``frames``) and, where a cut would
distort it, per shot: shot boundaries come from :mod:`mtavg.metrics.shots` (cached in ``clip.extras``), and
transition frames (dissolves) are left out. Colour is mean CIE Lab per frame; colour differences are CIE76
delta-E (Euclidean in Lab; ~2.3 is a just-noticeable difference). The motion envelope (mean |luma frame
difference|) is left in ``clip.extras["motion_envelope"]`` as (times, values) for the audio-video offset.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import ndimage

from mtavg.metrics.base import ClipMedia, Record, mean_aggregate, register_metric
from mtavg.metrics.shots import shot_boundaries

DUP_DIFF = 0.5  # mean |luma difference| below this: the frame may repeat the last (codec noise ~0.1-0.3)
# ... and no 8x8 block changed more than this on average: a talking mouth in a still shot (~10-35 in one
# block) is not a frozen frame, while re-encoded duplicates stay at ~0.3-5.
DUP_BLOCK = 8.0
FLAT_STD = 4.0  # luma std below this: a black/flat frame, left out of sharpness
FLICKER_TREND_S = 0.3  # running median of this length is the slow trend flicker is measured against
MIN_DRIFT_SHOT_S = 1.0  # shots shorter than this give no brightness/colour slope
JUMP_WINDOW_S = 0.3  # stable stretch on each side of a colour jump
JUMP_RAMP_S = 0.5  # a change completed within this long counts as abrupt
JUMP_MIN_DE = 5.0  # mean-colour jump (delta-E) worth reporting: clearly visible on most of the frame
JUMP_STABLE = 0.5  # each side may move at most this fraction of the jump itself
# ... and it must reach most of the picture: an object entering the frame changes the mean colour too.
JUMP_COVERAGE = 0.5  # fraction of the 4x4 tiles whose own colour moves by >= JUMP_MIN_DE
GRID = 4


def rgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """uint8 sRGB (..., 3) -> CIE Lab (D65), float32."""
    c = rgb.astype(np.float32) / 255
    c = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    m = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]], np.float32)
    xyz = c @ m.T / np.array([0.95047, 1.0, 1.08883], np.float32)
    f = np.where(xyz > 0.008856, np.cbrt(xyz), 7.787 * xyz + 16 / 116)
    return np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], -1)


def tile_lab(clip: ClipMedia) -> np.ndarray:
    """(T, 4, 4, 3) mean Lab of a 4x4 grid of tiles per frame (pixels subsampled 1:16: means need few)."""
    if "tile_lab" not in clip.extras:
        assert clip.frames is not None
        lab = rgb_to_lab(clip.frames[:, ::4, ::4])
        t, h, w = lab.shape[:3]
        lab = lab[:, : h // GRID * GRID, : w // GRID * GRID].reshape(t, GRID, h // GRID, GRID, w // GRID, 3)
        clip.extras["tile_lab"] = lab.mean((2, 4)).astype(np.float64)
    return clip.extras["tile_lab"]


def shot_segments(clip: ClipMedia) -> list[tuple[int, int]]:
    """[start, end) frame ranges of the shots, transition frames (dissolves/fades) excluded."""
    n = len(clip.frame_times)
    segs, start = [], 0
    for b in shot_boundaries(clip)["boundaries"]:
        first, last = b["span"]
        segs.append((start, first))
        start = last + 1 if b["kind"] != "cut" else first
    segs.append((start, n))
    return [(a, b) for a, b in segs if b > a]


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) index ranges where ``mask`` is True."""
    labels, count = ndimage.label(mask)
    return [(int(s.start), int(s.stop)) for (s,) in ndimage.find_objects(labels)] if count else []


def _frozen(diff: np.ndarray, block: np.ndarray, times: np.ndarray, fps: float) -> dict[str, Any]:
    """Duplicated frames (diff[k]: frame k -> k+1) and the longest run showing one picture."""
    low = diff < DUP_DIFF
    dup = low & (block < DUP_BLOCK)
    runs = _runs(dup)  # run (a, b) of diffs: frames a .. b show one picture
    longest = max(runs, key=lambda r: r[1] - r[0], default=None)
    return {
        "dup_ratio": round(float(dup.mean()), 4) if len(dup) else 0.0,
        "low_motion_ratio": round(float(low.mean()), 4) if len(low) else 0.0,  # mean criterion alone
        "longest_frozen_s": round((longest[1] - longest[0] + 1) / fps, 3) if longest else 0.0,
        "longest_frozen_at": round(float(times[longest[0]]), 3) if longest else None,
    }


def _frame_diffs(gray: np.ndarray, k: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Per frame pair: mean |luma difference|, and the largest mean over any k x k block (one pass)."""
    if len(gray) < 2:
        return np.zeros(0), np.zeros(0)
    d = np.abs(np.diff(gray, axis=0))
    t, h, w = d.shape
    blocks = d[:, : h // k * k, : w // k * k].reshape(t, h // k, k, w // k, k).mean((2, 4))
    return d.mean((1, 2)).astype(np.float64), blocks.reshape(t, -1).max(1)


def _flicker(luma: np.ndarray, segs: Sequence[tuple[int, int]], fps: float) -> float | None:
    """Std of per-frame mean luma around its running median, within shots (cuts never count)."""
    size = max(3, int(round(FLICKER_TREND_S * fps)) | 1)
    res = [luma[a:b] - ndimage.median_filter(luma[a:b], size, mode="nearest")
           for a, b in segs if b - a >= size]
    return round(float(np.concatenate(res).std()), 3) if res else None


def _sharpness(gray: np.ndarray) -> np.ndarray:
    """Variance of the 4-neighbour Laplacian per frame (higher = sharper; depends on resolution)."""
    lap = (gray[:, 1:-1, :-2] + gray[:, 1:-1, 2:] + gray[:, :-2, 1:-1] + gray[:, 2:, 1:-1]
           - 4 * gray[:, 1:-1, 1:-1])
    return lap.reshape(len(gray), -1).var(axis=1)


def _drift(luma: np.ndarray, lab: np.ndarray, times: np.ndarray, segs: Sequence[tuple[int, int]],
           fps: float) -> list[dict[str, float]]:
    """Per shot (>= MIN_DRIFT_SHOT_S): least-squares luma slope (levels/s) and Lab slope magnitude (dE/s)."""
    out = []
    for a, b in segs:
        if (b - a) / fps < MIN_DRIFT_SHOT_S:
            continue
        t = times[a:b] - times[a:b].mean()
        slope = (t @ (np.c_[luma[a:b], lab[a:b]] - np.c_[luma[a:b], lab[a:b]].mean(0))) / (t @ t)
        out.append({"start_s": round(float(times[a]), 3), "end_s": round(float(times[b - 1]), 3),
                    "luma_per_s": round(float(slope[0]), 3),
                    "de_per_s": round(float(np.linalg.norm(slope[1:])), 3)})
    return out


def color_jumps(tiles: np.ndarray, times: np.ndarray, segs: Sequence[tuple[int, int]],
                fps: float) -> list[dict[str, float]]:
    """Abrupt mean-colour changes inside shots: a stable stretch, a change completed within JUMP_RAMP_S of at
    least JUMP_MIN_DE over most of the picture, then a stable stretch again (a slow drift, constant motion
    or an object walking in does not qualify). ``tiles``: (T, 4, 4, 3) Lab from :func:`tile_lab`."""
    lab = tiles.mean((1, 2))
    w, g = max(2, int(round(JUMP_WINDOW_S * fps))), max(1, int(round(JUMP_RAMP_S * fps)))
    step = np.r_[0.0, np.linalg.norm(np.diff(lab, axis=0), axis=1)]  # step[k]: frame k-1 -> k
    out: list[dict[str, float]] = []
    for a, b in segs:
        # d[t]: colour after a gap of g frames vs before frame t; a step at s lights up t in [s - g, s]
        d = np.zeros(b - a)
        for t in range(a + w, b - g - w + 1):
            d[t - a] = np.linalg.norm(lab[t + g: t + g + w].mean(0) - lab[t - w: t].mean(0))
        for r0, r1 in _runs(d >= JUMP_MIN_DE):
            lo, hi = a + r0, min(b - 1, a + r1 - 1 + g)  # frames that may hold the change
            c = step[lo: hi + 1]
            big = np.flatnonzero(c >= 0.3 * c.max()) + lo
            s, e = int(big[0]), int(big[-1])  # first and last frame of the change
            if e - s + 1 > g + 1 or s - w < a or e + 1 + w > b:
                continue
            before, after = lab[s - w: s], lab[e + 1: e + 1 + w]
            mag = float(np.linalg.norm(after.mean(0) - before.mean(0)))
            spread = max(np.linalg.norm(before[-1] - before[0]), np.linalg.norm(after[-1] - after[0]))
            tile_de = np.linalg.norm(tiles[e + 1: e + 1 + w].mean(0) - tiles[s - w: s].mean(0), axis=-1)
            coverage = float((tile_de >= JUMP_MIN_DE).mean())
            if mag < JUMP_MIN_DE or spread > JUMP_STABLE * mag or coverage < JUMP_COVERAGE:
                continue
            t_mid = float((times[s: e + 1] * step[s: e + 1]).sum() / max(step[s: e + 1].sum(), 1e-9))
            dl = after.mean(0) - before.mean(0)
            if out and abs(out[-1]["time"] - t_mid) < JUMP_RAMP_S:
                continue  # one change seen from two overlapping runs
            out.append({"time": round(t_mid, 3), "start_s": round(float(times[s]), 3),
                        "end_s": round(float(times[e]), 3), "delta_e": round(mag, 2), "coverage": coverage,
                        "d_lightness": round(float(dl[0]), 2), "d_a": round(float(dl[1]), 2),
                        "d_b": round(float(dl[2]), 2)})
    return out


def motion_envelope(clip: ClipMedia) -> tuple[np.ndarray, np.ndarray]:
    """(times of frames 1..T-1, mean |luma difference| to the previous frame); cached in extras."""
    if "motion_envelope" not in clip.extras:
        assert clip.gray is not None
        clip.extras["motion_envelope"] = (np.asarray(clip.frame_times[1:], float), _frame_diffs(clip.gray)[0])
    return clip.extras["motion_envelope"]


def _series(times: np.ndarray, luma: np.ndarray, lab: np.ndarray, per_s: float = 4.0) -> dict[str, list]:
    """Per-frame luma and mean Lab, thinned to ~``per_s`` points a second for the record."""
    step = max(1, int(round(len(times) / max(1.0, (times[-1] - times[0]) * per_s))))
    idx = np.arange(0, len(times), step)
    return {"times": np.round(times[idx], 3).tolist(), "luma": np.round(luma[idx], 2).tolist(),
            **{k: np.round(lab[idx, j], 2).tolist() for j, k in enumerate(("L", "a", "b"))}}


def frames_metric(clip: ClipMedia) -> Record:
    """The ``frames`` record of one clip (see module docstring)."""
    g = clip.gray
    assert g is not None
    times, fps = np.asarray(clip.frame_times, float), float(clip.fps)
    diff, block = _frame_diffs(g)
    clip.extras.setdefault("motion_envelope", (times[1:].copy(), diff))
    luma = g.mean((1, 2)).astype(np.float64)
    tiles = tile_lab(clip)
    lab = tiles.mean((1, 2))
    segs = shot_segments(clip)
    sharp = _sharpness(g[:, ::2, ::2] if g.shape[2] > 400 else g)  # keep the cost flat for big decodes
    textured = g.reshape(len(g), -1).std(axis=1) >= FLAT_STD
    sharp_t = np.where(textured, sharp, np.nan) if textured.any() else sharp
    drift = _drift(luma, lab, times, segs, fps)
    worst = max(drift, key=lambda s: abs(s["luma_per_s"]), default=None)
    jumps = color_jumps(tiles, times, segs, fps)
    return {
        **_frozen(diff, block, times, fps),
        "flicker": _flicker(luma, segs, fps),
        "sharpness_mean": round(float(np.nanmean(sharp_t)), 2),
        "sharpness_min": round(float(np.nanmin(sharp_t)), 2),
        "sharpness_min_at": round(float(times[int(np.nanargmin(sharp_t))]), 3),
        "luma_mean": round(float(luma.mean()), 2),
        "brightness_drift": worst["luma_per_s"] if worst else None,  # steepest in-shot slope, levels/s
        "color_drift": max((s["de_per_s"] for s in drift), default=None),  # steepest in-shot dE/s
        "drift_by_shot": drift,
        "color_jumps": jumps,
        "n_color_jumps": len(jumps),
        "motion_mean": round(float(diff.mean()), 3) if len(diff) else 0.0,
        "n_shots": len(shot_boundaries(clip)["boundaries"]) + 1,
        "series": _series(times, luma, lab),  # per-frame luma / mean Lab, thinned to ~4 per second
    }


def _aggregate(records: Sequence[Record]) -> dict[str, Any]:
    out = mean_aggregate(records)
    out["clips_with_color_jumps"] = sum(1 for r in records if r.get("n_color_jumps"))
    return out


register_metric("frames", frames_metric, aggregate=_aggregate, needs=("video",),
                description="frozen frames, flicker, sharpness, in-shot brightness/colour drift and colour "
                            "jumps; leaves the motion envelope for av_offset")
