"""The local executor (inline or process pool) and the executor plumbing of the metrics runner."""

from __future__ import annotations

import json
import os
import sys

import pytest
from typer.testing import CliRunner

from conftest import write_tiny_clip
from mtavg.cli import app
from mtavg.executors import ExecutorUnavailable, LocalExecutor, RayExecutor, make_executor
from mtavg.metrics import METRICS, register_metric
from mtavg.metrics.run import WORKER_FAILED, compute_metrics, discover


def _square(x: int) -> int:
    if x == 3:
        raise ValueError("three is bad")
    return x * x


def _die_on_two(x: int) -> int:
    if x == 2:
        os._exit(1)  # the worker process dies, as a crashing decoder would
    return x


def _as_record(item, exc) -> str:
    return f"{item}:{type(exc).__name__}"


@pytest.mark.parametrize("jobs", [1, 2])
def test_local_map_streams_every_result_and_records_failures(jobs):
    out = list(LocalExecutor(jobs).map(_square, range(6), on_error=lambda item, exc: f"{item}:{exc}"))
    assert sorted(map(str, out)) == ["0", "1", "16", "25", "3:three is bad", "4"]
    with pytest.raises(ValueError, match="three is bad"):
        list(LocalExecutor(jobs).map(_square, [1, 3]))


def test_a_dead_worker_fails_only_in_flight_items_and_the_pool_goes_on():
    out = list(LocalExecutor(2).map(_die_on_two, range(30), on_error=_as_record))
    assert "2:BrokenProcessPool" in out and len(out) == 30
    assert {28, 29} <= set(out)  # items after the crash still ran, on a fresh pool
    assert all(isinstance(r, int) or r.endswith(":BrokenProcessPool") for r in out)


def test_make_executor_and_missing_ray(monkeypatch):
    assert isinstance(make_executor("local", jobs=3), LocalExecutor)
    with pytest.raises(ValueError, match="unknown executor 'spark'"):
        make_executor("spark")
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    with pytest.raises(ExecutorUnavailable, match=r"mtavg-bench\[ray\]"):
        make_executor("ray")
    with pytest.raises(ExecutorUnavailable):
        list(RayExecutor().map(_square, [1]))
    res = CliRunner().invoke(app, ["metrics", ".", "--out", "x.jsonl", "--executor", "ray"])
    assert res.exit_code == 2 and "[ray]" in res.output


@pytest.fixture()
def toy_metric():
    register_metric("toy_n", lambda clip: {"n": int(len(clip.frames))}, needs=("video",))
    yield ["toy_n"]
    METRICS.pop("toy_n", None)


class _FlakyExecutor(LocalExecutor):
    """Loses the first clip it is given (as a lost Ray node would after its retries)."""

    def map(self, fn, items, *, resources=None, on_error=None):
        items = list(items)
        yield on_error(items[0], RuntimeError("node lost"))
        yield from super().map(fn, items[1:], on_error=on_error)


def test_lost_clips_are_recorded_then_retried_on_resume_and_nothing_else_reruns(toy_metric, tmp_path):
    for i in range(3):
        write_tiny_clip(tmp_path / "c" / f"c{i}.mp4", 0.5, seed=i)
    refs, out = discover([tmp_path / "c"]), tmp_path / "m.jsonl"
    first = compute_metrics(refs, out, metrics=toy_metric, executor=_FlakyExecutor(1))
    lost = [r for r in first if not r["ok"]]
    assert len(lost) == 1 and lost[0]["error_code"] == WORKER_FAILED and "node lost" in lost[0]["error"]
    seen: list[str] = []
    again = compute_metrics(refs, out, metrics=toy_metric, executor=LocalExecutor(1),
                            on_done=lambda r: seen.append(r["path"]))
    assert seen == [lost[0]["path"]]  # only the lost clip ran again
    assert all(r["ok"] for r in again) and len(again) == 3
    assert len(out.read_text().splitlines()) == 3 and all(json.loads(x)["ok"] for x in out.read_text().splitlines())
