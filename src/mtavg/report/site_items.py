"""The item browser's data: runs and their benchmark loaded, one JSON-ready record per QA item.

A run directory holds ``samples.jsonl`` + ``results.json`` (DESIGN.md "Run directory"); each sample's
``raw`` is re-parsed so the browser agrees with a ``results.json`` rebuilt by ``mtavg score``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from mtavg.bench import BenchmarkInvalid, BenchmarkNotFound, load_benchmark
from mtavg.bench.load import Benchmark
from mtavg.bench.schema import QAItem
from mtavg.bench.validate import read_jsonl
from mtavg.report.labels import evaluator_labels
from mtavg.run import parsed_fields
from mtavg.taxonomy import Taxonomy, TaxonomyError, taxonomy_for_bench

SAMPLES_FILE = "samples.jsonl"
RESULTS_FILE = "results.json"
RUN_META_FILE = "run.json"
JUDGE_FILE = "judge.jsonl"
STATUSES: tuple[str, ...] = ("correct", "partial", "incorrect", "invalid")


class ReportInputError(ValueError):
    """A run directory or benchmark cannot be reported; the message names the file (and line)."""


@dataclass
class Run:
    dir: Path
    results: dict[str, Any]
    samples: list[dict[str, Any]]
    meta: dict[str, Any]  # run.json (empty when the run has none)
    lines: list[int]  # samples.jsonl line of each sample, for error messages
    label: str = ""
    #: item qid -> that item's judgements (``mtavg judge``), one per judge: judge, score (1-5 or None), note
    judgements: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    @property
    def bench_name(self) -> str | None:
        return self.results.get("bench") or self.meta.get("bench")


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ReportInputError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg})") from None


def _read_samples(path: Path) -> tuple[list[dict[str, Any]], list[int]]:
    decoded, problems = read_jsonl(path, str(path))
    if problems:
        raise ReportInputError("; ".join(str(p) for p in problems))
    rows, lines = [], []
    for lineno, row in decoded:
        if not isinstance(row, dict) or "qid" not in row:
            raise ReportInputError(f"{path}:{lineno}: a sample needs a 'qid' field")
        rows.append(row)
        lines.append(lineno)
    return rows, lines


def read_results(run_dir: Path) -> dict[str, Any]:
    """A run directory's results.json; a missing samples.jsonl or results.json is a ReportInputError."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ReportInputError(f"run directory {run_dir} does not exist")
    for name in (SAMPLES_FILE, RESULTS_FILE):
        if not (run_dir / name).is_file():
            raise ReportInputError(f"{run_dir} has no {name}: is it a run directory made by `mtavg eval`?")
    results = _read_json(run_dir / RESULTS_FILE)
    if not isinstance(results, dict) or "model" not in results:
        raise ReportInputError(f"{run_dir / RESULTS_FILE}: expected an object with a 'model' field")
    return results


def load_run(run_dir: Path) -> Run:
    """Read one run directory: results.json, samples.jsonl and (when present) run.json."""
    run_dir = Path(run_dir)
    results = read_results(run_dir)
    meta = _read_json(run_dir / RUN_META_FILE) if (run_dir / RUN_META_FILE).is_file() else {}
    samples, lines = _read_samples(run_dir / SAMPLES_FILE)
    judgements = _read_judgements(run_dir / JUDGE_FILE) if (run_dir / JUDGE_FILE).is_file() else {}
    return Run(run_dir, results, samples, meta if isinstance(meta, dict) else {}, lines, judgements=judgements)


