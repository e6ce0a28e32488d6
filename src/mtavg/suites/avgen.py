"""The AVGen-Bench total: normalise eleven module values to 0–100, weight them, report coverage.

The published scheme (AVGen-Bench ``aggregate_score.py``, "Scheme 2"):

- normalisation, each clamped to [0, 100]: Vis = 100·q (Q-Align, q ∈ [0, 1]); Aud = 10·PQ (audiobox);
  AV = 100·(1 − offset_s / 0.5); Lip = 100·(1 − offset_frames / 8); LoPhy = 20·rating (VideoPhy-2, 1–5);
  Text, Face, Music, Speech, HiPhy, Holistic are already 0–100.
- weights: the basic group (Vis, Aud) and the cross-modal group (AV, Lip) get 0.2 each, split equally
  (0.1 per module); the fine-grained group (the other seven) gets 0.6, i.e. 0.6/7 per module.
- a module is normalised from its mean raw value (the mean of the raw values, then the formula).

Two aggregation modes:

- default (the published behaviour, made visible): a failed clip is left out of its module's mean but
  counted (``item_coverage`` = ok / (ok + failed)); a module with no score is dropped and the weights
  are re-normalised over the modules present; ``coverage`` is the weight those modules carry.
- ``strict``: a failed clip scores 0 points, so a module's score is its default score × item coverage;
  a module with no ok record makes the total undefined (``None``) and is named in ``missing``.

``not_applicable`` records (nothing to score on that clip) count in neither mode.
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mtavg.suites.avgen_records import EXTRA_MODULES, MODULES, ModuleRecord

AV_THRESHOLD_S = 0.5
LIP_THRESHOLD_FRAMES = 8.0


def _clamp(x: float) -> float:
    return max(0.0, min(100.0, x))


# raw module value (module mean) -> points on the 0–100 scale, clamped.
NORMALISE: dict[str, Callable[[float], float]] = {
    "Vis": lambda q: _clamp(100.0 * q),
    "Aud": lambda pq: _clamp(10.0 * pq),
    "AV": lambda offset_s: _clamp(100.0 * (1.0 - offset_s / AV_THRESHOLD_S)),
    "Lip": lambda offset_frames: _clamp(100.0 * (1.0 - offset_frames / LIP_THRESHOLD_FRAMES)),
    "Text": _clamp,
    "Face": _clamp,
    "Music": _clamp,
    "Speech": _clamp,
    "LoPhy": lambda rating: _clamp(20.0 * rating),
    "HiPhy": _clamp,
    "Holistic": _clamp,
}

NORMALISE_FORMULA: dict[str, str] = {
    "Vis": "100·q", "Aud": "10·PQ", "AV": f"100·(1 − offset_s/{AV_THRESHOLD_S})",
    "Lip": f"100·(1 − offset_frames/{LIP_THRESHOLD_FRAMES:g})", "LoPhy": "20·rating",
    **{m: "as is (0–100)" for m in ("Text", "Face", "Music", "Speech", "HiPhy", "Holistic")},
}

GROUPS: dict[str, tuple[str, ...]] = {
    "basic": ("Vis", "Aud"),
    "cross_modal": ("AV", "Lip"),
    "fine_grained": ("Text", "Face", "Music", "Speech", "LoPhy", "HiPhy", "Holistic"),
}
GROUP_WEIGHTS: dict[str, float] = {"basic": 0.2, "cross_modal": 0.2, "fine_grained": 0.6}
WEIGHTS: dict[str, float] = {m: GROUP_WEIGHTS[g] / len(ms) for g, ms in GROUPS.items() for m in ms}

# Column names accepted in --table CSVs, mapped to module names (the README spells some differently).
COLUMN_ALIASES: dict[str, str] = {
    **{m.lower(): m for m in MODULES},
    "aud (pq)": "Aud", "aud(pq)": "Aud", "pq": "Aud", "lo-phy": "LoPhy", "lo_phy": "LoPhy",
    "hi-phy": "HiPhy", "hi_phy": "HiPhy",
}


class AggregationError(ValueError):
    """Inputs to the total are inconsistent (unknown module, a bad table cell); the message names where."""


@dataclass(frozen=True)
class ModuleScore:
    """One module of one generator: its mean raw value, points, and how many clips it rests on."""

    module: str
    raw_mean: float | None
    score: float | None
    n_ok: int | None = None
    n_failed: int | None = None
    n_not_applicable: int | None = None

    @property
    def item_coverage(self) -> float | None:
        if self.n_ok is None or self.n_failed is None or self.n_ok + self.n_failed == 0:
            return None
        return self.n_ok / (self.n_ok + self.n_failed)


@dataclass(frozen=True)
class SuiteTotal:
    """A generator's AVGen-Bench result: module points, group means, the weighted total and its coverage."""

    generator: str
    modules: dict[str, ModuleScore]
    total: float | None
    coverage: float
    groups: dict[str, float | None]
    missing: tuple[str, ...]
    strict: bool
    published_total: float | None = None
    failed_clips: dict[str, list[str]] = field(default_factory=dict)
    extra: dict[str, ModuleScore] = field(default_factory=dict)  # reported beside the total (Pitch)

    def to_dict(self) -> dict[str, Any]:
        """Flat JSON view: ``{module: points, "total", "coverage", group means, details}``."""
        out: dict[str, Any] = {m: self.modules[m].score for m in MODULES}
        out.update(total=self.total, coverage=self.coverage, **self.groups, missing=list(self.missing),
                   strict=self.strict)
        out["raw"] = {m: self.modules[m].raw_mean for m in MODULES}
        out["item_coverage"] = {m: self.modules[m].item_coverage for m in MODULES}
        out["counts"] = {m: {"ok": s.n_ok, "failed": s.n_failed, "not_applicable": s.n_not_applicable}
                         for m, s in self.modules.items() if s.n_ok is not None}
        if self.failed_clips:
            out["failed_clips"] = self.failed_clips
        if self.published_total is not None:
            out["published_total"] = self.published_total
        for name, score in self.extra.items():
            out[name] = {"score": score.score, "n_ok": score.n_ok, "n_failed": score.n_failed,
                         "n_not_applicable": score.n_not_applicable, "in_total": False}
        return out


