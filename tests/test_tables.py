"""Tables in the papers' layouts: Markdown, CSV, LaTeX (booktabs) and HTML, and the four builders."""

from __future__ import annotations

import csv
import io
import re

import pytest

from mtavg.report.tables import (
    Cell,
    Row,
    Table,
    latex_escape,
    paper_tables,
    table3,
    table3_markdown,
    table3_rows,
    table4,
    table5,
    table6,
    table6_markdown,
    temporal_markdown,
    write_tables,
)
from mtavg.score import aggregate

CODES = ["EP", "MP", "DP", "IP", "MC", "EC", "SD", "IC", "IG", "CT"]
# MTAVG-Bench 2.0 Table 3, two rows.
PRO = [53.49, 52.35, 81.77, 43.00, 71.86, 51.57, 70.62, 49.26, 72.68, 75.05]
FLASH = [46.11, 32.21, 76.45, 43.57, 65.21, 46.24, 59.72, 44.85, 59.21, 66.40]


def result(model: str, values: list[float], *, modality: str = "full", **extra) -> dict:
    """A results.json dict as mtavg.score writes it (categories and overall from aggregate)."""
    subs = dict(zip(CODES, values, strict=True))
    categories, overall = aggregate(subs)
    return {
        "model": model, "modality": modality, "n_items": 60, "n_invalid": 3, "overall": overall,
        "overall_ci95": [overall - 4.0, overall + 3.0], "categories": categories,
        "sub_dimensions": {c: {"score": v, "n": 6, "ci95": [v - 5.0, v + 5.0]} for c, v in subs.items()},
        "formats": {"single": 50.0, "multi": 60.0, "pairwise": 55.0},
        "temporal": {"n": 12, "PIA": 40.0, "TLA": 35.0, "RC": None},
        "multi_strict": {"jaccard": 30.0, "exact": 10.0}, "select_all_rate": 5.0,
        "ci95": {"temporal": {"PIA": [30.0, 50.0], "TLA": [25.0, 45.0]}, "formats": {"multi": [50.0, 70.0]},
                 "multi_strict": {"jaccard": [20.0, 40.0], "exact": [5.0, 15.0]}, "select_all_rate": [0.0, 10.0],
                 "categories": {k: [v - 6.0, v + 6.0] for k, v in categories.items()}},
        **extra,
    }


@pytest.fixture()
def two() -> list[dict]:
    return [result("Gemini 3.1 Pro", PRO), result("Gemini 3 Flash", FLASH)]


def test_table3_markdown_has_grouped_header_and_bold_best(two):
    lines = table3_markdown(two).splitlines()
    i = lines.index("|  | Acting |  |  |  | Atmosphere |  |  | Cinematography |  |  |  |")
    assert lines[i + 1] == "|---|" + "---:|" * 11
    assert lines[i + 2] == "| Evaluator | EP | MP | DP | IP | MC | EC | SD | IC | IG | CT | Avg |"
    assert lines[i + 3] == ("| Gemini 3.1 Pro | **53.49** | **52.35** | **81.77** | 43.00 | **71.86** | **51.57** | "
                            "**70.62** | **49.26** | **72.68** | **75.05** | **62.16** |")
    assert lines[i + 4] == ("| Gemini 3 Flash | 46.11 | 32.21 | 76.45 | **43.57** | 65.21 | 46.24 | 59.72 | 44.85 | "
                            "59.21 | 66.40 | 54.00 |")
    assert "53.49 [48.49, 58.49]" in table3(two).to_markdown(ci=True)


