"""Rationale-consistency judging and the modality ablation table."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from mtavg.bench import load_benchmark
from mtavg.cli import app
from mtavg.evaluators import Evaluator, PermanentError, Request, Response, make_evaluator
from mtavg.judge import judge_run, parse_judge_score
from mtavg.run import run_eval


@pytest.mark.parametrize("raw,score", [
    ('{"score": 4, "rationale": "ok"}', 4), ('```json\n{"score": 2}\n```', 2), ("Score: 5", 5),
    ("I'd rate this 3/5.", 3), ('{"score": 7}', None), ("no idea", None), (None, None), ('{"score": 4.0}', 4),
])
def test_parse_judge_score(raw, score):
    assert parse_judge_score(raw) == score


class FixedJudge(Evaluator):
    def __init__(self, name: str, score: int, fail: set[str] = frozenset()):
        self.name, self.score, self.fail, self.prompts = name, score, fail, []

    async def respond(self, request: Request) -> Response:
        self.prompts.append(request.prompt)
        if request.qid in self.fail:
            raise PermanentError("judge refused", status=400)
        return Response(raw=json.dumps({"score": self.score, "rationale": "r"}))


def test_judges_fill_rc_and_rescoring_keeps_it(random_bench, tmp_path):
    bench = load_benchmark(random_bench)
    run = tmp_path / "run"
    run_eval(bench, make_evaluator("baseline:random", bench.items), run, progress=False, n_boot=0)
    temporal = [it for it in bench.items if it.format == "temporal"]
    a, b = FixedJudge("judge:a", 4), FixedJudge("judge:b", 2, fail={temporal[0].qid})
    block = judge_run(run, bench, [a, b], progress=False)
    # every temporal item judged by a (4); all but one also by b (2): item means 3, except one at 4
    expected = 100 * ((len(temporal) - 1) * 3 + 4) / (5 * len(temporal))
    assert block["RC"] == pytest.approx(expected, abs=0.01) and block["RC_n"] == len(temporal)
    assert block["RC_judges"] == {"judge:a": 80.0, "judge:b": 40.0}
    assert "uniform random choice" in a.prompts[0] and temporal[0].evidence in a.prompts[0]
    results = json.loads((run / "results.json").read_text())
    assert results["temporal"]["RC"] == pytest.approx(expected, abs=0.01)
    # mtavg score rebuilds results.json from samples and keeps the judged RC
    res = CliRunner().invoke(app, ["score", "--bench", str(random_bench), "--predictions",
                                   str(run / "samples.jsonl"), "--out", str(tmp_path / "r.json")])
    assert res.exit_code == 0
    assert json.loads((tmp_path / "r.json").read_text())["temporal"]["RC"] == pytest.approx(expected, abs=0.01)
    # re-judging retries only the failed judgement
    a2, b2 = FixedJudge("judge:a", 4), FixedJudge("judge:b", 2)
    block = judge_run(run, bench, [a2, b2], progress=False, use_cache=False)
    assert len(a2.prompts) == 0 and len(b2.prompts) == 1
    assert block["RC"] == pytest.approx(60.0)


def test_invalid_answers_get_the_floor_without_a_call(random_bench, tmp_path):
    bench = load_benchmark(random_bench)
    run = tmp_path / "run"
    run_eval(bench, make_evaluator("baseline:all", bench.items), run, progress=False, n_boot=0)  # temporal invalid
    judge = FixedJudge("judge:a", 5)
    block = judge_run(run, bench, [judge], progress=False)
    assert judge.prompts == [] and block["RC"] == 20.0


def test_ablate_writes_table6(random_bench, tmp_path):
    res = CliRunner().invoke(app, ["ablate", "--bench", str(random_bench), "--model", "baseline:text",
                                   "--out", str(tmp_path / "abl"), "--no-progress"])
    assert res.exit_code == 0, res.output
    for m in ("full", "no_audio", "no_vision", "text"):
        assert json.loads((tmp_path / "abl" / m / "results.json").read_text())["modality"] == m
    table = (tmp_path / "abl" / "table6.md").read_text()
    assert all(label in table for label in ("Full input", "w/o Audio", "w/o Vision", "Text-only"))
    assert "| Acting | Atmosphere | Cinematography | Avg |" in table
