"""Run engine: items -> requests -> evaluator -> samples.jsonl -> results.json.

Written once for every backend: concurrency, per-item failure recording, resume, progress.
Re-running the same command skips items already in ``samples.jsonl`` (and retries failed calls).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from mtavg.bench import Benchmark
from mtavg.bench.schema import QAItem
from mtavg.cache import ResponseCache, request_key
from mtavg.evaluators import MODALITIES, Evaluator, MediaRef, Request
from mtavg.judge import apply_judgements
from mtavg.limits import RateLimiter, RetryPolicy
from mtavg.loop import CallOutcome, Ledger, RequestLoop
from mtavg.media import NoAudioStream, probe
from mtavg.parse import parse_response
from mtavg.prompts import render_prompt
from mtavg.samples import SampleStore
from mtavg.score import build_results, score_item
from mtavg.secrets import redact
from mtavg.sharding import Shard, items_fingerprint
from mtavg.taxonomy import use_taxonomy


class RunConflict(RuntimeError):
    """The output directory holds a run of another model, modality or benchmark."""


def media_ref(video_id: str, path: Path, role: str, modality: str) -> MediaRef:
    """One clip as a request carries it under ``modality`` (probed: a broken file fails here, typed)."""
    info = probe(path)
    if modality != "no_audio" and not info.has_audio:
        raise NoAudioStream(f"{path}: no audio stream (needed for modality {modality!r})")
    return MediaRef(video_id=video_id, path=path, role=role, use_video=modality != "no_vision",
                    use_audio=modality != "no_audio", duration_s=info.duration_s, has_audio=info.has_audio)


def build_request(item: QAItem, bench: Benchmark, modality: str) -> Request:
    """The request for one item, with the modality applied to the media references (not by backends)."""
    if modality not in MODALITIES:
        raise ValueError(f"unknown modality {modality!r}; choose one of: {', '.join(MODALITIES)}")
    media: list[MediaRef] = []
    if modality != "text":
        for i, vid in enumerate(item.video_ids, 1):
            role = f"Clip {i}" if len(item.video_ids) > 1 else "Clip"
            media.append(media_ref(vid, bench.video_path(vid), role, modality))
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
    model: str | None = None, modality: str | None = None, n_boot: int = 1000, fingerprint: str | None = None,
) -> dict:
    """results.json from sample rows, re-parsing each ``raw`` (a parser fix re-scores old runs).

    ``items`` are the items the run covers (default: the whole benchmark); one without a row counts
    as invalid ("missing") and scores 0: an unanswered item never leaves the denominator.
    ``fingerprint`` is the evaluator's settings (seed, sampling, frames) as run.json records them; it
    tells two runs of one model apart in reports.
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
    with use_taxonomy(bench.taxonomy):  # a benchmark with its own taxonomy scores by its categories
        results = build_results(
            items, predictions, bench.videos, model=model or first.get("model") or "unknown",
            bench=bench.name, modality=modality or first.get("modality") or "full",
            invalid_reasons=reasons, n_boot=n_boot,
        )
    results["n_missing"] = sum(it.qid not in seen for it in items)
    results["fingerprint"] = fingerprint
    return results


@dataclass
class RunOptions:
    modality: str = "full"
    limit: int | None = None
    concurrency: int = 8
    retry_errors: bool = True  # re-running retries items whose call failed
    progress: bool = True
    n_boot: int = 1000
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    rpm: float | None = None
    tpm: float | None = None
    use_cache: bool = True
    cache_path: Path | None = None  # default: $MTAVG_CACHE_DIR/responses.sqlite or ~/.cache/mtavg/
    price_in: float = 0.0  # USD per million prompt tokens
    price_out: float = 0.0  # USD per million completion tokens
    check_audio: bool = True
    shard: Shard | None = None  # evaluate only the items of this shard (see mtavg.sharding)


class AudioNotDelivered(RuntimeError):
    """The clips have audio and the modality wants it, yet no request carried any (or the reverse)."""


def _media_hashes(request: Request) -> dict[str, str]:
    from mtavg.media.prepare import file_sha256

    return {m.video_id: file_sha256(m.path) for m in request.media}


