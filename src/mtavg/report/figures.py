"""Figures with matplotlib (Agg, no display): the papers' failure-analysis figures and per-evaluator charts.

Every figure function writes ``<stem>.png`` and ``<stem>.svg`` into ``out_dir`` and returns both paths
(except :func:`sub_dimension_bars`, PNG only, kept as ``write_report`` uses it). Figures are built with
the object API (``matplotlib.figure.Figure``), never pyplot, so no global backend or state is touched.
SVG text stays text (``svg.fonttype: none``): labels can be searched and checked.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib import rc_context
from matplotlib.figure import Figure

from mtavg.analysis.failures import (
    ALL,
    Cooccurrence,
    cooccurrence_correlation,
    error_count_distribution,
    failure_mode_rates,
    failure_rates,
    rates_matrix,
)
from mtavg.analysis.metrics_link import TOTAL, metric_failure_links
from mtavg.annotations import VideoAnnotation
from mtavg.report.labels import evaluator_labels, model_labels
from mtavg.taxonomy import load_taxonomy

CATEGORY_COLORS = {"acting": "#4C72B0", "atmosphere": "#55A868", "cinematography": "#C44E52"}
_DPI = 150


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "unnamed"


def _save(fig: Figure, out_dir: Path, stem: str) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / f"{stem}.png", out_dir / f"{stem}.svg"]
    with rc_context({"svg.fonttype": "none", "svg.hashsalt": "mtavg"}):  # text as text; stable ids
        fig.savefig(paths[0], dpi=_DPI)
        fig.savefig(paths[1])
    return paths


def _category_color(mode_or_code: str) -> str:
    tax = load_taxonomy()
    code = tax.failure_modes[mode_or_code].sub_dimension if mode_or_code in tax.failure_modes else mode_or_code
    return CATEGORY_COLORS.get(tax.category_of(code), "#555555")


# ---------------------------------------------------------------- per-evaluator scores
def sub_dimension_bars(results: Sequence[dict], out_dir: Path) -> list[Path]:
    """One PNG per sub-dimension: each evaluator's score with its clustered 95% CI as an error bar."""
    tax = load_taxonomy()
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for code, sub in tax.sub_dimensions.items():
        entries = [(name, r["sub_dimensions"][code])
                   for r, name in zip(results, evaluator_labels(results), strict=True)
                   if code in r.get("sub_dimensions", {})]
        if not entries:
            continue
        names = [n for n, _ in entries]
        scores = [e["score"] for _, e in entries]
        lo = [e["score"] - (e["ci95"] or [e["score"]] * 2)[0] for _, e in entries]
        hi = [(e["ci95"] or [e["score"]] * 2)[1] - e["score"] for _, e in entries]
        fig = Figure(figsize=(1.2 + 0.9 * len(entries), 3.2), dpi=110)
        ax = fig.subplots()
        ax.bar(range(len(entries)), scores, yerr=[lo, hi], capsize=4, color="#4C72B0")
        ax.set_xticks(range(len(entries)), names, rotation=20, ha="right", fontsize=8)
        ax.set_ylim(0, 100)
        ax.set_ylabel("score (%)")
        ax.set_title(f"{code} — {sub.name} (n={entries[0][1]['n']})", fontsize=10)
        fig.tight_layout()
        path = out_dir / f"{code}.png"
        fig.savefig(path)
        written.append(path)
    return written


def radar_charts(results: Sequence[dict], out_dir: Path) -> list[Path]:
    """One radar per evaluator (results.json dicts): its ten sub-dimension scores on a 0–100 scale.

    A sub-dimension without items is marked "n/a" and left off the polygon (not drawn as 0).
    """
    codes = list(load_taxonomy().sub_dimensions)
    angles = np.linspace(0, 2 * np.pi, len(codes), endpoint=False)
    written: list[Path] = []
    stems: set[str] = set()
    for r, name, label in zip(results, model_labels(results), evaluator_labels(results), strict=True):
        subs = r.get("sub_dimensions", {})
        scores = [subs[c]["score"] if c in subs and subs[c].get("score") is not None else math.nan for c in codes]
        present = [i for i, s in enumerate(scores) if math.isfinite(s)]
        fig = Figure(figsize=(4.6, 4.6))
        ax = fig.add_subplot(projection="polar")
        ax.set_theta_offset(np.pi / 2)
        ax.set_theta_direction(-1)
        if present:
            ring = [*present, present[0]]
            ax.plot(angles[ring], np.array(scores)[ring], color="#4C72B0", lw=1.6, marker="o", ms=3)
            ax.fill(angles[ring], np.array(scores)[ring], color="#4C72B0", alpha=0.2)
        labels = [c if math.isfinite(s) else f"{c}\n(n/a)" for c, s in zip(codes, scores, strict=True)]
        ax.set_xticks(angles, labels, fontsize=9)
        for tick, code in zip(ax.get_xticklabels(), codes, strict=True):
            tick.set_color(_category_color(code))
        ax.set_ylim(0, 100)
        ax.set_yticks([25, 50, 75, 100], ["25", "50", "75", "100"], fontsize=7)
        overall = r.get("overall")
        head = label if r.get("label") else f"{name} ({r.get('modality', 'full')})"
        ax.set_title(head + (f"\noverall {overall:.1f}" if isinstance(overall, (int, float)) else ""), fontsize=10)
        fig.tight_layout()
        stem = base = f"radar_{_safe(name)}_{_safe(str(r.get('modality', 'full')))}"
        for n in range(2, len(results) + 2):  # runs with equal labels must not overwrite each other's radar
            if stem not in stems:
                break
            stem = f"{base}_{n}"
        stems.add(stem)
        written += _save(fig, out_dir, stem)
    return written


