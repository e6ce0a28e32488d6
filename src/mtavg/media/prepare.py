"""Turn clips into what evaluators and metrics consume: frames, audio, muted remuxes, WAVs.

One forward demux/decode pass per clip (``decode_clip``); derived files are content-addressed
(sha256 of the clip) in an on-disk cache and written atomically, so concurrent workers are safe.
"""

from __future__ import annotations

import hashlib
import io
import math
import os
import tempfile
import threading
import wave
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mtavg.media import MediaError, probe

_hash_memo: dict[tuple[str, int, int], str] = {}
_hash_lock = threading.Lock()
_key_locks: dict[str, threading.Lock] = {}


def media_cache_dir() -> Path:
    """$MTAVG_CACHE_DIR/media if set, else ~/.cache/mtavg/media; created on demand."""
    root = os.environ.get("MTAVG_CACHE_DIR")
    path = Path(root) / "media" if root else Path.home() / ".cache" / "mtavg" / "media"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _check_file(path: str | Path) -> Path:
    path = Path(path)
    if not path.is_file():
        raise MediaError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise MediaError(f"{path}: zero-length file")
    return path


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of the file; memoised by (resolved path, size, mtime_ns) so a clip is hashed once."""
    path = _check_file(path)
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    with _hash_lock:
        if key in _hash_memo:
            return _hash_memo[key]
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    digest = h.hexdigest()
    with _hash_lock:
        _hash_memo[key] = digest
    return digest


def _cached(target: Path, write: Callable[[Path], None]) -> Path:
    """Return ``target``, producing it with ``write(tmp)`` + os.replace if absent.

    The temp file lives in the same directory so the replace is atomic; the per-key lock only
    saves threads of this process from doing the same work twice (other processes stay safe).
    """
    if target.is_file():
        return target
    with _hash_lock:
        lock = _key_locks.setdefault(str(target), threading.Lock())
    with lock:
        if target.is_file():
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        os.close(fd)
        tmp = Path(tmp_name)
        try:
            write(tmp)
            os.chmod(tmp, 0o644)  # mkstemp makes 0600; a shared cache should be readable
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
    return target


def video_without_audio(path: str | Path, cache_dir: Path | None = None) -> Path:
    """The clip's video stream alone, remuxed (stream copy) into an mp4; the input if it has no audio."""
    import av

    path = _check_file(path)
    target = (cache_dir or media_cache_dir()) / f"{file_sha256(path)}-noaudio.mp4"
    if target.is_file():
        return target
    info = probe(path)  # cheap, cached, and raises MediaError naming the file
    if not info.has_audio:
        return path
    if not info.has_video:
        raise MediaError(f"{path}: no video stream")

    def write(tmp: Path) -> None:
        try:
            with av.open(str(path)) as src, av.open(str(tmp), "w", format="mp4") as dst:
                vin = src.streams.video[0]
                # add_stream_from_template is PyAV >= 13; older versions take template= instead
                if hasattr(dst, "add_stream_from_template"):
                    vout = dst.add_stream_from_template(vin)
                else:  # pragma: no cover
                    vout = dst.add_stream(template=vin)
                copied = 0
                for packet in src.demux(vin):
                    if packet.dts is None:  # the demuxer's end-of-stream flush packet
                        continue
                    packet.stream = vout
                    dst.mux(packet)
                    copied += 1
        except av.error.FFmpegError as exc:
            raise MediaError(f"{path}: cannot remux ({exc})") from exc
        # a stream copy never decodes, so a cut-short file shows only as missing packets
        if vin.frames and copied < vin.frames:
            raise MediaError(f"{path}: truncated ({copied} of {vin.frames} video packets)")

    return _cached(target, write)


def audio_wav(path: str | Path, sample_rate: int = 16000, cache_dir: Path | None = None) -> Path:
    """The audio track as mono PCM16 WAV at ``sample_rate``, cached as <sha256>-<rate>.wav."""
    path = _check_file(path)
    target = (cache_dir or media_cache_dir()) / f"{file_sha256(path)}-{sample_rate}.wav"

    def write(tmp: Path) -> None:
        clip = decode_clip(path, sample_rate=sample_rate, with_video=False)
        if clip.audio is None:
            raise MediaError(f"{path}: no audio stream")
        tmp.write_bytes(wav_bytes(clip.audio, sample_rate))

    return _cached(target, write)


