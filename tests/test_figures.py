"""Figures: valid PNG + SVG files whose text (cell values, labels, rho) says what the data says."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from PIL import Image

from mtavg.analysis import (
    cooccurrence_correlation,
    error_count_distribution,
    failure_mode_rates,
    failure_rates,
)
from mtavg.report.figures import (
    correlation_matrix,
    error_count_histograms,
    failure_heatmap,
    failure_mode_bars,
    metrics_vs_failure_scatter,
    radar_charts,
    sub_dimension_bars,
    write_figures,
)
from mtavg.taxonomy import load_taxonomy
from test_analysis_failures import fixture_annotations

SVG = "{http://www.w3.org/2000/svg}"


def _check_pair(paths: list[Path], stem: str) -> ET.Element:
    """PNG + SVG named ``stem``, both decodable; returns the SVG's root."""
    assert [p.name for p in paths] == [f"{stem}.png", f"{stem}.svg"]
    with Image.open(paths[0]) as img:
        img.verify()
        assert img.format == "PNG"
    with Image.open(paths[0]) as img:
        assert img.size[0] > 200 and img.size[1] > 100
    root = ET.parse(paths[1]).getroot()
    assert root.tag == f"{SVG}svg"
    return root


def _texts(root: ET.Element) -> list[str]:
    return ["".join(t.itertext()) for t in root.iter(f"{SVG}text")]


def _cell(root: ET.Element, row: int, code: str) -> str:
    group = next(g for g in root.iter(f"{SVG}g") if g.get("id") == f"cell-{row}-{code}")
    return "".join(next(group.iter(f"{SVG}text")).itertext())


def _results(model: str, scores: dict[str, float]) -> dict:
    return {"model": model, "modality": "full", "overall": sum(scores.values()) / len(scores),
            "sub_dimensions": {c: {"score": s, "n": 4, "ci95": [s - 5, s + 5]} for c, s in scores.items()}}


def test_heatmap_cells_hold_the_eq9_rates(tmp_path: Path) -> None:
    root = _check_pair(failure_heatmap(failure_rates(fixture_annotations()), tmp_path), "failure_heatmap")
    # rows: 0 genA, 1 genB, 2 Average (hand-computed in test_analysis_failures)
    assert _cell(root, 0, "IP") == "100.0"
    assert _cell(root, 0, "SD") == "33.3"
    assert _cell(root, 1, "SD") == "150.0"
    assert _cell(root, 1, "CT") == "100.0"
    assert _cell(root, 1, "IP") == "0.0"
    assert _cell(root, 2, "SD") == "91.7"
    assert _cell(root, 2, "EP") == "16.7"
    texts = _texts(root)
    assert {"genA", "genB", "Average", "Acting", "Atmosphere", "Cinematography", *load_taxonomy().sub_dimensions} <= set(texts)
    cells = [g for g in root.iter(f"{SVG}g") if (g.get("id") or "").startswith("cell-")]
    assert len(cells) == 3 * 10


def test_heatmap_without_average_row(tmp_path: Path) -> None:
    root = _check_pair(failure_heatmap(failure_rates(fixture_annotations()), tmp_path, average=False, stem="h"), "h")
    assert "Average" not in _texts(root)
    assert not any(g.get("id") == "cell-2-SD" for g in root.iter(f"{SVG}g"))


def test_failure_mode_bars_label_all_45_modes(tmp_path: Path) -> None:
    rates = failure_mode_rates(fixture_annotations())
    root = _check_pair(failure_mode_bars(rates, tmp_path), "failure_modes")
    texts = _texts(root)
    tax = load_taxonomy()
    for slug, mode in tax.failure_modes.items():
        assert f"{mode.name} ({mode.sub_dimension})" in texts, slug
    assert " 60.0" in texts  # missing_ambient_sound: 3 segments / 5 videos
    root_b = _check_pair(failure_mode_bars(rates, tmp_path, key="genB", stem="modes_genB"), "modes_genB")
    assert " 100.0" in _texts(root_b) and "Failure modes — genB" in _texts(root_b)
    with pytest.raises(KeyError):
        failure_mode_bars(rates, tmp_path, key="nobody")


