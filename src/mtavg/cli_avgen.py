"""`mtavg avgen`: AVGen-Bench totals from module records or a per-module table, and prompt -> clip matching."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich import box
from rich.table import Table

from mtavg.cli import _fail, app, console

Opt = typer.Option

avgen_app = typer.Typer(no_args_is_help=True, help="AVGen-Bench: prompt suites, module records, the published total.")
app.add_typer(avgen_app, name="avgen")


def _fmt(v: float | None, digits: int = 2) -> str:
    return "–" if v is None else f"{v:.{digits}f}"


def print_totals(totals: dict, *, title: str) -> None:
    from mtavg.suites.avgen import GROUPS
    from mtavg.suites.avgen_records import MODULES

    published = any(t.published_total is not None for t in totals.values())
    # Up to 20 columns: no vertical rules and shared padding keep it inside the 160-column piped layout.
    table = Table(title=title, caption="module points 0–100; Basic / Cross / Fine = group means; "
                                       "Cov = weight of the modules present", box=box.SIMPLE_HEAD,
                  collapse_padding=True)
    table.add_column("Model", overflow="fold")
    group_headers = {"basic": "Basic", "cross_modal": "Cross", "fine_grained": "Fine"}
    for name in (*MODULES, *(group_headers[g] for g in GROUPS), "Total", "Cov",
                 *(("Published", "Δ") if published else ())):
        table.add_column(name, justify="right", no_wrap=True)
    for name, t in totals.items():
        cells = [_fmt(t.modules[m].score) for m in MODULES] + [_fmt(t.groups[g]) for g in GROUPS]
        cells += [_fmt(t.total), f"{t.coverage:.0%}"]
        if published:
            delta = None if t.total is None or t.published_total is None else t.total - t.published_total
            cells += [_fmt(t.published_total), "–" if delta is None else f"{delta:+.3f}"]
        table.add_row(name, *cells)
    console.print(table)
    for name, t in totals.items():
        for extra, score in t.extra.items():
            console.print(f"{name}: {extra} {_fmt(score.score)} on {score.n_ok} clips ({score.n_failed} failed, "
                          f"{score.n_not_applicable} not applicable; not in the total)", highlight=False)
        if t.missing:
            why = "total undefined" if t.strict else "weights re-normalised over the rest"
            console.print(f"{name}: missing {', '.join(t.missing)} ({why})", highlight=False)
        for module, clips in t.failed_clips.items():
            score = t.modules[module]
            how = "scored 0" if t.strict else "left out of the mean"
            console.print(f"{name}: {module} failed on {len(clips)} of {score.n_ok + score.n_failed} clips "
                          f"({how}): {', '.join(clips)}", highlight=False)


@avgen_app.command()
def aggregate(
    records_dir: Annotated[Optional[Path], typer.Argument(help="module records: a jsonl file or a directory "  # noqa: UP045
                                                               "(records/<generator>/<module>.jsonl)")] = None,
    table: Annotated[Optional[Path], Opt("--table", help="CSV with model + the eleven raw module values "  # noqa: UP045
                                                         "(+ optional Total to compare against)")] = None,
    strict: Annotated[bool, Opt("--strict", help="failed clips score 0; a missing module makes the total "
                                                 "undefined")] = False,
    pitch_as_music: Annotated[bool, Opt("--pitch-as-music", help="count our Pitch records as the Music module "
                                                                 "(default: reported beside the total)")] = False,
    as_json: Annotated[bool, Opt("--json", help="print JSON")] = False,
) -> None:
    """The AVGen-Bench total per generator (published Scheme 2 weights and normalisation)."""
    from mtavg.suites.avgen import AggregationError, aggregate_table, read_table
    from mtavg.suites.avgen import aggregate as aggregate_records
    from mtavg.suites.avgen_records import RecordsInvalid, read_records

    if (records_dir is None) == (table is None):
        _fail("give either RECORDS_DIR or --table FILE.csv (exactly one)")
    try:
        if table is not None:
            totals = aggregate_table(read_table(table), strict=strict)
            source = str(table)
        else:
            totals = aggregate_records(read_records(records_dir), strict=strict, pitch_as_music=pitch_as_music)
            source = str(records_dir)
    except (AggregationError, RecordsInvalid) as exc:
        _fail(str(exc))
    if as_json:
        sys.stdout.write(json.dumps({k: t.to_dict() for k, t in totals.items()}, indent=1) + "\n")
        return
    mode = "strict" if strict else "default: re-normalised over present modules"
    print_totals(totals, title=f"AVGen-Bench total ({mode}) — {source}")


@avgen_app.command()
def match(
    prompts_dir: Annotated[Path, typer.Argument(help="directory of <category>.json prompt files")],
    clips_root: Annotated[Path, typer.Argument(help="a generator's clips: <root>/<category>/<name>.mp4")],
    as_json: Annotated[bool, Opt("--json", help="print JSON")] = False,
) -> None:
    """Pair prompts with clips by AVGen-Bench's filename rule; list unmatched prompts and clips."""
    from mtavg.suites.avgen_prompts import PromptsInvalid, load_prompts, match_clips

    try:
        suite = load_prompts(prompts_dir)
        result = match_clips(suite, clips_root)
    except PromptsInvalid as exc:
        _fail(str(exc))
    if as_json:
        payload = result.to_dict()
        payload["ignored_files"] = [str(p) for p in suite.ignored_files]
        sys.stdout.write(json.dumps(payload, indent=1, ensure_ascii=False) + "\n")
        return
    console.print(f"{len(suite.prompts)} prompts, {len(result.matched)} matched, "
                  f"{len(result.unmatched_prompts)} prompts without a clip, "
                  f"{len(result.unmatched_clips)} clips without a prompt", highlight=False)
    for path in suite.ignored_files:
        console.print(f"ignored (not a category file): {path}", highlight=False)
    for p in result.unmatched_prompts:
        console.print(f"no clip: {p.clip_relpath}  ({p.source})", highlight=False, markup=False)
    for c in result.unmatched_clips:
        console.print(f"no prompt: {c.relative_to(result.clips_root).as_posix()}", highlight=False, markup=False)


