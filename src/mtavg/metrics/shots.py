"""Shot boundaries: hard cuts (adaptive threshold) and dissolves/fades, with jump-cut similarity.

Hard cuts follow PySceneDetect's AdaptiveDetector: a frame's HSV content change is compared with the mean of
its neighbours' (2 frames each side), so sustained fast motion or a fade never stands out. Three checks
keep false cuts out: a minimum shot length, a flash test (the frame after is like the frame before), and a
colour-invariant structure test (local luma correlation): a frame whose layout is unchanged while its colours
jump is a colour change *within* a shot (``frames.color_jumps``), not a cut; nor is a frame whose layout is
unchanged once a global shift is undone (a camera jolt). Gradual transitions are frames
that are a blend of the frames ``h`` before and after, whose layouts differ even after undoing a camera
shift (dissolve; fade via black).
Cut similarity (histogram correlation + SSIM on downscaled luma) flags jump cuts: near-identical framing.
``backend="scenedetect"`` runs PySceneDetect's own AdaptiveDetector on the analysis frames instead.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import ndimage

from mtavg.metrics.base import ClipMedia, Record, mean_aggregate, register_metric

WINDOW = 2  # neighbours each side in the rolling average (AdaptiveDetector's window_width)
RATIO = 3.0  # a cut's score must be this many times its neighbours' mean
# Content score floor (0-255 HSV scale). Far below PySceneDetect's 15: a jump cut between near-identical
# framings scores ~4; the ratio and structure tests keep small changes in static shots out.
MIN_SCORE = 3.0
MIN_SHOT_S = 0.4
SAME_LAYOUT = 0.8  # structure similarity above this across a candidate: same framing, only colour changed
FLAT_STD = 2.0  # mean local luma std below this: a flat (black/white) frame with no structure
BLEND_RESIDUAL = 0.35  # a gradual-transition frame is explained by a blend of its neighbours this well
# ... and the whole transition is a blend of its two ends this well (real dissolves 0.08-0.2; pans,
# liquid colour changes and wipes 0.23+)
GRADUAL_FIT = 0.22
GRADUAL_LAYOUT, GRADUAL_SSIM = 0.5, 0.6  # a dissolve's two ends differ in layout (and coarse SSIM)
# A jump cut: same colours (histogram), coarse SSIM high, some layout kept (0.27-0.57 on the demo's jump
# cuts, ~0.15 for a wide -> close cut of a bright studio, ~0 for ordinary cuts).
JUMP_HIST, JUMP_SSIM, JUMP_LAYOUT = 0.9, 0.5, 0.2


def _hsv(rgb: np.ndarray) -> np.ndarray:
    """uint8 RGB (..., 3) -> float32 HSV (..., 3), all channels 0-255 (hue circular). Plain channel maths:
    reductions over a length-3 axis are slow in numpy."""
    r, g, b = (rgb[..., k].astype(np.float32) for k in range(3))
    mx, mn = np.maximum(np.maximum(r, g), b), np.minimum(np.minimum(r, g), b)
    d = mx - mn
    inv = (255 / 6) / np.maximum(d, 1e-6)
    h = np.where(mx == r, (g - b) * inv, np.where(mx == g, (b - r) * inv + 85, (r - g) * inv + 170))
    h = np.where(d > 0, h, 0)
    h = np.where(h < 0, h + 255, h)
    s = d * 255 / np.maximum(mx, 1e-6)
    return np.stack([h, s, mx], -1)


def _content(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """PySceneDetect's content_val: mean |dH| (circular), |dS|, |dV| averaged; a, b (..., h, w, 3) HSV."""
    d = np.abs(a - b)
    d[..., 0] = np.minimum(d[..., 0], 255 - d[..., 0])
    return d.reshape(*d.shape[:-3], -1).mean(-1)


