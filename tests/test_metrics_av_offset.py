"""av_offset: known shifts on synthetic flash/click clips, chance-level content, cuts, and the demo clips."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mtavg.metrics import av_offset as ao
from mtavg.metrics.base import METRICS, load_clip
from mtavg.testing.av_events import flash_click
from mtavg.testing.av_events import synthetic_clip as _clip

SR = 16000


@pytest.mark.parametrize("shift", [-0.8, -0.45, -0.1, 0.1, 0.237, 0.5, 0.8])
def test_known_shift_of_flash_click_events_is_recovered_within_a_frame(shift):
    for seed, fps in ((0, 24.0), (1, 30.0)):
        rec = ao.estimate_offset(flash_click(shift, seed, fps))
        assert rec["confident"], rec["reason"]
        assert abs(rec["offset_s"] - shift) <= 1 / fps, (fps, rec["offset_s"])
        assert rec["offset_frames"] == pytest.approx(rec["offset_s"] * fps, abs=0.01)


def test_subframe_precision_on_clean_events():
    errs = [ao.estimate_offset(flash_click(s, seed=3))["offset_s"] - s for s in (0.013, 0.031, 0.29)]
    assert np.max(np.abs(errs)) < 0.5 / 24  # better than half a frame: parabolic interpolation works


@pytest.mark.parametrize("seed", range(4))
def test_static_frame_with_noise_audio_is_not_confident(seed):
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 255, (72, 96, 3))
    frames = np.clip(base[None] + rng.integers(-2, 3, (192, 72, 96, 3)), 0, 255).astype(np.uint8)
    rec = ao.estimate_offset(_clip(frames, 24.0, 0.2 * rng.standard_normal(8 * SR)))
    assert not rec["confident"] and rec["reason"], rec


def test_frozen_picture_or_silence_is_not_confident():
    still = np.full((96, 48, 64, 3), 90, np.uint8)
    rec = ao.estimate_offset(_clip(still, 24.0, np.random.default_rng(0).standard_normal(4 * SR) * 0.1))
    assert not rec["confident"] and rec["reason"] == "no visual motion"
    clip = flash_click(0.0)
    clip.audio = np.zeros_like(clip.audio)
    assert ao.estimate_offset(clip)["reason"] == "no audio events"


def test_independent_events_are_not_confident():
    """Flashes of one clip with the clicks of another: sparse events that can line up by chance."""
    for seed in range(4):
        a, b = flash_click(0.0, seed), flash_click(0.0, seed + 50)
        a.audio = b.audio
        assert not ao.estimate_offset(a)["confident"], seed


def test_no_audio_stream_is_skipped(tmp_path):
    from conftest import write_tiny_clip
    from mtavg.metrics.run import compute_clip

    assert "audio" in METRICS["av_offset"].needs
    assert ao.estimate_offset(_clip(np.zeros((8, 8, 8, 3), np.uint8), 8.0, None)) == {"skipped": "no audio stream"}
    rec = compute_clip(write_tiny_clip(tmp_path / "silent.mp4", audio=False), ["av_offset"])
    assert "skipped" in rec["metrics"]["av_offset"]


def test_cut_spikes_do_not_dominate():
    cuts = (1.3, 3.1, 4.7, 6.2)
    clip = flash_click(0.3, seed=2, cuts=cuts)
    mot = ao.motion_envelopes(clip)
    found = mot["times"][mot["cuts"]]
    assert len(found) == len(cuts) and np.allclose(found, np.array(cuts) - 0.5 / 24, atol=1 / 24)
    assert mot["cuts"].sum() == len(cuts)  # the flashes themselves are not taken for cuts
    rec = ao.estimate_offset(clip)
    assert rec["confident"] and abs(rec["offset_s"] - 0.3) <= 1 / 24 and rec["n_cuts"] == len(cuts)
    # without the cut mask, the cut spikes (6x the flashes) would outweigh the events
    saved = ao.cut_mask
    try:
        ao.cut_mask = lambda d, t, fps: np.zeros(len(d), bool)
        unmasked = ao.estimate_offset(clip)
    finally:
        ao.cut_mask = saved
    assert unmasked["confidence"] < rec["confidence"]


def test_record_is_json_and_curve_is_decimated():
    rec = ao.estimate_offset(flash_click(0.2), max_lag_s=1.5)
    json.dumps(rec)
    assert rec["max_lag_s"] == 1.5 and rec["source"] in rec["sources"]
    assert len(rec["curve"]["lags_s"]) == len(rec["curve"]["r"]) == 151  # 20 ms steps over +-1.5 s
    assert ao.estimate_offset(flash_click(0.2), max_lag_s=9)["max_lag_s"] == ao.MAX_LAG_LIMIT_S


def test_mouth_envelopes_from_extras_are_a_source():
    clip = flash_click(-0.3, seed=4)
    g = clip.gray
    # a "mouth" whose opening is the frame brightness: it moves exactly when the squares flash
    clip.extras["mouth_envelopes"] = [(clip.frame_times, g.mean(axis=(1, 2)) / 255)]
    rec = ao.estimate_offset(clip)
    assert rec["n_faces"] == 1 and "mouth" in rec["sources"]
    assert abs(rec["sources"]["mouth"]["offset_s"] + 0.3) <= 1 / 24


@pytest.fixture(scope="module")
def demo_bench(tmp_path_factory) -> Path:
    from mtavg.bench.demo import build_demo_bench

    return build_demo_bench(tmp_path_factory.mktemp("demo"))


def test_demo_clips_known_offsets_are_recovered(demo_bench):
    """Talking cartoon heads; reaction_timing_failure takes have their whole soundtrack 0.4-0.8 s late.
    Mouths are drawn from the *following* frame interval's speech, so +half a frame (33 ms) is expected."""
    n_conf, late = 0, 0
    for line in (demo_bench / "videos.jsonl").read_text().splitlines():
        v = json.loads(line)
        rec = ao.estimate_offset(load_clip(demo_bench / v["path"]), use_mouth=False)
        err = rec["offset_s"] - v["script"]["audio_offset_s"]
        n_conf += rec["confident"]
        if rec["confident"] or v["script"]["audio_offset_s"] > 0:
            assert abs(err) <= 1 / 15, (v["video_id"], rec["offset_s"], v["script"]["audio_offset_s"])
        late += v["script"]["audio_offset_s"] > 0
    assert late == 2 and n_conf >= 12
