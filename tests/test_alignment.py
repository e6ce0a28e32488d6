"""Human alignment (`mtavg align`): scipy-exact coefficients, bootstrap CIs, pairing, errors, CLI."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from scipy import stats
from typer.testing import CliRunner

from mtavg.cli import app
from mtavg.suites.alignment import AlignmentError, align, correlate, load_rows, scatter_png

runner = CliRunner()
DIMS = ("av_consistency", "sync")


def _clips(n: int = 40, seed: int = 3) -> tuple[list[dict], list[dict]]:
    """Score rows (two dimensions per clip) and 1-5 integer human ratings (ties) monotone in the truth."""
    rng = np.random.default_rng(seed)
    truth = rng.random(n)
    scores, human = [], []
    for i, t in enumerate(truth):
        cid = f"neg-{i:04d}"
        for j, dim in enumerate(DIMS):
            scores.append({"clip_id": cid, "dimension": dim, "score": float(np.clip(t + rng.normal(0, 0.15 + 0.1 * j),
                                                                                     0, 1)),
                           "error": None, "generator": "veo", "role": "negative", "perturbation": "time_shift"})
        human.append({"clip_id": cid, "rating": int(np.clip(round(1 + 4 * t + rng.normal(0, 0.5)), 1, 5))})
    return scores, human


def _write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _write_csv(path: Path, rows: list[dict]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return path


def _pairs(result: dict, group: str) -> tuple[np.ndarray, np.ndarray]:
    p = result["groups"][group]["pairs"]
    return np.array([x[1] for x in p]), np.array([x[2] for x in p])


# ---------------------------------------------------------------- correlate
def test_coefficients_are_scipys_and_ci_is_the_pair_bootstrap():
    scores, human = _clips()
    a = np.array([r["score"] for r in scores if r["dimension"] == "sync"])
    h = np.array([float(r["rating"]) for r in human])
    assert len(set(h)) < len(h)  # ties on the human side: tau-b matters
    out = correlate(a, h, n_boot=300, seed=5)
    assert out["n"] == 40
    for name, fn in (("pearson", stats.pearsonr), ("spearman", stats.spearmanr), ("kendall", stats.kendalltau)):
        r, p = fn(a, h)
        assert out[name]["r"] == pytest.approx(float(r), abs=1e-12)
        assert out[name]["p"] == pytest.approx(float(p), abs=1e-12, rel=1e-12)
        lo, hi = out[name]["ci95"]
        assert lo < out[name]["r"] < hi
    # independent re-implementation: resample pairs, skip constant resamples, 2.5/97.5 percentiles
    idx = np.random.default_rng(5).integers(0, 40, size=(300, 40))
    boot: dict[str, list[float]] = {"pearson": [], "spearman": [], "kendall": []}
    for row in idx:
        x, y = a[row], h[row]
        if np.ptp(x) == 0 or np.ptp(y) == 0:
            continue
        boot["pearson"].append(stats.pearsonr(x, y)[0])
        boot["spearman"].append(stats.spearmanr(x, y)[0])
        boot["kendall"].append(stats.kendalltau(x, y)[0])
    for name, vals in boot.items():
        assert out[name]["ci95"] == pytest.approx(list(np.percentile(vals, [2.5, 97.5])), abs=1e-9)


def test_ci_is_seeded():
    scores, human = _clips()
    a = [r["score"] for r in scores if r["dimension"] == "sync"]
    h = [r["rating"] for r in human]
    one, again, other = (correlate(a, h, n_boot=200, seed=s) for s in (1, 1, 2))
    for name in ("pearson", "spearman", "kendall"):
        assert one[name]["ci95"] == again[name]["ci95"]
        assert one[name]["ci95"] != other[name]["ci95"]
        assert one[name]["r"] == other[name]["r"]


def test_undefined_correlations_are_null_with_a_note():
    const = correlate([0.5] * 6, [1, 2, 3, 4, 5, 5])
    few = correlate([0.1, 0.9], [1, 5])
    flat_human = correlate([0.1, 0.5, 0.9, 0.3], [3, 3, 3, 3])
    for out, word in ((const, "automatic scores are constant"), (few, "fewer than 3"),
                      (flat_human, "human ratings are constant")):
        for name in ("pearson", "spearman", "kendall"):
            assert out[name]["r"] is None and out[name]["p"] is None and out[name]["ci95"] is None
            assert word in out[name]["note"]


def test_constant_resamples_are_skipped():
    out = correlate([0.0, 0.0, 0.0, 0.0, 1.0], [1, 1, 1, 2, 5], n_boot=500, seed=0)
    assert 0 < out["n_boot"] < 500  # many resamples miss the one distinct point
    for name in ("pearson", "spearman", "kendall"):
        assert all(np.isfinite(out[name]["ci95"]))


# ---------------------------------------------------------------- align
def test_clip_alignment_per_dimension_and_overall():
    scores, human = _clips()
    res = align(scores, human, n_boot=100)
    assert res["key"] == "clip_id" and res["human_field"] == "rating"
    assert list(res["groups"]) == ["all", *DIMS]
    ratings = {r["clip_id"]: r["rating"] for r in human}
    for dim in DIMS:
        mine = [r for r in scores if r["dimension"] == dim]
        a, h = np.array([r["score"] for r in mine]), np.array([ratings[r["clip_id"]] for r in mine], float)
        g = res["groups"][dim]
        assert g["n"] == 40 and g["kendall"]["r"] == pytest.approx(stats.kendalltau(a, h)[0], abs=1e-12)
        assert g["pearson"]["r"] == pytest.approx(stats.pearsonr(a, h)[0], abs=1e-12)
    # "all": one pair per human rating, the automatic side averaged over the clip's dimensions
    mean = {cid: np.mean([r["score"] for r in scores if r["clip_id"] == cid]) for cid in ratings}
    a, h = _pairs(res, "all")
    assert res["groups"]["all"]["n"] == 40
    assert a == pytest.approx([mean[p[0]] for p in res["groups"]["all"]["pairs"]])
    assert res["groups"]["all"]["spearman"]["r"] == pytest.approx(stats.spearmanr(a, h)[0], abs=1e-12)
    assert align(scores, human, by=None, n_boot=10)["groups"].keys() == {"all"}


def test_human_dimension_rows_match_their_dimension_only():
    scores = [{"clip_id": f"c{i}", "dimension": d, "score": s}
              for i in range(5) for d, s in (("x", i / 10), ("y", 1 - i / 10))]
    human = [{"clip_id": f"c{i}", "dimension": "x", "rating": i} for i in range(5)]
    human += [{"clip_id": f"c{i}", "dimension": "y", "rating": 4 - i} for i in range(4)]
    res = align(scores, human, n_boot=50)
    assert res["groups"]["x"]["pearson"]["r"] == pytest.approx(1.0)
    assert res["groups"]["y"]["pearson"]["r"] == pytest.approx(1.0)  # matched to y ratings, not x
    assert res["groups"]["y"]["n"] == 4 and res["groups"]["all"]["n"] == 9
    assert res["unmatched"]["scores_only"] == ["c4"]


def test_failed_and_unmatched_are_reported_not_dropped():
    scores, human = _clips(12)
    scores[0]["score"] = None  # neg-0000, av_consistency: a failed call
    scores[0]["error"] = "timeout"
    scores.append({"clip_id": "extra-1", "dimension": "sync", "score": 0.4})
    human.append({"clip_id": "lonely-9", "rating": 3})
    res = align(scores, human, n_boot=20)
    av, sync, everything = (res["groups"][g] for g in ("av_consistency", "sync", "all"))
    assert (av["n_failed"], av["failed"], av["n"]) == (1, ["neg-0000"], 11)
    assert (sync["n_failed"], sync["n"]) == (0, 12)
    assert everything["n_failed"] == 1 and everything["failed"] == ["neg-0000"]
    assert "neg-0000" not in {p[0] for p in av["pairs"]}
    assert res["unmatched"] == {"scores_only": ["extra-1"], "human_only": ["lonely-9"], "scores_without_key": []}


def test_model_mode_aggregates_means_per_model():
    scores = [{"clip_id": f"{m}-{i}", "dimension": "d", "score": s, "generator": m}
              for m, vals in (("veo", [0.2, 0.4, 0.9]), ("sora", [0.5, 0.7])) for i, s in enumerate(vals)]
    scores += [{"clip_id": "k-0", "dimension": "d", "score": 0.1, "model": "kling", "generator": "other"},
               {"clip_id": "k-1", "dimension": "d", "score": None, "model": "kling"},
               {"clip_id": "k-2", "dimension": "d", "score": 0.3, "model": "kling"},
               {"clip_id": "x-0", "dimension": "d", "score": 0.3}]  # no model: cannot be placed
    human = [{"model": "veo", "win_ratio": 0.55}, {"model": "sora", "win_ratio": 0.7},
             {"model": "kling", "win_ratio": 0.2}]
    res = align(scores, human, n_boot=20)
    assert res["key"] == "model" and res["human_field"] == "win_ratio"
    g = res["groups"]["all"]
    models = {m["model"]: m for m in g["models"]}
    assert models["veo"]["auto"] == pytest.approx(0.5) and models["veo"]["n_clips"] == 3
    assert models["sora"]["auto"] == pytest.approx(0.6) and models["sora"]["n_clips"] == 2
    assert models["kling"]["auto"] == pytest.approx(0.2) and models["kling"]["n_clips"] == 2  # `model` wins
    assert models["kling"]["n_failed"] == 1 and g["failed"] == ["k-1"]
    a, h = [0.5, 0.6, 0.2], [0.55, 0.7, 0.2]
    assert g["n"] == 3 and g["pearson"]["r"] == pytest.approx(stats.pearsonr(a, h)[0], abs=1e-12)
    assert res["unmatched"]["scores_without_key"] == ["x-0"]


def test_human_key_and_field_detection():
    scores = [{"clip_id": f"c{i}", "score": i / 4} for i in range(4)]
    human = [{"clip": f"c{i}", "mos": str(i + 1), "score": "9"} for i in range(4)]  # CSV-style strings
    res = align(scores, human, n_boot=10)
    assert (res["key"], res["human_key_column"], res["human_field"]) == ("clip_id", "clip", "mos")
    assert res["groups"]["all"]["pairs"][0][2] == 1.0
    with pytest.raises(AlignmentError, match="no such column"):
        align(scores, human, key="model")
    with pytest.raises(AlignmentError, match="no human rating column"):
        align(scores, [{"clip_id": "c0", "stars": 3}])


# ---------------------------------------------------------------- errors
def test_non_numeric_human_rating_names_file_line_and_column(tmp_path):
    scores, human = _clips(8)
    human[4]["rating"] = "good"
    path = _write_csv(tmp_path / "human.csv", human)
    with pytest.raises(AlignmentError) as exc:
        align(scores, load_rows(path))
    assert f"{path}:6" in str(exc.value) and "'rating'" in str(exc.value) and "'good'" in str(exc.value)


def test_duplicates_raise_naming_both_lines(tmp_path):
    scores, human = _clips(6)
    human.append(dict(human[2]))
    path = _write_jsonl(tmp_path / "human.jsonl", human)
    with pytest.raises(AlignmentError, match=r"human\.jsonl:7: duplicate .*neg-0002.*first at .*human\.jsonl:3"):
        align(scores, load_rows(path))
    spath = _write_jsonl(tmp_path / "scores.jsonl", [*scores, dict(scores[1])])
    with pytest.raises(AlignmentError, match=r"scores\.jsonl:13: duplicate .*neg-0000.*scores\.jsonl:2"):
        align(load_rows(spath), human[:-1])


def test_load_rows_names_the_bad_json_line(tmp_path):
    lines = [json.dumps({"clip_id": f"c{i}", "score": 0.5}) for i in range(6)]
    bad = tmp_path / "s.jsonl"
    bad.write_text("\n".join([*lines, '{"clip_id": "c6", "score": }']) + "\n")
    with pytest.raises(AlignmentError, match=r"s\.jsonl:7: invalid JSON"):
        load_rows(bad)
    doc = tmp_path / "h.json"
    doc.write_text('[\n {"clip_id": "a", "rating": 1},\n\n {"clip_id": "b",\n  "rating": 2}\n]\n')
    assert [r["_line"] for r in load_rows(doc)] == [2, 4]
    doc.write_text('[\n {"clip_id": "a", "rating": 1},\n {"clip_id": "b" "rating": 2}\n]\n')
    with pytest.raises(AlignmentError, match=r"h\.json:3"):
        load_rows(doc)
    with pytest.raises(AlignmentError, match="unsupported file type"):
        load_rows(tmp_path / "h.txt")


# ---------------------------------------------------------------- figure and CLI
def test_scatter_writes_png_and_svg(tmp_path):
    scores, human = _clips(10)
    paths = scatter_png(align(scores, human, n_boot=10), tmp_path / "fig" / "s.png")
    assert [p.name for p in paths] == ["s.png", "s.svg"]
    assert paths[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    svg = paths[1].read_text()
    assert "τ=" in svg and "all (n=10)" in svg and "sync (n=10)" in svg


def test_cli_writes_results_and_fails_with_the_line(tmp_path):
    scores, human = _clips(20)
    spath = _write_jsonl(tmp_path / "scores.jsonl", scores)
    hpath = _write_csv(tmp_path / "human.csv", human)
    out = tmp_path / "out"
    res = runner.invoke(app, ["align", str(spath), str(hpath), "--n-boot", "50", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "Pearson" in res.output and "av_consistency" in res.output and "unmatched: 0" in res.output
    saved = json.loads((out / "alignment.json").read_text())
    assert saved["groups"]["all"]["n"] == 20 and saved["groups"]["sync"]["pearson"]["r"] is not None
    assert (out / "alignment_scatter.png").stat().st_size > 1000 and (out / "alignment_scatter.svg").exists()
    res = runner.invoke(app, ["align", str(spath), str(hpath), "--n-boot", "20", "--json", "--by", "none"])
    assert res.exit_code == 0 and list(json.loads(res.stdout)["groups"]) == ["all"]

    human[6]["rating"] = "n/a"
    bad = _write_csv(tmp_path / "bad.csv", human)
    res = runner.invoke(app, ["align", str(spath), str(bad)])
    assert res.exit_code == 2 and "bad.csv:8" in res.output.replace("\n", "")
