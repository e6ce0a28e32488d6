"""Typed records of a benchmark: videos and QA items (DESIGN.md "Benchmark directory")."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Format = Literal["single", "multi", "pairwise", "temporal"]
Setting = Literal["storyboard", "short_drama"]
FORMATS: tuple[str, ...] = ("single", "multi", "pairwise", "temporal")


class Video(BaseModel):
    model_config = ConfigDict(extra="forbid")

    video_id: str
    path: str
    generator: str | None = None
    setting: Setting | None = None
    script: dict[str, Any] | None = None
    duration_s: float | None = None
    source: str | None = None


class QAItem(BaseModel):
    model_config = ConfigDict(extra="forbid")

    qid: str
    format: Format
    video_ids: list[str] = Field(min_length=1, max_length=2)
    question: str
    options: dict[str, str]
    answer: list[str] = Field(min_length=1)
    sub_dimension: str
    failure_mode: str
    time_options: dict[str, tuple[float, float]] | None = None
    time_answer: list[str] | None = None
    evidence: str | None = None
    setting: Setting | None = None
    template_id: str | None = None
    meta: dict[str, Any] | None = None
