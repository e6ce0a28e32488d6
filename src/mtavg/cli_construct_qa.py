"""`mtavg construct qa | review ... | labelstudio ...`: annotations -> QA benchmark -> verified benchmark.

Thin: parses flags, calls :mod:`mtavg.construct.qa`, :mod:`~mtavg.construct.review` and
:mod:`~mtavg.construct.labelstudio`, prints what was written. Registers itself on ``construct_app``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from mtavg.cli import _fail, err
from mtavg.cli_construct import construct_app

Opt = typer.Option
review_app = typer.Typer(no_args_is_help=True, help="Two-reviewer verification: assign, import, queue, "
                                                     "adjudicate, finalize.")
labelstudio_app = typer.Typer(no_args_is_help=True, help="Label Studio: labelling config, task export, "
                                                          "export import.")
construct_app.add_typer(review_app, name="review")
construct_app.add_typer(labelstudio_app, name="labelstudio")


def _names(text: str | None) -> list[str]:
    return [n.strip() for n in (text or "").split(",") if n.strip()]


def _user_map(pairs: list[str] | None) -> dict[str, str]:
    out = {}
    for p in pairs or []:
        key, sep, name = p.partition("=")
        if not sep or not key.strip() or not name.strip():
            _fail(f"--user {p!r}: expected LABEL_STUDIO_USER_ID=REVIEWER")
        out[key.strip()] = name.strip()
    return out


# ---------------------------------------------------------------- qa
@construct_app.command()
def qa(
    annotations: Annotated[Path, typer.Argument(help="annotations.jsonl (one video per line)", exists=True,
                                                dir_okay=False)],
    out: Annotated[Path, Opt(help="benchmark directory to write")],
    videos: Annotated[Optional[Path], Opt(help="clip metadata in videos.jsonl shape: path, duration_s, "  # noqa: UP045
                                               "setting, script.script_id (default: videos.jsonl beside "
                                               "the annotations)")] = None,
    seed: Annotated[int, Opt(help="seed for distractors, positions and templates")] = 0,
    single_per_failure: Annotated[int, Opt(help="single-choice wordings per annotated failure")] = 1,
    window: Annotated[float, Opt(help="temporal grid step in seconds")] = 2.0,
    formats: Annotated[str, Opt(help="comma-separated formats to build")] = "single,multi,pairwise,temporal",
    templates: Annotated[Optional[Path], Opt(help="question templates JSON (default: built-in)")] = None,  # noqa: UP045
    force: Annotated[bool, Opt("--force", help="replace an existing benchmark in --out")] = False,
) -> None:
    """Generate QA items (4 formats, >= 20 templates) from failure annotations; writes a valid benchmark."""
    from mtavg.annotations import AnnotationsInvalid, load_annotations
    from mtavg.construct.qa import QAConfig, QAConstructionError, build_qa
    from mtavg.construct.qa_bench import VideosMetaInvalid, load_videos_meta, write_benchmark
    from mtavg.construct.templates import TemplateError, load_templates

    meta_file = videos or annotations.parent / "videos.jsonl"
    if not meta_file.is_file():
        _fail(f"no clip metadata: {meta_file} not found (pass --videos FILE; the clips' paths are needed)")
    try:
        anns = load_annotations(annotations)
        meta = load_videos_meta(meta_file)
        config = QAConfig(seed=seed, single_per_failure=single_per_failure, window_s=window,
                          formats=tuple(_names(formats)))
        result = build_qa(anns, meta, config=config, templates=load_templates(templates) if templates else None)
        stats = write_benchmark(result.items, anns, meta, meta_file.parent, out, skipped=result.skipped,
                                overwrite=force)
    except (AnnotationsInvalid, VideosMetaInvalid, TemplateError, QAConstructionError, FileExistsError,
            ValueError) as exc:
        _fail(str(exc))
    per_format = ", ".join(f"{n} {f}" for f, n in stats["formats"].items())
    err.print(f"{stats['n_items']} items ({per_format}) on {stats['n_videos']} clips, "
              f"{len(stats['templates'])} templates -> {out} (stats.md)", highlight=False)
    for reason, n in stats["skipped"].items():
        err.print(f"  not generated: {n} x {reason}", highlight=False)


# ---------------------------------------------------------------- review
def _workspace(path: Path):
    from mtavg.construct.review import ReviewError, ReviewWorkspace

    try:
        return ReviewWorkspace(path)
    except ReviewError as exc:
        _fail(str(exc))


@review_app.command("assign")
def review_assign(
    bench: Annotated[str, typer.Argument(help="benchmark directory to review")],
    workspace: Annotated[Path, Opt(help="review workspace directory to create")],
    reviewers: Annotated[str, Opt(help="comma-separated reviewer pool (>= 2; >= 3 to adjudicate from it)")],
    adjudicators: Annotated[Optional[str], Opt(help="third reviewers (default: the pool)")] = None,  # noqa: UP045
    seed: Annotated[int, Opt(help="seed for assignment ties")] = 0,
    force: Annotated[bool, Opt("--force", help="start the workspace over")] = False,
) -> None:
    """Give every item two distinct reviewers (balanced load); write one CSV sheet per reviewer."""
    from mtavg.bench import BenchmarkInvalid, BenchmarkNotFound
    from mtavg.construct.review import ReviewError, ReviewWorkspace

    try:
        ws = ReviewWorkspace.create(workspace, bench, _names(reviewers), seed=seed,
                                    adjudicators=_names(adjudicators) or None, overwrite=force)
    except (ReviewError, FileExistsError, BenchmarkNotFound, BenchmarkInvalid) as exc:
        _fail(str(exc))
    load = {n: sum(n in r for r in ws.assignments().values()) for n in ws.manifest["reviewers"]}
    err.print(f"{len(ws.assignments())} items assigned; load {load}; sheets in {workspace / 'sheets'}",
              highlight=False)


def _import(workspace: Path, files: list[Path], users: list[str] | None, adjudication: bool) -> None:
    from mtavg.construct.labelstudio import is_labelstudio_export, read_export
    from mtavg.construct.verdicts import VerdictsInvalid, read_verdict_rows

    ws = _workspace(workspace)
    total = 0
    for f in files:
        try:
            rows = read_export(f, user_map=_user_map(users)) if is_labelstudio_export(f) else read_verdict_rows(f)
            total += (ws.import_adjudications if adjudication else ws.import_verdicts)(list(rows), str(f))
        except (VerdictsInvalid, FileNotFoundError) as exc:
            _fail(str(exc))
    err.print(f"{total} {'adjudication' if adjudication else 'verdict'}(s) imported into {workspace}",
              highlight=False)


@review_app.command("import")
def review_import(
    workspace: Annotated[Path, typer.Argument(help="review workspace")],
    files: Annotated[list[Path], typer.Argument(help="verdict files: .csv sheets, .jsonl, or Label Studio "
                                                     "JSON exports")],
    user: Annotated[Optional[list[str]], Opt(help="Label Studio user id -> reviewer, ID=NAME (repeatable)")] = None,  # noqa: UP045
) -> None:
    """Import first-round verdicts (checked against the benchmark and the assignment)."""
    _import(workspace, files, user, adjudication=False)


@review_app.command("agreement")
def review_agreement(
    workspace: Annotated[Path, typer.Argument(help="review workspace")],
    n_boot: Annotated[int, Opt(help="bootstrap resamples for the kappa CI")] = 1000,
    as_json: Annotated[bool, Opt("--json", help="print JSON")] = False,
) -> None:
    """Raw agreement and Cohen's kappa (overall and per sub-dimension, bootstrap 95% CI)."""
    from mtavg.construct.review import ReviewError

    try:
        result = _workspace(workspace).agreement(n_boot=n_boot)
    except ReviewError as exc:
        _fail(str(exc))
    if as_json:
        sys.stdout.write(json.dumps(result, indent=1) + "\n")
        return
    for scope, a in [("overall", result["overall"]), *result["per_sub_dimension"].items()]:
        kappa = "undefined" if a["kappa"] is None else f"{a['kappa']:.3f}"
        ci = "" if a["ci95"] is None else f" [{a['ci95'][0]:.3f}, {a['ci95'][1]:.3f}]"
        sys.stdout.write(f"{scope:8s} n={a['n']:4d} agreement={100 * a['raw_agreement']:5.1f}% kappa={kappa}{ci}\n")


