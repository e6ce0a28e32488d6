"""Media access. This module probes clips (PyAV) so a broken file fails its item, not the run."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path


class MediaError(RuntimeError):
    """A clip cannot be used: unreadable, truncated, zero-length or without the streams needed."""


@dataclass(frozen=True)
class StreamInfo:
    path: str
    duration_s: float
    has_video: bool
    has_audio: bool
    width: int | None
    height: int | None
    fps: float | None
    frames_decoded: int


@lru_cache(maxsize=4096)
def probe(path: str | Path) -> StreamInfo:
    """Open the container, read stream facts and decode the first video frame to prove it decodes."""
    import av  # imported here: the CLI's start-up should not pay for it

    path = Path(path)
    if not path.is_file():
        raise MediaError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise MediaError(f"{path}: zero-length file")
    try:
        with av.open(str(path)) as container:
            video = container.streams.video[0] if container.streams.video else None
            audio = container.streams.audio[0] if container.streams.audio else None
            duration = float(container.duration) / 1e6 if container.duration else None
            frames = 0
            if video is not None:
                for _ in container.decode(video=0):
                    frames += 1
                    break
            if video is not None and duration is None and video.duration and video.time_base:
                duration = float(video.duration * video.time_base)
            return StreamInfo(
                path=str(path),
                duration_s=round(duration or 0.0, 3),
                has_video=video is not None,
                has_audio=audio is not None,
                width=video.codec_context.width if video is not None else None,
                height=video.codec_context.height if video is not None else None,
                fps=float(video.average_rate) if video is not None and video.average_rate else None,
                frames_decoded=frames,
            )
    except av.error.FFmpegError as exc:
        raise MediaError(f"{path}: cannot decode ({exc})") from exc
