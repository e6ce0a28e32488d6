"""Audio-video offset: when does the sound happen relative to the picture?

Cross-correlates an audio onset envelope (log band-energy spectral flux) with visual envelopes at a
common 100 Hz rate: global luma motion, the best-correlating spatial tiles (chosen on one half of the
clip, scored on the other, so the choice cannot manufacture a peak), and mouth opening when
``mtavg.metrics.lips`` finds faces. ``offset_s`` > 0 means the audio lags the video.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from mtavg.metrics.base import ClipMedia, Record, register_metric

RATE = 100.0  # Hz, common rate of every envelope
MAX_LAG_S = 1.0
MAX_LAG_LIMIT_S = 2.0
GRID = (4, 4)  # spatial tiles (rows, cols): a mouth or a drum hit is a few percent of the frame
TOP_TILES = 2  # tiles kept per half: few, to limit how much the selection can fit noise
DETREND_S = 0.6  # slow co-variation (music swelling while the camera drifts) says nothing about lag
SMOOTH_S = 0.02  # Gaussian sigma on both envelopes: stable parabolic peak interpolation
EXCLUDE_S = 0.15  # half-width of the main peak, excluded from the sidelobe statistics
# Calibrated on null pairs (audio of one clip with the picture of another; see benchmarks/validate_metrics.py).
CONF_THRESHOLD = 6.0
AMBIGUITY_MAX = 0.7  # second peak / main peak (both above the median): periodic content is ambiguous
MIN_PEAK_R = 0.1
COMPRESS = "log"
FLOOR = 1e-4
HALF = True
MID = True
N_SUR = 24
SCALES = [(0.02, 0.6)]


# ---------------------------------------------------------------- envelopes
def _smooth(x: np.ndarray, sigma: float) -> np.ndarray:
    if sigma <= 0:
        return x
    r = int(np.ceil(3 * sigma))
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    return np.convolve(x, k / k.sum(), mode="same")


def _detrend(x: np.ndarray, width: int) -> np.ndarray:
    """Subtract a centred moving average (NaN-aware) of ``width`` samples."""
    ok = np.isfinite(x)
    k = np.ones(max(1, width))
    num = np.convolve(np.where(ok, x, 0.0), k, mode="same")
    den = np.convolve(ok.astype(float), k, mode="same")
    return x - num / np.maximum(den, 1)


def _band_matrix(n_fft: int, sr: int, n_bands: int = 24, fmin: float = 80.0) -> np.ndarray:
    """Triangular filters on a log-frequency axis (mel-like), (n_bands, n_fft // 2 + 1)."""
    freqs = np.fft.rfftfreq(n_fft, 1 / sr)
    edges = np.geomspace(fmin, min(7600.0, sr / 2 * 0.95), n_bands + 2)
    fb = np.zeros((n_bands, len(freqs)))
    for b in range(n_bands):
        lo, mid, hi = edges[b: b + 3]
        fb[b] = np.clip(np.minimum((freqs - lo) / (mid - lo), (hi - freqs) / (hi - mid)), 0, None)
    return fb


def audio_onset_envelope(audio: np.ndarray, sr: int, fps: float) -> tuple[np.ndarray, np.ndarray]:
    """(times, onset strength) at RATE: half-wave rectified log band-energy flux.

    Accumulated over the last frame interval (a picture change seen at frame k happened during
    (t[k-1], t[k]]), then triangle-smoothed like the linear interpolation of the motion envelope.
    """
    hop, win, n_fft = int(round(sr / RATE)), int(0.02 * sr), 512
    n = len(audio) // hop + 1
    padded = np.concatenate([np.zeros(win // 2), audio.astype(np.float64), np.zeros(win + hop)])
    idx = np.arange(n)[:, None] * hop + np.arange(win)[None, :]
    spec = np.abs(np.fft.rfft(padded[idx] * np.hanning(win), n_fft)) ** 2
    energy = spec @ _band_matrix(n_fft, sr).T
    if COMPRESS == "log":
        log_e = np.log(energy + 1e-10 + FLOOR * energy.mean())
    else:
        log_e = (energy / (energy.mean() + 1e-12)) ** COMPRESS
    dd = np.diff(log_e, axis=0, prepend=log_e[:1])
    flux = (np.maximum(dd, 0) if HALF else np.abs(dd)).mean(axis=1)
    frame = max(1, int(round(RATE / fps)))
    acc = np.convolve(flux, np.ones(frame), mode="same")  # sum over one frame interval, centred
    tri = np.bartlett(2 * frame + 1)
    return np.arange(n) / RATE, np.convolve(acc, tri / tri.sum(), mode="same")


def cut_mask(diff: np.ndarray, fps: float) -> np.ndarray:
    """Frame differences that are shot cuts: outliers against the rolling median of their neighbours."""
    n, r = len(diff), max(2, int(round(0.5 * fps)))
    if n < 5:
        return np.zeros(n, bool)
    pad = np.pad(diff, r, mode="edge")
    win = np.lib.stride_tricks.sliding_window_view(pad, 2 * r + 1)
    med = np.median(win, axis=1)
    mad = np.median(np.abs(win - med[:, None]), axis=1)
    # a cut replaces the whole picture: far above the local level *and* large in absolute terms
    cut = (diff > 3.0 * med + 8.0 * mad + 2.0) & (diff > 12.0)
    return cut | np.roll(cut, 1) & (diff > 2.0 * med + 4.0)  # the frame after a cut may still settle


def motion_envelopes(clip: ClipMedia) -> dict[str, np.ndarray]:
    """Per-frame luma motion (mean |frame difference|), globally and per tile; cut frames are NaN."""
    g = clip.gray
    assert g is not None
    d = np.abs(np.diff(g, axis=0))
    rows, cols = GRID
    h, w = d.shape[1] // rows * rows, d.shape[2] // cols * cols
    tiles = d[:, :h, :w].reshape(len(d), rows, h // rows, cols, w // cols).mean(axis=(2, 4))
    tiles = tiles.reshape(len(d), rows * cols).T
    glob = d.mean(axis=(1, 2))
    if "motion_envelope" in clip.extras:  # another metric's envelope: reuse it for the global signal
        t_ext, v_ext = clip.extras["motion_envelope"]
        if len(v_ext) == len(glob):
            glob = np.asarray(v_ext, float)
    cuts = cut_mask(d.mean(axis=(1, 2)), clip.fps)
    glob, tiles = np.where(cuts, np.nan, glob), np.where(cuts[None], np.nan, tiles)
    ft = np.asarray(clip.frame_times, float)
    times = (ft[1:] + ft[:-1]) / 2 if MID else ft[1:]
    return {"times": times, "global": glob, "tiles": tiles, "cuts": cuts}


def _to_rate(times: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
    """Linear interpolation onto the RATE grid; NaN outside the samples and across missing ones."""
    grid = np.arange(n) / RATE
    ok = np.isfinite(values)
    out = np.interp(grid, times[ok], values[ok]) if ok.sum() >= 2 else np.full(n, np.nan)
    bad = np.interp(grid, times, (~ok).astype(float)) > 0  # near a NaN sample
    out[bad | (grid < times[0]) | (grid > times[-1])] = np.nan
    return out


def _prepare(x: np.ndarray, smooth_s: float, detrend_s: float) -> np.ndarray:
    return _detrend(_smooth(np.nan_to_num(x), smooth_s * RATE), int(detrend_s * RATE)) * \
        np.where(np.isfinite(x), 1.0, np.nan)


# ---------------------------------------------------------------- correlation
def xcorr(audio_env: np.ndarray, vis: np.ndarray, max_lag: int, min_overlap: int = 100) -> np.ndarray:
    """Pearson correlation per lag L of audio(t + L) with each visual row vis[k](t), NaN-aware.

    ``vis`` is (K, T) or (T,); returns (K, 2 * max_lag + 1) (or 1-D). Masked sums by matrix products.
    """
    one = vis.ndim == 1
    v = np.atleast_2d(vis)
    t = v.shape[1]
    lags = np.arange(-max_lag, max_lag + 1)
    src = np.arange(t)[None, :] + lags[:, None]
    a = np.where((src >= 0) & (src < len(audio_env)), audio_env[np.clip(src, 0, len(audio_env) - 1)], np.nan)
    va, vv = np.isfinite(a).astype(float), np.isfinite(v).astype(float)
    a0, v0 = np.nan_to_num(a), np.nan_to_num(v)
    n = vv @ va.T
    sa, saa = vv @ a0.T, vv @ (a0 ** 2).T
    sv, svv = v0 @ va.T, (v0 ** 2) @ va.T
    sav = v0 @ a0.T
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (n * sav - sa * sv) / np.sqrt((n * saa - sa ** 2) * (n * svv - sv ** 2))
    r[(n < min_overlap) | ~np.isfinite(r)] = np.nan
    return r[0] if one else r


def peak_stats(curve: np.ndarray, lags_s: np.ndarray) -> dict[str, Any]:
    """Sub-sample peak lag (parabolic), and how much it stands out of the rest of the curve."""
    ok = np.isfinite(curve)
    if ok.sum() < 10:
        return {"offset_s": None, "confidence": 0.0, "peak_r": None, "ambiguity": None, "edge": True}
    c = np.where(ok, curve, -np.inf)
    i = int(np.argmax(c))
    off = float(lags_s[i])
    edge = i == 0 or i == len(c) - 1 or not (np.isfinite(c[i - 1]) and np.isfinite(c[i + 1]))
    if not edge:
        y0, y1, y2 = c[i - 1], c[i], c[i + 1]
        den = y0 - 2 * y1 + y2
        if den < 0:
            off += float(np.clip(0.5 * (y0 - y2) / den, -0.5, 0.5)) * (lags_s[1] - lags_s[0])
    step = lags_s[1] - lags_s[0]
    far = ok & (np.abs(lags_s - lags_s[i]) > EXCLUDE_S + 0.5 * step)
    rest = curve[far]
    med = float(np.median(rest)) if len(rest) else 0.0
    mad = float(np.median(np.abs(rest - med))) * 1.4826 if len(rest) else 0.0
    height = float(c[i]) - med
    conf = height / max(mad, 1e-3)
    second = _second_peak(curve, far)
    amb = (second - med) / height if height > 0 and second is not None else 0.0
    return {"offset_s": off, "confidence": conf, "peak_r": float(c[i]), "ambiguity": max(0.0, amb), "edge": edge}


def _second_peak(curve: np.ndarray, far: np.ndarray) -> float | None:
    """Highest local maximum outside the main peak's neighbourhood."""
    c = np.where(far, curve, -np.inf)
    is_max = (c[1:-1] >= c[:-2]) & (c[1:-1] >= c[2:]) & np.isfinite(c[1:-1])
    vals = c[1:-1][is_max]
    return float(vals.max()) if len(vals) else None


# ---------------------------------------------------------------- sources
Scaled = list  # one prepared array per analysis scale


def _multi(a: Scaled, vis: Scaled, max_lag: int) -> np.ndarray:
    """Correlation curves averaged over the analysis scales: (K, lags)."""
    return np.nanmean(np.stack([xcorr(a_s, np.atleast_2d(v_s), max_lag) for a_s, v_s in zip(a, vis, strict=True)]), axis=0)


def _tiles_curve(a: Scaled, tiles: Scaled, max_lag: int) -> np.ndarray:
    """Held-out tile selection: tiles ranked on one half of the clip, their curve taken on the other."""
    t = tiles[0].shape[1]
    valid = np.where(np.isfinite(tiles[0]).any(axis=0))[0]
    if len(valid) < 4:
        return np.full(2 * max_lag + 1, np.nan)
    mid = valid[len(valid) // 2]
    halves = [np.arange(t) < mid, np.arange(t) >= mid]
    curves = []
    for fit, held in (halves, halves[::-1]):
        c = _multi(a, [np.where(fit[None], x, np.nan) for x in tiles], max_lag)
        score = np.max(np.nan_to_num(c, nan=-1.0), axis=1)
        best = np.argsort(score)[::-1][:TOP_TILES]
        curves.append(np.nanmean(_multi(a, [np.where(held[None], x[best], np.nan) for x in tiles], max_lag), axis=0))
    return np.nanmean(np.stack(curves), axis=0)


def _surrogates(a: Scaled, max_lag: int) -> list[Scaled]:
    """Audio envelopes with the timing destroyed: circular shifts (and reversals) far beyond the lag range."""
    n, gap = len(a[0]), max_lag + int(0.5 * RATE)
    if n - 2 * gap < 2:
        return [[x[::-1] for x in a]]
    shifts = np.linspace(gap, n - gap, N_SUR // 2).astype(int)
    return [[np.roll(x[::d], k) for x in a] for k in shifts for d in (1, -1)]


def _mouth_envelopes(clip: ClipMedia) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per-face mouth-opening envelopes from mtavg.metrics.lips, or [] when unavailable."""
    if "mouth_envelopes" in clip.extras:
        return list(clip.extras["mouth_envelopes"] or [])
    try:
        from mtavg.metrics.lips import mouth_envelope
        return list(mouth_envelope(clip) or [])
    except Exception:  # noqa: BLE001 - optional: no mediapipe, no model, no faces
        return []


def _scales(x: np.ndarray) -> Scaled:
    return [_prepare(x, sm, dt) for sm, dt in SCALES]


def estimate_offset(clip: ClipMedia, *, max_lag_s: float = MAX_LAG_S, use_mouth: bool = True) -> Record:
    """The av_offset record of one clip (see module docstring)."""
    if clip.audio is None or clip.frames is None:
        return {"skipped": "no audio stream" if clip.audio is None else "no video stream"}
    max_lag_s = float(np.clip(max_lag_s, 0.1, MAX_LAG_LIMIT_S))
    max_lag = int(round(max_lag_s * RATE))
    lags_s = np.arange(-max_lag, max_lag + 1) / RATE
    _, onset = audio_onset_envelope(clip.audio, clip.sample_rate, clip.fps)
    a = _scales(onset)
    mot = motion_envelopes(clip)
    n = len(onset)
    vis_g = _scales(_to_rate(mot["times"], mot["global"], n))
    rows_t = [_scales(_to_rate(mot["times"], row, n)) for row in mot["tiles"]]
    vis_t = [np.stack([r[s] for r in rows_t]) for s in range(len(SCALES))]
    fns = {"motion": lambda aa: _multi(aa, vis_g, max_lag)[0], "tiles": lambda aa: _tiles_curve(aa, vis_t, max_lag)}
    faces = _mouth_envelopes(clip) if use_mouth else []
    if faces:  # opening speed of each mouth against the onsets; faces averaged (no selection)
        rows_m = [_scales(_to_rate(np.asarray(t, float), np.abs(np.gradient(np.asarray(v, float))), n))
                  for t, v in faces]
        vis_m = [np.stack([r[s] for r in rows_m]) for s in range(len(SCALES))]
        fns["mouth"] = lambda aa: np.nanmean(_multi(aa, vis_m, max_lag), axis=0)
    curves = {k: f(a) for k, f in fns.items()}
    stats = {k: peak_stats(c, lags_s) for k, c in curves.items()}
    for k, f in fns.items():
        sc = [f(s) for s in _surrogates(a, max_lag)]
        mx = np.array([np.nanmax(c) if np.isfinite(c).any() else np.nan for c in sc])
        mx = mx[np.isfinite(mx)]
        stats[k]["sur_conf"] = (stats[k]["peak_r"] - mx.mean()) / max(mx.std(), 1e-3) if len(mx) > 2 and stats[k]["peak_r"] is not None else 0.0
    source = max(stats, key=lambda k: stats[k]["confidence"])
    best = stats[source]
    reason = _doubt(best, a[0], vis_g[0])
    step = max(1, int(round(0.02 * RATE)))  # curve decimated to 20 ms for the record
    return {
        "offset_s": None if best["offset_s"] is None else round(best["offset_s"], 4),
        "confidence": round(best["confidence"], 3),
        "confident": reason is None,
        "reason": reason,
        "source": source,
        "peak_r": None if best["peak_r"] is None else round(best["peak_r"], 4),
        "ambiguity": None if best["ambiguity"] is None else round(best["ambiguity"], 3),
        "n_cuts": int(mot["cuts"].sum()),
        "n_faces": len(faces),
        "max_lag_s": max_lag_s,
        "sources": {k: {"offset_s": None if s["offset_s"] is None else round(s["offset_s"], 4),
                        "confidence": round(s["confidence"], 3), "peak_r": s["peak_r"],
                        "ambiguity": s["ambiguity"], "edge": s["edge"],
                        "sur_conf": s["sur_conf"]} for k, s in stats.items()},
        "curve": {"lags_s": np.round(lags_s[::step], 3).tolist(),
                  "values": [None if not np.isfinite(x) else round(float(x), 4) for x in curves[source][::step]]},
    }


def _doubt(s: dict[str, Any], a: np.ndarray, v: np.ndarray) -> str | None:
    """Why the estimate should not be trusted, or None."""
    if not np.nanstd(a) > 1e-9:
        return "no audio events"
    if not np.nanstd(v) > 1e-9:
        return "no visual motion"
    if s["offset_s"] is None or s["edge"]:
        return "peak at the edge of the lag range"
    if s["confidence"] < CONF_THRESHOLD or (s["peak_r"] or 0) < MIN_PEAK_R:
        return "no distinct correlation peak"
    if s["ambiguity"] > AMBIGUITY_MAX:
        return "several similar peaks (periodic content)"
    return None


def aggregate(records: Sequence[Record]) -> dict[str, Any]:
    rec = [r for r in records if "confident" in r]
    good = [abs(r["offset_s"]) for r in rec if r["confident"]]
    return {"n": len(rec), "n_confident": len(good),
            "median_abs_offset_s": round(float(np.median(good)), 4) if good else None,
            "mean_confidence": round(float(np.mean([r["confidence"] for r in rec])), 3) if rec else None}


register_metric("av_offset", estimate_offset, aggregate=aggregate, needs=("video", "audio"),
                description="audio-video offset (s, + = audio lags) from onset/motion cross-correlation")
