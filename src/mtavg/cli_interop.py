"""`mtavg serve-config`, `mtavg export lmms-eval`, `mtavg import lmms-eval`: working with vLLM and lmms-eval."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from mtavg.cli import _fail, _load, app, console

Opt = typer.Option

export_app = typer.Typer(no_args_is_help=True, help="Write a benchmark in another harness's format.")
import_app = typer.Typer(no_args_is_help=True, help="Turn another harness's outputs into mtavg predictions.")
app.add_typer(export_app, name="export")
app.add_typer(import_app, name="import")


@app.command(name="serve-config")
def serve_config(
    model: Annotated[str, typer.Argument(help="e.g. Qwen/Qwen2.5-Omni-7B (openai: prefix accepted)")],
    gpus: Annotated[Optional[int], Opt(help="tensor-parallel size per node (default: the model's)")] = None,  # noqa: UP045
    port: Annotated[int, Opt(help="server port")] = 8000,
    media_dir: Annotated[Optional[Path], Opt(  # noqa: UP045
        help="shared directory holding the clips: enables file:// media (--allowed-local-media-path)")] = None,
    node: Annotated[Optional[list[str]], Opt(help="host name of a GPU node (repeatable)")] = None,  # noqa: UP045
    bench: Annotated[Optional[str], Opt(  # noqa: UP045
        help="benchmark for the printed eval command (default: --media-dir, else BENCH)")] = None,
) -> None:
    """Print the vLLM command that serves an omni model for mtavg, and the matching `mtavg eval`."""
    from mtavg.serve_config import serve_config_text

    try:
        text = serve_config_text(model, gpus=gpus, port=port, media_dir=media_dir,
                                 nodes=tuple(node or ("node1", "node2")),
                                 bench=bench or (str(media_dir.resolve()) if media_dir else "BENCH"))
    except ValueError as exc:
        _fail(str(exc))
    sys.stdout.write(text)


@export_app.command(name="lmms-eval")
def export_lmms_eval(
    bench: Annotated[str, typer.Argument(help="benchmark directory or HF dataset id")],
    out: Annotated[Path, Opt(help="lmms-eval include path; the task goes to OUT/<task>/")],
    task: Annotated[Optional[str], Opt(help="task name (default mtavg_<bench>)")] = None,  # noqa: UP045
    media_root: Annotated[Optional[Path], Opt(  # noqa: UP045
        help="where the benchmark directory is mounted on the lmms-eval machine (default: here)")] = None,
) -> None:
    """Write an lmms-eval task (YAML + utils.py + docs) that runs this benchmark inside lmms-eval."""
    from mtavg.interop import export_lmms_eval as export

    b = _load(bench)
    try:
        exported = export(b, out, task=task, media_root=media_root)
    except ValueError as exc:
        _fail(str(exc))
    console.print(f"task {exported.task}: {exported.yaml} ({exported.n_docs} docs)\n"
                  f"run: lmms-eval --model MODEL --include_path {out} --tasks {exported.task} --log_samples "
                  f"--output_path logs/", highlight=False, markup=False)


@import_app.command(name="lmms-eval")
def import_lmms_eval(
    samples: Annotated[Path, typer.Argument(help="lmms-eval --log_samples output (*_samples_<task>.jsonl)")],
    out: Annotated[Path, Opt(help="predictions .jsonl to write (qid + raw) for `mtavg score`")],
    model: Annotated[Optional[str], Opt(help="model name to record")] = None,  # noqa: UP045
) -> None:
    """Turn lmms-eval's logged samples into mtavg predictions."""
    from mtavg.interop import LmmsEvalSamplesError, import_lmms_eval_samples

    try:
        n = import_lmms_eval_samples(samples, out, model=model)
    except (LmmsEvalSamplesError, OSError) as exc:
        _fail(str(exc))
    console.print(f"{n} predictions: {out}\nscore: mtavg score --bench BENCH --predictions {out} --out results.json",
                  highlight=False, markup=False)
