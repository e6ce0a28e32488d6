"""`mtavg merge`: join the shards of one `eval` or `metrics` run (made with --shard i/n)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape

from mtavg.cli import _fail, _load, app, console, print_table3

Opt = typer.Option


@app.command()
def merge(
    inputs: Annotated[list[Path], typer.Argument(help="every shard: eval run directories, or metrics .jsonl files")],
    out: Annotated[Path, Opt(help="the merged run directory (eval) or .jsonl file (metrics)")],
    bench: Annotated[Optional[str], Opt(help="benchmark (default: the one recorded in run.json)")] = None,  # noqa: UP045
    n_boot: Annotated[int, Opt(help="bootstrap resamples for the confidence intervals")] = 1000,
) -> None:
    """Join shards into the run an unsharded command would write; refuses overlaps, gaps and mismatches."""
    from mtavg.bench import BenchmarkNotFound
    from mtavg.merge import MergeError, merge_eval_runs, merge_metrics_shards

    dirs = [p for p in inputs if p.is_dir()]
    if dirs and len(dirs) != len(inputs):
        _fail("give either eval run directories or metrics .jsonl files, not both")
    try:
        if dirs:
            results = merge_eval_runs(dirs, out, bench=_load(bench) if bench else None, n_boot=n_boot)
            print_table3([results])
            console.print(f"merged {len(dirs)} shards, {results['n_items']} items: {out / 'samples.jsonl'}  "
                          f"results {out / 'results.json'}", highlight=False)
        else:
            records = merge_metrics_shards(inputs, out)
            console.print(f"merged {len(inputs)} shards, {len(records)} clips: {out}", highlight=False)
    except (MergeError, BenchmarkNotFound) as exc:
        _fail(escape(str(exc)))  # paths and ids may hold [brackets]: not rich markup
