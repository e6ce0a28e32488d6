"""`mtavg metrics`: automatic metrics on clips, one decode per clip, a summary per generator."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.markup import escape
from rich.table import Table

from mtavg.cli import _fail, app, console

Opt = typer.Option


def _headline(aggregate: dict[str, Any], limit: int = 3) -> str:
    nums = [(k, v) for k, v in aggregate.items() if isinstance(v, (int, float)) and not isinstance(v, bool)]
    return "  ".join(f"{k}={v:.3g}" for k, v in nums[:limit]) or "–"


def print_metric_list() -> None:
    from mtavg.metrics import import_errors, load_builtin_metrics

    table = Table(title="Metrics")
    for col in ("metric", "needs", "extra", "available", "what it measures"):
        table.add_column(col, overflow="fold")
    for name, spec in sorted(load_builtin_metrics().items()):
        why = spec.available()
        table.add_row(name, "+".join(spec.needs), spec.extra or "core",
                      "yes" if why is True else f"no: {why}", spec.description)
    console.print(table)
    for module, error in import_errors().items():
        console.print(f"[yellow]module mtavg.metrics.{module} not loaded:[/yellow] {error}", highlight=False)


@app.command()
def metrics(
    paths: Annotated[Optional[list[Path]], typer.Argument(help="clips, directories, or benchmark dirs")] = None,  # noqa: UP045
    out: Annotated[Optional[Path], Opt(help="per-clip records (jsonl; resumable)")] = None,  # noqa: UP045
    metric: Annotated[Optional[str], Opt("--metrics", help="comma list (default: every available signal metric)")] = None,  # noqa: UP045,E501
    jobs: Annotated[int, Opt(help="clips decoded and measured in parallel (processes)")] = 1,
    executor: Annotated[str, Opt(help="local (process pool of --jobs) or ray (needs the [ray] extra)")] = "local",
    address: Annotated[Optional[str], Opt(help="Ray cluster: auto or ray://HOST:PORT (default: local Ray)")] = None,  # noqa: UP045,E501
    cpus_per_task: Annotated[float, Opt(help="Ray: CPUs reserved per clip")] = 1.0,
    gpus_per_task: Annotated[float, Opt(help="Ray: GPUs reserved per clip (model metrics)")] = 0.0,
    shard: Annotated[Optional[str], Opt(help="i/n: only the clips whose id hashes to shard i of n")] = None,  # noqa: UP045
    generator_regex: Annotated[Optional[str], Opt(help="generator from the file stem, e.g. '_(.+)$'")] = None,  # noqa: UP045
    summary: Annotated[Optional[Path], Opt(help="write the per-generator summary JSON here")] = None,  # noqa: UP045
    list_: Annotated[bool, Opt("--list", help="list metrics and whether they can run here")] = False,
) -> None:
    """Signal metrics (and model metrics whose weights are present) per clip, summarised per generator."""
    from mtavg.executors import ExecutorUnavailable, make_executor
    from mtavg.metrics.run import ShardConflict, compute_metrics, discover, select_metrics, summarize
    from mtavg.progress import ItemProgress
    from mtavg.sharding import ShardSpecError, parse_shard

    if list_:
        print_metric_list()
        return
    if not paths or out is None:
        _fail("give clips (or directories) and --out FILE.jsonl; --list shows the metrics")
    try:
        names = select_metrics([m.strip() for m in metric.split(",") if m.strip()] if metric else None)
    except KeyError as exc:
        _fail(str(exc.args[0]))
    if address and executor != "ray":
        _fail("--address is for --executor ray")
    try:
        part = parse_shard(shard) if shard else None
        runner = make_executor(executor, jobs=jobs, address=address, num_cpus_per_task=cpus_per_task,
                               num_gpus_per_task=gpus_per_task)
    except (ShardSpecError, ExecutorUnavailable, ValueError) as exc:
        _fail(escape(str(exc)))  # the message names the [ray] extra: not rich markup
    refs = discover(paths, generator_regex)
    if not refs:
        _fail(f"no clips found in {', '.join(map(str, paths))}")
    out.parent.mkdir(parents=True, exist_ok=True)
    n_todo = sum(part.owns(r.video_id) for r in refs) if part else len(refs)
    try:
        with ItemProgress(n_todo, label=f"metrics {part}" if part else "metrics") as bar:
            records = compute_metrics(refs, out, metrics=names, executor=runner, shard=part,
                                      on_done=lambda r: bar.advance({"valid": r["ok"], "error": r["error"]}))
    except ShardConflict as exc:
        _fail(str(exc))
    finally:
        runner.close()
    result = summarize(records)
    if summary:
        summary.write_text(json.dumps(result, indent=1))
    table = Table(title=f"Metrics per generator ({len(records)} clips)")
    table.add_column("generator")
    table.add_column("clips", justify="right")
    table.add_column("failed", justify="right")
    for name in names:
        table.add_column(name, overflow="fold")
    for gen, entry in result.items():
        table.add_row(gen, str(entry["n_clips"]), str(entry["n_failed"]),
                      *(_headline(entry["metrics"].get(n, {})) for n in names))
    console.print(table)
    for r in records:
        if not r["ok"]:
            console.print(f"[red]{r['path']}[/red]: {r['error_code']}: {r['error']}", highlight=False)
    console.print(f"records: {out}")
