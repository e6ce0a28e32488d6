"""AVGen-Bench total: the published table reproduced, strict vs default on failing modules, records I/O."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mtavg.cli import app
from mtavg.suites.avgen import (
    NORMALISE,
    WEIGHTS,
    AggregationError,
    aggregate,
    aggregate_table,
    parse_table,
    read_table,
)
from mtavg.suites.avgen_records import (
    MODULES,
    ModuleRecord,
    RecordsInvalid,
    read_records,
    summary_path,
    write_records,
)

PUBLISHED = Path(__file__).parent / "fixtures" / "avgen" / "published_table.csv"
runner = CliRunner()

# Plausible per-clip raw values, one per module, in each module's own unit.
RAW = {"Vis": 0.9, "Aud": 6.5, "AV": 0.2, "Lip": 3.0, "Text": 60.0, "Face": 50.0, "Music": 10.0,
       "Speech": 80.0, "LoPhy": 3.8, "HiPhy": 60.0, "Holistic": 70.0}
CLIPS = ("ads/a.mp4", "ads/b.mp4", "news/c.mp4", "news/d.mp4")


def ok(module: str, clip: str, raw: float, generator: str = "gen") -> ModuleRecord:
    return ModuleRecord(clip, clip.split("/")[0], module, raw, "ok", None, {}, generator)


def failed(module: str, clip: str, generator: str = "gen") -> ModuleRecord:
    return ModuleRecord(clip, clip.split("/")[0], module, None, "failed", "decoder crashed", {}, generator)


def full_records(generator: str = "gen") -> list[ModuleRecord]:
    return [ok(m, c, RAW[m], generator) for m in MODULES for c in CLIPS]


# --- the published table -----------------------------------------------------------------------

def test_published_table_reproduces_every_total_within_0_1():
    rows = read_table(PUBLISHED)
    assert len(rows) == 12 and rows[0].model == "Veo 3.1-fast" and rows[-1].model == "Ovi"
    totals = aggregate_table(rows)
    for row in rows:
        t = totals[row.model]
        assert t.coverage == pytest.approx(1.0) and t.missing == ()
        assert t.total == pytest.approx(row.published_total, abs=0.1), row.model
    # Top and bottom of the leaderboard to the printed precision.
    assert round(totals["Veo 3.1-fast"].total, 2) == 67.87 and round(totals["Ovi"].total, 2) == 52.02


def test_published_values_are_raw_units_not_points():
    """Reading the README's columns as already-normalised would miss the totals by tens of points."""
    row = read_table(PUBLISHED)[0]
    as_points = sum(WEIGHTS[m] * v for m, v in row.raw.items())
    assert abs(as_points - row.published_total) > 10