# ---------------------------------------------------------------- failure analysis (from annotations)
def failure_heatmap(rates: dict[str, dict[str, float]], out_dir: Path, *, average: bool = True,
                    stem: str = "failure_heatmap") -> list[Path]:
    """Fig. 4: generators x 10 sub-dimensions, failure rate (%) in each cell, plus an "Average" row."""
    rows, cols, values = rates_matrix(rates, average=average)
    tax = load_taxonomy()
    fig = Figure(figsize=(1.8 + 0.75 * len(cols), 1.3 + 0.42 * len(rows)))
    ax = fig.subplots()
    vmax = max(float(values.max()), 1e-9)
    image = ax.imshow(values, cmap="Reds", vmin=0, vmax=vmax, aspect="auto")
    for (i, j), v in np.ndenumerate(values):
        ax.text(j, i, f"{v:.1f}", ha="center", va="center", fontsize=8, color="white" if v > 0.6 * vmax else "black",
                gid=f"cell-{i}-{cols[j]}")  # SVG id (row index, code): each value can be checked
    ax.set_xticks(range(len(cols)), cols, fontsize=9)
    for tick, code in zip(ax.get_xticklabels(), cols, strict=True):
        tick.set_color(_category_color(code))
    ax.set_yticks(range(len(rows)), rows, fontsize=9)
    if average:
        ax.axhline(len(rows) - 1.5, color="black", lw=1.2)
    bounds = np.cumsum([len(c.sub_dimensions) for c in tax.categories.values()])[:-1]
    for b in bounds:
        ax.axvline(b - 0.5, color="black", lw=0.8)
    top = ax.secondary_xaxis("top")
    starts = [0, *bounds]
    top.set_xticks([s + (len(c.sub_dimensions) - 1) / 2 for s, c in zip(starts, tax.categories.values(), strict=True)],
                   [c.name for c in tax.categories.values()], fontsize=9)
    top.tick_params(length=0)
    fig.colorbar(image, ax=ax, label="failure segments per 100 videos", fraction=0.04, pad=0.02)
    fig.tight_layout()
    return _save(fig, out_dir, stem)


def failure_mode_bars(mode_rates: dict[str, dict[str, float]], out_dir: Path, *, key: str = ALL,
                      stem: str = "failure_modes") -> list[Path]:
    """Fig. 11: rate (%) of each of the 45 failure modes (horizontal bars, coloured by category)."""
    if key not in mode_rates:
        raise KeyError(f"failure_mode_bars: no rates for {key!r}; have {', '.join(mode_rates)}")
    tax = load_taxonomy()
    slugs = list(mode_rates[key])
    values = [mode_rates[key][s] for s in slugs]
    labels = [f"{tax.failure_modes[s].name} ({tax.failure_modes[s].sub_dimension})" for s in slugs]
    fig = Figure(figsize=(7.5, 1.0 + 0.2 * len(slugs)))
    ax = fig.subplots()
    y = np.arange(len(slugs))
    ax.barh(y, values, color=[_category_color(s) for s in slugs])
    ax.set_yticks(y, labels, fontsize=7)
    ax.invert_yaxis()  # taxonomy order top to bottom
    for yi, v in zip(y, values, strict=True):
        if v > 0:
            ax.text(v, yi, f" {v:.1f}", va="center", fontsize=6)
    ax.set_xlabel("failure segments per 100 videos")
    ax.set_xlim(0, max(max(values, default=0.0) * 1.15, 1.0))
    ax.set_title("Failure modes" + ("" if key == ALL else f" — {key}"), fontsize=10)
    handles = [ax.bar(0, 0, color=c, label=tax.categories[cat].name) for cat, c in CATEGORY_COLORS.items()]
    ax.legend(handles=handles, fontsize=7, loc="lower right")
    fig.tight_layout()
    return _save(fig, out_dir, stem)


