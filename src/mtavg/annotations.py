"""Failure annotations: which failures each generated video shows, and where.

The file format (``annotations.jsonl``) is one video per line::

    {"video_id": "v1", "generator": "veo3", "annotator": "ann-2",
     "failures": [{"sub_dimension": "IP", "failure_mode": "dialogue_turn_taking_failure",
                   "start_s": 2.5, "end_s": 3.4, "evidence": "both speakers talk at once"}]}

- ``failures: []`` is a clean video: it still counts in every denominator (Eq. 9 divides by the
  generator's videos, not by its failed ones), so clean videos must be listed, not left out.
- Each failure is one *segment*. ``start_s`` / ``end_s`` are required keys; both ``null`` means the
  failure was diagnosed but not localised (e.g. from a single-choice answer) -- it still counts once.
- ``sub_dimension`` and ``failure_mode`` are checked against :func:`mtavg.taxonomy.load_taxonomy`.

:func:`load_annotations` reports every problem of a file at once (``file:line: field: message``) as
:class:`AnnotationsInvalid`; :func:`annotations_from_run` turns an evaluator's answers into the same
records.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from mtavg.bench.validate import Problem, read_jsonl
from mtavg.taxonomy import Taxonomy, load_taxonomy

if TYPE_CHECKING:
    from mtavg.bench.load import Benchmark

ANNOTATIONS_FILE = "annotations.jsonl"
_PYDANTIC_CODES = {"missing": "missing_field", "extra_forbidden": "extra_field"}


class AnnotatedFailure(BaseModel):
    """One failure segment of one video."""

    model_config = ConfigDict(extra="forbid")

    sub_dimension: str
    failure_mode: str
    start_s: float | None  # required key; null (with end_s null) = not localised
    end_s: float | None
    evidence: str | None = None

    @property
    def localised(self) -> bool:
        return self.start_s is not None and self.end_s is not None


class VideoAnnotation(BaseModel):
    """Everything annotated about one video; ``failures == []`` is a clean video."""

    model_config = ConfigDict(extra="forbid")

    video_id: str = Field(min_length=1)
    generator: str = Field(min_length=1)
    annotator: str | None = None
    failures: list[AnnotatedFailure]  # required: a forgotten list must not read as "clean"


class AnnotationsInvalid(ValueError):
    """An annotations file breaks the format; ``problems`` lists every defect (file:line: field: message)."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        lines = "\n".join(f"  {p}" for p in self.problems)
        super().__init__(f"{len(self.problems)} problem(s) in annotations:\n{lines}")


# ---------------------------------------------------------------- validation
def _dotted(loc: tuple[Any, ...]) -> str:
    return ".".join(str(x) for x in loc)


def _failure_problems(ann: VideoAnnotation, tax: Taxonomy, file: str, line: int | None) -> list[Problem]:
    """Checks pydantic cannot do: taxonomy membership, segment order, duplicates."""
    out: list[Problem] = []

    def add(field: str, message: str, code: str) -> None:
        out.append(Problem(file, line, field, message, code))

    seen: set[tuple[str, float | None, float | None]] = set()
    for i, f in enumerate(ann.failures):
        where = f"failures.{i}"
        sd_known = f.sub_dimension in tax.sub_dimensions
        if not sd_known:
            add(f"{where}.sub_dimension", f"unknown sub-dimension {f.sub_dimension!r}; "
                f"known: {', '.join(tax.sub_dimensions)}", "unknown_sub_dimension")
        mode = tax.failure_modes.get(f.failure_mode)
        if mode is None:
            add(f"{where}.failure_mode", f"unknown failure mode {f.failure_mode!r}", "unknown_failure_mode")
        elif sd_known and mode.sub_dimension != f.sub_dimension:
            add(f"{where}.failure_mode", f"{f.failure_mode!r} belongs to {mode.sub_dimension}, "
                f"not {f.sub_dimension}", "mode_not_in_sub_dimension")
        if (f.start_s is None) != (f.end_s is None):
            add(where, "start_s and end_s must both be numbers or both be null", "half_segment")
        elif f.localised:
            assert f.start_s is not None and f.end_s is not None
            if not (math.isfinite(f.start_s) and math.isfinite(f.end_s)):
                add(where, f"times must be finite numbers, got {f.start_s}-{f.end_s}", "non_finite_time")
            elif f.start_s < 0:
                add(f"{where}.start_s", f"negative time {f.start_s}", "negative_time")
            elif f.start_s > f.end_s:
                add(where, f"start_s {f.start_s} > end_s {f.end_s}", "start_after_end")
        key = (f.failure_mode, f.start_s, f.end_s)
        if key in seen:  # the same segment twice would be counted twice by Eq. 9
            add(where, f"duplicate failure {f.failure_mode!r} at {f.start_s}-{f.end_s}", "duplicate_failure")
        seen.add(key)
    return out


