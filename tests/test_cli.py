"""The `mtavg` command: taxonomy, validate, stats, score, eval refusal; prompts; the taxonomy data."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from mtavg.bench import load_benchmark
from mtavg.cli import app
from mtavg.prompts import render_prompt
from mtavg.taxonomy import load_taxonomy

runner = CliRunner()


def test_taxonomy_counts_and_membership():
    tax = load_taxonomy()
    assert (len(tax.categories), len(tax.sub_dimensions), len(tax.failure_modes)) == (3, 10, 45)
    counts = {c: len(s.failure_modes) for c, s in tax.sub_dimensions.items()}
    assert counts == {"EP": 6, "MP": 6, "DP": 3, "IP": 6, "MC": 5, "EC": 5, "SD": 3, "IC": 5, "IG": 3, "CT": 3}
    assert tax.failure_modes["interaction_eyeline_failure"].sub_dimension == "IP"
    assert tax.failure_modes["180_degree_rule_violation"].category == "cinematography"
    assert all(m.description.endswith(".") and len(m.description) > 30 for m in tax.failure_modes.values())


def test_taxonomy_command_table_and_json():
    res = runner.invoke(app, ["taxonomy", "--json"])
    assert res.exit_code == 0
    data = json.loads(res.stdout)
    assert sum(len(sd["failure_modes"]) for c in data["categories"] for sd in c["sub_dimensions"]) == 45
    res = runner.invoke(app, ["taxonomy"], env={"COLUMNS": "200"})
    assert res.exit_code == 0 and "Speech Mode Confusion" in res.stdout


def test_prompts_ask_for_the_json_format_and_list_time_windows(random_bench):
    bench = load_benchmark(random_bench)
    for fmt in ("single", "multi", "pairwise", "temporal"):
        item = next(it for it in bench.items if it.format == fmt)
        text = render_prompt(item)
        assert item.question in text and all(f"{k}. {v}" in text for k, v in item.options.items())
        assert ('"primary_issue"' if fmt == "temporal" else '"answer"') in text
    temporal = next(it for it in bench.items if it.format == "temporal")
    assert "A. 0s - 2s" in render_prompt(temporal)


def test_validate_and_eval_refuse_an_invalid_benchmark(random_bench, tmp_path):
    assert runner.invoke(app, ["validate", str(random_bench)]).exit_code == 0
    lines = (random_bench / "qa.jsonl").read_text().splitlines()
    bad = json.loads(lines[3])
    bad["answer"] = ["H"]
    lines[3] = json.dumps(bad)
    (random_bench / "qa.jsonl").write_text("\n".join(lines) + "\n")
    res = runner.invoke(app, ["validate", str(random_bench)])
    assert res.exit_code == 1 and "qa.jsonl:4" in res.stdout and "answer" in res.stdout
    res = runner.invoke(app, ["eval", "--bench", str(random_bench), "--model", "baseline:all",
                              "--out", str(tmp_path / "r"), "--no-progress"])
    assert res.exit_code == 2 and not (tmp_path / "r" / "samples.jsonl").exists()


def test_stats_command(random_bench):
    res = runner.invoke(app, ["stats", str(random_bench), "--json"])
    assert res.exit_code == 0 and json.loads(res.stdout)["n_items"] == 120


def test_score_command_rebuilds_results_from_qid_raw_lines(random_bench, tmp_path):
    bench = load_benchmark(random_bench)
    preds = tmp_path / "preds.jsonl"
    rows = [{"qid": it.qid, "raw": json.dumps({"answer": it.answer, "primary_issue": it.answer[0],
                                               "time": it.time_answer or []})} for it in bench.items]
    preds.write_text("".join(json.dumps(r) + "\n" for r in rows))
    res = runner.invoke(app, ["score", "--bench", str(random_bench), "--predictions", str(preds),
                              "--out", str(tmp_path / "results.json"), "--model", "oracle"])
    assert res.exit_code == 0, res.output
    out = json.loads((tmp_path / "results.json").read_text())
    assert out["overall"] == 100.0 and out["temporal"]["PIA"] == 100.0 and out["temporal"]["TLA"] == 100.0
    assert out["model"] == "oracle" and out["n_invalid"] == 0


def test_score_command_names_the_bad_line(random_bench, tmp_path):
    preds = tmp_path / "preds.jsonl"
    preds.write_text('{"qid": "q00000", "raw": "A"}\n{"qid": "q00001"}\n')
    res = runner.invoke(app, ["score", "--bench", str(random_bench), "--predictions", str(preds),
                              "--out", str(tmp_path / "r.json")])
    assert res.exit_code == 2 and "preds.jsonl:2" in res.output


def test_unknown_model_kind_is_a_clear_error(random_bench, tmp_path):
    res = runner.invoke(app, ["eval", "--bench", str(random_bench), "--model", "nosuch:x",
                              "--out", str(tmp_path / "r"), "--no-progress"])
    assert res.exit_code == 2 and "unknown model kind 'nosuch'" in res.output


@pytest.mark.parametrize("bad", ["loud", "audio"])
def test_unknown_modality_is_a_clear_error(random_bench, tmp_path, bad):
    res = runner.invoke(app, ["eval", "--bench", str(random_bench), "--model", "baseline:all",
                              "--out", str(tmp_path / "r"), "--modality", bad])
    assert res.exit_code == 2 and "unknown modality" in res.output


def test_score_command_rejects_two_answers_to_one_item(random_bench, tmp_path):
    preds = tmp_path / "preds.jsonl"
    preds.write_text('{"qid": "q00000", "raw": "A"}\n{"qid": "q00001", "raw": "B"}\n{"qid": "q00000", "raw": "B"}\n')
    res = runner.invoke(app, ["score", "--bench", str(random_bench), "--predictions", str(preds),
                              "--out", str(tmp_path / "r.json")])
    assert res.exit_code == 2 and "preds.jsonl:3" in res.output and "line 1" in res.output


def test_score_counts_missing_items_as_zero_unless_only_predicted(random_bench, tmp_path):
    bench = load_benchmark(random_bench)
    half = [it for it in bench.items if it.format != "temporal"][:40]
    preds = tmp_path / "preds.jsonl"
    preds.write_text("".join(json.dumps({"qid": it.qid, "raw": json.dumps({"answer": it.answer})}) + "\n"
                             for it in half))
    res = runner.invoke(app, ["score", "--bench", str(random_bench), "--predictions", str(preds),
                              "--out", str(tmp_path / "all.json")])
    assert res.exit_code == 0 and "80 item(s) have no prediction" in res.output
    full = json.loads((tmp_path / "all.json").read_text())
    assert full["n_items"] == 120 and full["n_missing"] == 80 and full["invalid_reasons"]["missing"] == 80
    assert full["overall"] < 100.0
    res = runner.invoke(app, ["score", "--bench", str(random_bench), "--predictions", str(preds),
                              "--out", str(tmp_path / "some.json"), "--only-predicted"])
    some = json.loads((tmp_path / "some.json").read_text())
    assert res.exit_code == 0 and some["n_items"] == 40 and some["overall"] == 100.0
