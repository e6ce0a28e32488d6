"""AVGen-Bench module records: one jsonl line per (clip, module), a fixed schema, validated on read.

Every AVGen-Bench module (ours or a wrapper around the upstream one) writes the same thing:

    {"clip": "ads/Some content.mp4", "category": "ads", "module": "Vis", "raw": 0.93,
     "status": "ok", "error": null, "details": {...}}

``raw`` is the module's own unit (Q-Align quality in [0, 1], audiobox PQ 1–10, AV offset in seconds,
lip offset in frames, VideoPhy rating 1–5, the rest 0–100); normalisation happens only in aggregation
(:mod:`mtavg.suites.avgen`). ``status`` is ``ok`` (raw is a finite number), ``failed`` (the module
crashed or could not score the clip: raw is null, error says why) or ``not_applicable`` (the clip
has nothing to score, e.g. no face for Face, no music prompt for Music: raw is null).

The generator a record belongs to is its ``generator`` field when present, else the name of the
directory holding the jsonl file (``records/<generator>/<module>.jsonl``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

Status = Literal["ok", "failed", "not_applicable"]
STATUSES: tuple[str, ...] = get_args(Status)

# The eleven AVGen-Bench measurements, in the published table's column order.
MODULES: tuple[str, ...] = ("Vis", "Aud", "AV", "Lip", "Text", "Face", "Music", "Speech", "LoPhy", "HiPhy",
                            "Holistic")

# Reported beside the total, never inside it unless asked (``--pitch-as-music``): our deterministic pitch
# accuracy is not the published Gemini-judged Music module.
EXTRA_MODULES: tuple[str, ...] = ("Pitch",)

_FIELDS = ("clip", "category", "module", "raw", "status", "error", "details")
_OPTIONAL_FIELDS = ("generator",)


class RecordsInvalid(ValueError):
    """A records file (or an in-memory record) breaks the schema; the message names file:line and field."""


@dataclass(frozen=True)
class ModuleRecord:
    """One module's verdict on one clip."""

    clip: str
    category: str
    module: str
    raw: float | None
    status: Status
    error: str | None
    details: dict[str, Any] = field(default_factory=dict)
    generator: str = ""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"clip": self.clip, "category": self.category, "module": self.module,
                               "raw": self.raw, "status": self.status, "error": self.error,
                               "details": self.details}
        if self.generator:
            out["generator"] = self.generator
        return out


def validate_record(record: ModuleRecord, where: str = "record") -> None:
    """Raise :class:`RecordsInvalid` naming ``where`` and the field when ``record`` breaks the schema."""
    for name in ("clip", "category", "module"):
        value = getattr(record, name)
        if not isinstance(value, str) or not value.strip():
            raise RecordsInvalid(f"{where}: field '{name}' must be a non-empty string, got {value!r}")
    if record.module not in MODULES + EXTRA_MODULES:
        raise RecordsInvalid(f"{where}: field 'module' is {record.module!r}; expected one of "
                             f"{', '.join(MODULES + EXTRA_MODULES)}")
    if record.status not in STATUSES:
        raise RecordsInvalid(f"{where}: field 'status' is {record.status!r}; expected one of {', '.join(STATUSES)}")
    if not isinstance(record.details, dict):
        raise RecordsInvalid(f"{where}: field 'details' must be an object, got {type(record.details).__name__}")
    if record.error is not None and not isinstance(record.error, str):
        raise RecordsInvalid(f"{where}: field 'error' must be a string or null")
    if not isinstance(record.generator, str):
        raise RecordsInvalid(f"{where}: field 'generator' must be a string")
    raw = record.raw
    if record.status == "ok":
        if isinstance(raw, bool) or not isinstance(raw, (int, float)) or not math.isfinite(raw):
            raise RecordsInvalid(f"{where}: status 'ok' needs a finite number in field 'raw', got {raw!r}")
    elif raw is not None:
        raise RecordsInvalid(f"{where}: status '{record.status}' must have 'raw': null, got {raw!r}")
    if record.status == "failed" and not (record.error or "").strip():
        # A failure without a reason is exactly the silent kind we refuse.
        raise RecordsInvalid(f"{where}: status 'failed' needs a non-empty 'error'")


