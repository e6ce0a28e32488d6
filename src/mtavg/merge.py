"""Join the shards of one run (``--shard i/n``) into the run an unsharded command would have written.

Eval shards are run directories; metrics shards are jsonl files with a ``.shard.json`` header. A merge
refuses anything that would make the joined run differ from an unsharded one: two inputs of one shard
index or one item answered twice (overlap), a missing shard index or item (gap), and shards of another
model, modality, benchmark, metric list or clip set (mismatch).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from mtavg.bench import Benchmark, load_benchmark
from mtavg.judge import apply_judgements
from mtavg.metrics.run import WORKER_FAILED, shard_header_path
from mtavg.run import audio_delivery, results_from_rows, usage_summary, write_results
from mtavg.samples import PredictionsError, read_jsonl, read_predictions
from mtavg.sharding import Shard, ids_fingerprint, items_fingerprint

# Fields every eval shard must agree on (run.json), and every metrics shard (its .shard.json).
EVAL_SAME = ("model", "modality", "bench", "fingerprint", "limit", "bench_fingerprint")
METRICS_SAME = ("metrics", "n_inputs", "inputs_fingerprint")


class MergeError(ValueError):
    """The inputs are not the complete, non-overlapping shards of one run."""


def _show(ids: Iterable[str], limit: int = 5) -> str:
    ids = list(ids)
    more = f" (+{len(ids) - limit} more)" if len(ids) > limit else ""
    return ", ".join(map(str, ids[:limit])) + more


def _check_indices(shards: Sequence[tuple[Shard, Path]]) -> int:
    """All shards of one count, each index exactly once; returns the count."""
    counts = {s.count for s, _ in shards}
    if len(counts) > 1:
        raise MergeError(f"mismatch: shards of different counts: {_show(f'{p} is {s}' for s, p in shards)}")
    (n,) = counts
    seen: dict[int, Path] = {}
    for shard, path in shards:
        if shard.index in seen:
            raise MergeError(f"overlap: shard {shard} given twice: {seen[shard.index]} and {path}")
        seen[shard.index] = path
    missing = [f"{i}/{n}" for i in range(n) if i not in seen]
    if missing:
        raise MergeError(f"gap: shard(s) {', '.join(missing)} missing (got {len(seen)} of {n})")
    return n


def _check_same(metas: Sequence[tuple[dict[str, Any], Path]], keys: Sequence[str], what: str) -> None:
    first, first_path = metas[0]
    for meta, path in metas[1:]:
        for key in keys:
            if meta.get(key) != first.get(key):
                raise MergeError(f"mismatch: {what} {key} is {meta.get(key)!r} in {path} "
                                 f"but {first.get(key)!r} in {first_path}")


def _shard_from(meta: dict[str, Any], path: Path) -> Shard:
    raw = meta.get("shard")
    if not isinstance(raw, dict):
        raise MergeError(f"{path}: not a shard (no shard record); was it run with --shard i/n?")
    return Shard(int(raw["index"]), int(raw["count"]))


# --- eval run directories ---------------------------------------------------------------------------

def _read_eval_shard(run_dir: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    meta_path, samples = run_dir / "run.json", run_dir / "samples.jsonl"
    if not meta_path.exists() or not samples.exists():
        raise MergeError(f"{run_dir}: not a run directory (needs run.json and samples.jsonl)")
    try:
        return json.loads(meta_path.read_text(encoding="utf-8")), list(read_predictions(samples))
    except (PredictionsError, json.JSONDecodeError) as exc:
        raise MergeError(f"{run_dir}: {exc}") from exc


def _owner_rows(shards: Sequence[tuple[Shard, Path, list[dict[str, Any]]]]) -> dict[str, dict[str, Any]]:
    """qid -> row over all shards, refusing a qid answered twice or answered by the wrong shard."""
    owner: dict[str, tuple[Shard, Path]] = {}
    rows: dict[str, dict[str, Any]] = {}
    for shard, path, shard_rows in shards:
        for row in shard_rows:
            qid = row["qid"]
            if qid in owner:
                raise MergeError(f"overlap: qid {qid!r} answered in {owner[qid][1]} and in {path}")
            owner[qid], rows[qid] = (shard, path), row
    for qid, (shard, path) in owner.items():  # after the overlap check: a copied row reads as overlap
        if not shard.owns(qid):
            raise MergeError(f"mismatch: qid {qid!r} in {path} does not belong to shard {shard}")
    return rows


def _merge_judgements(dirs: Sequence[Path], out: Path) -> None:
    lines = [line for d in dirs if (d / "judge.jsonl").exists()
             for line in (d / "judge.jsonl").read_text(encoding="utf-8").splitlines() if line.strip()]
    if lines:
        (out / "judge.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")


def merge_eval_runs(dirs: Sequence[Path], out: Path, *, bench: Benchmark | None = None,
                    n_boot: int = 1000) -> dict[str, Any]:
    """Join eval shard run directories into ``out`` (samples.jsonl, run.json, re-scored results.json)."""
    if not dirs:
        raise MergeError("nothing to merge: give the shard run directories")
    read = [(d, *_read_eval_shard(d)) for d in dirs]
    metas = [(meta, d) for d, meta, _ in read]
    shards = [(_shard_from(meta, d), d, rows) for d, meta, rows in read]
    _check_indices([(s, d) for s, d, _ in shards])
    _check_same(metas, EVAL_SAME, "run")
    first = metas[0][0]
    bench = bench or load_benchmark(first["bench_root"])
    if items_fingerprint(bench.items) != first.get("bench_fingerprint"):
        raise MergeError(f"mismatch: benchmark {bench.root} is not the one the shards ran on "
                         f"(its items differ from bench_fingerprint in {metas[0][1]}/run.json)")
    rows = _owner_rows(shards)
    selected = bench.items[:first["limit"]] if first.get("limit") else bench.items
    expected = {it.qid for it in selected}
    unknown = sorted(set(rows) - expected)
    if unknown:
        raise MergeError(f"mismatch: {len(unknown)} qid(s) not among the run's items: {_show(unknown)}")
    missing = [it.qid for it in selected if it.qid not in rows]
    if missing:
        raise MergeError(f"gap: {len(missing)} item(s) have no sample in any shard: {_show(missing)} "
                         "(re-run their shard's command to finish it)")
    out.mkdir(parents=True, exist_ok=True)
    if (out / "samples.jsonl").exists():
        raise MergeError(f"{out} already holds samples.jsonl; merge into a new directory")
    ordered = [rows[it.qid] for it in selected]  # benchmark order, as an unsharded run reports it
    with open(out / "samples.jsonl", "w", encoding="utf-8") as fh:
        fh.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in ordered)
    meta = {k: first.get(k) for k in ("model", "modality", "bench", "bench_root", "fingerprint", "limit")}
    meta.update(shard=None, merged_from=[{"dir": str(d), "shard": str(s)} for s, d, _ in shards])
    (out / "run.json").write_text(json.dumps(meta, indent=1), encoding="utf-8")
    results = _rescore(bench, ordered, selected, dirs, first, n_boot)
    _merge_judgements(dirs, out)
    apply_judgements(results, out, selected)
    write_results(out / "results.json", results)
    return results


def _rescore(bench: Benchmark, rows: list[dict[str, Any]], selected: Sequence[Any], dirs: Sequence[Path],
             meta: dict[str, Any], n_boot: int) -> dict[str, Any]:
    """results.json as ``run_eval`` builds it; session counters are the shards' sums."""
    shard_results = [json.loads((d / "results.json").read_text(encoding="utf-8"))
                     for d in dirs if (d / "results.json").exists()]
    results = results_from_rows(bench, rows, items=selected, model=meta["model"], modality=meta["modality"],
                                n_boot=n_boot, fingerprint=meta.get("fingerprint"))
    results["n_errors"] = sum(1 for r in rows if r.get("error"))
    results["errors_by_type"] = dict(Counter(r.get("error_type") or "?" for r in rows if r.get("error")))
    prices = next((r["usage"]["prices_per_million"] for r in shard_results if "usage" in r),
                  {"input": 0.0, "output": 0.0})
    results["usage"] = usage_summary(rows, prices["input"], prices["output"])
    session: Counter = Counter()
    for r in shard_results:
        session.update(r.get("session") or {})
    results["session"] = {k: round(v, 6) if isinstance(v, float) else v for k, v in session.items()}
    media_checked = any(r.get("audio_delivery") is not None for r in shard_results)
    results["audio_delivery"] = audio_delivery(rows, meta["modality"]) if media_checked else None
    return results


