"""Statistics in results.json: clustered CIs on every score, option-position bias."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import chi2_contingency

from mtavg.bench import load_benchmark
from mtavg.bench.schema import QAItem
from mtavg.score import build_results
from mtavg.stats import pearson_chi2, position_bias


def _items(n: int, labels: str = "ABCD", fmt: str = "single", prefix: str = "q") -> list[QAItem]:
    """Gold labels cycling through every position, one clip per item."""
    return [QAItem(qid=f"{prefix}{i}", format=fmt, video_ids=[f"v{i}"], question="?",
                   options={k: k for k in labels}, answer=[labels[i % len(labels)]], sub_dimension="EP",
                   failure_mode="expression_exaggeration") for i in range(n)]


@pytest.mark.parametrize("table", [[[10, 20, 30], [25, 15, 20]], [[5, 0, 7], [3, 0, 9]], [[12, 3], [4, 11]]])
def test_pearson_chi2_matches_scipy(table):
    ours = pearson_chi2(np.array(table))
    t = np.array(table)
    t = t[:, t.sum(axis=0) > 0]
    chi2, p, dof, _ = chi2_contingency(t, correction=False)
    assert ours["chi2"] == pytest.approx(chi2, abs=1e-4) and ours["p"] == pytest.approx(p) and ours["dof"] == dof
    assert pearson_chi2(np.array([[3, 4]])) is None  # one row: nothing to test


def test_an_evaluator_that_always_says_a_is_flagged():
    items = _items(80)
    always_a = {it.qid: {"answer": ["A"]} for it in items}
    pb = position_bias(items, always_a)
    assert pb["preferred"] == "A" and pb["note"].startswith("prefers A: 100.0% of its answers vs 25.0% of gold")
    assert pb["positions"]["A"]["accuracy"] == 100.0 and pb["positions"]["B"]["accuracy"] == 0.0
    assert pb["positions"]["A"]["pred_share"] == 100.0 and pb["positions"]["C"]["chance_share"] == 25.0
    assert pb["preference_test"]["p"] < 1e-10 and pb["accuracy_test"]["p"] < 1e-10
    assert pb["by_format"]["single"]["preferred"] == "A"


def test_a_perfect_evaluator_shows_no_bias_and_invalid_answers_sit_nowhere():
    items = _items(40)
    perfect = {it.qid: {"answer": list(it.answer)} for it in items}
    pb = position_bias(items, perfect)
    assert pb["preferred"] is None and pb["preference_test"]["chi2"] == 0.0 and pb["preference_test"]["p"] == 1.0
    assert pb["accuracy_test"] is None  # every position 100%: no column of errors to test
    half = {q: p for i, (q, p) in enumerate(perfect.items()) if i % 2}
    pb = position_bias(items, half)
    assert (pb["n"], pb["n_placed"], pb["n_unplaced"]) == (40, 20, 20)
    # items q0, q2, ... (gold A and C) are unanswered: they count as wrong, as in scoring
    assert pb["positions"]["A"]["accuracy"] == 0.0 and pb["positions"]["B"]["accuracy"] == 100.0


def test_multi_items_are_left_out_and_formats_split():
    items = _items(8) + _items(6, "AB", "pairwise", prefix="p") + [
        QAItem(qid="m", format="multi", video_ids=["v"], question="?", options={"A": "a", "B": "b"},
               answer=["A", "B"], sub_dimension="EP", failure_mode="expression_exaggeration")]
    pb = position_bias(items, {})
    assert pb["n"] == 14 and set(pb["by_format"]) == {"single", "pairwise"}
    assert pb["by_format"]["pairwise"]["positions"]["A"]["chance_share"] == 50.0


def test_results_json_has_clustered_cis_on_every_score(random_bench):
    bench = load_benchmark(random_bench)
    preds = {it.qid: {"answer": list(it.answer), "time": list(it.time_answer or [])} if i % 3 else None
             for i, it in enumerate(bench.items)}
    res = build_results(bench.items, preds, bench.videos, model="m", bench="b", n_boot=300)
    ci = res["ci95"]
    assert set(ci) == {"overall", "categories", "sub_dimensions", "formats", "temporal", "multi_strict",
                       "select_all_rate"}
    assert ci["overall"] == res["overall_ci95"] and ci["categories"] == res["categories_ci95"]
    pairs = [(ci["overall"], res["overall"])]
    pairs += [(ci["formats"][f], v) for f, v in res["formats"].items()]
    pairs += [(ci["temporal"][k], res["temporal"][k]) for k in ("PIA", "TLA")]
    pairs += [(ci["multi_strict"][k], res["multi_strict"][k]) for k in ("jaccard", "exact")]
    pairs += [(ci["categories"][k], v) for k, v in res["categories"].items()]
    for (lo, hi), value in pairs:
        assert lo <= value <= hi and hi - lo < 50
    assert ci["temporal"]["PIA"][1] - ci["temporal"]["PIA"][0] > 0  # a third of the answers are invalid
    again = build_results(bench.items, preds, bench.videos, model="m", bench="b", n_boot=300)
    assert again["ci95"] == ci  # seeded: the same run gives the same intervals
    assert "ci95" in res["by_generator"]["gen0"] and res["position_bias"]["n"] > 0
    empty = build_results(bench.items, preds, bench.videos, model="m", bench="b", n_boot=0)
    assert empty["ci95"]["temporal"] == {"PIA": None, "TLA": None} and empty["ci95"]["overall"] is None


def test_a_small_tilt_on_many_items_is_tested_but_not_named():
    items = _items(10000)
    # answers right, except that 3% of all items (gold B, C or D) get "A": A holds 28% of answers vs 25% gold
    tilted = {it.qid: {"answer": ["A"] if i % 100 < 5 and it.answer != ["A"] else list(it.answer)}
              for i, it in enumerate(items)}
    pb = position_bias(items, tilted)
    assert pb["preference_test"]["p"] < 0.01 and pb["preferred"] is None and pb["note"] is None
    assert pb["positions"]["A"]["pred_share"] - pb["positions"]["A"]["gold_share"] < 5
    assert position_bias(items, tilted, min_excess=1.0)["preferred"] == "A"
