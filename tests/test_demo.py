"""The demo benchmark: layout, items, determinism, and that every injected failure is really in the media."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import av
import numpy as np
import pytest

from mtavg.bench.demo import build_demo_bench, make_clip_specs
from mtavg.bench.demo_media import FPS, SPEAKERS, SR, ClipSpec
from mtavg.bench.schema import FORMATS, QAItem
from mtavg.bench.validate import validate_benchmark
from mtavg.taxonomy import load_taxonomy

HOP = SR // FPS  # audio samples per video frame


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_demo_bench(tmp_path_factory.mktemp("demo") / "bench", seed=0)


@pytest.fixture(scope="module")
def specs() -> dict[str, ClipSpec]:
    return {s.video_id: s for s in make_clip_specs(0)}


def _items(bench: Path) -> list[dict]:
    return [json.loads(line) for line in (bench / "qa.jsonl").read_text().splitlines() if line.strip()]


def _decode(path: Path) -> tuple[list[np.ndarray], np.ndarray]:
    with av.open(str(path)) as c:
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    with av.open(str(path)) as c:
        audio = np.concatenate([f.to_ndarray()[0] for f in c.decode(audio=0)])
    return frames, audio


def _with(specs: dict[str, ClipSpec], mode: str) -> list[ClipSpec]:
    out = [s for s in specs.values() if mode in [i.failure_mode for i in s.injections]]
    assert out, mode
    return out


def _injection(spec: ClipSpec, mode: str):
    return next(i for i in spec.injections if i.failure_mode == mode)


def _openness(frames: list[np.ndarray], spec: ClipSpec, speaker: str) -> np.ndarray:
    """Fraction of dark (mouth-interior) pixels in the speaker's mouth rectangle, per frame."""
    out = []
    for i, img in enumerate(frames):
        y0, y1, x0, x1 = spec.mouth_rect(speaker, i / FPS)
        out.append(float((img[y0:y1, x0:x1].mean(axis=2) < 100).mean()))
    return np.array(out)


def _frame_rms(audio: np.ndarray, n_frames: int) -> np.ndarray:
    a = np.pad(audio, (0, max(0, n_frames * HOP - len(audio))))[: n_frames * HOP]
    return np.sqrt((a.reshape(n_frames, HOP) ** 2).mean(axis=1))


def _frames_in(a: float, b: float, margin: int = 1) -> slice:
    return slice(int(np.ceil(a * FPS)) + margin, int(np.floor(b * FPS)) - margin)


# ---------------------------------------------------------------- layout, items
def test_media_are_real_h264_aac_clips(bench: Path) -> None:
    videos = [json.loads(x) for x in (bench / "videos.jsonl").read_text().splitlines()]
    mp4s = sorted((bench / "media").glob("*.mp4"))
    assert len(mp4s) >= 12 and len(videos) == len(mp4s)
    assert {v["generator"] for v in videos} == {"synthA", "synthB", "synthC"}
    assert {v["setting"] for v in videos} == {"storyboard", "short_drama"}
    for v in videos:
        with av.open(str(bench / v["path"])) as c:
            assert c.streams.video[0].codec_context.name == "h264"
            assert c.streams.audio[0].codec_context.name == "aac"
            assert 6.0 <= c.duration / 1e6 <= 10.0
            assert abs(c.duration / 1e6 - v["duration_s"]) < 0.2
            assert next(c.decode(video=0)).to_ndarray(format="rgb24").shape[2] == 3


