"""`mtavg compare`: paired cluster bootstrap + permutation between two evaluators on the same items."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from mtavg.bench import load_benchmark
from mtavg.bench.demo import build_demo_bench
from mtavg.cli import app
from mtavg.compare import RULE, CompareError, compare_runs, paired_cluster_test
from mtavg.evaluators import make_evaluator
from mtavg.run import run_eval

runner = CliRunner()


# ------------------------------------------------------------------ the test itself, on synthetic scores
def _synthetic(p_a: float, p_b: float, n_clusters: int = 40, per: int = 5, seed: int = 0):
    rng = np.random.default_rng(seed)
    clusters = np.repeat(np.arange(n_clusters), per)
    return (rng.random(clusters.size) < p_a).astype(float), (rng.random(clusters.size) < p_b).astype(float), clusters


def test_large_difference_is_significant():
    a, b, clusters = _synthetic(0.9, 0.3)
    r = paired_cluster_test(a, b, clusters, n_boot=1000, seed=0)
    assert r.diff == pytest.approx(100 * (a.mean() - b.mean()))
    assert r.ci95[0] > 40 and r.p < 0.01 and r.significant and not r.exact_p


def test_no_difference_is_not_significant():
    a, b, clusters = _synthetic(0.5, 0.5, seed=3)
    r = paired_cluster_test(a, b, clusters, n_boot=1000, seed=0)
    assert r.ci95[0] < 0 < r.ci95[1] and r.p > 0.05 and not r.significant
    same = paired_cluster_test(a, a, clusters, n_boot=200)
    assert same.diff == 0 and same.ci95 == (0.0, 0.0) and same.p == 1.0 and not same.significant


def test_few_clusters_enumerate_sign_flips_exactly():
    a, b, clusters = _synthetic(1.0, 0.0, n_clusters=5, per=3)
    r = paired_cluster_test(a, b, clusters, n_boot=2000)
    # 2^5 = 32 sign patterns; only "no flip" and "flip all" reach |diff| = 100: p = 2/32
    assert r.exact_p and r.p == pytest.approx(2 / 32) and not r.significant
    one = paired_cluster_test(a[:3], b[:3], clusters[:3])
    assert one.n_clusters == 1 and one.ci95 is None and one.p is None and not one.significant


def test_groups_make_the_statistic_a_mean_of_group_means():
    a = np.array([1, 1, 1, 1, 0, 0.0])  # group x: 4 items all right; group y: 2 items all wrong
    b = np.zeros(6)
    groups = ["x", "x", "x", "x", "y", "y"]
    r = paired_cluster_test(a, b, np.arange(6), groups, n_boot=100)
    assert r.a == 50.0 and r.diff == 50.0  # unweighted over groups, not 4/6 over items
    with pytest.raises(ValueError, match="one entry per item"):
        paired_cluster_test(a, b[:3], np.arange(6))


# ------------------------------------------------------------------ runs of the demo evaluators
@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> tuple[Path, dict[str, Path]]:
    root = tmp_path_factory.mktemp("compare")
    bench = load_benchmark(build_demo_bench(root / "bench"))
    runs = {}
    for name, spec, seed in (("r0", "baseline:random", 0), ("r1", "baseline:random", 1)):
        run_eval(bench, make_evaluator(spec, bench.items, seed=seed), root / name, progress=False, n_boot=0)
        runs[name] = root / name
    return root / "bench", runs


def test_two_seeds_of_random_are_not_significantly_different(demo):
    bench_dir, runs = demo
    result = compare_runs(runs["r0"], runs["r1"], load_benchmark(bench_dir), n_boot=1000)
    o = result.overall.result
    assert result.common == 90 and not result.only_a and not result.only_b
    assert o.ci95[0] < o.diff < o.ci95[1] and o.ci95[0] < 0 < o.ci95[1]
    assert not o.significant and result.to_dict()["verdict"] == "not significant"
    assert [r.name for r in result.rows][:1] == ["overall"] and {"PIA", "TLA"} <= {r.name for r in result.rows}
    # the overall on the shared items is results.json's overall when both runs cover the benchmark
    stored = json.loads((runs["r0"] / "results.json").read_text())
    assert o.a == pytest.approx(stored["overall"], abs=1e-3)


def test_cli_compare_reads_the_bench_from_the_run(demo):
    _, runs = demo
    res = runner.invoke(app, ["compare", str(runs["r0"]), str(runs["r1"]), "--n-boot", "500"],
                        env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    overall = next(line for line in res.stdout.splitlines() if line.startswith("overall:"))
    assert overall.endswith(": not significant") and "95% CI [" in overall
    assert RULE.split(" when ")[0] in res.stdout
    res = runner.invoke(app, ["compare", str(runs["r0"]), str(runs["r1"]), "--json", "--n-boot", "200"])
    data = json.loads(res.stdout)
    assert data["verdict"] == "not significant" and data["rows"][0]["name"] == "overall"
    assert data["a"]["model"] == data["b"]["model"] == "baseline:random"


def test_items_in_one_run_only_are_reported_and_left_out(demo, tmp_path):
    bench_dir, runs = demo
    rows = (runs["r1"] / "samples.jsonl").read_text().splitlines()
    partial = tmp_path / "samples.jsonl"
    partial.write_text("\n".join(rows[:60]) + "\n")
    result = compare_runs(runs["r0"], partial, bench_dir, n_boot=100)  # a benchmark path works too
    assert result.common == 60 and len(result.only_a) == 30 and not result.only_b
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"qid": "nope", "raw": "A"}) + "\n")
    with pytest.raises(CompareError, match="not in benchmark"):
        compare_runs(runs["r0"], bad, load_benchmark(bench_dir))
    with pytest.raises(CompareError, match="no samples.jsonl"):
        compare_runs(runs["r0"], tmp_path / "missing", load_benchmark(bench_dir))


def test_cli_compare_without_a_recorded_bench_asks_for_one(demo, tmp_path):
    _, runs = demo
    lone = tmp_path / "lone.jsonl"
    lone.write_text((runs["r1"] / "samples.jsonl").read_text())
    res = runner.invoke(app, ["compare", str(lone), str(runs["r0"])])
    assert res.exit_code == 2 and "--bench" in res.output


def _signal_available() -> bool:
    try:
        from mtavg.metrics.vad import vad_status
    except ImportError:
        return False
    return vad_status() is True


@pytest.mark.skipif(not _signal_available(), reason="signal evaluator needs the VAD model ([vad] extra)")
def test_signal_beats_random_significantly(demo):
    bench_dir, runs = demo
    bench = load_benchmark(bench_dir)
    signal_dir = bench_dir.parent / "signal"
    run_eval(bench, make_evaluator("signal", bench.items), signal_dir, progress=False, n_boot=0, concurrency=2)
    result = compare_runs(signal_dir, runs["r0"], bench, n_boot=2000)
    o = result.overall.result
    assert o.diff > 40 and o.ci95[0] > 20 and o.p < 0.05 and o.significant
    res = runner.invoke(app, ["compare", str(signal_dir), str(runs["r0"])], env={"COLUMNS": "200"})
    overall = next(line for line in res.stdout.splitlines() if line.startswith("overall:"))
    assert overall.startswith(f"overall: A - B = {o.diff:+.2f} points, 95% CI [") and overall.endswith(": significant")
