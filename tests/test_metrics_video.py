"""Video signal metrics (`shots`, `frames`) on clips built in code, the demo bench and (opt-in) real clips."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from mtavg.metrics.base import METRICS, ClipMedia, load_clip
from mtavg.metrics.shots import shots_metric
from mtavg.metrics.video import frames_metric

FPS = 25.0
H, W = 108, 192


def _clip(frames: np.ndarray | list[np.ndarray], fps: float = FPS) -> ClipMedia:
    frames = np.clip(np.asarray(frames), 0, 255).astype(np.uint8)
    n = len(frames)
    return ClipMedia(path=Path("synthetic.mp4"), frames=frames, frame_times=np.arange(n) / fps, fps=fps,
                     audio=None, sample_rate=16000, duration_s=n / fps)


def _scene(seed: int, tint: tuple[float, float, float] = (1.0, 1.0, 1.0), size: int = 3) -> np.ndarray:
    """A textured 'location' (blobs at a few scales), larger than the frame so the camera can move."""
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal((H + 80, W + 80))
    img = sum(ndimage.gaussian_filter(noise, s) * s for s in (size, 2 * size, 6))
    img = (img - img.mean()) / img.std() * 45 + 120
    return np.stack([img * t for t in tint], -1)


def _shot(scene: np.ndarray, n: int, speed: float = 1.0, start: float = 0.0) -> list[np.ndarray]:
    """n frames of a slow pan across ``scene`` (speed px/frame), back and forth within its margin."""
    xs = [int(start + k * speed) % 120 for k in range(n)]
    return [scene[20: 20 + H, x: x + W] if x <= 60 else scene[20: 20 + H, 120 - x: 120 - x + W] for x in xs]


def _zoom(img: np.ndarray, z: float) -> np.ndarray:
    return np.stack([ndimage.zoom(img[..., c], z, order=1) for c in range(3)], -1)


# ---------------------------------------------------------------- shots
def test_hard_cuts_at_the_exact_frames_between_colour_fields():
    frames = (_shot(_scene(1, (1.1, 0.9, 0.7)), 30) + _shot(_scene(2, (0.6, 0.9, 1.2)), 25)
              + _shot(_scene(3, (0.9, 1.1, 0.8)), 35))
    r = shots_metric(_clip(frames))
    assert r["backend"] == "native"
    assert r["cut_times"] == [round(30 / FPS, 3), round(55 / FPS, 3)]
    assert r["n_shots"] == 3 and r["jump_cuts"] == []
    assert r["mean_shot_s"] == pytest.approx(90 / FPS / 3, abs=1e-3)
    assert r["shots_per_minute"] == pytest.approx(3 / (90 / FPS) * 60, abs=0.01)
    assert all(c["kind"] == "cut" and c["structure"] < 0.3 for c in r["cuts"])
    json.dumps(r)


def test_fast_motion_and_a_flash_are_not_cuts():
    scene = _scene(4)
    pan = [scene[20: 20 + H, int(x): int(x) + W] for x in 30 + 28 * np.sin(np.arange(80) / 4)]  # whip pans
    frames = np.array(pan, float)
    frames[40] = 250  # one white flash frame
    r = shots_metric(_clip(frames))
    assert r["n_shots"] == 1, r["cuts"]


def test_fade_through_black_is_a_fade_not_a_cut():
    a, b = np.array(_shot(_scene(5), 40), float), np.array(_shot(_scene(6, (0.7, 1.0, 1.2)), 40), float)
    ramp = np.linspace(1, 0, 12)[:, None, None, None]
    frames = np.concatenate([a[:28], a[28:40] * ramp, np.zeros((4, H, W, 3)), b[:12] * ramp[::-1], b[12:]])
    r = shots_metric(_clip(frames))
    assert r["cuts"] and all(c["kind"] == "fade" for c in r["cuts"])
    assert all(28 / FPS <= t <= 56 / FPS for t in r["cut_times"])


def test_dissolve_is_one_gradual_boundary():
    # Locked-off shots with sensor noise: the blend test needs the two ends to hold still-ish.
    noise = np.random.default_rng(0).normal(0, 2, (100, H, W, 1))
    a, b = np.array(_shot(_scene(7), 50, speed=0.1), float), np.array(_shot(_scene(8), 50, speed=0.1), float)
    w = np.linspace(0, 1, 14)[:, None, None, None]
    frames = np.concatenate([a[:30], a[30:44] * (1 - w) + b[:14] * w, b[14:]]) + noise[:80]
    r = shots_metric(_clip(frames))
    assert [c["kind"] for c in r["cuts"]] == ["dissolve"]
    assert abs(r["cut_times"][0] - 37 / FPS) <= 2 / FPS


def test_jump_cut_is_flagged_and_an_ordinary_cut_is_not():
    scene = _scene(9, size=2)
    a = _shot(scene, 30, speed=0)  # locked-off camera, then 5 % closer
    jumped = [_zoom(f, 1.05)[3: 3 + H, 5: 5 + W] for f in _shot(scene, 30, speed=0)]
    other = _shot(_scene(10), 30)
    r = shots_metric(_clip(a + jumped + other))
    assert r["n_shots"] == 3
    assert r["jump_cuts"] == [round(30 / FPS, 3)]
    assert [c["jump_cut"] for c in r["cuts"]] == [True, False]


def test_colour_change_in_one_shot_is_no_cut_but_a_colour_jump():
    frames = np.array(_shot(_scene(11), 100), float)
    frames[50:] = frames[50:] * np.array([0.75, 0.9, 1.3])  # the grade turns cold at frame 50
    clip = _clip(frames)
    s = shots_metric(clip)
    assert s["n_shots"] == 1
    assert s["rejected"] and s["rejected"][0]["reason"].startswith("same layout")
    r = frames_metric(clip)
    assert r["n_color_jumps"] == 1
    jump = r["color_jumps"][0]
    assert jump["time"] == pytest.approx(50 / FPS, abs=1 / FPS) and jump["delta_e"] > 10 and jump["d_b"] < 0


def test_colour_jumps_ignore_cuts_and_slow_drift():
    a = np.array(_shot(_scene(12), 50), float) * np.linspace(1.0, 0.6, 50)[:, None, None, None]  # dimming
    b = np.array(_shot(_scene(13, (0.5, 0.8, 1.3)), 50), float)
    r = frames_metric(_clip(np.concatenate([a, b])))
    assert r["n_shots"] == 2 and r["color_jumps"] == []
    assert r["brightness_drift"] < -10  # levels per second, within the first shot


# ---------------------------------------------------------------- frames
def test_frozen_segment_and_motion_envelope():
    frames = np.array(_shot(_scene(14), 80, speed=1.0), float)
    frames[20:40] = frames[20]  # 20 frames showing one picture
    clip = _clip(frames)
    r = frames_metric(clip)
    assert r["dup_ratio"] == pytest.approx(19 / 79, abs=1e-3)
    assert r["longest_frozen_s"] == pytest.approx(20 / FPS)
    assert r["longest_frozen_at"] == pytest.approx(20 / FPS)
    times, values = clip.extras["motion_envelope"]
    assert len(times) == len(values) == 79 and times[0] == pytest.approx(1 / FPS)
    assert np.all(values[20:39] < 0.5) and values[50] > 1


def test_small_moving_region_is_not_a_frozen_frame():
    frames = np.repeat(np.array(_shot(_scene(15), 1), float), 40, axis=0)
    for k in range(40):  # a 'mouth': an 8x8 patch opening and closing, mean change < 0.5 per frame
        frames[k, 50:58, 90:98] = 40 + 120 * (k % 2)
    r = frames_metric(_clip(frames))
    assert r["low_motion_ratio"] == 1.0 and r["dup_ratio"] == 0.0


def test_flicker_and_sharpness():
    base = np.array(_shot(_scene(16, size=1), 60), float)
    steady = frames_metric(_clip(base))
    flicker = frames_metric(_clip(base + 6 * (np.arange(60) % 2)[:, None, None, None]))
    assert flicker["flicker"] > 1 and steady["flicker"] < 0.2
    blurred = frames_metric(_clip(ndimage.gaussian_filter(base, (0, 2, 2, 0))))
    assert blurred["sharpness_mean"] < 0.2 * steady["sharpness_mean"]
    assert steady["sharpness_min"] <= steady["sharpness_mean"]


def test_metrics_are_registered_and_tiny_clips_do_not_crash():
    assert METRICS["shots"].needs == ("video",) and METRICS["frames"].needs == ("video",)
    for n in (1, 2, 5):
        clip = _clip(np.full((n, H, W, 3), 90.0))
        json.dumps(shots_metric(clip)), json.dumps(frames_metric(clip))


def test_scenedetect_backend_is_recorded():
    pytest.importorskip("scenedetect")
    frames = _shot(_scene(1, (1.2, 0.9, 0.6)), 30) + _shot(_scene(2, (0.5, 0.9, 1.3)), 30)
    r = shots_metric(_clip(frames), backend="scenedetect")
    assert r["backend"] == "scenedetect" and r["cut_times"] == [round(30 / FPS, 3)]


# ---------------------------------------------------------------- demo bench
@pytest.fixture(scope="module")
def demo_clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[ClipMedia, dict]]:
    """The demo clips with cuts, jump cuts and colour injections, rendered once."""
    from mtavg.bench.demo import make_clip_specs
    from mtavg.bench.demo_media import render_clip

    root = tmp_path_factory.mktemp("demo")
    wanted = {"demo-03", "demo-09", "demo-10", "demo-11", "demo-12", "demo-14"}
    out = {}
    for spec in make_clip_specs(0):
        if spec.video_id in wanted:
            render_clip(spec, root / f"{spec.video_id}.mp4")
            out[spec.video_id] = (load_clip(root / f"{spec.video_id}.mp4"), spec.to_script())
    return out


def test_demo_cut_times_within_one_frame(demo_clips):
    for vid, (clip, script) in demo_clips.items():
        r = shots_metric(clip)
        expected = [s["start_s"] for s in script["shots"][1:]]
        assert len(r["cut_times"]) == len(expected), vid
        assert np.allclose(r["cut_times"], expected, atol=1.01 / clip.fps), vid


def test_demo_jump_cuts(demo_clips):
    for vid, (clip, script) in demo_clips.items():
        jumps = shots_metric(clip)["jump_cuts"]
        injected = [i for i in script["injected"] if i["failure_mode"] == "shot_progression_issues"]
        if injected:
            a, b = injected[0]["start_s"], injected[0]["end_s"]
            assert len(jumps) == 3 and all(a <= t <= b for t in jumps), vid
        else:
            assert jumps == [], vid


def test_demo_colour_injections_show_a_colour_jump_at_the_injected_time(demo_clips):
    for vid, (clip, script) in demo_clips.items():
        r = frames_metric(clip)
        injected = [i for i in script["injected"]
                    if i["failure_mode"] in ("scene_consistency_drift", "visual_mood_drift")]
        if injected:
            inj = injected[0]
            assert len(r["color_jumps"]) == 1, vid
            assert inj["start_s"] - 0.1 <= r["color_jumps"][0]["time"] <= inj["end_s"] + 0.1, vid
        else:
            assert r["color_jumps"] == [], vid


# ---------------------------------------------------------------- real clips (opt-in)
REAL = os.environ.get("MTAVG_REAL_CLIPS")


@pytest.mark.skipif(not REAL, reason="MTAVG_REAL_CLIPS is not set")
def test_real_trailers_have_shots_and_single_takes_have_none():
    clips = {p.stem: p for p in Path(REAL or ".").glob("*.mp4")}
    if "case2_ltx2" in clips:  # heist trailer: hard cuts to the car park and to the title card
        r = shots_metric(load_clip(clips["case2_ltx2"]))
        assert r["n_shots"] >= 3 and any(abs(t - 3.79) < 0.1 for t in r["cut_times"])
    for name in ("case3_ltx2", "case6_veo3_1_fast"):  # one continuous take each
        if name in clips:
            assert shots_metric(load_clip(clips[name]))["n_shots"] == 1, name
