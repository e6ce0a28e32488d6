"""``lips`` section of validate_metrics: lip lag recovered on a synthetic talking face with a known lag.

``mtavg.testing.talking_face`` opens the mouth of scikit-image's astronaut photo with a syllable envelope
and writes the voice under the same envelope shifted by ``lag_frames`` (H.264 + AAC); the clip is decoded
like any other and scored by the ``lips`` metric (MediaPipe Face Mesh). Acceptance: every injected lag in
-5..+5 frames recovered within +-1 frame, at 24, 25 and 30 fps, for two envelopes (seeds). Null check: the
picture of one seed with the soundtrack of another (no lag exists) gives the correlation a matched
soundtrack has to beat.
"""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from mtavg.metrics.base import ClipMedia, load_clip

LAGS = tuple(range(-5, 6))
FPS = (24, 25, 30)
SEEDS = (0, 1)
SECONDS = 6.0
TOL_FRAMES = 1.0


def _lips_unavailable() -> str | None:
    try:
        import skimage  # noqa: F401
    except ImportError:
        return "scikit-image not installed (the talking face is built from its astronaut photo)"
    from mtavg.metrics.lips import lips_available

    why = lips_available()
    return None if why is True else str(why)


def _row(lag: int, fps: int, seed: int, rec: dict[str, Any], clip_fps: float) -> dict[str, Any]:
    got = None if rec["lip_offset_s"] is None else round(rec["lip_offset_s"] * clip_fps, 2)
    return {"lag_frames": lag, "fps": fps, "seed": seed, "recovered_frames": got,
            "error_frames": None if got is None else round(got - lag, 2), "n_faces": rec["n_faces"],
            "lip_sync_corr": rec["lip_sync_corr"], "confidence": rec["confidence"],
            "pooled_offset_frames": None if rec["pooled_offset_s"] is None
            else round(rec["pooled_offset_s"] * clip_fps, 2)}


def validate_lips() -> dict[str, Any]:
    if (why := _lips_unavailable()) is not None:
        return {"skipped": why}
    from mtavg.metrics.lips import lips_metric
    from mtavg.testing.talking_face import make_talking_face

    rows, zero_lag = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        for fps in FPS:
            for seed in SEEDS:
                for lag in LAGS:
                    path = make_talking_face(Path(tmp) / f"f{fps}s{seed}l{lag}.mp4", lag_frames=lag,
                                             seconds=SECONDS, fps=fps, seed=seed)
                    clip = load_clip(path)
                    rows.append(_row(lag, fps, seed, lips_metric(clip), clip.fps))
                    if lag == 0:
                        zero_lag[(fps, seed)] = clip
    errors = [abs(r["error_frames"]) for r in rows if r["error_frames"] is not None]
    per_lag = {str(lag): [r["recovered_frames"] for r in rows if r["lag_frames"] == lag] for lag in LAGS}
    return {
        "seconds_per_clip": SECONDS, "fps": list(FPS), "seeds": list(SEEDS), "clips": rows,
        "n": len(rows), "n_recovered": len(errors),
        "max_abs_error_frames": round(max(errors), 2) if errors else None,
        "mean_abs_error_frames": round(float(np.mean(errors)), 3) if errors else None,
        "within_1_frame": sum(e <= TOL_FRAMES for e in errors),
        "all_within_1_frame": len(errors) == len(rows) and all(e <= TOL_FRAMES for e in errors),
        "recovered_by_lag": per_lag,
        "min_sync_corr": min((r["lip_sync_corr"] for r in rows if r["lip_sync_corr"] is not None), default=None),
        "min_confidence": min((r["confidence"] for r in rows if r["confidence"] is not None), default=None),
        "mismatched_soundtrack": _null_pairs(zero_lag, lips_metric),
    }


def _null_pairs(clips: dict[tuple[int, int], ClipMedia], lips_metric: Any) -> dict[str, Any]:
    """Picture of seed a with the soundtrack of seed b at the same fps (face tracks reused from extras)."""
    out = []
    for (fps, seed), clip in clips.items():
        other = clips.get((fps, 1 - seed))
        if other is None or clip.audio is None or other.audio is None:
            continue
        n = min(len(clip.audio), len(other.audio))
        swapped = dataclasses.replace(clip, audio=other.audio[:n], extras=dict(clip.extras))
        r = lips_metric(swapped)
        out.append({"fps": fps, "picture_seed": seed, "audio_seed": 1 - seed,
                    "lip_sync_corr": r["lip_sync_corr"], "confidence": r["confidence"]})
    return {"pairs": out, "max_sync_corr": max((p["lip_sync_corr"] for p in out), default=None),
            "max_confidence": max((p["confidence"] for p in out), default=None)}


def print_lips(res: dict[str, Any]) -> None:
    if "skipped" in res:
        print("lips skipped:", res["skipped"])
        return
    for lag, got in res["recovered_by_lag"].items():
        print(f"injected {int(lag):+d} frames -> recovered {got}")
    print(f"max |error| {res['max_abs_error_frames']} frames, mean {res['mean_abs_error_frames']}, within 1 frame "
          f"{res['within_1_frame']}/{res['n']} (all: {res['all_within_1_frame']}); min corr {res['min_sync_corr']}, "
          f"min confidence {res['min_confidence']}")
    null = res["mismatched_soundtrack"]
    print(f"mismatched soundtracks: max corr {null['max_sync_corr']}, max confidence {null['max_confidence']}")