def test_table3_latex_booktabs_grouped_header_bold_and_balanced(two):
    tex = table3(two).to_latex()
    lines = tex.splitlines()
    assert lines[0] == r"\begin{table}[t]" and lines[-1] == r"\end{table}"
    assert r"\begin{tabular}{lrrrrrrrrrrr}" in lines
    head = lines.index(r"\toprule")
    assert lines[head + 1] == (r" & \multicolumn{4}{c}{Acting} & \multicolumn{3}{c}{Atmosphere} & "
                               r"\multicolumn{3}{c}{Cinematography} &  \\")
    assert lines[head + 2] == r"\cmidrule(lr){2-5} \cmidrule(lr){6-8} \cmidrule(lr){9-11}"
    assert lines[head + 3] == r"Evaluator & EP & MP & DP & IP & MC & EC & SD & IC & IG & CT & Avg \\"
    assert lines[head + 4] == r"\midrule"
    assert lines[head + 6] == (r"Gemini 3 Flash & 46.11 & 32.21 & 76.45 & \textbf{43.57} & 65.21 & 46.24 & 59.72 & "
                               r"44.85 & 59.21 & 66.40 & 54.00 \\")
    assert lines.index(r"\toprule") < lines.index(r"\midrule") < lines.index(r"\bottomrule")
    assert tex.count("{") == tex.count("}") and tex.count(r"\textbf{") == 11
    assert r"(\%)" in tex  # the caption's % would otherwise comment out the rest of the line
    # every body row has as many cells as the header
    assert all(line.count(" & ") == 11 for line in lines[head + 3:] if line.endswith(r"\\"))


def test_latex_escapes_names_and_shows_ci(two):
    rows = [result("baseline:random", PRO), result("a_b&c 50% #1 {x} ~^\\", FLASH)]
    tex = table3(rows).to_latex(ci=True)
    assert "baseline:random & " in tex
    assert r"a\_b\&c 50\% \#1 \{x\} \textasciitilde{}\textasciicircum{}\textbackslash{} & " in tex
    assert r"\textbf{53.49}\,{\scriptsize[48.49, 58.49]}" in tex
    assert tex.count("{") == tex.count("}")
    assert latex_escape("|A–V| P∩G") == r"\textbar{}A--V\textbar{} P$\cap$G"


def test_csv_round_trips_values_and_cis(two):
    t = table3(two)
    reader = list(csv.DictReader(io.StringIO(t.to_csv())))
    assert [r["Evaluator"] for r in reader] == ["Gemini 3.1 Pro", "Gemini 3 Flash"]
    for r, values in zip(reader, [PRO, FLASH], strict=True):
        assert [float(r[c]) for c in CODES] == values
        assert float(r["EP ci95 lo"]) == values[0] - 5.0 and float(r["EP ci95 hi"]) == values[0] + 5.0
    assert float(reader[0]["Avg"]) == pytest.approx(62.16, abs=0.01)
    # absent values are empty fields, text cells keep their text
    t5 = list(csv.DictReader(io.StringIO(table5(two).to_csv())))
    assert t5[0]["RC"] == "" and t5[0]["Invalid"] == "3/60" and float(t5[0]["PIA"]) == 40.0


def test_html_escapes_and_carries_group_row(two):
    evil = [result("<script>alert(1)</script>", PRO), result("b&c", FLASH)]
    page = table3(evil).to_html(ci=True)
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "b&amp;c" in page
    thead = page[page.index("<thead>"):page.index("</thead>")]
    assert '<th colspan="4" class="group">Acting</th>' in thead and '<th scope="col">EP</th>' in thead
    assert page.count('class="num best"') == 11
    assert '<span class="ci">[48.49, 58.49]</span>' in page


def test_table5_columns_bold_and_invalid_text(two):
    two[1]["temporal"]["PIA"] = 55.0
    t = table5(two)
    assert t.columns == ["PIA", "TLA", "RC", "Coverage", "Jaccard", "Exact", "Select-all", "Invalid"]
    assert t.groups == [("Temporal", 3), ("Multi-answer", 4), ("", 1)]
    md = temporal_markdown(two).splitlines()
    assert md[-1] == "| Gemini 3 Flash | **55.00** | **35.00** | – | **60.00** | **30.00** | **10.00** | 5.00 | 3/60 |"
    assert not any(c.bold for r in t.rows for c in r.cells[6:])  # select-all and invalid are not ranked
    assert t.rows[0].cells[0].ci == (30.0, 50.0)


