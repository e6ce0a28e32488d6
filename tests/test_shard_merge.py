"""Sharding (--shard i/n) and `mtavg merge`: three shards joined equal one unsharded run, item for item."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import write_tiny_clip
from mtavg.bench import load_benchmark
from mtavg.bench.demo import build_demo_bench
from mtavg.cli import app
from mtavg.evaluators import make_evaluator
from mtavg.merge import MergeError, merge_eval_runs, merge_metrics_shards
from mtavg.metrics import METRICS, register_metric
from mtavg.metrics.run import ShardConflict, compute_metrics, discover
from mtavg.run import RunOptions, run_eval
from mtavg.sharding import Shard, ShardSpecError, parse_shard, shard_of

SHARDS = ["0/3", "1/3", "2/3"]
TIMING = {"latency_s"}  # per-row wall-clock time: the only field allowed to differ


@pytest.fixture(scope="module")
def bench_dir(tmp_path_factory):
    return build_demo_bench(tmp_path_factory.mktemp("shard") / "bench", seed=0)


def _eval(bench_dir: Path, model: str, out: Path, *extra: str) -> None:
    res = CliRunner().invoke(app, ["eval", "--bench", str(bench_dir), "--model", model, "--out", str(out),
                                   "--no-progress", "--no-cache", *extra])
    assert res.exit_code == 0, res.output


def _samples(run_dir: Path) -> dict[str, dict]:
    rows = [json.loads(line) for line in (run_dir / "samples.jsonl").read_text().splitlines() if line.strip()]
    return {r["qid"]: {k: v for k, v in r.items() if k not in TIMING} for r in rows}


def test_shard_of_is_stable_and_partitions():
    assert shard_of("q00001", 3) == shard_of("q00001", 3) == 2  # sha1-based: the same on every machine
    ids = [f"q{i:05d}" for i in range(300)]
    parts = [{q for q in ids if Shard(i, 3).owns(q)} for i in range(3)]
    assert set().union(*parts) == set(ids) and sum(map(len, parts)) == len(ids)
    assert all(60 < len(p) < 140 for p in parts)  # roughly balanced
    assert parse_shard("2/3") == Shard(2, 3)
    for bad in ("3/3", "1", "a/b", "-1/2", "0/0"):
        with pytest.raises(ShardSpecError):
            parse_shard(bad)


@pytest.mark.parametrize("model", ["baseline:random", "baseline:prior"])
def test_three_shards_merged_equal_an_unsharded_run(bench_dir, tmp_path, model):
    _eval(bench_dir, model, tmp_path / "whole")
    for spec in SHARDS:
        _eval(bench_dir, model, tmp_path / f"s{spec[0]}", "--shard", spec)
    meta = json.loads((tmp_path / "s1" / "run.json").read_text())
    assert meta["shard"] == {"index": 1, "count": 3} and meta["bench_fingerprint"]
    assert set(_samples(tmp_path / "s1")) == {q for q in _samples(tmp_path / "whole") if shard_of(q, 3) == 1}

    res = CliRunner().invoke(app, ["merge", *(str(tmp_path / f"s{i}") for i in range(3)),
                                   "--out", str(tmp_path / "merged")])
    assert res.exit_code == 0, res.output
    whole, merged = _samples(tmp_path / "whole"), _samples(tmp_path / "merged")
    bench_order = [it.qid for it in load_benchmark(bench_dir).items]
    assert list(merged) == bench_order  # every item once, in benchmark order
    assert merged == whole  # same raw answers, predictions and scores, item for item
    a = json.loads((tmp_path / "whole" / "results.json").read_text())
    b = json.loads((tmp_path / "merged" / "results.json").read_text())
    assert a == b  # every score, CI and counter (the baselines record no timing in results.json)
    assert json.loads((tmp_path / "merged" / "run.json").read_text())["shard"] is None


def test_random_baseline_answers_each_item_alone(bench_dir):
    """Per-item determinism (seeded by qid): the answer does not depend on which other items run."""
    import asyncio

    from mtavg.run import build_request

    bench = load_benchmark(bench_dir)
    ev = make_evaluator("baseline:random", bench.items, seed=0)
    first = [asyncio.run(ev.respond(build_request(it, bench, "text"))).raw for it in bench.items]
    again = [asyncio.run(ev.respond(build_request(it, bench, "text"))).raw for it in reversed(bench.items)]
    assert first == again[::-1]


@pytest.fixture(scope="module")
def shard_runs(bench_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    bench = load_benchmark(bench_dir)
    for i in range(3):
        run_eval(bench, make_evaluator("baseline:random", bench.items), root / f"s{i}",
                 RunOptions(progress=False, use_cache=False, n_boot=50, shard=Shard(i, 3)))
    return root


def _merge_error(dirs, out) -> str:
    with pytest.raises(MergeError) as info:
        merge_eval_runs(dirs, out, n_boot=50)
    return str(info.value)


def test_merge_rejects_a_missing_shard(shard_runs, tmp_path):
    assert "gap: shard(s) 2/3 missing" in _merge_error([shard_runs / "s0", shard_runs / "s1"], tmp_path / "m")


def test_merge_rejects_a_shard_given_twice(shard_runs, tmp_path):
    shutil.copytree(shard_runs / "s1", tmp_path / "s1-copy")
    msg = _merge_error([shard_runs / "s0", shard_runs / "s1", tmp_path / "s1-copy", shard_runs / "s2"],
                       tmp_path / "m")
    assert "overlap: shard 1/3 given twice" in msg


def test_merge_rejects_an_item_answered_twice(shard_runs, tmp_path):
    for i in range(3):
        shutil.copytree(shard_runs / f"s{i}", tmp_path / f"s{i}")
    foreign = (shard_runs / "s1" / "samples.jsonl").read_text().splitlines()[0]
    with open(tmp_path / "s0" / "samples.jsonl", "a") as fh:
        fh.write(foreign + "\n")
    qid = json.loads(foreign)["qid"]
    msg = _merge_error([tmp_path / f"s{i}" for i in range(3)], tmp_path / "m")
    assert f"overlap: qid {qid!r} answered in" in msg


def test_merge_rejects_an_unfinished_shard(shard_runs, tmp_path):
    for i in range(3):
        shutil.copytree(shard_runs / f"s{i}", tmp_path / f"s{i}")
    lines = (tmp_path / "s2" / "samples.jsonl").read_text().splitlines()
    (tmp_path / "s2" / "samples.jsonl").write_text("\n".join(lines[:-2]) + "\n")
    msg = _merge_error([tmp_path / f"s{i}" for i in range(3)], tmp_path / "m")
    assert "gap: 2 item(s) have no sample in any shard" in msg


def test_merge_rejects_another_model(bench_dir, shard_runs, tmp_path):
    bench = load_benchmark(bench_dir)
    run_eval(bench, make_evaluator("baseline:prior", bench.items), tmp_path / "p2",
             RunOptions(progress=False, use_cache=False, n_boot=50, shard=Shard(2, 3)))
    msg = _merge_error([shard_runs / "s0", shard_runs / "s1", tmp_path / "p2"], tmp_path / "m")
    assert "mismatch: run model is 'baseline:prior'" in msg


def test_a_shard_run_dir_refuses_another_shard(bench_dir, shard_runs, tmp_path):
    shutil.copytree(shard_runs / "s0", tmp_path / "s0")
    res = CliRunner().invoke(app, ["eval", "--bench", str(bench_dir), "--model", "baseline:random", "--out",
                                   str(tmp_path / "s0"), "--no-progress", "--shard", "1/3"])
    assert res.exit_code == 2 and "shard" in res.output
    res = CliRunner().invoke(app, ["eval", "--bench", str(bench_dir), "--model", "baseline:random", "--out",
                                   str(tmp_path / "x"), "--shard", "3/3"])
    assert res.exit_code == 2 and "0 <= i < n" in res.output


# --- metrics shards ---------------------------------------------------------------------------------

@pytest.fixture()
def toy_metric():
    register_metric("toy_frames", lambda clip: {"n_frames": int(len(clip.frames))}, needs=("video",))
    yield ["toy_frames"]
    METRICS.pop("toy_frames", None)


@pytest.fixture()
def clips(tmp_path):
    for i in range(7):
        write_tiny_clip(tmp_path / "clips" / f"c{i}.mp4", 0.5, seed=i)
    return discover([tmp_path / "clips"])


def _strip(records) -> list:
    return sorted((r["path"], json.dumps(r["metrics"], sort_keys=True)) for r in records)


def test_metrics_shards_merge_to_the_unsharded_records(clips, toy_metric, tmp_path):
    whole = compute_metrics(clips, tmp_path / "whole.jsonl", metrics=toy_metric)
    files = [tmp_path / f"m{i}.jsonl" for i in range(3)]
    for i, f in enumerate(files):
        part = compute_metrics(clips, f, metrics=toy_metric, shard=Shard(i, 3))
        assert {r["video_id"] for r in part} == {c.video_id for c in clips if shard_of(c.video_id, 3) == i}
    merged = merge_metrics_shards(files, tmp_path / "merged.jsonl")
    assert _strip(merged) == _strip(whole) and len(merged) == 7
    with pytest.raises(MergeError, match=r"gap: shard\(s\) 1/3 missing"):
        merge_metrics_shards([files[0], files[2]], tmp_path / "x.jsonl")
    with pytest.raises(MergeError, match="overlap: shard 0/3 given twice"):
        merge_metrics_shards([files[0], files[0], files[1], files[2]], tmp_path / "x.jsonl")
    with pytest.raises(ShardConflict):  # a shard's output is not reused for another shard
        compute_metrics(clips, files[0], metrics=toy_metric, shard=Shard(1, 3))


def test_metrics_shard_missing_a_clip_is_a_gap(clips, toy_metric, tmp_path):
    files = [tmp_path / f"m{i}.jsonl" for i in range(3)]
    for i, f in enumerate(files):
        compute_metrics(clips, f, metrics=toy_metric, shard=Shard(i, 3))
    victim = next(f for f in files if f.read_text().strip())
    lines = victim.read_text().splitlines()
    victim.write_text("\n".join(lines[1:]) + ("\n" if len(lines) > 1 else ""))
    with pytest.raises(MergeError, match="gap: .* lacks 1 clip"):
        merge_metrics_shards(files, tmp_path / "merged.jsonl")


def test_metrics_command_shards_and_merge_command(clips, toy_metric, tmp_path):
    for i in range(3):
        res = CliRunner().invoke(app, ["metrics", str(tmp_path / "clips"), "--metrics", "toy_frames",
                                       "--out", str(tmp_path / f"m{i}.jsonl"), "--shard", f"{i}/3"])
        assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "m2.shard.json").read_text())["shard"] == {"index": 2, "count": 3}
    res = CliRunner().invoke(app, ["merge", *(str(tmp_path / f"m{i}.jsonl") for i in range(3)),
                                   "--out", str(tmp_path / "all.jsonl")])
    assert res.exit_code == 0 and "7 clips" in res.output, res.output
    res = CliRunner().invoke(app, ["merge", str(tmp_path / "m0.jsonl"), "--out", str(tmp_path / "x.jsonl")])
    assert res.exit_code == 2 and "gap" in res.output
