"""Tables in the papers' layouts, from results.json dicts (one per evaluator) and metric summaries.

Builders: ``table3`` (evaluators x sub-dimensions, grouped by category, Avg), ``table4`` (generators
x automatic metrics, from ``mtavg.metrics.run.summarize``), ``table5`` (PIA / TLA / RC beside
multi-answer strictness) and ``table6`` (modality ablation). Each returns a ``Table`` (see
``mtavg.report.table_model``) with ``to_markdown()``, ``to_csv()``, ``to_latex()`` and ``to_html()``;
``paper_tables`` picks the ones a set of runs supports; ``write_tables`` writes them as
``<key>.md/.csv/.tex``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mtavg.report.labels import MODALITY_LABELS, evaluator_labels, model_labels
from mtavg.report.table_model import Better, Cell, Row, Table, latex_escape
from mtavg.taxonomy import load_taxonomy

__all__ = [
    "MODALITY_LABELS", "TABLE4_COLUMNS", "Better", "Cell", "MetricColumn", "Row", "Table", "latex_escape",
    "paper_tables", "table3", "table3_markdown", "table3_rows", "table4", "table5", "table6", "table6_markdown",
    "temporal_markdown", "write_tables",
]

def _ci95(r: Mapping[str, Any], *path: str) -> tuple[float, float] | None:
    """An interval from results.json's ``ci95`` block (absent in old results: None)."""
    node: Any = r.get("ci95") or {}
    for key in path:
        node = node.get(key) if isinstance(node, Mapping) else None
    return (float(node[0]), float(node[1])) if isinstance(node, (list, tuple)) and len(node) == 2 else None


def _sub_cell(r: Mapping[str, Any], code: str) -> Cell:
    entry = r.get("sub_dimensions", {}).get(code) or {}
    ci = entry.get("ci95")
    return Cell(entry.get("score"), tuple(ci) if ci else None)


def _overall_cell(r: Mapping[str, Any]) -> Cell:
    ci = r.get("overall_ci95")
    return Cell(r.get("overall"), tuple(ci) if ci else _ci95(r, "overall"))


def table3(results: Sequence[Mapping[str, Any]]) -> Table:
    """Table 3: evaluators x the ten sub-dimensions grouped by category, and Avg; best per column in bold."""
    tax = load_taxonomy()
    codes = list(tax.sub_dimensions)
    rows = [Row(label, [*(_sub_cell(r, c) for c in codes), _overall_cell(r)])
            for r, label in zip(results, evaluator_labels(results), strict=True)]
    groups = [(c.name, len(c.sub_dimensions)) for c in tax.categories.values()] + [("", 1)]
    names = "; ".join(f"{s.code} {s.name}" for s in tax.sub_dimensions.values())
    return Table(
        title="Failure diagnosis: sub-dimension scores (%).",
        caption=f"Avg is the unweighted mean of the sub-dimensions present. Best per column in bold. {names}.",
        columns=[*codes, "Avg"], rows=rows, groups=groups, better=["max"] * (len(codes) + 1), key="table3",
    ).mark_best()


def table5(results: Sequence[Mapping[str, Any]]) -> Table:
    """Table 5 (PIA / TLA / RC) beside the multi-answer strictness that the coverage score hides."""
    rows = []
    for r, label in zip(results, evaluator_labels(results), strict=True):
        t, ms = r.get("temporal") or {}, r.get("multi_strict") or {}
        multi = (r.get("formats") or {}).get("multi")
        n_inv, n = r.get("n_invalid", 0), r.get("n_items", 0)
        rows.append(Row(label, [
            Cell(t.get("PIA"), _ci95(r, "temporal", "PIA")), Cell(t.get("TLA"), _ci95(r, "temporal", "TLA")),
            Cell(t.get("RC")), Cell(multi, _ci95(r, "formats", "multi")),
            Cell(ms.get("jaccard"), _ci95(r, "multi_strict", "jaccard")),
            Cell(ms.get("exact"), _ci95(r, "multi_strict", "exact")),
            Cell(r.get("select_all_rate"), _ci95(r, "select_all_rate")),
            Cell(100.0 * n_inv / n if n else None, text=f"{n_inv}/{n}"),
        ]))
    return Table(
        title="Temporal localization and multi-answer strictness (%).",
        caption="PIA: primary issue accuracy; TLA: time-window coverage; RC: rationale consistency (judged, "
                "else –). Coverage |P∩G|/|G| rewards selecting every option: Jaccard and exact-set do not; "
                "select-all is the share of multi items answered with every option. Invalid: unparsed answers.",
        columns=["PIA", "TLA", "RC", "Coverage", "Jaccard", "Exact", "Select-all", "Invalid"], rows=rows,
        groups=[("Temporal", 3), ("Multi-answer", 4), ("", 1)],
        better=["max", "max", "max", "max", "max", "max", None, None], key="table5",
    ).mark_best()


