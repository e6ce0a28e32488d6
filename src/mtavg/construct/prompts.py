"""Prompts of the construction pipeline: the shot-analysis request and per-segment generation prompts.

Templates are files under ``mtavg/prompts/construct/`` rendered with :class:`string.Template` like the
evaluation prompts in :mod:`mtavg.prompts`. Rendering is strict: a placeholder without a value is an
error naming the template, never a prompt that silently says ``$premise``.

Generation modes:
- ``text``: every segment is a text-to-video prompt.
- ``continuation``: segment 1 is text-to-video; every later segment is image+text, the image being the
  last frame of the previous segment's generated clip (named in the record, produced by the generator run).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from functools import lru_cache
from importlib import resources
from string import Template
from typing import Any, Literal

from mtavg.construct.script import TARGET_SEGMENT_S, Script, Segment, script_json_schema

Mode = Literal["text", "continuation"]
MODES: tuple[str, ...] = ("text", "continuation")
TEMPLATE_NAMES = ("analyse", "analyse_retry", "segment_text", "segment_continuation")
#: how much of a rejected answer is quoted back in a re-ask (the model rewrites it whole anyway)
MAX_QUOTED_CHARS = 6000


class PromptTemplateError(ValueError):
    """A construction template is unknown, or has a placeholder with no value."""


@lru_cache(maxsize=len(TEMPLATE_NAMES))
def load_construct_template(name: str) -> str:
    if name not in TEMPLATE_NAMES:
        raise PromptTemplateError(f"no construction template {name!r} (known: {', '.join(TEMPLATE_NAMES)})")
    return resources.files("mtavg.prompts").joinpath("construct").joinpath(f"{name}.txt").read_text(encoding="utf-8")


def render_template(text: str, values: dict[str, Any], *, name: str) -> str:
    """Substitute every ``$placeholder``; a missing value or a stray ``$`` raises PromptTemplateError."""
    try:
        return Template(text).substitute({k: str(v) for k, v in values.items()}).strip() + "\n"
    except KeyError as e:
        raise PromptTemplateError(f"template {name}: placeholder ${e.args[0]} has no value "
                                  f"(available: {', '.join(sorted(values))})") from None
    except ValueError as e:  # "Invalid placeholder in string: line 3, col 5"
        raise PromptTemplateError(f"template {name}: {e} (write $$ for a literal dollar sign)") from None


def _seconds(s: float) -> str:
    return f"{s:.1f}".rstrip("0").rstrip(".")


# ---------------------------------------------------------------- analysis
def analysis_prompt(duration_s: float | None, *, has_audio: bool = True, template: str | None = None) -> str:
    """The shot-analysis request for one clip, with the script's JSON Schema embedded."""
    return render_template(template or load_construct_template("analyse"), {
        "duration": f"{_seconds(duration_s)} seconds" if duration_s else "an unknown number of seconds",
        "duration_s": f"{round(duration_s, 3):g}" if duration_s else "null",
        "audio_note": " and listen to its soundtrack" if has_audio else " (it has no soundtrack; leave dialogue "
                      "empty unless the lines can be read from subtitles or lips)",
        "target_min": _seconds(TARGET_SEGMENT_S[0]), "target_max": _seconds(TARGET_SEGMENT_S[1]),
        "schema": json.dumps(script_json_schema(), ensure_ascii=False, separators=(",", ":")),
    }, name="analyse")


def retry_prompt(base_prompt: str, previous_answer: str | None, errors: list[str]) -> str:
    """The re-ask after an invalid answer: the original request, the answer quoted, every error listed."""
    quoted = (previous_answer or "").strip() or "(empty answer)"
    if len(quoted) > MAX_QUOTED_CHARS:
        quoted = quoted[:MAX_QUOTED_CHARS] + f"\n... ({len(quoted) - MAX_QUOTED_CHARS} more characters)"
    return render_template(load_construct_template("analyse_retry"), {
        "base_prompt": base_prompt.strip(), "previous_answer": quoted,
        "errors": "\n".join(f"- {e}" for e in errors),
    }, name="analyse_retry")


# ---------------------------------------------------------------- generation
@dataclass(frozen=True)
class GenerationPrompt:
    """One segment's generation request, as a line of the prompts JSONL."""

    segment_index: int
    mode: Mode  # "text" (text-to-video) or "continuation" (image+text)
    start_s: float
    end_s: float
    duration_s: float
    prompt: str
    characters: tuple[str, ...]  # ids on screen or speaking
    #: continuation only: where the conditioning image comes from
    image: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "characters": list(self.characters)}


def _bullets(lines: list[str], empty: str) -> str:
    return "\n".join(f"- {x}" for x in lines) if lines else f"- {empty}"


def _segment_cast(script: Script, seg: Segment) -> list[str]:
    """Ids on screen or speaking, in registry order (a voice off screen still needs its voice described)."""
    present = set(seg.characters) | {line.speaker for line in seg.dialogue}
    return [c.id for c in script.characters if c.id in present]


def _segment_values(script: Script, seg: Segment) -> dict[str, Any]:
    cast = _segment_cast(script, seg)
    who = {c.id: c.descriptor for c in script.characters}
    characters = [f"{who[c]}: {script.character(c).appearance}; voice: {script.character(c).voice}" for c in cast]
    dialogue = [f"{who[line.speaker]} ({line.emotion}): \"{line.text}\"" for line in seg.dialogue]
    return {
        "index": seg.index, "n_segments": len(script.segments), "duration": _seconds(seg.length_s),
        "clip_summary": script.clip_summary, "premise": seg.premise, "setting": seg.setting, "tone": seg.tone,
        "characters": _bullets(characters, "no one on screen"), "dialogue": _bullets(dialogue, "no dialogue"),
        "actions": _bullets(seg.actions, "none noted"), "camera": _bullets(seg.camera, "none noted"),
        "rules": _bullets(script.inference_rules, "nothing beyond the above"),
    }


def generation_prompts(script: Script, mode: Mode = "text") -> list[GenerationPrompt]:
    """One prompt per segment, in order; in ``continuation`` mode every segment after the first is image+text."""
    if mode not in MODES:
        raise ValueError(f"unknown generation mode {mode!r}; choose one of: {', '.join(MODES)}")
    out: list[GenerationPrompt] = []
    for i, seg in enumerate(script.segments):
        values = _segment_values(script, seg)
        image = None
        if mode == "continuation" and i > 0:
            prev = script.segments[i - 1]
            values.update(previous_index=prev.index, previous_premise=prev.premise)
            image = {"source": "last_frame_of_previous_segment", "segment_index": prev.index}
            name = "segment_continuation"
        else:
            name = "segment_text"
        out.append(GenerationPrompt(
            segment_index=seg.index, mode="continuation" if image else "text", start_s=seg.start_s,
            end_s=seg.end_s, duration_s=round(seg.length_s, 3),
            prompt=render_template(load_construct_template(name), values, name=name),
            characters=tuple(_segment_cast(script, seg)), image=image,
        ))
    return out
