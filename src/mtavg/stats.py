"""Option-position bias: does an evaluator favour a letter regardless of the answer?

Over the single-answer formats (single, pairwise, and the primary label of temporal items) it reports,
per option position (A, B, ...): how many gold labels sit there, accuracy on those items (invalid
answers count as wrong, as in scoring), the share of gold labels, the share of the evaluator's answers,
and the share a uniform guesser would give it. Two Pearson chi-square tests (no continuity correction):
- ``preference``: the evaluator's letter counts against the gold letter counts (a 2 x K table). A
  model that answers every item correctly passes; one that says "A" whenever unsure does not.
- ``accuracy``: correctness against gold position (a K x 2 table): is accuracy the same wherever the
  right answer sits?
When ``preference`` has p < ``alpha`` and some letter's share of answers exceeds its share of gold labels
by at least ``min_excess`` points, that letter is named (on thousands of items a one-point tilt is
"significant" yet no bias worth a note).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from mtavg.bench.schema import QAItem

SINGLE_ANSWER_FORMATS: tuple[str, ...] = ("single", "pairwise", "temporal")


def pearson_chi2(table: np.ndarray) -> dict[str, float] | None:
    """Pearson chi-square test of independence on a contingency table; all-zero rows/columns dropped.

    None when fewer than two rows or columns remain (nothing to test).
    """
    from scipy.special import chdtrc  # lighter than scipy.stats; imported only when a test runs

    t = np.asarray(table, dtype=float)
    t = t[t.sum(axis=1) > 0][:, t.sum(axis=0) > 0] if t.size else t
    if t.ndim != 2 or t.shape[0] < 2 or t.shape[1] < 2:
        return None
    expected = np.outer(t.sum(axis=1), t.sum(axis=0)) / t.sum()
    chi2 = float(((t - expected) ** 2 / expected).sum())
    dof = (t.shape[0] - 1) * (t.shape[1] - 1)
    return {"chi2": round(chi2, 4), "dof": dof, "p": float(chdtrc(dof, chi2)),
            "min_expected": round(float(expected.min()), 3)}


def _single_label(prediction: Mapping | None) -> str | None:
    answer = list((prediction or {}).get("answer") or ())
    return answer[0] if len(answer) == 1 else None


def _pct(numerator: float, denominator: float) -> float | None:
    return round(100.0 * numerator / denominator, 4) if denominator else None


def _block(items: Sequence[QAItem], predictions: Mapping[str, Mapping | None], alpha: float,
           min_excess: float) -> dict:
    labels = sorted({label for it in items for label in it.options})
    gold = {lab: 0 for lab in labels}
    correct = {lab: 0 for lab in labels}
    predicted = {lab: 0 for lab in labels}
    chance = {lab: 0.0 for lab in labels}
    unplaced = 0  # invalid, missing or multi-label answers: they sit at no position
    for it in items:
        g = it.answer[0]
        p = _single_label(predictions.get(it.qid))
        gold[g] += 1
        correct[g] += int(p == g)
        for lab in it.options:
            chance[lab] += 1.0 / len(it.options)
        if p is None or p not in predicted:
            unplaced += 1
        else:
            predicted[p] += 1
    n = len(items)
    placed = n - unplaced
    positions = {
        lab: {"n_gold": gold[lab], "accuracy": _pct(correct[lab], gold[lab]),
              "gold_share": _pct(gold[lab], n), "pred_share": _pct(predicted[lab], placed),
              "chance_share": _pct(chance[lab], n)}
        for lab in labels
    }
    preference = pearson_chi2(np.array([[predicted[lab] for lab in labels], [gold[lab] for lab in labels]]))
    accuracy = pearson_chi2(np.array([[correct[lab], gold[lab] - correct[lab]] for lab in labels]))
    preferred, note = None, None
    excess = {lab: 100.0 * (predicted[lab] / placed - gold[lab] / n) for lab in labels} if placed else {}
    top = max(excess, key=lambda lab: excess[lab]) if excess else None
    if preference is not None and top is not None and preference["p"] < alpha and excess[top] >= min_excess:
        preferred = top
        note = (f"prefers {preferred}: {positions[preferred]['pred_share']:.1f}% of its answers vs "
                f"{positions[preferred]['gold_share']:.1f}% of gold labels "
                f"(chi-square p={preference['p']:.2g}, n={placed})")
    return {"n": n, "n_placed": placed, "n_unplaced": unplaced, "positions": positions,
            "preference_test": preference, "accuracy_test": accuracy, "preferred": preferred, "note": note}


def position_bias(items: Sequence[QAItem], predictions: Mapping[str, Mapping | None], *,
                  alpha: float = 0.01, min_excess: float = 5.0) -> dict:
    """Accuracy and answer share by option position, overall and per single-answer format.

    ``predictions`` maps qid to ``{"answer": [...]}`` (None or absent = invalid). Multi-answer items
    are left out: several gold labels have no single position.
    """
    chosen = [it for it in items if it.format in SINGLE_ANSWER_FORMATS]
    by_format = {
        fmt: _block([it for it in chosen if it.format == fmt], predictions, alpha, min_excess)
        for fmt in SINGLE_ANSWER_FORMATS if any(it.format == fmt for it in chosen)
    }
    return {"alpha": alpha, "min_excess": min_excess, **_block(chosen, predictions, alpha, min_excess),
            "by_format": by_format}
