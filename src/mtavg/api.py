"""Scores for clips from Python: a filter in a data pipeline, or a reward in an RL loop.

    import mtavg
    p = mtavg.score_clip("clip.mp4", dimension="av_consistency", evaluator="openai:Qwen/Qwen2.5-Omni-7B",
                         base_url="http://gpu-node:8000/v1")
    scores = mtavg.score_clips(paths, dimension="video_text", texts=prompts, evaluator=ev, concurrency=16)

A score is P(Yes) / (P(Yes) + P(No)) for the dimension's yes/no question (``mtavg.suites.yesno``), through
the same request loop as ``mtavg eval``: concurrency, retries with backoff, the response cache (a clip
scored before costs nothing). ``score_clips`` never raises for one bad clip: its ``ClipScore`` holds the
error and ``score`` None. Inside a running event loop (Jupyter, an async trainer) use ``ascore_clips``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mtavg.evaluators import Evaluator, Request


class ClipScoreError(RuntimeError):
    """``score_clip`` could not score its clip (the message names the clip and the cause)."""


@dataclass(frozen=True)
class ClipScore:
    path: str
    score: float | None  # P(Yes) in [0, 1]; None when the call failed
    error: str | None = None
    cached: bool = False


def _request(path: Path, dimension: str, text: str | None, index: int) -> Request:
    from mtavg.run import media_ref
    from mtavg.suites.yesno import get_dimension, yes_no_prompt

    dim = get_dimension(dimension)
    question = dim.render_question(text)
    ref = media_ref(f"clip{index}", path, "Clip", dim.modality)
    return Request(qid=f"{path.name}:{dimension}", prompt=yes_no_prompt(question), media=(ref,),
                   modality=dim.modality, format="single", question=question,  # type: ignore[arg-type]
                   options={"A": "Yes", "B": "No"})


async def ascore_clips(paths: Sequence[str | Path], *, dimension: str = "av_consistency",
                       evaluator: str | Evaluator, texts: Sequence[str] | None = None, concurrency: int = 8,
                       cache: bool = True, cache_path: str | Path | None = None, timeout_s: float = 300.0,
                       max_attempts: int = 4, **backend_options: Any) -> list[ClipScore]:
    """``score_clips`` for callers already inside an event loop."""
    from mtavg.cache import ResponseCache, request_key
    from mtavg.evaluators import make_evaluator
    from mtavg.limits import RetryPolicy
    from mtavg.loop import RequestLoop
    from mtavg.media.prepare import file_sha256
    from mtavg.secrets import redact
    from mtavg.suites.yesno import get_dimension

    get_dimension(dimension)  # a wrong name is the caller's KeyError (it lists the known ones), not each clip's
    if texts is not None and len(texts) != len(paths):
        raise ValueError(f"{len(paths)} clips but {len(texts)} texts")
    owned = isinstance(evaluator, str)
    ev = make_evaluator(evaluator, [], **backend_options) if isinstance(evaluator, str) else evaluator
    if type(ev).yes_probability is Evaluator.yes_probability:
        if owned:
            await ev.aclose()
        raise ValueError(f"{ev.name} cannot score yes/no probabilities (use openai:, hf: or baseline:random)")
    store = ResponseCache(Path(cache_path) if cache_path else None) if cache and ev.cacheable else None
    loop = RequestLoop(ev, concurrency=concurrency, cache=store,
                       policy=RetryPolicy(max_attempts=max_attempts, timeout_s=timeout_s))

    async def one(i: int, path: Path) -> ClipScore:
        try:
            request = await asyncio.to_thread(_request, path, dimension, texts[i] if texts else None, i)
            key = None
            if store is not None:
                digest = await asyncio.to_thread(file_sha256, path)
                key = request_key(ev, request, {request.media[0].video_id: digest}, kind="yes_no_prob")
            outcome = await loop.call(request, key, method="yes_probability")
        except Exception as exc:  # noqa: BLE001 - one bad clip is its own result
            return ClipScore(str(path), None, redact(f"{type(exc).__name__}: {exc}"))
        if outcome.response is None:
            return ClipScore(str(path), None, outcome.error)
        return ClipScore(str(path), float(outcome.response.raw), None, outcome.cached)

    try:
        return list(await asyncio.gather(*(one(i, Path(p)) for i, p in enumerate(paths))))
    finally:
        if owned:
            await ev.aclose()
        if store is not None:
            store.close()


def score_clips(paths: Sequence[str | Path], *, dimension: str = "av_consistency", evaluator: str | Evaluator,
                texts: Sequence[str] | None = None, concurrency: int = 8, cache: bool = True,
                cache_path: str | Path | None = None, timeout_s: float = 300.0, max_attempts: int = 4,
                **backend_options: Any) -> list[ClipScore]:
    """P(Yes) for each clip on ``dimension``, in input order; failures are ClipScores with an error.

    ``evaluator`` is a model spec (``openai:NAME``, ``hf:PATH``, ``baseline:random``; backend options such
    as ``base_url`` as keywords) or an Evaluator you keep across calls. ``texts`` are the clips' prompts
    or captions, for the dimensions that ask about a description (audio_text, video_text).
    """
    return asyncio.run(ascore_clips(
        paths, dimension=dimension, evaluator=evaluator, texts=texts, concurrency=concurrency, cache=cache,
        cache_path=cache_path, timeout_s=timeout_s, max_attempts=max_attempts, **backend_options))


def score_clip(path: str | Path, *, dimension: str = "av_consistency", evaluator: str | Evaluator,
               text: str | None = None, **options: Any) -> float:
    """P(Yes) for one clip; raises ClipScoreError naming the clip when it cannot be scored."""
    result = score_clips([path], dimension=dimension, evaluator=evaluator,
                         texts=[text] if text is not None else None, **options)[0]
    if result.score is None:
        raise ClipScoreError(f"{path}: {result.error}")
    return result.score
