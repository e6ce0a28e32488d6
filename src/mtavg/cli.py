"""The ``mtavg`` command: parses flags and calls library functions, nothing more."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Evaluate audio-video generation.")
# Piped output (CI logs, `| tee`) gets a fixed wide layout instead of rich's 80 columns, which would
# truncate the eleven-column Table 3.
console = Console() if sys.stdout.isatty() else Console(width=160)
err = Console(stderr=True)


def _fail(message: str, code: int = 2) -> None:
    err.print(f"[red]error:[/red] {message}", highlight=False)
    raise typer.Exit(code)


def _load(bench: str):
    from mtavg.bench import BenchmarkInvalid, BenchmarkNotFound, load_benchmark

    try:
        return load_benchmark(bench)
    except BenchmarkNotFound as exc:
        _fail(str(exc))
    except BenchmarkInvalid as exc:
        _fail(f"benchmark {bench} is invalid; nothing was evaluated.\n{exc}\n(run `mtavg validate {bench}`)")


def print_table3(results: list[dict]) -> None:
    from mtavg.report.tables import table3_rows
    from mtavg.taxonomy import load_taxonomy

    tax = load_taxonomy()
    header, rows = table3_rows(results)
    groups = " | ".join(f"{c.name}: {' '.join(c.sub_dimensions)}" for c in tax.categories.values())
    table = Table(title="Failure diagnosis, sub-dimension scores (%)", caption=groups)
    for name in header:
        table.add_column(name, justify="left" if name == "Evaluator" else "right")
    for r, values in zip(results, rows, strict=True):
        table.add_row(r["model"], *("–" if v is None else f"{v:.2f}" for v in values))
    console.print(table)


@app.command()
def taxonomy(as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False) -> None:
    """Print the 3 categories -> 10 sub-dimensions -> 45 failure modes."""
    from mtavg.taxonomy import load_taxonomy

    tax = load_taxonomy()
    if as_json:
        sys.stdout.write(json.dumps(tax.to_dict(), indent=1, ensure_ascii=False) + "\n")
        return
    table = Table(title=f"MTAVG-Bench 2.0 taxonomy ({len(tax.failure_modes)} failure modes)")
    for col in ("Category", "Sub-dimension", "Failure mode (slug)", "Description"):
        table.add_column(col, overflow="fold")
    for mode in tax.failure_modes.values():
        sub = tax.sub_dimensions[mode.sub_dimension]
        table.add_row(tax.categories[mode.category].name, f"{sub.code} {sub.name}", f"{mode.name}\n({mode.slug})",
                      mode.description)
    console.print(table)


@app.command()
def validate(bench: Annotated[str, typer.Argument(help="benchmark directory or HF dataset id")]) -> None:
    """Report every problem of a benchmark at once (exit 1 if any)."""
    from mtavg.bench import BenchmarkNotFound, resolve_benchmark, validate_benchmark

    try:
        root = resolve_benchmark(bench)
    except BenchmarkNotFound as exc:
        _fail(str(exc))
    problems = validate_benchmark(root)
    for p in problems:
        console.print(str(p), highlight=False, markup=False)
    if problems:
        err.print(f"{len(problems)} problem(s) in {root}")
        raise typer.Exit(1)
    console.print(f"{root}: valid")


@app.command()
def stats(bench: Annotated[str, typer.Argument(help="benchmark directory or HF dataset id")],
          as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Table 1-style facts: videos, QA items, per format, per sub-dimension, failure modes covered."""
    from mtavg.bench import bench_stats, format_stats_table

    loaded = _load(bench)
    facts = bench_stats(loaded)
    if as_json:
        sys.stdout.write(json.dumps(facts, indent=1) + "\n")
    else:
        console.print(format_stats_table(facts, loaded.taxonomy))


@app.command()
def demo(
    out: Annotated[Path, typer.Option(help="where the demo benchmark, runs and report go")] = Path("mtavg-demo"),
    seed: Annotated[int, typer.Option()] = 0,
    progress: Annotated[bool, typer.Option(help="show progress bars")] = True,
) -> None:
    """Build the embedded demo benchmark (real H.264/AAC clips), evaluate the offline evaluators, report."""
    from mtavg.pipeline import DemoSeedMismatch, run_demo
    from mtavg.report.tables import temporal_markdown
    from mtavg.run import RunConflict

    try:
        outcome = run_demo(out, seed=seed, progress=progress)
    except (DemoSeedMismatch, RunConflict) as exc:
        _fail(str(exc))
    print_table3(outcome.results)
    console.print(temporal_markdown(outcome.results), highlight=False, markup=False)
    console.print(f"\nbenchmark: {outcome.bench_dir}\nreport: {outcome.report}\nHTML report (open in a browser): "
                  f"{outcome.site}\n({outcome.seconds:.1f} s)", highlight=False)


from mtavg import (  # noqa: E402,F401 - register the other commands
    cli_align,
    cli_avbench,
    cli_avgen,
    cli_compare,
    cli_construct,
    cli_construct_qa,
    cli_interop,
    cli_metrics,
    cli_report,
    cli_run,
    cli_scale,
)


def main() -> None:  # pragma: no cover
    app()


if __name__ == "__main__":  # pragma: no cover - `python -m mtavg.cli`
    # Run as a script this module is `__main__`; the commands live on the imported `mtavg.cli.app`.
    from mtavg.cli import main as _main

    _main()
