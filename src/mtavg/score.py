"""Per-item scores and their aggregation (DESIGN.md "Scoring", MTAVG-Bench 2.0 Appendix E.3).

Pure functions: predictions in, numbers out. All reported scores are percentages (0-100).
- single, pairwise: 1 if the predicted label is exactly the gold label.
- multi: coverage |P & G| / |G|; Jaccard and exact-set beside it (``multi_strict``).
- temporal: PIA (primary label exact) and TLA (|P & G| / |G| over time windows); own table.
- sub-dimension: mean over its non-temporal items; category: mean of its sub-dimensions;
  overall: mean of the sub-dimensions present (not of the categories).
An invalid or missing prediction scores 0 and is counted; nothing is dropped from a denominator.
Every score gets a 95% CI from a bootstrap over clusters of videos (``ci95``, mtavg.bootstrap), and
``position_bias`` reports accuracy and answer share by option letter (mtavg.stats).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np

from mtavg.bench.schema import QAItem, Video
from mtavg.bootstrap import ScoreMatrix, bootstrap_columns, cluster_ids, interval, sub_dimension_intervals
from mtavg.stats import position_bias
from mtavg.taxonomy import load_taxonomy


@dataclass(frozen=True)
class ItemScore:
    qid: str
    format: str
    sub_dimension: str
    valid: bool
    score: float  # single/pairwise exact, multi coverage, temporal PIA; in [0, 1]
    jaccard: float | None = None  # multi only
    exact: float | None = None  # multi only
    selected_all: bool | None = None  # multi only
    tla: float | None = None  # temporal only


def score_item(item: QAItem, prediction: Mapping | None) -> ItemScore:
    """Score one prediction (``{"answer": [...], "time": [...]}``, or None when invalid)."""
    if prediction is None:
        multi = item.format == "multi"
        return ItemScore(
            item.qid, item.format, item.sub_dimension, False, 0.0,
            jaccard=0.0 if multi else None, exact=0.0 if multi else None,
            selected_all=False if multi else None, tla=0.0 if item.format == "temporal" else None,
        )
    pred, gold = set(prediction.get("answer") or ()), set(item.answer)
    if item.format == "multi":
        inter = len(pred & gold)
        return ItemScore(
            item.qid, "multi", item.sub_dimension, True, inter / len(gold),
            jaccard=inter / len(pred | gold), exact=float(pred == gold),
            selected_all=pred >= set(item.options),
        )
    exact = float(pred == gold)
    if item.format == "temporal":
        gold_t = set(item.time_answer or ())
        tla = len(set(prediction.get("time") or ()) & gold_t) / len(gold_t) if gold_t else 0.0
        return ItemScore(item.qid, "temporal", item.sub_dimension, True, exact, tla=tla)
    return ItemScore(item.qid, item.format, item.sub_dimension, True, exact)


def aggregate(sub_scores: Mapping[str, float | None]) -> tuple[dict[str, float | None], float | None]:
    """Category means and the overall mean from per-sub-dimension scores (absent = None or missing)."""
    tax = load_taxonomy()
    present = {k: v for k, v in sub_scores.items() if v is not None}
    unknown = set(present) - set(tax.sub_dimensions)
    if unknown:
        raise ValueError(f"unknown sub-dimension(s): {', '.join(sorted(unknown))}")
    categories: dict[str, float | None] = {}
    for slug, cat in tax.categories.items():
        vals = [present[c] for c in cat.sub_dimensions if c in present]
        categories[slug] = float(np.mean(vals)) if vals else None
    overall = float(np.mean(list(present.values()))) if present else None
    return categories, overall


def _pct(x: float | None) -> float | None:
    return None if x is None else round(100.0 * x, 4)


def _mean(xs: Iterable[float]) -> float | None:
    xs = list(xs)
    return float(np.mean(xs)) if xs else None


def _ci_entries(scores: list[ItemScore], codes: list[str]) -> tuple[list[str], list[tuple[str, str, float]]]:
    """Bootstrap columns and ``(qid, column, value)`` entries for every score a table block reports."""
    formats = [f for f in ("single", "multi", "pairwise") if any(s.format == f for s in scores)]
    columns = [*codes, *(f"format:{f}" for f in formats), "temporal:PIA", "temporal:TLA",
               "multi:jaccard", "multi:exact", "multi:select_all"]
    entries: list[tuple[str, str, float]] = []
    for s in scores:
        if s.format == "temporal":
            entries += [(s.qid, "temporal:PIA", s.score), (s.qid, "temporal:TLA", s.tla or 0.0)]
            continue
        entries += [(s.qid, s.sub_dimension, s.score), (s.qid, f"format:{s.format}", s.score)]
        if s.format == "multi":
            entries += [(s.qid, "multi:jaccard", s.jaccard or 0.0), (s.qid, "multi:exact", s.exact or 0.0),
                        (s.qid, "multi:select_all", float(bool(s.selected_all)))]
    return columns, entries


def _ci_block(scores: list[ItemScore], codes: list[str], clusters: Mapping[str, int], n_boot: int,
              seed: int) -> dict:
    """Clustered 95% CIs of every score in a table block, all from one set of video resamples."""
    columns, entries = _ci_entries(scores, codes)
    samples = bootstrap_columns(ScoreMatrix.from_entries(entries, columns, clusters), n_boot=n_boot, seed=seed)
    block = sub_dimension_intervals(samples, columns, codes)

    def ci(column: str) -> list[float] | None:
        return None if samples is None else interval(samples[:, columns.index(column)])

    block["formats"] = {c.split(":", 1)[1]: ci(c) for c in columns if c.startswith("format:")}
    block["temporal"] = {"PIA": ci("temporal:PIA"), "TLA": ci("temporal:TLA")}
    block["multi_strict"] = {"jaccard": ci("multi:jaccard"), "exact": ci("multi:exact")}
    block["select_all_rate"] = ci("multi:select_all")
    return block


def _table(scores: list[ItemScore], clusters: Mapping[str, int], n_boot: int, seed: int) -> dict:
    """The Table-3 block (sub-dimensions with CIs, categories, overall, formats) for a set of items.

    ``ci95`` holds the clustered intervals of every score of the block (overall, categories,
    sub-dimensions, formats, temporal PIA/TLA, multi strictness, select-all rate); ``overall_ci95``,
    ``categories_ci95`` and each sub-dimension's ``ci95`` repeat the same intervals where they always were.
    """
    tax = load_taxonomy()
    main = [s for s in scores if s.format != "temporal"]
    codes = [c for c in tax.sub_dimensions if any(s.sub_dimension == c for s in main)]
    ci = _ci_block(scores, codes, clusters, n_boot, seed)
    subs = {
        c: {
            "score": _pct(_mean(s.score for s in main if s.sub_dimension == c)),
            "n": sum(s.sub_dimension == c for s in main),
            "ci95": ci["sub_dimensions"][c],
        }
        for c in codes
    }
    categories, overall = aggregate({c: v["score"] for c, v in subs.items()})
    return {
        "n_items": len(scores),
        "overall": overall,
        "overall_ci95": ci["overall"],
        "categories": categories,
        "categories_ci95": ci["categories"],
        "sub_dimensions": subs,
        "formats": {
            f: _pct(_mean(s.score for s in main if s.format == f))
            for f in ("single", "multi", "pairwise")
            if any(s.format == f for s in main)
        },
        "ci95": ci,
    }


def _temporal(scores: list[ItemScore]) -> dict:
    """Table 5's PIA and TLA; RC needs judges (mtavg.judge fills it in), so it starts null."""
    temporal = [s for s in scores if s.format == "temporal"]
    return {
        "n": len(temporal),
        "PIA": _pct(_mean(s.score for s in temporal)),
        "TLA": _pct(_mean(s.tla or 0.0 for s in temporal)),
        "RC": None,
    }


