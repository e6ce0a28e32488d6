"""Human alignment of AVBench-style scores: do the P(Yes)/(P(Yes)+P(No)) scores track people?

An automatic score is only worth reporting if it agrees with human judgement. This module pairs the
rows of ``scores.jsonl`` (``mtavg avbench score``) with human ratings, either per clip (``clip_id`` +
``rating``) or per model (``model`` + ``win_ratio``), and reports Pearson, Spearman and Kendall (tau-b)
correlations with scipy's point estimates and p-values plus percentile-bootstrap CIs over pairs.

Pairing rule, the same in both modes: one pair per human rating and group. The automatic side of a
pair is the mean of the score rows that resolve to that rating (a score row resolves to the human row
with its key and dimension, else to the one with its key and no dimension). Per clip that is usually
one row; per model it is the mean over the model's clips. Failed calls (null score) are counted and
listed per group, never dropped silently; keys seen on one side only are listed under ``unmatched``.
Rows from :func:`load_rows` carry ``_source``/``_line`` so every error names ``file:line``.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

HUMAN_FIELDS = ("rating", "mos", "score", "win_ratio", "human")
COEFFICIENTS = ("pearson", "spearman", "kendall")
SOURCE, LINE = "_source", "_line"
_WS = re.compile(r"[ \t\n\r]*")


class AlignmentError(ValueError):
    """Bad alignment input; the message names file:line (and the column) where known."""


# ---------------------------------------------------------------- loading
def load_rows(path: Path) -> list[dict]:
    """Rows of a ``.csv``, ``.jsonl`` or ``.json`` (a list of objects), tagged with ``_source``/``_line``."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".jsonl", ".json"):
        raise AlignmentError(f"{path}: unsupported file type {suffix or '(none)'!r}; use .csv, .jsonl, .json")
    try:
        text = path.read_text(encoding="utf-8-sig")  # -sig: spreadsheets often write a BOM
    except UnicodeDecodeError as exc:
        raise AlignmentError(f"{path}: not UTF-8 text ({exc.reason})") from exc
    except OSError as exc:
        raise AlignmentError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    rows = {".csv": _csv_rows, ".jsonl": _jsonl_rows, ".json": _json_rows}[suffix](text, path)
    for row, line in rows:
        row[SOURCE], row[LINE] = str(path), line
    return [row for row, _ in rows]


def _csv_rows(text: str, path: Path) -> list[tuple[dict, int]]:
    reader = csv.DictReader(io.StringIO(text))
    out: list[tuple[dict, int]] = []
    try:
        if reader.fieldnames is None:
            return out
        names = [name.strip() for name in reader.fieldnames]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise AlignmentError(f"{path}:1: duplicate column(s) {sorted(dup)}")
        reader.fieldnames = names
        for row in reader:
            line = reader.line_num  # line the row ends on: exact for one-line rows, blank lines skipped
            if None in row:
                raise AlignmentError(f"{path}:{line}: more values than the {len(names)} header columns")
            out.append((row, line))
    except csv.Error as exc:
        raise AlignmentError(f"{path}:{reader.line_num}: malformed CSV ({exc})") from exc
    return out


def _jsonl_rows(text: str, path: Path) -> list[tuple[dict, int]]:
    out: list[tuple[dict, int]] = []
    for line_no, line in enumerate(text.split("\n"), 1):  # not splitlines(): U+2028 is valid inside JSON
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise AlignmentError(f"{path}:{line_no}: invalid JSON ({exc.msg}, column {exc.colno})") from exc
        if not isinstance(row, dict):
            raise AlignmentError(f"{path}:{line_no}: expected a JSON object, got {type(row).__name__}")
        out.append((row, line_no))
    return out


def _json_rows(text: str, path: Path) -> list[tuple[dict, int]]:
    try:
        json.loads(text)  # validate the whole document first: its error carries the line
    except json.JSONDecodeError as exc:
        raise AlignmentError(f"{path}:{exc.lineno}: invalid JSON ({exc.msg}, column {exc.colno})") from exc
    decoder, out = json.JSONDecoder(), []
    pos = _WS.match(text, 0).end()
    if text[pos] != "[":
        raise AlignmentError(f"{path}:{text.count(chr(10), 0, pos) + 1}: expected a JSON list of row objects")
    pos = _WS.match(text, pos + 1).end()
    while text[pos] != "]":  # walk the elements to learn the line each one starts on
        row, end = decoder.raw_decode(text, pos)
        line = text.count("\n", 0, pos) + 1
        if not isinstance(row, dict):
            raise AlignmentError(f"{path}:{line}: expected a JSON object, got {type(row).__name__}")
        out.append((row, line))
        pos = _WS.match(text, end).end()
        if text[pos] == ",":
            pos = _WS.match(text, pos + 1).end()
    return out


