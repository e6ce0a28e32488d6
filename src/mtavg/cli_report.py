"""`mtavg report`: the static HTML report (tables, figures, item browser) from run directories."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.markup import escape

from mtavg.bench.validate import read_jsonl
from mtavg.cli import _fail, app, console, err

Opt = typer.Option


class MetricsFileError(ValueError):
    pass


def read_metrics_summary(path: Path) -> dict[str, dict[str, Any]]:
    """Per-generator metric summary: a ``--summary`` JSON of `mtavg metrics`, or its per-clip .jsonl."""
    from mtavg.metrics.run import summarize

    if not path.is_file():
        raise MetricsFileError(f"metrics file {path} does not exist")
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json":
        try:
            summary = json.loads(text)
        except json.JSONDecodeError as exc:
            raise MetricsFileError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg})") from None
        if not isinstance(summary, dict):
            raise MetricsFileError(f"{path}: expected the per-generator summary object of `mtavg metrics --summary`")
        return summary
    decoded, problems = read_jsonl(path, str(path))
    if problems:
        raise MetricsFileError("; ".join(str(p) for p in problems))
    records = []
    for lineno, row in decoded:
        if not isinstance(row, dict) or "ok" not in row or "metrics" not in row:
            raise MetricsFileError(f"{path}:{lineno}: not a per-clip record of `mtavg metrics` (needs 'ok', 'metrics')")
        records.append({k: v for k, v in row.items() if k != "qid"})
    return summarize(records)


def _annotations(path: Path | None) -> list[Any] | None:
    from mtavg.annotations import AnnotationsInvalid, load_annotations

    if path is None:
        return None
    try:
        return load_annotations(path)
    except (AnnotationsInvalid, OSError) as exc:
        _fail(f"annotations {path}: {exc}")


@app.command()
def report(
    run_dirs: Annotated[list[Path], typer.Argument(help="run directories (samples.jsonl + results.json)")],
    out: Annotated[Path, Opt(help="folder for the site (index.html, media/, figures/, tables/)")],
    bench: Annotated[Optional[str], Opt(help="benchmark (default: the one the runs record)")] = None,  # noqa: UP045
    annotations: Annotated[Optional[Path], Opt(  # noqa: UP045
        help="annotations.jsonl for the failure-analysis figures (default: the benchmark's own, if any)")] = None,
    metrics: Annotated[Optional[Path], Opt(help="`mtavg metrics` records (.jsonl) or summary (.json)")] = None,  # noqa: UP045
    title: Annotated[str, Opt(help="page title")] = "mtavg report",
) -> None:
    """One self-contained static site: the paper's tables, figures and an item browser (open index.html)."""
    from mtavg.annotations import AnnotationsInvalid
    from mtavg.report.site import build_report
    from mtavg.report.site_items import ReportInputError, read_results

    try:
        results = [read_results(d) for d in run_dirs]
        metrics_summary = read_metrics_summary(metrics) if metrics is not None else None
    except (ReportInputError, MetricsFileError) as exc:
        _fail(str(exc))
    missing: list[str] = []
    try:
        index, figures = build_report(run_dirs, out, bench=bench, title=title, annotations=_annotations(annotations),
                                      metrics_summary=metrics_summary, on_warning=missing.append)
    except (ReportInputError, AnnotationsInvalid) as exc:
        _fail(str(exc))
    for note in missing[:10]:
        err.print(f"[yellow]warning:[/yellow] {escape(note)}", highlight=False)
    if len(missing) > 10:
        err.print(f"[yellow]warning:[/yellow] … {len(missing) - 10} more missing clips (listed in the report)")
    console.print(f"report: {index}  ({len(results)} run(s), {len(figures)} figure file(s))", highlight=False)
