"""More than one taxonomy: a v1-style taxonomy (4 levels, 9 dimensions) loads, validates and scores."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import write_bench
from mtavg.bench import load_benchmark, validate_benchmark
from mtavg.bench.validate import scan_benchmark
from mtavg.cli import app
from mtavg.evaluators import make_evaluator
from mtavg.run import run_eval
from mtavg.score import build_results
from mtavg.taxonomy import (
    DEFAULT_TAXONOMY,
    SHIPPED,
    TaxonomyError,
    UnknownTaxonomy,
    load_taxonomy,
    taxonomy_for_bench,
    taxonomy_from_dict,
    use_taxonomy,
)

# An MTAVG-Bench v1-style taxonomy: its four levels, nine invented dimension codes, two modes each.
V1_LEVELS = {
    "signal_fidelity": ("Audio-Visual Signal Fidelity", {"VQ": "Visual Quality", "AQ": "Audio Quality",
                                                         "LS": "Lip Synchronization"}),
    "temporal_consistency": ("Temporal Attribute Consistency", {"IDC": "Identity Consistency",
                                                                "VCC": "Voice Consistency"}),
    "social_interaction": ("Social Interaction", {"TT": "Turn-Taking", "RA": "Response Appropriateness"}),
    "cinematic_expression": ("Cinematic Expression", {"CL": "Camera Language", "SC": "Shot Composition"}),
}


def v1_taxonomy_dict() -> dict:
    return {
        "name": "mtavg-v1-test", "version": "mtavg-bench-1.0", "group_label": "level",
        "categories": [
            {"slug": slug, "name": name, "sub_dimensions": [
                {"code": code, "name": dim, "failure_modes": [
                    {"slug": f"{code.lower()}_failure_{k}", "name": f"{dim} failure {k}",
                     "description": f"An invented {dim.lower()} failure number {k} for tests."}
                    for k in (1, 2)]}
                for code, dim in dims.items()]}
            for slug, (name, dims) in V1_LEVELS.items()
        ],
    }


V1_CODES = [code for _, dims in V1_LEVELS.values() for code in dims]


def v1_items(n_per_code: int = 3) -> list[dict]:
    """Single and multi items over every v1 dimension; answers alternate so scores are not all 0 or 100."""
    items = []
    for code in V1_CODES:
        for k in range(n_per_code):
            fmt = "multi" if k == 2 else "single"
            items.append({
                "qid": f"{code}-{k}", "format": fmt, "video_ids": [f"v{k % 2}"], "question": f"{code} {k}?",
                "options": {"A": "first", "B": "second", "C": "third"},
                "answer": ["A", "B"] if fmt == "multi" else ["A" if k == 0 else "B"],
                "sub_dimension": code, "failure_mode": f"{code.lower()}_failure_{1 + k % 2}",
            })
    return items


@pytest.fixture()
def v1_bench(tmp_path, tiny_clip) -> Path:
    root = tmp_path / "v1bench"
    (root / "media").mkdir(parents=True)
    videos = []
    for i in range(2):
        (root / "media" / f"v{i}.mp4").write_bytes(tiny_clip.read_bytes())
        videos.append({"video_id": f"v{i}", "path": f"media/v{i}.mp4", "generator": f"g{i}"})
    write_bench(root, videos, v1_items())
    (root / "taxonomy.json").write_text(json.dumps(v1_taxonomy_dict()))
    return root


# ------------------------------------------------------------------ the taxonomy layer
def test_v1_taxonomy_has_four_levels_and_nine_dimensions():
    tax = taxonomy_from_dict(v1_taxonomy_dict())
    assert (len(tax.categories), len(tax.sub_dimensions), len(tax.failure_modes)) == (4, 9, 18)
    assert tax.name == "mtavg-v1-test" and tax.group_label == "level" and tax.version == "mtavg-bench-1.0"
    assert tax.category_of("TT") == "social_interaction"
    assert tax.failure_modes["idc_failure_2"].category == "temporal_consistency"
    assert taxonomy_from_dict(tax.to_dict()) == tax  # to_dict is the file format


def test_shipped_registry_holds_v2_and_avbench_and_v2_is_the_default():
    assert list(SHIPPED) == ["mtavg-v2", "avbench"] and DEFAULT_TAXONOMY == "mtavg-v2"
    v2 = load_taxonomy("mtavg-v2")
    assert load_taxonomy() is v2 and v2.name == "mtavg-v2"
    assert (len(v2.categories), len(v2.sub_dimensions), len(v2.failure_modes)) == (3, 10, 45)
    assert taxonomy_from_dict(v2.to_dict()) == v2
    with pytest.raises(UnknownTaxonomy, match="mtavg-v2"):
        load_taxonomy("mtavg-v7")


def test_avbench_taxonomy_files_every_perturbation_and_yes_no_dimension():
    from mtavg.perturb import CATALOGUE
    from mtavg.suites.yesno import DIMENSIONS

    av = load_taxonomy("avbench")
    assert (len(av.categories), len(av.sub_dimensions), len(av.failure_modes)) == (2, 5, 18)
    assert taxonomy_from_dict(av.to_dict()) == av
    # every perturbation is a failure mode of the sub-dimension its dimension maps to
    for name, spec in CATALOGUE.items():
        assert av.failure_modes[name].sub_dimension == DIMENSIONS[spec.dimension].code
    assert {d.code for d in DIMENSIONS.values()} == set(av.sub_dimensions)


def test_load_by_path_is_cached_until_the_file_changes(tmp_path):
    path = tmp_path / "mine.json"
    raw = v1_taxonomy_dict()
    path.write_text(json.dumps(raw))
    first = load_taxonomy(path)
    assert load_taxonomy(str(path)) is first and first.source == str(path.resolve())
    raw["categories"][0]["name"] = "Renamed Level"
    path.write_text(json.dumps(raw))
    os.utime(path, ns=(first_ns := path.stat().st_mtime_ns + 10**9, first_ns))
    assert load_taxonomy(path).categories["signal_fidelity"].name == "Renamed Level"


def test_a_file_without_a_name_is_named_after_the_file(tmp_path):
    raw = v1_taxonomy_dict()
    del raw["name"], raw["group_label"]
    (tmp_path / "house-style.json").write_text(json.dumps(raw))
    tax = load_taxonomy(tmp_path / "house-style.json")
    assert tax.name == "house-style" and tax.group_label == "category"


def test_every_defect_is_reported_with_its_field():
    raw = v1_taxonomy_dict()
    levels = raw["categories"]
    levels[1]["sub_dimensions"][0]["code"] = "VQ"  # duplicate code
    levels[2]["sub_dimensions"][1]["failure_modes"][0]["slug"] = "tt_failure_1"  # duplicate slug
    del levels[3]["sub_dimensions"][0]["failure_modes"][1]["description"]
    levels[3]["slug"] = "cinematic expression"
    levels.append("not an object")
    with pytest.raises(TaxonomyError) as info:
        taxonomy_from_dict(raw, source="v1.json")
    problems = info.value.problems
    assert len(problems) == 5 and str(info.value).startswith("v1.json: 5 problems")
    assert "categories[1].sub_dimensions[0].code: duplicate sub-dimension code 'VQ' " \
           "(first at categories[0].sub_dimensions[0].code)" in problems
    assert any(p.startswith("categories[2].sub_dimensions[1].failure_modes[0].slug: duplicate failure mode")
               for p in problems)
    assert "categories[3].sub_dimensions[0].failure_modes[1].description: missing or empty " \
           "(need a non-empty string)" in problems
    assert "categories[3].slug: 'cinematic expression' contains whitespace" in problems
    assert "categories[4]: expected a JSON object, got str" in problems


def test_the_documented_example_file_loads():
    doc = (Path(__file__).parents[1] / "docs" / "taxonomies.md").read_text(encoding="utf-8")
    example = doc.split("```json\n", 1)[1].split("```", 1)[0]
    tax = taxonomy_from_dict(json.loads(example))
    assert tax.name == "mtavg-v1" and tax.group_label == "level" and list(tax.sub_dimensions) == ["TT"]


def test_use_taxonomy_sets_the_active_taxonomy_for_the_block_only():
    v1 = taxonomy_from_dict(v1_taxonomy_dict())
    with use_taxonomy(v1) as active:
        assert active is v1 and load_taxonomy() is v1
        with use_taxonomy("mtavg-v2"):
            assert load_taxonomy().name == "mtavg-v2"
        assert load_taxonomy() is v1
    assert load_taxonomy().name == "mtavg-v2"


# ------------------------------------------------------------------ a benchmark declaring its taxonomy
def test_v1_bench_loads_validates_and_reports_items_outside_its_taxonomy(v1_bench):
    assert validate_benchmark(v1_bench) == []
    bench = load_benchmark(v1_bench)
    assert {it.sub_dimension for it in bench.items} == set(V1_CODES)
    assert scan_benchmark(v1_bench).taxonomy.name == "mtavg-v1-test"
    # A v2 code is foreign here, and a v1 code is foreign to a v2 benchmark.
    lines = (v1_bench / "qa.jsonl").read_text().splitlines()
    bad = json.loads(lines[0]) | {"sub_dimension": "EP", "failure_mode": "expression_exaggeration"}
    (v1_bench / "qa.jsonl").write_text("\n".join([json.dumps(bad), *lines[1:]]) + "\n")
    problems = validate_benchmark(v1_bench)
    assert [(p.line, p.field, p.code) for p in problems] == [
        (1, "sub_dimension", "unknown_sub_dimension"), (1, "failure_mode", "unknown_failure_mode")]
    assert "taxonomy mtavg-v1-test" in problems[0].message and "IDC" in problems[0].message
    (v1_bench / "taxonomy.json").unlink()
    codes = {p.code for p in validate_benchmark(v1_bench)}
    assert codes == {"unknown_sub_dimension", "unknown_failure_mode"}  # now judged by v2: every item is foreign
    assert sum(p.code == "unknown_sub_dimension" for p in validate_benchmark(v1_bench)) == len(lines) - 1


def test_v1_bench_scores_with_its_levels_as_categories(v1_bench):
    bench = load_benchmark(v1_bench)
    preds = {it.qid: {"answer": ["A"]} for it in bench.items}  # right on k=0, wrong on k=1, half of multi
    with use_taxonomy(taxonomy_for_bench(v1_bench)):
        res = build_results(bench.items, preds, bench.videos, model="m", bench=bench.name, n_boot=50)
    assert list(res["categories"]) == list(V1_LEVELS)
    assert list(res["sub_dimensions"]) == V1_CODES
    per_code = (100 + 0 + 50) / 3
    assert all(v["score"] == pytest.approx(per_code) and v["n"] == 3 for v in res["sub_dimensions"].values())
    assert res["overall"] == pytest.approx(per_code)
    assert all(v == pytest.approx(per_code) for v in res["categories"].values())


def test_v1_bench_runs_end_to_end_through_the_run_engine(v1_bench, tmp_path):
    bench = load_benchmark(v1_bench)
    assert bench.taxonomy is not None and list(bench.taxonomy.categories) == list(V1_LEVELS)
    # no use_taxonomy here: the loaded benchmark carries its taxonomy into scoring
    res = run_eval(bench, make_evaluator("baseline:all"), tmp_path / "run", progress=False, n_boot=20)
    assert set(res["categories"]) == set(V1_LEVELS) and res["n_items"] == len(bench.items)
    saved = json.loads((tmp_path / "run" / "results.json").read_text())
    assert list(saved["categories"]) == list(V1_LEVELS)
    runner = CliRunner()
    rescored = runner.invoke(app, ["score", "--bench", str(v1_bench), "--predictions",
                                   str(tmp_path / "run" / "samples.jsonl"), "--out", str(tmp_path / "re.json")])
    assert rescored.exit_code == 0, rescored.output
    assert list(json.loads((tmp_path / "re.json").read_text())["categories"]) == list(V1_LEVELS)
    stats = runner.invoke(app, ["stats", str(v1_bench)], env={"COLUMNS": "200"})
    assert stats.exit_code == 0, stats.output
    assert next(iter(bench.taxonomy.categories.values())).name in stats.stdout


def test_items_outside_the_active_taxonomy_are_named_not_a_key_error(v1_bench):
    bench = load_benchmark(v1_bench)
    with pytest.raises(ValueError, match=rf"{bench.items[0].qid}: '{bench.items[0].sub_dimension}'"):
        build_results(bench.items, {}, bench.videos, model="m", bench=bench.name, n_boot=10)  # active: v2


def test_bench_json_selects_a_shipped_name_or_a_file_inside_the_bench(v1_bench):
    (v1_bench / "taxonomy.json").rename(v1_bench / "tax-v1.json")
    (v1_bench / "bench.json").write_text(json.dumps({"taxonomy": "tax-v1.json", "title": "v1 demo"}))
    assert taxonomy_for_bench(v1_bench).name == "mtavg-v1-test" and validate_benchmark(v1_bench) == []
    (v1_bench / "bench.json").write_text(json.dumps({"taxonomy": "mtavg-v2"}))
    assert taxonomy_for_bench(v1_bench).name == "mtavg-v2"
    (v1_bench / "bench.json").write_text(json.dumps({"title": "no taxonomy key"}))
    assert taxonomy_for_bench(v1_bench).name == "mtavg-v2"  # no declaration, no taxonomy.json: the default


@pytest.mark.parametrize(("meta", "file_text", "where", "needle"), [
    ({"taxonomy": "../elsewhere.json"}, None, "bench.json", "leaves the benchmark directory"),
    ({"taxonomy": "/abs/v1.json"}, None, "bench.json", "is absolute"),
    ({"taxonomy": "missing.json"}, None, "bench.json", "not a shipped taxonomy"),
    ({"taxonomy": 3}, None, "bench.json", "expected a name or a relative path"),
    (None, "{not json", "taxonomy.json", "invalid JSON"),
    (None, json.dumps({"categories": []}), "taxonomy.json", "categories: missing or empty"),
])
def test_a_broken_declaration_is_one_problem_naming_its_file(v1_bench, meta, file_text, where, needle):
    if meta is not None:
        (v1_bench / "bench.json").write_text(json.dumps(meta))
    if file_text is not None:
        (v1_bench / "taxonomy.json").write_text(file_text)
    problems = validate_benchmark(v1_bench)
    assert [(p.file, p.code) for p in problems] == [(where, "invalid_taxonomy")]
    assert needle in problems[0].message
    assert load_benchmark(v1_bench, validate=False).items  # reading alone does not need the taxonomy


def test_a_v2_bench_is_unchanged(random_bench):
    scan = scan_benchmark(random_bench)
    assert scan.problems == [] and scan.taxonomy is load_taxonomy("mtavg-v2")