def _where(row: dict, fallback: str) -> str:
    return f"{row[SOURCE]}:{row[LINE]}" if row.get(SOURCE) and row.get(LINE) else fallback


def _number(value: Any, where: str, column: str, *, missing_ok: bool = False) -> float | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        if missing_ok:
            return None
        raise AlignmentError(f"{where}: column {column!r} is empty")
    if isinstance(value, bool):  # JSON true/false are ints to Python, not ratings
        raise AlignmentError(f"{where}: column {column!r} is not a number: {value!r}")
    try:
        x = float(value)  # CSV cells are strings
    except (TypeError, ValueError):
        raise AlignmentError(f"{where}: column {column!r} is not a number: {value!r}") from None
    if not math.isfinite(x):
        raise AlignmentError(f"{where}: column {column!r} is not finite: {value!r}")
    return x


def _text(value: Any) -> str | None:
    return None if value is None or not str(value).strip() else str(value).strip()


# ---------------------------------------------------------------- correlation
def correlate(auto: Sequence[float], human: Sequence[float], *, n_boot: int = 1000, seed: int = 0) -> dict:
    """Pearson, Spearman and Kendall tau-b with scipy's r and p, and percentile-bootstrap 95% CIs.

    Undefined cases (fewer than 3 pairs, a constant side) give ``r``/``p``/``ci95`` null and a ``note``.
    """
    from scipy import stats

    a, h = np.asarray(auto, dtype=float), np.asarray(human, dtype=float)
    if a.ndim != 1 or a.shape != h.shape:
        raise AlignmentError(f"correlate needs two equal-length sequences, got {a.shape} and {h.shape}")
    if not (np.isfinite(a).all() and np.isfinite(h).all()):
        raise AlignmentError("correlate needs finite values")
    n = len(a)
    note = None
    if n < 3:
        note = f"fewer than 3 pairs ({n}): correlation undefined"
    elif np.ptp(a) == 0:
        note = "automatic scores are constant: correlation undefined"
    elif np.ptp(h) == 0:
        note = "human ratings are constant: correlation undefined"
    if note:
        null = {"r": None, "p": None, "ci95": None, "note": note}
        return {"n": n, "n_boot": 0, **{c: dict(null) for c in COEFFICIENTS}}
    points = {"pearson": stats.pearsonr(a, h), "spearman": stats.spearmanr(a, h),
              "kendall": stats.kendalltau(a, h)}  # tau-b, scipy's default
    boot = _bootstrap(a, h, n_boot, seed)
    out: dict[str, Any] = {"n": n, "n_boot": int(len(boot["pearson"]))}
    for name, res in points.items():
        r, p = float(res[0]), float(res[1])
        if not (math.isfinite(r) and math.isfinite(p)):
            out[name] = {"r": None, "p": None, "ci95": None, "note": "scipy returned NaN"}
            continue
        vals = boot[name]
        entry: dict[str, Any] = {"r": r, "p": p, "ci95": None}
        if len(vals) >= 2:
            entry["ci95"] = [float(x) for x in np.percentile(vals, [2.5, 97.5])]
        else:
            entry["note"] = f"{len(vals)} usable bootstrap resample(s): no CI"
        out[name] = entry
    return out


