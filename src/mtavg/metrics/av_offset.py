"""Audio-video offset (``av_offset``): when is a sound heard relative to the picture event that made it?

Both streams become "how much is changing" envelopes at a common 100 Hz: audio = full-wave log band-energy
flux (24 mel-like bands, 20 ms windows; a click, a syllable or a pluck), video = mean |luma frame
difference| (globally, per 4x4 tile, and each face's mouth-opening speed when ``mtavg.metrics.lips``
finds faces). Shot cuts (most tiles jump in one isolated frame step) are masked out, envelopes are
smoothed (20 ms) and detrended (0.6 s), and Pearson correlation is taken per lag over +-``max_lag_s``.
The peak lag, refined by a parabola, is ``offset_s`` (> 0: the audio lags the video).

Tiles are chosen on one half of the clip and scored on the other (and the two held-out halves must agree
on the lag), so picking the tile cannot manufacture the peak. ``confidence`` compares the peak with surrogates whose timing is destroyed (the audio envelope
circularly shifted / reversed far beyond the lag range): margin over the surrogates' 90th-percentile peak,
in units of their correlation spread. The source (motion / tiles / mouth) with the highest confidence
is reported; ``confident`` means confidence >= CONF_THRESHOLD and the peak is inside the lag range.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from mtavg.metrics.base import ClipMedia, Record, register_metric

RATE = 100.0  # Hz, common rate of every envelope
MAX_LAG_S, MAX_LAG_LIMIT_S = 1.0, 2.0
GRID = (4, 4)  # spatial tiles: a mouth or a drum hit is a few percent of the frame
TOP_TILES = 2  # tiles kept per half: few, so the choice cannot fit much noise
SMOOTH_S = 0.02  # Gaussian sigma on both envelopes: a stable parabolic peak
DETREND_S = 0.6  # slow co-variation (music swelling while the camera drifts) says nothing about the lag
FLOOR = 0.01  # log-energy floor relative to the mean: room-tone flicker in quiet parts is not an event
TILE_AGREE_S = 0.1  # the held-out halves' tile peaks must be this close
N_SUR = 24  # timing-destroyed surrogates per source
# Tuned on null pairs (audio of one real clip with the picture of another, + independent synthetic
# events): 1 of 147 nulls exceeds 1.5 (99th percentile 1.38). See benchmarks/validate_metrics.py.
CONF_THRESHOLD = 1.5


# ---------------------------------------------------------------- envelopes
def _conv(x: np.ndarray, k: np.ndarray) -> np.ndarray:
    """'same' convolution normalised over finite samples (no droop at edges or gaps); NaN stays NaN."""
    ok = np.isfinite(x)
    num = np.convolve(np.where(ok, x, 0.0), k, mode="same")
    den = np.convolve(ok.astype(float), k, mode="same")
    return np.where(ok, num / np.maximum(den, 1e-9) * k.sum(), np.nan)


def _prepare(x: np.ndarray) -> np.ndarray:
    """Smooth, then subtract the moving average over DETREND_S."""
    sigma = SMOOTH_S * RATE
    r = int(np.ceil(3 * sigma))
    g = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    x = _conv(x, g / g.sum())
    w = max(1, int(DETREND_S * RATE))
    return x - _conv(x, np.ones(w) / w)


def _band_matrix(n_fft: int, sr: int, n_bands: int = 24, fmin: float = 80.0) -> np.ndarray:
    """Triangular filters on a log-frequency axis (mel-like), (n_bands, n_fft // 2 + 1)."""
    freqs = np.fft.rfftfreq(n_fft, 1 / sr)
    edges = np.geomspace(fmin, min(7600.0, sr / 2 * 0.95), n_bands + 2)
    fb = np.zeros((n_bands, len(freqs)))
    for b in range(n_bands):
        lo, mid, hi = edges[b: b + 3]
        fb[b] = np.clip(np.minimum((freqs - lo) / (mid - lo), (hi - freqs) / (hi - mid)), 0, None)
    return fb


def audio_flux(audio: np.ndarray, sr: int, fps: float) -> np.ndarray:
    """Full-wave log band-energy flux at RATE (sample j = time j / RATE), matched to frame differences:
    summed over one frame interval, then triangle-smoothed like the interpolated motion envelope.

    Full-wave because |frame difference| rises when something appears *and* when it goes (a mouth
    opening and closing); half-wave onsets matched only half of that on the demo clips.
    """
    hop, win, n_fft = int(round(sr / RATE)), int(0.02 * sr), 512
    n = len(audio) // hop
    if n < 4:
        return np.full(max(n, 0), np.nan)
    # frame j is centred at (j + 0.5) hops, so the difference of frames j - 1 and j sits at j hops;
    # reflected padding: no fake onset where the clip starts or ends
    x = np.pad(audio.astype(np.float64), (win // 2 - hop // 2, win), mode="reflect")
    spec = np.abs(np.fft.rfft(x[np.arange(n)[:, None] * hop + np.arange(win)] * np.hanning(win), n_fft)) ** 2
    energy = spec @ _band_matrix(n_fft, sr).T
    log_e = np.log(energy + 1e-10 + FLOOR * energy.mean())
    flux = np.abs(np.diff(log_e, axis=0, prepend=np.nan * log_e[:1])).mean(axis=1)
    flux[-2:] = np.nan
    frame = max(1, int(round(RATE / fps)))
    tri = np.bartlett(2 * frame + 1)
    return _conv(_conv(flux, np.ones(frame)), tri / tri.sum())


def _rolling_median(x: np.ndarray, r: int) -> np.ndarray:
    """Median of the 2r neighbours of each sample (itself excluded), along the last axis."""
    pad = np.pad(x, [(0, 0)] * (x.ndim - 1) + [(r, r)], mode="edge")
    win = np.lib.stride_tricks.sliding_window_view(pad, 2 * r + 1, axis=-1)
    return np.median(np.delete(win, r, axis=-1), axis=-1)


def cut_mask(diff: np.ndarray, tile_diff: np.ndarray, fps: float) -> np.ndarray:
    """Frame differences that are shot cuts (jump cuts too): most tiles change several times more than
    around it, in one isolated step (or two, when the cut frame is blended). A flash, a mouth or a drum
    hit moves a few tiles; a hand sweeping through a close-up changes them over several frames."""
    if len(diff) < 5:
        return np.zeros(len(diff), bool)
    r = max(2, int(round(0.5 * fps)))
    broad = np.median(tile_diff / (_rolling_median(tile_diff, r) + 0.5), axis=0) > 4.0  # 0.5: codec noise
    big = broad & (diff > 2.0) & (diff > 3.0 * _rolling_median(diff, r))
    p = np.pad(diff, 2, mode="edge")
    prev, nxt, nxt2 = p[1:-3], p[3:-1], p[4:]
    single = big & (diff > 2.0 * np.maximum(prev, nxt))
    pair = big & np.roll(big, -1) & (np.minimum(diff, nxt) > 2.0 * np.maximum(prev, nxt2))
    return single | pair | np.roll(pair, 1)


def motion_envelopes(clip: ClipMedia) -> dict[str, np.ndarray]:
    """Mean |luma frame difference| globally and per tile, at the midpoints between frames (unbiased for
    events anywhere inside the frame interval); cut frames are NaN."""
    assert clip.gray is not None
    d = np.abs(np.diff(clip.gray, axis=0))
    rows, cols = GRID
    h, w = d.shape[1] // rows * rows, d.shape[2] // cols * cols
    tiles = d[:, :h, :w].reshape(len(d), rows, h // rows, cols, w // cols).mean(axis=(2, 4))
    tiles = tiles.reshape(len(d), rows * cols).T
    ft = np.asarray(clip.frame_times, float)
    # share the global envelope with mtavg.metrics.video (same values, its (times[1:], diff) convention)
    _, glob = clip.extras.setdefault("motion_envelope", (ft[1:].copy(), d.mean(axis=(1, 2)).astype(np.float64)))
    glob = np.asarray(glob, float) if len(glob) == len(d) else d.mean(axis=(1, 2))
    cuts = cut_mask(d.mean(axis=(1, 2)), tiles, clip.fps)
    return {"times": (ft[1:] + ft[:-1]) / 2, "global": np.where(cuts, np.nan, glob),
            "tiles": np.where(cuts[None], np.nan, tiles), "cuts": cuts}


def _to_rate(times: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
    """Linear interpolation onto the RATE grid; NaN outside the samples and next to missing ones."""
    grid = np.arange(n) / RATE
    ok = np.isfinite(values)
    if ok.sum() < 2:
        return np.full(n, np.nan)
    out = np.interp(grid, times[ok], values[ok])
    out[(np.interp(grid, times, (~ok).astype(float)) > 0) | (grid < times[0]) | (grid > times[-1])] = np.nan
    return out


# ---------------------------------------------------------------- correlation
def _lagged_sums(x: np.ndarray, y: np.ndarray, max_lag: int) -> np.ndarray:
    """sum_t x(t + L) * y[k](t) for L in -max_lag..max_lag, by FFT: (K, 2 * max_lag + 1)."""
    nfft = 1 << int(np.ceil(np.log2(len(x) + y.shape[1] + 1)))
    c = np.fft.irfft(np.fft.rfft(x, nfft)[None] * np.conj(np.fft.rfft(y, nfft, axis=1)), nfft, axis=1)
    return c[:, np.arange(-max_lag, max_lag + 1) % nfft]


def xcorr(audio_env: np.ndarray, vis: np.ndarray, max_lag: int, min_overlap: int = 100) -> np.ndarray:
    """Pearson correlation per lag L of audio(t + L) with each row vis[k](t), over the samples where both
    are finite. ``vis`` is (K, T) or (T,); returns (K, 2 * max_lag + 1) (or 1-D)."""
    v = np.atleast_2d(vis)
    va, vv = np.isfinite(audio_env).astype(float), np.isfinite(v).astype(float)
    a0, v0 = np.nan_to_num(audio_env), np.nan_to_num(v)
    n = np.round(_lagged_sums(va, vv, max_lag))
    sa, saa = _lagged_sums(a0, vv, max_lag), _lagged_sums(a0 ** 2, vv, max_lag)
    sv, svv = _lagged_sums(va, v0, max_lag), _lagged_sums(va, v0 ** 2, max_lag)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (n * _lagged_sums(a0, v0, max_lag) - sa * sv) / np.sqrt(
            np.maximum(n * saa - sa ** 2, 0) * np.maximum(n * svv - sv ** 2, 0))
    r[(n < min_overlap) | ~np.isfinite(r)] = np.nan
    return r[0] if vis.ndim == 1 else r


def peak(curve: np.ndarray, lags_s: np.ndarray) -> tuple[float | None, float | None, bool]:
    """(lag of the maximum refined by a parabola through its neighbours, peak value, at the edge?)."""
    ok = np.isfinite(curve)
    if ok.sum() < 3:
        return None, None, True
    c = np.where(ok, curve, -np.inf)
    i = int(np.argmax(c))
    edge = i == 0 or i == len(c) - 1 or not (ok[i - 1] and ok[i + 1])
    off = float(lags_s[i])
    if not edge:
        y0, y1, y2 = c[i - 1: i + 2]
        if (den := y0 - 2 * y1 + y2) < 0:
            off += float(np.clip(0.5 * (y0 - y2) / den, -0.5, 0.5)) * float(lags_s[1] - lags_s[0])
    return off, float(c[i]), edge


def confidence(peak_r: float, null_curves: Sequence[np.ndarray]) -> float:
    """Margin of the peak over the 90th percentile of the surrogates' peaks, in units of the surrogates'
    correlation spread, on Fisher's z scale (a near-perfect match is not capped). 0: chance, 1 time in 10."""
    curves = [c[np.isfinite(c)] for c in null_curves]
    curves = [c for c in curves if len(c)]
    if len(curves) < 4:
        return 0.0
    q90 = float(np.quantile([c.max() for c in curves], 0.9))
    z = np.arctanh(np.clip([peak_r, q90], -0.999, 0.999))
    return float((z[0] - z[1]) / max(float(np.concatenate(curves).std()), 1e-3))


def _surrogates(a: np.ndarray, max_lag: int) -> list[np.ndarray]:
    """The audio envelope with its timing destroyed: circular shifts (and reversals) beyond the lag range."""
    n, gap = len(a), max_lag + int(0.5 * RATE)
    if n - 2 * gap < 2:
        return []
    return [np.roll(a[::d], k) for k in np.linspace(gap, n - gap, N_SUR // 2).astype(int) for d in (1, -1)]


# ---------------------------------------------------------------- sources
def _tiles_curve(a: np.ndarray, tiles: np.ndarray, max_lag: int) -> tuple[np.ndarray, float]:
    """Tiles ranked on one half of the clip, their mean curve taken on the other half, both ways.
    Returns the averaged curve and how far apart (s) the two held-out halves put their peaks."""
    valid = np.where(np.isfinite(tiles).any(axis=0))[0]
    if len(valid) < 4:
        return np.full(2 * max_lag + 1, np.nan), np.inf
    first = np.arange(tiles.shape[1]) < valid[len(valid) // 2]
    curves = []
    for fit, held in ((first, ~first), (~first, first)):
        score = np.nan_to_num(xcorr(a, np.where(fit, tiles, np.nan), max_lag), nan=-1.0).max(axis=1)
        best = np.argsort(score)[::-1][:TOP_TILES]
        curves.append(_nanmean(xcorr(a, np.where(held, tiles[best], np.nan), max_lag)))
    peaks = [np.argmax(np.nan_to_num(c, nan=-2.0)) for c in curves]
    return _nanmean(np.stack(curves)), abs(peaks[0] - peaks[1]) / RATE


def _mouth_envelopes(clip: ClipMedia) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per-face (frame times, mouth opening) from mtavg.metrics.lips, or [] (no mediapipe, no faces)."""
    if "mouth_envelopes" in clip.extras:
        return list(clip.extras["mouth_envelopes"] or [])
    try:
        from mtavg.metrics.lips import lips_available, mouth_envelope
        return list(mouth_envelope(clip) or []) if lips_available() is True else []
    except Exception:  # noqa: BLE001 - optional source: any failure just means no mouths
        return []


def _mouth_speed(times: np.ndarray, opening: np.ndarray, n: int) -> np.ndarray:
    """|change of mouth opening| between consecutive frames, at their midpoints (NaN where unseen)."""
    t, v = np.asarray(times, float), np.asarray(opening, float)
    return _prepare(_to_rate((t[1:] + t[:-1]) / 2, np.abs(np.diff(v)), n))


def _sources(clip: ClipMedia, a: np.ndarray, max_lag: int, use_mouth: bool) -> tuple[dict[str, Callable], dict]:
    mot, n = motion_envelopes(clip), len(a)
    vis_g = _prepare(_to_rate(mot["times"], mot["global"], n))
    vis_t = np.stack([_prepare(_to_rate(mot["times"], row, n)) for row in mot["tiles"]])
    fns: dict[str, Callable[[np.ndarray], np.ndarray]] = {
        "motion": lambda x: xcorr(x, vis_g, max_lag), "tiles": lambda x: _tiles_curve(x, vis_t, max_lag)[0]}
    faces = _mouth_envelopes(clip) if use_mouth else []
    if faces:  # every face against the audio, averaged: no selection among faces
        vis_m = np.stack([_mouth_speed(t, v, n) for t, v in faces])
        fns["mouth"] = lambda x: _nanmean(xcorr(x, vis_m, max_lag))
    info = {"n_cuts": int(mot["cuts"].sum()), "n_faces": len(faces),
            # two independent halves must agree on the lag, or the tile choice may have fitted noise
            "tiles_agree": _tiles_curve(a, vis_t, max_lag)[1] <= TILE_AGREE_S,
            "has_motion": bool(np.nanstd(vis_g) > 1e-9) if np.isfinite(vis_g).any() else False}
    return fns, info


def estimate_offset(clip: ClipMedia, *, max_lag_s: float = MAX_LAG_S, use_mouth: bool = True) -> Record:
    """The av_offset record of one clip (see the module docstring)."""
    if clip.audio is None or clip.frames is None:
        return {"skipped": "no audio stream" if clip.audio is None else "no video stream"}
    max_lag_s = float(np.clip(max_lag_s, 0.1, MAX_LAG_LIMIT_S))
    max_lag = int(round(max_lag_s * RATE))
    lags_s = np.arange(-max_lag, max_lag + 1) / RATE
    a = _prepare(audio_flux(clip.audio, clip.sample_rate, clip.fps))
    fns, info = _sources(clip, a, max_lag, use_mouth)
    sur = _surrogates(a, max_lag)
    stats, curves = {}, {}
    for name, fn in fns.items():
        curves[name] = fn(a)
        off, r, edge = peak(curves[name], lags_s)
        conf = confidence(r, [fn(x) for x in sur]) if r is not None else 0.0
        if name == "tiles" and not info["tiles_agree"]:
            conf = min(conf, 0.0)
        stats[name] = {"offset_s": _round(off, 4), "confidence": round(conf, 3), "peak_r": _round(r, 4),
                       "edge": edge}
    source = max(stats, key=lambda k: stats[k]["confidence"])
    best = stats[source]
    reason = _doubt(best, a, info["has_motion"], len(sur))
    step = max(1, int(round(0.02 * RATE)))  # the curve every 20 ms is plenty for a plot
    off = best["offset_s"]
    return {
        "offset_s": off, "offset_frames": _round(off * clip.fps if off is not None else None, 2),
        "confidence": best["confidence"], "confident": reason is None, "reason": reason, "source": source,
        "peak_r": best["peak_r"], "max_lag_s": max_lag_s, "n_cuts": info["n_cuts"], "n_faces": info["n_faces"],
        "sources": stats,
        "curve": {"lags_s": np.round(lags_s[::step], 3).tolist(), "r": [_round(x, 3) for x in curves[source][::step]]},
    }


def _nanmean(x: np.ndarray, axis: int = 0) -> np.ndarray:
    """np.nanmean without the all-NaN warning (all-NaN columns stay NaN)."""
    n = np.isfinite(x).sum(axis=axis)
    return np.where(n > 0, np.nansum(x, axis=axis) / np.maximum(n, 1), np.nan)


def _round(x: float | None, nd: int) -> float | None:
    return None if x is None or not np.isfinite(x) else round(float(x), nd)


def _doubt(best: dict[str, Any], a: np.ndarray, has_motion: bool, n_sur: int) -> str | None:
    """Why the estimate should not be trusted, or None."""
    if not (np.isfinite(a).any() and np.nanstd(a) > 1e-9):
        return "no audio events"
    if not has_motion:
        return "no visual motion"
    if n_sur == 0 or best["offset_s"] is None:
        return "clip too short for the lag range"
    if best["edge"]:
        return "peak at the edge of the lag range"
    if best["confidence"] < CONF_THRESHOLD:
        return "no correlation peak above chance"
    return None


def aggregate(records: Sequence[Record]) -> dict[str, Any]:
    rec = [r for r in records if "confident" in r]
    good = [abs(r["offset_s"]) for r in rec if r["confident"]]
    return {"n": len(rec), "n_confident": len(good),
            "median_abs_offset_s": round(float(np.median(good)), 4) if good else None,
            "max_abs_offset_s": round(float(np.max(good)), 4) if good else None}


register_metric("av_offset", estimate_offset, aggregate=aggregate, needs=("video", "audio"),
                description="audio-video offset in s (+: audio lags) from audio-flux / motion cross-correlation")
