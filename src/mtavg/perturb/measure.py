"""Measure what a perturbation really did, from the decoded files alone (``mtavg perturb verify``).

Each measurement compares a negative with its reference (the positive, or the source clip) using a
method independent of how the perturbation was made: cross-correlation for shifts, a YIN pitch track
for pitch, the residual's power for SNR, spectra for filters, frame differences for freezes. A
dataset whose negatives do not measure as their parameters say is caught before anyone trains on it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from scipy.signal import correlate

from mtavg.perturb.io import AudioTrack, read_audio
from mtavg.perturb.stretch import resample

#: How close a measurement must come to the parameter for the clip to pass.
TOLERANCE = {"shift_ms": 5.0, "semitones": 0.3, "snr_db": 1.0, "duration_ratio": 0.01}
#: A second correlation peak further than this from the best, and this close in height: ambiguous lag.
AMBIGUITY_GUARD_S, AMBIGUITY_RATIO = 0.005, 0.9
#: Fewer voiced frames than this in both clips: the pitch cannot be measured (noise, whispers, engines).
MIN_VOICED_FRAMES = 50


def _mono_at(track: AudioTrack, rate: int) -> np.ndarray:
    return resample(track.mono()[None], rate / track.rate)[0] if track.rate != rate else track.mono()


def measure_shift_ms(ref: AudioTrack, pert: AudioTrack, max_ms: float = 2500.0) -> dict[str, float]:
    """Lag of ``pert`` behind ``ref`` (ms, + = late) at the cross-correlation peak, sub-sample refined."""
    x, y = ref.mono().astype(np.float64), pert.mono().astype(np.float64)
    n = min(len(x), len(y))
    x, y = x[:n] - x[:n].mean(), y[:n] - y[:n].mean()
    c = correlate(y, x, mode="full", method="fft")
    lags = np.arange(-(n - 1), n)
    keep = np.abs(lags) <= max_ms * ref.rate / 1000
    c, lags = c[keep], lags[keep]
    i = int(np.argmax(c))
    frac = 0.0
    if 0 < i < len(c) - 1:
        a, b, d = c[i - 1], c[i], c[i + 1]
        den = a - 2 * b + d
        frac = 0.5 * (a - d) / den if den != 0 else 0.0
    norm = np.sqrt(np.sum(x * x) * np.sum(y * y)) + 1e-20
    peak = float(c[i] / norm)
    # Periodic sound (a steady tone, a loop) correlates almost as well one period away: then the lag is
    # ambiguous and we say so rather than report a wrong one.
    far = np.abs(lags - lags[i]) > AMBIGUITY_GUARD_S * ref.rate
    runner_up = float(c[far].max() / norm) if far.any() else 0.0
    return {"shift_ms": float((lags[i] + frac) / ref.rate * 1000.0), "peak_correlation": round(peak, 4),
            "ambiguous": bool(peak > 0 and runner_up > AMBIGUITY_RATIO * peak)}


def measure_snr_db(ref: AudioTrack, pert: AudioTrack) -> float:
    """10 log10(power of ref / power of (pert - ref)) over the common length (the clips are aligned)."""
    n = min(ref.n, pert.n)
    r = ref.samples[:, :n].astype(np.float64)
    residual = pert.samples[:, :n].astype(np.float64) - r
    return float(10 * np.log10(np.mean(r ** 2) / max(np.mean(residual ** 2), 1e-30)))


def measure_pitch_shift(ref: AudioTrack, pert: AudioTrack) -> dict[str, Any]:
    """Median semitone difference of the YIN pitch over frames voiced in both (None if too few)."""
    from mtavg.metrics.audio_pitch import yin

    rate = 16000
    fa, fb = yin(_mono_at(ref, rate), rate).f0, yin(_mono_at(pert, rate), rate).f0
    n = min(len(fa), len(fb))
    fa, fb = fa[:n], fb[:n]
    both = np.isfinite(fa) & np.isfinite(fb)
    if both.sum() < MIN_VOICED_FRAMES:
        return {"semitones": None, "voiced_frames": int(both.sum())}
    d = 12 * np.log2(fb[both] / fa[both])
    d = d[np.abs(d - np.median(d)) < 1.0]  # octave errors of either track are not the shift
    return {"semitones": float(np.median(d)), "voiced_frames": int(both.sum())}


def measure_duration_ratio(ref: AudioTrack, pert: AudioTrack) -> float:
    return pert.duration_s / ref.duration_s


def band_power_db(track: AudioTrack, lo_hz: float, hi_hz: float) -> float:
    """Mean power in [lo_hz, hi_hz) of the clip's spectrum (dB, Welch-like average of 4096-point frames)."""
    x = track.mono().astype(np.float64)
    size = 4096
    if len(x) < size:
        x = np.pad(x, (0, size - len(x)))
    frames = np.lib.stride_tricks.sliding_window_view(x, size)[::size // 2] * np.hanning(size)
    spec = np.mean(np.abs(np.fft.rfft(frames, axis=1)) ** 2, axis=0)
    f = np.fft.rfftfreq(size, 1 / track.rate)
    band = (f >= lo_hz) & (f < hi_hz)
    return float(10 * np.log10(np.mean(spec[band]) + 1e-30)) if band.any() else float("nan")


def measure_filter(ref: AudioTrack, pert: AudioTrack, params: dict[str, Any]) -> dict[str, Any]:
    """Attenuation (dB) one octave beyond each edge, where the filter must have cut (and the pass band's)."""
    nyq = ref.rate / 2
    stops: list[tuple[float, float]] = []
    if params.get("high_hz"):  # low-pass edge: the octave above it
        stops.append((2 * params["high_hz"], min(4 * params["high_hz"], nyq)))
    if params.get("low_hz"):  # high-pass edge: the octave below it
        stops.append((max(20.0, params["low_hz"] / 4), params["low_hz"] / 2))
    out: dict[str, Any] = {"stop_bands": []}
    for lo, hi in stops:
        if hi <= lo:
            continue
        out["stop_bands"].append({"hz": [round(lo), round(hi)],
                                  "attenuation_db": round(band_power_db(ref, lo, hi) - band_power_db(pert, lo, hi), 2),
                                  "ref_level_db": round(band_power_db(ref, lo, hi), 2)})
    return out


def segment_level_db(track: AudioTrack, segments: Sequence[Sequence[float]]) -> float:
    """RMS level (dBFS) inside the segments."""
    parts = [track.samples[:, int(a * track.rate): int(b * track.rate)] for a, b in segments]
    x = np.concatenate(parts, axis=1) if parts else np.zeros((1, 1))
    return float(10 * np.log10(np.mean(x.astype(np.float64) ** 2) + 1e-20))


# ---------------------------------------------------------------- pictures
def _frames(path: Path, max_pixels: int = 256 * 144) -> tuple[np.ndarray, np.ndarray]:
    from mtavg.media import probe
    from mtavg.media.prepare import decode_clip

    # Every frame: one target per source frame (fps=None would sample only 8 frames in all).
    fps = probe(path).fps or 25.0
    d = decode_clip(path, fps=fps, max_frames=10 ** 6, max_pixels=max_pixels, with_audio=False)
    if d.frames is None:
        raise ValueError(f"{path}: no frames")
    return d.frames, d.frame_times


def repeated_frames(frames: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """(T,) True where a frame repeats the one before it (mean absolute difference < ``threshold``)."""
    diff = np.abs(np.diff(frames.astype(np.int16), axis=0)).mean(axis=(1, 2, 3))
    return np.concatenate([[False], diff < threshold])


def _frame_change(frames: np.ndarray) -> np.ndarray:
    """(T,) mean absolute difference of each frame from the one before it (0 for the first)."""
    diff = np.abs(np.diff(frames.astype(np.int16), axis=0)).mean(axis=(1, 2, 3))
    return np.concatenate([[0.0], diff])


def sharpness(frames: np.ndarray) -> float:
    """Mean variance of the Laplacian of the luma (higher = sharper)."""
    g = frames.astype(np.float32).mean(axis=3)
    lap = 4 * g[:, 1:-1, 1:-1] - g[:, :-2, 1:-1] - g[:, 2:, 1:-1] - g[:, 1:-1, :-2] - g[:, 1:-1, 2:]
    return float(lap.var(axis=(1, 2)).mean())


def channel_gains(ref: np.ndarray, pert: np.ndarray) -> list[float]:
    """Per-channel mean ratio pert / ref over mid-tone pixels (neither dark nor near clipping)."""
    gains = []
    for c in range(3):
        r, p = ref[..., c].astype(np.float64), pert[..., c].astype(np.float64)
        mid = (r > 20) & (r < 180)
        gains.append(round(float(p[mid].mean() / r[mid].mean()), 4) if mid.any() else float("nan"))
    return gains


# ---------------------------------------------------------------- one clip
def verify_clip(negative: Path, reference: Path, perturbation: str, params: dict[str, Any], *,
                donor: Path | None = None) -> dict[str, Any]:
    """``{"expected": ..., "measured": ..., "ok": bool | None}`` for one negative against its reference.

    ``ok`` is None when the clip's content does not allow the measurement (e.g. no pitched sound).
    """
    result: dict[str, Any] = {"perturbation": perturbation, "expected": {}, "measured": {}, "ok": None}
    if perturbation in ("freeze", "stutter", "colour_cast", "blur"):
        return _verify_video(result, negative, reference, perturbation, params)
    ref, pert = read_audio(reference), read_audio(negative)
    e, m = result["expected"], result["measured"]
    if perturbation == "time_shift":
        e["shift_ms"] = params["shift_ms"]
        m.update(measure_shift_ms(ref, pert))
        if not m["ambiguous"]:
            result["ok"] = abs(m["shift_ms"] - e["shift_ms"]) <= TOLERANCE["shift_ms"]
    elif perturbation == "speed_change":
        e["duration_ratio"] = 1 / params["factor"]
        m["duration_ratio"] = measure_duration_ratio(ref, pert)
        result["ok"] = abs(m["duration_ratio"] / e["duration_ratio"] - 1) <= TOLERANCE["duration_ratio"]
    elif perturbation == "pitch_shift":
        e["semitones"] = params["semitones"]
        m.update(measure_pitch_shift(ref, pert))
        if m["semitones"] is not None:
            result["ok"] = abs(m["semitones"] - e["semitones"]) <= TOLERANCE["semitones"]
    elif perturbation == "noise":
        e["snr_db"] = params["snr_db"]
        m["snr_db"] = measure_snr_db(ref, pert)
        result["ok"] = abs(m["snr_db"] - e["snr_db"]) <= TOLERANCE["snr_db"]
    elif perturbation == "filter":
        e["stop_band_attenuation_db"] = ">= 20"
        m.update(measure_filter(ref, pert, params))
        # a stop band the reference has no sound in (below the codec's floor) cannot show a cut
        audible = [b for b in m["stop_bands"] if b["ref_level_db"] > -60]
        result["ok"] = all(b["attenuation_db"] >= 20 for b in audible) if audible else None
    elif perturbation in ("dropout", "mute"):
        segments = params.get("segments") or [[0.0, ref.duration_s]]
        e["level_dbfs"] = "<= -60"
        m["level_dbfs"] = segment_level_db(pert, [[a + 0.01, b - 0.01] for a, b in segments])
        result["ok"] = m["level_dbfs"] <= -60
    elif perturbation in ("random_mismatch", "semantic_mismatch"):
        e["correlation_with_reference"] = "< 0.3"
        m["correlation_with_reference"] = measure_shift_ms(ref, pert)["peak_correlation"]
        ok = m["correlation_with_reference"] < 0.3
        if donor is not None:
            d = read_audio(donor)
            if d.rate != ref.rate:
                d = d.with_samples(resample(d.samples, ref.rate / d.rate))
                d.rate = ref.rate
            start = int(params.get("offset_s", 0.0) * ref.rate)
            d = d.with_samples(d.samples[:, start:])
            e["correlation_with_donor"] = ">= 0.9"
            m["correlation_with_donor"] = measure_shift_ms(d, pert, max_ms=50)["peak_correlation"]
            ok = ok and m["correlation_with_donor"] >= 0.9
        result["ok"] = ok
    return result


def _verify_video(result: dict[str, Any], negative: Path, reference: Path, perturbation: str,
                  params: dict[str, Any]) -> dict[str, Any]:
    # Colour needs more pixels: a 256x144 decode of a cast, high-contrast texture reads the gain ~5 % low
    # (4:2:0 chroma is rescaled and clipped before it becomes RGB); 640x360 reads it within ~3 %.
    pixels = 640 * 360 if perturbation == "colour_cast" else 256 * 144
    ref, times = _frames(reference, pixels)
    pert, _ = _frames(negative, pixels)
    n = min(len(ref), len(pert))
    ref, pert, times = ref[:n], pert[:n], times[:n]
    e, m = result["expected"], result["measured"]
    still = repeated_frames(ref)  # the source itself does not move here: a held frame cannot show
    if perturbation == "freeze":
        window = (times >= params["start_s"]) & (times < params["start_s"] + params["duration_s"])
        held_expected = max(0, int(window.sum()) - 1)
        extra = repeated_frames(pert) & ~still
        e["frames_held"], m["frames_held"] = held_expected, int((extra & window).sum())
        m["frames_held_visible"] = int((window & ~still).sum()) - (1 if window.any() else 0)
        m["frames_held_outside"] = int((extra & ~window).sum())
        result["ok"] = (m["frames_held"] >= 0.9 * max(0, m["frames_held_visible"])
                        and m["frames_held_outside"] <= 0.02 * n)
    elif perturbation == "stutter":
        idx = np.arange(n)
        dropped = idx % params["period"] >= params["period"] - params["hold"]
        # A held frame is re-encoded (x264 may refine it, or code it afresh at a scene-cut decision), so it
        # need not be bit-identical to the one before it. Compare instead: a held frame is much closer to
        # the frame before it than to the source frame of its own time; a fresh frame is the reverse.
        to_previous = _frame_change(pert)
        to_source = np.abs(pert.astype(np.int16) - ref.astype(np.int16)).mean(axis=(1, 2, 3))
        repeats = repeated_frames(pert) | ((to_previous < 0.5 * to_source) & (idx > 0))
        at, off = dropped & ~still, ~dropped & ~still
        e["dropped_share"] = params["hold"] / params["period"]
        m["dropped_share"] = round(float((repeats & ~still).sum() / max(1, (~still).sum())), 4)
        m["repeated_where_dropped"] = round(float(repeats[at].mean()), 4) if at.any() else None
        m["repeated_elsewhere"] = round(float(repeats[off].mean()), 4) if off.any() else None
        if at.any() and off.any():
            result["ok"] = m["repeated_where_dropped"] >= 0.9 and m["repeated_elsewhere"] <= 0.05
    elif perturbation == "colour_cast":
        e["gains"] = params["gains"]
        m["gains"] = channel_gains(ref, pert)
        # within 10 % of each channel's change, plus 0.02 for the codec
        result["ok"] = all(abs(a - b) <= 0.1 * abs(b - 1) + 0.02 for a, b in zip(m["gains"], e["gains"], strict=True))
    elif perturbation == "blur":
        e["sharpness_ratio"] = "< 0.8"
        m["sharpness_ratio"] = round(sharpness(pert) / max(sharpness(ref), 1e-9), 4)
        result["ok"] = m["sharpness_ratio"] < 0.8
    return result


def verify_dataset(root: Path, *, limit: int | None = None) -> list[dict[str, Any]]:
    """Every made negative of a pair dataset measured against its source clip (see ``verify_clip``).

    The source, not the positive, is the reference: the positive went through AAC once more, and at
    25 dB SNR that second encoding alone would move the measured SNR by ~1.5 dB.
    """
    import json

    rows = [json.loads(line) for line in (root / "manifest.jsonl").read_text(encoding="utf-8").splitlines()
            if line.strip()]
    source_dir = Path(json.loads((root / "build.json").read_text(encoding="utf-8"))["source_dir"])
    out = []
    for r in [r for r in rows if r["status"] == "ok" and r["role"] == "negative"][:limit]:
        donor = r["params"].get("donor_path")
        try:
            res = verify_clip(root / r["path"], source_dir / r["source_path"], r["perturbation"], r["params"],
                              donor=(source_dir / donor) if donor else None)
        except Exception as exc:  # noqa: BLE001 - one unmeasurable clip is its row, not the end
            res = {"perturbation": r["perturbation"], "ok": None, "error": f"{type(exc).__name__}: {exc}"}
        out.append({"clip_id": r["clip_id"], "level": r["level"], **res})
    return out
