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
    logprobs: list[dict[str, Any]] | None = None
    usage: dict[str, Any] | None = None
    audio_sent: bool = False
    frames_sent: int = 0
    meta: dict[str, Any] = field(default_factory=dict)


class EvaluatorError(RuntimeError):
    """A backend failed for one request; the run engine records it on that item."""


class Evaluator(ABC):
    """A model under evaluation. ``name`` goes into samples and results (e.g. ``baseline:random``)."""

    name: str
    #: identifies behaviour-changing settings (sampling, frames, seed); part of the response-cache key.
    fingerprint: str = ""

    @abstractmethod
    async def respond(self, request: Request) -> Response:
        """Answer one request. Raise EvaluatorError (or any exception) on failure; never return ""."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook, most backends hold nothing
        """Release clients, uploaded files, sessions."""
