"""Cluster bootstrap confidence intervals.

Items about the same clip are not independent (one bad clip sinks all its questions), so CIs
resample clusters of videos, not items. Items that share any video (pairwise items join two clips)
fall into one cluster. Vectorised: one multinomial weight matrix serves every score at once.
"""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from mtavg.bench.schema import QAItem
from mtavg.taxonomy import load_taxonomy


class _Scored(Protocol):
    qid: str
    sub_dimension: str
    score: float


def cluster_ids(items: Sequence[QAItem]) -> dict[str, int]:
    """qid -> cluster index; items connected through shared video ids share a cluster (union-find)."""
    parent: dict[str, str] = {}

    def find(v: str) -> str:
        while parent.setdefault(v, v) != v:
            parent[v] = parent[parent[v]]
            v = parent[v]
        return v

    for it in items:
        root = find(it.video_ids[0])
        for v in it.video_ids[1:]:
            parent[find(v)] = root
    roots = {it.qid: find(it.video_ids[0]) for it in items}
    # Pairwise items normally join clips of one script; if pairs chain most clips into one component
    # (random pairing), a component is no unit to resample, so fall back to each item's first clip.
    largest = max(Counter(roots.values()).values(), default=0)
    if len(items) >= 20 and largest > len(items) / 2:
        roots = {it.qid: it.video_ids[0] for it in items}
    index: dict[str, int] = {}
    return {qid: index.setdefault(root, len(index)) for qid, root in roots.items()}


@dataclass(frozen=True)
class ScoreMatrix:
    """Per-cluster score sums and item counts, one column per sub-dimension."""

    sums: np.ndarray  # (clusters, sub-dimensions)
    counts: np.ndarray  # (clusters, sub-dimensions)

    @classmethod
    def build(cls, scores: Sequence[_Scored], codes: Sequence[str], clusters: Mapping[str, int]) -> ScoreMatrix:
        col = {c: j for j, c in enumerate(codes)}
        used = sorted({clusters[s.qid] for s in scores})
        row = {c: i for i, c in enumerate(used)}
        sums = np.zeros((len(used), len(codes)))
        counts = np.zeros((len(used), len(codes)))
        if scores:
            r = np.fromiter((row[clusters[s.qid]] for s in scores), dtype=np.int64, count=len(scores))
            c = np.fromiter((col[s.sub_dimension] for s in scores), dtype=np.int64, count=len(scores))
            np.add.at(sums, (r, c), np.fromiter((s.score for s in scores), dtype=float, count=len(scores)))
            np.add.at(counts, (r, c), 1.0)
        return cls(sums, counts)


def _interval(samples: np.ndarray) -> list[float] | None:
    samples = samples[~np.isnan(samples)]
    if samples.size == 0:
        return None
    lo, hi = np.percentile(samples, [2.5, 97.5])
    return [round(100.0 * float(lo), 4), round(100.0 * float(hi), 4)]


def bootstrap_ci(matrix: ScoreMatrix, codes: Sequence[str], *, n_boot: int = 1000, seed: int = 0) -> dict:
    """95% percentile intervals for each sub-dimension, each category and the overall mean."""
    n_clusters = matrix.sums.shape[0]
    tax = load_taxonomy()
    if n_clusters == 0 or n_boot <= 0:
        return {"sub_dimensions": {c: None for c in codes}, "overall": None,
                "categories": {k: None for k in tax.categories}}
    rng = np.random.default_rng(seed)
    weights = rng.multinomial(n_clusters, np.full(n_clusters, 1.0 / n_clusters), size=n_boot).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows: a sub-dimension absent from a resample
        per_sub = (weights @ matrix.sums) / (weights @ matrix.counts)  # (n_boot, sub-dimensions)
        overall = np.nanmean(per_sub, axis=1) if codes else np.full(n_boot, np.nan)
        categories = {}
        for slug, cat in tax.categories.items():
            cols = [j for j, c in enumerate(codes) if c in cat.sub_dimensions]
            categories[slug] = _interval(np.nanmean(per_sub[:, cols], axis=1)) if cols else None
    return {
        "sub_dimensions": {c: _interval(per_sub[:, j]) for j, c in enumerate(codes)},
        "overall": _interval(overall),
        "categories": categories,
    }
