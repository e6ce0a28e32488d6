"""AVGen-Bench's judged modules (Text, Speech, HiPhy, Holistic) through our evaluator backends.

Each module asks the evaluator, with the clip and its generation prompt, for a JSON checklist whose
items it rates on a small integer scale (our own prompts and schemas, not the published ones). The
module score is computed **here** from those ratings; a total the model writes is never read:

- Text: every text the prompt asks to show, ``shown`` 0 (absent / garbled) · 1 (partly right) · 2
  (exact and legible) → ``100 · mean(shown) / 2``; no text asked for → not_applicable.
- Speech: every line the prompt asks to be spoken, ``intelligible`` 0–2 and ``matches`` 0–2, plus
  ``coherent`` 0–2 for the speech as a whole → ``100 · (0.8 · mean((intelligible + matches) / 4) +
  0.2 · coherent / 2)``; no speech asked for → not_applicable.
- HiPhy: the physical events the prompt implies, each ``plausible`` 0–2 → ``100 · mean / 2``.
- Holistic: the prompt's elements (subjects, actions, sounds, order, style), each ``present`` 0–2 →
  ``100 · mean / 2``.

A reply that is not valid JSON of the schema is asked once more, with the reason; a second invalid
reply, a refusal or a failed call is a **failed** record with the error (never a guessed score).
Replies are cached like every other call (the response cache), and finished clips are kept in
``<out>/<generator>/judge.ndjson``, so a re-run costs nothing for what is done.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mtavg.suites.avgen_prompts import Prompt, PromptSuite, match_clips
from mtavg.suites.avgen_records import ModuleRecord, write_records


class JudgeReplyInvalid(ValueError):
    """The evaluator's reply breaks the module's schema; the message says where."""


@dataclass(frozen=True)
class JudgeModule:
    name: str
    modality: str  # what the evaluator gets: full (video + audio) or no_audio
    list_key: str  # the checklist field
    fields: tuple[str, ...]  # integer 0-2 fields of each checklist entry
    label_field: str  # the entry's description field
    instructions: str
    overall_fields: tuple[str, ...] = ()  # integer 0-2 fields of the whole reply
    empty_is_na: bool = False  # an empty checklist means the prompt asked for nothing to rate

    def score(self, reply: dict[str, Any]) -> float:
        entries = reply[self.list_key]
        if self.name == "Speech":
            lines = [(e["intelligible"] + e["matches"]) / 4 for e in entries]
            return 100 * (0.8 * sum(lines) / len(lines) + 0.2 * reply["coherent"] / 2)
        return 100 * sum(e[self.fields[0]] for e in entries) / (2 * len(entries))


JUDGE_MODULES: dict[str, JudgeModule] = {m.name: m for m in (
    JudgeModule("Text", "no_audio", "texts", ("shown",), "text",
                "List every piece of text the prompt asks to appear on screen (signs, captions, titles, labels). "
                "For each, rate 'shown': 0 = absent or garbled, 1 = partly right or hard to read, "
                "2 = exactly right and legible.", empty_is_na=True),
    JudgeModule("Speech", "full", "lines", ("intelligible", "matches"), "expected",
                "List every line of speech the prompt asks for (dialogue, narration, voice-over). For each, "
                "write what you hear in 'heard' and rate 'intelligible' (0 = not understandable, "
                "1 = partly, 2 = clear) and 'matches' (0 = different words, 1 = partly the same, "
                "2 = the same words). Rate 'coherent' for the speech as a whole (0 = gibberish or broken, "
                "1 = partly coherent, 2 = natural and coherent).", overall_fields=("coherent",), empty_is_na=True),
    JudgeModule("HiPhy", "full", "events", ("plausible",), "event",
                "List the physical events and cause-effect relations the prompt implies (motion, collisions, "
                "fluids, reactions, sounds they cause). For each, rate 'plausible': 0 = violates physics or "
                "common sense, 1 = questionable, 2 = physically plausible."),
    JudgeModule("Holistic", "full", "elements", ("present",), "element",
                "List the elements the prompt asks for: subjects, actions, sounds, their order and the style. "
                "For each, rate 'present': 0 = missing or wrong, 1 = partly there, 2 = fully there."),
)}


def judge_prompt(module: JudgeModule, prompt: Prompt) -> str:
    """The request text for one clip (the clip itself goes along as media)."""
    entry = {module.label_field: "...", **({"heard": "..."} if module.name == "Speech" else {}),
             **{f: 0 for f in module.fields}}
    schema = {module.list_key: [entry], **{f: 0 for f in module.overall_fields}}
    return (
        "You are judging a generated video against the prompt it was generated from.\n\n"
        f"Prompt:\n\"\"\"\n{prompt.prompt}\n\"\"\"\n\n"
        f"{module.instructions}\n"
        + (f"If the prompt asks for none, reply with an empty '{module.list_key}' list.\n" if module.empty_is_na else "")
        + "Reply with one JSON object and nothing else, in this form (integers 0, 1 or 2):\n"
        + json.dumps(schema)
    )


_OBJECT = re.compile(r"\{.*\}", re.S)


def _int_0_2(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value not in (0, 1, 2):
        raise JudgeReplyInvalid(f"{where} must be 0, 1 or 2, got {value!r}")
    return int(value)


def parse_reply(module: JudgeModule, text: str) -> dict[str, Any]:
    """The reply's JSON object, checked against the module's schema (raises JudgeReplyInvalid)."""
    match = _OBJECT.search(text or "")
    if not match:
        raise JudgeReplyInvalid("no JSON object in the reply")
    try:
        reply = json.loads(match.group(0))
    except json.JSONDecodeError as exc:
        raise JudgeReplyInvalid(f"not valid JSON ({exc.msg} at char {exc.pos})") from exc
    if not isinstance(reply, dict):
        raise JudgeReplyInvalid("the reply is not a JSON object")
    entries = reply.get(module.list_key)
    if not isinstance(entries, list):
        raise JudgeReplyInvalid(f"field '{module.list_key}' must be a list")
    clean = []
    for i, e in enumerate(entries):
        where = f"{module.list_key}[{i}]"
        if not isinstance(e, dict):
            raise JudgeReplyInvalid(f"{where} must be an object")
        if not isinstance(e.get(module.label_field), str):
            raise JudgeReplyInvalid(f"{where}.{module.label_field} must be a string")
        clean.append({**e, **{f: _int_0_2(e.get(f), f"{where}.{f}") for f in module.fields}})
    out = {**reply, module.list_key: clean}
    for f in module.overall_fields:
        out[f] = _int_0_2(reply.get(f), f)
    if not clean and not module.empty_is_na:
        raise JudgeReplyInvalid(f"field '{module.list_key}' is empty; the prompt always implies something to rate")
    return out


def record_from_reply(module: JudgeModule, prompt: Prompt, generator: str, reply: dict[str, Any] | None,
                      error: str | None, meta: dict[str, Any]) -> ModuleRecord:
    base = {"clip": prompt.clip_relpath, "category": prompt.category, "module": module.name, "generator": generator}
    if reply is None:
        return ModuleRecord(**base, raw=None, status="failed", error=error or "no reply", details=meta)
    if not reply[module.list_key]:
        return ModuleRecord(**base, raw=None, status="not_applicable", error=None, details={**meta, "reply": reply})
    return ModuleRecord(**base, raw=round(module.score(reply), 4), status="ok", error=None,
                        details={**meta, "reply": reply})


# ---------------------------------------------------------------- the run
async def _judge_clip(loop: Any, ev: Any, cache: Any, module: JudgeModule, prompt: Prompt, path: Path,
                      digest: str) -> dict[str, Any]:
    from mtavg.cache import request_key
    from mtavg.evaluators import Request
    from mtavg.run import media_ref

    ref = media_ref("clip", path, "Clip", module.modality)
    text = judge_prompt(module, prompt)
    attempts: list[str] = []
    for attempt in range(2):
        request = Request(qid=f"{module.name}:{prompt.clip_relpath}:{attempt}", prompt=text, media=(ref,),
                          modality=module.modality, format="judge", question=text, options={})  # type: ignore[arg-type]
        key = request_key(ev, request, {"clip": digest}, kind=f"avgen_{module.name}") if cache is not None else None
        outcome = await loop.call(request, key)
        if outcome.response is None:
            return {"reply": None, "error": outcome.error, "attempts": attempt + 1}
        try:
            return {"reply": parse_reply(module, outcome.response.raw), "error": None, "attempts": attempt + 1,
                    "cached": outcome.cached}
        except JudgeReplyInvalid as exc:
            attempts.append(str(exc))
            text = (f"{judge_prompt(module, prompt)}\n\nYour previous reply was not usable: {exc}. "
                    "Reply with the JSON object only.")
    return {"reply": None, "error": f"invalid reply twice: {'; '.join(attempts)}", "attempts": 2}


def run_judge_modules(
    suite: PromptSuite, clips_root: str | Path, out_dir: str | Path, *, generator: str, evaluator: str | Any,
    modules: Sequence[str] = tuple(JUDGE_MODULES), concurrency: int = 4, cache: bool = True,
    cache_path: str | Path | None = None, timeout_s: float = 300.0, max_attempts: int = 4,
    on_done: Callable[[dict[str, Any]], None] | None = None, **backend_options: Any,
) -> dict[str, Any]:
    """Judge every prompt's clip on ``modules``; records under ``out_dir/<generator>/<Module>.jsonl``."""
    unknown = [m for m in modules if m not in JUDGE_MODULES]
    if unknown:
        raise ValueError(f"unknown judge module(s) {', '.join(unknown)}; choose from {', '.join(JUDGE_MODULES)}")
    return asyncio.run(_run(suite, Path(clips_root), Path(out_dir), generator, evaluator, list(modules),
                            concurrency, cache, cache_path, timeout_s, max_attempts, on_done, backend_options))