def _hist(hsv: np.ndarray) -> np.ndarray:
    """(T, 192) normalised joint HSV histograms: 12 hues x 4 saturations x 4 values."""
    q = (np.minimum(hsv[..., 0] * (12 / 256), 11).astype(np.int32) * 16
         + np.minimum(hsv[..., 1] / 64, 3).astype(np.int32) * 4
         + np.minimum(hsv[..., 2] / 64, 3).astype(np.int32))
    h = np.stack([np.bincount(x.ravel(), minlength=192) for x in q]).astype(np.float64)
    return h / h.sum(1, keepdims=True)


def structure_similarity(a: np.ndarray, b: np.ndarray, size: int = 7) -> float:
    """Colour-invariant layout similarity of two luma images: local correlation weighted by local contrast.

    ~0.95 for consecutive frames of one shot, ~0.4-0.6 across a jump cut, ~0 across a cut. A flat frame
    (black) has no layout: 1.0 against another flat frame, else 0.0.
    """
    a, b = a.astype(np.float32), b.astype(np.float32)
    ma, mb = ndimage.uniform_filter(a, size), ndimage.uniform_filter(b, size)
    va = np.maximum(ndimage.uniform_filter(a * a, size) - ma * ma, 0)
    vb = np.maximum(ndimage.uniform_filter(b * b, size) - mb * mb, 0)
    flat_a, flat_b = np.sqrt(va).mean() < FLAT_STD, np.sqrt(vb).mean() < FLAT_STD
    if flat_a or flat_b:
        return 1.0 if flat_a and flat_b else 0.0
    cov = ndimage.uniform_filter(a * b, size) - ma * mb
    return float(cov.sum() / (np.sqrt(va * vb).sum() + 1e-6))


