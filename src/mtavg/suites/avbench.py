"""``mtavg avbench score``: continuous yes/no scores per clip of a pair dataset, and how well they separate.

Each QA item of a built pair dataset (``mtavg perturb build``) is asked as a yes/no question; the score
is P(Yes) / (P(Yes) + P(No)) of the first answer token (``--method prob``, the evaluator's
``yes_probability``) or 1/0 from a parsed answer (``--method answer``, for evaluators without logprobs).
The run goes through the shared request loop (concurrency, retries, cache) and is resumable like
``mtavg eval``: ``scores.jsonl`` gains a line per clip as it finishes.

The summary (``summary.json``) gives per dimension, perturbation type and level: mean, std and share of
scores >= 0.5 (positives and negatives apart), AUC (a random positive outscores a random negative) and
pairwise accuracy (a negative's own positive outscores it). A clip whose call failed has no score: it is
counted (``n_failed``), left out of means and AUC, and a pair it belongs to counts as wrong. 95 % CIs
are bootstrap intervals over source clips (a source brings its positive and all its negatives).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from mtavg.bench import Benchmark
from mtavg.bench.schema import QAItem
from mtavg.cache import ResponseCache, request_key
from mtavg.evaluators import Evaluator, Request
from mtavg.limits import RateLimiter, RetryPolicy
from mtavg.loop import Ledger, RequestLoop
from mtavg.samples import SampleStore
from mtavg.secrets import redact
from mtavg.suites.yesno import DIMENSIONS, answer_score, yes_no_prompt

METHODS = ("prob", "answer")
#: Fewer source clips than this on either side of a comparison: no confidence interval.
MIN_CLUSTERS = 3


class ScoreConflict(RuntimeError):
    """The output directory holds scores of another evaluator, method or dataset."""


@dataclass
class ScoreOptions:
    method: str = "prob"
    limit: int | None = None
    concurrency: int = 8
    modality: str | None = None  # None: each dimension's own (full for audio-video, no_audio for pictures)
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    rpm: float | None = None
    tpm: float | None = None
    use_cache: bool = True
    cache_path: Path | None = None
    progress: bool = True
    n_boot: int = 1000
    seed: int = 0


def is_yes_no_item(item: QAItem) -> bool:
    return bool(item.meta and item.meta.get("yes_no"))


def yes_no_request(item: QAItem, bench: Benchmark, modality: str | None = None) -> Request:
    """The item as a yes/no request: its question in the yes/no prompt, media per the dimension's modality."""
    from mtavg.run import build_request

    dim = DIMENSIONS[(item.meta or {}).get("dimension", "av_consistency")]
    request = build_request(item, bench, modality or dim.modality)
    return replace(request, prompt=yes_no_prompt(item.question))


async def _score_one(item: QAItem, bench: Benchmark, loop: RequestLoop, opts: ScoreOptions) -> dict[str, Any]:
    meta = item.meta or {}
    video = bench.videos[item.video_ids[0]]
    row: dict[str, Any] = {
        "qid": item.qid, "clip_id": item.video_ids[0], "dimension": meta.get("dimension"),
        "role": meta.get("role"), "source_id": meta.get("source_id"), "perturbation": meta.get("perturbation"),
        "level": meta.get("level"), "category": meta.get("category"), "generator": video.generator,
        "evaluator": loop.evaluator.name, "method": opts.method, "score": None, "raw": None,
        "valid": False, "error": None,
    }
    start = time.perf_counter()
    try:
        request = await asyncio.to_thread(yes_no_request, item, bench, opts.modality)
        row["modality"] = request.modality
        key = None
        if loop.cache is not None:
            from mtavg.media.prepare import file_sha256

            hashes = {m.video_id: await asyncio.to_thread(file_sha256, m.path) for m in request.media}
            key = request_key(loop.evaluator, request, hashes, kind=f"yes_no_{opts.method}")
        method = "yes_probability" if opts.method == "prob" else "respond"
        outcome = await loop.call(request, key, method=method)
    except Exception as exc:  # noqa: BLE001 - a bad clip is this item's error, not the run's end
        row.update(error=redact(f"{type(exc).__name__}: {exc}"), error_type=type(exc).__name__,
                   error_code=getattr(exc, "code", None), latency_s=round(time.perf_counter() - start, 4))
        return row
    row.update(latency_s=round(outcome.latency_s, 4), cached=outcome.cached, attempts=outcome.attempts,
               error=outcome.error, error_type=outcome.error_type)
    if outcome.response is not None:
        raw = outcome.response.raw
        row["raw"] = raw
        if opts.method == "prob":
            value = float(raw)
            if not 0.0 <= value <= 1.0:
                row["error"] = f"ValueError: {loop.evaluator.name} returned P(Yes) = {value}, not a probability"
            else:
                row.update(score=value, valid=True)
        else:
            value, reason = answer_score(raw, dict(item.options))
            row.update(score=value, valid=value is not None, invalid_reason=reason)
    return row


