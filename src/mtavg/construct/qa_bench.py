"""Write constructed QA as a benchmark directory, with its statistics table.

``write_benchmark`` copies the media of every clip an item uses into ``<out>/media/``, writes
``videos.jsonl`` / ``qa.jsonl`` (DESIGN.md "Benchmark directory"), ``stats.json`` / ``stats.md``
(items per format, sub-dimension, failure mode, template, gold position), and checks the result
with :func:`mtavg.bench.validate_benchmark` -- a construction bug must not ship as a benchmark.
"""

from __future__ import annotations

import json
import os
import shutil
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from mtavg.annotations import VideoAnnotation
from mtavg.bench.load import save_jsonl
from mtavg.bench.schema import FORMATS, QAItem, Video
from mtavg.bench.validate import Problem, read_jsonl, validate_benchmark
from mtavg.construct.qa import QAConstructionError
from mtavg.taxonomy import load_taxonomy

STATS_JSON, STATS_MD = "stats.json", "stats.md"


class VideosMetaInvalid(ValueError):
    """A videos.jsonl given as clip metadata breaks the schema; lists every ``file:line: field: message``."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        super().__init__(f"{len(self.problems)} problem(s) in video metadata:\n"
                         + "\n".join(f"  {p}" for p in self.problems))


def load_videos_meta(path: str | Path) -> dict[str, Video]:
    """Clip metadata in the ``videos.jsonl`` shape; ``path`` fields are relative to the file's directory."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"video metadata file not found: {path}")
    rows, problems = read_jsonl(path, str(path))
    out: dict[str, Video] = {}
    for line, raw in rows:
        try:
            video = Video.model_validate(raw)
        except ValidationError as e:
            problems += [Problem(str(path), line, ".".join(map(str, err["loc"])) or None, err["msg"], err["type"])
                         for err in e.errors()]
            continue
        if video.video_id in out:
            problems.append(Problem(str(path), line, "video_id", f"duplicate video_id {video.video_id!r}",
                                    "duplicate_video_id"))
        out[video.video_id] = video
    if problems:
        raise VideosMetaInvalid(problems)
    return out


def link_or_copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.exists():
        dst.unlink()
    try:
        os.link(src, dst)  # same file system: no second copy of the clip
    except OSError:
        shutil.copy2(src, dst)


def _bench_videos(items: Sequence[QAItem], annotations: Sequence[VideoAnnotation], videos: Mapping[str, Video],
                  media_root: Path, out_dir: Path) -> list[Video]:
    generator = {a.video_id: a.generator for a in annotations}
    used = list(dict.fromkeys(v for it in items for v in it.video_ids))
    problems, out = [], []
    for vid in used:
        meta = videos.get(vid)
        src = media_root / meta.path if meta else None
        if meta is None or src is None or not src.is_file():
            problems.append(f"video {vid}: " + ("no entry in the video metadata" if meta is None
                                                 else f"media file {src} not found"))
            continue
        rel = f"media/{vid}{src.suffix}"
        link_or_copy(src, out_dir / rel)
        out.append(meta.model_copy(update={"path": rel, "generator": meta.generator or generator.get(vid)}))
    if problems:
        raise QAConstructionError(problems)
    return out


def write_benchmark(items: Sequence[QAItem], annotations: Sequence[VideoAnnotation], videos: Mapping[str, Video],
                    media_root: str | Path, out_dir: str | Path, *, skipped: Mapping[str, int] | None = None,
                    overwrite: bool = False) -> dict[str, Any]:
    """Write the benchmark directory ``out_dir`` and return its statistics (also in stats.json / stats.md)."""
    out_dir = Path(out_dir)
    if (out_dir / "qa.jsonl").exists() and not overwrite:
        raise FileExistsError(f"{out_dir / 'qa.jsonl'} exists; pass overwrite=True (--force) to replace it")
    if not items:
        raise QAConstructionError(["no QA items were generated (are the annotations all clean?)"])
    out_dir.mkdir(parents=True, exist_ok=True)
    bench_videos = _bench_videos(items, annotations, videos, Path(media_root), out_dir)
    save_jsonl(bench_videos, out_dir / "videos.jsonl")
    save_jsonl(items, out_dir / "qa.jsonl")
    problems = validate_benchmark(out_dir)
    if problems:  # a bug in construction, not in the user's input: say so loudly
        raise QAConstructionError([f"constructed benchmark is invalid: {p}" for p in problems])
    stats = qa_stats(items, skipped)
    (out_dir / STATS_JSON).write_text(json.dumps(stats, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    (out_dir / STATS_MD).write_text(stats_markdown(stats), encoding="utf-8")
    return stats


def _sorted_counts(values: Iterable[str]) -> dict[str, int]:
    return dict(sorted(Counter(values).items(), key=lambda kv: (-kv[1], kv[0])))


def qa_stats(items: Sequence[QAItem], skipped: Mapping[str, int] | None = None) -> dict[str, Any]:
    """Counts per format, sub-dimension (taxonomy order), failure mode, template and gold position."""
    tax = load_taxonomy()
    sub = Counter(it.sub_dimension for it in items)
    positions: dict[str, dict[str, int]] = {}
    for fmt in FORMATS:
        labels = Counter(a for it in items if it.format == fmt for a in it.answer)
        if labels:
            positions[fmt] = dict(sorted(labels.items()))
    return {
        "n_items": len(items),
        "n_videos": len({v for it in items for v in it.video_ids}),
        "formats": {f: sum(it.format == f for it in items) for f in FORMATS},
        "sub_dimensions": {code: sub.get(code, 0) for code in tax.sub_dimensions},
        "failure_modes": _sorted_counts(m for it in items for m in (it.meta or {}).get("gold_modes",
                                                                                        [it.failure_mode])),
        "templates": _sorted_counts(it.template_id or "(none)" for it in items),
        "gold_positions": positions,
        "skipped": dict(sorted((skipped or {}).items())),
    }


def _table(title: str, header: str, rows: Mapping[str, Any]) -> list[str]:
    return [f"## {title}", "", f"| {header} | items |", "|---|---:|", *(f"| {k} | {v} |" for k, v in rows.items()), ""]


def stats_markdown(stats: Mapping[str, Any]) -> str:
    tax = load_taxonomy()
    subs = {f"{c} {tax.sub_dimensions[c].name}": n for c, n in stats["sub_dimensions"].items()}
    positions = {f"{fmt} {label}": n for fmt, labels in stats["gold_positions"].items() for label, n in labels.items()}
    lines = [f"# QA construction: {stats['n_items']} items on {stats['n_videos']} clips", ""]
    lines += _table("Items per format", "format", stats["formats"])
    lines += _table("Items per sub-dimension", "sub-dimension", subs)
    lines += _table("Items per failure mode (gold)", "failure mode", stats["failure_modes"])
    lines += _table("Items per template", "template", stats["templates"])
    lines += _table("Gold answers per position", "format / label", positions)
    if stats["skipped"]:
        lines += _table("Not generated", "reason", stats["skipped"])
    return "\n".join(lines)
