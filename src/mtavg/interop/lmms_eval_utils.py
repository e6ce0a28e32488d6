"""utils.py of an exported lmms-eval task (copied verbatim next to the task YAML).

Self-contained on purpose: an lmms-eval environment need not have mtavg installed. Each exported doc
already carries the prompt mtavg's ``render_prompt`` wrote for it and absolute clip paths, so these
functions only hand them over; ``process_results`` logs the qid and the model's raw answer, which
``mtavg import lmms-eval`` turns into predictions that ``mtavg score`` re-parses and scores.
"""

from __future__ import annotations

from typing import Any


def doc_to_visual(doc: dict[str, Any], lmms_eval_specific_kwargs: dict[str, Any] | None = None) -> list[str]:
    """The item's clip paths (two for pairwise items, in Clip 1, Clip 2 order)."""
    return [str(p) for p in doc["video_paths"]]


def doc_to_text(doc: dict[str, Any], lmms_eval_specific_kwargs: dict[str, Any] | None = None) -> str:
    """mtavg's prompt for the item, with lmms-eval's optional pre_prompt / post_prompt around it."""
    kwargs = lmms_eval_specific_kwargs or {}
    return f"{kwargs.get('pre_prompt', '')}{doc['prompt']}{kwargs.get('post_prompt', '')}"


def process_results(doc: dict[str, Any], results: list[Any]) -> dict[str, Any]:
    """One record per item: mtavg's qid and the untouched model output (scored later by mtavg)."""
    raw = results[0] if results else ""
    if isinstance(raw, (list, tuple)):  # some models return one list per request
        raw = raw[0] if raw else ""
    return {"mtavg_record": {"qid": doc["qid"], "raw": "" if raw is None else str(raw)}}


def aggregate_records(records: list[dict[str, Any]]) -> float:
    """Share of items with a non-empty answer (%); the benchmark's scores come from `mtavg score`."""
    if not records:
        return 0.0
    return 100.0 * sum(1 for r in records if str(r.get("raw") or "").strip()) / len(records)