def test_table6_rows_in_modality_order():
    runs = [result("m", [v - d for v in PRO], modality=mod) for mod, d in
            (("text", 30), ("full", 0), ("no_vision", 20), ("no_audio", 10))]
    md = table6_markdown(runs).splitlines()
    assert md[2] == "| Setting | Acting | Atmosphere | Cinematography | Avg |"
    assert [line.split(" | ")[0] for line in md[4:]] == ["| Full input", "| w/o Audio", "| w/o Vision", "| Text-only"]
    assert md[4].endswith("| **62.16** |")
    assert table6(runs).title.startswith("Modality ablation for m")


SUMMARY = {
    "all": {"n_clips": 6, "n_failed": 0, "metrics": {"av_offset": {"median_abs_offset_s": 0.01},
                                                      "dnsmos": {"ovrl": 9.9}}},
    "genA": {"n_clips": 3, "n_failed": 0, "metrics": {"av_offset": {"median_abs_offset_s": 0.04},
                                                       "dnsmos": {"ovrl": 2.5}, "frames": {"flicker": 0.3}}},
    "genB": {"n_clips": 3, "n_failed": 1, "metrics": {"av_offset": {"median_abs_offset_s": 0.02},
                                                       "dnsmos": {"ovrl": 3.1}, "frames": {"flicker": None}}},
}


def test_table4_directions_and_present_columns():
    t = table4(SUMMARY)
    assert [r.label for r in t.rows] == ["genA", "genB", "All clips"]
    assert t.columns == ["Clips", "|A–V offset| (s)", "DNSMOS OVRL", "Flicker"]
    assert t.groups == [("", 1), ("Synchrony", 1), ("Audio", 1), ("Video", 1)]
    bold = {(r.label, t.columns[j]) for r in t.rows for j, c in enumerate(r.cells) if c.bold}
    # lower offset wins, higher DNSMOS wins; the "all" row is never ranked; one value has no best
    assert bold == {("genB", "|A–V offset| (s)"), ("genB", "DNSMOS OVRL")}
    md = t.to_markdown()
    assert "| genB | 3 | **0.020** | **3.10** | – |" in md and r"\|A–V offset\| (s)" in md


def test_bold_ties_at_display_precision_and_validation():
    t = Table("t", ["x"], [Row("a", [Cell(1.004)]), Row("b", [Cell(1.0)]), Row("c", [Cell(0.5)])],
              better=["max"]).mark_best()
    assert [r.cells[0].bold for r in t.rows] == [True, True, False]
    with pytest.raises(ValueError, match="group spans"):
        Table("t", ["x", "y"], [], groups=[("G", 3)])
    with pytest.raises(ValueError, match="row 'a'"):
        Table("t", ["x", "y"], [Row("a", [Cell(1.0)])])


def test_legacy_helpers_keep_their_shape(two):
    header, rows = table3_rows(two)
    assert header == ["Evaluator", *CODES, "Avg"]
    assert rows[0][:10] == PRO and rows[0][10] == pytest.approx(62.16, abs=0.01)


def test_write_tables_writes_every_format(two, tmp_path):
    runs = [*two, result("Gemini 3 Flash", FLASH, modality="no_audio")]
    out = write_tables(runs, tmp_path / "tables", metrics_summary=SUMMARY)
    assert set(out) == {"table3", "table4", "table5", "table6"}
    for paths in out.values():
        assert {k: p.name.split(".")[-1] for k, p in paths.items()} == {"md": "md", "csv": "csv", "tex": "tex"}
        assert all(p.stat().st_size > 0 for p in paths.values())
    t3 = out["table3"]["md"].read_text()
    assert "(w/o Audio)" not in t3 and "| Gemini 3 Flash |" in t3  # Table 3 holds full-input runs
    assert re.search(r"\\begin\{tabular\}", out["table6"]["tex"].read_text())
    assert "table6" not in write_tables(two, tmp_path / "plain")  # no ablation, no Table 6
    two_ablations = [*runs, result("Gemini 3.1 Pro", PRO, modality="text")]
    assert [t.key for t in paper_tables(two_ablations)] == [
        "table3", "table5", "table6_Gemini_3.1_Pro", "table6_Gemini_3_Flash"]