def _record_from_obj(obj: Any, where: str, default_generator: str) -> ModuleRecord:
    if not isinstance(obj, dict):
        raise RecordsInvalid(f"{where}: expected a JSON object, got {type(obj).__name__}")
    missing = [k for k in _FIELDS if k not in obj]
    if missing:
        raise RecordsInvalid(f"{where}: missing field(s) {', '.join(missing)}")
    unknown = sorted(set(obj) - set(_FIELDS) - set(_OPTIONAL_FIELDS))
    if unknown:
        raise RecordsInvalid(f"{where}: unknown field(s) {', '.join(unknown)} (put extras in 'details')")
    raw = obj["raw"]
    record = ModuleRecord(clip=obj["clip"], category=obj["category"], module=obj["module"],
                          raw=float(raw) if isinstance(raw, (int, float)) and not isinstance(raw, bool) else raw,
                          status=obj["status"], error=obj["error"], details=obj["details"],
                          generator=obj.get("generator") or default_generator)
    validate_record(record, where)
    return record


def _iter_file(path: Path, default_generator: str) -> Iterator[tuple[int, ModuleRecord]]:
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            where = f"{path}:{lineno}"
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise RecordsInvalid(f"{where}: not JSON ({exc.msg})") from exc
            yield lineno, _record_from_obj(obj, where, default_generator)


def records_files(path: Path) -> list[Path]:
    """The jsonl files ``read_records`` would read: the file itself, or every ``*.jsonl`` under a directory."""
    path = Path(path)
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise RecordsInvalid(f"{path}: no such file or directory")
    return sorted(p for p in path.rglob("*.jsonl") if p.is_file())


def read_records(path: str | Path) -> list[ModuleRecord]:
    """All records in a jsonl file or under a directory, validated; duplicates are an error.

    A record without ``generator`` belongs to the directory that holds its file.
    """
    files = records_files(Path(path))
    if not files:
        raise RecordsInvalid(f"{path}: no *.jsonl records found")
    records: list[ModuleRecord] = []
    seen: dict[tuple[str, str, str], str] = {}
    for file in files:
        for lineno, record in _iter_file(file, file.resolve().parent.name):
            key = (record.generator, record.module, record.clip)
            where = f"{file}:{lineno}"
            if key in seen:
                raise RecordsInvalid(f"{where}: duplicate record for generator {key[0]!r}, module {key[1]}, "
                                     f"clip {key[2]!r} (first at {seen[key]})")
            seen[key] = where
            records.append(record)
    return records


def summarise(records: Iterable[ModuleRecord]) -> dict[str, Any]:
    """Counts and the mean raw value per (generator, module): what a module's summary file holds."""
    groups: dict[tuple[str, str], list[ModuleRecord]] = {}
    for r in records:
        groups.setdefault((r.generator, r.module), []).append(r)
    out: dict[str, Any] = {}
    for (generator, module), rs in sorted(groups.items()):
        ok = [r.raw for r in rs if r.status == "ok" and r.raw is not None]
        n_failed = sum(r.status == "failed" for r in rs)
        scored = len(ok) + n_failed
        out.setdefault(generator or "", {})[module] = {
            "n_ok": len(ok), "n_failed": n_failed,
            "n_not_applicable": sum(r.status == "not_applicable" for r in rs),
            "mean_raw": sum(ok) / len(ok) if ok else None,
            "item_coverage": len(ok) / scored if scored else None,
            "failed_clips": [r.clip for r in rs if r.status == "failed"],
        }
    return out


def summary_path(path: str | Path) -> Path:
    """Where :func:`write_records` puts the summary of ``path``: ``<stem>.summary.json`` beside it."""
    path = Path(path)
    return path.with_name(f"{path.stem}.summary.json")


def write_records(path: str | Path, records: Iterable[ModuleRecord]) -> Path:
    """Validate and write ``records`` as jsonl at ``path`` plus ``<stem>.summary.json``; returns the summary path."""
    path = Path(path)
    records = list(records)
    seen: set[tuple[str, str, str]] = set()
    for i, record in enumerate(records):
        where = f"record {i} for {path}"
        validate_record(record, where)
        key = (record.generator, record.module, record.clip)
        if key in seen:
            raise RecordsInvalid(f"{where}: duplicate record for module {record.module}, clip {record.clip!r}")
        seen.add(key)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    with tmp.open("w", encoding="utf-8") as fh:
        for record in records:
            fh.write(json.dumps(record.to_dict(), ensure_ascii=False) + "\n")
    tmp.replace(path)
    summary = summary_path(path)
    summary.write_text(json.dumps(summarise(records), indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return summary