def _breakdown(
    items: list[QAItem], scores: list[ItemScore], key_of, clusters, n_boot: int, seed: int
) -> dict[str, dict]:
    groups: dict[str, list[ItemScore]] = {}
    for item, s in zip(items, scores, strict=True):
        key = key_of(item)
        if key is not None:
            groups.setdefault(key, []).append(s)
    return {k: {**_table(v, clusters, n_boot, seed), "temporal": _temporal(v)} for k, v in sorted(groups.items())}


def build_results(
    items: list[QAItem],
    predictions: Mapping[str, Mapping | None],
    videos: Mapping[str, Video],
    *,
    model: str,
    bench: str,
    modality: str = "full",
    invalid_reasons: Mapping[str, str | None] | None = None,
    n_boot: int = 1000,
    seed: int = 0,
) -> dict:
    """results.json for ``items``; a qid absent from ``predictions`` counts as invalid.

    Scores by the active taxonomy (``mtavg.taxonomy.use_taxonomy``); an item whose sub-dimension it lacks
    raises ValueError naming the item."""
    tax = load_taxonomy()
    foreign = [it for it in items if it.sub_dimension not in tax.sub_dimensions]
    if foreign:
        raise ValueError(f"{len(foreign)} item(s) have a sub-dimension the taxonomy {tax.name!r} does not define, "
                         f"e.g. {foreign[0].qid}: {foreign[0].sub_dimension!r} (known: {', '.join(tax.sub_dimensions)})")
    scores = [score_item(it, predictions.get(it.qid)) for it in items]
    clusters = cluster_ids(items)
    multi = [s for s in scores if s.format == "multi"]
    reasons: dict[str, int] = {}
    for s in scores:
        if not s.valid:
            r = (invalid_reasons or {}).get(s.qid) or "missing"
            reasons[r.split(":")[0]] = reasons.get(r.split(":")[0], 0) + 1
    select_all = _mean(float(bool(s.selected_all)) for s in multi)

    def setting_of(it: QAItem) -> str | None:
        if it.setting:
            return it.setting
        first = videos.get(it.video_ids[0])
        return first.setting if first else None

    def generator_of(it: QAItem) -> str | None:
        # An item comparing clips of two generators belongs to neither generator's row.
        gens = {videos[v].generator for v in it.video_ids if v in videos}
        return gens.pop() if len(gens) == 1 else None

    return {
        "model": model,
        "bench": bench,
        "modality": modality,
        "n_invalid": sum(not s.valid for s in scores),
        "invalid_reasons": dict(sorted(reasons.items())),
        **_table(scores, clusters, n_boot, seed),
        "temporal": _temporal(scores),
        "multi_strict": {
            "jaccard": _pct(_mean(s.jaccard or 0.0 for s in multi)),
            "exact": _pct(_mean(s.exact or 0.0 for s in multi)),
        },
        "select_all_rate": _pct(select_all),
        "selects_everything": bool(select_all is not None and select_all > 0.5),
        "position_bias": position_bias(items, predictions),
        "by_setting": _breakdown(items, scores, setting_of, clusters, n_boot, seed),
        "by_generator": _breakdown(items, scores, generator_of, clusters, n_boot, seed),
    }