async def _run(suite, clips_root, out_dir, generator, evaluator, modules, concurrency, cache, cache_path,
               timeout_s, max_attempts, on_done, backend_options) -> dict[str, Any]:
    from mtavg.cache import ResponseCache
    from mtavg.evaluators import make_evaluator
    from mtavg.limits import RetryPolicy
    from mtavg.loop import RequestLoop
    from mtavg.media.prepare import file_sha256
    from mtavg.samples import SampleStore
    from mtavg.secrets import redact

    match = match_clips(suite, clips_root)
    clip_of = {p.clip_relpath: path for p, path in match.matched}
    target = out_dir / generator
    target.mkdir(parents=True, exist_ok=True)
    store = SampleStore(target / "judge.ndjson")
    store.drop({q for q, row in store.rows.items() if row.get("reply") is None})  # retry failures
    owned = isinstance(evaluator, str)
    ev = make_evaluator(evaluator, [], **backend_options) if owned else evaluator
    response_cache = ResponseCache(Path(cache_path) if cache_path else None) if cache and ev.cacheable else None
    loop = RequestLoop(ev, concurrency=concurrency, cache=response_cache,
                       policy=RetryPolicy(max_attempts=max_attempts, timeout_s=timeout_s))
    digests: dict[str, str] = {}

    async def one(module: JudgeModule, prompt: Prompt, path: Path) -> None:
        qid = f"{module.name}:{prompt.clip_relpath}"
        try:
            if prompt.clip_relpath not in digests:
                digests[prompt.clip_relpath] = await asyncio.to_thread(file_sha256, path)
            row = await _judge_clip(loop, ev, response_cache, module, prompt, path, digests[prompt.clip_relpath])
        except Exception as exc:  # noqa: BLE001 - one clip's failure is its record
            row = {"reply": None, "error": redact(f"{type(exc).__name__}: {exc}"), "attempts": 0}
        row = {"qid": qid, "module": module.name, "clip": prompt.clip_relpath, **row}
        store.append(row)
        if on_done:
            on_done(row)

    try:
        jobs = [one(JUDGE_MODULES[m], p, clip_of[p.clip_relpath]) for m in modules for p in suite.prompts
                if p.clip_relpath in clip_of and f"{m}:{p.clip_relpath}" not in store.rows]
        await asyncio.gather(*jobs)
    finally:
        store.close()
        if owned:
            await ev.aclose()
        if response_cache is not None:
            response_cache.close()
    files = {}
    for name in modules:
        module = JUDGE_MODULES[name]
        records = []
        for prompt in suite.prompts:
            meta = {"source": f"judge:{ev.name}"}
            if prompt.clip_relpath not in clip_of:
                records.append(record_from_reply(module, prompt, generator, None, "clip missing", meta))
                continue
            row = store.rows.get(f"{name}:{prompt.clip_relpath}", {})
            records.append(record_from_reply(module, prompt, generator, row.get("reply"), row.get("error"),
                                             {**meta, "attempts": row.get("attempts")}))
        write_records(target / f"{name}.jsonl", records)
        files[name] = str(target / f"{name}.jsonl")
    return {"files": files, "evaluator": ev.name,
            "unmatched_prompts": [p.clip_relpath for p in match.unmatched_prompts],
            "unmatched_clips": [c.relative_to(match.clips_root).as_posix() for c in match.unmatched_clips]}
