"""Is one evaluator better than another on the same items? A paired, clustered comparison of two runs.

Both runs' raw answers are re-parsed and scored per item (invalid = 0) on the items both answered.
For the overall score (the unweighted mean of sub-dimension means, as results.json computes it), each
sub-dimension, and temporal PIA / TLA, the difference A - B gets
- a 95% CI from a paired cluster bootstrap: clusters of videos are resampled, each drawn cluster
  brings both evaluators' scores on its items (the pairing is kept);
- a two-sided p-value from a paired permutation test: under "no difference" the two evaluators'
  answers are exchangeable, so A and B are swapped for all items of a cluster at once (a sign flip
  per cluster); enumerated exactly when 2^clusters <= the number of permutations.
The difference is called significant when the CI excludes 0 and p < 0.05 (``RULE``). Per-sub-dimension
p-values are not corrected for multiple comparisons.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mtavg.bench import Benchmark
from mtavg.bench.schema import QAItem
from mtavg.bootstrap import cluster_ids, column_means, nanmean_rows, resample_weights
from mtavg.samples import PredictionsError, read_predictions
from mtavg.score import ItemScore, score_item
from mtavg.taxonomy import load_taxonomy, use_taxonomy

ALPHA = 0.05
RULE = ("significant when the 95% paired cluster-bootstrap CI of A - B excludes 0 "
        f"and the paired cluster permutation (sign-flip) p < {ALPHA}")


class CompareError(ValueError):
    """A run cannot be compared (no samples, qids not in the benchmark, nothing in common)."""


@dataclass(frozen=True)
class PairedResult:
    """A - B on paired items; scores and difference in percentage points."""

    n: int
    n_clusters: int
    a: float
    b: float
    diff: float
    ci95: tuple[float, float] | None
    p: float | None
    exact_p: bool  # the permutation distribution was enumerated, not sampled

    @property
    def significant(self) -> bool:
        if self.ci95 is None or self.p is None:
            return False
        return (self.ci95[0] > 0 or self.ci95[1] < 0) and self.p < ALPHA


def _group_stat(sums: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Unweighted mean over groups of the group means; rows are resamples (or a single row)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return nanmean_rows(sums / counts)


def _sign_matrix(n_clusters: int, n_perm: int, rng: np.random.Generator) -> tuple[np.ndarray, bool]:
    if n_clusters <= 20 and 2 ** n_clusters <= n_perm:
        return np.array(list(itertools.product((1.0, -1.0), repeat=n_clusters))), True
    return rng.choice(np.array([1.0, -1.0]), size=(n_perm, n_clusters)), False


def paired_cluster_test(
    a: Sequence[float], b: Sequence[float], clusters: Sequence[int | str], groups: Sequence[int | str] | None = None, *,
    n_boot: int = 2000, n_perm: int | None = None, seed: int = 0,
) -> PairedResult:
    """Paired comparison of per-item scores ``a`` and ``b`` (in [0, 1]) of the same items.

    ``clusters`` gives each item's resampling unit; ``groups`` (e.g. sub-dimension index) makes the
    statistic the unweighted mean of group means, as the overall score is; without it, the plain mean.
    """
    a_arr, b_arr = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if not (len(a_arr) == len(b_arr) == len(clusters)) or (groups is not None and len(groups) != len(a_arr)):
        raise ValueError("a, b, clusters (and groups) need one entry per item")
    if len(a_arr) == 0:
        raise ValueError("no items to compare")
    _, c_idx = np.unique(np.asarray(clusters), return_inverse=True)
    _, g_idx = np.unique(np.asarray(groups if groups is not None else np.zeros(len(a_arr), int)),
                         return_inverse=True)
    k, g = int(c_idx.max()) + 1, int(g_idx.max()) + 1
    sums_a, sums_b, counts = np.zeros((k, g)), np.zeros((k, g)), np.zeros((k, g))
    np.add.at(sums_a, (c_idx, g_idx), a_arr)
    np.add.at(sums_b, (c_idx, g_idx), b_arr)
    np.add.at(counts, (c_idx, g_idx), 1.0)
    total = counts.sum(axis=0)
    score_a = float(_group_stat(sums_a.sum(axis=0)[None], total[None])[0])
    score_b = float(_group_stat(sums_b.sum(axis=0)[None], total[None])[0])
    observed = score_a - score_b
    boot_rng, perm_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(2))
    ci, p, exact = None, None, False
    if k < 2:  # one cluster: resampling it shows no variability, so there is no interval and no test
        n_boot, n_perm = 0, 0
    if n_boot > 0:
        w = resample_weights(k, n_boot, boot_rng)
        diffs = nanmean_rows(column_means(w, sums_a, counts)) - nanmean_rows(column_means(w, sums_b, counts))
        diffs = diffs[~np.isnan(diffs)]
        if diffs.size:
            lo, hi = np.percentile(diffs, [2.5, 97.5])
            ci = (round(100 * float(lo), 4), round(100 * float(hi), 4))
    n_perm = n_boot if n_perm is None else n_perm
    if n_perm > 0:
        signs, exact = _sign_matrix(k, n_perm, perm_rng)
        # Swapping A and B in a cluster flips the sign of its contribution to every group's difference.
        perm = _group_stat(signs @ (sums_a - sums_b), np.broadcast_to(total, (len(signs), g)))
        extreme = int(np.sum(np.abs(perm) >= abs(observed) - 1e-12))
        p = extreme / len(signs) if exact else (1 + extreme) / (len(signs) + 1)
    return PairedResult(n=len(a_arr), n_clusters=k, a=round(100 * score_a, 4), b=round(100 * score_b, 4),
                        diff=round(100 * observed, 4), ci95=ci, p=p, exact_p=exact)


# ---------------------------------------------------------------------------- runs
@dataclass(frozen=True)
class RunScores:
    path: Path
    model: str
    modality: str
    scores: dict[str, ItemScore]  # qid -> per-item score of the re-parsed raw answer


def _samples_path(run: Path) -> Path:
    path = run / "samples.jsonl" if run.is_dir() else run
    if not path.exists():
        raise CompareError(f"{run}: no samples.jsonl (give a run directory or a predictions file)")
    return path


def load_run_scores(run: Path, bench: Benchmark) -> RunScores:
    """Per-item scores of a run directory (or samples/predictions file), re-parsing each ``raw``."""
    from mtavg.run import parsed_fields  # mtavg.run imports the engine; only comparisons need it here

    path = _samples_path(run)
    try:
        rows = list(read_predictions(path))
    except PredictionsError as exc:
        raise CompareError(str(exc)) from exc
    by_qid = {it.qid: it for it in bench.items}
    unknown = [r["qid"] for r in rows if r["qid"] not in by_qid]
    if unknown:
        raise CompareError(f"{path}: {len(unknown)} qid(s) not in benchmark {bench.name}: {unknown[:5]}")
    scores = {r["qid"]: score_item(by_qid[r["qid"]], parsed_fields(by_qid[r["qid"]], r.get("raw"))["prediction"])
              for r in rows}
    first = rows[0] if rows else {}
    meta = run / "run.json" if run.is_dir() else None
    stored = json.loads(meta.read_text()) if meta is not None and meta.exists() else {}
    return RunScores(path, str(first.get("model") or stored.get("model") or run.name),
                     str(first.get("modality") or stored.get("modality") or "full"), scores)


@dataclass(frozen=True)
class ComparisonRow:
    name: str  # "overall", a sub-dimension code, "PIA" or "TLA"
    result: PairedResult

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, **asdict(self.result), "significant": self.result.significant}


@dataclass(frozen=True)
class Comparison:
    a: RunScores
    b: RunScores
    common: int
    only_a: list[str]
    only_b: list[str]
    rows: list[ComparisonRow]
    n_boot: int
    seed: int
    rule: str = RULE
    notes: list[str] = field(default_factory=list)

    @property
    def overall(self) -> ComparisonRow:
        return next(r for r in self.rows if r.name == "overall")

    def to_dict(self) -> dict[str, Any]:
        return {
            "a": {"run": str(self.a.path), "model": self.a.model, "modality": self.a.modality},
            "b": {"run": str(self.b.path), "model": self.b.model, "modality": self.b.modality},
            "n_common": self.common, "only_a": self.only_a, "only_b": self.only_b,
            "n_boot": self.n_boot, "seed": self.seed, "rule": self.rule, "notes": self.notes,
            "rows": [r.to_dict() for r in self.rows],
            "verdict": "significant" if self.overall.result.significant else "not significant",
        }


def _row(name: str, items: list[QAItem], a: Mapping[str, ItemScore], b: Mapping[str, ItemScore],
         clusters: Mapping[str, int], *, tla: bool = False, by_sub: bool = False, n_boot: int, seed: int) -> ComparisonRow:
    def value(s: ItemScore) -> float:
        return (s.tla or 0.0) if tla else s.score

    return ComparisonRow(name, paired_cluster_test(
        [value(a[it.qid]) for it in items], [value(b[it.qid]) for it in items], [clusters[it.qid] for it in items],
        [it.sub_dimension for it in items] if by_sub else None, n_boot=n_boot, seed=seed))


def compare_runs(run_a: str | Path, run_b: str | Path, bench: Benchmark | str | Path, *, n_boot: int = 2000,
                 seed: int = 0) -> Comparison:
    """A - B on the items both runs answered: overall, per sub-dimension, and temporal PIA / TLA.

    ``bench`` is a loaded benchmark or anything ``load_benchmark`` takes (a directory, an HF id).
    """
    if not isinstance(bench, Benchmark):
        from mtavg.bench import load_benchmark

        bench = load_benchmark(str(bench))
    with use_taxonomy(bench.taxonomy):
        return _compare(run_a, run_b, bench, n_boot=n_boot, seed=seed)


def _compare(run_a: str | Path, run_b: str | Path, bench: Benchmark, *, n_boot: int, seed: int) -> Comparison:
    a, b = load_run_scores(Path(run_a), bench), load_run_scores(Path(run_b), bench)
    items = [it for it in bench.items if it.qid in a.scores and it.qid in b.scores]
    if not items:
        raise CompareError(f"{run_a} and {run_b} answered no item in common")
    clusters = cluster_ids(items)
    main = [it for it in items if it.format != "temporal"]
    temporal = [it for it in items if it.format == "temporal"]
    kw = {"n_boot": n_boot, "seed": seed}
    rows = [_row("overall", main, a.scores, b.scores, clusters, by_sub=True, **kw)] if main else []
    for code in load_taxonomy().sub_dimensions:
        subset = [it for it in main if it.sub_dimension == code]
        if subset:
            rows.append(_row(code, subset, a.scores, b.scores, clusters, **kw))
    if temporal:
        rows += [_row("PIA", temporal, a.scores, b.scores, clusters, **kw),
                 _row("TLA", temporal, a.scores, b.scores, clusters, tla=True, **kw)]
    if not main:
        raise CompareError(f"{run_a} and {run_b} share only temporal items: no overall score to compare")
    notes = [] if a.modality == b.modality else [f"modalities differ: A {a.modality}, B {b.modality}"]
    if rows[0].result.n_clusters < 10:
        notes.append(f"only {rows[0].result.n_clusters} video clusters: intervals and p-values are coarse")
    return Comparison(a, b, len(items), sorted(set(a.scores) - set(b.scores)), sorted(set(b.scores) - set(a.scores)),
                      rows, n_boot, seed, notes=notes)
