"""`mtavg eval`, `ablate`, `score`, `judge`: the commands that call models or score their answers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from mtavg.cli import _fail, _load, app, console, err, print_table3

Opt = typer.Option


def parse_options(pairs: list[str] | None) -> dict[str, Any]:
    """--option key=value pairs -> a dict (backends coerce the string values they read)."""
    out: dict[str, Any] = {}
    for pair in pairs or ():
        key, sep, value = pair.partition("=")
        if not sep or not key:
            _fail(f"--option {pair!r}: expected KEY=VALUE")
        out[key.strip().replace("-", "_")] = value
    return out


def _modalities(value: str) -> list[str]:
    from mtavg.evaluators import MODALITIES

    wanted = list(MODALITIES) if value == "all" else [m.strip() for m in value.split(",") if m.strip()]
    bad = [m for m in wanted if m not in MODALITIES]
    if bad or not wanted:
        _fail(f"unknown modality {', '.join(bad) or value!r}; choose from: {', '.join(MODALITIES)} or all")
    return wanted


@app.command(name="eval")
def eval_(
    bench: Annotated[str, Opt(help="benchmark directory or HF dataset id")],
    model: Annotated[str, Opt(help="KIND:NAME: baseline:random, openai:NAME, gemini:NAME, hf:PATH")],
    out: Annotated[Path, Opt(help="run directory (samples.jsonl, results.json); one per modality when several")],
    modality: Annotated[str, Opt(help="full | no_audio | no_vision | text, a comma list, or all")] = "full",
    limit: Annotated[Optional[int], Opt(help="first N items only")] = None,  # noqa: UP045
    concurrency: Annotated[int, Opt(help="requests in flight")] = 8,
    base_url: Annotated[Optional[list[str]], Opt(  # noqa: UP045
        help="OpenAI-compatible or Gemini endpoint; repeat (or comma-separate) for several openai: servers, "
             "load-balanced with failover")] = None,
    per_endpoint_concurrency: Annotated[Optional[int], Opt(  # noqa: UP045
        help="requests in flight per endpoint; the total becomes N x endpoints")] = None,
    api_key_env: Annotated[Optional[str], Opt(help="env variable holding the API key")] = None,  # noqa: UP045
    option: Annotated[Optional[list[str]], Opt(help="backend option KEY=VALUE (repeatable)")] = None,  # noqa: UP045
    timeout: Annotated[float, Opt(help="seconds per request")] = 300.0,
    max_attempts: Annotated[int, Opt(help="attempts per item (retries on 429/5xx/timeouts)")] = 4,
    max_total_retries: Annotated[int, Opt(help="retry budget for the whole run")] = 1000,
    rpm: Annotated[Optional[float], Opt(help="client-side requests-per-minute limit")] = None,  # noqa: UP045
    tpm: Annotated[Optional[float], Opt(help="client-side tokens-per-minute limit")] = None,  # noqa: UP045
    cache: Annotated[bool, Opt(help="reuse and store responses in the response cache")] = True,
    cache_path: Annotated[Optional[Path], Opt(help="SQLite cache file")] = None,  # noqa: UP045
    price_in: Annotated[float, Opt(help="USD per million prompt tokens")] = 0.0,
    price_out: Annotated[float, Opt(help="USD per million completion tokens")] = 0.0,
    check_audio: Annotated[bool, Opt(help="fail when audio should reach the model and did not")] = True,
    seed: Annotated[int, Opt(help="seed for stochastic evaluators")] = 0,
    plugin: Annotated[Optional[list[str]], Opt(help="import MODULE that registers a backend")] = None,  # noqa: UP045
    progress: Annotated[bool, Opt(help="show a progress bar")] = True,
    shard: Annotated[Optional[str], Opt(help="i/n: only the items whose qid hashes to shard i of n (mtavg merge joins them)")] = None,  # noqa: UP045,E501
) -> None:
    """Evaluate a model; re-running the same command resumes where it stopped (0 calls when done)."""
    from mtavg.endpoints import endpoint_options
    from mtavg.evaluators import UnknownModel, load_plugins, make_evaluator
    from mtavg.limits import RetryPolicy
    from mtavg.report.tables import table6_markdown
    from mtavg.run import AudioNotDelivered, RunConflict, RunOptions, run_eval
    from mtavg.sharding import ShardSpecError, parse_shard

    modalities = _modalities(modality)
    try:
        part = parse_shard(shard) if shard else None
    except ShardSpecError as exc:
        _fail(str(exc))
    load_plugins(plugin or ())
    b = _load(bench)
    backend_options = {**parse_options(option), "seed": seed}
    backend_options.update({k: v for k, v in (("api_key_env", api_key_env),) if v})
    try:
        endpoint_opts, concurrency = endpoint_options(model, base_url, per_endpoint_concurrency, concurrency)
    except ValueError as exc:
        _fail(str(exc))
    backend_options.update(endpoint_opts)
    opts = RunOptions(
        limit=limit, concurrency=concurrency, progress=progress, rpm=rpm, tpm=tpm, use_cache=cache,
        cache_path=cache_path, price_in=price_in, price_out=price_out, check_audio=check_audio,
        policy=RetryPolicy(max_attempts=max_attempts, max_total_retries=max_total_retries, timeout_s=timeout),
        shard=part,
    )
    all_results = []
    for m in modalities:
        run_dir = out / m if len(modalities) > 1 else out
        try:
            evaluator = make_evaluator(model, b.items, **backend_options)
            results = run_eval(b, evaluator, run_dir, opts, modality=m)
        except (UnknownModel, RunConflict, ValueError) as exc:
            _fail(str(exc))
        except AudioNotDelivered as exc:
            _fail(f"audio check failed: {exc}\n(results were written to {run_dir / 'results.json'})", code=1)
        except KeyboardInterrupt:
            samples = run_dir / "samples.jsonl"
            done = sum(1 for _ in samples.open()) if samples.exists() else 0
            err.print(f"interrupted: {done} item(s) saved in {samples}; run the same command again to resume")
            raise typer.Exit(130) from None
        all_results.append(results)
        print_table3([results])
        console.print(f"{m}: samples {run_dir / 'samples.jsonl'}  results {run_dir / 'results.json'}  "
                      f"invalid {results['n_invalid']}/{results['n_items']}  errors {results['n_errors']}  "
                      f"calls {results['session']['calls']} cached {results['session']['cached']}  "
                      f"cost ${results['usage']['cost_usd']:.4f}")
    if len(modalities) > 1:
        table = table6_markdown(all_results)
        (out / "table6.md").write_text(table + "\n", encoding="utf-8")
        console.print(table, markup=False, highlight=False)
        console.print(f"modality ablation table: {out / 'table6.md'}")


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def ablate(ctx: typer.Context) -> None:
    """All four modalities (full, no_audio, no_vision, text) and the Table 6 layout: `eval --modality all`.

    Takes every `mtavg eval` option: mtavg ablate --bench B --model M --out DIR [...]
    """
    if any(a == "--modality" or a.startswith("--modality=") for a in ctx.args):
        _fail("ablate runs every modality; use `mtavg eval --modality ...` for a subset")
    app(["eval", "--modality", "all", *ctx.args], standalone_mode=False)


def _recorded_fingerprint(predictions: Path, model: str | None) -> str | None:
    """The evaluator settings run.json beside a samples file records, when it is that model's run."""
    meta_path = predictions.parent / "run.json"
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return meta.get("fingerprint") if isinstance(meta, dict) and meta.get("model") == model else None


