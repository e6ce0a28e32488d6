"""Levels: loudness (BS.1770 via pyloudnorm), peaks, clipping and silence; speech vs background level.

Everything is measured on the analysis decode (mono, 16 kHz): integrated loudness therefore ignores
content above 8 kHz, which changes LUFS by a fraction of a dB for speech and ambience.
"""

from __future__ import annotations

import importlib.util
from typing import TYPE_CHECKING, Any

import numpy as np

from mtavg.metrics.vad import _runs, clip_speech_segments, segments_mask

if TYPE_CHECKING:
    from mtavg.metrics.base import ClipMedia

FLOOR_DB = -120.0  # reported instead of -inf for digital silence
CLIP_LEVEL = 0.999
ZERO_LEVEL = 2.0**-15  # under one 16-bit step: "digital silence" survives decoding as (near) zeros
SILENT_FRAME_DB = -60.0
FRAME_S = 0.05
GUARD_S = 0.05  # background excludes this much around speech (VAD pads are short; tails leak)
NO_AMBIENT_DB = -80.0  # a noise floor this low means dead digital silence between sounds
LOUD_BACKGROUND_DB = 6.0  # background within this of speech drowns it


def db(mean_square: float) -> float:
    return round(max(10 * float(np.log10(max(mean_square, 1e-30))), FLOOR_DB), 2)


def frame_levels(x: np.ndarray, sample_rate: int, frame_s: float = FRAME_S) -> np.ndarray:
    """RMS level (dBFS, floored) of consecutive non-overlapping frames."""
    hop = max(1, int(round(frame_s * sample_rate)))
    n = len(x) // hop
    ms = np.mean(np.asarray(x[: n * hop], np.float64).reshape(n, hop) ** 2, axis=1) if n else np.zeros(0)
    return np.maximum(10 * np.log10(ms + 1e-30), FLOOR_DB)


def loudness_status() -> bool | str:
    if importlib.util.find_spec("pyloudnorm") is None:
        return "pyloudnorm is not installed (`pip install pyloudnorm`)"
    return True


def integrated_lufs(x: np.ndarray, sample_rate: int) -> tuple[float | None, float | None]:
    """(integrated loudness LUFS, loudness range LU); None when too short (< 0.4 s / 3 s) or silent."""
    import pyloudnorm

    if len(x) < 0.4 * sample_rate or not np.any(x):
        return None, None
    meter = pyloudnorm.Meter(sample_rate)
    lufs = float(meter.integrated_loudness(x))
    lra = None
    if len(x) >= 3.0 * sample_rate and np.isfinite(lufs):
        try:
            lra = float(meter.loudness_range(x))
        except (ValueError, IndexError):  # every short-term block gated away
            lra = None
    finite = lambda v: round(v, 2) if v is not None and np.isfinite(v) else None  # noqa: E731
    return finite(lufs), finite(lra)


def loudness_metric(clip: ClipMedia) -> dict[str, Any]:
    x = np.asarray(clip.audio, np.float64)
    sr = clip.sample_rate
    lufs, lra = integrated_lufs(x, sr)
    peak = float(np.max(np.abs(x))) if len(x) else 0.0
    clipped = np.abs(x) >= CLIP_LEVEL
    zero_runs = [b - a for a, b in _runs(np.abs(x) <= ZERO_LEVEL)]
    levels = frame_levels(x, sr)
    return {
        "integrated_lufs": lufs,
        "loudness_range_lu": lra,
        "rms_dbfs": db(float(np.mean(x**2))) if len(x) else None,
        "peak_dbfs": round(20 * np.log10(peak), 2) if peak > 0 else None,
        "clipping_ratio": round(float(clipped.mean()), 6) if len(x) else 0.0,
        "clipped_runs": len(_runs(clipped)),
        "silence_ratio": round(float(np.mean(levels < SILENT_FRAME_DB)), 4) if len(levels) else 1.0,
        "digital_silence_s": round(max(zero_runs, default=0) / sr, 3),
    }


def speech_background_metric(clip: ClipMedia) -> dict[str, Any]:
    """RMS inside VAD speech vs outside it, and the noise floor of the gaps between speech."""
    x = np.asarray(clip.audio, np.float64)
    sr = clip.sample_rate
    segs = clip_speech_segments(clip)
    speech = segments_mask(segs, len(x), sr)
    near = segments_mask([(a - GUARD_S, b + GUARD_S) for a, b in segs], len(x), sr)
    background = ~near
    speech_db = db(float(np.mean(x[speech] ** 2))) if speech.sum() >= 0.1 * sr else None
    back_db = db(float(np.mean(x[background] ** 2))) if background.sum() >= 0.2 * sr else None
    # Noise floor: quiet end of the 50 ms frames lying wholly in the gaps.
    hop = int(round(FRAME_S * sr))
    n = len(x) // hop
    whole = background[: n * hop].reshape(n, hop).all(axis=1) if n else np.zeros(0, bool)
    levels = frame_levels(x, sr)[whole]
    floor = round(float(np.percentile(levels, 10)), 2) if len(levels) else None
    s2b = round(speech_db - back_db, 2) if speech_db is not None and back_db is not None else None
    return {
        "speech_s": round(speech.sum() / sr, 3),
        "background_s": round(background.sum() / sr, 3),
        "speech_rms_dbfs": speech_db,
        "background_rms_dbfs": back_db,
        "speech_to_background_db": s2b,
        "noise_floor_dbfs": floor,
        "no_ambient": floor is not None and floor < NO_AMBIENT_DB,
        "loud_background": s2b is not None and s2b < LOUD_BACKGROUND_DB,
    }
