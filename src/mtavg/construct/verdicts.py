"""Reviewer verdicts on QA items: the record, and reading / writing it as CSV or JSONL.

One verdict per (item, reviewer)::

    {"qid": "qa-single-00003", "reviewer": "rev-b", "verdict": "fix", "corrected_answer": ["C"],
     "comment": "the lips move before the voice: reaction timing"}

- ``verdict``: ``accept`` (the item is right), ``reject`` (drop it: ambiguous, wrong clip, ...) or
  ``fix`` (keep it with ``corrected_answer``, and for temporal items optionally ``corrected_time_answer``).
- In CSV, label lists are written ``A;C`` (``,`` and spaces also separate). Review sheets carry
  context columns (question, options, ...) that are ignored on import; any other unknown column is an
  error, so a misspelt ``verdict`` column cannot silently drop every verdict.

Readers report every problem at once as :class:`VerdictsInvalid` (``file:line: field: message``).
Checks that need the benchmark (does the qid exist, is the reviewer assigned, are the labels options)
live in :mod:`mtavg.construct.review`.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from mtavg.bench.validate import Problem, read_jsonl

VERDICTS: tuple[str, ...] = ("accept", "reject", "fix")
VERDICT_FIELDS = ("qid", "reviewer", "verdict", "corrected_answer", "corrected_time_answer", "comment")
SHEET_CONTEXT_COLUMNS = ("format", "video_ids", "question", "options", "answer", "time_options", "time_answer",
                         "sub_dimension", "failure_mode", "media", "other_verdicts")
_LIST_FIELDS = ("corrected_answer", "corrected_time_answer")


class Verdict(BaseModel):
    model_config = ConfigDict(extra="forbid")

    qid: str = Field(min_length=1)
    reviewer: str = Field(min_length=1)
    verdict: Literal["accept", "reject", "fix"]
    corrected_answer: list[str] | None = None
    corrected_time_answer: list[str] | None = None
    comment: str | None = None

    def decision(self) -> tuple[str, tuple[str, ...], tuple[str, ...]]:
        """What two reviewers must share to agree fully: the verdict and, for a fix, the same correction."""
        if self.verdict != "fix":
            return self.verdict, (), ()
        return ("fix", tuple(sorted(self.corrected_answer or ())), tuple(sorted(self.corrected_time_answer or ())))


class VerdictsInvalid(ValueError):
    """Verdict files break the format or do not fit the review; ``problems`` lists every defect."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        super().__init__(f"{len(self.problems)} problem(s) in verdicts:\n" + "\n".join(f"  {p}" for p in self.problems))


def split_labels(text: str) -> list[str]:
    """``"A;C"`` / ``"A, C"`` / ``"A C"`` -> ``["A", "C"]``; ``""`` -> ``[]``."""
    return [t for t in re.split(r"[;,\s]+", text.strip()) if t]


def _problems(e: ValidationError, file: str, line: int) -> list[Problem]:
    return [Problem(file, line, ".".join(map(str, err["loc"])) or None, err["msg"], err["type"]) for err in e.errors()]


def check_verdict_row(raw: dict[str, Any], file: str, line: int, out: list[tuple[int, Verdict]],
                      problems: list[Problem]) -> None:
    """Append the verdict of ``raw`` to ``out``, or its problems (schema, fix without correction, ...)."""
    try:
        v = Verdict.model_validate(raw)
    except ValidationError as e:
        problems += _problems(e, file, line)
        return
    if v.verdict == "fix" and not v.corrected_answer and not v.corrected_time_answer:
        problems.append(Problem(file, line, "corrected_answer", "a 'fix' verdict needs the corrected answer",
                                "missing_correction"))
        return
    if v.verdict != "fix" and (v.corrected_answer or v.corrected_time_answer):
        problems.append(Problem(file, line, "corrected_answer",
                                f"only 'fix' verdicts carry a correction (verdict is {v.verdict!r})",
                                "unexpected_correction"))
        return
    out.append((line, v))


def _csv_rows(path: Path) -> tuple[list[tuple[int, dict[str, Any]]], list[Problem]]:
    with path.open(encoding="utf-8-sig", newline="") as fh:
        reader = csv.DictReader(fh)
        columns = reader.fieldnames or []
        unknown = [c for c in columns if c not in VERDICT_FIELDS and c not in SHEET_CONTEXT_COLUMNS]
        if unknown:
            return [], [Problem(str(path), 1, c, f"unknown column {c!r} (verdict columns: {', '.join(VERDICT_FIELDS)})",
                                "unknown_column") for c in unknown]
        rows = []
        for n, row in enumerate(reader, start=2):
            raw: dict[str, Any] = {}
            for k in VERDICT_FIELDS:
                value = (row.get(k) or "").strip()
                if value:
                    raw[k] = split_labels(value) if k in _LIST_FIELDS else value
            if raw.get("verdict") or len(raw) > 2:  # a sheet row left blank (qid, reviewer only) is not a verdict
                if isinstance(raw.get("verdict"), str):
                    raw["verdict"] = raw["verdict"].lower()
                rows.append((n, raw))
    return rows, []


def read_verdicts(path: str | Path) -> list[Verdict]:
    """Verdicts of a ``.csv`` or ``.jsonl`` file; two rows for the same (qid, reviewer) are an error."""
    return [v for _, v in read_verdict_rows(path)]


def read_verdict_rows(path: str | Path) -> list[tuple[int, Verdict]]:
    """Like :func:`read_verdicts`, with the line each verdict came from (for later error messages)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"verdict file not found: {path}")
    problems: list[Problem] = []
    if path.suffix.lower() == ".csv":
        rows, problems = _csv_rows(path)
    else:
        decoded, problems = read_jsonl(path, str(path))
        rows = []
        for line, raw in decoded:
            if not isinstance(raw, dict):
                problems.append(Problem(str(path), line, None, "expected a JSON object", "not_an_object"))
                continue
            rows.append((line, {k: v for k, v in raw.items() if k not in SHEET_CONTEXT_COLUMNS}))
    checked: list[tuple[int, Verdict]] = []
    for line, raw in rows:
        check_verdict_row(raw, str(path), line, checked, problems)
    first: dict[tuple[str, str], int] = {}
    for line, v in checked:
        key = (v.qid, v.reviewer)
        if key in first:
            problems.append(Problem(str(path), line, "qid", f"second verdict of {v.reviewer} on {v.qid} "
                                    f"(first on line {first[key]})", "duplicate_verdict"))
        first.setdefault(key, line)
    if problems:
        raise VerdictsInvalid(sorted(problems, key=lambda p: p.line or 0))
    return checked


def write_verdicts(verdicts: Iterable[Verdict], path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as fh:
        for v in verdicts:
            fh.write(json.dumps(v.model_dump(mode="json", exclude_none=True), ensure_ascii=False) + "\n")
    return path


def write_sheet(rows: Iterable[dict[str, Any]], path: str | Path) -> Path:
    """A CSV a reviewer fills in: verdict columns first (blank), then context columns."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = list(rows)
    context = [c for c in SHEET_CONTEXT_COLUMNS if any(c in r for r in rows)]
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=[*VERDICT_FIELDS, *context])
        writer.writeheader()
        for r in rows:
            writer.writerow({k: _cell(r.get(k)) for k in (*VERDICT_FIELDS, *context)})
    return path


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list) and all(isinstance(x, str) for x in value):
        return ";".join(value)
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    return str(value)