def _check_same(out: Path, meta: dict[str, Any], store: SampleStore) -> None:
    path = out / "score_run.json"
    if path.exists():
        old = json.loads(path.read_text(encoding="utf-8"))
        clash = {k: old.get(k) for k in ("evaluator", "method", "bench", "modality") if old.get(k) != meta[k]}
        if clash:
            raise ScoreConflict(f"{out} holds scores with {clash}; choose another --out")
    for row in store.rows.values():
        if row.get("evaluator") != meta["evaluator"] or row.get("method") != meta["method"]:
            raise ScoreConflict(f"{out}/scores.jsonl holds {row.get('evaluator')}/{row.get('method')} rows")


def score_pairs(bench: Benchmark, evaluator: Evaluator, out: Path, options: ScoreOptions | None = None,
                **overrides: Any) -> dict[str, Any]:
    """Score every yes/no item of ``bench`` into ``out/scores.jsonl``; write and return the summary."""
    opts = replace(options or ScoreOptions(), **overrides)
    if opts.method not in METHODS:
        raise ValueError(f"method {opts.method!r}: choose one of {', '.join(METHODS)}")
    items = [it for it in bench.items if is_yes_no_item(it)]
    if not items:
        raise ValueError(f"{bench.root}: no yes/no items (build one with `mtavg perturb build`)")
    if opts.method == "prob" and type(evaluator).yes_probability is Evaluator.yes_probability:
        raise ValueError(f"{evaluator.name} cannot score yes/no probabilities; use --method answer "
                         "(parsed Yes/No) or a backend with logprobs (openai:, hf:)")
    items = items[: opts.limit] if opts.limit else items
    out.mkdir(parents=True, exist_ok=True)
    store = SampleStore(out / "scores.jsonl")
    meta = {"evaluator": evaluator.name, "method": opts.method, "bench": bench.name, "bench_root": str(bench.root),
            "modality": opts.modality, "fingerprint": evaluator.fingerprint}
    _check_same(out, meta, store)
    (out / "score_run.json").write_text(json.dumps(meta, indent=1), encoding="utf-8")
    store.drop({q for q, r in store.rows.items() if r.get("error")})  # failed calls are retried
    todo = [it for it in items if it.qid not in store.rows]
    cache = ResponseCache(opts.cache_path) if opts.use_cache and evaluator.cacheable else None
    ledger = Ledger()
    loop = RequestLoop(evaluator, concurrency=opts.concurrency, policy=opts.policy,
                       limiter=RateLimiter(opts.rpm, opts.tpm), cache=cache, ledger=ledger)
    from mtavg.progress import ItemProgress

    async def run_all(advance) -> None:
        window = asyncio.Semaphore(max(4 * loop.concurrency, 64))

        async def one(item: QAItem) -> None:
            async with window:
                row = await _score_one(item, bench, loop, opts)
            store.append(row)
            advance(row)

        try:
            await asyncio.gather(*(one(it) for it in todo))
        finally:
            await evaluator.aclose()

    with ItemProgress(len(items), done=len(items) - len(todo), label=f"{evaluator.name} yes/no",
                      enabled=opts.progress, ledger=ledger) as bar:
        try:
            asyncio.run(run_all(bar.advance))
        finally:
            store.close()
            if cache is not None:
                cache.close()
    rows = [store.rows[it.qid] for it in items if it.qid in store.rows]
    summary = summarize(rows, n_boot=opts.n_boot, seed=opts.seed)
    summary.update(evaluator=evaluator.name, method=opts.method, bench=bench.name, session=ledger.as_dict())
    tmp = out / "summary.json.tmp"
    tmp.write_text(json.dumps(summary, indent=1, ensure_ascii=False), encoding="utf-8")
    tmp.replace(out / "summary.json")
    return summary


