"""Shot analysis: ask an evaluator backend for a clip's structured script, validate, re-ask on errors.

The clip goes out as an ordinary :class:`~mtavg.evaluators.Request` (video, plus audio when the clip
has a soundtrack) through the same :class:`~mtavg.loop.RequestLoop` the run engine uses, so every
backend (``openai:``, ``gemini:``, ``hf:``) works and transient failures (429, 5xx, timeouts) are
retried there. An answer that is not valid JSON or breaks the schema is *not* a transient failure: it
is re-asked with the rejected answer and every validation error quoted back, up to ``max_attempts``
answers in all; then :class:`ScriptAnalysisFailed` names the video and the last errors.

The evaluator contract carries one user message, so the re-ask is that message extended with the
follow-up (original request, quoted answer, errors) rather than a multi-turn chat.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mtavg.construct.prompts import analysis_prompt, retry_prompt
from mtavg.construct.script import Script, ScriptInvalid, parse_script
from mtavg.evaluators import Evaluator, MediaRef, Request, make_evaluator
from mtavg.limits import RetryPolicy
from mtavg.loop import RequestLoop

#: a script of a minute-long clip runs to a few thousand tokens; the backends' QA-sized defaults cut it off
ANSWER_BUDGET: dict[str, tuple[str, int]] = {
    "openai": ("max_tokens", 8192), "gemini": ("max_output_tokens", 8192), "hf": ("max_new_tokens", 4096),
}


class ScriptAnalysisFailed(RuntimeError):
    """No valid script for ``video``: every answer was invalid (``errors`` = the last answer's problems),
    or the backend call itself failed (``call_error``)."""

    def __init__(self, video: Path, attempts: list[AnalysisAttempt], call_error: str | None = None) -> None:
        self.video, self.attempts, self.call_error = video, list(attempts), call_error
        self.errors = attempts[-1].errors if attempts else []
        self.raw = attempts[-1].raw if attempts else None
        if call_error:
            msg = f"{video}: the analysis call failed after {len(attempts)} answer(s): {call_error}"
        else:
            msg = (f"{video}: no valid script after {len(attempts)} attempt(s); last errors:\n"
                   + "\n".join(f"  - {e}" for e in self.errors))
        super().__init__(msg)


@dataclass
class AnalysisAttempt:
    prompt: str
    raw: str | None
    errors: list[str] = field(default_factory=list)  # empty: this answer was accepted


@dataclass
class Analysis:
    video: Path
    script: Script
    attempts: list[AnalysisAttempt]
    model: str

    @property
    def warnings(self) -> list[str]:
        return self.script.length_warnings()


def make_analysis_evaluator(spec: str, options: Mapping[str, Any] | None = None) -> Evaluator:
    """``make_evaluator`` with an answer budget large enough for a script (unless the options set one)."""
    opts = dict(options or {})
    kind = spec.partition(":")[0]
    if kind in ANSWER_BUDGET:
        key, budget = ANSWER_BUDGET[kind]
        opts.setdefault(key, budget)
    return make_evaluator(spec, **opts)


def clip_ref(video: Path) -> MediaRef:
    """The clip as the backend should receive it: video, and audio when it has a soundtrack."""
    from mtavg.media import probe

    info = probe(video)
    return MediaRef(video_id=video.stem, path=video, role="Clip", use_video=True, use_audio=info.has_audio,
                    duration_s=info.duration_s or None, has_audio=info.has_audio)


def analysis_request(ref: MediaRef, prompt: str, attempt: int) -> Request:
    return Request(qid=f"construct-analyse:{ref.video_id}:{attempt}", prompt=prompt, media=(ref,),
                   modality="full" if ref.use_audio else "no_audio", format="script",
                   question="structured script of the clip", options={})


async def analyse_async(video: str | Path, evaluator: Evaluator, *, max_attempts: int = 3,
                        policy: RetryPolicy | None = None, prompt_template: str | None = None) -> Analysis:
    """The validated script of ``video``; the caller owns ``evaluator`` (and closes it)."""
    if max_attempts < 1:
        raise ValueError(f"max_attempts must be at least 1, got {max_attempts}")
    video = Path(video)
    ref = await asyncio.to_thread(clip_ref, video)
    base = analysis_prompt(ref.duration_s, has_audio=ref.has_audio, template=prompt_template)
    loop = RequestLoop(evaluator, concurrency=1, policy=policy or RetryPolicy())
    attempts: list[AnalysisAttempt] = []
    prompt = base
    for n in range(1, max_attempts + 1):
        outcome = await loop.call(analysis_request(ref, prompt, n))
        if outcome.response is None:
            raise ScriptAnalysisFailed(video, attempts, call_error=outcome.error or "no response")
        raw = outcome.response.raw
        try:
            script = parse_script(raw, duration_s=ref.duration_s)
        except ScriptInvalid as e:
            attempts.append(AnalysisAttempt(prompt, raw, e.errors))
            prompt = retry_prompt(base, raw, e.errors)
            continue
        attempts.append(AnalysisAttempt(prompt, raw))
        return Analysis(video, script, attempts, evaluator.name)
    raise ScriptAnalysisFailed(video, attempts)


def analyse(video: str | Path, evaluator: Evaluator | str, *, max_attempts: int = 3,
            options: Mapping[str, Any] | None = None, policy: RetryPolicy | None = None,
            prompt_template: str | None = None) -> Analysis:
    """Blocking :func:`analyse_async`; ``evaluator`` may be a model spec (``openai:NAME``) plus ``options``."""
    if not isinstance(evaluator, str) and options:
        raise ValueError("options configure a model spec; an Evaluator instance is already configured")
    ev = make_analysis_evaluator(evaluator, options) if isinstance(evaluator, str) else evaluator

    async def run() -> Analysis:
        try:
            return await analyse_async(video, ev, max_attempts=max_attempts, policy=policy,
                                       prompt_template=prompt_template)
        finally:
            await ev.aclose()  # its HTTP client belongs to this event loop, which ends here

    return asyncio.run(run())


def analyse_video(video: str | Path, evaluator: Evaluator | str, *, max_attempts: int = 3,
                  options: Mapping[str, Any] | None = None) -> Script:
    """The validated structured script of ``video`` (see :func:`analyse` for the attempts)."""
    return analyse(video, evaluator, max_attempts=max_attempts, options=options).script
