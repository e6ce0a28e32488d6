"""Tables in the paper's layouts, from results.json dicts (one per evaluator)."""

from __future__ import annotations

from collections.abc import Sequence

from mtavg.taxonomy import load_taxonomy


def _cell(v: float | None) -> str:
    return "–" if v is None else f"{v:.2f}"


def _bold_best(values: list[float | None]) -> list[str]:
    present = [v for v in values if v is not None]
    best = max(present) if present else None
    return [f"**{_cell(v)}**" if v is not None and v == best and len(present) > 1 else _cell(v) for v in values]


def table3_rows(results: Sequence[dict]) -> tuple[list[str], list[list[float | None]]]:
    """Header and numeric rows: evaluator, the ten sub-dimensions in taxonomy order, Avg."""
    codes = list(load_taxonomy().sub_dimensions)
    header = ["Evaluator", *codes, "Avg"]
    rows = [
        [*(r["sub_dimensions"].get(c, {}).get("score") for c in codes), r.get("overall")] for r in results
    ]
    return header, rows


def table3_markdown(results: Sequence[dict]) -> str:
    """Table 3: evaluators x sub-dimensions grouped by category, Avg; best per column in bold."""
    tax = load_taxonomy()
    header, rows = table3_rows(results)
    columns = list(zip(*rows, strict=True)) if rows else []
    bolded = [_bold_best(list(col)) for col in columns]
    groups = " · ".join(f"{c.name}: {' '.join(c.sub_dimensions)}" for c in tax.categories.values())
    lines = [
        f"Sub-dimension scores (%), {groups}. Avg is the mean of the sub-dimensions present.",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" + "---:|" * (len(header) - 1),
    ]
    for i, r in enumerate(results):
        lines.append("| " + " | ".join([r["model"], *(col[i] for col in bolded)]) + " |")
    return "\n".join(lines)


def temporal_markdown(results: Sequence[dict]) -> str:
    """Table 5 (PIA / TLA / RC) beside the multi-choice strictness that coverage hides."""
    lines = [
        "| Evaluator | PIA | TLA | RC | multi coverage | multi Jaccard | multi exact | select-all rate | invalid |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        t, ms = r.get("temporal", {}), r.get("multi_strict", {})
        lines.append(
            f"| {r['model']} | {_cell(t.get('PIA'))} | {_cell(t.get('TLA'))} | {_cell(t.get('RC'))} | "
            f"{_cell(r.get('formats', {}).get('multi'))} | {_cell(ms.get('jaccard'))} | {_cell(ms.get('exact'))} | "
            f"{_cell(r.get('select_all_rate'))} | {r.get('n_invalid', 0)}/{r.get('n_items', 0)} |"
        )
    return "\n".join(lines)


MODALITY_LABELS = {"full": "Full input", "no_audio": "w/o Audio", "no_vision": "w/o Vision", "text": "Text-only"}


def table6_markdown(results: Sequence[dict]) -> str:
    """Table 6 (modality ablation): one row per setting; Acting / Atmosphere / Cinematography / Avg."""
    tax = load_taxonomy()
    cats = list(tax.categories)
    header = ["Setting", *(tax.categories[c].name for c in cats), "Avg"]
    lines = [f"Modality ablation for {results[0]['model'] if results else '?'} (sub-dimension mean as Avg)", "",
             "| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1)]
    for r in results:
        cells = [_cell(r.get("categories", {}).get(c)) for c in cats] + [_cell(r.get("overall"))]
        lines.append(f"| {MODALITY_LABELS.get(r['modality'], r['modality'])} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
