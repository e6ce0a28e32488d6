"""``pitch`` section of validate_metrics: the metric's dominant note against an independent reference.

Reference (no YIN): pluck onsets from spectral flux; per pluck, the spectral peaks of the 30-500 ms after the
onset (Hann window, 0.24 Hz bins, parabolic peak interpolation, peaks within 30 dB of the strongest); the
*harmonic f0* is the highest f0 (50-1500 Hz, 5-cent grid) whose first 16 harmonics (+-25 cents) carry at
least 70 % of the peak power and within 0.1 of the best any f0 achieves -- the highest, so that
sub-harmonics (which explain everything their multiples do) are not chosen; none means no single harmonic
series explains the sound (a chord, noise). ``a4_share`` is the peak power on harmonics of 440 Hz. A pluck
plays A4 when its harmonic f0 is within +-50 cents of 440 Hz; a clip plays A4 when most of its plucks do.
The YIN metric's note before power weighting (``frame_count_note``) is reported alongside.

Synthetic check: Karplus-Strong plucks (exact pitch) at known notes with pink noise, a 60 Hz hum, and an
A-minor chord, through both the metric and the reference.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from scipy import signal

from mtavg.metrics.audio_pitch import dominant_note, hz_to_midi, note_name, pitch_metric, yin
from mtavg.metrics.base import ClipMedia, load_clip
from mtavg.testing.pluck import pluck_clip

SR = 16000
A4_HZ, A4_TOL_CENTS = 440.0, 50.0
HARMONIC_SHARE = 0.7  # a harmonic series must carry this much of a pluck's peak energy
N_HARMONICS, HARMONIC_TOL_CENTS = 16, 25.0
SYNTH_NOTES = ("A2", "E3", "A3", "D4", "G4", "A4", "B4", "E5")
AM_CHORD = ("A2", "E3", "A3", "C4", "E4")  # open A-minor on a guitar


# ---------------------------------------------------------------- signals with a known pitch
def note_hz(name: str) -> float:
    names = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
    pitch, octave = name.rstrip("0123456789"), int(name[len(name.rstrip("0123456789")):])
    return float(A4_HZ * 2 ** ((names.index(pitch) + 12 * (octave + 1) - 69) / 12))


# ---------------------------------------------------------------- the reference estimator
def onset_times(audio: np.ndarray, sr: int = SR) -> np.ndarray:
    """Spectral-flux onsets (log magnitude rises, 10 ms hop): peaks over 30 % of the largest, 0.25 s apart."""
    hop, win = sr // 100, 1024
    _, t, z = signal.stft(audio, sr, nperseg=win, noverlap=win - hop, boundary=None)
    flux = np.r_[0.0, np.maximum(np.diff(np.log1p(100 * np.abs(z)), axis=1), 0).sum(0)]
    peaks, _ = signal.find_peaks(flux, height=0.3 * flux.max(), distance=int(0.25 * sr / hop))
    return np.maximum(t[peaks] - win / 2 / sr, 0.0)


def spectral_peaks(segment: np.ndarray, sr: int = SR) -> tuple[np.ndarray, np.ndarray]:
    """(Hz, power) of the spectral peaks in 50-4000 Hz within 30 dB of the strongest."""
    n_fft = 1 << 16
    db = 20 * np.log10(np.abs(np.fft.rfft(segment * np.hanning(len(segment)), n_fft)) + 1e-12)
    freqs = np.fft.rfftfreq(n_fft, 1 / sr)
    band = (freqs > 50) & (freqs < 4000)
    idx, _ = signal.find_peaks(np.where(band, db, -300.0), prominence=6, distance=int(15 / freqs[1]))
    idx = idx[db[idx] > db[idx].max() - 30] if len(idx) else idx
    a, b, c = db[idx - 1], db[idx], db[idx + 1]
    frac = 0.5 * (a - c) / np.where(a - 2 * b + c == 0, -1e-9, a - 2 * b + c)
    return freqs[idx] + frac * freqs[1], 10 ** (b / 10)


def _on_harmonics(freqs: np.ndarray, f0: float) -> tuple[np.ndarray, np.ndarray]:
    """(mask of peaks within HARMONIC_TOL_CENTS of harmonics 1..N_HARMONICS of f0, their harmonic numbers)."""
    h = np.maximum(1, np.round(freqs / f0))
    return (np.abs(1200 * np.log2(freqs / (h * f0))) < HARMONIC_TOL_CENTS) & (h <= N_HARMONICS), h


def harmonic_share(freqs: np.ndarray, power: np.ndarray, f0: float) -> float:
    """Share of the peak power lying on the first N_HARMONICS harmonics of f0."""
    on, _ = _on_harmonics(freqs, f0)
    return float(power[on].sum() / max(power.sum(), 1e-30))


def harmonic_f0(freqs: np.ndarray, power: np.ndarray) -> tuple[float | None, float]:
    """(f0, its share): the highest f0 whose harmonics carry HARMONIC_SHARE of the peak power and within
    0.1 of the best share of any f0 -- the highest, because a sub-harmonic explains everything its
    multiples do; near the best, so that a weak fundamental does not give the octave above. f0 is refined
    to the power-weighted mean of (peak Hz / harmonic number) over the peaks it explains; None when no
    single harmonic series explains the sound (a chord, noise)."""
    grid = 1500.0 * 2 ** (-np.arange(0, 1200 * np.log2(1500 / 50), 5) / 1200)  # high to low
    shares = np.array([harmonic_share(freqs, power, f) for f in grid])
    ok = shares >= max(HARMONIC_SHARE, shares.max() - 0.1)
    if not ok.any():
        return None, round(float(shares.max()), 3)
    f0 = grid[int(np.argmax(ok))]
    on, h = _on_harmonics(freqs, f0)
    return float(np.sum(power[on] * freqs[on] / h[on]) / np.sum(power[on])), round(float(shares[ok][0]), 3)


def reference_pitch(audio: np.ndarray, sr: int = SR) -> dict[str, Any]:
    """Per pluck: strongest partial, harmonic f0 and A4 share; whether the clip plays A4 (see docstring)."""
    onsets, plucks = onset_times(audio, sr), []
    for k, t0 in enumerate(onsets):
        end = min(onsets[k + 1] if k + 1 < len(onsets) else len(audio) / sr, t0 + 0.5)
        seg = audio[int((t0 + 0.03) * sr): int(end * sr)]
        if len(seg) < int(0.1 * sr):
            continue
        freqs, power = spectral_peaks(seg, sr)
        f0, share = harmonic_f0(freqs, power)
        top = float(freqs[np.argmax(power)])
        plucks.append({
            "t": round(float(t0), 2), "strongest_partial_hz": round(top, 1),
            "strongest_partial": note_name(int(np.rint(hz_to_midi(top)))),
            "harmonic_f0_hz": None if f0 is None else round(f0, 1),
            "harmonic_note": None if f0 is None else note_name(int(np.rint(hz_to_midi(f0)))),
            "harmonic_share": share,
            "a4_share": round(harmonic_share(freqs, power, A4_HZ), 3),
            "partials": sorted({note_name(int(np.rint(hz_to_midi(f)))) for f, p in zip(freqs, power, strict=True)
                                if p > power.max() / 10 ** 1.2}, key=note_hz)})  # within 12 dB
    is_a4 = [p["harmonic_f0_hz"] is not None
             and bool(abs(1200 * np.log2(p["harmonic_f0_hz"] / A4_HZ)) <= A4_TOL_CENTS) for p in plucks]
    named = [p["harmonic_f0_hz"] for p in plucks if p["harmonic_f0_hz"] is not None]
    return {"n_onsets": len(onsets), "onsets_s": [round(float(t), 2) for t in onsets],
            "plucks_a4": int(sum(is_a4)), "plucks_single_series": len(named),
            "median_harmonic_f0_hz": round(float(np.median(named)), 1) if named else None,
            "plays_a4": bool(plucks) and sum(is_a4) > len(plucks) / 2, "plucks": plucks}


# ---------------------------------------------------------------- the section
METRIC_KEYS = ("dominant_note", "dominant_note_hz", "dominant_note_cents", "dominant_note_share",
               "pitch_class", "voiced_ratio", "notes")


def _metric(audio: np.ndarray) -> dict[str, Any]:
    clip = ClipMedia(path=Path("synthetic"), frames=None, frame_times=np.zeros(0), fps=0.0,
                     audio=audio.astype(np.float32), sample_rate=SR, duration_s=len(audio) / SR)
    rec = pitch_metric(clip)
    return {k: rec[k] for k in METRIC_KEYS}


def frame_count_note(audio: np.ndarray) -> str | None:
    """The dominant note by voiced-frame count (the metric before power weighting), for comparison."""
    track = yin(audio, SR)
    return dominant_note(track.f0[track.voiced])["dominant_note"]


def _pitch_synthetic() -> dict[str, Any]:
    rows = []
    cases = [(n, (note_hz(n),), {"snr_db": 20.0}) for n in SYNTH_NOTES]
    cases += [("A4", (A4_HZ,), {"snr_db": 10.0}), ("A4", (A4_HZ,), {"snr_db": 30.0, "hum_db": -25.0}),
              ("Am chord", tuple(note_hz(n) for n in AM_CHORD), {"snr_db": 30.0})]
    for seed, (name, freqs, kw) in enumerate(cases):
        x = pluck_clip(freqs, seed, **kw)
        m, ref = _metric(x), reference_pitch(x)
        rows.append({"truth": name, **kw, "metric_note": m["dominant_note"], "metric_hz": m["dominant_note_hz"],
                     "metric_share": m["dominant_note_share"], "frame_count_note": frame_count_note(x),
                     "reference_f0_hz": ref["median_harmonic_f0_hz"], "reference_n_onsets": ref["n_onsets"],
                     "reference_single_series": ref["plucks_single_series"]})
    single = [r for r in rows if r["truth"] != "Am chord"]
    return {"clips": rows, "n_single_notes": len(single),
            "metric_correct": sum(r["metric_note"] == r["truth"] for r in single),
            "reference_correct": sum(r["reference_f0_hz"] is not None
                                     and note_name(int(np.rint(hz_to_midi(r["reference_f0_hz"])))) == r["truth"]
                                     for r in single),
            "reference_onsets_correct": sum(r["reference_n_onsets"] == 4 for r in rows)}


def _pitch_real(paths: list[Path]) -> dict[str, Any]:
    out = {}
    for p in paths:
        clip = load_clip(p)
        assert clip.audio is not None, p
        audio = clip.audio.astype(np.float64)
        m, ref = _metric(audio), reference_pitch(audio)
        out[p.stem] = {"metric": m, "metric_frame_count_note": frame_count_note(audio),
                       "metric_says_a4": m["dominant_note"] == "A4", "reference": ref,
                       "plays_a4": ref["plays_a4"]}
    return out


def validate_pitch(paths: list[Path]) -> dict[str, Any]:
    """``paths``: every real clip; the case6_* ones ("a guitarist plucks A4 four times") are used."""
    case6 = [p for p in paths if p.name.startswith("case6_")]
    return {"synthetic": _pitch_synthetic(),
            "real": _pitch_real(case6) if paths else {"skipped": "MTAVG_REAL_CLIPS is not set"}}


def print_pitch(res: dict[str, Any]) -> None:
    syn = res["synthetic"]
    for r in syn["clips"]:
        print(f"synthetic {r['truth']:9s} metric {r['metric_note']!s:5s} {r['metric_hz']!s:7s} Hz "
              f"(frame count: {r['frame_count_note']!s:4s}) reference f0 {r['reference_f0_hz']!s:6s} Hz "
              f"onsets {r['reference_n_onsets']}")
    print(f"synthetic single notes: metric {syn['metric_correct']}/{syn['n_single_notes']}, "
          f"reference {syn['reference_correct']}/{syn['n_single_notes']}")
    for name, c in res["real"].items():
        if name == "skipped":
            print("real:", c)
            continue
        m, ref = c["metric"], c["reference"]
        print(f"{name:20s} metric {m['dominant_note']} {m['dominant_note_hz']} Hz share {m['dominant_note_share']} "
              f"| onsets {ref['n_onsets']} {ref['onsets_s']} | plucks A4 {ref['plucks_a4']}/{len(ref['plucks'])} "
              f"single-series {ref['plucks_single_series']} | plays A4: {c['plays_a4']}")
        for p in ref["plucks"]:
            print(f"    t={p['t']:5.2f} strongest {p['strongest_partial_hz']:6.1f} ({p['strongest_partial']}) "
                  f"harmonic f0 {p['harmonic_f0_hz']!s:6s} ({p['harmonic_note']}, share {p['harmonic_share']:.2f}) A4 share {p['a4_share']:.2f} "
                  f"partials {' '.join(p['partials'])}")