def _bootstrap(a: np.ndarray, h: np.ndarray, n_boot: int, seed: int) -> dict[str, np.ndarray]:
    """Coefficients on resampled pairs; resamples with a constant side (coefficient undefined) are skipped."""
    from scipy import stats

    n = len(a)
    rng = np.random.default_rng(seed)
    chunk = max(1, 2_000_000 // n)  # bound memory; a fixed function of n, so results stay seeded
    parts: dict[str, list[np.ndarray]] = {c: [] for c in COEFFICIENTS}
    for start in range(0, max(n_boot, 0), chunk):
        idx = rng.integers(0, n, size=(min(chunk, n_boot - start), n))
        x, y = a[idx], h[idx]
        ok = (np.ptp(x, axis=1) > 0) & (np.ptp(y, axis=1) > 0)
        x, y = x[ok], y[ok]
        parts["pearson"].append(_rowwise_pearson(x, y))
        parts["spearman"].append(_rowwise_pearson(stats.rankdata(x, axis=1), stats.rankdata(y, axis=1)))
        # tau-b per resample with scipy itself (O(n log n), handles the ties resampling creates)
        taus = [stats.kendalltau(xi, yi)[0] for xi, yi in zip(x, y, strict=True)]
        parts["kendall"].append(np.array(taus, dtype=float))
    return {c: np.concatenate(v) if v else np.empty(0) for c, v in parts.items()}


def _rowwise_pearson(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    xm, ym = x - x.mean(axis=1, keepdims=True), y - y.mean(axis=1, keepdims=True)
    r = (xm * ym).sum(axis=1) / np.sqrt((xm**2).sum(axis=1) * (ym**2).sum(axis=1))
    return np.clip(r, -1.0, 1.0)


# ---------------------------------------------------------------- alignment
def _columns(rows: list[dict]) -> set[str]:
    return set().union(*(r.keys() for r in rows)) - {SOURCE, LINE} if rows else set()


def _human_key(human: list[dict], key: str, src: str) -> tuple[str, str]:
    if key not in ("auto", "clip_id", "model"):
        raise AlignmentError(f"unknown key {key!r}; use auto, clip_id or model")
    cols = _columns(human)
    clip_col = next((c for c in ("clip_id", "clip") if c in cols), None)
    if key == "auto":
        if clip_col:
            return "clip_id", clip_col
        if "model" in cols:
            return "model", "model"
        raise AlignmentError(f"{src}: no clip_id, clip or model column (columns: {sorted(cols)})")
    if key == "clip_id" and clip_col:
        return "clip_id", clip_col
    if key == "model" and "model" in cols:
        return "model", "model"
    raise AlignmentError(f"{src}: key {key!r} asked for but there is no such column; columns: {sorted(cols)}")


def _human_ratings(human: list[dict], col: str, field: str) -> dict[tuple, tuple[float, str]]:
    """{(key, dimension or None): (rating, where)}; a repeat is an error naming both lines."""
    ratings: dict[tuple, tuple[float, str]] = {}
    for i, row in enumerate(human, 1):
        where = _where(row, f"human row {i}")
        k = _text(row.get(col))
        if k is None:
            raise AlignmentError(f"{where}: column {col!r} is empty")
        rk = (k, _text(row.get("dimension")))
        value = _number(row.get(field), where, field)
        if rk in ratings:
            dim = f" (dimension {rk[1]})" if rk[1] else ""
            raise AlignmentError(f"{where}: duplicate human rating for {col} {k!r}{dim}; "
                                 f"first at {ratings[rk][1]}")
        ratings[rk] = (value, where)
    return ratings


def align(
    scores: list[dict],
    human: list[dict],
    *,
    key: str = "auto",
    score_field: str = "score",
    human_field: str = "auto",
    by: str | None = "dimension",
    n_boot: int = 1000,
    seed: int = 0,
) -> dict:
    """Correlate automatic score rows with human rating rows, overall (``"all"``) and per dimension."""
    if by not in ("dimension", None):
        raise AlignmentError(f"unknown grouping {by!r}; use 'dimension' or None")
    if not human:
        raise AlignmentError("the human ratings hold no rows")
    if not scores:
        raise AlignmentError("the automatic scores hold no rows")
    h_src = human[0].get(SOURCE) or "human ratings"
    s_src = scores[0].get(SOURCE) or "automatic scores"
    mode, h_col = _human_key(human, key, h_src)
    cols = _columns(human)
    field = next((f for f in HUMAN_FIELDS if f in cols), None) if human_field == "auto" else human_field
    if field is None or field not in cols:
        want = "any of " + ", ".join(HUMAN_FIELDS) if human_field == "auto" else repr(human_field)
        raise AlignmentError(f"{h_src}: no human rating column ({want}); columns: {sorted(cols)}")
    if score_field not in _columns(scores):
        raise AlignmentError(f"{s_src}: no {score_field!r} column; columns: {sorted(_columns(scores))}")
    ratings = _human_ratings(human, h_col, field)

    cells: dict[str, dict[tuple, dict]] = {"all": {}}
    failed: dict[str, list[str]] = {"all": []}
    seen: dict[tuple, str] = {}
    used: set[tuple] = set()
    scores_only: set[str] = set()
    no_key: list[str] = []
    for i, row in enumerate(scores, 1):
        where = _where(row, f"score row {i}")
        clip = _text(row.get("clip_id", row.get("clip")))
        k = clip if mode == "clip_id" else _text(row.get("model")) or _text(row.get("generator"))
        dim = _text(row.get("dimension"))
        score = _number(row.get(score_field), where, score_field, missing_ok=True)  # null = failed call
        if k is None:
            if mode == "clip_id":
                raise AlignmentError(f"{where}: no clip_id")
            no_key.append(clip or where)  # per-model alignment cannot use a clip of unknown model
            continue
        ident = (k, clip, dim)  # per model many clips share k; the same clip twice is still an error
        if clip is not None and ident in seen:
            raise AlignmentError(f"{where}: duplicate score for clip_id {clip!r} (dimension {dim}); "
                                 f"first at {seen[ident]}")
        seen[ident] = where
        rk = (k, dim) if (k, dim) in ratings else (k, None) if (k, None) in ratings else None
        if rk is None:
            scores_only.add(k)
        else:
            used.add(rk)
        for g in ["all"] + ([dim] if by and dim else []):
            cells.setdefault(g, {})
            failed.setdefault(g, [])
            if score is None:
                failed[g].append(clip or k)
            if rk is not None:
                cell = cells[g].setdefault(rk, {"scores": [], "n_failed": 0})
                if score is None:
                    cell["n_failed"] += 1
                else:
                    cell["scores"].append(score)

    groups: dict[str, dict] = {}
    for g in ["all"] + sorted(x for x in cells if x != "all"):
        pairs, models = [], []
        for rk in sorted(cells[g], key=lambda t: (t[0], t[1] or "")):
            cell, value = cells[g][rk], ratings[rk][0]
            dim = rk[1] or (None if g == "all" else g)
            if cell["scores"]:
                auto = math.fsum(cell["scores"]) / len(cell["scores"])
                pairs.append([rk[0], auto, value, dim])
            if mode == "model":
                models.append({"model": rk[0], "dimension": dim, "n_clips": len(cell["scores"]),
                               "n_failed": cell["n_failed"], "auto": pairs[-1][1] if cell["scores"] else None,
                               "human": value})
        stats = correlate([p[1] for p in pairs], [p[2] for p in pairs], n_boot=n_boot, seed=seed)
        groups[g] = {**stats, "n_failed": len(failed[g]), "failed": failed[g], "pairs": pairs}
        if mode == "model":
            groups[g]["models"] = models
    human_only = sorted({rk[0] for rk in ratings if rk not in used})
    return {
        "key": mode, "human_key_column": h_col, "score_field": score_field, "human_field": field, "by": by,
        "n_boot": n_boot, "seed": seed, "groups": groups,
        "unmatched": {"scores_only": sorted(scores_only), "human_only": human_only,
                      "scores_without_key": no_key},
        "duplicates": {"human": "error", "scores": "error" if mode == "clip_id" else "mean per model"},
    }


# ---------------------------------------------------------------- figure
def _fmt(entry: dict) -> str:
    return "–" if entry.get("r") is None else f"{entry['r']:.3f}"


def scatter_png(result: dict, path: Path) -> list[Path]:
    """Automatic score vs human rating, one subplot per group, with a least-squares line; PNG and SVG."""
    from matplotlib import rc_context
    from matplotlib.figure import Figure  # object API: no pyplot, no global backend state

    groups = result["groups"]
    ncols = min(3, len(groups))
    nrows = math.ceil(len(groups) / ncols)
    fig = Figure(figsize=(4.4 * ncols, 3.9 * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax, (name, g) in zip(axes, groups.items(), strict=False):
        x = np.array([p[1] for p in g["pairs"]], dtype=float)
        y = np.array([p[2] for p in g["pairs"]], dtype=float)
        ax.scatter(x, y, s=18, alpha=0.7, color="#4C72B0")
        if len(x) >= 2 and np.ptp(x) > 0:
            slope, icpt = np.polyfit(x, y, 1)
            xs = np.array([x.min(), x.max()])
            ax.plot(xs, slope * xs + icpt, color="#C44E52", lw=1.5)
        ax.set_title(f"{name} (n={g['n']})\nr={_fmt(g['pearson'])}  ρ={_fmt(g['spearman'])}  "
                     f"τ={_fmt(g['kendall'])}", fontsize=9)
        ax.set_xlabel(f"automatic {result['score_field']}")
        ax.set_ylabel(f"human {result['human_field']}")
    for ax in axes[len(groups):]:
        ax.set_visible(False)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    paths = [path.with_suffix(".png"), path.with_suffix(".svg")]
    with rc_context({"svg.fonttype": "none", "svg.hashsalt": "mtavg"}):  # text stays text; stable ids
        fig.savefig(paths[0], dpi=150)
        fig.savefig(paths[1])
    return paths
