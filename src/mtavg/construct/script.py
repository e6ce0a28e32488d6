"""The structured script: what shot analysis turns a film clip into (MTAVG-Bench 2.0 construction).

A clip becomes a de-identified plan: a summary, inference rules, a character registry (role
descriptors, never actors' names) and segments of about 8-10 s, each with premise, setting, tone,
characters, dialogue lines (speaker, text, emotion), actions and camera notes. Generation prompts are
rendered from it (:mod:`mtavg.construct.prompts`).

Shape errors come from pydantic; the cross-field rules (times increasing and inside the clip,
speakers in the registry) are checked in one pass that reports every problem with its field path,
so an analysing model can be shown all of them at once. The 8-10 s length is a target: segments
outside it are warnings (:meth:`Script.length_warnings`), not errors.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    model_validator,
)

TARGET_SEGMENT_S: tuple[float, float] = (8.0, 10.0)
#: container durations and a model's rounding differ by a fraction of a second; tighter would re-ask for noise
TIME_TOLERANCE_S = 0.25

Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]
Seconds = Annotated[float, Field(ge=0)]


class ScriptInvalid(ValueError):
    """A script (a model's answer or a file) is not valid JSON or breaks the schema; ``errors`` lists all."""

    def __init__(self, errors: list[str], source: str | None = None) -> None:
        self.errors, self.source = list(errors), source
        where = f"{source}: " if source else ""
        super().__init__(f"{where}invalid script ({len(self.errors)} problem(s)):\n"
                         + "\n".join(f"  - {e}" for e in self.errors))


class _Strict(BaseModel):
    # Unknown keys are errors: a misspelt "dialog" must not silently drop every line of dialogue.
    model_config = ConfigDict(extra="forbid")


class Character(_Strict):
    id: Text = Field(description="Short id used everywhere else in the script, e.g. 'C1'.")
    descriptor: Text = Field(
        validation_alias=AliasChoices("descriptor", "name"),
        description="De-identified role description, e.g. 'the older detective'. Never an actor's, "
                    "celebrity's or other real person's name.")
    appearance: Text = Field(description="Age range, build, hair, clothing: enough to re-create the look.")
    voice: Text = Field(description="Pitch, timbre, pace, accent; 'does not speak' if silent.")


class DialogueLine(_Strict):
    speaker: Text = Field(description="A character id from the registry.")
    text: Text = Field(description="The line as spoken, in its original language.")
    emotion: Text = Field(description="The emotion the line is delivered with, e.g. 'restrained anger'.")
    start_s: Seconds | None = Field(None, description="Clip time the line starts, in seconds.")
    end_s: Seconds | None = Field(None, description="Clip time the line ends, in seconds.")


class Segment(_Strict):
    index: int = Field(ge=1, description="1, 2, 3, ... in order.")
    start_s: Seconds = Field(description="Clip time the segment starts, in seconds.")
    end_s: Seconds = Field(description="Clip time the segment ends, in seconds (aim for 8-10 s segments).")
    premise: Text = Field(description="What happens and why, in one or two sentences.")
    setting: Text = Field(description="Place, time of day, lighting, ambient sound.")
    tone: Text = Field(description="The mood of the segment, e.g. 'tense, hushed'.")
    characters: list[Text] = Field(default_factory=list, description="Ids of the characters on screen.")
    dialogue: list[DialogueLine] = Field(default_factory=list)
    actions: list[Text] = Field(default_factory=list, description="Visible actions, one per entry.")
    camera: list[Text] = Field(default_factory=list, description="Shot size, angle, movement, cuts.")

    @property
    def length_s(self) -> float:
        return self.end_s - self.start_s


class Script(_Strict):
    clip_summary: Text = Field(description="The whole clip in two or three sentences, de-identified.")
    inference_rules: list[Text] = Field(
        default_factory=list,
        description="Facts a generator must keep consistent that are inferred rather than seen, e.g. "
                    "'C1 is C2's mother', 'the argument continues off screen between segments'.")
    characters: list[Character] = Field(default_factory=list)
    segments: list[Segment] = Field(min_length=1)
    duration_s: float | None = Field(None, gt=0, description="Clip duration in seconds (filled in by the tool).")

    @model_validator(mode="after")
    def _cross_checks(self) -> Script:
        problems = script_problems(self)
        if problems:
            raise ValueError("\n".join(problems))
        return self

    def character(self, char_id: str) -> Character:
        for c in self.characters:
            if c.id == char_id:
                return c
        raise KeyError(f"no character {char_id!r} in the registry ({', '.join(c.id for c in self.characters)})")

    def length_warnings(self, target: tuple[float, float] = TARGET_SEGMENT_S) -> list[str]:
        """Segments whose length is outside the target range (a warning, never an error)."""
        lo, hi = target
        return [f"segments.{i}: {s.length_s:.2f} s long, outside the {lo:g}-{hi:g} s target"
                for i, s in enumerate(self.segments)
                if not lo - TIME_TOLERANCE_S <= s.length_s <= hi + TIME_TOLERANCE_S]

    def to_json(self) -> str:
        return self.model_dump_json(indent=1, exclude_none=True)


def script_problems(script: Script) -> list[str]:
    """Every cross-field problem, as ``field.path: message`` (field paths as pydantic writes them)."""
    problems: list[str] = []
    ids: dict[str, int] = {}
    for i, c in enumerate(script.characters):
        if c.id in ids:
            problems.append(f"characters.{i}.id: duplicate id {c.id!r} (also characters.{ids[c.id]})")
        ids.setdefault(c.id, i)
    known = ", ".join(ids) or "none"
    prev_end: float | None = None
    for i, seg in enumerate(script.segments):
        at = f"segments.{i}"
        if seg.index != i + 1:
            problems.append(f"{at}.index: is {seg.index}, expected {i + 1} (segments are numbered 1, 2, ... in order)")
        if seg.end_s <= seg.start_s:
            problems.append(f"{at}: end_s {seg.end_s:g} is not after start_s {seg.start_s:g}")
        if prev_end is not None and seg.start_s < prev_end - TIME_TOLERANCE_S:
            problems.append(f"{at}.start_s: {seg.start_s:g} is before the previous segment's end {prev_end:g} "
                            "(segments must be in time order and not overlap)")
        prev_end = seg.end_s
        if script.duration_s is not None and seg.end_s > script.duration_s + TIME_TOLERANCE_S:
            problems.append(f"{at}.end_s: {seg.end_s:g} is after the end of the clip ({script.duration_s:g} s)")
        for j, cid in enumerate(seg.characters):
            if cid not in ids:
                problems.append(f"{at}.characters.{j}: {cid!r} is not in the character registry ({known})")
        for j, line in enumerate(seg.dialogue):
            problems += _line_problems(f"{at}.dialogue.{j}", line, seg, ids, known)
    return problems


def _line_problems(at: str, line: DialogueLine, seg: Segment, ids: dict[str, int], known: str) -> list[str]:
    out = []
    if line.speaker not in ids:
        out.append(f"{at}.speaker: {line.speaker!r} is not in the character registry ({known})")
    if line.start_s is not None and line.end_s is not None and line.end_s <= line.start_s:
        out.append(f"{at}: end_s {line.end_s:g} is not after start_s {line.start_s:g}")
    for key in ("start_s", "end_s"):
        t = getattr(line, key)
        if t is not None and not seg.start_s - TIME_TOLERANCE_S <= t <= seg.end_s + TIME_TOLERANCE_S:
            out.append(f"{at}.{key}: {t:g} is outside its segment ({seg.start_s:g}-{seg.end_s:g} s)")
    return out


def validation_messages(err: ValidationError) -> list[str]:
    """pydantic's errors as ``field.path: message`` lines; the cross-field checks give one line each."""
    out: list[str] = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"])
        if e["type"] == "value_error" and not loc:  # raised by Script._cross_checks: already path-labelled
            out += str(e["ctx"]["error"]).splitlines()
        else:
            out.append(f"{loc}: {e['msg']}" if loc else e["msg"])
    return out


def script_json_schema() -> dict[str, Any]:
    """JSON Schema of a script (draft 2020-12, as pydantic writes it); embedded in the analysis prompt."""
    return Script.model_json_schema()


_FENCE = re.compile(r"```(?:json|JSON)?\s*\n?(.*?)```", re.S)


def extract_json_object(text: str) -> dict[str, Any]:
    """The JSON object in a model's answer: inside a code fence if there is one, else from the first ``{``.

    Only the outermost object is tried: decoding an inner fragment of a broken answer would turn a
    JSON error into a misleading schema error.
    """
    if not text or not text.strip():
        raise ScriptInvalid(["the answer is empty; reply with one JSON object"])
    fence = _FENCE.search(text)
    body = fence.group(1) if fence else text
    start = body.find("{")
    if start < 0:
        raise ScriptInvalid(["no JSON object in the answer; reply with one JSON object and nothing else"])
    try:
        obj, _ = json.JSONDecoder().raw_decode(body, start)
    except json.JSONDecodeError as e:
        raise ScriptInvalid([f"invalid JSON: {e.msg} at line {e.lineno}, column {e.colno}"]) from None
    if not isinstance(obj, dict):
        raise ScriptInvalid([f"expected a JSON object, got {type(obj).__name__}"])
    return obj


def script_from_dict(obj: dict[str, Any], *, duration_s: float | None = None, source: str | None = None) -> Script:
    """Validate a decoded script; a known ``duration_s`` (from the clip itself) overrides the script's own."""
    if duration_s is not None:
        obj = {**obj, "duration_s": duration_s}
    try:
        return Script.model_validate(obj)
    except ValidationError as err:
        raise ScriptInvalid(validation_messages(err), source) from None


def parse_script(text: str, *, duration_s: float | None = None, source: str | None = None) -> Script:
    """A model's answer -> a validated Script, or ScriptInvalid listing every problem."""
    try:
        obj = extract_json_object(text)
    except ScriptInvalid as e:
        raise ScriptInvalid(e.errors, source) from None
    return script_from_dict(obj, duration_s=duration_s, source=source)


def load_script(path: str | Path) -> Script:
    """A script JSON file (as ``mtavg construct analyse --out`` writes it), validated."""
    path = Path(path)
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise ScriptInvalid([f"unreadable: {e.strerror or e}"], str(path)) from None
    except json.JSONDecodeError as e:
        raise ScriptInvalid([f"invalid JSON: {e.msg} at line {e.lineno}, column {e.colno}"], str(path)) from None
    if not isinstance(obj, dict):
        raise ScriptInvalid([f"expected a JSON object, got {type(obj).__name__}"], str(path))
    return script_from_dict(obj, source=str(path))