def _read_judgements(path: Path) -> dict[str, list[dict[str, Any]]]:
    """judge.jsonl as item -> judgements; the last line per (item, judge) wins, as the judge's resume keeps
    it, and a partial last line (a killed judge) is ignored, as the judge itself ignores it."""
    text = path.read_text(encoding="utf-8", errors="replace")
    latest: dict[tuple[str, str], dict[str, Any]] = {}
    for lineno, line in enumerate(text[:text.rfind("\n") + 1].splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            key = (str(row["item"]), str(row["judge"]))
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise ReportInputError(f"{path}:{lineno}: not a judgement line (needs item and judge): {exc}") from None
        score = row.get("score")
        note = row.get("error") or row.get("skipped")
        latest[key] = {"judge": key[1], "score": int(score) if isinstance(score, (int, float)) else None,
                       **({"note": str(note)} if note else {})}
    by_item: dict[str, list[dict[str, Any]]] = {}
    for (item, _), judgement in sorted(latest.items()):
        by_item.setdefault(item, []).append(judgement)
    return by_item


def _path_suffix(path: Path, depth: int) -> str:
    return "/".join(path.resolve().parts[-depth:])


def label_runs(runs: Sequence[Run]) -> None:
    """Evaluator labels as the tables name them (model, differing settings, modality when not full); runs
    that still share a label (two runs of one model with equal settings) get the shortest distinguishing tail
    of their folder path."""
    dirs: dict[Path, Path] = {}
    for run in runs:
        if run.dir.resolve() in dirs:
            raise ReportInputError(f"run directory {run.dir} is given twice")
        dirs[run.dir.resolve()] = run.dir
    for run, label in zip(runs, evaluator_labels([r.results for r in runs]), strict=True):
        run.label = label
    base = [r.label for r in runs]
    for run, label in zip(runs, base, strict=True):
        twins = [r for r, other in zip(runs, base, strict=True) if other == label]
        if len(twins) == 1:
            continue
        depth = 1
        while len({_path_suffix(r.dir, depth) for r in twins}) < len(twins):
            depth += 1
        run.label = f"{label} · {_path_suffix(run.dir, depth)}"


def _check_one_bench(runs: Sequence[Run]) -> None:
    if len({r.bench_name for r in runs if r.bench_name}) > 1:
        listing = ", ".join(f"{r.dir} -> {r.bench_name}" for r in runs)
        raise ReportInputError(f"the runs were made on different benchmarks ({listing}); report each separately")


def _bench_source(runs: Sequence[Run]) -> str:
    """The benchmark the runs were made on: run.json's bench_root, else results.json's bench."""
    names = {r.bench_name for r in runs if r.bench_name}
    roots = {str(Path(r.meta["bench_root"]).resolve()) for r in runs if r.meta.get("bench_root")}
    if len(roots) > 1:
        raise ReportInputError(f"the runs were made on different benchmark directories: {', '.join(sorted(roots))}; "
                               "pass --bench if they are copies of one benchmark")
    if roots:
        return roots.pop()
    if names:
        return names.pop()
    raise ReportInputError(f"{runs[0].dir}: neither run.json nor results.json names the benchmark; pass --bench")


def resolve_bench(runs: Sequence[Run], bench: str | Path | None = None) -> Benchmark:
    """Load the benchmark (given, or the one the runs record) and check every sample's qid is in it."""
    if not runs:
        raise ReportInputError("no run directories given")
    _check_one_bench(runs)
    source = bench if bench is not None else _bench_source(runs)
    try:
        # validate=False: a clip missing on disk must not hide the whole report (its item gets a note).
        b = load_benchmark(source, validate=False)
    except (BenchmarkNotFound, BenchmarkInvalid) as exc:
        raise ReportInputError(f"benchmark for the report: {exc}" + ("" if bench else " (pass --bench)")) from None
    known = {it.qid for it in b.items}
    for run in runs:
        for lineno, row in zip(run.lines, run.samples, strict=True):
            if row["qid"] not in known:
                raise ReportInputError(f"{run.dir / SAMPLES_FILE}:{lineno}: qid {row['qid']!r} is not in benchmark "
                                       f"{b.root}; the run was made on another benchmark")
    return b


def sample_status(row: dict[str, Any]) -> str:
    """correct (full credit), partial (multi coverage between 0 and 1), incorrect, or invalid."""
    if row.get("error") or not row.get("valid"):
        return "invalid"
    score = row.get("score") or 0.0
    return "correct" if score >= 1.0 else "partial" if score > 0 else "incorrect"


def answer_record(item: QAItem, row: dict[str, Any],
                  judgements: Sequence[dict[str, Any]] = ()) -> dict[str, Any]:
    """One evaluator's answer to one item, re-parsed from its raw text, with the judges' rationale scores."""
    if row.get("error"):
        fields = {"prediction": None, "valid": False, "invalid_reason": "call_failed", "score": 0.0,
                  "time_score": None, "rationale": None}
    else:
        fields = parsed_fields(item, row.get("raw"))
    merged = {**fields, "error": row.get("error")}
    record = {
        "status": sample_status(merged), "raw": row.get("raw"), "prediction": fields["prediction"],
        "valid": bool(fields["valid"]), "invalid_reason": fields["invalid_reason"], "score": fields["score"],
        "time_score": fields["time_score"], "rationale": fields["rationale"], "error": row.get("error"),
        "judges": list(judgements) or None,
    }
    # Absent rather than null: 11.6k items x several evaluators make every repeated key count.
    return {k: v for k, v in record.items() if v is not None}


@dataclass
class Clip:
    video_id: str
    src: str | None  # relative to the site root, posix
    note: str | None  # why there is no playable file


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def _site_media_path(rel: str) -> str:
    """Where a benchmark clip goes inside the site: media/<path without the benchmark's media/ prefix>."""
    parts = [p for p in PurePosixPath(rel.replace("\\", "/")).parts if p not in ("", ".", "..")]
    if len(parts) > 1 and parts[0] == "media":
        parts = parts[1:]
    return "/".join(["media", *(_UNSAFE.sub("_", p) for p in parts)])


def place_file(src: Path, dst: Path) -> None:
    """Hard-link ``src`` to ``dst`` (same file system), else copy; an up-to-date ``dst`` is kept."""
    if dst.exists():
        if dst.samefile(src):
            return
        st_src, st_dst = src.stat(), dst.stat()
        if st_src.st_size == st_dst.st_size and int(st_src.st_mtime) == int(st_dst.st_mtime):
            return
        dst.unlink()
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)
    except OSError:  # another file system, or links not allowed: copy (keeps mtime for the check above)
        shutil.copy2(src, dst)