@review_app.command("queue")
def review_queue(workspace: Annotated[Path, typer.Argument(help="review workspace")]) -> None:
    """Send every disagreement to a third reviewer (queue.jsonl + adjudication sheets)."""
    from mtavg.construct.review import ReviewError

    try:
        entries = _workspace(workspace).build_queue()
    except ReviewError as exc:
        _fail(str(exc))
    err.print(f"{len(entries)} disagreement(s) queued in {workspace / 'queue.jsonl'}", highlight=False)


@review_app.command("adjudicate")
def review_adjudicate(
    workspace: Annotated[Path, typer.Argument(help="review workspace")],
    files: Annotated[list[Path], typer.Argument(help="third-reviewer verdict files (.csv, .jsonl, Label Studio)")],
    user: Annotated[Optional[list[str]], Opt(help="Label Studio user id -> reviewer, ID=NAME (repeatable)")] = None,  # noqa: UP045
) -> None:
    """Import the third reviewers' verdicts on queued items."""
    _import(workspace, files, user, adjudication=True)


@review_app.command("finalize")
def review_finalize(
    workspace: Annotated[Path, typer.Argument(help="review workspace")],
    out: Annotated[Path, Opt(help="directory for the accepted benchmark")],
    drop_open: Annotated[bool, Opt("--drop-open", help="leave out items still pending or unresolved")] = False,
    n_boot: Annotated[int, Opt(help="bootstrap resamples for the kappa CI")] = 1000,
    force: Annotated[bool, Opt("--force", help="replace an existing benchmark in --out")] = False,
) -> None:
    """Apply agreed and adjudicated verdicts; write the accepted benchmark and review_report.md/json."""
    from mtavg.construct.review import ReviewError
    from mtavg.construct.review_finalize import finalize

    try:
        report = finalize(_workspace(workspace), out, drop_open=drop_open, n_boot=n_boot, overwrite=force)
    except (ReviewError, FileExistsError) as exc:
        _fail(str(exc))
    o = report["agreement"]["overall"]
    kappa = "undefined" if o["kappa"] is None else f"{o['kappa']:.3f}"
    err.print(f"{report['accepted_items']} of {report['n_items']} items accepted ({report['decisions']}); "
              f"kappa {kappa}, agreement {100 * o['raw_agreement']:.1f}% -> {out}", highlight=False)