def error_count_histograms(distribution: dict[str, dict[str, float]], out_dir: Path, *,
                           stem: str = "error_counts") -> list[Path]:
    """Fig. 12: share (%) of videos per number of failure segments, in total and per category."""
    tax = load_taxonomy()
    scopes = list(distribution)
    fig = Figure(figsize=(2.7 * len(scopes), 2.9))
    axes = np.atleast_1d(fig.subplots(1, len(scopes), sharey=True))
    for ax, scope in zip(axes, scopes, strict=True):
        bins = list(distribution[scope])
        shares = [distribution[scope][b] for b in bins]
        color = CATEGORY_COLORS.get(scope, "#666666")
        ax.bar(bins, shares, color=color)
        for b, s in zip(bins, shares, strict=True):
            ax.text(b, s, f"{s:.0f}", ha="center", va="bottom", fontsize=7)
        ax.set_title("All categories" if scope not in tax.categories else tax.categories[scope].name, fontsize=9)
        ax.set_xlabel("failure segments per video", fontsize=8)
    axes[0].set_ylabel("videos (%)")
    axes[0].set_ylim(0, 105)
    fig.tight_layout()
    return _save(fig, out_dir, stem)


def correlation_matrix(cooc: Cooccurrence, out_dir: Path, *, stem: str = "failure_correlation") -> list[Path]:
    """Fig. 14: failure-mode co-occurrence correlation, rows/columns in clustered order so blocks show."""
    if len(cooc.modes) < 2:
        raise ValueError(f"correlation_matrix: need >= 2 failure modes, got {len(cooc.modes)}")
    tax = load_taxonomy()
    modes, matrix = cooc.ordered()
    k = len(modes)
    size = 2.5 + 0.2 * k
    fig = Figure(figsize=(size + 1.2, size))
    ax = fig.subplots()
    image = ax.imshow(matrix, cmap="RdBu_r", vmin=-1, vmax=1)
    names = [tax.failure_modes[m].name for m in modes]
    font = 6 if k > 25 else 8
    ax.set_xticks(range(k), names, rotation=90, fontsize=font)
    ax.set_yticks(range(k), names, fontsize=font)
    for ticks in (ax.get_xticklabels(), ax.get_yticklabels()):
        for tick, m in zip(ticks, modes, strict=True):
            tick.set_color(_category_color(m))
    fig.colorbar(image, ax=ax, label="phi correlation", fraction=0.04, pad=0.02)
    ax.set_title(f"Failure co-occurrence ({cooc.n_videos} videos, clustered)", fontsize=10)
    fig.tight_layout()
    return _save(fig, out_dir, stem)


def metrics_vs_failure_scatter(metrics_summary: dict[str, dict[str, Any]], rates: dict[str, dict[str, float]],
                               out_dir: Path, *, target: str = TOTAL, fields: Sequence[str] | None = None,
                               max_panels: int = 12, stem: str = "metrics_vs_failure") -> list[Path]:
    """Table 4 style: per generator, a metric's aggregate (x) vs its failure rate (y), Spearman rho in titles.

    ``metrics_summary`` is :func:`mtavg.metrics.run.summarize`'s output. Panels: the ``max_panels``
    metric fields with the strongest |rho| (or exactly ``fields``). Writes nothing when no metric field is
    shared by two generators with failure rates.
    """
    links = metric_failure_links(metrics_summary, rates, target=target, fields=fields)[:max_panels]
    if not links:
        return []
    ncols = min(4, len(links))
    nrows = math.ceil(len(links) / ncols)
    fig = Figure(figsize=(3.1 * ncols, 2.8 * nrows))
    axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False)).ravel()
    for ax, link in zip(axes, links, strict=False):
        ax.scatter(link.metric_values, link.failure_rates, color="#4C72B0")
        for gen, x, y in zip(link.generators, link.metric_values, link.failure_rates, strict=True):
            ax.annotate(gen, (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
        rho = "n/a" if link.rho is None else f"{link.rho:+.2f}"
        ax.set_title(f"{link.metric}\nSpearman ρ = {rho} (n={link.n})", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.set_ylabel(f"failure rate, {target} (%)", fontsize=7)
    for ax in axes[len(links):]:
        ax.set_visible(False)
    fig.tight_layout()
    return _save(fig, out_dir, stem)


# ---------------------------------------------------------------- everything the inputs allow
def write_figures(results: Sequence[dict], out_dir: Path, *, annotations: Sequence[VideoAnnotation] | None = None,
                  metrics_summary: dict[str, dict[str, Any]] | None = None, target: str = TOTAL) -> list[Path]:
    """Radar charts per evaluator; with annotations also Figs. 4, 11, 12, 14; with metrics too, the scatter.

    ``sub_dimension_bars`` is not included (``write_report`` writes it).
    """
    out_dir = Path(out_dir)
    written = radar_charts(results, out_dir) if results else []
    if not annotations:
        return written
    rates = failure_rates(annotations)
    written += failure_heatmap(rates, out_dir)
    written += failure_mode_bars(failure_mode_rates(annotations), out_dir)
    written += error_count_histograms(error_count_distribution(annotations), out_dir)
    cooc = cooccurrence_correlation(annotations)
    if len(cooc.modes) >= 2:
        written += correlation_matrix(cooc, out_dir)
    if metrics_summary:
        written += metrics_vs_failure_scatter(metrics_summary, rates, out_dir, target=target)
    return written
