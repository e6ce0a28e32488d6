"""Evaluators that need nothing: reference points every real model must beat.

- ``baseline:random`` — uniform random answers, seeded per (seed, qid) so reruns agree; its yes/no
  "probability" is uniform in (0, 1), the chance level of AUC and pairwise accuracy.
- ``baseline:prior`` — the most frequent gold label per sub-dimension and format, learned by
  two-fold cross-fitting over videos: an item is answered from the gold labels of the other fold
  only, so no item's own label (or its clip's other labels) leaks into its answer.
- ``baseline:text`` — question/option text only: the option sharing most words with the question.
- ``baseline:all`` — selects every option; the coverage score rewards this, ``multi_strict`` does not.
Baselines answer in the same JSON the prompts ask for, so their output goes through the same parser.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from collections.abc import Sequence

import numpy as np

from mtavg.bench.schema import QAItem
from mtavg.evaluators.base import Evaluator, Request, Response


class _Baseline(Evaluator):
    consumes_media = False  # they never look at the clip: no audio-delivery check
    cacheable = False  # instant and deterministic: caching would only fill the cache


def _stable_int(*parts: object) -> int:
    return int.from_bytes(hashlib.sha256("\x1f".join(map(str, parts)).encode()).digest()[:8], "big")


def _reply(request: Request, answer: Sequence[str], time: Sequence[str] = (), why: str = "") -> Response:
    if request.format == "temporal":
        body = {"primary_issue": answer[0] if len(answer) == 1 else list(answer), "time": list(time)}
    else:
        body = {"answer": list(answer)}
    body["rationale"] = why
    return Response(raw=json.dumps(body))


class RandomBaseline(_Baseline):
    def __init__(self, seed: int = 0) -> None:
        self.name, self.seed, self.fingerprint = "baseline:random", seed, f"seed={seed}"

    async def respond(self, request: Request) -> Response:
        rng = np.random.default_rng(_stable_int(self.seed, request.qid))
        labels = list(request.options)
        if request.format == "multi":
            k = int(rng.integers(1, len(labels) + 1))
            answer = sorted(rng.choice(labels, size=k, replace=False).tolist())
        else:
            answer = [str(rng.choice(labels))]
        time: list[str] = []
        if request.time_options:
            windows = list(request.time_options)
            time = sorted(rng.choice(windows, size=int(rng.integers(1, len(windows) + 1)), replace=False).tolist())
        return _reply(request, answer, time, "uniform random choice")

    async def yes_probability(self, request: Request) -> float:
        """Uniform in (0, 1), seeded per qid: the chance reference for AUC and pairwise accuracy (0.5)."""
        return float(np.random.default_rng(_stable_int(self.seed, request.qid, "yes")).uniform(0.0, 1.0))


class AllOptionsBaseline(_Baseline):
    def __init__(self) -> None:
        self.name = "baseline:all"

    async def respond(self, request: Request) -> Response:
        return _reply(request, list(request.options), list(request.time_options or ()), "every option")


_WORD = re.compile(r"[a-z0-9]+")
_STOP = frozenset(["a", "an", "the", "of", "in", "on", "at", "to", "is", "are", "was", "be", "this", "that", "which", "what", "clip", "video", "does", "do", "any", "for", "and", "or", "with"])


def _words(text: str) -> set[str]:
    return {w for w in _WORD.findall(text.lower()) if w not in _STOP and len(w) > 2}


class TextOnlyBaseline(_Baseline):
    """Word overlap between question and option text; ties go to the longest option, then label order."""

    def __init__(self) -> None:
        self.name = "baseline:text"

    async def respond(self, request: Request) -> Response:
        q = _words(request.question)
        overlap = {k: len(q & _words(v)) for k, v in request.options.items()}
        ranked = sorted(request.options, key=lambda k: (-overlap[k], -len(request.options[k]), k))
        if request.format == "multi":
            answer = sorted(k for k in ranked if overlap[k] > 0) or ranked[:2]
        else:
            answer = ranked[:1]
        time = list(request.time_options or ())[:1]
        return _reply(request, sorted(answer), time, "word overlap between question and options")


class PriorBaseline(_Baseline):
    """Most frequent gold label per (sub-dimension, format), learned on the other fold of videos."""

    def __init__(self, items: Sequence[QAItem], seed: int = 0) -> None:
        self.name, self.seed, self.fingerprint = "baseline:prior", seed, f"seed={seed}"
        self._fold = {it.qid: _stable_int(seed, it.video_ids[0]) % 2 for it in items}
        self._counts: dict[tuple, Counter] = {}
        self._n: Counter = Counter()
        for it in items:
            for fold in (0, 1):
                if self._fold[it.qid] == fold:
                    continue  # learn fold f's prior from the other fold only
                for scope in ((it.sub_dimension, it.format), ("*", it.format)):
                    self._n[(fold, *scope)] += 1
                    self._counts.setdefault((fold, *scope, "answer"), Counter()).update(it.answer)
                    self._counts.setdefault((fold, *scope, "time"), Counter()).update(it.time_answer or ())

    def _prior(self, fold: int, sub: str | None, fmt: str, what: str) -> tuple[Counter, int]:
        for scope in ((sub, fmt), ("*", fmt)):  # back off to the format-wide prior
            counter = self._counts.get((fold, *scope, what))
            if counter:
                return counter, self._n[(fold, *scope)]
        return Counter(), 0

    async def respond(self, request: Request) -> Response:
        fold = self._fold.get(request.qid, _stable_int(self.seed, request.qid) % 2)
        counts, n = self._prior(fold, request.sub_dimension, request.format, "answer")
        ranked = sorted(request.options, key=lambda k: (-counts[k], k))
        if request.format == "multi":
            answer = [k for k in ranked if n and counts[k] / n > 0.5] or ranked[:1]
        else:
            answer = ranked[:1]
        time: list[str] = []
        if request.time_options:
            tcounts, tn = self._prior(fold, request.sub_dimension, request.format, "time")
            tranked = sorted(request.time_options, key=lambda k: (-tcounts[k], k))
            time = [k for k in tranked if tn and tcounts[k] / tn > 0.5] or tranked[:1]
        return _reply(request, sorted(answer), sorted(time), "most frequent gold label in held-out fold")
