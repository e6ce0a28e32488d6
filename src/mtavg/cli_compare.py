"""`mtavg compare`: is one evaluator significantly better than another on the same items?"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from mtavg.cli import _fail, _load, app, console

Opt = typer.Option


def recorded_bench(run: Path) -> str | None:
    """The benchmark a run directory was made on: run.json's ``bench_root``, else results.json's ``bench``."""
    if not run.is_dir():
        return None
    for name, key in (("run.json", "bench_root"), ("results.json", "bench")):
        path = run / name
        if path.exists():
            value = json.loads(path.read_text(encoding="utf-8")).get(key)
            if value:
                return str(value)
    return None


def _fmt(v: float | None, signed: bool = False) -> str:
    return "–" if v is None else (f"{v:+.2f}" if signed else f"{v:.2f}")


def _p(p: float | None) -> str:
    return "–" if p is None else (f"{p:.4f}" if p >= 1e-4 else f"{p:.1e}")


@app.command()
def compare(
    run_a: Annotated[Path, typer.Argument(help="run directory (or samples.jsonl) of evaluator A")],
    run_b: Annotated[Path, typer.Argument(help="run directory (or samples.jsonl) of evaluator B")],
    bench: Annotated[Optional[str], Opt(help="benchmark (default: the one RUN_A was made on)")] = None,  # noqa: UP045
    n_boot: Annotated[int, Opt(help="bootstrap resamples and permutations")] = 2000,
    seed: Annotated[int, Opt(help="seed for resampling")] = 0,
    as_json: Annotated[bool, Opt("--json", help="print JSON")] = False,
) -> None:
    """Paired comparison on shared items: A - B with a clustered bootstrap CI and a permutation p-value."""
    from mtavg.compare import CompareError, compare_runs

    bench = bench or recorded_bench(run_a)
    if bench is None:
        _fail(f"{run_a} records no benchmark (no run.json or results.json); pass --bench")
    try:
        result = compare_runs(run_a, run_b, _load(bench), n_boot=n_boot, seed=seed)
    except CompareError as exc:
        _fail(str(exc))
    if as_json:
        sys.stdout.write(json.dumps(result.to_dict(), indent=1) + "\n")
        return
    a, b = result.a, result.b
    table = Table(title=f"A = {a.model} ({a.modality})  vs  B = {b.model} ({b.modality}), {result.common} shared items")
    for col in ("score", "n", "A", "B", "A - B", "95% CI", "p", "verdict"):
        table.add_column(col, justify="left" if col in ("score", "verdict") else "right")
    for row in result.rows:
        r = row.result
        ci = "–" if r.ci95 is None else f"[{r.ci95[0]:+.2f}, {r.ci95[1]:+.2f}]"
        table.add_row(row.name, str(r.n), _fmt(r.a), _fmt(r.b), _fmt(r.diff, signed=True), ci, _p(r.p),
                      "significant" if r.significant else "not significant")
    console.print(table)
    o = result.overall.result
    verdict = "significant" if o.significant else "not significant"
    ci = "–" if o.ci95 is None else f"[{o.ci95[0]:+.2f}, {o.ci95[1]:+.2f}]"
    console.print(f"overall: A - B = {o.diff:+.2f} points, 95% CI {ci}, p = {_p(o.p)} "
                  f"({o.n_clusters} video clusters): {verdict}", highlight=False, markup=False)
    console.print(f"rule: {result.rule}; sub-dimension p-values are not corrected for multiple comparisons",
                  highlight=False, markup=False)
    if result.only_a or result.only_b:
        console.print(f"left out: {len(result.only_a)} item(s) only in A, {len(result.only_b)} only in B "
                      f"(e.g. {', '.join((result.only_a + result.only_b)[:3])})", highlight=False, markup=False)
    for note in result.notes:
        console.print(f"note: {note}", highlight=False, markup=False)
