"""Real generated clips (AVGen-Bench demo assets): set MTAVG_REAL_CLIPS to their directory to run."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from mtavg.bench import load_benchmark
from mtavg.evaluators import make_evaluator
from mtavg.media import probe
from mtavg.run import run_eval

REAL = os.environ.get("MTAVG_REAL_CLIPS")
pytestmark = pytest.mark.skipif(not REAL, reason="MTAVG_REAL_CLIPS is not set")


def _clips() -> list[Path]:
    clips = sorted(Path(REAL).glob("*.mp4")) if REAL else []
    assert clips, f"no .mp4 files in MTAVG_REAL_CLIPS={REAL}"
    return clips


def test_probe_reads_real_h264_aac_clips():
    for clip in _clips():
        info = probe(clip)
        assert info.has_video and info.has_audio and info.frames_decoded == 1, clip
        assert 7.5 <= info.duration_s <= 10.5 and info.width and info.height and info.fps, clip


def test_eval_runs_over_a_benchmark_of_real_clips(tmp_path):
    root = tmp_path / "real"
    (root / "media").mkdir(parents=True)
    videos, items = [], []
    for i, clip in enumerate(_clips()):
        shutil.copy(clip, root / "media" / clip.name)
        vid = clip.stem
        videos.append({"video_id": vid, "path": f"media/{clip.name}", "generator": vid.split("_", 1)[1]})
        items.append({"qid": f"r{i}", "format": "single", "video_ids": [vid], "sub_dimension": "SD",
                      "question": "Which soundscape failure is present?", "failure_mode": "missing_ambient_sound",
                      "options": {"A": "Missing Ambient Sound", "B": "Overpowering Background Audio",
                                  "C": "Missing Scripted Sound"}, "answer": ["A"]})
    (root / "videos.jsonl").write_text("".join(json.dumps(v) + "\n" for v in videos))
    (root / "qa.jsonl").write_text("".join(json.dumps(it) + "\n" for it in items))
    bench = load_benchmark(root)
    res = run_eval(bench, make_evaluator("baseline:random", bench.items), tmp_path / "run", progress=False)
    assert res["n_items"] == len(items) and res["n_errors"] == 0
    assert set(res["by_generator"]) >= {"ltx2", "ovi"}