def test_items_cover_formats_and_follow_taxonomy(bench: Path, specs: dict[str, ClipSpec]) -> None:
    tax = load_taxonomy()
    raw = _items(bench)
    items = [QAItem.model_validate(r) for r in raw]
    assert len(items) >= 60
    assert {i.format for i in items} == set(FORMATS)
    assert len({i.sub_dimension for i in items}) >= 6
    assert len({i.qid for i in items}) == len(items)
    assert len({(tuple(i.video_ids), i.question) for i in items}) == len(items)
    for it in items:
        assert tax.failure_modes[it.failure_mode].sub_dimension == it.sub_dimension
        assert set(it.answer) <= set(it.options) and 2 <= len(it.options) <= 8
        injected = [[j.failure_mode for j in specs[v].injections] for v in it.video_ids]
        if it.format == "pairwise":  # exactly one of the two clips has the failure, and it is the gold one
            gold = "AB".index(it.answer[0])
            assert it.failure_mode in injected[gold] and it.failure_mode not in injected[1 - gold]
        else:
            assert it.failure_mode in injected[0]
            gold_names = {tax.failure_modes[m].name for m in injected[0]}
            assert {it.options[a] for a in it.answer} <= gold_names
        if it.format == "multi":
            assert {it.options[a] for a in it.answer} == gold_names
        if it.format == "temporal":
            assert it.time_options and it.time_answer and it.evidence
            inj = _injection(specs[it.video_ids[0]], it.failure_mode)
            hit = {k for k, (a, b) in it.time_options.items() if min(b, inj.end_s) > max(a, inj.start_s)}
            assert set(it.time_answer) == hit
    golds = Counter(i.answer[0] for i in items if i.format == "single")
    assert max(golds.values()) - min(golds[k] for k in "ABCD") <= 4  # gold positions are balanced
    assert sum(1 for i in items if i.format == "multi" and len(i.answer) == 2) >= 4
    assert validate_benchmark(bench) == []


def test_same_seed_is_identical_and_other_seed_differs(bench: Path, tmp_path: Path) -> None:
    again = build_demo_bench(tmp_path / "again", seed=0)
    assert (again / "qa.jsonl").read_bytes() == (bench / "qa.jsonl").read_bytes()
    assert (again / "videos.jsonl").read_bytes() == (bench / "videos.jsonl").read_bytes()
    f0, a0 = _decode(bench / "media" / "demo-04.mp4")
    f1, a1 = _decode(again / "media" / "demo-04.mp4")
    assert b"".join(x.tobytes() for x in f0) == b"".join(x.tobytes() for x in f1)
    assert np.array_equal(a0, a1)
    other = build_demo_bench(tmp_path / "other", seed=1)
    assert (other / "qa.jsonl").read_bytes() != (bench / "qa.jsonl").read_bytes()
    f2, _ = _decode(other / "media" / "demo-04.mp4")
    assert len(f2) != len(f0) or b"".join(x.tobytes() for x in f2) != b"".join(x.tobytes() for x in f0)


# ---------------------------------------------------------------- the injections are in the signal
def test_speech_mode_confusion_voice_without_moving_lips(bench: Path, specs: dict[str, ClipSpec]) -> None:
    for spec in _with(specs, "speech_mode_confusion"):
        inj = _injection(spec, "speech_mode_confusion")
        frames, audio = _decode(bench / "media" / f"{spec.video_id}.mp4")
        win = _frames_in(inj.start_s, inj.end_s)
        assert _frame_rms(audio, len(frames))[win].mean() > 0.03  # a line is clearly heard
        for sp in SPEAKERS:
            y0, y1, x0, x1 = spec.mouth_rect(sp, inj.start_s)
            crops = np.stack([f[y0:y1, x0:x1].astype(float) for f in frames[win]])
            assert np.abs(crops - crops[0]).mean(axis=(1, 2, 3)).max() < 1.5, (spec.video_id, sp)
        # Control: in a normal line the speaking mouth region does change.
        normal = next(t for t in spec.turns if t.end_s <= inj.start_s and t.start_s >= 0.2)
        y0, y1, x0, x1 = spec.mouth_rect(normal.speaker, normal.start_s)
        win = _frames_in(normal.start_s, normal.end_s)
        crops = np.stack([f[y0:y1, x0:x1].astype(float) for f in frames[win]])
        assert np.abs(crops - crops[0]).mean(axis=(1, 2, 3)).max() > 5


def test_turn_taking_failure_both_mouths_move_together(bench: Path, specs: dict[str, ClipSpec]) -> None:
    for spec in _with(specs, "dialogue_turn_taking_failure"):
        inj = _injection(spec, "dialogue_turn_taking_failure")
        frames, audio = _decode(bench / "media" / f"{spec.video_id}.mp4")
        win = _frames_in(inj.start_s, inj.end_s)
        for sp in SPEAKERS:
            o = _openness(frames, spec, sp)[win]
            assert o.max() > 0.15 and o.max() - o.min() > 0.08, (spec.video_id, sp, o)
        assert _frame_rms(audio, len(frames))[win].mean() > 0.05  # two voices at once


