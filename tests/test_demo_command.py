"""`mtavg demo` end to end: the README's first command (tables on stdout, Markdown + HTML report, runs)."""

from __future__ import annotations

import json
import re

import pytest
from typer.testing import CliRunner

from mtavg.cli import app

pytest.importorskip("onnxruntime", reason="the signal evaluator's VAD needs the [vad] extra")


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo-cmd")
    res = CliRunner().invoke(app, ["demo", "--out", str(out), "--no-progress"], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    return out, res.stdout


def test_demo_prints_table3_for_every_offline_evaluator(demo):
    _, stdout = demo
    for name in ("baseline:random", "baseline:prior", "baseline:text", "baseline:all", "signal"):
        assert re.search(rf"{re.escape(name)}\s", stdout), name
    assert "HTML report" in stdout and "index.html" in stdout


def test_demo_writes_runs_and_signal_beats_random(demo):
    out, _ = demo
    results = {p.parent.name: json.loads(p.read_text()) for p in (out / "runs").glob("*/results.json")}
    assert set(results) == {"baseline_random", "baseline_prior", "baseline_text", "baseline_all", "signal"}
    signal, rand = results["signal"], results["baseline_random"]
    assert signal["overall"] > rand["overall"] + 30
    for code, entry in signal["sub_dimensions"].items():
        assert entry["score"] > rand["sub_dimensions"][code]["score"], code


def test_demo_html_report_holds_every_item_tables_and_failure_figures(demo):
    out, _ = demo
    page = (out / "report" / "index.html").read_text(encoding="utf-8")
    data = json.loads(re.search(r'<script type="application/json" id="mtavg-data">(.*?)</script>', page, re.S).group(1))
    qids = {json.loads(line)["qid"] for line in (out / "bench" / "qa.jsonl").read_text().splitlines()}
    assert {it["qid"] for it in data["items"]} == qids
    assert "Acting" in page and "Cinematography" in page  # Table 3's grouped header
    figures = {p.name for p in (out / "report" / "figures").iterdir()}
    assert {"failure_heatmap.svg", "failure_heatmap.png", "radar_signal_full.svg"} <= figures
    assert (out / "report" / "README.md").is_file()
    assert all((out / "report" / "media" / p.name).is_file() for p in (out / "bench" / "media").glob("*.mp4"))


def test_demo_refuses_another_seed_in_the_same_folder(demo):
    out, _ = demo
    res = CliRunner().invoke(app, ["demo", "--out", str(out), "--seed", "1", "--no-progress"])
    assert res.exit_code == 2
    said = " ".join(res.output.split())  # rich wraps long lines
    assert "built with --seed 0, not 1" in said and "another --out" in said
    assert json.loads((out / "runs" / "baseline_random" / "run.json").read_text())["fingerprint"] == "seed=0"
