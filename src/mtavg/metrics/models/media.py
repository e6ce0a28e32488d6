"""Pre-processing shared by the model metrics: frame-rate conversion, resize/crop, audio rates, prompts.

Everything works on the one analysis decode (``ClipMedia``: frames at <= 30 fps and <= ~384x216 px,
mono 16 kHz audio); only CLAP re-reads the file's audio at 48 kHz, which the analysis decode lacks.
"""

from __future__ import annotations

import json
import math
import os
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mtavg.metrics.models.weights import PROMPTS_ENV

if TYPE_CHECKING:
    from mtavg.metrics.base import ClipMedia


def clip_duration(clip: ClipMedia) -> float:
    if clip.duration_s and clip.duration_s > 0:
        return float(clip.duration_s)
    if clip.frames is not None and len(clip.frame_times):
        return float(clip.frame_times[-1]) + 1.0 / max(clip.fps, 1e-6)
    return len(clip.audio) / clip.sample_rate if clip.audio is not None else 0.0


def frame_indices(clip: ClipMedia, fps: float, n: int | None = None) -> np.ndarray:
    """Indices into ``clip.frames`` of the frame on screen at each time k/fps (what ``ffmpeg -r fps``
    keeps); ``n`` defaults to every whole output frame within the clip's duration."""
    if clip.frames is None or not len(clip.frames):
        raise ValueError("clip has no video frames")
    if n is None:
        n = max(int(math.floor(clip_duration(clip) * fps + 1e-6)), 1)
    times = np.arange(n) / fps
    # the last analysis frame that started at or before each output time (1 us tolerance for rounding)
    idx = np.searchsorted(np.asarray(clip.frame_times, dtype=np.float64), times + 1e-6, side="right") - 1
    return np.clip(idx, 0, len(clip.frames) - 1)


def frames_at_rate(clip: ClipMedia, fps: float, n: int | None = None) -> np.ndarray:
    """(n, H, W, 3) uint8 frames resampled to ``fps`` (see ``frame_indices``)."""
    return clip.frames[frame_indices(clip, fps, n)]


def resize_short_side(frame: np.ndarray, size: int, *, bicubic: bool = True) -> np.ndarray:
    """Scale an (H, W, 3) uint8 frame so its shorter side is ``size`` (PIL, like torchvision's Resize)."""
    from PIL import Image

    h, w = frame.shape[:2]
    if h <= w:
        new_h, new_w = size, int(size * w / h)
    else:
        new_h, new_w = int(size * h / w), size
    if (new_h, new_w) == (h, w):
        return frame
    resample = Image.BICUBIC if bicubic else Image.BILINEAR
    return np.asarray(Image.fromarray(frame).resize((new_w, new_h), resample))


def center_crop(frame: np.ndarray, size: int) -> np.ndarray:
    """torchvision's CenterCrop offsets: round((H - size) / 2)."""
    h, w = frame.shape[:2]
    top, left = int(round((h - size) / 2.0)), int(round((w - size) / 2.0))
    return frame[top:top + size, left:left + size]


def resample_audio(x: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    """Band-limited (FFT) resampling: a fallback when the file cannot be re-read at the wanted rate."""
    x = np.asarray(x, dtype=np.float64)
    if rate_in == rate_out or not len(x):
        return x.astype(np.float32)
    n_out = int(round(len(x) * rate_out / rate_in))
    spec = np.fft.rfft(x)
    out = np.zeros(n_out // 2 + 1, dtype=complex)
    keep = min(len(spec), len(out))
    out[:keep] = spec[:keep]
    return (np.fft.irfft(out, n_out) * (n_out / len(x))).astype(np.float32)


def audio_at(clip: ClipMedia, rate: int) -> np.ndarray:
    """The clip's mono audio at ``rate``: re-decoded from the file when possible (keeps content above the
    analysis decode's 8 kHz Nyquist), else resampled from the analysis track."""
    if clip.sample_rate == rate and clip.audio is not None:
        return clip.audio
    if clip.path and Path(clip.path).is_file():
        from mtavg.media.prepare import decode_clip

        try:
            decoded = decode_clip(clip.path, max_frames=1, sample_rate=rate, with_video=False,
                                  with_audio=True)
        except Exception:  # noqa: BLE001 - a file the analysis decode read but this one cannot: fall back
            decoded = None
        if decoded is not None and decoded.audio is not None and decoded.audio.size:
            return np.asarray(decoded.audio, dtype=np.float32)
    if clip.audio is None:
        raise ValueError("clip has no audio")
    return resample_audio(clip.audio, clip.sample_rate, rate)


def audio_at_rate(clip: ClipMedia, rate: int) -> np.ndarray:
    """The analysis track at ``rate`` (it is already 16 kHz, what every model but CLAP takes)."""
    if clip.audio is None:
        raise ValueError("clip has no audio")
    return clip.audio if clip.sample_rate == rate else resample_audio(clip.audio, clip.sample_rate, rate)


PROMPT_KEYS = ("prompt", "text", "caption", "description")


def prompt_for(clip: ClipMedia) -> str | None:
    """The text the clip was generated from: ``clip.extras`` ("prompt", "text", "caption"), the clip's
    script, or the ``$MTAVG_PROMPTS`` file (JSON {video_id: text}, or JSONL rows with video_id and one of
    prompt/text/caption/description, e.g. a benchmark's videos.jsonl whose script holds a prompt)."""
    for key in PROMPT_KEYS:
        if isinstance(clip.extras.get(key), str) and clip.extras[key].strip():
            return clip.extras[key].strip()
    if text := _from_row(clip.extras.get("script")):
        return text
    path = os.environ.get(PROMPTS_ENV)
    if not path or not Path(path).is_file():
        return None
    table = _prompt_table(str(Path(path).resolve()), Path(path).stat().st_mtime)
    for key in (clip.video_id, Path(clip.path).stem, Path(clip.path).name, str(clip.path)):
        if key and key in table:
            return table[key]
    return None


def _from_row(row: Any) -> str | None:
    if not isinstance(row, dict):
        return None
    for key in PROMPT_KEYS:
        if isinstance(row.get(key), str) and row[key].strip():
            return row[key].strip()
    return _from_row(row.get("script"))


@lru_cache(maxsize=4)
def _prompt_table(path: str, _mtime: float) -> dict[str, str]:
    text = Path(path).read_text(encoding="utf-8")
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        data = [json.loads(line) for line in text.splitlines() if line.strip()]
    if isinstance(data, dict) and any(k in data for k in ("video_id", "id", "path")):
        data = [data]  # a one-line JSONL file parses as a single row
    if isinstance(data, dict):
        return {str(k): (v if isinstance(v, str) else _from_row(v) or "") for k, v in data.items()}
    table: dict[str, str] = {}
    for row in data if isinstance(data, list) else []:
        key = row.get("video_id") or row.get("id") or (Path(row["path"]).stem if row.get("path") else None)
        if key and (text := _from_row(row)):
            table[str(key)] = text
    return table
