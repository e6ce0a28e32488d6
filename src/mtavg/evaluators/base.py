"""The evaluator contract: one async method from a Request to a Response.

The run engine builds requests (prompt + media references + modality), owns concurrency, retries,
caching and resume; a backend implements ``respond`` and nothing else.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

Modality = Literal["full", "no_audio", "no_vision", "text"]
MODALITIES: tuple[str, ...] = ("full", "no_audio", "no_vision", "text")


@dataclass(frozen=True)
class MediaRef:
    """One clip as the evaluator should receive it; the modality is already applied here."""

    video_id: str
    path: Path
    role: str  # "Clip" or "Clip 1" / "Clip 2" for pairwise
    use_video: bool
    use_audio: bool
    duration_s: float | None = None
    has_audio: bool = True


@dataclass(frozen=True)
class Request:
    qid: str
    prompt: str
    media: tuple[MediaRef, ...]
    modality: Modality
    # What a text-only or prior baseline may look at; real backends only need ``prompt`` and ``media``.
    format: str
    question: str
    options: dict[str, str]
    time_options: dict[str, tuple[float, float]] | None = None
    sub_dimension: str | None = None


@dataclass
class Response:
    raw: str
    #: per generated token: {"token", "logprob", "top_logprobs": [{"token", "logprob"}, ...]}
    logprobs: list[dict[str, Any]] | None = None
    #: {"prompt_tokens": int, "completion_tokens": int} when the backend reports them
    usage: dict[str, Any] | None = None
    #: what really went out with the request (the audio-delivery check reads these)
    audio_sent: bool = False
    frames_sent: int = 0
    #: media parameters as sent (fps, max_pixels, transport, ...), recorded per item
    meta: dict[str, Any] = field(default_factory=dict)


class EvaluatorError(RuntimeError):
    """A backend failed for one request; the run engine records it on that item (type and status).

    ``retryable`` tells the engine whether another attempt may succeed; ``retry_after`` (seconds) is
    the server's own wish (HTTP Retry-After), which the engine's backoff honours.
    """

    retryable: bool = False

    def __init__(self, message: str, *, status: int | None = None, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


class TransientError(EvaluatorError):
    """Worth retrying: 429, 5xx, timeouts, dropped connections, a truncated or malformed response body."""

    retryable = True


class PermanentError(EvaluatorError):
    """Not worth retrying: bad request, auth, unknown model, media the backend cannot take."""


class Evaluator(ABC):
    """A model under evaluation. ``name`` goes into samples and results (e.g. ``baseline:random``)."""

    name: str
    #: identifies behaviour-changing settings (sampling, frames, seed); part of the response-cache key.
    fingerprint: str = ""
    #: False for evaluators that never look at media (baselines): the audio-delivery check skips them.
    consumes_media: bool = True
    #: deterministic answers may be cached and reused across runs (sampling at temperature > 0 may not).
    cacheable: bool = True

    @abstractmethod
    async def respond(self, request: Request) -> Response:
        """Answer one request. Raise EvaluatorError (or any exception) on failure; never return ""."""

    async def yes_probability(self, request: Request) -> float:
        """P(Yes) / (P(Yes) + P(No)) for a yes/no question, from next-token scores (AVBench)."""
        raise NotImplementedError(f"{self.name} cannot score yes/no probabilities")

    async def aclose(self) -> None:  # noqa: B027 - optional hook, most backends hold nothing
        """Release clients, uploaded files, sessions."""