@dataclass(frozen=True)
class DecodedClip:
    frames: np.ndarray | None  # (T, H, W, 3) uint8 RGB, or None when with_video=False
    frame_times: np.ndarray  # (T,) seconds from the video start of each sampled frame
    audio: np.ndarray | None  # (N,) float32 mono in [-1, 1] at sample_rate, or None
    sample_rate: int
    duration_s: float
    source_fps: float | None


def frame_times_for(duration_s: float, *, fps: float | None, n_frames: int | None, max_frames: int) -> np.ndarray:
    """Target times (s): ``n_frames`` segment centres, or every 1/fps s from 0; at most ``max_frames``.

    Segment centres rather than endpoints so the last target is inside the clip, never at its end.
    """
    if n_frames is None and fps is None:
        n_frames = 8
    if max_frames < 1 or (n_frames is not None and n_frames < 1) or (fps is not None and fps <= 0):
        raise ValueError("n_frames, fps and max_frames must be positive")
    if duration_s <= 0:  # unknown length: the first frame is all we can promise
        return np.zeros(1)
    if n_frames is not None:
        n = min(n_frames, max_frames)
        return (np.arange(n) + 0.5) * (duration_s / n)
    assert fps is not None
    times = np.arange(math.ceil(duration_s * fps - 1e-9)) / fps
    if len(times) > max_frames:  # evenly thin, keeping the first and last
        times = times[np.round(np.linspace(0, len(times) - 1, max_frames)).astype(int)]
    return times