def test_missing_ambient_is_digital_silence(bench: Path, specs: dict[str, ClipSpec]) -> None:
    def gap_rms(spec: ClipSpec) -> list[float]:
        _, audio = _decode(bench / "media" / f"{spec.video_id}.mp4")
        turns = sorted(spec.turns, key=lambda t: t.start_s)
        return [float(np.sqrt(np.mean(audio[int((a.end_s + 0.15) * SR): int((b.start_s - 0.15) * SR)] ** 2)))
                for a, b in zip(turns, turns[1:], strict=False) if b.start_s - a.end_s > 0.4]

    for spec in _with(specs, "missing_ambient_sound"):
        assert gap_rms(spec) and max(gap_rms(spec)) < 1e-4, spec.video_id
    clean = next(s for s in specs.values() if not s.injections)
    assert all(2e-3 < r < 0.03 for r in gap_rms(clean))  # room tone: audible, well below speech


def test_audio_shift_lags_mouths_by_the_injected_offset(bench: Path, specs: dict[str, ClipSpec]) -> None:
    def lag(spec: ClipSpec) -> int:
        frames, audio = _decode(bench / "media" / f"{spec.video_id}.mp4")
        mouth = sum(_openness(frames, spec, sp) for sp in SPEAKERS)
        env = _frame_rms(audio, len(frames))
        mouth, env = mouth - mouth.mean(), env - env.mean()
        lags = range(-20, 21)
        score = [np.dot(mouth[max(0, -k): len(mouth) - max(0, k)], env[max(0, k): len(env) - max(0, -k)])
                 for k in lags]
        return lags[int(np.argmax(score))]

    shifted = [s for s in _with(specs, "reaction_timing_failure") if len(s.injections) == 1]
    assert shifted
    for spec in shifted:
        assert spec.audio_offset_s >= 0.4
        assert abs(lag(spec) - spec.audio_offset_s * FPS) <= 1, spec.video_id
        twin = next(s for s in specs.values() if s.script_id == spec.script_id and s is not spec)
        assert abs(lag(twin)) <= 1  # the clean take of the same script is in sync


def test_scene_change_mean_colour_jumps_at_recorded_time(bench: Path, specs: dict[str, ClipSpec]) -> None:
    for mode in ("scene_consistency_drift", "visual_mood_drift"):
        for spec in _with(specs, mode):
            inj = _injection(spec, mode)
            frames, _ = _decode(bench / "media" / f"{spec.video_id}.mp4")
            means = np.array([f.reshape(-1, 3).mean(axis=0) for f in frames])
            jump = np.abs(np.diff(means, axis=0)).sum(axis=1)  # jump[i]: frame i -> i + 1
            start = int(np.argmax(jump)) + 1
            assert inj.start_s - 1 / FPS <= start / FPS <= inj.end_s + 1 / FPS, (spec.video_id, start / FPS)
            before = means[: int(inj.start_s * FPS) - 1].mean(axis=0)
            after = means[int(inj.end_s * FPS) + 1:].mean(axis=0)
            assert np.abs(after - before).sum() > 30 and np.median(jump) < 1.0


def test_overpowering_music_is_louder_than_the_dialogue(bench: Path, specs: dict[str, ClipSpec]) -> None:
    for spec in _with(specs, "overpowering_background_audio"):
        inj = _injection(spec, "overpowering_background_audio")
        _, audio = _decode(bench / "media" / f"{spec.video_id}.mp4")
        twin = next(s for s in specs.values() if s.script_id == spec.script_id and s is not spec)
        _, ref = _decode(bench / "media" / f"{twin.video_id}.mp4")
        seg = slice(int((inj.start_s + 0.3) * SR), int((inj.end_s - 0.3) * SR))
        assert np.sqrt(np.mean(audio[seg] ** 2)) > 2 * np.sqrt(np.mean(ref[seg] ** 2)), spec.video_id


def test_cuts_where_the_spec_says(bench: Path, specs: dict[str, ClipSpec]) -> None:
    for mode in ("shot_progression_issues", "character_continuity_break"):
        for spec in _with(specs, mode):
            inj = _injection(spec, mode)
            frames, _ = _decode(bench / "media" / f"{spec.video_id}.mp4")
            cuts = [s.start_s for s in spec.shots[1:] if inj.start_s <= s.start_s <= inj.end_s]
            assert cuts, (spec.video_id, mode)
            diff = [np.abs(frames[i].astype(float) - frames[i - 1]).mean() for i in range(1, len(frames))]
            for c in cuts:  # a cut is a frame change far above the frame-to-frame background
                assert diff[round(c * FPS) - 1] > 4 * np.median(diff), (spec.video_id, c)
