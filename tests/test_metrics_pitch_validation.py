"""Pitch metric on plucked strings (Karplus-Strong, exact pitch) with noise, hum and a low noisy tone."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mtavg.metrics.audio_pitch import dominant_note, pitch_metric, yin
from mtavg.metrics.base import ClipMedia
from mtavg.testing.pluck import karplus_strong, pluck_clip

SR = 16000
PLUCK_TIMES = (0.5, 2.3, 4.1, 5.9)


def plucks(f0: float, *, snr_db: float, seed: int = 0, hum_db: float | None = None) -> np.ndarray:
    """Four plucks in 8 s, peak 0.3, pink noise snr_db under the pluck RMS, optional 60 Hz hum under the peak."""
    return pluck_clip((f0,), seed, snr_db=snr_db, hum_db=hum_db, times=PLUCK_TIMES)


def clip(x: np.ndarray) -> ClipMedia:
    return ClipMedia(path=Path("plucks.wav"), frames=None, frame_times=np.zeros(0), fps=0.0,
                     audio=x.astype(np.float32), sample_rate=SR, duration_s=len(x) / SR)


def test_fixture_pluck_has_its_exact_pitch():
    x = karplus_strong(440.0, 1.0, np.random.default_rng(0))
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x)), 1 << 20))
    freqs = np.fft.rfftfreq(1 << 20, 1 / SR)
    band = (freqs > 300) & (freqs < 600)
    assert freqs[band][np.argmax(spec[band])] == pytest.approx(440.0, abs=0.2)


@pytest.mark.parametrize("snr_db", [30.0, 10.0])
def test_plucked_a4_in_noise_reads_a4(snr_db):
    rec = pitch_metric(clip(plucks(440.0, snr_db=snr_db)))
    assert rec["dominant_note"] == "A4" and abs(rec["dominant_note_cents"]) < 10, rec
    assert rec["dominant_note_share"] > 0.9


@pytest.mark.parametrize(("f0", "note"), [(110.0, "A2"), (196.0, "G3"), (329.63, "E4"), (659.26, "E5")])
def test_plucked_notes_read_their_note(f0, note):
    assert pitch_metric(clip(plucks(f0, snr_db=20.0, seed=3)))["dominant_note"] == note


def test_faint_hum_does_not_outvote_the_plucks():
    """60 Hz hum 25 dB under the pluck peaks voices every frame; counting frames named it (B1)."""
    x = plucks(440.0, snr_db=30.0, hum_db=-25.0)
    track = yin(x, SR)
    assert dominant_note(track.f0[track.voiced])["dominant_note"] == "B1"  # what frame counting says
    rec = pitch_metric(clip(x))
    assert rec["dominant_note"] == "A4" and rec["notes"][1][0] == "B1"  # the hum is there, second


def test_noisy_low_tone_is_not_read_sharp():
    """A low note's wide YIN dip is rippled by noise; its deepest point is the period, not the first ripple."""
    t = np.arange(4 * SR) / SR
    x = 0.02 * np.sin(2 * np.pi * 60 * t) + 0.003 * np.random.default_rng(0).standard_normal(len(t))
    assert np.nanmedian(yin(x, SR).f0) == pytest.approx(60.0, rel=0.005)


def test_dominant_note_weights_pick_the_heavy_note_and_are_checked():
    f0 = np.r_[np.full(90, 61.7), np.full(10, 440.0)]
    assert dominant_note(f0)["dominant_note"] == "B1"
    rec = dominant_note(f0, np.r_[np.full(90, 1e-4), np.full(10, 1e-2)])
    assert rec["dominant_note"] == "A4" and rec["dominant_note_share"] == pytest.approx(1 / 1.09, abs=1e-3)
    assert rec["pitch_class"] == "A" and [n for n, _ in rec["notes"]] == ["A4", "B1"]
    with pytest.raises(ValueError, match="3 weights for 100"):
        dominant_note(f0, np.ones(3))