def _fit_pixels(width: int, height: int, max_pixels: int | None) -> tuple[int, int]:
    """Keep aspect, even dims, width*height <= max_pixels (no upscaling)."""
    if max_pixels is None or width * height <= max_pixels:
        return width, height
    scale = math.sqrt(max_pixels / (width * height))
    return max(2, int(width * scale) // 2 * 2), max(2, int(height * scale) // 2 * 2)


def _stream_seconds(stream) -> float | None:
    if stream is not None and stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    return None


def _check_complete(path: Path, kind: str, decoded_s: float, stream) -> None:
    """A file cut short (index intact, media data missing) decodes 'fine' but ends early: refuse it.

    Only against the stream's own declared length: the container's may be another stream's.
    """
    declared_s = _stream_seconds(stream)
    if declared_s is not None and declared_s - decoded_s > max(0.5, 0.1 * declared_s):
        raise MediaError(f"{path}: truncated ({kind} ends at {decoded_s:.2f} s of {declared_s:.2f} s)")


def decode_clip(
    path: str | Path,
    *,
    fps: float | None = None,
    n_frames: int | None = None,
    max_frames: int = 64,
    max_pixels: int | None = None,
    sample_rate: int = 16000,
    with_video: bool = True,
    with_audio: bool = True,
) -> DecodedClip:
    """Sampled RGB frames and the whole audio track (mono float32), in one forward demux pass."""
    import av

    path = _check_file(path)
    try:
        with av.open(str(path)) as container:
            return _decode(container, path, fps, n_frames, max_frames, max_pixels, sample_rate,
                           with_video, with_audio)
    except av.error.FFmpegError as exc:
        raise MediaError(f"{path}: cannot decode ({exc})") from exc


def _decode(container, path: Path, fps, n_frames, max_frames, max_pixels, sample_rate,
            with_video: bool, with_audio: bool) -> DecodedClip:
    import av

    vstream = container.streams.video[0] if container.streams.video else None
    astream = container.streams.audio[0] if container.streams.audio else None
    if with_video and vstream is None:
        raise MediaError(f"{path}: no video stream")
    duration = (float(container.duration) / 1e6 if container.duration else None) or \
        _stream_seconds(vstream) or _stream_seconds(astream) or 0.0
    source_fps = float(vstream.average_rate) if vstream is not None and vstream.average_rate else None
    # one clock for frames and audio: seconds since the video's first timestamp
    ref = vstream if vstream is not None else astream
    t0 = float(ref.start_time * ref.time_base) if ref is not None and ref.start_time is not None else 0.0

    wanted = [s for s, on in ((vstream, with_video), (astream, with_audio)) if on and s is not None]
    targets = frame_times_for(duration, fps=fps, n_frames=n_frames, max_frames=max_frames) \
        if with_video else np.zeros(0)
    picked: list[tuple[float, np.ndarray]] = []
    prev: tuple[float, av.VideoFrame] | None = None
    prev_rgb: tuple[float, np.ndarray] | None = None
    size: tuple[int, int] | None = None
    video_end = 0.0
    n_video = 0
    chunks: list[np.ndarray] = []
    audio_start: float | None = None
    resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate) if astream in wanted else None

    def rgb(item: tuple[float, av.VideoFrame]) -> tuple[float, np.ndarray]:
        nonlocal prev_rgb
        if prev_rgb is None or prev_rgb[0] != item[0]:  # a frame shown at several targets is converted once
            w, h = size or (item[1].width, item[1].height)
            prev_rgb = (item[0], item[1].to_ndarray(width=w, height=h, format="rgb24"))
        return prev_rgb

    def take_audio(frames) -> None:
        chunks.extend(af.to_ndarray().reshape(-1) for af in frames)

    if vstream is not None and with_video:
        vstream.thread_type = "AUTO"  # frame-threaded decoding; order of output is unchanged
    for packet in container.demux(*wanted):
        if packet.stream is vstream:
            if len(picked) == len(targets):  # every target filled: skip the remaining video
                if resampler is None:
                    break
                continue
            for vf in packet.decode():
                if size is None:
                    size = _fit_pixels(vf.width, vf.height, max_pixels)
                t = (float(vf.time) - t0) if vf.time is not None else (n_video / (source_fps or 25.0))
                n_video += 1
                video_end = max(video_end, t + 1.0 / (source_fps or 25.0))
                # the frame on screen at target time T is the last one starting at or before T
                while prev is not None and len(picked) < len(targets) and t > targets[len(picked)] + 1e-6:
                    picked.append(rgb(prev))
                prev = (t, vf)
        elif resampler is not None:
            for af in packet.decode():
                if audio_start is None and af.time is not None:
                    audio_start = float(af.time) - t0
                take_audio(resampler.resample(af))
    if resampler is not None:
        take_audio(resampler.resample(None))  # flush the resampler's buffered tail

    frames = None
    if with_video:
        if prev is None:
            raise MediaError(f"{path}: no decodable video frames")
        if len(picked) < len(targets):  # targets past the last frame: it is still on screen
            _check_complete(path, "video", video_end, vstream)
        while len(picked) < len(targets):
            picked.append(rgb(prev))
        frames = np.stack([f for _, f in picked])
    audio = None
    if resampler is not None:
        audio = np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(0, np.float32)
        # align sample 0 with t=0 of the frames: pad a late start, drop a pre-roll
        shift = round((audio_start or 0.0) * sample_rate)
        audio = np.concatenate([np.zeros(shift, np.float32), audio]) if shift > 0 else audio[-shift:]
        audio = np.clip(audio, -1.0, 1.0)
        _check_complete(path, "audio", len(audio) / sample_rate, astream)
    return DecodedClip(
        frames=frames,
        frame_times=np.array([t for t, _ in picked], dtype=np.float64),
        audio=audio,
        sample_rate=sample_rate,
        duration_s=round(duration, 3),
        source_fps=source_fps,
    )


def jpeg_bytes(frame: np.ndarray, quality: int = 90) -> bytes:
    """One (H, W, 3) uint8 RGB frame as JPEG."""
    from PIL import Image  # optional at import time: only backends that send images need it

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(frame, dtype=np.uint8), "RGB").save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def wav_bytes(audio: np.ndarray, sample_rate: int) -> bytes:
    """Mono float audio in [-1, 1] as a PCM16 WAV file in memory."""
    pcm = np.round(np.clip(np.asarray(audio, dtype=np.float64).reshape(-1), -1.0, 1.0) * 32767).astype("<i2")
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sample_rate)
        w.writeframes(pcm.tobytes())
    return buf.getvalue()