def parse_annotations(rows: Iterable[tuple[int | None, Any]], file: str) -> tuple[list[VideoAnnotation], list[Problem]]:
    """Validate decoded rows ``(line, value)``; returns the good records and every problem found."""
    tax = load_taxonomy()
    records: list[VideoAnnotation] = []
    problems: list[Problem] = []
    first_line: dict[str, int | None] = {}
    for line, value in rows:
        if not isinstance(value, dict):
            problems.append(Problem(file, line, None, f"expected a JSON object, got {type(value).__name__}",
                                    "not_an_object"))
            continue
        try:
            ann = VideoAnnotation.model_validate(value)
        except ValidationError as e:
            for err in e.errors():
                problems.append(Problem(file, line, _dotted(err["loc"]) or None, err["msg"],
                                        _PYDANTIC_CODES.get(err["type"], err["type"])))
            continue
        own = _failure_problems(ann, tax, file, line)
        if ann.video_id in first_line:
            where = f"line {first_line[ann.video_id]}" if first_line[ann.video_id] else "an earlier record"
            own.append(Problem(file, line, "video_id", f"duplicate video_id {ann.video_id!r} (first at {where})",
                               "duplicate_video_id"))
        else:
            first_line[ann.video_id] = line
        problems += own
        if not own:
            records.append(ann)
    return records, problems


def validate_annotations(annotations: Iterable[VideoAnnotation], *, source: str = "<annotations>") -> None:
    """Raise :class:`AnnotationsInvalid` if records built in code break the rules ``load_annotations`` checks."""
    rows = [(None, a.model_dump(mode="json")) for a in annotations]
    _, problems = parse_annotations(rows, source)
    if problems:
        raise AnnotationsInvalid(problems)


def load_annotations(path: str | Path) -> list[VideoAnnotation]:
    """Read ``annotations.jsonl``; raise :class:`AnnotationsInvalid` listing every problem at once."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"annotations file not found: {path}")
    rows, problems = read_jsonl(path, str(path))
    records, more = parse_annotations(rows, str(path))
    problems += more
    if problems:
        raise AnnotationsInvalid(sorted(problems, key=lambda p: (p.line or 0)))
    return records


def write_annotations(annotations: Iterable[VideoAnnotation], path: str | Path) -> Path:
    """Write one video per line; segment times are always written (null = not localised)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as fh:
        for ann in annotations:
            row = ann.model_dump(mode="json", exclude_none=True)
            row["failures"] = [{**f.model_dump(mode="json", exclude_none=True), "start_s": f.start_s,
                                "end_s": f.end_s} for f in ann.failures]
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    return path


