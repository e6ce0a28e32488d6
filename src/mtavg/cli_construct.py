"""`mtavg construct ...`: build a benchmark — film clip -> structured script -> generation prompts.

``construct_app`` is the sub-app; other construction commands (QA items, review, Label Studio) register
on it from their own modules (``from mtavg.cli_construct import construct_app``).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from mtavg.cli import _fail, app, err
from mtavg.cli_run import parse_options

Opt = typer.Option

construct_app = typer.Typer(no_args_is_help=True, help="Build a benchmark: clip -> script -> prompts -> QA.")
app.add_typer(construct_app, name="construct")


def _write_or_print(text: str, out: Path | None, what: str) -> None:
    if out is None:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text if text.endswith("\n") else text + "\n", encoding="utf-8")
    err.print(f"{what}: {out}", highlight=False)


@construct_app.command()
def analyse(
    video: Annotated[Path, typer.Argument(help="the film clip (mp4, mkv, ...)", exists=True, dir_okay=False)],
    model: Annotated[str, Opt(help="KIND:NAME of an omni model: openai:NAME, gemini:NAME, hf:PATH")],
    out: Annotated[Optional[Path], Opt(help="script JSON to write (default: print it)")] = None,  # noqa: UP045
    max_attempts: Annotated[int, Opt(help="answers to ask for before giving up (re-asks quote the errors)")] = 3,
    base_url: Annotated[Optional[str], Opt(help="OpenAI-compatible or Gemini endpoint")] = None,  # noqa: UP045
    api_key_env: Annotated[Optional[str], Opt(help="env variable holding the API key")] = None,  # noqa: UP045
    option: Annotated[Optional[list[str]], Opt(help="backend option KEY=VALUE (repeatable)")] = None,  # noqa: UP045
    timeout: Annotated[float, Opt(help="seconds per request")] = 600.0,
    call_attempts: Annotated[int, Opt(help="attempts per request on 429/5xx/timeouts")] = 4,
) -> None:
    """Ask a model for the clip's de-identified structured script; validate it, re-asking on errors."""
    from mtavg.construct.analyse import ScriptAnalysisFailed, make_analysis_evaluator
    from mtavg.construct.analyse import analyse as run_analysis
    from mtavg.evaluators import UnknownModel
    from mtavg.limits import RetryPolicy

    if max_attempts < 1:
        _fail("--max-attempts must be at least 1")
    options = parse_options(option)
    options.update({k: v for k, v in (("base_url", base_url), ("api_key_env", api_key_env)) if v})
    try:
        evaluator = make_analysis_evaluator(model, options)
        result = run_analysis(video, evaluator, max_attempts=max_attempts,
                              policy=RetryPolicy(max_attempts=call_attempts, timeout_s=timeout))
    except (UnknownModel, ValueError) as exc:
        _fail(str(exc))
    except ScriptAnalysisFailed as exc:
        _fail(str(exc), code=1)
    for warning in result.warnings:
        err.print(f"[yellow]warning:[/yellow] {warning}", highlight=False)
    script = result.script
    err.print(f"{video}: {len(script.segments)} segment(s), {len(script.characters)} character(s), "
              f"valid after {len(result.attempts)} attempt(s) of {result.model}", highlight=False)
    _write_or_print(script.to_json(), out, "script")


@construct_app.command()
def prompts(
    script: Annotated[Path, typer.Argument(help="a script JSON (as `construct analyse` writes it)")],
    out: Annotated[Optional[Path], Opt(help="prompts JSONL to write (default: print it)")] = None,  # noqa: UP045
    mode: Annotated[str, Opt(help="text: text-to-video for every segment; continuation: image+text "
                                  "from the previous segment's last frame after the first")] = "text",
) -> None:
    """Render one generation prompt per segment of a script (JSONL, one line per segment)."""
    from mtavg.construct.prompts import MODES, generation_prompts
    from mtavg.construct.script import ScriptInvalid, load_script

    if mode not in MODES:
        _fail(f"unknown --mode {mode!r}; choose one of: {', '.join(MODES)}")
    try:
        parsed = load_script(script)
    except ScriptInvalid as exc:
        _fail(str(exc))
    for warning in parsed.length_warnings():
        err.print(f"[yellow]warning:[/yellow] {script}: {warning}", highlight=False)
    records = generation_prompts(parsed, mode)  # type: ignore[arg-type]  # checked against MODES above
    _write_or_print("".join(json.dumps(r.to_dict(), ensure_ascii=False) + "\n" for r in records), out,
                    f"{len(records)} segment prompt(s), mode {mode}")


# The lead wires the QA / review / Label Studio commands (src/mtavg/cli_construct_qa.py), which add
# themselves to `construct_app`, into the registration import at the bottom of mtavg/cli.py.
