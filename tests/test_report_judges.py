"""The item browser shows each answer's rationale-consistency judgements (judge.jsonl), not only RC."""

from __future__ import annotations

import pytest

from mtavg.bench import load_benchmark
from mtavg.evaluators import make_evaluator
from mtavg.judge import judge_run
from mtavg.report.site import build_site
from mtavg.report.site_items import ReportInputError
from mtavg.run import run_eval
from test_judge import FixedJudge
from test_report_site import site_data


def _answers_of(index, qid):
    return next(it for it in site_data(index)["items"] if it["qid"] == qid)["answers"]


def test_each_answer_carries_its_judges_scores(random_bench, tmp_path):
    bench = load_benchmark(random_bench)
    run = tmp_path / "run"
    run_eval(bench, make_evaluator("baseline:random", bench.items), run, progress=False, n_boot=0)
    temporal = [it for it in bench.items if it.format == "temporal"]
    judge_run(run, bench, [FixedJudge("judge:a", 4), FixedJudge("judge:b", 2, fail={temporal[0].qid})],
              progress=False)
    index = build_site([run], tmp_path / "site")
    ok = _answers_of(index, temporal[1].qid)["0"]
    assert ok["judges"] == [{"judge": "judge:a", "score": 4}, {"judge": "judge:b", "score": 2}]
    failed = _answers_of(index, temporal[0].qid)["0"]["judges"]
    assert failed[0] == {"judge": "judge:a", "score": 4}
    assert failed[1]["judge"] == "judge:b" and failed[1]["score"] is None and "judge refused" in failed[1]["note"]
    unjudged = next(it for it in bench.items if it.format != "temporal")
    assert "judges" not in _answers_of(index, unjudged.qid)["0"]  # only temporal items were judged

    # a re-judge appends a line; the browser shows the latest, like RC does
    judge_run(run, bench, [FixedJudge("judge:a", 4), FixedJudge("judge:b", 3)], progress=False, use_cache=False)
    index = build_site([run], tmp_path / "site2")
    assert _answers_of(index, temporal[0].qid)["0"]["judges"][1] == {"judge": "judge:b", "score": 3}

    # a killed judge's partial last line is ignored; a broken line elsewhere names file and line
    with open(run / "judge.jsonl", "a", encoding="utf-8") as fh:
        fh.write('{"qid": "x|judge:a", "item": "x", "jud')
    build_site([run], tmp_path / "site3")
    lines = (run / "judge.jsonl").read_text(encoding="utf-8").splitlines()
    (run / "judge.jsonl").write_text("\n".join([lines[0], "{not json", *lines[1:-1]]) + "\n", encoding="utf-8")
    with pytest.raises(ReportInputError, match=r"judge\.jsonl:2"):
        build_site([run], tmp_path / "site4")