@app.command()
def score(
    bench: Annotated[str, Opt(help="benchmark directory or HF dataset id")],
    predictions: Annotated[Path, Opt(help="samples.jsonl or any file of qid + raw lines")],
    out: Annotated[Path, Opt(help="results.json to write")],
    model: Annotated[Optional[str], Opt(help="model name when the file has none")] = None,  # noqa: UP045
    only_predicted: Annotated[bool, Opt(
        help="score only the items the file answers (e.g. a --limit run); by default a missing item scores 0"
    )] = False,
) -> None:
    """Rebuild results.json from raw responses (re-parsed), with no model calls."""
    from mtavg.judge import apply_judgements
    from mtavg.run import results_from_rows, write_results
    from mtavg.samples import PredictionsError, read_predictions

    b = _load(bench)
    try:
        rows = list(read_predictions(predictions))
        answered = {r["qid"] for r in rows}
        items = [it for it in b.items if it.qid in answered] if only_predicted else None
        results = results_from_rows(b, rows, items=items, model=model)
        results["fingerprint"] = _recorded_fingerprint(predictions, results["model"])
    except (PredictionsError, KeyError, OSError) as exc:
        _fail(str(exc))
    if results["n_missing"]:
        err.print(f"[yellow]warning:[/yellow] {results['n_missing']} item(s) have no prediction and score 0 "
                  "(--only-predicted scores the answered items alone)")
    apply_judgements(results, predictions.parent, items if items is not None else b.items)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_results(out, results)
    print_table3([results])
    console.print(f"results: {out}")


@app.command()
def judge(
    run_dir: Annotated[Path, typer.Argument(help="a run directory made by `mtavg eval`")],
    judge_spec: Annotated[list[str], Opt("--judge", help="judge model KIND:NAME (repeatable)")],
    bench: Annotated[Optional[str], Opt(help="benchmark (default: the one recorded in run.json)")] = None,  # noqa: UP045
    all_items: Annotated[bool, Opt(help="judge every item's rationale, not only temporal items")] = False,
    concurrency: Annotated[int, Opt(help="requests in flight per judge")] = 8,
    base_url: Annotated[Optional[str], Opt(help="endpoint for the judges")] = None,  # noqa: UP045
    api_key_env: Annotated[Optional[str], Opt(help="env variable holding the API key")] = None,  # noqa: UP045
    option: Annotated[Optional[list[str]], Opt(help="judge backend option KEY=VALUE")] = None,  # noqa: UP045
    cache: Annotated[bool, Opt(help="use the response cache")] = True,
    progress: Annotated[bool, Opt(help="show a progress bar")] = True,
) -> None:
    """Score rationales 1-5 with one or more judges and fill RC into the run's results.json."""
    from mtavg.evaluators import UnknownModel, make_evaluator
    from mtavg.judge import judge_run

    meta_path = run_dir / "run.json"
    if bench is None:
        if not meta_path.exists():
            _fail(f"{run_dir} has no run.json; pass --bench")
        bench = json.loads(meta_path.read_text()).get("bench_root")
    b = _load(str(bench))
    options = parse_options(option)
    options.update({k: v for k, v in (("base_url", base_url), ("api_key_env", api_key_env)) if v})
    try:
        judges = [make_evaluator(spec, b.items, **options) for spec in judge_spec]
    except (UnknownModel, ValueError) as exc:
        _fail(str(exc))
    block = judge_run(run_dir, b, judges, all_items=all_items, concurrency=concurrency, use_cache=cache,
                      progress=progress)
    console.print_json(json.dumps(block))