def table6(results: Sequence[Mapping[str, Any]], name: str | None = None) -> Table:
    """Table 6 (modality ablation): Full / w/o Audio / w/o Vision / Text-only x categories, and Avg.

    ``name`` titles the table (default: the models' labels among ``results``)."""
    tax = load_taxonomy()
    order = list(MODALITY_LABELS)
    ranked = sorted(results, key=lambda r: (order.index(r["modality"]) if r["modality"] in order else len(order)))
    names = dict(zip(map(id, results), model_labels(results), strict=True))
    models = list(dict.fromkeys(names[id(r)] for r in ranked))
    rows = []
    for r in ranked:
        setting = MODALITY_LABELS.get(r["modality"], r["modality"])
        cats = r.get("categories") or {}
        rows.append(Row(setting if len(models) == 1 else f"{names[id(r)]} · {setting}",
                        [*(Cell(cats.get(c), _ci95(r, "categories", c)) for c in tax.categories),
                         _overall_cell(r)]))
    return Table(
        title=f"Modality ablation for {name or ', '.join(models) or '?'} (%).",
        caption="Category scores are means of their sub-dimensions; Avg is the sub-dimension mean.",
        columns=[c.name for c in tax.categories.values()] + ["Avg"], rows=rows, row_header="Setting",
        better=["max"] * (len(tax.categories) + 1), key="table6",
    ).mark_best()


@dataclass(frozen=True)
class MetricColumn:
    metric: str  # name in mtavg.metrics
    key: str  # field of the metric's aggregate
    label: str
    group: str
    better: Better
    digits: int = 2


# Table 4's automatic metrics, in display order; a column appears when some generator has a value.
TABLE4_COLUMNS: tuple[MetricColumn, ...] = (
    MetricColumn("av_offset", "median_abs_offset_s", "|A–V offset| (s)", "Synchrony", "min", 3),
    MetricColumn("synchformer", "desync", "DeSync (s)", "Synchrony", "min", 3),
    MetricColumn("syncnet", "lse_c", "LSE-C", "Synchrony", "max"),
    MetricColumn("syncnet", "lse_d", "LSE-D", "Synchrony", "min"),
    MetricColumn("lips", "lip_sync_corr", "Lip corr.", "Synchrony", "max", 3),
    MetricColumn("imagebind", "ib_av", "IB-AV", "Synchrony", "max", 3),
    MetricColumn("dnsmos", "ovrl", "DNSMOS OVRL", "Audio", "max"),
    MetricColumn("audiobox", "PQ", "Aesthetics PQ", "Audio", "max"),
    MetricColumn("speech_background", "speech_to_background_db", "Speech/BG (dB)", "Audio", "max", 1),
    MetricColumn("overlap", "overlap_ratio", "Overlap ratio", "Audio", None, 3),
    MetricColumn("loudness", "integrated_lufs", "LUFS", "Audio", None, 1),
    MetricColumn("frames", "dup_ratio", "Dup. frames", "Video", "min", 3),
    MetricColumn("frames", "flicker", "Flicker", "Video", "min"),
    MetricColumn("frames", "sharpness_mean", "Sharpness", "Video", "max", 0),
    MetricColumn("shots", "shots_per_minute", "Shots/min", "Video", None, 1),
    MetricColumn("shots", "n_jump_cuts", "Jump cuts", "Video", "min"),
    MetricColumn("frames", "n_color_jumps", "Colour jumps", "Video", "min"),
    MetricColumn("imagebind", "ib_tv", "IB-TV", "Text", "max", 3),
    MetricColumn("imagebind", "ib_ta", "IB-TA", "Text", "max", 3),
    MetricColumn("clap", "clap_ta", "CLAP", "Text", "max", 3),
)


