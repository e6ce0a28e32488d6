"""Inter-reviewer agreement: raw agreement, Cohen's kappa and a bootstrap confidence interval.

Cohen's kappa for two rating sequences ``a`` and ``b`` over the same items::

    p_o = share of items with a[i] == b[i]
    p_e = sum over labels k of (share of a equal to k) * (share of b equal to k)
    kappa = (p_o - p_e) / (1 - p_e)

Kappa is undefined when ``p_e == 1`` (both raters used one and the same label throughout); it is then
``None`` here (scikit-learn returns NaN with a warning), never a made-up 0 or 1.

Items are reviewed by two reviewers drawn from a pool, so "rater 1" is whoever holds the item's first
review slot and "rater 2" the second (slots are assigned by the seeded, load-balanced assignment).
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any


def raw_agreement(a: Sequence[str], b: Sequence[str]) -> float:
    """Share of items where both raters gave the same label."""
    _check_pairs(a, b)
    return sum(x == y for x, y in zip(a, b, strict=True)) / len(a)


def cohen_kappa(a: Sequence[str], b: Sequence[str]) -> float | None:
    """Cohen's kappa of two raters over the same items (``None`` when chance agreement is 1)."""
    _check_pairs(a, b)
    n = len(a)
    p_o = raw_agreement(a, b)
    ca, cb = Counter(a), Counter(b)
    p_e = sum(ca[k] * cb[k] for k in ca.keys() | cb.keys()) / (n * n)
    if abs(1.0 - p_e) < 1e-12:
        return None
    return (p_o - p_e) / (1.0 - p_e)


def _check_pairs(a: Sequence[str], b: Sequence[str]) -> None:
    if len(a) != len(b):
        raise ValueError(f"rating sequences differ in length: {len(a)} vs {len(b)}")
    if not a:
        raise ValueError("no rated items: agreement needs at least one item rated by both reviewers")


def bootstrap_kappa_ci(a: Sequence[str], b: Sequence[str], *, n_boot: int = 1000, seed: int = 0,
                       level: float = 0.95) -> tuple[float, float] | None:
    """Percentile bootstrap interval for kappa, resampling items; resamples with undefined kappa are skipped.

    ``None`` when no resample has a defined kappa (e.g. a single label throughout).
    """
    _check_pairs(a, b)
    rng = random.Random(seed)
    n = len(a)
    values = []
    for _ in range(n_boot):
        idx = [rng.randrange(n) for _ in range(n)]
        k = cohen_kappa([a[i] for i in idx], [b[i] for i in idx])
        if k is not None:
            values.append(k)
    if not values:
        return None
    values.sort()
    lo_q, hi_q = (1 - level) / 2, 1 - (1 - level) / 2
    return _quantile(values, lo_q), _quantile(values, hi_q)


def _quantile(sorted_values: list[float], q: float) -> float:
    """Linear interpolation between order statistics (numpy's default 'linear' method)."""
    pos = q * (len(sorted_values) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


@dataclass(frozen=True)
class Agreement:
    n: int
    raw_agreement: float
    kappa: float | None
    ci95: tuple[float, float] | None
    confusion: dict[str, dict[str, int]]  # rater-1 label -> rater-2 label -> items

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["ci95"] = list(self.ci95) if self.ci95 else None
        return d


def agreement(a: Sequence[str], b: Sequence[str], *, labels: Sequence[str] = (), n_boot: int = 1000,
              seed: int = 0) -> Agreement:
    """Raw agreement, kappa, its bootstrap 95% CI and the confusion table (rows rater 1, columns rater 2)."""
    names = list(dict.fromkeys([*labels, *sorted(set(a) | set(b))]))
    pairs = Counter(zip(a, b, strict=True))
    confusion = {x: {y: pairs.get((x, y), 0) for y in names} for x in names}
    return Agreement(len(a), raw_agreement(a, b), cohen_kappa(a, b),
                     bootstrap_kappa_ci(a, b, n_boot=n_boot, seed=seed), confusion)