# ---------------------------------------------------------------- option text -> failure mode
def _normalise(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


def match_failure_mode(text: str, tax: Taxonomy | None = None) -> str | None:
    """The taxonomy slug an option text names (by display name or slug, case/punctuation-insensitive)."""
    tax = tax or load_taxonomy()
    table = _mode_lookup(tax)
    return table.get(_normalise(text))


def _mode_lookup(tax: Taxonomy) -> dict[str, str]:
    table: dict[str, str] = {}
    for slug, mode in tax.failure_modes.items():
        table[_normalise(slug)] = slug
        table[_normalise(mode.name)] = slug
    return table


# ---------------------------------------------------------------- evaluator diagnoses -> annotations
DIAGNOSTIC_FORMATS = ("single", "multi", "temporal")  # pairwise answers name a clip, not a failure mode


class RunBenchMismatch(ValueError):
    """The samples do not belong to this benchmark (unknown qids) or mix several evaluators/modalities."""


@dataclass
class RunDiagnoses:
    """An evaluator's answers read as failure annotations, plus what could not be read."""

    annotations: list[VideoAnnotation]  # every benchmark video, in benchmark order; [] failures = none chosen
    n_used: int  # diagnostic samples whose choices were read
    n_invalid: int  # diagnostic samples without a valid prediction (skipped)
    n_other_format: int  # pairwise samples (skipped)
    unmatched_options: dict[str, int] = field(default_factory=dict)  # chosen text naming no mode -> count
    videos_not_asked: list[str] = field(default_factory=list)  # no used sample: "clean" there is no evidence


@dataclass
class _Chosen:
    qids: list[str] = field(default_factory=list)
    windows: list[tuple[float, float]] = field(default_factory=list)


def _merge(windows: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Touching or overlapping windows become one segment (B=[2,4] + C=[4,6] is one failure, not two)."""
    out: list[tuple[float, float]] = []
    for a, b in sorted(windows):
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


def _run_identity(samples: Sequence[dict[str, Any]]) -> str:
    models = sorted({str(s.get("model")) for s in samples})
    modalities = sorted({str(s.get("modality", "full")) for s in samples})
    if len(models) > 1 or len(modalities) > 1:
        raise RunBenchMismatch(f"samples mix evaluators {models} / modalities {modalities}; pass one run")
    if not samples:
        return "evaluator"
    return models[0] if modalities[0] == "full" else f"{models[0]} ({modalities[0]})"


def annotations_from_run(bench: Benchmark, samples: Iterable[dict[str, Any]], *,
                         annotator: str | None = None) -> RunDiagnoses:
    """An evaluator's diagnoses (single / multi / temporal answers) as annotations of every benchmark video.

    A chosen option becomes a failure when its text names a taxonomy mode (display name or slug);
    other texts are counted in ``unmatched_options``, never guessed. A mode chosen in several items of
    one video counts once; temporal answers give it segments (the chosen time windows, merged), and a
    mode only chosen in single/multi items is one unlocalised failure (``start_s = end_s = None``).
    """
    rows = list(samples)
    unknown = sorted({str(s.get("qid")) for s in rows if s.get("qid") not in {it.qid for it in bench.items}})
    if unknown:
        raise RunBenchMismatch(f"{len(unknown)} sample qid(s) are not in benchmark {bench.name}: "
                               f"{', '.join(unknown[:5])}{' ...' if len(unknown) > 5 else ''}")
    who = annotator or _run_identity(rows)
    lookup = _mode_lookup(load_taxonomy())
    chosen: dict[str, dict[str, _Chosen]] = {vid: {} for vid in bench.videos}
    result = RunDiagnoses([], 0, 0, 0)
    for s in rows:
        item = bench.item(s["qid"])
        if item.format not in DIAGNOSTIC_FORMATS:
            result.n_other_format += 1
            continue
        pred = s.get("prediction")
        if not s.get("valid") or not pred:
            result.n_invalid += 1
            continue
        result.n_used += 1
        vid = item.video_ids[0]
        windows = [tuple(item.time_options[t]) for t in pred.get("time") or []
                   if item.time_options and t in item.time_options]
        for label in pred.get("answer") or []:
            text = item.options.get(label, f"<label {label} not among the options>")
            mode = lookup.get(_normalise(text))
            if mode is None:
                result.unmatched_options[text] = result.unmatched_options.get(text, 0) + 1
                continue
            entry = chosen.setdefault(vid, {}).setdefault(mode, _Chosen())
            entry.qids.append(item.qid)
            if item.format == "temporal":
                entry.windows += windows
    tax = load_taxonomy()
    for vid, modes in chosen.items():
        video = bench.videos.get(vid)
        failures = []
        for mode, c in modes.items():
            evidence = f"chosen in {', '.join(dict.fromkeys(c.qids))}"
            spans: list[tuple[float | None, float | None]] = list(_merge(c.windows)) or [(None, None)]
            failures += [AnnotatedFailure(sub_dimension=tax.failure_modes[mode].sub_dimension, failure_mode=mode,
                                          start_s=a, end_s=b, evidence=evidence) for a, b in spans]
        generator = (video.generator if video else None) or "unknown"
        result.annotations.append(VideoAnnotation(video_id=vid, generator=generator, annotator=who,
                                                  failures=failures))
    asked = {bench.item(s["qid"]).video_ids[0] for s in rows
             if bench.item(s["qid"]).format in DIAGNOSTIC_FORMATS and s.get("valid") and s.get("prediction")}
    result.videos_not_asked = [vid for vid in bench.videos if vid not in asked]
    return result

__all__ = [
    "ANNOTATIONS_FILE",
    "AnnotatedFailure",
    "AnnotationsInvalid",
    "VideoAnnotation",
    "RunBenchMismatch",
    "RunDiagnoses",
    "annotations_from_run",
    "load_annotations",
    "match_failure_mode",
    "parse_annotations",
    "validate_annotations",
    "write_annotations",
]
