"""Run labels: two runs of one model with other settings (seed, temperature) are two rows, everywhere."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mtavg.bench import load_benchmark
from mtavg.cli import app
from mtavg.evaluators import make_evaluator
from mtavg.report.figures import radar_charts
from mtavg.report.labels import evaluator_labels, model_labels, settings_of
from mtavg.report.site import build_report
from mtavg.report.tables import paper_tables, table3
from mtavg.run import RunConflict, run_eval
from test_report_site import site_data
from test_tables import PRO, result


def test_settings_of_reads_every_fingerprint_form():
    assert settings_of(None) == {} and settings_of("") == {}
    assert settings_of("seed=3") == {"seed": "3"}
    assert settings_of('{"temperature": 0.7, "fps": 2, "mode": "frames"}') == {
        "temperature": "0.7", "fps": "2", "mode": "frames"}
    assert settings_of("signal-v1") == {"settings": "signal-v1"}


def test_labels_show_only_the_settings_that_differ():
    a = result("openai:qwen", PRO, fingerprint='{"temperature": 0.0, "fps": 2}')
    b = result("openai:qwen", PRO, fingerprint='{"temperature": 0.7, "fps": 2}')
    other = result("gemini:flash", PRO, fingerprint='{"temperature": 0.0}')
    assert model_labels([a, b, other]) == ["openai:qwen [temperature=0.0]", "openai:qwen [temperature=0.7]",
                                           "gemini:flash"]
    ablated = result("openai:qwen", PRO, modality="no_audio", fingerprint=b["fingerprint"])
    assert evaluator_labels([a, ablated]) == ["openai:qwen [temperature=0.0]",
                                              "openai:qwen [temperature=0.7] (w/o Audio)"]
    # same settings under two modalities: the plain model name, as before
    assert evaluator_labels([b, ablated]) == ["openai:qwen", "openai:qwen (w/o Audio)"]
    # a run that records no settings differs from one that does
    old = result("openai:qwen", PRO)
    assert model_labels([old, a]) == ["openai:qwen [fps=-, temperature=-]", "openai:qwen [fps=2, temperature=0.0]"]
    assert evaluator_labels([{**a, "label": "mine"}]) == ["mine"]


def test_two_seeds_are_two_table_rows_and_two_ablations():
    rows = [result("baseline:random", [v - s for v in PRO], modality=m, fingerprint=f"seed={s}")
            for s in (0, 1) for m in ("full", "no_audio")]
    t3 = table3(rows[::2])
    assert [r.label for r in t3.rows] == ["baseline:random [seed=0]", "baseline:random [seed=1]"]
    sixes = [t for t in paper_tables(rows) if t.key.startswith("table6")]
    assert sorted(t.key for t in sixes) == ["table6_baseline_random_seed_0_", "table6_baseline_random_seed_1_"]
    assert {t.title for t in sixes} == {"Modality ablation for baseline:random [seed=0] (%).",
                                        "Modality ablation for baseline:random [seed=1] (%)."}
    assert all(len(t.rows) == 2 for t in sixes)  # each holds its own seed's two modalities, not all four


def test_radars_of_equal_names_do_not_overwrite_each_other(tmp_path: Path):
    same = [result("m", PRO), result("m", PRO)]
    paths = radar_charts(same, tmp_path)
    assert sorted(p.name for p in paths) == ["radar_m_full.png", "radar_m_full.svg",
                                             "radar_m_full_2.png", "radar_m_full_2.svg"]


def test_results_record_the_evaluator_settings_and_a_resume_must_match_them(random_bench, tmp_path):
    bench = load_benchmark(random_bench)
    out = tmp_path / "r"
    res = run_eval(bench, make_evaluator("baseline:random", bench.items, seed=1), out, limit=5, progress=False,
                   n_boot=0)
    assert res["fingerprint"] == "seed=1"
    assert json.loads((out / "results.json").read_text())["fingerprint"] == "seed=1"
    with pytest.raises(RunConflict, match="seed=1"):  # answers of seed 2 must not join seed 1's run
        run_eval(bench, make_evaluator("baseline:random", bench.items, seed=2), out, progress=False, n_boot=0)
    # the same settings resume
    run_eval(bench, make_evaluator("baseline:random", bench.items, seed=1), out, limit=8, progress=False, n_boot=0)
    # `mtavg score` keeps the settings of the run the samples come from
    rescored = tmp_path / "rescored.json"
    cli = CliRunner().invoke(app, ["score", "--bench", str(random_bench), "--predictions",
                                   str(out / "samples.jsonl"), "--out", str(rescored), "--only-predicted"])
    assert cli.exit_code == 0, cli.output
    assert json.loads(rescored.read_text())["fingerprint"] == "seed=1"


def test_report_on_two_seeds_names_them_apart(random_bench, tmp_path):
    bench = load_benchmark(random_bench)
    dirs = []
    for seed in (0, 1):
        d = tmp_path / "runs" / f"s{seed}"
        run_eval(bench, make_evaluator("baseline:random", bench.items, seed=seed), d, progress=False, n_boot=20)
        dirs.append(d)
    index, figures = build_report(dirs, tmp_path / "site")
    names = ["baseline:random [seed=0]", "baseline:random [seed=1]"]
    assert site_data(index)["evaluators"] == names
    page = index.read_text(encoding="utf-8")
    assert all(n in page for n in names)  # Table 3 rows
    table3_md = (tmp_path / "site" / "tables" / "table3.md").read_text(encoding="utf-8")
    assert all(f"| {n} |" in table3_md for n in names)
    radars = {p.stem for p in figures if p.stem.startswith("radar_")}
    assert radars == {"radar_baseline_random_seed_0_full", "radar_baseline_random_seed_1_full"}
