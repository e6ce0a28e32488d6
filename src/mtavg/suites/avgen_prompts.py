"""AVGen-Bench prompt suites and the prompt -> clip filename rule.

A suite is a directory of ``<category>.json`` files, each a JSON list of
``{"content": short title, "prompt": full text, "style": optional}``. A generator's clips live at
``<root>/<category>/<clip_stem(content)>.mp4``.

The filename rule is AVGen-Bench's own (``safe_filename`` in its generation runner), so clips made
with its ``batch_generate.py`` match: strip the content; replace each of ``/ \\ : * ? " < > |`` and
newline, carriage return, tab with ``_``; collapse whitespace runs to one space and strip; an empty
result becomes ``untitled``; cut to 180 characters and strip trailing spaces. Case is kept.

Unlike the upstream loader, an item without ``content`` or ``prompt`` is an error (it named no clip,
so skipping it would shrink the suite silently), two prompts that map to one clip are an error, and
matching lists unmatched prompts and unmatched clips explicitly.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CATEGORIES: tuple[str, ...] = (
    "ads", "animals", "asmr", "chemical_reaction", "cooking", "gameplays", "movie_trailer",
    "musical_instrument_tutorial", "news", "physical_experiment", "sports",
)
CLIP_EXT = ".mp4"
MAX_STEM_CHARS = 180

_UNSAFE = re.compile(r'[/\\:*?"<>|\n\r\t]')
_SPACES = re.compile(r"\s+")


class PromptsInvalid(ValueError):
    """A prompt file breaks the format; the message names file, item index and field."""


@dataclass(frozen=True)
class Prompt:
    """One prompt of the suite; ``source`` is ``file#index`` for error messages."""

    category: str
    content: str
    prompt: str
    style: str | None = None
    source: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def clip_relpath(self) -> str:
        """Where its clip lives under a generator's root, with ``/`` separators."""
        return f"{self.category}/{clip_stem(self.content)}{CLIP_EXT}"


def clip_stem(content: str) -> str:
    """The clip's file name without extension, from the prompt's ``content`` (AVGen-Bench's rule)."""
    name = _UNSAFE.sub("_", str(content).strip())
    name = _SPACES.sub(" ", name).strip() or "untitled"
    return name[:MAX_STEM_CHARS].rstrip()


@dataclass(frozen=True)
class PromptSuite:
    """The prompts of a directory, plus the ``*.json`` files that were not category files."""

    root: Path
    prompts: tuple[Prompt, ...]
    ignored_files: tuple[Path, ...] = ()

    @property
    def categories(self) -> tuple[str, ...]:
        return tuple(c for c in CATEGORIES if any(p.category == c for p in self.prompts))


def _string_field(item: dict[str, Any], name: str, where: str, *, required: bool) -> str | None:
    value = item.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip():
        raise PromptsInvalid(f"{where}: field '{name}' must be a non-empty string, got {value!r}")
    return value


def load_prompt_file(path: Path, category: str) -> list[Prompt]:
    """The prompts of one ``<category>.json``: a JSON list of objects with ``content`` and ``prompt``."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise PromptsInvalid(f"{path}:{exc.lineno}: not JSON ({exc.msg})") from exc
    if not isinstance(data, list):
        raise PromptsInvalid(f"{path}: must be a JSON list of prompts, got {type(data).__name__}")
    prompts: list[Prompt] = []
    for i, item in enumerate(data):
        where = f"{path}#{i}"
        if not isinstance(item, dict):
            raise PromptsInvalid(f"{where}: each prompt must be an object, got {type(item).__name__}")
        content = _string_field(item, "content", where, required=True)
        text = _string_field(item, "prompt", where, required=True)
        style = _string_field(item, "style", where, required=False)
        extra = {k: v for k, v in item.items() if k not in ("content", "prompt", "style")}
        prompts.append(Prompt(category, content or "", text or "", style, where, extra))
    return prompts


def _check_unique_clips(prompts: Iterable[Prompt]) -> None:
    seen: dict[str, Prompt] = {}
    for p in prompts:
        first = seen.setdefault(p.clip_relpath, p)
        if first is not p:
            raise PromptsInvalid(f"{p.source}: maps to clip {p.clip_relpath!r}, as does {first.source}; "
                                 "make the 'content' titles distinct")


def load_prompts(directory: str | Path) -> PromptSuite:
    """Every ``<category>.json`` in ``directory`` (one of the 11 categories); other ``*.json`` are listed."""
    root = Path(directory)
    if not root.is_dir():
        raise PromptsInvalid(f"{root}: not a directory")
    prompts: list[Prompt] = []
    ignored: list[Path] = []
    for path in sorted(root.glob("*.json")):
        if path.stem in CATEGORIES:
            prompts.extend(load_prompt_file(path, path.stem))
        else:
            ignored.append(path)
    if not prompts:
        raise PromptsInvalid(f"{root}: no prompts; expected <category>.json for categories {', '.join(CATEGORIES)}")
    _check_unique_clips(prompts)
    return PromptSuite(root, tuple(prompts), tuple(ignored))


@dataclass(frozen=True)
class ClipMatch:
    """Prompts paired with their clips, and everything that did not pair, both ways."""

    clips_root: Path
    matched: tuple[tuple[Prompt, Path], ...]
    unmatched_prompts: tuple[Prompt, ...]
    unmatched_clips: tuple[Path, ...]

    @property
    def complete(self) -> bool:
        return not self.unmatched_prompts and not self.unmatched_clips

    def to_dict(self) -> dict[str, Any]:
        rel = lambda p: p.relative_to(self.clips_root).as_posix()  # noqa: E731
        return {
            "clips_root": str(self.clips_root),
            "matched": [{"category": p.category, "content": p.content, "clip": rel(c)} for p, c in self.matched],
            "unmatched_prompts": [{"category": p.category, "content": p.content, "expected_clip": p.clip_relpath,
                                   "source": p.source} for p in self.unmatched_prompts],
            "unmatched_clips": [rel(c) for c in self.unmatched_clips],
        }


def match_clips(prompts: PromptSuite | Iterable[Prompt], clips_root: str | Path, ext: str = CLIP_EXT) -> ClipMatch:
    """Pair each prompt with ``<root>/<category>/<clip_stem(content)><ext>``; list the rest both ways."""
    root = Path(clips_root)
    if not root.is_dir():
        raise PromptsInvalid(f"{root}: clips root is not a directory")
    items = list(prompts.prompts if isinstance(prompts, PromptSuite) else prompts)
    _check_unique_clips(items)
    clips = {p.relative_to(root).as_posix(): p for p in root.rglob(f"*{ext}") if p.is_file()}
    expected = {f"{p.category}/{clip_stem(p.content)}{ext}": p for p in items}
    matched = tuple((p, clips[rel]) for rel, p in expected.items() if rel in clips)
    unmatched_prompts = tuple(p for rel, p in expected.items() if rel not in clips)
    unmatched_clips = tuple(clips[rel] for rel in sorted(clips) if rel not in expected)
    return ClipMatch(root, matched, unmatched_prompts, unmatched_clips)