def place_clips(bench: Benchmark, video_ids: Sequence[str], out_dir: Path) -> dict[str, Clip]:
    """Put each clip under ``out_dir/media``; a clip missing from the benchmark gets a note instead."""
    clips = {}
    for vid in dict.fromkeys(video_ids):
        video = bench.videos.get(vid)
        if video is None:
            clips[vid] = Clip(vid, None, f"video {vid!r} is not listed in {bench.root / 'videos.jsonl'}")
            continue
        src = bench.root / video.path
        if not src.is_file():
            clips[vid] = Clip(vid, None, f"clip file missing: {video.path} (not found in {bench.root})")
            continue
        rel = _site_media_path(video.path)
        place_file(src, out_dir / rel)
        clips[vid] = Clip(vid, rel, None)
    return clips


def _names(tax: Taxonomy, item: QAItem) -> tuple[str, str]:
    sub = tax.sub_dimensions.get(item.sub_dimension)
    mode = tax.failure_modes.get(item.failure_mode)
    return (sub.name if sub else item.sub_dimension), (mode.name if mode else item.failure_mode)


def item_record(item: QAItem, clips: dict[str, Clip], answers: dict[int, dict[str, Any]],
                tax: Taxonomy) -> dict[str, Any]:
    """A QA item as the browser shows it; ``answers`` maps evaluator index -> answer_record."""
    sub_name, mode_name = _names(tax, item)
    return {
        "qid": item.qid, "format": item.format, "sub": item.sub_dimension, "sub_name": sub_name,
        "mode": item.failure_mode, "mode_name": mode_name, "question": item.question,
        "options": [[label, text] for label, text in item.options.items()], "answer": list(item.answer),
        "time_options": [[label, s, e] for label, (s, e) in (item.time_options or {}).items()],
        "time_answer": list(item.time_answer or []), "evidence": item.evidence,
        "clips": [{"id": c.video_id, "src": c.src, "note": c.note} for c in (clips[v] for v in item.video_ids)],
        "answers": {str(k): v for k, v in answers.items()},
    }


@dataclass
class BrowserData:
    evaluators: list[str]
    items: list[dict[str, Any]]
    n_bench_items: int
    missing_clips: list[str]  # notes, one per missing clip


def browser_data(bench: Benchmark, runs: Sequence[Run], out_dir: Path) -> BrowserData:
    """Records for every item some run answered (benchmark order); clips placed under out_dir/media."""
    try:
        tax = taxonomy_for_bench(bench.root)
    except TaxonomyError as exc:
        raise ReportInputError(str(exc)) from None
    by_run = [{row["qid"]: row for row in run.samples} for run in runs]
    answered = [it for it in bench.items if any(it.qid in rows for rows in by_run)]
    clips = place_clips(bench, [v for it in answered for v in it.video_ids], out_dir)
    items = []
    for it in answered:
        answers = {k: answer_record(it, rows[it.qid], runs[k].judgements.get(it.qid, ()))
                   for k, rows in enumerate(by_run) if it.qid in rows}
        items.append(item_record(it, clips, answers, tax))
    missing = [c.note for c in clips.values() if c.note]
    return BrowserData([r.label for r in runs], items, len(bench.items), missing)
