"""Run engine: samples as items finish, resume, SIGKILL safety, per-item failures, refusal of bad benches."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path

import pytest

from mtavg.bench import load_benchmark
from mtavg.evaluators import BASELINES, Evaluator, Request, Response, make_evaluator
from mtavg.limits import RetryPolicy
from mtavg.run import RunConflict, build_request, run_eval

SAMPLE_FIELDS = {"qid", "model", "modality", "raw", "prediction", "valid", "score", "rationale", "error",
                 "audio_sent", "frames_sent", "latency_s", "usage", "cached"}


def _lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()]


@pytest.mark.parametrize("spec", BASELINES)
def test_baselines_run_end_to_end(random_bench, tmp_path, spec):
    bench = load_benchmark(random_bench)
    res = run_eval(bench, make_evaluator(spec, bench.items), tmp_path / "run", progress=False, n_boot=50)
    rows = _lines(tmp_path / "run" / "samples.jsonl")
    assert len(rows) == len(bench.items) == res["n_items"]
    assert set(rows[0]) >= SAMPLE_FIELDS
    assert json.loads((tmp_path / "run" / "results.json").read_text())["overall"] == res["overall"]
    assert res["n_errors"] == 0


def test_baseline_behaviour(random_bench, tmp_path):
    bench = load_benchmark(random_bench)
    res_all = run_eval(bench, make_evaluator("baseline:all", bench.items), tmp_path / "all", progress=False, n_boot=0)
    assert res_all["formats"]["multi"] == 100.0 and res_all["select_all_rate"] == 100.0
    assert res_all["multi_strict"]["exact"] < 100.0 and res_all["selects_everything"]
    rand = [run_eval(bench, make_evaluator("baseline:random", bench.items, seed=3), tmp_path / f"r{i}",
                     progress=False, n_boot=0)["overall"] for i in range(2)]
    assert rand[0] == rand[1]


def test_prior_answers_do_not_depend_on_the_items_own_fold(random_bench):
    import asyncio

    from mtavg.evaluators.baseline import PriorBaseline

    bench = load_benchmark(random_bench)
    prior = PriorBaseline(bench.items)
    fold0 = [it for it in bench.items if prior._fold[it.qid] == 0]
    # Rewrite every fold-0 gold label: fold-0 answers must not move (they are learned on fold 1).
    tampered = [it.model_copy(update={"answer": sorted(it.options)[-1:] if it.format != "multi" else ["A"]})
                if prior._fold[it.qid] == 0 else it for it in bench.items]
    other = PriorBaseline(tampered)

    async def answers(p):
        return [(await p.respond(build_request(it, bench, "text"))).raw for it in fold0]

    assert fold0 and asyncio.run(answers(prior)) == asyncio.run(answers(other))


def test_resume_skips_done_items_and_retries_errors(random_bench, tmp_path):
    bench = load_benchmark(random_bench)

    class Flaky(Evaluator):
        name = "test:flaky"
        consumes_media = False

        def __init__(self, fail: set[str]):
            self.fail, self.calls = fail, Counter()

        async def respond(self, request: Request) -> Response:
            self.calls[request.qid] += 1
            if request.qid in self.fail:
                raise ConnectionError("server went away")
            return Response(raw='{"answer": ["A"]}')

    quick = RetryPolicy(max_attempts=2, base_delay_s=0.01)
    first = Flaky({bench.items[0].qid})
    res = run_eval(bench, first, tmp_path / "r", limit=30, progress=False, n_boot=0, policy=quick)
    assert res["n_errors"] == 1 and res["invalid_reasons"].get("call_failed") == 1
    assert first.calls[bench.items[0].qid] == 2  # a dropped connection is retried once, then recorded
    row = next(r for r in _lines(tmp_path / "r" / "samples.jsonl") if r["error"])
    assert "ConnectionError: server went away" in row["error"] and row["valid"] is False
    assert row["error_type"] == "ConnectionError" and row["attempts"] == 2
    second = Flaky(set())
    res = run_eval(bench, second, tmp_path / "r", progress=False, n_boot=0, policy=quick)
    assert set(second.calls) == {bench.items[0].qid} | {it.qid for it in bench.items[30:]}
    qids = Counter(r["qid"] for r in _lines(tmp_path / "r" / "samples.jsonl"))
    assert set(qids.values()) == {1} and len(qids) == len(bench.items) and res["n_errors"] == 0


def test_out_dir_of_another_model_is_refused(random_bench, tmp_path):
    bench = load_benchmark(random_bench)
    run_eval(bench, make_evaluator("baseline:all", bench.items), tmp_path / "r", limit=3, progress=False, n_boot=0)
    with pytest.raises(RunConflict, match="baseline:all"):
        run_eval(bench, make_evaluator("baseline:text", bench.items), tmp_path / "r", progress=False, n_boot=0)


def test_modalities_shape_media_refs(random_bench):
    bench = load_benchmark(random_bench)
    pair = next(it for it in bench.items if it.format == "pairwise")
    full = build_request(pair, bench, "full")
    assert [m.role for m in full.media] == ["Clip 1", "Clip 2"] and all(m.use_audio and m.use_video for m in full.media)
    assert build_request(pair, bench, "text").media == ()
    assert not any(m.use_audio for m in build_request(pair, bench, "no_audio").media)
    assert not any(m.use_video for m in build_request(pair, bench, "no_vision").media)
    assert full.media[0].duration_s == pytest.approx(1.0, abs=0.2)


def test_broken_media_fails_its_items_only(random_bench, tmp_path):
    bench = load_benchmark(random_bench)
    victim = bench.items[0].video_ids[0]
    bench.video_path(victim).write_bytes(b"\x00not an mp4")
    res = run_eval(bench, make_evaluator("baseline:all", bench.items), tmp_path / "r", progress=False, n_boot=0)
    rows = _lines(tmp_path / "r" / "samples.jsonl")
    broken = [r for r in rows if r["error"]]
    assert broken and all("MediaError" in r["error"] for r in broken)
    assert res["n_items"] == len(bench.items) and len(broken) < len(rows)


PLUGIN = textwrap.dedent('''
    import asyncio, json
    from mtavg.evaluators import Evaluator, Response, register

    class Slow(Evaluator):
        name = "slow:test"
        consumes_media = False
        async def respond(self, request):
            await asyncio.sleep(0.15)
            return Response(raw=json.dumps({"answer": [next(iter(request.options))], "time": ["A"]}))

    register("slow", lambda name, items, options: Slow())
''')


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT], ids=["SIGKILL", "Ctrl-C"])
def test_killed_halfway_then_rerun_gives_every_item_once(random_bench, tmp_path, sig):
    (tmp_path / "slowplugin.py").write_text(PLUGIN)
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "mtavg", "eval", "--bench", str(random_bench), "--model", "slow:test",
           "--out", str(out), "--plugin", "slowplugin", "--concurrency", "2", "--no-progress"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), *sys.path])}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    samples = out / "samples.jsonl"
    deadline = time.time() + 60
    while time.time() < deadline and (not samples.exists() or samples.read_text().count("\n") < 40):
        time.sleep(0.05)
    proc.send_signal(sig)
    code = proc.wait(timeout=30)
    done_before = samples.read_text().count("\n")
    assert 0 < done_before < 120, "the kill must land halfway"
    if sig == signal.SIGINT:  # Ctrl-C: whole lines only, and a hint how to resume
        assert code == 130 and b"run the same command again" in proc.stderr.read()
        assert all(json.loads(x) for x in samples.read_text().splitlines())
    else:
        with open(samples, "ab") as fh:  # a write cut off mid-line by the kill
            fh.write(b'{"qid": "q00')
    subprocess.run(cmd, env=env, check=True, capture_output=True, timeout=120)
    counts = Counter(json.loads(x)["qid"] for x in samples.read_text().splitlines())
    assert len(counts) == 120 and set(counts.values()) == {1}
    assert json.loads((out / "results.json").read_text())["n_items"] == 120