def _suite_and_root(prompts_dir: Path, clips_root: Path):
    from mtavg.suites.avgen_prompts import PromptsInvalid, load_prompts

    try:
        return load_prompts(prompts_dir)
    except PromptsInvalid as exc:
        _fail(str(exc))


def _report_run(result: dict, out: Path) -> None:
    for module, path in result["files"].items():
        console.print(f"{module}: {path}", highlight=False)
    for module, why in result.get("unavailable", {}).items():
        console.print(f"{module}: not run ({why})", highlight=False, markup=False)
    for rel in result["unmatched_prompts"]:
        console.print(f"no clip (failed in every module): {rel}", highlight=False, markup=False)
    for rel in result["unmatched_clips"]:
        console.print(f"no prompt (not scored): {rel}", highlight=False, markup=False)
    console.print(f"next: mtavg avgen aggregate {out}", highlight=False)


@avgen_app.command("run")
def run_modules(
    prompts_dir: Annotated[Path, typer.Argument(help="directory of <category>.json prompt files")],
    clips_root: Annotated[Path, typer.Argument(help="a generator's clips: <root>/<category>/<name>.mp4")],
    out: Annotated[Path, Opt("--out", help="records directory (records go to OUT/<generator>/)")],
    generator: Annotated[str, Opt("--generator", help="the generator's name in the records")],
    modules: Annotated[str, Opt("--modules", help="comma list of AV, Lip, Aud, Pitch")] = "AV,Lip,Aud,Pitch",
    backend: Annotated[str, Opt("--backend", help="auto (plugins when weights are here) | models | signal")] = "auto",
    jobs: Annotated[int, Opt("--jobs", help="worker processes")] = 2,
    executor: Annotated[str, Opt("--executor", help="local | ray")] = "local",
    address: Annotated[Optional[str], Opt("--address", help="Ray address")] = None,  # noqa: UP045
    progress: Annotated[bool, Opt("--progress/--no-progress", help="show a progress bar")] = True,
) -> None:
    """Offline AVGen-Bench modules (AV, Lip, Aud, Pitch) into module records; re-run to resume."""
    from mtavg.executors import make_executor
    from mtavg.progress import ItemProgress
    from mtavg.suites.avgen_modules import run_offline_modules
    from mtavg.suites.avgen_prompts import match_clips

    suite = _suite_and_root(prompts_dir, clips_root)
    names = [m.strip() for m in modules.split(",") if m.strip()]
    try:
        total = len(match_clips(suite, clips_root).matched)
        runner = make_executor(executor, jobs=jobs, address=address)
        with ItemProgress(total, label="clips", enabled=progress) as bar:
            result = run_offline_modules(suite, clips_root, out, generator=generator, modules=names,
                                         backend=backend, executor=runner,
                                         on_done=lambda r: bar.advance({**r, "valid": not r.get("error")}))
    except (ValueError, OSError) as exc:
        _fail(str(exc))
    _report_run(result, out)


