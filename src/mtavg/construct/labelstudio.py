"""Label Studio I/O for QA review: labelling config, task export, and reading its JSON export back.

- :func:`labeling_config` -- the XML config: the clip (``<Video>``, which plays its soundtrack, plus an
  ``<Audio>`` waveform synced to it), the question, the candidate options, the current gold answer,
  context fields (story context, key event, relationship dynamic, action), and the controls
  ``verdict`` (accept / reject / fix), ``corrected_answer``, ``corrected_time_answer`` (shown only for
  *fix*) and ``comment``. Pairwise items get a second ``<Video>`` (``pairwise=True``).
- :func:`export_tasks` -- Label Studio's import JSON: a list of ``{"data": {...}}``; with review
  assignments, one task per (item, reviewer) with ``data.reviewer`` set.
- :func:`parse_export` -- Label Studio's JSON export (tasks with ``annotations[].result[]`` entries
  ``{"from_name", "to_name", "type": "choices", "value": {"choices": [...]}}`` and ``completed_by``), or
  its JSON-MIN export (flat rows), into :class:`~mtavg.construct.verdicts.Verdict` records.

The reviewer of an annotation is ``data.reviewer`` when the task carries one (tasks exported per
assignment), else the annotating user: ``completed_by.email`` or the ``user_map`` entry of its id.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

from mtavg.bench.load import Benchmark
from mtavg.bench.schema import QAItem
from mtavg.bench.validate import Problem
from mtavg.construct.verdicts import VERDICTS, Verdict, VerdictsInvalid, check_verdict_row

LABELS = "ABCDEFGH"
CONTROL_FIELDS = ("verdict", "corrected_answer", "corrected_time_answer", "comment")
CONTEXT_FIELDS = ("story_context", "key_event", "relationship_dynamic", "action")
NOT_GIVEN = "(not given)"
DEFAULT_URL_PREFIX = "/data/local-files/?d="  # Label Studio's local file serving


def _choices(name: str, values: Sequence[str], *, multiple: bool, when_fix: bool) -> str:
    attrs = f'name="{name}" toName="video" choice="{"multiple" if multiple else "single-radio"}"'
    attrs += ' visibleWhen="choice-selected" whenTagName="verdict" whenChoiceValue="fix"' if when_fix else \
        ' required="true"'
    body = "".join(f'\n    <Choice value="{v}"/>' for v in values)
    return f"  <Choices {attrs}>{body}\n  </Choices>"


def labeling_config(*, pairwise: bool = False, waveform: bool = True) -> str:
    """The Label Studio labelling config (XML) for reviewing single-clip or pairwise items."""
    media = ['  <Header value="Clip 1"/>' if pairwise else '  <Header value="Clip"/>',
             '  <Video name="video" value="$video" sync="audio"/>' if waveform else
             '  <Video name="video" value="$video"/>']
    if waveform:
        media.append('  <Audio name="audio" value="$video" sync="video"/>')
    if pairwise:
        media += ['  <Header value="Clip 2"/>', '  <Video name="video2" value="$video2"/>']
    context = [f'  <Text name="ctx_{f}" value="${f}"/>' for f in CONTEXT_FIELDS]
    lines = [
        "<View>", *media,
        '  <Header value="Context: story, key event, relationship, action"/>', *context,
        '  <Header value="Question"/>', '  <Text name="question" value="$question"/>',
        '  <Text name="options" value="$options_text"/>',
        '  <Header value="Current gold answer"/>', '  <Text name="gold" value="$gold_text"/>',
        '  <Text name="time" value="$time_text"/>',
        '  <Header value="Is the item right? (fix: pick the corrected answer below)"/>',
        _choices("verdict", VERDICTS, multiple=False, when_fix=False),
        '  <Header value="Corrected answer (fix only)"/>',
        _choices("corrected_answer", LABELS, multiple=True, when_fix=True),
        '  <Header value="Corrected time windows (temporal fix only)"/>',
        _choices("corrected_time_answer", LABELS, multiple=True, when_fix=True),
        '  <TextArea name="comment" toName="video" rows="2" maxSubmissions="1" placeholder="why (optional)"/>',
        "</View>",
    ]
    return "\n".join(lines) + "\n"


def _context(script: Mapping[str, Any] | None) -> dict[str, str]:
    """The four context fields from ``videos.jsonl`` ``script``: the field itself, else the nearest
    part of a structured script (summary, first premise, inference rules, actions)."""
    s = dict(script or {})
    segments = [seg for seg in s.get("segments") or [] if isinstance(seg, dict)]
    fallback = {
        "story_context": s.get("clip_summary"),
        "key_event": segments[0].get("premise") if segments else None,
        "relationship_dynamic": "; ".join(s.get("inference_rules") or []) or None,
        "action": "; ".join(a for seg in segments for a in seg.get("actions") or []) or None,
    }
    return {f: str(s.get(f) or fallback[f] or NOT_GIVEN) for f in CONTEXT_FIELDS}


def media_url(bench: Benchmark, video_id: str, *, url_prefix: str = DEFAULT_URL_PREFIX,
              document_root: str | Path | None = None) -> str:
    """URL of a clip: ``url_prefix`` + its path relative to ``document_root`` (default: the bench's parent)."""
    path = bench.video_path(video_id).resolve()
    root = Path(document_root).resolve() if document_root else Path(bench.root).resolve().parent
    if not path.is_relative_to(root):
        raise ValueError(f"clip {path} is not under the document root {root}")
    return url_prefix + quote(path.relative_to(root).as_posix(), safe="/")


def task_data(item: QAItem, bench: Benchmark, **url: Any) -> dict[str, Any]:
    video = bench.videos[item.video_ids[0]]
    data: dict[str, Any] = {
        "qid": item.qid, "format": item.format, "sub_dimension": item.sub_dimension,
        "failure_mode": item.failure_mode, "template_id": item.template_id,
        "video": media_url(bench, item.video_ids[0], **url), "question": item.question,
        "options_text": "\n".join(f"{k}. {v}" for k, v in item.options.items()),
        "gold_text": ", ".join(f"{a}. {item.options[a]}" for a in item.answer),
        "time_text": "",
        **_context(video.script),
    }
    if item.format == "pairwise":
        data["video2"] = media_url(bench, item.video_ids[1], **url)
    if item.time_options:
        windows = "; ".join(f"{k} {a:g}-{b:g} s" for k, (a, b) in item.time_options.items())
        data["time_text"] = f"Windows: {windows}. Gold: {', '.join(item.time_answer or [])}. {item.evidence or ''}"
    return data


def export_tasks(bench: Benchmark, *, assignments: Mapping[str, Sequence[str]] | None = None,
                 reviewer: str | None = None, pairwise: bool | None = None, **url: Any) -> list[dict[str, Any]]:
    """Label Studio import JSON. ``pairwise`` True/False keeps only pairwise / single-clip items (the two
    need different configs); with ``assignments`` one task per assigned reviewer (only ``reviewer``'s
    when given)."""
    tasks = []
    for item in bench.items:
        if pairwise is not None and (item.format == "pairwise") != pairwise:
            continue
        data = task_data(item, bench, **url)
        if assignments is None:
            tasks.append({"data": data})
            continue
        for name in assignments.get(item.qid, ()):
            if reviewer is None or name == reviewer:
                tasks.append({"data": {**data, "reviewer": name}})
    return tasks


# ---------------------------------------------------------------- reading the export back
def _label(choice: Any) -> str:
    """``"B"`` or ``"B. Speaker Identity Error"`` -> ``"B"``."""
    text = str(choice).strip()
    head = text.split(".", 1)[0].strip()
    return head if head in LABELS else text


def _values(entry: Mapping[str, Any]) -> list[str]:
    value = entry.get("value") or {}
    if entry.get("type") == "textarea" or "text" in value:
        text = value.get("text") or []
        return [text] if isinstance(text, str) else [str(t) for t in text]
    return [str(c) for c in value.get("choices") or []]


def _reviewer(task: Mapping[str, Any], ann: Mapping[str, Any], user_map: Mapping[str, str]) -> str | None:
    data = task.get("data") or {}
    if data.get("reviewer"):
        return str(data["reviewer"])
    who = ann.get("completed_by")
    if isinstance(who, dict):
        key = str(who.get("id", ""))
        return user_map.get(key) or who.get("email") or (f"user-{key}" if key else None)
    return user_map.get(str(who), f"user-{who}") if who is not None else None


def _verdict_row(qid: Any, reviewer: str | None, fields: Mapping[str, list[str]]) -> dict[str, Any]:
    row: dict[str, Any] = {"qid": qid, "reviewer": reviewer}
    if fields.get("verdict"):
        row["verdict"] = fields["verdict"][0]
    for name in ("corrected_answer", "corrected_time_answer"):
        if fields.get(name):
            row[name] = [_label(c) for c in fields[name]]
    if fields.get("comment"):
        row["comment"] = "\n".join(fields["comment"])
    return row


def _annotation_rows(task: Mapping[str, Any], user_map: Mapping[str, str], where: str,
                     problems: list[Problem], n: int) -> list[dict[str, Any]]:
    rows = []
    live = [a for a in task.get("annotations") or [] if not a.get("was_cancelled")]
    data = task.get("data") or {}
    if data.get("reviewer") and len(live) > 1:
        problems.append(Problem(where, n, "annotations", f"{len(live)} annotations on a task exported for "
                                f"reviewer {data['reviewer']!r}; keep one", "several_annotations"))
        return []
    for ann in live:
        fields: dict[str, list[str]] = {}
        for entry in ann.get("result") or []:
            name = entry.get("from_name")
            if name not in CONTROL_FIELDS:
                problems.append(Problem(where, n, "result.from_name", f"unknown control {name!r} (expected one "
                                        f"of {', '.join(CONTROL_FIELDS)})", "unknown_control"))
                continue
            fields[name] = _values(entry)
        rows.append(_verdict_row(data.get("qid"), _reviewer(task, ann, user_map), fields))
    return rows


def _min_row(task: Mapping[str, Any], user_map: Mapping[str, str]) -> dict[str, Any]:
    """JSON-MIN export: data fields and controls side by side; choices are a string, or {"choices": [...]}."""
    def values(name: str) -> list[str]:
        v = task.get(name)
        if isinstance(v, dict):
            v = v.get("choices") or v.get("text")
        return [] if v in (None, "") else [str(x) for x in (v if isinstance(v, list) else [v])]
    who = task.get("reviewer") or user_map.get(str(task.get("annotator")), None) or (
        f"user-{task['annotator']}" if task.get("annotator") is not None else None)
    return _verdict_row(task.get("qid"), who, {name: values(name) for name in CONTROL_FIELDS})


def parse_export(data: Any, source: str, *, user_map: Mapping[str, str] | None = None,
                 ) -> list[tuple[int, Verdict]]:
    """Verdicts from a decoded Label Studio JSON / JSON-MIN export; ``line`` is the 1-based task number.

    Cancelled (skipped) annotations are ignored; tasks without annotations are not verdicts yet.
    Raises :class:`VerdictsInvalid` listing every problem.
    """
    user_map = dict(user_map or {})
    if not isinstance(data, list):
        raise VerdictsInvalid([Problem(source, None, None, "expected a JSON list of tasks", "not_a_list")])
    problems: list[Problem] = []
    out: list[tuple[int, Verdict]] = []
    for n, task in enumerate(data, start=1):
        if not isinstance(task, dict):
            problems.append(Problem(source, n, None, "task is not a JSON object", "not_an_object"))
            continue
        if "annotations" in task or "data" in task:
            rows = _annotation_rows(task, user_map, source, problems, n)
        else:
            rows = [_min_row(task, user_map)] if task.get("verdict") else []
        for row in rows:
            check_verdict_row({k: v for k, v in row.items() if v is not None}, source, n, out, problems)
    keys: dict[tuple[str, str], int] = {}
    for n, v in out:
        if (v.qid, v.reviewer) in keys:
            problems.append(Problem(source, n, "qid", f"second verdict of {v.reviewer} on {v.qid} (first in task "
                                    f"{keys[v.qid, v.reviewer]})", "duplicate_verdict"))
        keys.setdefault((v.qid, v.reviewer), n)
    if problems:
        raise VerdictsInvalid(problems)
    return out


def read_export(path: str | Path, *, user_map: Mapping[str, str] | None = None) -> list[tuple[int, Verdict]]:
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise VerdictsInvalid([Problem(str(path), e.lineno, None, f"invalid JSON: {e.msg}", "invalid_json")]) from e
    return parse_export(data, str(path), user_map=user_map)


def is_labelstudio_export(path: str | Path) -> bool:
    """A ``.json`` file holding a list (Label Studio exports are JSON lists; verdict files are CSV / JSONL)."""
    path = Path(path)
    if path.suffix.lower() != ".json":
        return False
    with path.open(encoding="utf-8") as fh:
        return fh.read(64).lstrip().startswith("[")


__all__ = ["export_tasks", "is_labelstudio_export", "labeling_config", "media_url", "parse_export", "read_export",
           "task_data"]
