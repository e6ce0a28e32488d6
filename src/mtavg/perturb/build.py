"""``mtavg perturb build``: a positive/negative pair dataset from a folder of real clips.

Layout of the output (it is also a benchmark directory, so ``mtavg eval`` runs on it as it is)::

    build.json        settings, requested and realised type mix, failures
    plan.jsonl        every clip to make, with its exact parameters (written before any media)
    manifest.jsonl    every clip made: role, source, perturbation, params, path, status, error
    media/positives/pos-<source>.mp4 + .json      the source, decoded and re-encoded like a negative
    media/negatives/neg-00042.mp4 + .json         a perturbed copy and its sidecar record
    videos.jsonl, qa.jsonl, bench.json            yes/no QA items under the ``avbench`` taxonomy

Re-running the same command finishes an interrupted build: clips whose sidecar matches their plan are
kept, the rest (and failures) are made again. Another command into the same directory is refused.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mtavg.perturb.apply import perturb_clip, sidecar_path, write_json
from mtavg.perturb.plan import (
    PlanError,
    PlannedClip,
    SourceClip,
    parse_mix,
    plan_dataset,
    quotas,
    realised_mix,
    safe_id,
)

#: Bump when a perturbation's output changes for the same parameters: older clips are then remade.
ENGINE_VERSION = 1
VIDEO_SUFFIXES = {".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v"}


class BuildConflict(RuntimeError):
    """The output directory holds a build with other settings."""


@dataclass
class BuildOptions:
    mix: str | dict[str, float] = "avbench"
    n: int = 100
    seed: int = 0
    level: str = "both"
    reencode_video: bool = False  # also re-encode pictures left untouched (positives, audio negatives)
    bench: bool = True
    labels: Path | None = None
    category_pattern: str | None = None
    generator_pattern: str | None = None
    plan_only: bool = False
    jobs: int = 1
    executor: str = "local"
    address: str | None = None


@dataclass
class BuildReport:
    out: Path
    sources: list[SourceClip]
    skipped_sources: list[dict[str, str]]
    planned: list[PlannedClip]
    requested: dict[str, float]
    quotas: dict[str, int]
    realised: dict[str, dict[str, float]]
    made: int = 0
    reused: int = 0
    failed: list[dict[str, Any]] = field(default_factory=list)


# ---------------------------------------------------------------- sources
def load_labels(path: Path) -> dict[str, dict[str, str]]:
    """Per-clip labels from a .csv or .jsonl: a ``clip`` (id, file name or relative path) column plus any of
    ``category``, ``text`` (the clip's prompt or caption) and ``generator``."""
    rows: list[tuple[int, dict[str, Any]]] = []
    if path.suffix == ".csv":
        with path.open(newline="", encoding="utf-8") as fh:
            rows = [(i + 2, r) for i, r in enumerate(csv.DictReader(fh))]
    else:
        for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if line.strip():
                try:
                    rows.append((lineno, json.loads(line)))
                except json.JSONDecodeError as exc:
                    raise PlanError(f"{path}:{lineno}: not valid JSON ({exc.msg})") from None
    labels: dict[str, dict[str, str]] = {}
    for lineno, row in rows:
        key = row.get("clip") or row.get("clip_id") or row.get("video_id") or row.get("path")
        if not key:
            raise PlanError(f"{path}:{lineno}: a label row needs a 'clip' column (id, file name or path)")
        if key in labels:
            raise PlanError(f"{path}:{lineno}: clip {key!r} is labelled twice")
        labels[str(key)] = {k: str(v) for k, v in row.items() if k in ("category", "text", "generator") and v}
    return labels


def discover_sources(root: Path, *, labels: dict[str, dict[str, str]] | None = None,
                     category_pattern: str | None = None,
                     generator_pattern: str | None = None) -> tuple[list[SourceClip], list[dict[str, str]]]:
    """Usable clips under ``root`` and the ones skipped (unreadable, no video), each with its reason.

    Category: the label file's, else ``category_pattern``'s first group on the file stem, else the clip's
    first-level folder when clips sit in folders. Generator likewise from ``generator_pattern``.
    """
    from mtavg.media import MediaError, probe

    if not root.is_dir():
        raise PlanError(f"{root}: not a directory of clips")
    cat_re = re.compile(category_pattern) if category_pattern else None
    gen_re = re.compile(generator_pattern) if generator_pattern else None
    labels = labels or {}
    files = sorted(f for f in root.rglob("*") if f.suffix.lower() in VIDEO_SUFFIXES and f.is_file()
                   and not any(part.startswith(".") for part in f.relative_to(root).parts))
    sources: list[SourceClip] = []
    skipped: list[dict[str, str]] = []
    used: set[str] = set()
    for f in files:
        rel = f.relative_to(root).as_posix()
        clip_id = safe_id(rel)
        try:
            info = probe(f)
        except MediaError as exc:
            skipped.append({"path": rel, "error": str(exc)})
            continue
        if not info.has_video:
            skipped.append({"path": rel, "error": "no video stream"})
            continue
        if clip_id in used:
            skipped.append({"path": rel, "error": f"clip id {clip_id!r} is taken by another file"})
            continue
        used.add(clip_id)
        label = labels.get(clip_id) or labels.get(f.name) or labels.get(rel) or labels.get(f.stem) or {}
        category = label.get("category") or _group(cat_re, f.stem) or (
            Path(rel).parts[0] if len(Path(rel).parts) > 1 else None)
        sources.append(SourceClip(
            clip_id=clip_id, path=rel, duration_s=float(info.duration_s), height=int(info.height or 0),
            has_audio=info.has_audio, category=category, text=label.get("text"),
            generator=label.get("generator") or _group(gen_re, f.stem)))
    return sources, skipped


def _group(pattern: re.Pattern | None, text: str) -> str | None:
    m = pattern.search(text) if pattern else None
    if not m:
        return None
    return m.group(1) if m.groups() else m.group(0)


# ---------------------------------------------------------------- build
def clip_relpath(planned: PlannedClip) -> str:
    folder = "positives" if planned.role == "positive" else "negatives"
    return f"media/{folder}/{planned.clip_id}.mp4"


def plan_key(planned: PlannedClip, reencode_video: bool) -> str:
    payload = {"plan": planned.as_dict(), "reencode_video": reencode_video, "engine": ENGINE_VERSION}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def _render(task: dict[str, Any]) -> dict[str, Any]:
    """One clip (runs in a worker process): the sidecar record, or raises."""
    planned = PlannedClip(**task["planned"])
    return perturb_clip(task["src"], task["out"], planned.perturbation, planned.params,
                        reencode_video=task["reencode_video"], media_root=task["root"],
                        record={"clip_id": planned.clip_id, "role": planned.role, "source_id": planned.source_id,
                                "dimension": planned.dimension, "level": planned.level,
                                "plan_key": task["plan_key"]})


def _failed(task: dict[str, Any], exc: BaseException) -> dict[str, Any]:
    return {"clip_id": task["planned"]["clip_id"], "failed": True, "error": f"{type(exc).__name__}: {exc}",
            "error_code": getattr(exc, "code", None)}


def _settings(src: Path, opts: BuildOptions, mix: dict[str, float]) -> dict[str, Any]:
    return {"source_dir": str(src.resolve()), "mix": mix, "n": opts.n, "seed": opts.seed, "level": opts.level,
            "reencode_video": opts.reencode_video, "labels": str(opts.labels) if opts.labels else None,
            "category_pattern": opts.category_pattern, "generator_pattern": opts.generator_pattern,
            "engine": ENGINE_VERSION}


def build_pairs(src: Path, out: Path, opts: BuildOptions,
                on_done: Callable[[dict[str, Any]], None] | None = None,
                on_start: Callable[[int, int], None] | None = None) -> BuildReport:
    """Plan, then make every clip not made yet, then write the manifest and the benchmark files."""
    mix = parse_mix(opts.mix)
    labels = load_labels(opts.labels) if opts.labels else None
    sources, skipped = discover_sources(src, labels=labels, category_pattern=opts.category_pattern,
                                        generator_pattern=opts.generator_pattern)
    planned = plan_dataset(sources, mix, opts.n, seed=opts.seed, level=opts.level)
    settings = _settings(src, opts, mix)
    out.mkdir(parents=True, exist_ok=True)
    _check_same_build(out, settings)
    report = BuildReport(out, sources, skipped, planned, mix, quotas(mix, opts.n), realised_mix(planned))
    write_json(out / "build.json", {**settings, "status": "planned", **_mix_facts(report)})
    _write_lines(out / "plan.jsonl", [p.as_dict() for p in planned])
    if opts.plan_only:
        return report
    by_id = {s.clip_id: s for s in sources}
    sidecars: dict[str, dict[str, Any]] = {}
    tasks = []
    for p in planned:
        key = plan_key(p, opts.reencode_video)
        target = out / clip_relpath(p)
        side = _read_sidecar(target)
        if side is not None and side.get("plan_key") == key and target.is_file():
            sidecars[p.clip_id] = side
            continue
        tasks.append({"planned": p.as_dict(), "src": str(src / by_id[p.source_id].path), "out": str(target),
                      "root": str(src), "reencode_video": opts.reencode_video, "plan_key": key})
    report.reused = len(sidecars)
    if on_start:
        on_start(len(planned), len(sidecars))
    from mtavg.executors import make_executor

    executor = make_executor(opts.executor, jobs=opts.jobs, address=opts.address)
    failures: dict[str, dict[str, Any]] = {}
    try:
        for result in executor.map(_render, tasks, on_error=_failed):
            if result.get("failed"):
                failures[result["clip_id"]] = result
            else:
                sidecars[result["clip_id"]] = result
                report.made += 1
            if on_done:
                on_done(result)
    finally:
        executor.close()
    report.failed = list(failures.values())
    manifest = [_manifest_row(p, by_id[p.source_id], sidecars.get(p.clip_id), failures.get(p.clip_id))
                for p in planned]
    _write_lines(out / "manifest.jsonl", manifest)
    if opts.bench:
        write_bench(out, manifest)
    made = [p for p in planned if p.clip_id in sidecars]
    write_json(out / "build.json", {**settings, "status": "complete" if not failures else "incomplete",
                                     **_mix_facts(report), "realised_made": realised_mix(made),
                                     "failed": report.failed, "skipped_sources": skipped})
    return report


def _mix_facts(report: BuildReport) -> dict[str, Any]:
    return {"requested": report.requested, "quotas": report.quotas, "realised_planned": report.realised,
            "n_sources": len(report.sources),
            "n_positives": sum(p.role == "positive" for p in report.planned),
            "n_negatives": sum(p.role == "negative" for p in report.planned)}


def _check_same_build(out: Path, settings: dict[str, Any]) -> None:
    path = out / "build.json"
    if not path.exists():
        return
    old = json.loads(path.read_text(encoding="utf-8"))
    clash = {k: old.get(k) for k in settings if old.get(k) != settings[k]}
    if clash:
        raise BuildConflict(f"{out} holds a build with {clash}; choose another --out (or delete it)")


def _read_sidecar(clip: Path) -> dict[str, Any] | None:
    try:
        return json.loads(sidecar_path(clip).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None


def _manifest_row(p: PlannedClip, source: SourceClip, side: dict[str, Any] | None,
                  failure: dict[str, Any] | None) -> dict[str, Any]:
    row = {**p.as_dict(), "path": clip_relpath(p), "source_path": source.path, "category": source.category,
           "generator": source.generator, "text": source.text, "status": "ok" if side else "failed",
           "error": (failure or {}).get("error") if not side else None}
    if side:
        row.update(encode=side.get("encode"), effect=side.get("effect"), source_sha256=side.get("source_sha256"),
                   audio_duration_s=side.get("audio_duration_s"), duration_s=side.get("duration_s"))
    return row


def write_bench(out: Path, manifest: Sequence[dict[str, Any]]) -> tuple[int, int]:
    """videos.jsonl + qa.jsonl + bench.json over the clips made: one yes/no item per (clip, dimension).

    A negative is asked about the dimension its perturbation tests (gold "No"); a positive about every
    dimension its negatives test (gold "Yes"), so each negative has its positive on the same question.
    """
    from mtavg.suites.yesno import DIMENSIONS

    ok = [r for r in manifest if r["status"] == "ok"]
    dims_of: dict[str, set[str]] = {}
    for r in ok:
        if r["role"] == "negative":
            dims_of.setdefault(r["source_id"], set()).add(r["dimension"])
    videos, items = [], []
    for r in ok:
        videos.append({"video_id": r["clip_id"], "path": r["path"], "generator": r.get("generator"),
                       "source": r["source_id"], "duration_s": r.get("duration_s")})
        dims = sorted(dims_of.get(r["source_id"], ())) if r["role"] == "positive" else [r["dimension"]]
        for dim in dims:
            d = DIMENSIONS[dim]
            items.append({
                "qid": f"{r['clip_id']}:{dim}", "format": "single", "video_ids": [r["clip_id"]],
                "question": d.question, "options": {"A": "Yes", "B": "No"},
                "answer": ["A"] if r["role"] == "positive" else ["B"], "sub_dimension": d.code,
                "failure_mode": r["perturbation"] if r["role"] == "negative"
                else ("clean_av" if d.code == "AV" else "clean_visual"),
                "template_id": f"avbench_{dim}",
                "meta": {"yes_no": True, "dimension": dim, "role": r["role"], "source_id": r["source_id"],
                         "perturbation": r["perturbation"], "level": r["level"], "params": r["params"],
                         "category": r.get("category")},
            })
    _write_lines(out / "videos.jsonl", videos)
    _write_lines(out / "qa.jsonl", items)
    write_json(out / "bench.json", {"taxonomy": "avbench", "kind": "avbench_pairs"})
    return len(videos), len(items)


def _write_lines(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    os.replace(tmp, path)
