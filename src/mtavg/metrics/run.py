"""Run metrics over clips: one decode per clip, all metrics on it, one JSON line per clip.

A bad file becomes a record with its typed error (``error_code``: missing, empty, unreadable,
truncated, ...) and the batch goes on; a metric that fails on one clip is recorded on that clip.
Output is appended line by line, so an interrupted batch resumes where it stopped (a clip whose
worker died is retried; every finished clip is kept). Clips run on an executor (local processes by
default, or Ray); ``shard`` keeps one deterministic part of the clips and records it next to the output.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mtavg.executors import Executor, LocalExecutor
from mtavg.metrics import METRICS, load_builtin_metrics
from mtavg.metrics.base import load_clip
from mtavg.samples import SampleStore
from mtavg.sharding import Shard, ids_fingerprint

VIDEO_SUFFIXES = {".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v"}


@dataclass(frozen=True)
class ClipRef:
    path: Path
    video_id: str
    generator: str | None = None


def select_metrics(names: Sequence[str] | None) -> list[str]:
    """Metric names to run: the given ones (validated), or every available built-in signal metric."""
    load_builtin_metrics()
    if names:
        unknown = [n for n in names if n not in METRICS]
        if unknown:
            raise KeyError(f"unknown metric(s): {', '.join(unknown)}; known: {', '.join(sorted(METRICS))}")
        return list(names)
    # By default: every metric that is usable here and needs no model weights.
    return [n for n, s in METRICS.items() if s.extra != "models" and s.available() is True]


def compute_clip(path: str | Path, metrics: Sequence[str] | None = None, *, video_id: str | None = None,
                 generator: str | None = None) -> dict[str, Any]:
    """All selected metrics on one clip, decoded once. Never raises for a bad clip or a failing metric."""
    names = select_metrics(metrics)
    path = Path(path)
    record: dict[str, Any] = {"video_id": video_id or path.stem, "path": str(path), "generator": generator,
                              "ok": True, "error": None, "error_code": None, "metrics": {}, "seconds": {}}
    start = time.perf_counter()
    try:
        clip = load_clip(path, video_id=video_id, generator=generator)
    except Exception as exc:  # noqa: BLE001 - a bad file is this clip's record, not the batch's end
        record.update(ok=False, error=f"{type(exc).__name__}: {exc}", error_code=getattr(exc, "code", "unreadable"))
        return record
    record["seconds"]["decode"] = round(time.perf_counter() - start, 3)
    record["duration_s"] = round(clip.duration_s, 3)
    for name in names:
        spec = METRICS[name]
        why = spec.available()
        missing = [s for s in spec.needs if (s == "audio" and clip.audio is None) or (s == "video" and clip.frames is None)]
        if why is not True:
            record["metrics"][name] = {"skipped": str(why)}
            continue
        if missing:
            record["metrics"][name] = {"skipped": f"no {' or '.join(missing)} stream"}
            continue
        t0 = time.perf_counter()
        try:
            record["metrics"][name] = spec.fn(clip)
        except Exception as exc:  # noqa: BLE001 - one metric's failure stays on this clip
            record["metrics"][name] = {"error": f"{type(exc).__name__}: {exc}"}
        record["seconds"][name] = round(time.perf_counter() - t0, 3)
    record["seconds"]["total"] = round(time.perf_counter() - start, 3)
    return record


def _worker(args: tuple[str, list[str], str, str | None]) -> dict[str, Any]:
    path, names, video_id, generator = args
    return compute_clip(path, names, video_id=video_id, generator=generator)


def discover(paths: Iterable[str | Path], generator_regex: str | None = None) -> list[ClipRef]:
    """Clips from files, directories of clips, or benchmark directories (videos.jsonl gives ids/generators).

    ``generator_regex`` takes the generator from a file stem's first group (e.g. ``_(.+)$`` for
    ``case1_ltx2.mp4`` -> ``ltx2``); otherwise a plain file's generator is its directory's name.
    """
    pattern = re.compile(generator_regex) if generator_regex else None
    refs: list[ClipRef] = []
    for p in map(Path, paths):
        if p.is_dir() and (p / "videos.jsonl").exists():
            for line in (p / "videos.jsonl").read_text(encoding="utf-8").splitlines():
                if line.strip():
                    v = json.loads(line)
                    refs.append(ClipRef(p / v["path"], v["video_id"], v.get("generator")))
            continue
        files = sorted(f for f in p.rglob("*") if f.suffix.lower() in VIDEO_SUFFIXES) if p.is_dir() else [p]
        for f in files:
            match = pattern.search(f.stem) if pattern else None
            generator = (match.group(1) if match and match.groups() else match.group(0)) if match else f.parent.name
            refs.append(ClipRef(f, f.stem, generator))
    return refs


WORKER_FAILED = "worker_failed"  # the executor lost the clip (crash, node loss): retried on resume


class ShardConflict(RuntimeError):
    """The output already holds another shard (or an unsharded run) of the metrics."""


def shard_header_path(out: Path) -> Path:
    """Where a sharded metrics output records its shard: ``m.jsonl`` -> ``m.shard.json``."""
    return out.with_suffix(".shard.json")


def _failed_record(args: tuple[str, list[str], str, str | None], exc: BaseException) -> dict[str, Any]:
    path, _, video_id, generator = args
    return {"video_id": video_id, "path": path, "generator": generator, "ok": False,
            "error": f"{type(exc).__name__}: {path}: {exc}", "error_code": WORKER_FAILED,
            "metrics": {}, "seconds": {}}


def _write_shard_header(out: Path, shard: Shard, refs: Sequence[ClipRef], mine: Sequence[ClipRef],
                        names: Sequence[str], has_rows: bool) -> None:
    header = {"shard": {"index": shard.index, "count": shard.count}, "metrics": list(names),
              "n_inputs": len(refs), "inputs_fingerprint": ids_fingerprint(r.video_id for r in refs),
              "n_clips": len(mine), "clips": [str(r.path) for r in mine]}
    path = shard_header_path(out)
    if path.exists():
        old = json.loads(path.read_text(encoding="utf-8"))
        keys = ("shard", "metrics", "inputs_fingerprint")
        clash = {k: old.get(k) for k in keys if old.get(k) != header[k]}
        if clash:
            raise ShardConflict(f"{out} holds {clash}, not {({k: header[k] for k in keys})}; choose another --out")
    elif has_rows:
        raise ShardConflict(f"{out} holds an unsharded metrics run; choose another --out for shard {shard}")
    path.write_text(json.dumps(header, indent=1), encoding="utf-8")


def compute_metrics(
    refs: Sequence[ClipRef], out: Path, *, metrics: Sequence[str] | None = None, jobs: int = 1,
    executor: Executor | None = None, shard: Shard | None = None,
    on_done: Callable[[dict[str, Any]], None] | None = None,
) -> list[dict[str, Any]]:
    """Metrics for every clip (of ``shard``, when given) into ``out`` (jsonl, resumable: clips already
    there are skipped, except those whose worker died). ``executor`` defaults to ``LocalExecutor(jobs)``."""
    names = select_metrics(metrics)
    store = SampleStore(out)  # keyed by "qid": we use the clip's path, unique per clip
    if not shard and shard_header_path(out).exists():
        raise ShardConflict(f"{out} holds shard output ({shard_header_path(out).name}); choose another --out")
    mine = [r for r in refs if shard.owns(r.video_id)] if shard else list(refs)
    if shard:
        _write_shard_header(out, shard, refs, mine, names, bool(store.rows))
    store.drop({k for k, row in store.rows.items() if row.get("error_code") == WORKER_FAILED})
    todo = [(str(r.path), names, r.video_id, r.generator) for r in mine if str(r.path) not in store.rows]
    runner = executor or LocalExecutor(jobs)
    try:
        for record in runner.map(_worker, todo, on_error=_failed_record):
            store.append({"qid": record["path"], **record})
            if on_done:
                on_done(record)
    finally:
        store.close()
    wanted = {str(r.path) for r in mine}
    return [{k: v for k, v in row.items() if k != "qid"} for key, row in store.rows.items() if key in wanted]


def summarize(records: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per generator (and "all"): number of clips, failed clips, and each metric's aggregate."""
    load_builtin_metrics()
    groups: dict[str, list[dict[str, Any]]] = {"all": list(records)}
    for r in records:
        groups.setdefault(r.get("generator") or "unknown", []).append(r)
    summary: dict[str, dict[str, Any]] = {}
    for gen, recs in groups.items():
        entry: dict[str, Any] = {"n_clips": len(recs), "n_failed": sum(not r["ok"] for r in recs), "metrics": {}}
        names = sorted({m for r in recs for m in r.get("metrics", {})})
        for name in names:
            per_clip = [r["metrics"][name] for r in recs
                        if name in r.get("metrics", {}) and "error" not in r["metrics"][name]
                        and "skipped" not in r["metrics"][name]]
            spec = METRICS.get(name)
            if per_clip and spec is not None:
                entry["metrics"][name] = spec.aggregate(per_clip)
        summary[gen] = entry
    return summary