@avgen_app.command("judge")
def judge_modules(
    prompts_dir: Annotated[Path, typer.Argument(help="directory of <category>.json prompt files")],
    clips_root: Annotated[Path, typer.Argument(help="a generator's clips: <root>/<category>/<name>.mp4")],
    out: Annotated[Path, Opt("--out", help="records directory (records go to OUT/<generator>/)")],
    generator: Annotated[str, Opt("--generator", help="the generator's name in the records")],
    model: Annotated[str, Opt("--model", help="evaluator: openai:NAME, gemini:NAME, hf:PATH")],
    modules: Annotated[str, Opt("--modules", help="comma list of Text, Speech, HiPhy, Holistic")] = "Text,Speech,HiPhy,Holistic",
    base_url: Annotated[Optional[list[str]], Opt("--base-url", help="endpoint(s) for openai:")] = None,  # noqa: UP045
    api_key_env: Annotated[Optional[str], Opt("--api-key-env", help="env variable holding the API key")] = None,  # noqa: UP045
    option: Annotated[Optional[list[str]], Opt("--option", help="backend option KEY=VALUE")] = None,  # noqa: UP045
    concurrency: Annotated[int, Opt("--concurrency", help="requests in flight")] = 4,
    cache: Annotated[bool, Opt("--cache/--no-cache", help="use the response cache")] = True,
    cache_path: Annotated[Optional[Path], Opt("--cache-path", help="SQLite cache file")] = None,  # noqa: UP045
    timeout: Annotated[float, Opt("--timeout", help="seconds per request")] = 300.0,
    progress: Annotated[bool, Opt("--progress/--no-progress", help="show a progress bar")] = True,
) -> None:
    """Judged AVGen-Bench modules through an evaluator, scores recombined in code; re-run to resume."""
    from mtavg.cli_run import parse_options
    from mtavg.endpoints import endpoint_options
    from mtavg.progress import ItemProgress
    from mtavg.suites.avgen_judge import run_judge_modules
    from mtavg.suites.avgen_prompts import match_clips

    suite = _suite_and_root(prompts_dir, clips_root)
    names = [m.strip() for m in modules.split(",") if m.strip()]
    try:
        opts = parse_options(option)
        if api_key_env:
            opts["api_key_env"] = api_key_env
        endpoint_opts, concurrency = endpoint_options(model, base_url, None, concurrency)
        opts.update(endpoint_opts)
        total = len(match_clips(suite, clips_root).matched) * len(names)
        with ItemProgress(total, label="judgements", enabled=progress) as bar:
            result = run_judge_modules(suite, clips_root, out, generator=generator, evaluator=model, modules=names,
                                       concurrency=concurrency, cache=cache, cache_path=cache_path,
                                       timeout_s=timeout,
                                       on_done=lambda r: bar.advance({**r, "valid": r.get("reply") is not None}),
                                       **opts)
    except (ValueError, OSError) as exc:
        _fail(str(exc))
    _report_run(result, out)