def table4(metrics_summary: Mapping[str, Mapping[str, Any]],
           columns: Sequence[MetricColumn] = TABLE4_COLUMNS) -> Table:
    """Table 4: generators x automatic metrics (clip means) from ``mtavg.metrics.run.summarize``.

    Best per column follows each metric's direction; the "all" row is shown last and not ranked.
    """
    def value(gen: str, col: MetricColumn) -> float | None:
        v = ((metrics_summary[gen].get("metrics") or {}).get(col.metric) or {}).get(col.key)
        return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None

    gens = sorted(g for g in metrics_summary if g != "all") + (["all"] if "all" in metrics_summary else [])
    shown = [c for c in columns if any(value(g, c) is not None for g in gens)]
    rows = [Row("All clips" if g == "all" else g,
                [Cell(float(metrics_summary[g]["n_clips"]), text=str(metrics_summary[g]["n_clips"])),
                 *(Cell(value(g, c)) for c in shown)], ranked=g != "all" or len(gens) == 1) for g in gens]
    groups: list[tuple[str, int]] = [("", 1)]
    for c in shown:
        if groups[-1][0] == c.group:
            groups[-1] = (c.group, groups[-1][1] + 1)
        else:
            groups.append((c.group, 1))
    return Table(
        title="Automatic metrics per generator (means over clips).",
        caption="Best per column in bold, by each metric's direction; unranked columns are descriptive. "
                "|A–V offset| is the median over clips with a confident estimate.",
        columns=["Clips", *(c.label for c in shown)], rows=rows, row_header="Generator", groups=groups,
        better=[None, *(c.better for c in shown)], digits=[0, *(c.digits for c in shown)], key="table4",
    ).mark_best()


def paper_tables(results: Sequence[Mapping[str, Any]],
                 metrics_summary: Mapping[str, Mapping[str, Any]] | None = None) -> list[Table]:
    """Table 3 and 5 (full-input runs; all runs when none is full), Table 6 for each model run under
    several modalities (``table6_<model>`` when there are several), Table 4 when a metrics summary is given."""
    full = [r for r in results if r.get("modality", "full") == "full"] or list(results)
    tables = [table3(full), table5(full)] if results else []
    by_model: dict[str, list[Mapping[str, Any]]] = {}
    for r, name in zip(results, model_labels(results), strict=True):  # two seeds of a model: two ablations
        by_model.setdefault(name, []).append(r)
    ablated = {m: rs for m, rs in by_model.items() if len({r.get("modality") for r in rs}) > 1}
    for model, rs in ablated.items():
        t = table6(rs, name=model)
        if len(ablated) > 1:
            t.key = "table6_" + re.sub(r"[^A-Za-z0-9._-]+", "_", model)
        tables.append(t)
    if metrics_summary:
        tables.append(table4(metrics_summary))
    return tables


def write_tables(results: Sequence[Mapping[str, Any]], out_dir: Path, *,
                 metrics_summary: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, dict[str, Path]]:
    """``paper_tables`` as ``<out_dir>/<key>.md/.csv/.tex``. Returns {table key: {format: path}}."""
    tables = paper_tables(results, metrics_summary)
    out_dir.mkdir(parents=True, exist_ok=True)
    written: dict[str, dict[str, Path]] = {}
    for t in tables:
        paths = {"md": out_dir / f"{t.key}.md", "csv": out_dir / f"{t.key}.csv", "tex": out_dir / f"{t.key}.tex"}
        paths["md"].write_text(t.to_markdown() + "\n", encoding="utf-8")
        paths["csv"].write_text(t.to_csv(), encoding="utf-8")
        paths["tex"].write_text(t.to_latex() + "\n", encoding="utf-8")
        written[t.key] = paths
    return written


# ------------------------------------------------------------ the functions cli.py and report use
def table3_rows(results: Sequence[Mapping[str, Any]]) -> tuple[list[str], list[list[float | None]]]:
    """Header and numeric rows: evaluator, the ten sub-dimensions in taxonomy order, Avg."""
    t = table3(results)
    return [t.row_header, *t.columns], [[c.value for c in row.cells] for row in t.rows]


def table3_markdown(results: Sequence[Mapping[str, Any]]) -> str:
    """Table 3 as Markdown: grouped header, best per column in bold."""
    return table3(results).to_markdown()


def temporal_markdown(results: Sequence[Mapping[str, Any]]) -> str:
    """Table 5 as Markdown (PIA / TLA / RC and multi-answer strictness)."""
    return table5(results).to_markdown()


def table6_markdown(results: Sequence[Mapping[str, Any]]) -> str:
    """Table 6 (modality ablation) as Markdown."""
    return table6(results).to_markdown()