# ---------------------------------------------------------------- summary
def _stats(values: Sequence[float | None]) -> dict[str, Any]:
    scored = np.array([v for v in values if v is not None], float)
    return {"n": len(values), "n_scored": int(scored.size), "n_failed": len(values) - int(scored.size),
            "mean": round(float(scored.mean()), 6) if scored.size else None,
            "std": round(float(scored.std(ddof=1)), 6) if scored.size > 1 else None,
            "share_ge_0_5": round(float((scored >= 0.5).mean()), 6) if scored.size else None}


def weighted_auc(pos: np.ndarray, neg: np.ndarray, w_pos: np.ndarray, w_neg: np.ndarray) -> np.ndarray:
    """AUC = P(score of a positive > a negative's) + 0.5 P(tie), for each row of weights.

    ``w_pos`` (B, P) and ``w_neg`` (B, N) weigh clips (bootstrap counts; ones for the plain AUC). The
    scores are sorted once; each row is then a cumulative sum, so 1,000 resamples of 10k clips take a
    fraction of a second.
    """
    values = np.unique(np.concatenate([pos, neg]))
    pi, ni = np.searchsorted(values, pos), np.searchsorted(values, neg)
    k = len(values)
    neg_at = np.zeros((w_neg.shape[0], k))
    np.add.at(neg_at.T, ni, w_neg.T)  # weight of negatives at each distinct value
    below = np.cumsum(neg_at, axis=1) - neg_at  # strictly below
    wins = (w_pos * (below[:, pi] + 0.5 * neg_at[:, pi])).sum(axis=1)
    total = w_pos.sum(axis=1) * w_neg.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, wins / total, np.nan)


def _interval(samples: np.ndarray) -> list[float] | None:
    samples = samples[np.isfinite(samples)]
    if samples.size < 10:
        return None
    return [round(float(np.percentile(samples, 2.5)), 6), round(float(np.percentile(samples, 97.5)), 6)]


