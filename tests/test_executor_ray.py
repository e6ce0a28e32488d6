"""The Ray executor on a local 2-CPU Ray instance: the demo clips' metrics equal the local executor's.

Skipped when Ray is not installed (the ``[ray]`` extra), unless MTAVG_REQUIRE_RAY is set.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

import mtavg
from mtavg.bench.demo import build_demo_bench
from mtavg.executors import LocalExecutor, RayExecutor
from mtavg.metrics.run import compute_metrics, discover

if os.environ.get("MTAVG_REQUIRE_RAY"):
    import ray  # MTAVG_REQUIRE_RAY: a missing Ray fails here instead of skipping
else:
    ray = pytest.importorskip("ray", reason="Ray not installed (pip install 'mtavg-bench[ray]')")

CHEAP = ["loudness", "frames", "shots"]
TIMING = {"seconds"}  # wall-clock per stage: the only field allowed to differ


@pytest.fixture(scope="module")
def local_ray():
    # Workers import mtavg from this checkout and this file's helpers (tasks name them by module).
    path = os.pathsep.join([str(Path(mtavg.__file__).resolve().parents[1]), str(Path(__file__).parent)])
    ray.init(address="local", num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1",
             log_to_driver=False, runtime_env={"env_vars": {"PYTHONPATH": path}})
    try:
        yield ray
    finally:
        ray.shutdown()


@pytest.fixture(scope="module")
def demo_clips(tmp_path_factory):
    return discover([build_demo_bench(tmp_path_factory.mktemp("ray") / "bench", seed=0)])


def _records(rows) -> dict[str, dict]:
    return {r["path"]: {k: v for k, v in r.items() if k not in TIMING} for r in rows}


def test_ray_metrics_equal_local_metrics(local_ray, demo_clips, tmp_path):
    local = compute_metrics(demo_clips, tmp_path / "local.jsonl", metrics=CHEAP, executor=LocalExecutor(1))
    executor = RayExecutor()  # joins the running instance, leaves it running
    remote = compute_metrics(demo_clips, tmp_path / "ray.jsonl", metrics=CHEAP, executor=executor)
    executor.close()
    assert local_ray.is_initialized()
    assert len(remote) == len(demo_clips) == 16
    assert _records(remote) == _records(local)
    assert all(r["ok"] and set(r["metrics"]) == set(CHEAP) for r in remote)
    # Resume: a finished file means no task is submitted at all.
    again = compute_metrics(demo_clips, tmp_path / "ray.jsonl", metrics=CHEAP, executor=RayExecutor())
    assert _records(again) == _records(remote)
    assert sum(1 for _ in (tmp_path / "ray.jsonl").open()) == 16


def _explode(item: str) -> str:
    if item == "bad":
        raise ValueError(f"cannot handle {item}")
    return item.upper()


def _crash(item: str) -> str:
    if item == "die":
        os._exit(3)  # the worker process dies: Ray retries, then reports the item lost
    return item


def test_ray_failures_become_records(local_ray):
    executor = RayExecutor(max_retries=1)
    out = sorted(executor.map(_explode, ["a", "bad", "c"], on_error=lambda item, exc: f"{item}:{exc}"))
    assert out == ["A", "C", "bad:cannot handle bad"]
    lost = sorted(executor.map(_crash, ["x", "die"], on_error=lambda item, exc: f"{item}:{type(exc).__name__}"))
    assert lost[1] == "x" and lost[0].startswith("die:")
    with pytest.raises(Exception, match="cannot handle bad"):
        list(executor.map(_explode, ["bad"]))


def test_worker_loss_is_recorded_and_retried_on_resume(local_ray, demo_clips, tmp_path):
    out = tmp_path / "m.jsonl"
    compute_metrics(demo_clips[:2], out, metrics=["frames"], executor=RayExecutor())
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    lines[0].update(ok=False, error="WorkerCrashedError: lost", error_code="worker_failed", metrics={})
    out.write_text("".join(json.dumps(r) + "\n" for r in lines))
    again = compute_metrics(demo_clips[:2], out, metrics=["frames"], executor=RayExecutor())
    assert all(r["ok"] for r in again) and len(again) == 2


def test_evaluator_inside_ray_actors_answers_like_the_local_one(local_ray, demo_clips, tmp_path):
    """``ray:SPEC`` builds the evaluator in Ray actors (two here) and the run equals a local run."""
    from mtavg.bench import load_benchmark
    from mtavg.evaluators import make_evaluator
    from mtavg.run import run_eval

    bench = load_benchmark(demo_clips[0].path.parents[1])  # <bench>/media/<clip>.mp4
    local = run_eval(bench, make_evaluator("baseline:random", bench.items, seed=5), tmp_path / "local",
                     progress=False, n_boot=0)
    ev = make_evaluator("ray:baseline:random", bench.items, seed=5, ray_replicas=2)
    assert ev.name == "baseline:random" and len(ev._actors) == 2
    remote = run_eval(bench, ev, tmp_path / "ray", progress=False, n_boot=0)
    assert local_ray.is_initialized()  # the test's instance is left running
    rows = lambda d: {r["qid"]: r["raw"] for r in map(json.loads, (d / "samples.jsonl").read_text().splitlines())}  # noqa: E731
    assert rows(tmp_path / "ray") == rows(tmp_path / "local") and len(rows(tmp_path / "ray")) == len(bench.items)
    assert remote["overall"] == local["overall"]


def test_ray_evaluator_reports_the_inner_evaluators_error(local_ray):
    from mtavg.evaluators import UnknownModel, make_evaluator

    with pytest.raises(UnknownModel, match="unknown baseline 'nope'"):
        make_evaluator("ray:baseline:nope")