def combine(generator: str, modules: Mapping[str, ModuleScore], *, strict: bool = False,
            published_total: float | None = None,
            failed_clips: Mapping[str, list[str]] | None = None) -> SuiteTotal:
    """Weighted total over module points: re-normalised over present modules, or undefined when strict.

    A group score is the mean of its present modules (strict: undefined unless all are present).
    """
    unknown = sorted(set(modules) - set(MODULES))
    if unknown:
        raise AggregationError(f"{generator}: unknown module(s) {', '.join(unknown)}")
    full = {m: modules.get(m) or ModuleScore(m, None, None) for m in MODULES}
    missing = tuple(m for m in MODULES if full[m].score is None)
    present_weight = sum(WEIGHTS[m] for m in MODULES if full[m].score is not None)
    if (strict and missing) or present_weight == 0:
        total = None
    else:
        total = sum(WEIGHTS[m] * full[m].score for m in MODULES if full[m].score is not None) / present_weight
    groups: dict[str, float | None] = {}
    for name, members in GROUPS.items():
        scores = [full[m].score for m in members if full[m].score is not None]
        complete = len(scores) == len(members)
        groups[name] = sum(scores) / len(scores) if scores and (complete or not strict) else None
    return SuiteTotal(generator=generator, modules=full, total=total, coverage=round(present_weight, 12),
                      groups=groups, missing=missing, strict=strict, published_total=published_total,
                      failed_clips=dict(failed_clips or {}))


def module_score(module: str, records: Iterable[ModuleRecord], *, strict: bool = False) -> ModuleScore:
    """Points for one module from its per-clip records (all of one generator)."""
    records = list(records)
    ok = [r.raw for r in records if r.status == "ok" and r.raw is not None]
    n_failed = sum(r.status == "failed" for r in records)
    n_na = sum(r.status == "not_applicable" for r in records)
    if not ok:
        return ModuleScore(module, None, None, 0, n_failed, n_na)
    raw_mean = sum(ok) / len(ok)
    points = NORMALISE.get(module, _clamp)(raw_mean)  # extra modules (Pitch) are 0-100 already
    if strict:
        # Failed clips score 0 points: the module's mean over ok + failed clips.
        points *= len(ok) / (len(ok) + n_failed)
    return ModuleScore(module, raw_mean, points, len(ok), n_failed, n_na)


def aggregate(records: Iterable[ModuleRecord], *, strict: bool = False,
              pitch_as_music: bool = False) -> dict[str, SuiteTotal]:
    """Per-generator totals from module records (pure: no I/O); generators in sorted order.

    ``Pitch`` records are scored on their own (``SuiteTotal.extra``) and stay out of the total, unless
    ``pitch_as_music`` puts them in the Music slot (an error when Music records exist as well).
    """
    by_generator: dict[str, dict[str, list[ModuleRecord]]] = {}
    for r in records:
        if r.module not in NORMALISE and r.module not in EXTRA_MODULES:
            raise AggregationError(f"clip {r.clip!r}: unknown module {r.module!r}")
        module = "Music" if pitch_as_music and r.module == "Pitch" else r.module
        by_generator.setdefault(r.generator or "default", {}).setdefault(module, []).append(r)
    out: dict[str, SuiteTotal] = {}
    for generator in sorted(by_generator):
        per_module = by_generator[generator]
        music = {r.module for r in per_module.get("Music", [])}
        if pitch_as_music and len(music) > 1:
            raise AggregationError(f"{generator}: both Music and Pitch records; --pitch-as-music needs one of them")
        extra = {m: module_score(m, per_module.pop(m), strict=strict) for m in EXTRA_MODULES if m in per_module}
        scores = {m: module_score(m, rs, strict=strict) for m, rs in per_module.items()}
        failed = {m: [r.clip for r in rs if r.status == "failed"] for m, rs in per_module.items()}
        total = combine(generator, scores, strict=strict, failed_clips={m: c for m, c in failed.items() if c})
        out[generator] = SuiteTotal(**{**total.__dict__, "extra": extra})
    return out


