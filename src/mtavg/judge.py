"""Rationale consistency (RC): judge models score each answer's rationale 1-5 (Likert).

RC = mean over items of (mean Likert over the judges that answered) / 5 x 100. An item the evaluator
answered invalidly, or without a rationale, gets the floor (1) from every judge without a call: an
unsupported answer is the evaluator's failure. An item no judge could score (every judge call
failed) is left out of RC and counted in ``RC_unjudged`` — a judge outage is not the evaluator's fault.
Judgements go to ``judge.jsonl`` in the run directory (resumable, one line per item and judge) and
through the same request loop and response cache as evaluators; ``mtavg score`` and re-runs keep RC.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from mtavg.bench import Benchmark
from mtavg.bench.schema import QAItem
from mtavg.cache import ResponseCache, request_key
from mtavg.evaluators import Evaluator, Request
from mtavg.limits import RateLimiter
from mtavg.loop import RequestLoop
from mtavg.prompts import render_judge_prompt
from mtavg.samples import SampleStore

_SCORE_KEY = re.compile(r'"?score"?\s*[:=]\s*"?([1-5])(?:\.0)?\b', re.I)
_SCORE_PROSE = re.compile(r"\b([1-5])\s*/\s*5\b|\brating\s*[:=]?\s*([1-5])\b", re.I)


def parse_judge_score(raw: str | None) -> int | None:
    """A Likert score 1-5 from a judge's reply (JSON first, then "score: 4" or "4/5"); else None."""
    if not raw:
        return None
    for match in re.finditer(r"\{.*?\}", raw, re.S):
        try:
            value = json.loads(match.group(0)).get("score")
        except (json.JSONDecodeError, AttributeError):
            continue
        if isinstance(value, (int, float)) and 1 <= value <= 5 and float(value).is_integer():
            return int(value)
    found = _SCORE_KEY.findall(raw) or [a or b for a, b in _SCORE_PROSE.findall(raw)]
    return int(found[-1]) if found else None


def rc_block(items: Sequence[QAItem], rows: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """RC over ``items`` from judgement rows: overall, per judge, and how many items were judged."""
    ids = {it.qid for it in items}
    per_item: dict[str, list[int]] = {}
    per_judge: dict[str, list[int]] = {}
    for row in rows:
        if row["item"] in ids and row.get("score") is not None:
            per_item.setdefault(row["item"], []).append(int(row["score"]))
            per_judge.setdefault(row["judge"], []).append(int(row["score"]))
    means = [sum(v) / len(v) for v in per_item.values()]
    return {
        "RC": round(100 * sum(means) / (5 * len(means)), 4) if means else None,
        "RC_judges": {j: round(100 * sum(v) / (5 * len(v)), 4) for j, v in sorted(per_judge.items())},
        "RC_n": len(means),
        "RC_unjudged": len(ids) - len(means),
    }


def apply_judgements(results: dict[str, Any], run_dir: Path, items: Sequence[QAItem]) -> None:
    """Fill RC into ``results`` from ``run_dir/judge.jsonl`` if the run was judged (else RC stays null).

    RC proper is over temporal items (the paper's Table 5); items judged beyond them (``--all-items``)
    get their own block, ``rationale_consistency_all``.
    """
    path = run_dir / "judge.jsonl"
    if not path.exists():
        return
    rows = list(SampleStore(path).rows.values())
    results.setdefault("temporal", {}).update(rc_block([it for it in items if it.format == "temporal"], rows))
    judged = {r["item"] for r in rows}
    if any(it.format != "temporal" and it.qid in judged for it in items):
        results["rationale_consistency_all"] = rc_block([it for it in items if it.qid in judged], rows)


def _judge_request(item: QAItem, sample: dict[str, Any]) -> Request:
    pred = sample.get("prediction") or {}
    prompt = render_judge_prompt(item, pred.get("answer") or [], pred.get("time") or [], sample.get("rationale") or "")
    return Request(qid=item.qid, prompt=prompt, media=(), modality="text", format="judge",
                   question=item.question, options=dict(item.options), sub_dimension=item.sub_dimension)


async def _judge_all(loop: RequestLoop, cache: ResponseCache | None, store: SampleStore, todo, on_done) -> None:
    async def one(item: QAItem, sample: dict[str, Any]) -> None:
        row: dict[str, Any] = {"qid": f"{item.qid}|{loop.evaluator.name}", "item": item.qid,
                               "judge": loop.evaluator.name}
        if not sample.get("valid") or not sample.get("rationale"):
            row.update(raw=None, score=1, error=None, skipped="invalid answer or no rationale: floor score")
        else:
            request = _judge_request(item, sample)
            outcome = await loop.call(request, request_key(loop.evaluator, request, {}, kind="judge")
                                      if cache is not None else None)
            raw = outcome.response.raw if outcome.response else None
            score = parse_judge_score(raw)
            error = outcome.error or (None if score is not None else "unparseable judge reply")
            row.update(raw=raw, score=score, error=error, cached=outcome.cached)
        store.append(row)
        on_done(row)

    try:
        await asyncio.gather(*(one(it, s) for it, s in todo))
    finally:
        await loop.evaluator.aclose()


def judge_run(
    run_dir: Path, bench: Benchmark, judges: Sequence[Evaluator], *, all_items: bool = False,
    concurrency: int = 8, use_cache: bool = True, progress: bool = True,
) -> dict[str, Any]:
    """Judge a finished run's rationales and write RC into its results.json; returns the temporal block."""
    from mtavg.progress import ItemProgress

    samples = SampleStore(run_dir / "samples.jsonl").rows
    items = [it for it in bench.items if it.qid in samples and (all_items or it.format == "temporal")]
    store = SampleStore(run_dir / "judge.jsonl")
    store.drop({k for k, r in store.rows.items() if r.get("error")})  # retry failed judgements
    for judge in judges:
        todo = [(it, samples[it.qid]) for it in items if f"{it.qid}|{judge.name}" not in store.rows]
        cache = ResponseCache() if use_cache and judge.cacheable else None
        loop = RequestLoop(judge, concurrency=concurrency, limiter=RateLimiter(), cache=cache)
        with ItemProgress(len(items), done=len(items) - len(todo), label=f"judge {judge.name}",
                          enabled=progress, ledger=loop.ledger) as bar:
            try:
                asyncio.run(_judge_all(loop, cache, store, todo, bar.advance))
            finally:
                if cache is not None:
                    cache.close()
    store.close()
    results_path = run_dir / "results.json"
    results = json.loads(results_path.read_text()) if results_path.exists() else {}
    apply_judgements(results, run_dir, [it for it in bench.items if it.qid in samples])
    if results_path.exists():
        from mtavg.run import write_results

        write_results(results_path, results)
    return {k: v for k, v in results.get("temporal", {}).items() if k.startswith("RC")} | {
        "all_items": results.get("rationale_consistency_all")}
