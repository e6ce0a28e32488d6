"""Lip-speech agreement (`lips`): lag maths on arrays, and MediaPipe on a synthetic talking face."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mtavg.metrics.base import METRICS, ClipMedia, load_clip
from mtavg.metrics.lips import _peak, lag_curve, lips_available, speech_envelope


def _needs_faces() -> None:
    pytest.importorskip("skimage")
    if lips_available() is not True:
        pytest.skip(str(lips_available()))


# ---------------------------------------------------------------- without mediapipe
def test_lag_sign_convention_on_arrays():
    """Audio late by k frames: corr(mouth[t], speech[t + lag]) peaks at lag = +k."""
    rng = np.random.default_rng(0)
    env = np.convolve(rng.random(260) > 0.7, np.hanning(7), mode="same")
    mouth = env[30:230]
    for k in (-6, -2, 0, 3, 9):
        speech = np.r_[np.zeros(30), env[30 - k: 230 - k], np.zeros(30)]  # speech index = mouth index + 30
        got = _peak(lag_curve(mouth, speech, start=30), fps=25.0)
        assert got["lip_offset_s"] == pytest.approx(k / 25.0, abs=0.2 / 25), k
        assert got["lip_sync_corr"] > 0.9 and got["confidence"] > 0.5


def test_speech_envelope_follows_band_energy_at_frame_times():
    sr, fps = 16000, 25.0
    t = np.arange(3 * sr) / sr
    audio = (0.3 * np.sin(2 * np.pi * 600 * t) * (t > 1.0) * (t < 2.0)).astype(np.float32)
    times = np.arange(75) / fps
    env = speech_envelope(audio, sr, times, fps)
    assert env.shape == (75,)
    assert env[35:45].min() > 20 * max(env[:20].max(), 1e-6) and env[60:].max() < 0.01 * env[35:45].mean()
    low = speech_envelope((0.3 * np.sin(2 * np.pi * 60 * t)).astype(np.float32), sr, times, fps)
    assert low.max() < 0.05 * env.max()  # hum below the speech band barely counts


def test_lips_is_registered_as_faces_extra():
    import mtavg.metrics.lips  # noqa: F401

    spec = METRICS["lips"]
    assert spec.extra == "faces"
    why = spec.available()
    assert why is True or "mediapipe" in str(why)


# ---------------------------------------------------------------- with mediapipe
def test_talking_face_lag_is_recovered_within_one_frame(tmp_path: Path):
    _needs_faces()
    from mtavg.metrics.lips import lips_metric
    from mtavg.testing.talking_face import make_talking_face

    for lag in range(-5, 6):
        clip = load_clip(make_talking_face(tmp_path / f"lag{lag}.mp4", lag_frames=lag, seconds=6.0, fps=25))
        r = lips_metric(clip)
        assert r["n_faces"] == 1, lag
        got = r["lip_offset_s"] * clip.fps
        assert abs(got - lag) <= 1.0, (lag, got)
        assert r["lip_sync_corr"] > 0.5 and r["confidence"] > 0.3, r
        assert r["pooled_offset_s"] == r["lip_offset_s"]  # one face: the pool is that face
        json.dumps(r)


def test_mouth_envelope_is_cached_per_face(tmp_path: Path):
    _needs_faces()
    from mtavg.metrics.lips import mouth_envelope
    from mtavg.testing.talking_face import make_talking_face

    clip = load_clip(make_talking_face(tmp_path / "face.mp4", seconds=3.0, seed=1))
    envs = mouth_envelope(clip)
    assert clip.extras["mouth_envelopes"] is envs and len(envs) == 1
    times, values = envs[0]
    assert len(times) == len(values) > 60 and np.nanmax(values) > 2 * np.nanmin(values)


def test_no_face_gives_empty_record():
    _needs_faces()
    from mtavg.metrics.lips import lips_metric

    frames = np.full((30, 108, 192, 3), 120, np.uint8)
    clip = ClipMedia(path=Path("grey.mp4"), frames=frames, frame_times=np.arange(30) / 25, fps=25.0,
                     audio=np.zeros(19200, np.float32), sample_rate=16000, duration_s=1.2)
    r = lips_metric(clip)
    assert r["n_faces"] == 0 and r["lip_offset_s"] is None and r["pooled_offset_s"] is None
    json.dumps(r)


def test_demo_lagging_soundtrack_is_found(tmp_path: Path):
    """Demo bench: demo-05 carries a 0.6 s audio lag (reaction_timing_failure), demo-06 is its clean take."""
    _needs_faces()
    from mtavg.bench.demo import make_clip_specs
    from mtavg.bench.demo_media import render_clip
    from mtavg.metrics.lips import lips_metric

    specs = {s.video_id: s for s in make_clip_specs(0)}
    for vid in ("demo-05", "demo-06"):
        render_clip(specs[vid], tmp_path / f"{vid}.mp4")
        r = lips_metric(load_clip(tmp_path / f"{vid}.mp4"))
        assert r["n_faces"] == 2, vid
        assert r["pooled_offset_s"] == pytest.approx(specs[vid].audio_offset_s, abs=0.1), vid