@dataclass(frozen=True)
class TableRow:
    """One row of a per-module table: a model's eleven raw module values (None = not reported)."""

    model: str
    raw: dict[str, float | None]
    published_total: float | None = None
    where: str = ""


def aggregate_table(rows: Iterable[TableRow], *, strict: bool = False) -> dict[str, SuiteTotal]:
    """Totals from module-level raw values (e.g. the README's table), in row order.

    A table holds no per-clip failures, so ``strict`` only changes what a missing module does.
    """
    out: dict[str, SuiteTotal] = {}
    for row in rows:
        if row.model in out:
            raise AggregationError(f"{row.where or row.model}: model {row.model!r} appears twice")
        modules = {m: ModuleScore(m, v, None if v is None else NORMALISE[m](v)) for m, v in row.raw.items()}
        out[row.model] = combine(row.model, modules, strict=strict, published_total=row.published_total)
    return out


def _cell(text: str, where: str) -> float | None:
    text = text.strip().strip("*_")  # the README marks best/second-best with ** and *
    if text in ("", "-", "–", "N/A", "n/a"):
        return None
    try:
        value = float(text)
    except ValueError as exc:
        raise AggregationError(f"{where}: {text!r} is not a number") from exc
    if not math.isfinite(value):
        raise AggregationError(f"{where}: {text!r} is not a finite number")
    return value


_MD_RULE = re.compile(r"^\s*\|?\s*:?-{3,}:?\s*(\|\s*:?-{3,}:?\s*)*\|?\s*$")


def _markdown_row(line: str) -> str:
    cells = [c.strip() for c in line.strip().strip("|").split("|")]
    out = io.StringIO()
    csv.writer(out).writerow(cells)
    return out.getvalue().rstrip("\r\n")


def parse_table(text: str, source: str = "<table>") -> list[TableRow]:
    """Rows of a CSV with ``model`` + the eleven module columns (+ optional ``total``); ``#`` lines are notes.

    Values are raw module units, as in the AVGen-Bench README (its table reproduces its totals only when
    read as raw). Other columns (e.g. ``Components``) are ignored; an empty cell is a module not run.
    A Markdown pipe table (``| Model | Vis | ... |``, as pasted from a README) is read the same way.
    """
    lines = [(i, line) for i, line in enumerate(text.splitlines(), 1) if line.strip() and not line.startswith("#")]
    if not lines:
        raise AggregationError(f"{source}: empty table")
    if lines[0][1].lstrip().startswith("|"):
        lines = [(i, _markdown_row(line)) for i, line in lines if not _MD_RULE.match(line)]
    reader = csv.reader(io.StringIO("\n".join(line for _, line in lines)))
    header = [h.strip() for h in next(reader)]
    columns: dict[int, str] = {}
    model_col = total_col = None
    for j, name in enumerate(header):
        key = name.lower()
        if key in ("model", "generator"):
            model_col = j
        elif key in ("total", "published_total"):
            total_col = j
        elif key in COLUMN_ALIASES:
            if COLUMN_ALIASES[key] in columns.values():
                raise AggregationError(f"{source}: two columns for module {COLUMN_ALIASES[key]} in header {header}")
            columns[j] = COLUMN_ALIASES[key]
    header_line = lines[0][0]
    if model_col is None:
        raise AggregationError(f"{source}:{header_line}: no 'model' column in header {header}")
    absent = [m for m in MODULES if m not in columns.values()]
    if absent:
        raise AggregationError(f"{source}:{header_line}: missing module column(s) {', '.join(absent)} "
                               "(leave a cell empty for a module that was not run)")
    rows: list[TableRow] = []
    for (lineno, _), cells in zip(lines[1:], reader, strict=True):
        where = f"{source}:{lineno}"
        if len(cells) != len(header):
            raise AggregationError(f"{where}: {len(cells)} cells, header has {len(header)}")
        model = cells[model_col].strip()
        if not model:
            raise AggregationError(f"{where}: empty model name")
        raw = {m: _cell(cells[j], f"{where}: column {header[j]}") for j, m in columns.items()}
        total = _cell(cells[total_col], f"{where}: column {header[total_col]}") if total_col is not None else None
        rows.append(TableRow(model, raw, total, where))
    return rows


def read_table(path: str | Path) -> list[TableRow]:
    """:func:`parse_table` on a file."""
    path = Path(path)
    if not path.is_file():
        raise AggregationError(f"{path}: no such file")
    return parse_table(path.read_text(encoding="utf-8"), str(path))
