"""The metrics contract: one decode per clip (``ClipMedia``) shared by every metric.

A metric is ``fn(clip: ClipMedia) -> dict`` (a JSON-serialisable per-clip record) plus an
``aggregate(records) -> dict`` over clips (VBench's ``(aggregate, per_video)`` split). Metrics register
themselves with ``register_metric``; ``mtavg.metrics.run`` decodes each clip once and runs them all.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

#: Analysis decode: every frame up to 30 fps, at most 384x216-ish pixels (enough for motion, cuts,
#: colour and faces of a medium shot; 60 s of 1080p stays well under 1 GB), audio mono 16 kHz.
ANALYSIS_MAX_FPS = 30.0
ANALYSIS_MAX_PIXELS = 384 * 216
ANALYSIS_RATE = 16000


@dataclass
class ClipMedia:
    """Everything metrics read from one clip, decoded once."""

    path: Path
    frames: np.ndarray | None  # (T, H, W, 3) uint8 RGB at ``fps``; None when the clip has no video
    frame_times: np.ndarray  # (T,) seconds
    fps: float  # analysis frame rate (the clip's own rate, capped at ANALYSIS_MAX_FPS)
    audio: np.ndarray | None  # (N,) float32 mono in [-1, 1]; None when the clip has no audio
    sample_rate: int
    duration_s: float
    source_fps: float | None = None
    video_id: str | None = None
    generator: str | None = None
    extras: dict[str, Any] = field(default_factory=dict)  # metrics may share intermediate results here

    @cached_property
    def gray(self) -> np.ndarray | None:
        """(T, H, W) float32 luma in [0, 255] (BT.601), computed once for all metrics."""
        if self.frames is None:
            return None
        f = self.frames.astype(np.float32)
        return 0.299 * f[..., 0] + 0.587 * f[..., 1] + 0.114 * f[..., 2]


def load_clip(path: str | Path, *, video_id: str | None = None, generator: str | None = None,
              max_fps: float = ANALYSIS_MAX_FPS, max_pixels: int = ANALYSIS_MAX_PIXELS,
              sample_rate: int = ANALYSIS_RATE, video: bool = True) -> ClipMedia:
    """Decode a clip once for analysis (raises mtavg.media.MediaError subclasses on bad files);
    ``video=False`` skips the picture (frames None) when only the sound is analysed."""
    from mtavg.media import probe
    from mtavg.media.prepare import decode_clip

    info = probe(path)
    fps = min(info.fps or max_fps, max_fps)
    decoded = decode_clip(path, fps=fps, max_frames=10**7, max_pixels=max_pixels, sample_rate=sample_rate,
                          with_video=info.has_video and video, with_audio=info.has_audio)
    return ClipMedia(
        path=Path(path), frames=decoded.frames, frame_times=decoded.frame_times, fps=fps, audio=decoded.audio,
        sample_rate=decoded.sample_rate, duration_s=decoded.duration_s, source_fps=decoded.source_fps,
        video_id=video_id, generator=generator,
    )


Record = dict[str, Any]
MetricFn = Callable[[ClipMedia], Record]
AggregateFn = Callable[[Sequence[Record]], dict[str, Any]]


def mean_aggregate(records: Sequence[Record]) -> dict[str, Any]:
    """Mean of every numeric top-level field over the clips that have it (default aggregate)."""
    out: dict[str, Any] = {}
    keys = {k for r in records for k, v in r.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    for k in sorted(keys):
        vals = [float(r[k]) for r in records if isinstance(r.get(k), (int, float)) and not isinstance(r[k], bool)]
        vals = [v for v in vals if np.isfinite(v)]
        out[k] = round(float(np.mean(vals)), 6) if vals else None
    return out


@dataclass(frozen=True)
class MetricSpec:
    name: str
    fn: MetricFn
    aggregate: AggregateFn = mean_aggregate
    needs: tuple[str, ...] = ("video", "audio")  # streams the metric reads; a clip lacking one is skipped
    extra: str | None = None  # pip extra it needs, e.g. "faces"; None = core
    description: str = ""
    available: Callable[[], bool | str] = lambda: True  # True, or why not (missing package/weights)


METRICS: dict[str, MetricSpec] = {}


def register_metric(name: str, fn: MetricFn, **kwargs: Any) -> MetricSpec:
    spec = MetricSpec(name=name, fn=fn, **kwargs)
    METRICS[name] = spec
    return spec
