"""Question templates for QA construction: wordings per format and per category / sub-dimension.

The wordings live in ``qa_templates.json`` beside this module (or any file of the same shape passed
to :func:`load_templates`). A template applies to a gold failure mode when its ``scope`` holds the
mode: ``any``, ``category:<slug>`` or ``sub_dimension:<code>``. Wordings that would name the answer
are refused at load time: ``{mode}`` placeholders are only allowed in pairwise questions, where the
failure is given and the *clip* is the answer.
"""

from __future__ import annotations

import json
import string
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from mtavg.bench.schema import FORMATS
from mtavg.bench.validate import MAX_OPTIONS, MIN_OPTIONS
from mtavg.taxonomy import FailureMode, Taxonomy, load_taxonomy

TEMPLATES_FILE = "qa_templates.json"
COMMON_FIELDS = frozenset({"sub_dimension", "category"})
MODE_FIELDS = frozenset({"mode", "mode_lower", "mode_description"})  # would reveal the answer outside pairwise
REQUIRED_KEYS = ("id", "format", "scope", "question", "n_options")


class TemplateError(ValueError):
    """A template file breaks the rules; ``problems`` lists every defect as ``file: template id: message``."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__(f"{len(problems)} problem(s) in QA templates:\n" + "\n".join(f"  {p}" for p in problems))


@dataclass(frozen=True)
class Template:
    id: str
    format: str
    scope: str  # "any" | "category:<slug>" | "sub_dimension:<code>"
    question: str
    n_options: int

    def applies_to(self, mode: FailureMode) -> bool:
        kind, _, value = self.scope.partition(":")
        if kind == "any":
            return True
        return (mode.category if kind == "category" else mode.sub_dimension) == value

    def render(self, mode: FailureMode, tax: Taxonomy) -> str:
        """The question for gold ``mode`` (names lower-cased so they read inside a sentence)."""
        return self.question.format(
            sub_dimension=tax.sub_dimensions[mode.sub_dimension].name.lower(),
            category=tax.categories[mode.category].name.lower(),
            mode=mode.name, mode_lower=mode.name.lower(), mode_description=mode.description)


def _placeholders(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}


def _scope_problem(scope: Any, tax: Taxonomy) -> str | None:
    if not isinstance(scope, str):
        return f"scope must be a string, got {type(scope).__name__}"
    kind, _, value = scope.partition(":")
    known = {"category": tax.categories, "sub_dimension": tax.sub_dimensions}
    if scope == "any":
        return None
    if kind not in known:
        return f"scope {scope!r}: use 'any', 'category:<slug>' or 'sub_dimension:<code>'"
    if value not in known[kind]:
        return f"scope {scope!r}: unknown {kind} {value!r} (known: {', '.join(known[kind])})"
    return None


def _template_problems(raw: Any, tax: Taxonomy) -> list[str]:
    if not isinstance(raw, dict):
        return [f"expected an object, got {type(raw).__name__}"]
    out = [f"missing key {k!r}" for k in REQUIRED_KEYS if k not in raw]
    if out:
        return out
    fmt, n = raw["format"], raw["n_options"]
    if fmt not in FORMATS:
        out.append(f"format {fmt!r} is not one of {', '.join(FORMATS)}")
    scope = _scope_problem(raw["scope"], tax)
    if scope:
        out.append(scope)
    want = (2, 2) if fmt == "pairwise" else (MIN_OPTIONS, MAX_OPTIONS)
    if not isinstance(n, int) or isinstance(n, bool) or not want[0] <= n <= want[1]:
        out.append(f"n_options {n!r}: need an integer in {want[0]}-{want[1]} for {fmt}")
    question = raw["question"]
    if not isinstance(question, str) or not question.strip():
        return [*out, "question must be a non-empty string"]
    try:
        names = _placeholders(question)
    except ValueError as e:
        return [*out, f"question is not a valid format string: {e}"]
    allowed = COMMON_FIELDS | (MODE_FIELDS if fmt == "pairwise" else frozenset())
    for name in sorted(names - allowed):
        why = " (it would give the answer away)" if name in MODE_FIELDS else ""
        out.append(f"placeholder {{{name}}} is not allowed in {fmt} questions{why}")
    if fmt == "pairwise" and not names & {"mode", "mode_lower", "mode_description"}:
        out.append("pairwise questions must name the failure ({mode}, {mode_lower} or {mode_description})")
    return out


def parse_templates(data: Any, source: str) -> list[Template]:
    """Check every template of a decoded file; raise :class:`TemplateError` listing all problems."""
    tax = load_taxonomy()
    rows = data.get("templates") if isinstance(data, dict) else None
    if not isinstance(rows, list) or not rows:
        raise TemplateError([f"{source}: expected an object with a non-empty 'templates' list"])
    problems: list[str] = []
    seen: set[str] = set()
    out: list[Template] = []
    for i, raw in enumerate(rows):
        tid = raw.get("id") if isinstance(raw, dict) else None
        where = f"{source}: {tid or f'templates[{i}]'}"
        own = _template_problems(raw, tax)
        if isinstance(tid, str) and tid in seen:
            own.append("duplicate id")
        problems += [f"{where}: {p}" for p in own]
        if isinstance(tid, str):
            seen.add(tid)
        if not own:
            out.append(Template(raw["id"], raw["format"], raw["scope"], raw["question"], raw["n_options"]))
    if problems:
        raise TemplateError(problems)
    return out


@lru_cache(maxsize=1)
def _builtin() -> tuple[Template, ...]:
    text = resources.files(__package__).joinpath(TEMPLATES_FILE).read_text(encoding="utf-8")
    return tuple(parse_templates(json.loads(text), TEMPLATES_FILE))


def load_templates(path: str | Path | None = None) -> list[Template]:
    """The built-in templates, or those of ``path`` (same JSON shape)."""
    if path is None:
        return list(_builtin())
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise TemplateError([f"{path}:{e.lineno}: invalid JSON: {e.msg}"]) from e
    return parse_templates(data, str(path))


def templates_for(templates: list[Template], fmt: str, mode: FailureMode) -> list[Template]:
    """Templates of ``fmt`` whose scope holds ``mode``, in file order."""
    return [t for t in templates if t.format == fmt and t.applies_to(mode)]