# --- metrics jsonl files ----------------------------------------------------------------------------

def _read_metrics_shard(path: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    header_path = shard_header_path(path)
    if not path.exists():
        raise MergeError(f"{path}: no such metrics output")
    if not header_path.exists():
        raise MergeError(f"{path}: not a shard (no {header_path.name}); was it run with --shard i/n?")
    rows = [row for _, row in read_jsonl(path, MergeError, "; re-run the shard to repair")]
    return json.loads(header_path.read_text(encoding="utf-8")), rows


def merge_metrics_shards(files: Sequence[Path], out: Path) -> list[dict[str, Any]]:
    """Join metrics shard outputs into one jsonl (sorted by clip path); returns the records."""
    if not files:
        raise MergeError("nothing to merge: give the shard metrics files")
    read = [(f, *_read_metrics_shard(f)) for f in files]
    _check_indices([(_shard_from(h, f), f) for f, h, _ in read])
    _check_same([(h, f) for f, h, _ in read], METRICS_SAME, "metrics shard")
    merged: dict[str, dict[str, Any]] = {}
    owner: dict[str, Path] = {}
    for f, header, rows in read:
        done = {r["path"] for r in rows if r.get("error_code") != WORKER_FAILED}
        missing = [c for c in header["clips"] if c not in done]
        if missing:
            raise MergeError(f"gap: {f} (shard {_shard_from(header, f)}) lacks {len(missing)} clip(s): "
                             f"{_show(missing)}; re-run its command to finish it")
        for row in rows:
            if row["path"] in owner:
                raise MergeError(f"overlap: clip {row['path']} measured in {owner[row['path']]} and in {f}")
            owner[row["path"]], merged[row["path"]] = f, row
    header = read[0][1]
    ids = [r["video_id"] for r in merged.values()]
    if len(merged) != header["n_inputs"] or ids_fingerprint(ids) != header["inputs_fingerprint"]:
        raise MergeError(f"gap: the shards hold {len(merged)} clip(s) of {header['n_inputs']} discovered; "
                         "some clips belong to no given shard")
    if out.exists():
        raise MergeError(f"{out} already exists; merge into a new file")
    out.parent.mkdir(parents=True, exist_ok=True)
    ordered = [merged[p] for p in sorted(merged)]
    with open(out, "w", encoding="utf-8") as fh:
        fh.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in ordered)
    return [{k: v for k, v in row.items() if k != "qid"} for row in ordered]
