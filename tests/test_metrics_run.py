"""The metrics runner: one decode per clip, typed per-clip errors, batch continues, resume, jobs, summary."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from conftest import write_tiny_clip
from mtavg.cli import app
from mtavg.metrics import METRICS, register_metric
from mtavg.metrics.run import compute_clip, compute_metrics, discover, summarize


@pytest.fixture(autouse=True)
def toy_metrics():
    calls = {"decode": 0}

    def brightness(clip):
        calls["decode"] += 1
        return {"mean_luma": float(clip.gray.mean()), "n_frames": int(len(clip.frames))}

    def loudness(clip):
        return {"rms": float(np.sqrt(np.mean(clip.audio ** 2)))}

    def broken(clip):
        raise ValueError("this metric always fails")

    register_metric("toy_brightness", brightness, needs=("video",))
    register_metric("toy_rms", loudness, needs=("audio",))
    register_metric("toy_broken", broken, needs=("video",))
    yield calls
    for name in ("toy_brightness", "toy_rms", "toy_broken"):
        METRICS.pop(name, None)


NAMES = ["toy_brightness", "toy_rms", "toy_broken"]


@pytest.fixture()
def clip_dir(tmp_path):
    d = tmp_path / "clips"
    write_tiny_clip(d / "case1_genA.mp4", 2.0)
    write_tiny_clip(d / "case2_genB.mp4", 2.0, seed=3)
    write_tiny_clip(d / "case3_genB.mp4", 1.0, audio=False)
    (d / "case4_genA.mp4").write_bytes(b"")
    (d / "case5_genA.mp4").write_bytes(b"\x00garbage" * 100)
    whole = (d / "case1_genA.mp4").read_bytes()
    (d / "case6_genB.mp4").write_bytes(whole[: len(whole) // 2])
    return d


def test_every_clip_gets_a_record_with_typed_errors(clip_dir, tmp_path):
    refs = discover([clip_dir], generator_regex=r"_(.+)$")
    assert {r.generator for r in refs} == {"genA", "genB"}
    records = {r["video_id"]: r for r in compute_metrics(refs, tmp_path / "m.jsonl", metrics=NAMES)}
    assert len(records) == 6
    good = records["case1_genA"]
    assert good["ok"] and good["metrics"]["toy_brightness"]["n_frames"] == 16
    assert good["metrics"]["toy_rms"]["rms"] > 0.05
    assert "always fails" in good["metrics"]["toy_broken"]["error"]  # one metric fails, the others stand
    assert records["case3_genB"]["metrics"]["toy_rms"] == {"skipped": "no audio stream"}
    assert records["case4_genA"]["error_code"] == "empty" and not records["case4_genA"]["ok"]
    assert records["case5_genA"]["error_code"] == "unreadable"
    assert records["case6_genB"]["error_code"] in {"truncated", "unreadable"}
    assert all(r["error"] and r["path"] in r["error"] for r in records.values() if not r["ok"])


def test_resume_and_parallel_jobs_agree(clip_dir, tmp_path, toy_metrics):
    refs = discover([clip_dir])
    first = compute_metrics(refs[:3], tmp_path / "a.jsonl", metrics=NAMES)
    before = toy_metrics["decode"]
    again = compute_metrics(refs, tmp_path / "a.jsonl", metrics=NAMES)
    assert len(again) == 6 and toy_metrics["decode"] - before <= 3  # the first three were not redone
    parallel = compute_metrics(refs, tmp_path / "b.jsonl", metrics=NAMES, jobs=2)

    def strip(rows):
        return sorted((r["video_id"], json.dumps(r["metrics"], sort_keys=True), r["error_code"]) for r in rows)

    assert strip(again) == strip(parallel) and len(first) == 3


def test_summary_per_generator(clip_dir, tmp_path):
    refs = discover([clip_dir], generator_regex=r"_(.+)$")
    summary = summarize(compute_metrics(refs, tmp_path / "m.jsonl", metrics=NAMES))
    assert summary["all"]["n_clips"] == 6 and summary["genA"]["n_failed"] == 2
    assert summary["genB"]["metrics"]["toy_brightness"]["n_frames"] == pytest.approx((16 + 8) / 2)


def test_compute_clip_on_a_benchmark_dir_reads_ids_and_generators(tmp_path):
    write_tiny_clip(tmp_path / "b" / "media" / "x.mp4")
    (tmp_path / "b" / "videos.jsonl").write_text(json.dumps({"video_id": "vid-x", "path": "media/x.mp4",
                                                             "generator": "veo"}) + "\n")
    (ref,) = discover([tmp_path / "b"])
    assert (ref.video_id, ref.generator) == ("vid-x", "veo")
    assert compute_clip(ref.path, ["toy_brightness"], video_id=ref.video_id)["ok"]


def test_metrics_command(clip_dir, tmp_path):
    res = CliRunner().invoke(app, ["metrics", str(clip_dir), "--metrics", "toy_brightness,toy_rms", "--out",
                                   str(tmp_path / "m.jsonl"), "--generator-regex", "_(.+)$",
                                   "--summary", str(tmp_path / "s.json")])
    assert res.exit_code == 0, res.output
    assert "genA" in res.output and "empty" in res.output
    assert json.loads((tmp_path / "s.json").read_text())["all"]["n_clips"] == 6
    res = CliRunner().invoke(app, ["metrics", str(clip_dir), "--metrics", "nope", "--out", str(tmp_path / "x")])
    assert res.exit_code == 2 and "unknown metric" in res.output
