"""Generator failure analysis from annotations (MTAVG-Bench 2.0, Eq. 9 and Figs. 4, 11, 12, 14).

All rates are **percentages**: failure segments per 100 videos of the generator (Fig. 4 prints
percentages). A rate can exceed 100 when videos fail more than once in one sub-dimension. A clean video
(``failures == []``) counts in the denominator; an unlocalised failure counts as one segment.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from mtavg.annotations import VideoAnnotation
from mtavg.taxonomy import load_taxonomy

ALL = "all"  # key of the pooled row in per-mode rates
TOTAL = "total"  # scope of the all-categories error-count distribution
MAX_ERROR_BIN = 5  # error-count bins 0, 1, 2, 3, 4, "5+" (Fig. 12)


def _by_generator(annotations: Sequence[VideoAnnotation]) -> dict[str, list[VideoAnnotation]]:
    """Videos grouped per generator, generators in order of first appearance."""
    groups: dict[str, list[VideoAnnotation]] = {}
    for ann in annotations:
        groups.setdefault(ann.generator, []).append(ann)
    return groups


def _percent(count: int, n_videos: int) -> float:
    return 100.0 * count / n_videos


def failure_rates(annotations: Sequence[VideoAnnotation]) -> dict[str, dict[str, float]]:
    """Eq. 9: ``{generator: {sub_dimension: 100 * failure segments in d / number of the generator's videos}}``.

    Every generator gets all ten sub-dimensions (taxonomy order), zeros included.
    """
    codes = list(load_taxonomy().sub_dimensions)
    out: dict[str, dict[str, float]] = {}
    for gen, videos in _by_generator(annotations).items():
        counts = dict.fromkeys(codes, 0)
        for ann in videos:
            for f in ann.failures:
                counts[f.sub_dimension] += 1
        out[gen] = {code: _percent(counts[code], len(videos)) for code in codes}
    return out


def average_rates(rates: dict[str, dict[str, float]]) -> dict[str, float]:
    """Fig. 4's "Average" row: the unweighted mean over generators (each generator weighs the same)."""
    if not rates:
        raise ValueError("average_rates: no generators")
    codes = list(next(iter(rates.values())))
    return {code: float(np.mean([row[code] for row in rates.values()])) for code in codes}


def failure_mode_rates(annotations: Sequence[VideoAnnotation]) -> dict[str, dict[str, float]]:
    """Per failure mode (Fig. 11): ``{generator | "all": {mode slug: segments per 100 videos}}``.

    ``"all"`` pools every video (total segments of the mode / total videos). Modes in taxonomy order.
    """
    slugs = list(load_taxonomy().failure_modes)
    groups: dict[str, list[VideoAnnotation]] = {ALL: list(annotations), **_by_generator(annotations)}
    out: dict[str, dict[str, float]] = {}
    for key, videos in groups.items():
        if not videos:
            continue
        counts = dict.fromkeys(slugs, 0)
        for ann in videos:
            for f in ann.failures:
                counts[f.failure_mode] += 1
        out[key] = {slug: _percent(counts[slug], len(videos)) for slug in slugs}
    return out


def error_bin_labels(max_bin: int = MAX_ERROR_BIN) -> list[str]:
    return [*(str(k) for k in range(max_bin)), f"{max_bin}+"]


def error_count_distribution(annotations: Sequence[VideoAnnotation], *,
                             max_bin: int = MAX_ERROR_BIN) -> dict[str, dict[str, float]]:
    """Fig. 12: share (%) of videos with 0, 1, …, ``max_bin - 1`` and ``max_bin``+ failure segments.

    Scopes: ``"total"`` (all failures of a video) and each category slug (only its failures).
    """
    if not annotations:
        raise ValueError("error_count_distribution: no annotated videos")
    tax = load_taxonomy()
    labels = error_bin_labels(max_bin)
    scopes = [TOTAL, *tax.categories]
    out: dict[str, dict[str, float]] = {}
    for scope in scopes:
        hist = dict.fromkeys(labels, 0)
        for ann in annotations:
            n = sum(1 for f in ann.failures if scope == TOTAL or tax.category_of(f.sub_dimension) == scope)
            hist[labels[min(n, max_bin)]] += 1
        out[scope] = {lab: _percent(c, len(annotations)) for lab, c in hist.items()}
    return out


@dataclass(frozen=True)
class Cooccurrence:
    """Phi (Pearson on presence) correlations between failure modes over videos (Fig. 14)."""

    modes: tuple[str, ...]  # slugs, taxonomy order
    matrix: np.ndarray  # len(modes) x len(modes), symmetric, diagonal 1
    order: tuple[int, ...]  # hierarchical-clustering leaf order (indices into modes)
    video_counts: tuple[int, ...]  # videos showing each mode
    n_videos: int
    constant: tuple[str, ...]  # modes in every video or in none: correlation undefined, shown as 0

    def ordered(self) -> tuple[list[str], np.ndarray]:
        """Modes and matrix permuted into the clustered order, so correlated blocks sit together."""
        idx = list(self.order)
        return [self.modes[i] for i in idx], self.matrix[np.ix_(idx, idx)]

    def to_dict(self) -> dict[str, Any]:
        return {"modes": list(self.modes), "matrix": self.matrix.round(6).tolist(), "order": list(self.order),
                "video_counts": list(self.video_counts), "n_videos": self.n_videos,
                "constant": list(self.constant)}


def presence_matrix(annotations: Sequence[VideoAnnotation], modes: Sequence[str]) -> np.ndarray:
    """videos x modes, 1.0 where the video shows the mode at least once."""
    col = {m: j for j, m in enumerate(modes)}
    x = np.zeros((len(annotations), len(modes)))
    for i, ann in enumerate(annotations):
        for f in ann.failures:
            if f.failure_mode in col:
                x[i, col[f.failure_mode]] = 1.0
    return x


def phi_correlation(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pearson correlation of the columns of ``x``; constant columns correlate 0 with others (no NaN).

    Returns ``(matrix, constant_mask)``.
    """
    centred = x - x.mean(axis=0)
    norms = np.sqrt((centred**2).sum(axis=0))
    constant = norms < 1e-12
    safe = np.where(constant, 1.0, norms)
    corr = (centred.T @ centred) / np.outer(safe, safe)
    corr[constant, :] = 0.0
    corr[:, constant] = 0.0
    np.fill_diagonal(corr, 1.0)
    return np.clip(corr, -1.0, 1.0), constant


def cluster_order(corr: np.ndarray) -> list[int]:
    """Average-linkage clustering on distance ``1 - r`` with optimal leaf ordering (blocks show)."""
    k = corr.shape[0]
    if k < 3:
        return list(range(k))
    from scipy.cluster.hierarchy import leaves_list, linkage
    from scipy.spatial.distance import squareform

    dist = np.clip(1.0 - corr, 0.0, 2.0)
    np.fill_diagonal(dist, 0.0)
    tree = linkage(squareform((dist + dist.T) / 2, checks=False), method="average", optimal_ordering=True)
    return [int(i) for i in leaves_list(tree)]


def cooccurrence_correlation(annotations: Sequence[VideoAnnotation], *, modes: Sequence[str] | None = None,
                             min_videos: int = 1) -> Cooccurrence:
    """Failure-mode co-occurrence correlation over videos, with a clustered display order.

    ``modes`` defaults to every taxonomy mode seen in at least ``min_videos`` videos (a mode never seen
    has no correlation to show).
    """
    if not annotations:
        raise ValueError("cooccurrence_correlation: no annotated videos")
    tax = load_taxonomy()
    if modes is None:
        everything = presence_matrix(annotations, list(tax.failure_modes))
        seen = everything.sum(axis=0)
        modes = [m for m, c in zip(tax.failure_modes, seen, strict=True) if c >= min_videos]
    unknown = [m for m in modes if m not in tax.failure_modes]
    if unknown:
        raise KeyError(f"cooccurrence_correlation: unknown failure mode(s) {unknown}")
    x = presence_matrix(annotations, modes)
    corr, constant = phi_correlation(x)
    return Cooccurrence(
        modes=tuple(modes), matrix=corr, order=tuple(cluster_order(corr)),
        video_counts=tuple(int(c) for c in x.sum(axis=0)), n_videos=len(annotations),
        constant=tuple(m for m, c in zip(modes, constant, strict=True) if c),
    )


def rates_matrix(rates: dict[str, dict[str, float]], *, average: bool = True
                 ) -> tuple[list[str], list[str], np.ndarray]:
    """Fig. 4's grid: (row labels = generators [+ "Average"], column labels = sub-dimensions, values %)."""
    if not rates:
        raise ValueError("rates_matrix: no generators")
    rows = list(rates)
    cols = list(next(iter(rates.values())))
    values = [[rates[g][c] for c in cols] for g in rows]
    if average:
        avg = average_rates(rates)
        rows.append("Average")
        values.append([avg[c] for c in cols])
    return rows, cols, np.array(values, dtype=float)


def failure_summary(annotations: Sequence[VideoAnnotation]) -> dict[str, Any]:
    """Every analysis above as one JSON-able dict (for reports and ``--json`` output)."""
    rates = failure_rates(annotations)
    return {
        "n_videos": len(annotations),
        "videos_per_generator": {g: len(v) for g, v in _by_generator(annotations).items()},
        "unit": "failure segments per 100 videos",
        "failure_rates": rates,
        "average": average_rates(rates) if rates else {},
        "failure_mode_rates": failure_mode_rates(annotations),
        "error_counts": error_count_distribution(annotations) if annotations else {},
        "cooccurrence": cooccurrence_correlation(annotations).to_dict() if annotations else None,
    }