# ---------------------------------------------------------------- Label Studio
@labelstudio_app.command("config")
def ls_config(
    pairwise: Annotated[bool, Opt("--pairwise", help="config for pairwise items (two clips)")] = False,
    waveform: Annotated[bool, Opt(help="add an audio waveform synced to the video")] = True,
    out: Annotated[Optional[Path], Opt(help="file to write (default: print)")] = None,  # noqa: UP045
) -> None:
    """Print or write the Label Studio labelling config (XML)."""
    from mtavg.construct.labelstudio import labeling_config

    text = labeling_config(pairwise=pairwise, waveform=waveform)
    if out is None:
        sys.stdout.write(text)
    else:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text, encoding="utf-8")


@labelstudio_app.command("export")
def ls_export(
    bench: Annotated[str, typer.Argument(help="benchmark directory")],
    out: Annotated[Path, Opt(help="directory for config*.xml and tasks*.json")],
    review: Annotated[Optional[Path], Opt(help="review workspace: one task per assigned reviewer")] = None,  # noqa: UP045
    reviewer: Annotated[Optional[str], Opt(help="only this reviewer's tasks (with --review)")] = None,  # noqa: UP045
    url_prefix: Annotated[str, Opt(help="prefix of clip URLs")] = "/data/local-files/?d=",
    document_root: Annotated[Optional[Path], Opt(help="clip paths are relative to this (default: the "  # noqa: UP045
                                                      "bench's parent = LOCAL_FILES_DOCUMENT_ROOT)")] = None,
) -> None:
    """Write Label Studio import JSON (single-clip and pairwise tasks apart) and their configs."""
    from mtavg.construct.labelstudio import export_tasks, labeling_config

    b = _load_bench(bench)
    assignments = _workspace(review).assignments() if review else None
    out.mkdir(parents=True, exist_ok=True)
    url = {"url_prefix": url_prefix, "document_root": document_root}
    for suffix, pairwise in (("", False), ("_pairwise", True)):
        try:
            tasks = export_tasks(b, assignments=assignments, reviewer=reviewer, pairwise=pairwise, **url)
        except ValueError as exc:
            _fail(str(exc))
        if not tasks:
            continue
        (out / f"tasks{suffix}.json").write_text(json.dumps(tasks, indent=1, ensure_ascii=False) + "\n",
                                                 encoding="utf-8")
        (out / f"config{suffix}.xml").write_text(labeling_config(pairwise=pairwise), encoding="utf-8")
        err.print(f"{len(tasks)} task(s) -> {out / f'tasks{suffix}.json'} (config{suffix}.xml)", highlight=False)


def _load_bench(bench: str):
    from mtavg.cli import _load

    return _load(bench)


@labelstudio_app.command("import")
def ls_import(
    export: Annotated[Path, typer.Argument(help="Label Studio JSON or JSON-MIN export", exists=True,
                                           dir_okay=False)],
    out: Annotated[Optional[Path], Opt(help="verdicts .jsonl to write")] = None,  # noqa: UP045
    review: Annotated[Optional[Path], Opt(help="import straight into this review workspace")] = None,  # noqa: UP045
    adjudication: Annotated[bool, Opt("--adjudication", help="the export holds third-reviewer verdicts")] = False,
    user: Annotated[Optional[list[str]], Opt(help="Label Studio user id -> reviewer, ID=NAME (repeatable)")] = None,  # noqa: UP045
) -> None:
    """Read a Label Studio export into verdicts (a .jsonl file, or a review workspace)."""
    from mtavg.construct.labelstudio import read_export
    from mtavg.construct.verdicts import VerdictsInvalid, write_verdicts

    if (out is None) == (review is None):
        _fail("give exactly one of --out FILE or --review WORKSPACE")
    try:
        rows = read_export(export, user_map=_user_map(user))
    except VerdictsInvalid as exc:
        _fail(str(exc))
    if out is not None:
        write_verdicts([v for _, v in rows], out)
        err.print(f"{len(rows)} verdict(s) -> {out}", highlight=False)
    else:
        _import(review, [export], user, adjudication)  # type: ignore[arg-type]