async def _answer(item: QAItem, bench: Benchmark, loop: RequestLoop, modality: str) -> dict[str, Any]:
    evaluator = loop.evaluator
    row: dict[str, Any] = {"qid": item.qid, "model": evaluator.name, "modality": modality}
    start = time.perf_counter()
    outcome: CallOutcome | None = None
    clip_audio = False
    try:
        # Probing and hashing clips is file I/O: off the event loop. Text-only requests have none, and
        # skipping the thread hop there is worth ~5% throughput at 150 items/s.
        if modality == "text":
            request = build_request(item, bench, modality)
        else:
            request = await asyncio.to_thread(build_request, item, bench, modality)
        clip_audio = any(m.has_audio for m in request.media)
        key = None
        if loop.cache is not None:
            hashes = await asyncio.to_thread(_media_hashes, request) if request.media else {}
            key = request_key(evaluator, request, hashes)
        outcome = await loop.call(request, key)
    except Exception as exc:  # noqa: BLE001 - media/prompt failures are recorded on the item
        row.update(error=redact(f"{type(exc).__name__}: {exc}"), error_type=type(exc).__name__, error_status=None,
                   error_code=getattr(exc, "code", None))
    response = outcome.response if outcome else None
    if outcome is not None:
        row.update(error=outcome.error, error_type=outcome.error_type, error_status=outcome.error_status,
                   attempts=outcome.attempts, retry_history=outcome.history or None)
    row.update(
        raw=response.raw if response else None,
        audio_sent=bool(response and response.audio_sent), frames_sent=response.frames_sent if response else 0,
        clip_has_audio=clip_audio, media_params=response.meta if response and response.meta else None,
        usage=response.usage if response else None, logprobs=response.logprobs if response else None,
        latency_s=round(time.perf_counter() - start, 4), cached=bool(outcome and outcome.cached),
    )
    if response is not None and not isinstance(response.raw, str):
        row.update(raw=None, error=f"TypeError: {evaluator.name} returned raw={type(response.raw).__name__}")
    row.update(parsed_fields(item, row["raw"]))
    return row


def _check_same_run(out: Path, store: SampleStore, model: str, modality: str, bench: str,
                    shard: dict[str, Any] | None = None, fingerprint: str | None = None) -> None:
    meta_path = out / "run.json"
    if meta_path.exists():
        meta = json.loads(meta_path.read_text())
        mine = {"model": model, "modality": modality, "bench": bench, "shard": shard}
        if "fingerprint" in meta:  # resuming with another seed or sampling setting would mix two runs' answers
            mine["fingerprint"] = fingerprint
        clash = {k: meta.get(k) for k in mine if meta.get(k) != mine[k]}
        if clash:
            raise RunConflict(f"{out} holds a run with {clash}, not {mine}; choose another --out")
    for row in store.rows.values():
        if row.get("model") != model or row.get("modality") != modality:
            raise RunConflict(f"{out}/samples.jsonl holds {row.get('model')}/{row.get('modality')} rows; "
                              f"choose another --out for {model}/{modality}")


async def _run(items: list[QAItem], bench: Benchmark, loop: RequestLoop, modality: str,
               store: SampleStore, on_done) -> None:
    # Items wait on the loop's gate, so at most `concurrency` are in flight; a bounded window of
    # tasks keeps memory flat on 10k-item runs.
    window = asyncio.Semaphore(max(4 * loop.concurrency, 64))

    async def one(item: QAItem) -> None:
        async with window:
            row = await _answer(item, bench, loop, modality)
        store.append(row)  # no await between here and the write: lines never interleave
        on_done(row)

    try:
        await asyncio.gather(*(one(it) for it in items))
    finally:
        await loop.evaluator.aclose()


def audio_delivery(rows: list[dict[str, Any]], modality: str) -> dict[str, Any]:
    """Did audio reach the model exactly when the modality says it should?"""
    answered = [r for r in rows if not r.get("error")]
    with_audio = [r for r in answered if r.get("clip_has_audio")]
    sent = sum(1 for r in answered if r.get("audio_sent"))
    expected = modality in ("full", "no_vision")
    return {"expected": expected, "clips_with_audio": len(with_audio), "requests_with_audio": sent,
            "dropped": sum(1 for r in with_audio if not r.get("audio_sent")) if expected else 0,
            "ok": (sent > 0 or not with_audio) if expected else sent == 0}


