"""`mtavg perturb` and `mtavg avbench`: AVBench-style perturbed pairs and yes/no probability scores."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.table import Table

from mtavg.cli import _fail, _load, app, console, err

Opt = typer.Option
Arg = typer.Argument

perturb_app = typer.Typer(no_args_is_help=True, help="Controlled perturbations of real clips (AVBench negatives).")
avbench_app = typer.Typer(no_args_is_help=True, help="AVBench: yes/no probability scores on pair datasets.")
app.add_typer(perturb_app, name="perturb")
app.add_typer(avbench_app, name="avbench")


@perturb_app.command("list")
def list_() -> None:
    """The perturbations: what each changes and the dimension it tests."""
    from mtavg.perturb import CATALOGUE
    from mtavg.perturb.plan import MIXES

    table = Table(title="Perturbations")
    for col in ("name", "changes", "dimension", "what it does"):
        table.add_column(col)
    for spec in CATALOGUE.values():
        table.add_row(spec.name, spec.target, spec.dimension, spec.description)
    console.print(table)
    for name, mix in MIXES.items():
        console.print(f"mix {name}: " + ", ".join(f"{k} {v:.0%}" for k, v in mix.items()), highlight=False)


def _param(pairs: list[str] | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pair in pairs or ():
        key, sep, value = pair.partition("=")
        if not sep:
            _fail(f"--param {pair!r}: expected KEY=VALUE (a JSON value: 120, true, [1.2, 1, 0.8])")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value  # a bare word: "lowpass"
    return out


@perturb_app.command()
def apply(
    src: Annotated[Path, Arg(help="the clip to perturb")],
    out: Annotated[Path, Arg(help="the mp4 to write (its record goes beside it as .json)")],
    kind: Annotated[str, Opt("--type", help="perturbation name (mtavg perturb list)")],
    param: Annotated[Optional[list[str]], Opt(help="KEY=VALUE, e.g. shift_ms=120 (repeatable)")] = None,  # noqa: UP045
    reencode_video: Annotated[bool, Opt(help="re-encode the picture even when it is unchanged")] = False,
) -> None:
    """Perturb one clip with explicit parameters."""
    from mtavg.media import MediaError
    from mtavg.perturb import perturb_clip

    try:
        side = perturb_clip(src, out, kind, _param(param), reencode_video=reencode_video)
    except (KeyError, ValueError, TypeError, MediaError) as exc:
        _fail(f"{src}: {exc}")
    console.print(f"{out}  ({kind} {json.dumps(side['params'])}; record {out.with_suffix('.json')})",
                  highlight=False)


def print_mix(report) -> None:
    table = Table(title=f"Negatives by type ({sum(report.quotas.values())})")
    for col in ("type", "requested", "planned", "share", "made"):
        table.add_column(col, justify="left" if col == "type" else "right")
    made = {f["clip_id"] for f in report.failed}
    for name, share in report.requested.items():
        planned = [p for p in report.planned if p.perturbation == name and p.role == "negative"]
        n = len(planned)
        table.add_row(name, f"{share:.1%}", str(n), f"{n / max(1, sum(report.quotas.values())):.1%}",
                      str(sum(p.clip_id not in made for p in planned)))
    console.print(table)


@perturb_app.command()
def build(
    src: Annotated[Path, Arg(help="folder of real clips (sub-folders are categories unless labels say otherwise)")],
    out: Annotated[Path, Opt(help="dataset directory (also a benchmark directory)")],
    mix: Annotated[str, Opt(help="avbench | video | all | name=weight,... | mix.json")] = "avbench",
    n: Annotated[int, Opt(help="number of negatives")] = 100,
    seed: Annotated[int, Opt()] = 0,
    level: Annotated[str, Opt(help="easy | hard | both (half each)")] = "both",
    labels: Annotated[Optional[Path], Opt(help=".csv/.jsonl: clip, category, text, generator")] = None,  # noqa: UP045
    category_pattern: Annotated[Optional[str], Opt(help="regex whose group 1 on the file stem is the category")] = None,  # noqa: UP045,E501
    generator_pattern: Annotated[Optional[str], Opt(help="regex whose group 1 on the file stem is the generator")] = None,  # noqa: UP045,E501
    reencode_video: Annotated[bool, Opt(help="re-encode pictures that are unchanged too (default: stream copy)")] = False,  # noqa: E501
    bench: Annotated[bool, Opt(help="write videos.jsonl + qa.jsonl (yes/no items)")] = True,
    plan_only: Annotated[bool, Opt(help="write the plan and the realised mix, make no media")] = False,
    jobs: Annotated[int, Opt(help="worker processes")] = 2,
    executor: Annotated[str, Opt(help="local | ray")] = "local",
    address: Annotated[Optional[str], Opt(help="Ray address (auto, ray://host:10001)")] = None,  # noqa: UP045
    progress: Annotated[bool, Opt(help="show a progress bar")] = True,
) -> None:
    """Positives + negatives by a type mix, each with its exact parameters; re-run to resume."""
    from mtavg.perturb.build import BuildConflict, BuildOptions, build_pairs
    from mtavg.perturb.plan import PlanError
    from mtavg.progress import ItemProgress

    opts = BuildOptions(mix=mix, n=n, seed=seed, level=level, reencode_video=reencode_video, bench=bench,
                        labels=labels, category_pattern=category_pattern, generator_pattern=generator_pattern,
                        plan_only=plan_only, jobs=jobs, executor=executor, address=address)
    bar: dict[str, ItemProgress] = {}

    def start(total: int, done: int) -> None:
        bar["p"] = ItemProgress(total, done=done, label="clips", enabled=progress)
        bar["p"].__enter__()

    def done(result: dict[str, Any]) -> None:
        bar["p"].advance({"valid": True, "error": result.get("error")})

    try:
        report = build_pairs(src, out, opts, on_done=done, on_start=start)
    except (PlanError, BuildConflict, ValueError) as exc:
        _fail(str(exc))
    except KeyboardInterrupt:
        err.print(f"interrupted; run the same command again to finish {out}")
        raise typer.Exit(130) from None
    finally:
        if "p" in bar:
            bar["p"].__exit__(None, None, None)
    print_mix(report)
    n_pos = sum(p.role == "positive" for p in report.planned)
    console.print(f"{len(report.sources)} source clips, {n_pos} positives, {len(report.planned) - n_pos} negatives"
                  + ("" if plan_only else f"; made {report.made}, kept {report.reused}, failed {len(report.failed)}")
                  + f" -> {out}", highlight=False)
    for s in report.skipped_sources:
        err.print(f"skipped source {s['path']}: {s['error']}", highlight=False)
    for f in report.failed:
        err.print(f"failed {f['clip_id']}: {f['error']}", highlight=False)
    if report.failed:
        raise typer.Exit(1)


@perturb_app.command()
def verify(
    dataset: Annotated[Path, Arg(help="a directory made by `mtavg perturb build`")],
    limit: Annotated[Optional[int], Opt(help="first N negatives only")] = None,  # noqa: UP045
    as_json: Annotated[bool, Opt("--json")] = False,
) -> None:
    """Measure every negative against its source clip (shift by cross-correlation, pitch, SNR, ...)."""
    from mtavg.perturb.measure import verify_dataset

    if not (dataset / "manifest.jsonl").exists():
        _fail(f"{dataset}: no manifest.jsonl (not a built pair dataset, or a --plan-only build)")
    rows = verify_dataset(dataset, limit=limit)
    if as_json:
        sys.stdout.write(json.dumps(rows, indent=1) + "\n")
    else:
        table = Table(title=f"Measured vs requested ({len(rows)} negatives)")
        for col in ("clip", "type", "level", "expected", "measured", "ok"):
            table.add_column(col, overflow="fold")
        for r in rows:
            measured = r.get("error") or json.dumps(_round(r.get("measured", {})))
            table.add_row(r["clip_id"], r["perturbation"], str(r.get("level")), json.dumps(r.get("expected", {})),
                          measured, {True: "yes", False: "NO", None: "–"}[r["ok"]])
        console.print(table)
    bad = [r for r in rows if r["ok"] is False]
    unmeasured = sum(r["ok"] is None for r in rows)
    console.print(f"{len(rows) - len(bad) - unmeasured} pass, {len(bad)} fail, {unmeasured} not measurable "
                  "(content without what the measurement needs, e.g. no pitched sound)", highlight=False)
    if bad:
        raise typer.Exit(1)


def _round(x: Any) -> Any:
    if isinstance(x, float):
        return round(x, 3)
    if isinstance(x, dict):
        return {k: _round(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_round(v) for v in x]
    return x


def print_summary(summary: dict[str, Any]) -> None:
    def f(x: Any) -> str:
        return "–" if x is None else f"{x:.3f}"

    def ci(block: dict[str, Any]) -> str:
        c = block.get("ci95")
        return f"{f(block.get('value'))} [{f(c[0])}, {f(c[1])}]" if c else f(block.get("value"))

    for dim, block in summary["dimensions"].items():
        table = Table(title=f"{summary.get('evaluator', '')} — {dim} ({summary.get('method', '')})")
        for col in ("group", "n neg", "mean pos", "mean neg", "neg ≥ 0.5", "AUC [95% CI]", "pairwise acc [95% CI]",
                    "failed"):
            table.add_column(col, justify="left" if col == "group" else "right")
        groups = [("all", block), *((f"  {k}", v) for k, v in block["by_perturbation"].items()),
                  *((f"  level {k}", v) for k, v in block["by_level"].items())]
        for name, g in groups:
            table.add_row(name, str(g["negatives"]["n"]), f(g["positives"]["mean"]), f(g["negatives"]["mean"]),
                          f(g["negatives"]["share_ge_0_5"]), ci(g["auc"]), ci(g["pairwise_accuracy"]),
                          str(g["negatives"]["n_failed"] + (g["positives"]["n_failed"] if name == "all" else 0)))
        console.print(table)


@avbench_app.command()
def score(
    bench: Annotated[str, Arg(help="a pair dataset (mtavg perturb build) or any benchmark with yes/no items")],
    model: Annotated[str, Opt(help="KIND:NAME: openai:NAME, hf:PATH, baseline:random, ...")],
    out: Annotated[Path, Opt(help="directory for scores.jsonl and summary.json")],
    method: Annotated[str, Opt(help="prob: P(Yes)/(P(Yes)+P(No)) from logprobs; answer: parsed Yes/No as 1/0")] = "prob",  # noqa: E501
    modality: Annotated[Optional[str], Opt(help="override each dimension's modality")] = None,  # noqa: UP045
    limit: Annotated[Optional[int], Opt(help="first N items only")] = None,  # noqa: UP045
    concurrency: Annotated[int, Opt(help="requests in flight")] = 8,
    base_url: Annotated[Optional[list[str]], Opt(help="endpoint(s); repeat for several openai: servers")] = None,  # noqa: UP045,E501
    api_key_env: Annotated[Optional[str], Opt(help="env variable holding the API key")] = None,  # noqa: UP045
    option: Annotated[Optional[list[str]], Opt(help="backend option KEY=VALUE (repeatable)")] = None,  # noqa: UP045
    timeout: Annotated[float, Opt(help="seconds per request")] = 300.0,
    max_attempts: Annotated[int, Opt(help="attempts per item")] = 4,
    cache: Annotated[bool, Opt(help="use the response cache")] = True,
    cache_path: Annotated[Optional[Path], Opt(help="SQLite cache file")] = None,  # noqa: UP045
    n_boot: Annotated[int, Opt(help="bootstrap resamples for the CIs")] = 1000,
    seed: Annotated[int, Opt()] = 0,
    progress: Annotated[bool, Opt(help="show a progress bar")] = True,
) -> None:
    """Continuous yes/no scores per clip, their summary, AUC and pairwise accuracy; re-run to resume."""
    from mtavg.cli_run import parse_options
    from mtavg.endpoints import endpoint_options
    from mtavg.evaluators import UnknownModel, make_evaluator
    from mtavg.limits import RetryPolicy
    from mtavg.suites.avbench import ScoreConflict, ScoreOptions, score_pairs

    b = _load(bench)
    backend = {**parse_options(option), "seed": seed}
    if api_key_env:
        backend["api_key_env"] = api_key_env
    try:
        endpoint_opts, concurrency = endpoint_options(model, base_url, None, concurrency)
        backend.update(endpoint_opts)
        evaluator = make_evaluator(model, b.items, **backend)
        summary = score_pairs(b, evaluator, out, ScoreOptions(
            method=method, limit=limit, concurrency=concurrency, modality=modality, use_cache=cache,
            cache_path=cache_path, progress=progress, n_boot=n_boot, seed=seed,
            policy=RetryPolicy(max_attempts=max_attempts, timeout_s=timeout)))
    except (UnknownModel, ScoreConflict, ValueError) as exc:
        _fail(str(exc))
    except KeyboardInterrupt:
        err.print(f"interrupted; scores so far are in {out / 'scores.jsonl'}; run the same command to resume")
        raise typer.Exit(130) from None
    print_summary(summary)
    console.print(f"{summary['n_items']} items, {summary['n_failed']} without a score ({summary['errors']} errors); "
                  f"scores {out / 'scores.jsonl'}  summary {out / 'summary.json'}", highlight=False)


@avbench_app.command()
def summarize(
    scores: Annotated[Path, Arg(help="scores.jsonl of `mtavg avbench score`, or its --out directory")],
    out: Annotated[Optional[Path], Opt(help="summary.json to write")] = None,  # noqa: UP045
    n_boot: Annotated[int, Opt()] = 1000,
    seed: Annotated[int, Opt()] = 0,
) -> None:
    """Rebuild the summary from per-clip scores, with no model calls."""
    from mtavg.suites.avbench import read_scores
    from mtavg.suites.avbench import summarize as summarize_rows

    if scores.is_dir():
        scores = scores / "scores.jsonl"
    try:
        rows = read_scores(scores)
    except (OSError, ValueError) as exc:
        _fail(str(exc))
    summary = summarize_rows(rows, n_boot=n_boot, seed=seed)
    if rows:
        summary.update(evaluator=rows[0].get("evaluator"), method=rows[0].get("method"))
    if out:
        out.write_text(json.dumps(summary, indent=1), encoding="utf-8")
    print_summary(summary)