def test_error_count_histograms_show_shares(tmp_path: Path) -> None:
    dist = error_count_distribution(fixture_annotations())
    texts = _texts(_check_pair(error_count_histograms(dist, tmp_path), "error_counts"))
    assert {"All categories", "Acting", "Atmosphere", "Cinematography", "5+"} <= set(texts)
    assert texts.count("40") >= 3  # total "2", acting "2", atmosphere "0" and "1" bars are 40 %


def test_correlation_matrix_labels_in_clustered_order(tmp_path: Path) -> None:
    cooc = cooccurrence_correlation(fixture_annotations())
    root = _check_pair(correlation_matrix(cooc, tmp_path), "failure_correlation")
    tax = load_taxonomy()
    ordered, _ = cooc.ordered()
    names = [tax.failure_modes[m].name for m in ordered]
    texts = [t for t in _texts(root) if t in names]
    assert texts == names + names  # x tick labels then y tick labels, both in clustered order
    single = cooccurrence_correlation(fixture_annotations(), modes=["missing_ambient_sound"])
    with pytest.raises(ValueError, match=">= 2 failure modes"):
        correlation_matrix(single, tmp_path)


def test_radar_chart_per_evaluator_marks_missing_sub_dimensions(tmp_path: Path) -> None:
    codes = list(load_taxonomy().sub_dimensions)
    full = _results("model A", {c: 10.0 * (i + 1) for i, c in enumerate(codes)})
    partial = _results("m/b", {c: 50.0 for c in codes[:7]})
    paths = radar_charts([full, partial], tmp_path)
    _check_pair(paths[:2], "radar_model_A_full")
    texts = _texts(_check_pair(paths[2:], "radar_m_b_full"))
    # multi-line labels become one SVG text per line: "IC" then "(n/a)" for each missing sub-dimension
    assert [texts[i + 1] for i, t in enumerate(texts) if t in ("IC", "IG", "CT")] == ["(n/a)"] * 3
    assert texts.count("(n/a)") == 3
    assert {"m/b (full)", "overall 50.0"} <= set(texts)


def _summary() -> dict:
    def entry(offset: float) -> dict:
        return {"n_clips": 3, "n_failed": 0, "metrics": {"av_offset": {"n": 3, "median_abs_offset_s": offset}}}
    return {"all": entry(9.0), "genA": entry(1.0), "genB": entry(2.0), "genC": entry(3.0)}


def test_metrics_vs_failure_scatter_title_has_spearman_rho(tmp_path: Path) -> None:
    codes = list(load_taxonomy().sub_dimensions)
    rates = {g: {c: (t if c == "SD" else 0.0) for c in codes} for g, t in (("genA", 10), ("genB", 30), ("genC", 20))}
    texts = _texts(_check_pair(metrics_vs_failure_scatter(_summary(), rates, tmp_path), "metrics_vs_failure"))
    assert texts[-2:] == ["av_offset.median_abs_offset_s", "Spearman ρ = +0.50 (n=3)"]
    assert {"genA", "genB", "genC"} <= set(texts)
    assert metrics_vs_failure_scatter({"other": _summary()["genA"]}, rates, tmp_path / "none") == []


def test_write_figures_writes_what_the_inputs_allow(tmp_path: Path) -> None:
    codes = list(load_taxonomy().sub_dimensions)
    results = [_results("m1", {c: 60.0 for c in codes})]
    only_radar = write_figures(results, tmp_path / "a")
    assert sorted(p.name for p in only_radar) == ["radar_m1_full.png", "radar_m1_full.svg"]
    summary = {"genA": _summary()["genA"], "genB": _summary()["genB"]}
    everything = write_figures(results, tmp_path / "b", annotations=fixture_annotations(), metrics_summary=summary)
    stems = {p.stem for p in everything}
    assert stems == {"radar_m1_full", "failure_heatmap", "failure_modes", "error_counts", "failure_correlation",
                     "metrics_vs_failure"}
    assert all(p.is_file() and p.stat().st_size > 0 for p in everything)
    assert len(everything) == 2 * len(stems)


def test_sub_dimension_bars_still_write_one_png_per_sub_dimension(tmp_path: Path) -> None:
    results = [_results("m1", {"EP": 40.0, "IP": 70.0}), _results("m2", {"EP": 55.0})]
    paths = sub_dimension_bars(results, tmp_path)
    assert [p.name for p in paths] == ["EP.png", "IP.png"]
    with Image.open(paths[0]) as img:
        assert img.format == "PNG"