def run_eval(bench: Benchmark, evaluator: Evaluator, out: Path, options: RunOptions | None = None,
             **overrides: Any) -> dict:
    """Evaluate ``evaluator`` on ``bench`` into ``out``; returns results.json's content.

    Raises AudioNotDelivered (after writing results.json) when the audio check fails.
    """
    opts = replace(options or RunOptions(), **overrides)
    out.mkdir(parents=True, exist_ok=True)
    store = SampleStore(out / "samples.jsonl")
    selected = bench.items[:opts.limit] if opts.limit else bench.items
    shard = None
    if opts.shard is not None:  # the shard's items, and what `mtavg merge` needs to check the shards
        selected = [it for it in selected if opts.shard.owns(it.qid)]
        shard = {"index": opts.shard.index, "count": opts.shard.count}
    _check_same_run(out, store, evaluator.name, opts.modality, bench.name, shard, evaluator.fingerprint)
    meta = {"model": evaluator.name, "modality": opts.modality, "bench": bench.name, "bench_root": str(bench.root),
            "fingerprint": evaluator.fingerprint, "limit": opts.limit, "shard": shard}
    if shard is not None:
        meta.update(n_items=len(selected), bench_fingerprint=items_fingerprint(bench.items))
    (out / "run.json").write_text(json.dumps(meta, indent=1))
    if opts.retry_errors:
        store.drop({q for q, r in store.rows.items() if r.get("error")})
    todo = [it for it in selected if it.qid not in store.rows]
    cache = ResponseCache(opts.cache_path) if opts.use_cache and evaluator.cacheable else None
    ledger = Ledger(price_in=opts.price_in, price_out=opts.price_out)
    loop = RequestLoop(evaluator, concurrency=opts.concurrency, policy=opts.policy,
                       limiter=RateLimiter(opts.rpm, opts.tpm), cache=cache, ledger=ledger)
    from mtavg.progress import ItemProgress

    with ItemProgress(len(selected), done=len(selected) - len(todo), label=evaluator.name,
                      enabled=opts.progress, ledger=ledger) as bar:
        try:
            asyncio.run(_run(todo, bench, loop, opts.modality, store, bar.advance))
        finally:
            store.close()
            if cache is not None:
                cache.close()
    rows = [store.rows[it.qid] for it in selected if it.qid in store.rows]
    results = results_from_rows(bench, rows, items=selected, model=evaluator.name, modality=opts.modality,
                                n_boot=opts.n_boot, fingerprint=evaluator.fingerprint)
    results["n_errors"] = sum(1 for r in rows if r.get("error"))
    results["errors_by_type"] = dict(Counter(r.get("error_type") or "?" for r in rows if r.get("error")))
    results["usage"] = usage_summary(rows, opts.price_in, opts.price_out)
    results["session"] = ledger.as_dict()
    _record_endpoints(out, evaluator, results)
    check = audio_delivery(rows, opts.modality) if evaluator.consumes_media else None
    results["audio_delivery"] = check
    apply_judgements(results, out, selected)
    write_results(out / "results.json", results)
    if opts.check_audio and check is not None and not check["ok"]:
        raise AudioNotDelivered(
            f"{evaluator.name} / modality {opts.modality}: {check['clips_with_audio']} clips have audio, "
            f"{check['requests_with_audio']} requests carried audio" + (
                "; the model never heard the clips — fix the backend options or pass --modality no_audio"
                if check["expected"] else "; audio leaked into an ablation that must not carry it"))
    return results


def _record_endpoints(out: Path, evaluator: Evaluator, results: dict) -> None:
    """Per-endpoint counters (several --base-url) into results.json's session and run.json."""
    stats_of = getattr(evaluator, "endpoint_stats", None)
    endpoints = stats_of() if callable(stats_of) else None
    if not endpoints:
        return
    results["session"]["endpoints"] = endpoints
    meta_path = out / "run.json"
    meta = json.loads(meta_path.read_text())
    meta["endpoints"] = endpoints
    meta_path.write_text(json.dumps(meta, indent=1))


def usage_summary(rows: list[dict[str, Any]], price_in: float, price_out: float) -> dict[str, Any]:
    """Tokens and cost over all of a run's rows (resumed sessions included); cached rows cost nothing."""
    fresh = [r for r in rows if not r.get("cached")]
    p = sum(int((r.get("usage") or {}).get("prompt_tokens") or 0) for r in fresh)
    c = sum(int((r.get("usage") or {}).get("completion_tokens") or 0) for r in fresh)
    return {"prompt_tokens": p, "completion_tokens": c, "cached_items": len(rows) - len(fresh),
            "cost_usd": round((p * price_in + c * price_out) / 1e6, 6),
            "prices_per_million": {"input": price_in, "output": price_out}}


def write_results(path: Path, results: dict) -> None:
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(results, indent=1, ensure_ascii=False))
    tmp.replace(path)