def aligned_structure_similarity(a: np.ndarray, b: np.ndarray, max_shift: float = 0.25) -> float:
    """``structure_similarity`` of the overlap after undoing the best global shift of b against a (up to
    ``max_shift`` of each side; Hann-windowed, half-whitened cross-correlation). A pan's two ends are one
    layout displaced (~0.95); a dissolve's are two scenes (~0-0.15)."""
    a, b = a.astype(np.float64), b.astype(np.float64)
    h, w = a.shape
    win = np.outer(np.hanning(h), np.hanning(w))
    cross = np.fft.rfft2((a - a.mean()) * win) * np.conj(np.fft.rfft2((b - b.mean()) * win))
    corr = np.fft.irfft2(cross / (np.sqrt(np.abs(cross)) + 1e-9), a.shape)  # half-whitened: edges count
    my, mx = int(max_shift * h), int(max_shift * w)
    corr[my + 1: h - my] = -np.inf
    corr[:, mx + 1: w - mx] = -np.inf
    dy, dx = np.unravel_index(int(np.argmax(corr)), corr.shape)
    dy, dx = (dy - h if dy > h // 2 else dy), (dx - w if dx > w // 2 else dx)
    return structure_similarity(a[max(dy, 0): h + min(dy, 0), max(dx, 0): w + min(dx, 0)],
                                b[max(-dy, 0): h + min(-dy, 0), max(-dx, 0): w + min(-dx, 0)])


def ssim(a: np.ndarray, b: np.ndarray, width: int = 96) -> float:
    """Mean SSIM of two luma images block-averaged to ~``width`` px wide (small shifts barely count)."""
    k = max(1, a.shape[1] // width)
    h, w = a.shape[0] // k * k, a.shape[1] // k * k

    def down(x: np.ndarray) -> np.ndarray:
        return x[:h, :w].astype(np.float64).reshape(h // k, k, w // k, k).mean((1, 3))

    x, y = down(a), down(b)
    mx, my = ndimage.uniform_filter(x, 7), ndimage.uniform_filter(y, 7)
    vx = ndimage.uniform_filter(x * x, 7) - mx * mx
    vy = ndimage.uniform_filter(y * y, 7) - my * my
    cxy = ndimage.uniform_filter(x * y, 7) - mx * my
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    return float(s.mean())


def _hist_corr(p: np.ndarray, q: np.ndarray) -> float:
    p, q = p - p.mean(), q - q.mean()
    return float((p * q).sum() / (np.sqrt((p * p).sum() * (q * q).sum()) + 1e-12))


def _features(clip: ClipMedia) -> dict[str, np.ndarray]:
    """Downscaled HSV, per-frame content scores (score[i]: frame i-1 -> i) and histograms; cached."""
    if "shot_features" not in clip.extras:
        assert clip.frames is not None
        s = -(-clip.frames.shape[2] // 96)  # ~96 px wide is plenty for frame-difference scores
        hsv = _hsv(clip.frames[:, ::s, ::s])
        score = np.concatenate([[0.0], _content(hsv[1:], hsv[:-1])]) if len(hsv) > 1 else np.zeros(1)
        clip.extras["shot_features"] = {"hsv": hsv, "score": score, "hist": _hist(hsv)}
    return clip.extras["shot_features"]


def _hard_cuts(clip: ClipMedia, min_len: int) -> tuple[list[int], list[dict[str, Any]]]:
    """Frame indices that start a new shot, plus candidates rejected (flash / same layout).

    A transition may take one frame or two (encoders and generators often smear a cut over two frames):
    the two-frame score is the change from frame i-1 to i+1 against the neighbours outside the pair.
    """
    f = _features(clip)
    score, hsv, g = f["score"], f["hsv"], clip.gray
    assert g is not None
    n = len(score)
    skip = np.zeros(n)
    if n > 2:
        skip[1:-1] = _content(hsv[2:], hsv[:-2])  # skip[i]: frame i-1 -> i+1

    def ratio(value: float, nb: np.ndarray) -> float:
        nb = nb[nb >= 0.25 * nb.max()] if nb.size and nb.max() > 0 else nb  # duplicated frames score ~0
        return value / max(float(nb.mean()) if nb.size else 0.0, MIN_SCORE / RATIO)

    cuts: list[int] = []
    rejected: list[dict[str, Any]] = []
    for i in range(max(1, min_len // 2), n):
        if cuts and i - cuts[-1] < min_len:
            continue
        one = score[i] >= MIN_SCORE and ratio(score[i], np.r_[score[max(1, i - WINDOW): i],
                                                                score[i + 1: i + 1 + WINDOW]]) >= RATIO
        # two-frame change against the two-frame changes just outside the pair (like with like)
        two = (not one and i + 1 < n and skip[i] >= MIN_SCORE and min(score[i], score[i + 1]) >= MIN_SCORE / 2
               and ratio(skip[i], np.r_[skip[max(1, i - 1 - WINDOW): max(1, i - 1)],
                                        skip[i + 2: i + 2 + WINDOW]]) >= RATIO)
        if not (one or two):
            continue
        last = i if one else i + 1  # last frame of the transition
        t = round(float(clip.frame_times[i]), 3)
        if last + 1 < n and _content(hsv[i - 1], hsv[last + 1]) < 0.5 * (score[i] if one else skip[i]):
            rejected.append({"time": t, "reason": "flash"})  # the frame after returns to the frame before
            continue
        sim = structure_similarity(g[i - 1], g[last])
        if sim >= SAME_LAYOUT:
            rejected.append({"time": t, "reason": "same layout, colour change", "structure": round(sim, 3)})
            continue
        # A camera jolt on a close-up of fine texture (a guitar neck) decorrelates the frames in place, but
        # they are one layout displaced (aligned ~0.97); jump cuts reframe or zoom (aligned <= 0.6).
        shifted = aligned_structure_similarity(g[i - 1], g[last])
        if shifted >= SAME_LAYOUT:
            rejected.append({"time": t, "reason": "same layout, shifted (camera jolt)",
                             "structure": round(shifted, 3)})
            continue
        cuts.append(i if one or score[i] >= score[i + 1] else i + 1)
    return cuts, rejected


def _gradual(clip: ClipMedia, cuts: Sequence[int], min_len: int) -> list[tuple[int, int]]:
    """(first, last) frame of dissolves/fades: frames that are blends of the frames ``h`` away, between
    endpoints of different layout (a colour grade or a lighting change keeps its layout)."""
    g = clip.gray
    assert g is not None
    k = max(1, g.shape[2] // 64)
    small = g[:, ::k, ::k].reshape(len(g), -1).astype(np.float64)
    h = max(2, int(round(0.25 * clip.fps)))
    hit = np.zeros(len(g), bool)

    def blend(x: np.ndarray, a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
        """(alpha, relative residual) of x ~ (1 - alpha) a + alpha b."""
        d = b - a
        alpha = float(np.clip(((x - a) @ d) / max(float(d @ d), 1e-9), 0, 1))
        return alpha, float(np.abs(x - a - alpha * d).mean() / max(np.abs(d).mean(), 1e-9))

    for i in range(h, len(g) - h):
        if any(i - h < c <= i + h for c in cuts) or np.abs(small[i + h] - small[i - h]).mean() < 8:
            continue  # across a cut, or endpoints too alike for a transition
        alpha, resid = blend(small[i], small[i - h], small[i + h])
        hit[i] = resid < BLEND_RESIDUAL and 0.15 < alpha < 0.85
    out: list[tuple[int, int]] = []
    labels, count = ndimage.label(hit)
    for lab in range(1, count + 1):
        idx = np.flatnonzero(labels == lab)
        a, b = int(idx[0]) - h // 2, int(idx[-1]) + h // 2
        if a < min_len or b > len(g) - 1 - min_len:
            continue  # a fade-in at the start / fade-out at the end separates nothing
        # The whole transition must be blends of its two ends, mixing from one to the other (a pan
        # passes the local test by symmetry, but its middle is no blend of frames this far apart) ...
        fit = [blend(small[j], small[a - 1], small[b + 1]) for j in range(a, b + 1)]
        alphas = [f[0] for f in fit]
        if np.median([f[1] for f in fit]) >= GRADUAL_FIT or max(alphas) - min(alphas) < 0.5:
            continue
        # ... and both layout and coarse SSIM must differ across it (a colour grade keeps its layout),
        # also once the camera's shift is undone: a slow pan over fine texture (foliage, a crowd) mixes
        # neighbouring frames almost linearly and decorrelates its ends, yet they are one layout displaced.
        before, after = g[a - 1], g[b + 1]
        if (structure_similarity(before, after) < GRADUAL_LAYOUT and ssim(before, after) < GRADUAL_SSIM
                and aligned_structure_similarity(before, after) < GRADUAL_LAYOUT):
            out.append((a, b))
    return out


def _scenedetect_cuts(clip: ClipMedia, min_len: int) -> list[int]:
    """PySceneDetect's AdaptiveDetector on the analysis frames (BGR), with its own defaults."""
    from scenedetect import AdaptiveDetector, FrameTimecode

    assert clip.frames is not None
    det = AdaptiveDetector(min_scene_len=min_len)
    cuts: list[int] = []
    for i, frame in enumerate(clip.frames):
        cuts += [int(tc.frame_num) for tc in det.process_frame(FrameTimecode(i, clip.fps),
                                                               np.ascontiguousarray(frame[..., ::-1]))]
    return cuts


def shot_boundaries(clip: ClipMedia, backend: str = "native") -> dict[str, Any]:
    """Boundaries of one clip, cached in ``clip.extras``: {'backend', 'boundaries': [{frame (first frame of
    the new shot), kind (cut/dissolve/fade), span (first, last frame of the transition)}], 'rejected'}."""
    key = f"shots:{backend}"
    if key in clip.extras:
        return clip.extras[key]
    min_len = max(2, int(round(MIN_SHOT_S * clip.fps)))
    rejected: list[dict[str, Any]] = []
    if backend == "scenedetect":
        if (why := _scenedetect_available()) is not True:
            raise RuntimeError(str(why))
        hard, gradual = _scenedetect_cuts(clip, min_len), []
    elif backend == "native":
        hard, rejected = _hard_cuts(clip, min_len)
        gradual = _gradual(clip, hard, min_len)
    else:
        raise ValueError(f"shots: unknown backend {backend!r}")
    bounds = [{"frame": i, "kind": "cut", "span": (i, i)} for i in hard]
    g = clip.gray
    assert g is not None
    for a, b in gradual:  # a gradual transition's boundary is its middle frame
        mid = (a + b + 1) // 2
        if all(abs(mid - x["frame"]) >= min_len for x in bounds):
            dark = float(g[a: b + 1].mean((1, 2)).min()) < 20  # through black: a fade
            bounds.append({"frame": mid, "kind": "fade" if dark else "dissolve", "span": (a, b)})
    out = {"backend": backend, "boundaries": sorted(bounds, key=lambda x: x["frame"]), "rejected": rejected}
    clip.extras[key] = out
    if backend == "native":
        clip.extras["shots"] = out  # what other metrics (frames) read
    return out


def cut_similarity(clip: ClipMedia, before: int, after: int) -> dict[str, float]:
    """How alike the last frame before a boundary and the first after it are (1 = identical)."""
    f, g = _features(clip), clip.gray
    assert g is not None
    return {"hist_corr": round(_hist_corr(f["hist"][before], f["hist"][after]), 3),
            "ssim": round(ssim(g[before], g[after]), 3),
            "structure": round(structure_similarity(g[before], g[after]), 3)}


def shots_metric(clip: ClipMedia, backend: str | None = None) -> Record:
    """Shot boundaries, pacing and jump cuts of one clip (see module docstring).

    ``backend``: "native" (default) or "scenedetect"; None reads $MTAVG_SHOTS_BACKEND.
    """
    backend = backend or os.environ.get("MTAVG_SHOTS_BACKEND") or "native"
    sb = shot_boundaries(clip, backend)
    times, last = clip.frame_times, len(clip.frame_times) - 1
    dur = float(max(clip.duration_s, times[-1] + 1 / clip.fps))
    cuts = []
    for x in sb["boundaries"]:
        a, b = x["span"]
        sim = cut_similarity(clip, max(0, a - 1), min(last, b + (x["kind"] != "cut")))
        jump = (x["kind"] == "cut" and sim["hist_corr"] >= JUMP_HIST and sim["ssim"] >= JUMP_SSIM
                and sim["structure"] >= JUMP_LAYOUT)
        cuts.append({"time": round(float(times[x["frame"]]), 3), "frame": int(x["frame"]), "kind": x["kind"],
                     **sim, "jump_cut": jump})
    lengths = np.diff([0.0, *[c["time"] for c in cuts], dur])
    return {
        "backend": backend,
        "cut_times": [c["time"] for c in cuts],
        "n_shots": len(cuts) + 1,
        "shots_per_minute": round(60.0 * (len(cuts) + 1) / dur, 2),
        "mean_shot_s": round(float(lengths.mean()), 3),
        "min_shot_s": round(float(lengths.min()), 3),
        "cuts": cuts,
        "jump_cuts": [c["time"] for c in cuts if c["jump_cut"]],
        "n_jump_cuts": sum(c["jump_cut"] for c in cuts),
        "n_gradual": sum(c["kind"] != "cut" for c in cuts),
        "rejected": sb["rejected"][:20],  # candidates turned down (flash, same layout): for inspection
        "n_rejected": len(sb["rejected"]),
    }


def _aggregate(records: Sequence[Record]) -> dict[str, Any]:
    out = mean_aggregate(records)
    out["clips_with_jump_cuts"] = sum(1 for r in records if r.get("n_jump_cuts"))
    return out


def _scenedetect_available() -> bool | str:
    try:
        import scenedetect  # noqa: F401
    except ImportError:
        return "scenedetect not installed (pip install 'mtavg-bench[scenes]')"
    return True


register_metric("shots", shots_metric, aggregate=_aggregate, needs=("video",),
                description="shot cuts/dissolves (adaptive HSV score), shots per minute, jump cuts; "
                            "MTAVG_SHOTS_BACKEND=scenedetect uses PySceneDetect (extra [scenes])")
