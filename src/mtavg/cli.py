"""The ``mtavg`` command: parses flags and calls library functions, nothing more."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Optional

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

    facts = bench_stats(_load(bench))
    if as_json:
        sys.stdout.write(json.dumps(facts, indent=1) + "\n")
    else:
        console.print(format_stats_table(facts))


@app.command(name="eval")
def eval_(
    bench: Annotated[str, typer.Option(help="benchmark directory or HF dataset id")],
    model: Annotated[str, typer.Option(help="KIND:NAME, e.g. baseline:random, openai:NAME, gemini:NAME")],
    out: Annotated[Path, typer.Option(help="run directory (samples.jsonl, results.json)")],
    modality: Annotated[str, typer.Option(help="full | no_audio | no_vision | text")] = "full",
    limit: Annotated[Optional[int], typer.Option(help="first N items only")] = None,  # noqa: UP045
    concurrency: Annotated[int, typer.Option(help="requests in flight")] = 8,
    seed: Annotated[int, typer.Option(help="seed for stochastic evaluators")] = 0,
    plugin: Annotated[Optional[list[str]], typer.Option(help="import MODULE that registers a backend")] = None,  # noqa: UP045
    progress: Annotated[bool, typer.Option(help="show a progress bar")] = True,
) -> None:
    """Evaluate a model; re-running the same command resumes where it stopped."""
    from mtavg.evaluators import MODALITIES, UnknownModel, load_plugins, make_evaluator
    from mtavg.run import RunConflict, run_eval

    if modality not in MODALITIES:
        _fail(f"unknown modality {modality!r}; choose one of: {', '.join(MODALITIES)}")
    load_plugins(plugin or ())
    b = _load(bench)
    try:
        evaluator = make_evaluator(model, b.items, seed=seed)
        results = run_eval(b, evaluator, out, modality=modality, limit=limit, concurrency=concurrency,
                           progress=progress)
    except (UnknownModel, RunConflict) as exc:
        _fail(str(exc))
    except KeyboardInterrupt:
        done = sum(1 for _ in (out / "samples.jsonl").open()) if (out / "samples.jsonl").exists() else 0
        err.print(f"interrupted: {done} item(s) saved in {out / 'samples.jsonl'}; "
                  "run the same command again to resume")
        raise typer.Exit(130) from None
    print_table3([results])
    console.print(f"samples: {out / 'samples.jsonl'}  results: {out / 'results.json'}  "
                  f"invalid: {results['n_invalid']}/{results['n_items']}  errors: {results['n_errors']}")


@app.command()
def score(
    bench: Annotated[str, typer.Option(help="benchmark directory or HF dataset id")],
    predictions: Annotated[Path, typer.Option(help="samples.jsonl or any file of qid + raw lines")],
    out: Annotated[Path, typer.Option(help="results.json to write")],
    model: Annotated[Optional[str], typer.Option(help="model name when the file has none")] = None,  # noqa: UP045
    only_predicted: Annotated[bool, typer.Option(
        help="score only the items the file answers (e.g. a --limit run); by default a missing item scores 0"
    )] = False,
) -> None:
    """Rebuild results.json from raw responses (re-parsed), with no model calls."""
    from mtavg.run import results_from_rows, write_results
    from mtavg.samples import PredictionsError, read_predictions

    b = _load(bench)
    try:
        rows = list(read_predictions(predictions))
        answered = {r["qid"] for r in rows}
        items = [it for it in b.items if it.qid in answered] if only_predicted else None
        results = results_from_rows(b, rows, items=items, model=model)
    except (PredictionsError, KeyError, OSError) as exc:
        _fail(str(exc))
    if results["n_missing"]:
        err.print(f"[yellow]warning:[/yellow] {results['n_missing']} item(s) have no prediction and score 0 "
                  "(--only-predicted scores the answered items alone)")
    out.parent.mkdir(parents=True, exist_ok=True)
    write_results(out, results)
    print_table3([results])
    console.print(f"results: {out}")


@app.command()
def demo(
    out: Annotated[Path, typer.Option(help="where the demo benchmark, runs and report go")] = Path("mtavg-demo"),
    seed: Annotated[int, typer.Option()] = 0,
    progress: Annotated[bool, typer.Option(help="show progress bars")] = True,
) -> None:
    """Build the embedded demo benchmark (real H.264/AAC clips), evaluate the offline evaluators, report."""
    from mtavg.pipeline import run_demo
    from mtavg.report.tables import temporal_markdown

    outcome = run_demo(out, seed=seed, progress=progress)
    print_table3(outcome.results)
    console.print(temporal_markdown(outcome.results), highlight=False, markup=False)
    console.print(f"\nbenchmark: {outcome.bench_dir}\nreport: {outcome.report}  ({outcome.seconds:.1f} s)")


def main() -> None:  # pragma: no cover
    app()


if __name__ == "__main__":  # pragma: no cover - `python -m mtavg.cli`
    main()
