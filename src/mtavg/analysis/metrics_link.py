"""Do automatic metrics track failure rates? Per generator: a metric's aggregate vs its failure rate.

``metrics_summary`` is what :func:`mtavg.metrics.run.summarize` returns:
``{generator | "all": {"n_clips", "n_failed", "metrics": {metric: {field: value, ...}}}}``.
Each numeric ``metric.field`` becomes one candidate (Table 4 style: one row per metric with its
Spearman rho against the failure rate over generators).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from mtavg.taxonomy import load_taxonomy

# Clip counts, not per-clip measures: they follow how many clips a generator has, not its quality.
_COUNT_FIELD = re.compile(r"^(n|n_confident|clips_.*)$")
TOTAL = "total"


@dataclass(frozen=True)
class MetricFailureLink:
    metric: str  # "metric.field", e.g. "av_offset.median_abs_offset_s"
    generators: tuple[str, ...]
    metric_values: tuple[float, ...]
    failure_rates: tuple[float, ...]  # percent, same order as generators
    rho: float | None  # Spearman over generators; None when either side is constant or n < 3
    p_value: float | None

    @property
    def n(self) -> int:
        return len(self.generators)

    def to_dict(self) -> dict[str, Any]:
        return {"metric": self.metric, "generators": list(self.generators), "metric_values": list(self.metric_values),
                "failure_rates": list(self.failure_rates), "rho": self.rho, "p_value": self.p_value, "n": self.n}


def failure_target(rates: dict[str, dict[str, float]], target: str = TOTAL) -> dict[str, float]:
    """Per generator: the summed rate over ``target`` = "total", a category slug, or a sub-dimension code.

    Sums of Eq. 9 rates are again failure segments per 100 videos.
    """
    tax = load_taxonomy()
    if target == TOTAL:
        codes = list(tax.sub_dimensions)
    elif target in tax.categories:
        codes = list(tax.categories[target].sub_dimensions)
    elif target in tax.sub_dimensions:
        codes = [target]
    else:
        raise KeyError(f"failure target {target!r}: use 'total', a category ({', '.join(tax.categories)}) "
                       f"or a sub-dimension ({', '.join(tax.sub_dimensions)})")
    return {gen: float(sum(row.get(c, 0.0) for c in codes)) for gen, row in rates.items()}


def _numeric(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def metric_columns(metrics_summary: dict[str, dict[str, Any]], generators: Sequence[str]) -> dict[str, dict[str, float]]:
    """``{"metric.field": {generator: value}}`` for numeric per-clip aggregates (clip counts left out)."""
    cols: dict[str, dict[str, float]] = {}
    for gen in generators:
        for metric, fields in (metrics_summary.get(gen) or {}).get("metrics", {}).items():
            for name, value in fields.items():
                if _numeric(value) and not _COUNT_FIELD.match(name):
                    cols.setdefault(f"{metric}.{name}", {})[gen] = float(value)
    return cols


def _spearman(x: Sequence[float], y: Sequence[float]) -> tuple[float | None, float | None]:
    if len(x) < 3 or len(set(x)) < 2 or len(set(y)) < 2:
        return None, None
    from scipy.stats import spearmanr

    res = spearmanr(x, y)
    return float(res.statistic), float(res.pvalue)


def metric_failure_links(metrics_summary: dict[str, dict[str, Any]], rates: dict[str, dict[str, float]], *,
                         target: str = TOTAL, fields: Sequence[str] | None = None) -> list[MetricFailureLink]:
    """One link per metric field present for >= 2 generators that also have failure rates.

    Sorted by |rho| (strongest first; undefined rho last). ``fields`` restricts to given "metric.field" names.
    """
    y_all = failure_target(rates, target)
    generators = [g for g in y_all if g in metrics_summary]  # "all" is no generator unless rates name it
    cols = metric_columns(metrics_summary, generators)
    if fields is not None:
        missing = [f for f in fields if f not in cols]
        if missing:
            raise KeyError(f"metric field(s) not in the summary: {', '.join(missing)}")
        cols = {f: cols[f] for f in fields}
    links = []
    for name, per_gen in cols.items():
        gens = [g for g in generators if g in per_gen]
        if len(gens) < 2:
            continue
        x, y = [per_gen[g] for g in gens], [y_all[g] for g in gens]
        rho, p = _spearman(x, y)
        links.append(MetricFailureLink(name, tuple(gens), tuple(x), tuple(y), rho, p))
    return sorted(links, key=lambda lk: (lk.rho is None, -abs(lk.rho or 0.0), lk.metric))
