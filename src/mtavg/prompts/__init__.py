"""Prompt templates, one file per QA format; ``render_prompt`` is the only renderer."""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from string import Template

from mtavg.bench.schema import FORMATS, QAItem


def _template_version() -> str:
    """Hash of every template file: a wording change invalidates cached responses."""
    import hashlib

    digest = hashlib.sha256()
    for name in (*FORMATS, *EXTRA_TEMPLATES):
        digest.update(resources.files(__package__).joinpath(f"{name}.txt").read_bytes())
    return digest.hexdigest()[:16]


#: templates beside the per-format ones: the rationale judge, and AVBench-style yes/no questions
EXTRA_TEMPLATES: tuple[str, ...] = ("judge", "yes_no")
TEMPLATE_VERSION = _template_version()


@lru_cache(maxsize=8)
def load_template(fmt: str) -> Template:
    if fmt not in (*FORMATS, *EXTRA_TEMPLATES):
        raise ValueError(f"no prompt template for format {fmt!r} (known: {', '.join(FORMATS)})")
    return Template(resources.files(__package__).joinpath(f"{fmt}.txt").read_text(encoding="utf-8"))


def _fmt_seconds(s: float) -> str:
    return f"{s:.1f}".rstrip("0").rstrip(".") if s != int(s) else f"{int(s)}"


def _options_text(item: QAItem) -> str:
    return "\n".join(f"{label}. {text}" for label, text in item.options.items())


def render_judge_prompt(item: QAItem, chosen: list[str], chosen_time: list[str], rationale: str) -> str:
    """The rationale-consistency judge's prompt for one answered item (text only, no media)."""
    time = ""
    if item.time_options and chosen_time:
        windows = ", ".join(f"{_fmt_seconds(item.time_options[t][0])}s - {_fmt_seconds(item.time_options[t][1])}s"
                            for t in chosen_time if t in item.time_options)
        time = f"It located the failure at: {windows}\n"
    return load_template("judge").safe_substitute(
        question=item.question, options=_options_text(item),
        chosen=", ".join(f"{c}. {item.options.get(c, '')}" for c in chosen), chosen_time=time,
        rationale=rationale or "(none given)", evidence=item.evidence or "(no evidence annotated)",
    )


def render_prompt(item: QAItem) -> str:
    """The text sent to an evaluator for ``item``: question, lettered options, time windows if temporal."""
    options = _options_text(item)
    time_options = "\n".join(
        f"{label}. {_fmt_seconds(start)}s - {_fmt_seconds(end)}s"
        for label, (start, end) in (item.time_options or {}).items()
    )
    # safe_substitute: a literal "$" in a question must not raise at evaluation time.
    return load_template(item.format).safe_substitute(
        question=item.question, options=options, time_options=time_options
    )