def _separation(positives: list[dict], negatives: list[dict], n_boot: int, seed: int) -> dict[str, Any]:
    """AUC and pairwise accuracy of negatives against the positives, with source-clustered CIs."""
    sources = sorted({r["source_id"] for r in positives + negatives})
    # A CI needs some independent clusters on both sides; with fewer it would only echo the estimate.
    enough = min(len({r["source_id"] for r in positives}), len({r["source_id"] for r in negatives})) >= MIN_CLUSTERS
    idx = {s: i for i, s in enumerate(sources)}
    rng = np.random.default_rng(seed)
    counts = rng.multinomial(len(sources), np.full(len(sources), 1 / len(sources)), size=n_boot) \
        if sources and n_boot else np.zeros((0, len(sources)))
    out: dict[str, Any] = {}
    sp = [r for r in positives if r["score"] is not None]
    sn = [r for r in negatives if r["score"] is not None]
    if sp and sn:
        pos = np.array([r["score"] for r in sp])
        neg = np.array([r["score"] for r in sn])
        ones_p, ones_n = np.ones((1, len(pos))), np.ones((1, len(neg)))
        value = float(weighted_auc(pos, neg, ones_p, ones_n)[0])
        cp = counts[:, [idx[r["source_id"]] for r in sp]]
        cn = counts[:, [idx[r["source_id"]] for r in sn]]
        boot = weighted_auc(pos, neg, cp, cn) if n_boot else np.zeros(0)
        out["auc"] = {"value": round(value, 6), "ci95": _interval(boot) if enough else None, "n_pos": len(pos), "n_neg": len(neg)}
    else:
        out["auc"] = {"value": None, "ci95": None, "n_pos": len(sp), "n_neg": len(sn),
                      "note": "needs scored positives and negatives"}
    # Pairwise: each negative against its own positive (same source, same dimension).
    pos_of = {(r["source_id"], r["dimension"]): r for r in positives}
    wins, src, incomplete = [], [], 0
    for r in negatives:
        p = pos_of.get((r["source_id"], r["dimension"]))
        if p is None:
            continue  # no positive in the dataset (its build failed): not a pair
        if p["score"] is None or r["score"] is None:
            wins.append(0.0)  # a failed call never helps
            incomplete += 1
        else:
            wins.append(1.0 if p["score"] > r["score"] else 0.5 if p["score"] == r["score"] else 0.0)
        src.append(idx[r["source_id"]])
    if wins:
        w = np.array(wins)
        c = counts[:, src] if n_boot else np.zeros((0, len(src)))
        with np.errstate(invalid="ignore", divide="ignore"):
            boot = (c * w).sum(axis=1) / c.sum(axis=1)
        out["pairwise_accuracy"] = {"value": round(float(w.mean()), 6), "ci95": _interval(boot) if enough else None,
                                    "n_pairs": len(w), "n_incomplete": incomplete}
    else:
        out["pairwise_accuracy"] = {"value": None, "ci95": None, "n_pairs": 0, "n_incomplete": 0}
    return out


def _group(rows: list[dict], positives: list[dict], n_boot: int, seed: int) -> dict[str, Any]:
    negatives = [r for r in rows if r["role"] == "negative"]
    entry = {"all": _stats([r["score"] for r in rows]),
             "positives": _stats([r["score"] for r in positives]),
             "negatives": _stats([r["score"] for r in negatives])}
    entry.update(_separation(positives, negatives, n_boot, seed))
    return entry


def summarize(rows: Sequence[dict[str, Any]], *, n_boot: int = 1000, seed: int = 0) -> dict[str, Any]:
    """The summary of scored rows (pure: ``mtavg avbench summarize`` re-runs it from scores.jsonl)."""
    rows = list(rows)
    summary: dict[str, Any] = {"n_items": len(rows), "n_failed": sum(r["score"] is None for r in rows),
                               "n_invalid": sum(r["score"] is None and not r.get("error") for r in rows),
                               "errors": sum(bool(r.get("error")) for r in rows), "dimensions": {}}
    for dim in sorted({r["dimension"] for r in rows}):
        mine = [r for r in rows if r["dimension"] == dim]
        positives = [r for r in mine if r["role"] == "positive"]
        block = _group(mine, positives, n_boot, seed)
        block["by_perturbation"] = {
            kind: _group(positives + [r for r in mine if r["perturbation"] == kind and r["role"] == "negative"],
                         positives, n_boot, seed)
            for kind in sorted({r["perturbation"] for r in mine if r["role"] == "negative"})}
        block["by_level"] = {
            level: _group(positives + [r for r in mine if str(r["level"]) == level and r["role"] == "negative"],
                          positives, n_boot, seed)
            for level in sorted({str(r["level"]) for r in mine if r["role"] == "negative"})}
        summary["dimensions"][dim] = block
    return summary


def read_scores(path: Path) -> list[dict[str, Any]]:
    """Rows of a scores.jsonl (a line that is not JSON is an error naming its line)."""
    from mtavg.samples import read_jsonl

    return [row for _, row in read_jsonl(path)]
