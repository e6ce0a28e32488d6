"""Prompt templates, one file per QA format; ``render_prompt`` is the only renderer."""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from string import Template

from mtavg.bench.schema import FORMATS, QAItem


@lru_cache(maxsize=len(FORMATS))
def load_template(fmt: str) -> Template:
    if fmt not in FORMATS:
        raise ValueError(f"no prompt template for format {fmt!r} (known: {', '.join(FORMATS)})")
    return Template(resources.files(__package__).joinpath(f"{fmt}.txt").read_text(encoding="utf-8"))


def _fmt_seconds(s: float) -> str:
    return f"{s:.1f}".rstrip("0").rstrip(".") if s != int(s) else f"{int(s)}"


def render_prompt(item: QAItem) -> str:
    """The text sent to an evaluator for ``item``: question, lettered options, time windows if temporal."""
    options = "\n".join(f"{label}. {text}" for label, text in item.options.items())
    time_options = "\n".join(
        f"{label}. {_fmt_seconds(start)}s - {_fmt_seconds(end)}s"
        for label, (start, end) in (item.time_options or {}).items()
    )
    # safe_substitute: a literal "$" in a question must not raise at evaluation time.
    return load_template(item.format).safe_substitute(
        question=item.question, options=options, time_options=time_options
    )
