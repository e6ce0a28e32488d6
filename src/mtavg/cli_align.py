"""`mtavg align`: how well do automatic (AVBench-style) scores agree with human ratings?

Thin wrapper over :mod:`mtavg.suites.alignment`: loads both files, prints a table of Pearson, Spearman
and Kendall correlations with bootstrap CIs per group, and optionally writes the JSON and a scatter plot.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from mtavg.cli import _fail, app, console

Opt = typer.Option


def _coef(entry: dict) -> str:
    if entry.get("r") is None:
        return "–"
    ci = entry.get("ci95")
    return f"{entry['r']:.3f}" + ("" if ci is None else f" [{ci[0]:.3f}, {ci[1]:.3f}]")


def _p(entry: dict) -> str:
    p = entry.get("p")
    return "–" if p is None else (f"{p:.4f}" if p >= 1e-4 else f"{p:.1e}")


def _ids(ids: list[str], k: int = 3) -> str:
    return "" if not ids else " (e.g. " + ", ".join(ids[:k]) + ("…" if len(ids) > k else "") + ")"


@app.command()
def align(
    scores: Annotated[Path, typer.Argument(help="automatic scores: scores.jsonl of `mtavg avbench score`, "
                                                "or .csv/.json rows")],
    human: Annotated[Path, typer.Argument(help="human ratings: per clip (clip_id + rating) or per model "
                                               "(model + win_ratio); .csv, .jsonl or .json")],
    key: Annotated[str, Opt(help="join on: auto | clip_id | model")] = "auto",
    score_field: Annotated[str, Opt(help="column of the automatic score")] = "score",
    human_field: Annotated[str, Opt(help="column of the human rating (auto: rating, mos, score, win_ratio, "
                                         "human)")] = "auto",
    by: Annotated[str, Opt(help="groups besides 'all': dimension | none")] = "dimension",
    n_boot: Annotated[int, Opt(help="bootstrap resamples for the CIs")] = 1000,
    seed: Annotated[int, Opt(help="seed for resampling")] = 0,
    out: Annotated[Optional[Path], Opt(help="write alignment.json and alignment_scatter.png/.svg here")] = None,  # noqa: UP045
    as_json: Annotated[bool, Opt("--json", help="print JSON")] = False,
) -> None:
    """Correlate automatic scores with human ratings (Pearson, Spearman, Kendall tau-b, bootstrap CIs)."""
    from mtavg.suites.alignment import AlignmentError, load_rows, scatter_png
    from mtavg.suites.alignment import align as align_rows

    if by not in ("dimension", "none"):
        _fail(f"unknown --by {by!r}; use dimension or none")
    try:
        result = align_rows(load_rows(scores), load_rows(human), key=key, score_field=score_field,
                            human_field=human_field, by=None if by == "none" else by, n_boot=n_boot, seed=seed)
    except AlignmentError as exc:
        _fail(str(exc))
    written: list[Path] = []
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "alignment.json").write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
        written = [out / "alignment.json", *scatter_png(result, out / "alignment_scatter.png")]
    if as_json:
        sys.stdout.write(json.dumps(result, indent=1) + "\n")
        return
    table = Table(title=f"Alignment of {result['score_field']!r} with human {result['human_field']!r} "
                        f"(key {result['key']}, 95% bootstrap CIs, {n_boot} resamples)")
    for col in ("group", "n", "Pearson r [CI]", "p", "Spearman ρ [CI]", "p", "Kendall τ [CI]", "p", "failed"):
        table.add_column(col, justify="left" if col == "group" else "right")
    notes = []
    for name, g in result["groups"].items():
        table.add_row(name, str(g["n"]), _coef(g["pearson"]), _p(g["pearson"]), _coef(g["spearman"]),
                      _p(g["spearman"]), _coef(g["kendall"]), _p(g["kendall"]), str(g["n_failed"]))
        note = next((g[c]["note"] for c in ("pearson", "spearman", "kendall") if g[c].get("note")), None)
        if note:
            notes.append(f"{name}: {note}")
    console.print(table)
    for note in notes:
        console.print(note, highlight=False, markup=False)
    un = result["unmatched"]
    line = (f"unmatched: {len(un['scores_only'])} key(s) only in scores{_ids(un['scores_only'])}, "
            f"{len(un['human_only'])} only in human ratings{_ids(un['human_only'])}")
    if un["scores_without_key"]:
        line += f", {len(un['scores_without_key'])} score row(s) with no model{_ids(un['scores_without_key'])}"
    console.print(line, highlight=False, markup=False)
    failed = result["groups"]["all"]["failed"]
    if failed:
        console.print(f"failed (null score, left out): {len(failed)}{_ids(failed)}", highlight=False, markup=False)
    for path in written:
        console.print(f"wrote {path}", highlight=False, markup=False)