def test_cli_table_prints_totals_and_json():
    res = runner.invoke(app, ["avgen", "aggregate", "--table", str(PUBLISHED), "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert len(data) == 12
    assert all(abs(d["total"] - d["published_total"]) <= 0.1 for d in data.values())
    assert data["Ovi"]["Vis"] == pytest.approx(83.9) and data["Ovi"]["AV"] == pytest.approx(26.0)
    res = runner.invoke(app, ["avgen", "aggregate", "--table", str(PUBLISHED)], env={"COLUMNS": "250"})
    assert res.exit_code == 0 and "Veo 3.1-fast" in res.stdout and "67.87" in res.stdout


# --- normalisation -----------------------------------------------------------------------------

@pytest.mark.parametrize(("module", "raw", "points"), [
    ("Vis", 0.84, 84.0), ("Vis", 1.3, 100.0), ("Vis", -0.1, 0.0),
    ("Aud", 6.31, 63.1), ("Aud", 11.0, 100.0),
    ("AV", 0.25, 50.0), ("AV", 0.8, 0.0), ("AV", 0.0, 100.0),
    ("Lip", 2.0, 75.0), ("Lip", 9.5, 0.0),
    ("LoPhy", 3.9, 78.0), ("LoPhy", 5.5, 100.0),
    ("Text", 41.36, 41.36), ("Holistic", 104.0, 100.0), ("HiPhy", -3.0, 0.0),
])
def test_normalisation_formulas_clamp_to_0_100(module, raw, points):
    assert NORMALISE[module](raw) == pytest.approx(points)


def test_weights_follow_the_published_groups():
    assert sum(WEIGHTS.values()) == pytest.approx(1.0)
    assert [WEIGHTS[m] for m in ("Vis", "Aud", "AV", "Lip")] == [0.1] * 4
    assert all(WEIGHTS[m] == pytest.approx(0.6 / 7) for m in MODULES[4:])


def test_clamped_module_mean_enters_the_total_at_the_bound():
    records = [r for r in full_records() if r.module != "AV"] + [ok("AV", c, 0.9) for c in CLIPS]
    t = aggregate(records)["gen"]
    assert t.modules["AV"].raw_mean == pytest.approx(0.9) and t.modules["AV"].score == 0.0
    assert t.groups["cross_modal"] == pytest.approx(NORMALISE["Lip"](3.0) / 2)


# --- strict vs default on failing and missing modules ---------------------------------------------

def test_module_failing_on_some_clips_default_vs_strict():
    base = aggregate(full_records())["gen"]
    # Face fails on one clip of four; on the three others it scores 20 instead of 50.
    records = [r for r in full_records() if r.module != "Face"]
    records += [ok("Face", c, 20.0) for c in CLIPS[:3]] + [failed("Face", CLIPS[3])]

    default = aggregate(records)["gen"]
    face = default.modules["Face"]
    assert (face.n_ok, face.n_failed, face.item_coverage) == (3, 1, 0.75)
    assert face.score == pytest.approx(20.0)  # failed clip left out of the mean
    assert default.coverage == pytest.approx(1.0) and default.missing == ()
    assert default.failed_clips == {"Face": ["news/d.mp4"]}
    assert default.total == pytest.approx(base.total + WEIGHTS["Face"] * (20.0 - 50.0))

    strict = aggregate(records, strict=True)["gen"]
    assert strict.modules["Face"].score == pytest.approx(15.0)  # (20+20+20+0)/4
    assert strict.total == pytest.approx(default.total - WEIGHTS["Face"] * 5.0)
    assert strict.total < default.total
    assert strict.to_dict()["item_coverage"]["Face"] == 0.75


def test_missing_module_renormalises_by_default_and_is_undefined_when_strict():
    records = [r for r in full_records() if r.module != "Music"]
    default = aggregate(records)["gen"]
    assert default.missing == ("Music",)
    assert default.coverage == pytest.approx(1 - 0.6 / 7)
    expected = sum(WEIGHTS[m] * NORMALISE[m](RAW[m]) for m in MODULES if m != "Music") / (1 - 0.6 / 7)
    assert default.total == pytest.approx(expected)
    assert default.groups["fine_grained"] is not None

    strict = aggregate(records, strict=True)["gen"]
    assert strict.total is None and strict.missing == ("Music",)
    assert strict.groups["fine_grained"] is None and strict.groups["basic"] is not None


def test_module_with_only_failed_or_not_applicable_records_counts_as_missing():
    records = [r for r in full_records() if r.module not in ("Text", "Face")]
    records += [failed("Text", c) for c in CLIPS]
    records += [ModuleRecord(c, "ads", "Face", None, "not_applicable", None, {}, "gen") for c in CLIPS]
    default = aggregate(records)["gen"]
    assert default.missing == ("Text", "Face") and default.total is not None
    assert default.modules["Text"].n_failed == 4 and default.modules["Face"].n_not_applicable == 4
    assert aggregate(records, strict=True)["gen"].total is None


def test_not_applicable_clips_count_in_neither_mode():
    records = full_records() + [ModuleRecord("ads/e.mp4", "ads", "Music", None, "not_applicable", None, {}, "gen")]
    assert aggregate(records, strict=True)["gen"].total == pytest.approx(aggregate(full_records())["gen"].total)


def test_generators_are_aggregated_separately():
    records = full_records("alpha") + [r for r in full_records("beta") if r.module != "Vis"]
    totals = aggregate(records)
    assert list(totals) == ["alpha", "beta"]
    assert totals["alpha"].missing == () and totals["beta"].missing == ("Vis",)


def test_table_with_an_empty_cell_is_a_missing_module():
    text = PUBLISHED.read_text().replace("Ovi,0.839,", "Ovi,,")
    rows = parse_table(text, "t.csv")
    ovi = aggregate_table(rows)["Ovi"]
    assert ovi.missing == ("Vis",) and ovi.coverage == pytest.approx(0.9)
    assert aggregate_table(rows, strict=True)["Ovi"].total is None


def test_table_errors_name_line_and_column(tmp_path):
    bad = PUBLISHED.read_text().replace("Ovi,0.839,6.31", "Ovi,0.839,six")
    with pytest.raises(AggregationError, match=r"t\.csv:\d+: column Aud \(PQ\): 'six' is not a number"):
        parse_table(bad, "t.csv")
    with pytest.raises(AggregationError, match="missing module column.*Holistic"):
        parse_table("model,Vis,Aud,AV,Lip,Text,Face,Music,Speech,LoPhy,HiPhy\nx,1,1,1,1,1,1,1,1,1,1\n", "u.csv")
    with pytest.raises(AggregationError, match="appears twice"):
        aggregate_table(parse_table(PUBLISHED.read_text() + "Ovi,1,1,1,1,1,1,1,1,1,1,1,1\n"))


# --- records I/O -------------------------------------------------------------------------------

def test_write_and_read_records_round_trip_with_summary(tmp_path):
    records = [ModuleRecord(c, c.split("/")[0], "AV", RAW["AV"], "ok", None, {"conf": 3.1}) for c in CLIPS[:3]]
    records.append(ModuleRecord(CLIPS[3], "news", "AV", None, "failed", "no audio stream", {}))
    path = tmp_path / "ovi" / "av.jsonl"
    summary = write_records(path, records)
    assert summary == summary_path(path) and summary.name == "av.summary.json"
    back = read_records(tmp_path)
    assert [r.generator for r in back] == ["ovi"] * 4  # from the directory name
    assert back[0].details == {"conf": 3.1} and back[3].error == "no audio stream"
    facts = json.loads(summary.read_text())[""]["AV"]
    assert (facts["n_ok"], facts["n_failed"], facts["item_coverage"]) == (3, 1, 0.75)
    assert facts["failed_clips"] == ["news/d.mp4"]


def test_cli_aggregate_records_default_strict_and_json(tmp_path):
    records = [r for r in full_records() if r.module != "Face"]
    records += [ok("Face", c, 20.0) for c in CLIPS[:3]] + [failed("Face", CLIPS[3])]
    write_records(tmp_path / "gen" / "all.jsonl", records)
    default = json.loads(runner.invoke(app, ["avgen", "aggregate", str(tmp_path), "--json"]).stdout)["gen"]
    strict = json.loads(runner.invoke(app, ["avgen", "aggregate", str(tmp_path), "--strict", "--json"]).stdout)
    assert strict["gen"]["total"] < default["total"] and default["Face"] == pytest.approx(20.0)
    res = runner.invoke(app, ["avgen", "aggregate", str(tmp_path), "--strict"], env={"COLUMNS": "250"})
    assert res.exit_code == 0 and "Face failed on 1 of 4 clips (scored 0): news/d.mp4" in res.stdout
    assert runner.invoke(app, ["avgen", "aggregate"]).exit_code == 2
    assert runner.invoke(app, ["avgen", "aggregate", str(tmp_path), "--table", str(PUBLISHED)]).exit_code == 2


@pytest.mark.parametrize(("line", "message"), [
    ('{"clip": "a.mp4", "category": "ads", "module": "Vis", "raw": null, "status": "ok", "error": null, '
     '"details": {}}', "status 'ok' needs a finite number in field 'raw'"),
    ('{"clip": "a.mp4", "category": "ads", "module": "Vis", "raw": null, "status": "failed", "error": "", '
     '"details": {}}', "status 'failed' needs a non-empty 'error'"),
    ('{"clip": "a.mp4", "category": "ads", "module": "Visual", "raw": 0.5, "status": "ok", "error": null, '
     '"details": {}}', "field 'module' is 'Visual'"),
    ('{"clip": "a.mp4", "category": "ads", "module": "Vis", "raw": 0.5, "status": "done", "error": null, '
     '"details": {}}', "field 'status' is 'done'"),
    ('{"clip": "a.mp4", "module": "Vis", "raw": 0.5, "status": "ok", "error": null, "details": {}}',
     "missing field.*category"),
    ('{"clip": "a.mp4"', "not JSON"),
])
def test_invalid_records_name_file_and_line(tmp_path, line, message):
    good = ok("Vis", "ads/z.mp4", 0.5).to_dict()
    path = tmp_path / "gen" / "vis.jsonl"
    path.parent.mkdir()
    path.write_text(json.dumps(good) + "\n\n" + line + "\n")
    with pytest.raises(RecordsInvalid, match=rf"vis\.jsonl:3: .*{message}"):
        read_records(path)


def test_duplicate_records_are_refused_with_both_lines(tmp_path):
    path = tmp_path / "g" / "vis.jsonl"
    path.parent.mkdir()
    line = json.dumps(ok("Vis", "ads/a.mp4", 0.5).to_dict())
    path.write_text(line + "\n" + line + "\n")
    with pytest.raises(RecordsInvalid, match=r"vis\.jsonl:2: duplicate .*first at .*vis\.jsonl:1"):
        read_records(path)
    with pytest.raises(RecordsInvalid, match="duplicate"):
        write_records(tmp_path / "w.jsonl", [ok("Vis", "ads/a.mp4", 0.5)] * 2)
    (tmp_path / "empty").mkdir()
    with pytest.raises(RecordsInvalid, match=r"no \*\.jsonl records"):
        read_records(tmp_path / "empty")


def test_table_reads_readme_style_markup_and_ignores_extra_columns():
    text = ("model,Components,Vis,Aud (PQ),AV,Lip,Text,Face,Music,Speech,Lo-Phy,Hi-Phy,Holistic,Total\n"
            "Veo 3.1-fast,Veo (Proprietary),*0.960*,6.64,**0.21**,*2.39*,75.10,52.77,3.13,*94.53*,3.68,67.43,"
            "*86.27*,**67.87**\n")
    (row,) = parse_table(text, "readme.csv")
    assert row.raw["AV"] == 0.21 and row.published_total == 67.87
    assert aggregate_table([row])["Veo 3.1-fast"].total == pytest.approx(67.87, abs=0.01)
    with pytest.raises(AggregationError, match="two columns for module LoPhy"):
        parse_table(text.replace("Hi-Phy", "LoPhy"), "dup.csv")


def test_a_markdown_pipe_table_reads_like_the_csv(tmp_path):
    lines = [line for line in PUBLISHED.read_text().splitlines() if not line.startswith("#")]
    md = ["| " + " | ".join(lines[0].split(",")) + " |", "|" + "---|" * len(lines[0].split(","))]
    md += ["| " + " | ".join(f"**{c}**" if j == 1 else c for j, c in enumerate(line.split(","))) + " |"
           for line in lines[1:]]
    path = tmp_path / "table.md"
    path.write_text("\n".join(md) + "\n")
    from_md = aggregate_table(read_table(path))
    from_csv = aggregate_table(read_table(PUBLISHED))
    assert list(from_md) == list(from_csv)
    for name, t in from_md.items():
        assert t.total == pytest.approx(from_csv[name].total, abs=1e-12)
