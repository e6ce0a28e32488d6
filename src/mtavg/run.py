"""Run engine: items -> requests -> evaluator -> samples.jsonl -> results.json.

Written once for every backend: concurrency, per-item failure recording, resume, progress.
Re-running the same command skips items already in ``samples.jsonl`` (and retries failed calls).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from mtavg.bench import Benchmark
from mtavg.bench.schema import QAItem
from mtavg.evaluators import MODALITIES, Evaluator, MediaRef, Request
from mtavg.media import MediaError, probe
from mtavg.parse import parse_response
from mtavg.prompts import render_prompt
from mtavg.samples import SampleStore
from mtavg.score import build_results, score_item


class RunConflict(RuntimeError):
    """The output directory holds a run of another model, modality or benchmark."""


def build_request(item: QAItem, bench: Benchmark, modality: str) -> Request:
    """The request for one item, with the modality applied to the media references (not by backends)."""
    if modality not in MODALITIES:
        raise ValueError(f"unknown modality {modality!r}; choose one of: {', '.join(MODALITIES)}")
    media: list[MediaRef] = []
    if modality != "text":
        for i, vid in enumerate(item.video_ids, 1):
            info = probe(bench.video_path(vid))
            if modality != "no_audio" and not info.has_audio:
                raise MediaError(f"{bench.video_path(vid)}: no audio stream (needed for modality {modality!r})")
            media.append(MediaRef(
                video_id=vid, path=bench.video_path(vid),
                role=f"Clip {i}" if len(item.video_ids) > 1 else "Clip",
                use_video=modality != "no_vision", use_audio=modality != "no_audio",
                duration_s=info.duration_s, has_audio=info.has_audio,
            ))
    return Request(
        qid=item.qid, prompt=render_prompt(item), media=tuple(media), modality=modality,  # type: ignore[arg-type]
        format=item.format, question=item.question, options=dict(item.options),
        time_options=dict(item.time_options) if item.time_options else None, sub_dimension=item.sub_dimension,
    )


def parsed_fields(item: QAItem, raw: str | None) -> dict[str, Any]:
    """The sample fields that follow from the raw text alone (so re-scoring can rebuild them)."""
    parsed = parse_response(raw, item.options, item.format, item.time_options)
    s = score_item(item, parsed.prediction())
    return {
        "prediction": parsed.prediction(), "valid": parsed.valid, "invalid_reason": parsed.reason,
        "score": s.score, "time_score": s.tla, "rationale": parsed.rationale,
    }


def results_from_rows(
    bench: Benchmark, rows: Iterable[Mapping[str, Any]], *, items: Sequence[QAItem] | None = None,
    model: str | None = None, modality: str | None = None, n_boot: int = 1000,
) -> dict:
    """results.json from sample rows, re-parsing each ``raw`` (a parser fix re-scores old runs).

    ``items`` are the items the run covers (default: the whole benchmark); one without a row counts
    as invalid ("missing") and scores 0: an unanswered item never leaves the denominator.
    """
    rows = list(rows)
    known = {it.qid for it in bench.items}
    unknown = [r["qid"] for r in rows if r["qid"] not in known]
    if unknown:
        raise KeyError(f"{len(unknown)} predictions name qids not in benchmark {bench.name}: {unknown[:5]}")
    seen = {r["qid"]: r for r in rows}
    items = list(bench.items if items is None else items)
    predictions, reasons = {}, {}
    for it in items:
        if it.qid not in seen:
            continue  # build_results scores it as missing
        f = parsed_fields(it, seen[it.qid].get("raw"))
        predictions[it.qid] = f["prediction"]
        reasons[it.qid] = "call_failed" if seen[it.qid].get("error") else f["invalid_reason"]
    first = rows[0] if rows else {}
    results = build_results(
        items, predictions, bench.videos, model=model or first.get("model") or "unknown",
        bench=bench.name, modality=modality or first.get("modality") or "full",
        invalid_reasons=reasons, n_boot=n_boot,
    )
    results["n_missing"] = sum(it.qid not in seen for it in items)
    return results


async def _answer(item: QAItem, bench: Benchmark, evaluator: Evaluator, modality: str) -> dict[str, Any]:
    row: dict[str, Any] = {"qid": item.qid, "model": evaluator.name, "modality": modality}
    start = time.perf_counter()
    try:
        request = await asyncio.to_thread(build_request, item, bench, modality)
        response = await evaluator.respond(request)
        if not isinstance(response.raw, str):
            raise TypeError(f"{evaluator.name} returned raw={type(response.raw).__name__}, expected str")
        row.update(raw=response.raw, error=None, audio_sent=response.audio_sent,
                   frames_sent=response.frames_sent, usage=response.usage, logprobs=response.logprobs)
    except Exception as exc:  # noqa: BLE001 - one item's failure is recorded, the run goes on
        row.update(raw=None, error=f"{type(exc).__name__}: {exc}", audio_sent=False, frames_sent=0,
                   usage=None, logprobs=None)
    row["latency_s"] = round(time.perf_counter() - start, 4)
    row.update(parsed_fields(item, row["raw"]), cached=False)
    return row


def _check_same_run(out: Path, store: SampleStore, model: str, modality: str, bench: str) -> None:
    meta_path = out / "run.json"
    if meta_path.exists():
        meta = json.loads(meta_path.read_text())
        mine = {"model": model, "modality": modality, "bench": bench}
        clash = {k: meta.get(k) for k in mine if meta.get(k) != mine[k]}
        if clash:
            raise RunConflict(f"{out} holds a run with {clash}, not {mine}; choose another --out")
    for row in store.rows.values():
        if row.get("model") != model or row.get("modality") != modality:
            raise RunConflict(f"{out}/samples.jsonl holds {row.get('model')}/{row.get('modality')} rows; "
                              f"choose another --out for {model}/{modality}")


async def _run(items: list[QAItem], bench: Benchmark, evaluator: Evaluator, modality: str,
               store: SampleStore, concurrency: int, on_done) -> None:
    gate = asyncio.Semaphore(max(1, concurrency))

    async def one(item: QAItem) -> None:
        async with gate:
            row = await _answer(item, bench, evaluator, modality)
        store.append(row)  # no await between here and the write: lines never interleave
        on_done(row)

    try:
        await asyncio.gather(*(one(it) for it in items))
    finally:
        await evaluator.aclose()


def run_eval(
    bench: Benchmark, evaluator: Evaluator, out: Path, *, modality: str = "full", limit: int | None = None,
    concurrency: int = 8, retry_errors: bool = True, progress: bool = True, n_boot: int = 1000,
) -> dict:
    """Evaluate ``evaluator`` on ``bench`` into ``out``; returns results.json's content."""
    out.mkdir(parents=True, exist_ok=True)
    store = SampleStore(out / "samples.jsonl")
    _check_same_run(out, store, evaluator.name, modality, bench.name)
    (out / "run.json").write_text(json.dumps({
        "model": evaluator.name, "modality": modality, "bench": bench.name, "bench_root": str(bench.root),
        "fingerprint": evaluator.fingerprint, "limit": limit,
    }, indent=1))
    if retry_errors:
        store.drop({q for q, r in store.rows.items() if r.get("error")})
    selected = bench.items[:limit] if limit else bench.items
    todo = [it for it in selected if it.qid not in store.rows]
    from mtavg.progress import ItemProgress

    with ItemProgress(len(selected), done=len(selected) - len(todo), label=evaluator.name, enabled=progress) as bar:
        try:
            asyncio.run(_run(todo, bench, evaluator, modality, store, concurrency, bar.advance))
        finally:
            store.close()
    rows = [store.rows[it.qid] for it in selected if it.qid in store.rows]
    results = results_from_rows(bench, rows, items=selected, model=evaluator.name, modality=modality,
                                n_boot=n_boot)
    results["n_errors"] = sum(1 for r in rows if r.get("error"))
    write_results(out / "results.json", results)
    return results


def write_results(path: Path, results: dict) -> None:
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(results, indent=1, ensure_ascii=False))
    tmp.replace(path)
