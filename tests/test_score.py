"""Scoring: paper Table 3 aggregation, hand-computed scores on a random benchmark, CIs, strict multi."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from mtavg.bench import load_benchmark
from mtavg.bench.schema import QAItem
from mtavg.bootstrap import cluster_ids
from mtavg.run import results_from_rows
from mtavg.score import aggregate, build_results, score_item
from mtavg.taxonomy import load_taxonomy

# MTAVG-Bench 2.0 Table 3 rows: ten sub-dimension scores and the printed Avg.
PAPER_TABLE3 = {
    "Gemini 3.1 Pro": ([53.49, 52.35, 81.77, 43.00, 71.86, 51.57, 70.62, 49.26, 72.68, 75.05], 62.16),
    "Gemini 3 Flash": ([46.11, 32.21, 76.45, 43.57, 65.21, 46.24, 59.72, 44.85, 59.21, 66.40], 54.00),
    "Gemini 3.1 Flash Lite": ([48.66, 27.62, 49.64, 38.08, 32.87, 40.84, 66.67, 33.30, 49.42, 56.97], 44.41),
    "Gemini 2.5 Flash": ([31.68, 34.05, 43.22, 34.84, 64.36, 45.32, 65.17, 36.91, 56.36, 58.19], 47.01),
    "Qwen 2.5 Omni 7B": ([35.52, 23.86, 40.80, 33.44, 34.75, 31.28, 45.62, 32.90, 51.58, 48.20], 37.80),
    "Ming Lite Omni 1.5 30B": ([49.35, 37.24, 44.96, 33.38, 32.40, 36.38, 41.13, 31.23, 55.69, 49.30], 41.11),
}


@pytest.mark.parametrize("evaluator", sorted(PAPER_TABLE3))
def test_paper_table3_avg_is_the_mean_of_sub_dimensions(evaluator):
    values, printed = PAPER_TABLE3[evaluator]
    codes = ["EP", "MP", "DP", "IP", "MC", "EC", "SD", "IC", "IG", "CT"]
    categories, overall = aggregate(dict(zip(codes, values, strict=True)))
    assert overall == pytest.approx(printed, abs=0.01)
    assert categories["acting"] == pytest.approx(np.mean(values[:4]))
    assert categories["atmosphere"] == pytest.approx(np.mean(values[4:7]))
    assert categories["cinematography"] == pytest.approx(np.mean(values[7:]))


def test_aggregate_rejects_unknown_and_skips_absent():
    categories, overall = aggregate({"EP": 50.0, "SD": 70.0, "IG": None})
    assert overall == 60.0 and categories["cinematography"] is None
    with pytest.raises(ValueError, match="XX"):
        aggregate({"XX": 1.0})


def _item(fmt, answer, options=4, **kw):
    labels = "ABCDEFGH"[:options]
    base = dict(qid="q", format=fmt, video_ids=["v"], question="?", options={k: k for k in labels},
                answer=answer, sub_dimension="EP", failure_mode="expression_exaggeration")
    return QAItem(**{**base, **kw})


def test_multi_coverage_strict_and_select_all():
    item = _item("multi", ["A", "C"])
    s = score_item(item, {"answer": ["A", "B", "C", "D"]})
    assert (s.score, s.jaccard, s.exact, s.selected_all) == (1.0, 0.5, 0.0, True)
    s = score_item(item, {"answer": ["A"]})
    assert (s.score, s.jaccard, s.exact, s.selected_all) == (0.5, 0.5, 0.0, False)
    assert score_item(item, None).score == 0.0


def test_temporal_pia_and_tla():
    item = _item("temporal", ["B"], time_options={"A": [0, 2], "B": [2, 4], "C": [4, 6]}, time_answer=["B", "C"])
    s = score_item(item, {"answer": ["B"], "time": ["A", "C"]})
    assert (s.score, s.tla) == (1.0, 0.5)
    s = score_item(item, {"answer": ["A"], "time": ["B", "C"]})
    assert (s.score, s.tla) == (0.0, 1.0)


# Messy renderings of an intended answer, the way real evaluators write them.
def _messy(rng: random.Random, item: dict, answer: list[str], time: list[str]) -> str:
    if item["format"] == "temporal":
        styles = [
            lambda: json.dumps({"primary_issue": answer[0], "time": time, "rationale": "r"}),
            lambda: "```json\n" + json.dumps({"primary_issue": answer[0], "time": time}) + "\n```",
        ]
    elif len(answer) > 1:
        styles = [
            lambda: json.dumps({"answer": answer}),
            lambda: "Having watched the clip, my answer: " + ", ".join(answer),
            lambda: "Answer: " + " and ".join(answer) + ".",
            lambda: "<answer>" + "; ".join(answer) + "</answer>",
        ]
    else:
        a = answer[0]
        styles = [
            lambda: json.dumps({"answer": [a], "rationale": "x"}),
            lambda: f"```json\n{{\"answer\": \"{a}\"}}\n```",
            lambda: f"The characters talk over each other, so the answer is ({a}).",
            lambda: f"Answer: {a}",
            lambda: f"**{a}**",
            lambda: f"答案：{a}",
            lambda: f"First I thought Answer: {'A' if a != 'A' else 'B'}. On reflection, Final answer: {a}",
        ]
    return rng.choice(styles)()


def _invalid(rng: random.Random) -> str:
    return rng.choice(["I'm sorry, but I can't view videos.", "None of the above.", "", "Answer: Z"])


def _reference(items: list[dict], intended: dict[str, tuple | None]) -> dict:
    """An independent, loop-based implementation of DESIGN.md "Scoring"."""
    tax = load_taxonomy()
    per_sub: dict[str, list[float]] = {}
    pia, tla = [], []
    for it in items:
        pred = intended[it["qid"]]
        ans, time = (set(pred[0]), set(pred[1])) if pred else (None, set())
        gold = set(it["answer"])
        if it["format"] == "temporal":
            pia.append(float(ans == gold) if ans else 0.0)
            tla.append(len(time & set(it["time_answer"])) / len(it["time_answer"]) if ans else 0.0)
            continue
        val = 0.0 if ans is None else (len(ans & gold) / len(gold) if it["format"] == "multi" else float(ans == gold))
        per_sub.setdefault(it["sub_dimension"], []).append(val)
    subs = {k: 100 * sum(v) / len(v) for k, v in per_sub.items()}
    cats = {}
    for slug, c in tax.categories.items():
        vals = [subs[k] for k in c.sub_dimensions if k in subs]
        cats[slug] = sum(vals) / len(vals) if vals else None
    return {"subs": subs, "cats": cats, "overall": sum(subs.values()) / len(subs),
            "PIA": 100 * sum(pia) / len(pia), "TLA": 100 * sum(tla) / len(tla)}


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_rescoring_messy_raw_matches_hand_computation(random_bench, seed):
    rng = random.Random(seed)
    bench = load_benchmark(random_bench)
    items = [json.loads(line) for line in (random_bench / "qa.jsonl").read_text().splitlines()]
    rows, intended = [], {}
    for it in items:
        labels = list(it["options"])
        if rng.random() < 0.15:
            rows.append({"qid": it["qid"], "raw": _invalid(rng)})
            intended[it["qid"]] = None
            continue
        k = rng.randint(1, len(labels)) if it["format"] == "multi" else 1
        answer = sorted(rng.sample(labels, k))
        time = sorted(rng.sample(list(it.get("time_options") or {}), 1)) if it["format"] == "temporal" else []
        rows.append({"qid": it["qid"], "raw": _messy(rng, it, answer, time)})
        intended[it["qid"]] = (answer, time)
    results = results_from_rows(bench, rows, model="m", n_boot=50)
    ref = _reference(items, intended)
    assert results["overall"] == pytest.approx(ref["overall"], abs=0.01)
    for code, value in ref["subs"].items():
        assert results["sub_dimensions"][code]["score"] == pytest.approx(value, abs=0.01), code
    for slug, value in ref["cats"].items():
        assert results["categories"][slug] == pytest.approx(value, abs=0.01) if value is not None else True
    assert results["temporal"]["PIA"] == pytest.approx(ref["PIA"], abs=0.01)
    assert results["temporal"]["TLA"] == pytest.approx(ref["TLA"], abs=0.01)
    assert results["temporal"]["RC"] is None
    assert results["n_invalid"] == sum(v is None for v in intended.values())


def test_missing_predictions_count_as_invalid_not_dropped(random_bench):
    bench = load_benchmark(random_bench)
    items = bench.items[:10]
    preds = {it.qid: {"answer": list(it.answer), "time": list(it.time_answer or [])} for it in items[:5]}
    res = build_results(items, preds, bench.videos, model="m", bench="b", n_boot=0)
    assert res["n_items"] == 10 and res["n_invalid"] == 5 and res["invalid_reasons"] == {"missing": 5}


def test_clusters_join_items_sharing_videos():
    a = _item("single", ["A"], qid="1", video_ids=["v1"])
    b = QAItem(**{**a.model_dump(), "qid": "2", "format": "pairwise", "video_ids": ["v1", "v2"],
                  "options": {"A": "Clip 1", "B": "Clip 2"}})
    c = QAItem(**{**a.model_dump(), "qid": "3", "video_ids": ["v2"]})
    d = QAItem(**{**a.model_dump(), "qid": "4", "video_ids": ["v3"]})
    ids = cluster_ids([a, b, c, d])
    assert ids["1"] == ids["2"] == ids["3"] != ids["4"]
    # a chain of random pairs joining everything falls back to clustering by the first clip
    chain = [QAItem(**{**b.model_dump(), "qid": f"p{i}", "video_ids": [f"v{i}", f"v{i + 1}"]}) for i in range(30)]
    ids = cluster_ids(chain)
    assert len(set(ids.values())) == 30


def test_ci_brackets_score_and_breakdowns_present(random_bench):
    bench = load_benchmark(random_bench)
    preds = {it.qid: {"answer": list(it.answer)} if i % 3 else None for i, it in enumerate(bench.items)}
    res = build_results(bench.items, preds, bench.videos, model="m", bench="b", n_boot=400)
    for entry in res["sub_dimensions"].values():
        lo, hi = entry["ci95"]
        assert lo <= entry["score"] <= hi
    lo, hi = res["overall_ci95"]
    assert lo < res["overall"] < hi and hi - lo < 40
    assert set(res["by_generator"]) == {"gen0", "gen1", "gen2"}
    assert set(res["by_setting"]) == {"storyboard", "short_drama"}
    assert res["by_setting"]["storyboard"]["n_items"] + res["by_setting"]["short_drama"]["n_items"] == 120
