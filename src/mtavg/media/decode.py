"""One forward demux/decode pass per clip: sampled RGB frames and resampled mono audio together.

Speed: video is frame-threaded; only picked frames are converted (swscale does any resize); and a
non-reference frame is not decoded at all when a frame already demuxed is provably closer to the next
target (it can then never be "the frame on screen" at any target), so sparse sampling skips most
B-frames while picking exactly the frames a full decode would.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mtavg.media import (
    EmptyMedia,
    NoVideoStream,
    TruncatedMedia,
    UnreadableMedia,
    check_file,
    check_size,
    open_container,
)
from mtavg.media.cache import cache_root, cached_arrays, file_sha256, params_key
from mtavg.media.sampling import fit_pixels, frame_times_for

_CACHE_VERSION = 1  # bump when decoding output changes, so old cache entries are not reused
_EPS = 1e-6


@dataclass(frozen=True)
class DecodedClip:
    frames: np.ndarray | None  # (T, H, W, 3) uint8 RGB, or None when with_video=False
    frame_times: np.ndarray  # (T,) seconds from the video start (clip time, also for segments)
    audio: np.ndarray | None  # (N,) float32 mono in [-1, 1] at sample_rate, sample 0 at start_s; or None
    sample_rate: int
    duration_s: float  # of the whole clip
    source_fps: float | None
    start_s: float = 0.0  # the decoded segment [start_s, end_s); end_s None = to the clip's end
    end_s: float | None = None


def stream_seconds(stream) -> float | None:
    if stream is not None and stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    return None


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
    start_s: float | None = None,
    end_s: float | None = None,
    cache: bool = False,
    cache_dir: str | Path | None = None,
) -> DecodedClip:
    """Sampled RGB frames and the audio track (mono float32), in one forward demux pass.

    ``start_s``/``end_s`` restrict both to the segment [start_s, end_s): frames whose timestamps lie in
    it (times stay clip times), audio with sample 0 at start_s. ``cache=True`` keeps the result on disk
    keyed by the file's sha256 + every parameter; a hit maps the frames from disk (copy-on-write: writes stay in memory).
    Raises MediaError subclasses (MissingMedia, EmptyMedia, TruncatedMedia, UnreadableMedia, ...).
    """
    path = check_file(path)
    if start_s is not None and start_s < 0 or end_s is not None and end_s <= (start_s or 0.0):
        raise ValueError(f"bad segment [{start_s}, {end_s}): need 0 <= start_s < end_s")
    opts = dict(fps=fps, n_frames=n_frames, max_frames=max_frames, max_pixels=max_pixels, sample_rate=sample_rate,
                with_video=with_video, with_audio=with_audio, start_s=start_s, end_s=end_s)
    if not cache:
        return _decode_file(path, **opts)
    target = cache_root(cache_dir) / \
        f"{file_sha256(path)}-decode-{params_key({**opts, 'v': _CACHE_VERSION})}"

    def make() -> tuple[dict[str, np.ndarray], dict]:
        d = _decode_file(path, **opts)
        arrays = {"frame_times": d.frame_times}
        arrays.update({k: v for k, v in (("frames", d.frames), ("audio", d.audio)) if v is not None})
        return arrays, {"sample_rate": d.sample_rate, "duration_s": d.duration_s, "source_fps": d.source_fps,
                        "start_s": d.start_s, "end_s": d.end_s}

    arrays, meta = cached_arrays(target, make, mmap=("frames",))
    return DecodedClip(frames=arrays.get("frames"), frame_times=arrays["frame_times"], audio=arrays.get("audio"),
                       sample_rate=meta["sample_rate"], duration_s=meta["duration_s"],
                       source_fps=meta["source_fps"], start_s=meta["start_s"], end_s=meta["end_s"])


def _decode_file(path: Path, **opts) -> DecodedClip:
    import av

    container = open_container(path)
    try:
        with container:
            return _decode(container, path, **opts)
    except av.error.FFmpegError as exc:
        raise UnreadableMedia.at(path, f"cannot decode ({exc})") from exc


class _Picker:
    """Fills sampling targets with the frame on screen at each (the last frame starting at or before it)."""

    def __init__(self, path: Path, targets: np.ndarray, lo: float, hi: float | None, max_pixels: int | None,
                 time_base: float, t0: float, frame_step: float) -> None:
        self.path, self.targets, self.lo, self.hi = path, targets, lo, hi
        self.max_pixels, self.tb, self.t0, self.frame_step = max_pixels, time_base, t0, frame_step
        self.k = 0  # next target to fill
        self.out: np.ndarray | None = None
        self.times = np.zeros(len(targets))
        self.prev = None  # (t, frame): the last eligible frame so far
        self.last_conv: tuple[object, int] | None = None  # (frame item, slot) last converted
        self.size: tuple[int, int] | None = None
        self.end = 0.0  # where the decoded video stops (s)
        self.n = 0
        self.closed = False  # a frame at or after the segment's end arrived
        self.recent: deque[float] = deque(maxlen=64)  # timestamps of recently demuxed packets

    @property
    def done(self) -> bool:
        return self.closed or self.k >= len(self.targets)

    def may_skip(self, pts: int | None) -> bool:
        """May this packet's frame go undecoded (if it is a non-reference frame)?

        Yes when it starts before the segment, or when a packet demuxed earlier starts after it but not
        after the next target: then it is never the last frame at or before any remaining target.
        The next target can only lag behind the decoder's true position, which makes this stricter.
        """
        if pts is None:
            return False
        t = pts * self.tb - self.t0
        if t < self.lo - 2 * _EPS:  # stricter than push() by more than float rounding
            return True
        if self.done:
            return False
        target = self.targets[self.k]  # no tolerance here: push() counts frames up to target + _EPS
        return any(t < q <= target for q in self.recent)

    def seen(self, pts: int | None) -> None:
        if pts is not None:
            self.recent.append(pts * self.tb - self.t0)

    def push(self, frame) -> None:
        """Take the next decoded frame (presentation order)."""
        # frame.time, not pts * float(tb): times must equal what a plain decode reports, to the bit
        t = float(frame.time) - self.t0 if frame.time is not None else self.n * self.frame_step
        self.n += 1
        if t < self.lo - _EPS:  # before the segment (decoded from the keyframe we seeked to)
            return
        if self.hi is not None and t >= self.hi - _EPS:
            self.finish()
            self.closed = True
            return
        if self.size is None:
            check_size(self.path, frame.width, frame.height)
            self.size = fit_pixels(frame.width, frame.height, self.max_pixels)
        self.end = max(self.end, t + self.frame_step)
        while self.prev is not None and not self.done and t > self.targets[self.k] + _EPS:
            self._fill(self.prev)
        self.prev = (t, frame)

    def finish(self) -> None:
        while self.prev is not None and self.k < len(self.targets):  # targets past the last frame: it stays on screen
            self._fill(self.prev)

    def _fill(self, item) -> None:
        t, frame = item
        if self.out is None:  # one allocation: no list of frames + np.stack copy (2x peak memory)
            w, h = self.size
            self.out = np.empty((len(self.targets), h, w, 3), np.uint8)
        if self.last_conv is not None and self.last_conv[0] is item:  # shown at several targets
            self.out[self.k] = self.out[self.last_conv[1]]
        else:
            self.out[self.k] = self._rgb(frame)
            self.last_conv = (item, self.k)
        self.times[self.k] = t
        self.k += 1

    def _rgb(self, frame) -> np.ndarray:
        w, h = self.size
        if 0 <= frame.width - w <= 1 and 0 <= frame.height - h <= 1:  # same size, or odd: crop, pixel-exact
            return frame.to_ndarray(format="rgb24")[:h, :w]
        return frame.to_ndarray(width=w, height=h, format="rgb24")  # swscale resizes, not numpy


class _Audio:
    """Resamples decoded audio to mono float32 and cuts it to the segment."""

    def __init__(self, rate: int, t0: float, lo: float, hi: float | None) -> None:
        import av

        self.resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
        self.rate, self.t0, self.lo, self.hi = rate, t0, lo, hi
        self.chunks: list[np.ndarray] = []
        self.first: float | None = None  # clip time of the first decoded sample
        self.done = False

    def push(self, frame) -> None:
        t = float(frame.time) - self.t0 if frame.time is not None else None
        if self.hi is not None and t is not None and t >= self.hi:
            self.done = True
            return
        if self.first is None and t is not None:
            self.first = t
        self._take(self.resampler.resample(frame))

    def _take(self, frames) -> None:
        self.chunks.extend(af.to_ndarray().reshape(-1) for af in frames)

    def finish(self) -> tuple[np.ndarray, float]:
        """(samples from ``lo``, clip time where the decoded audio ends)."""
        self._take(self.resampler.resample(None))  # flush the resampler's buffered tail
        audio = np.concatenate(self.chunks).astype(np.float32) if self.chunks else np.zeros(0, np.float32)
        first = self.first if self.first is not None else max(self.lo, 0.0)
        decoded_end = first + len(audio) / self.rate
        # align sample 0 with the segment start (t=0 for whole clips): pad a late start, drop a pre-roll
        shift = round((first - max(self.lo, 0.0)) * self.rate)
        audio = np.concatenate([np.zeros(shift, np.float32), audio]) if shift > 0 else audio[-shift:]
        if self.hi is not None:  # exactly the segment's length (a stream ending a hair early is padded)
            n = round((self.hi - max(self.lo, 0.0)) * self.rate)
            audio = audio[:n] if len(audio) >= n else np.concatenate([audio, np.zeros(n - len(audio), np.float32)])
        return np.clip(audio, -1.0, 1.0), decoded_end


def _check_complete(path: Path, kind: str, decoded_end: float, expected_end: float | None, stream) -> None:
    """A file cut short (index intact, media data missing) decodes 'fine' but ends early: refuse it.

    Only against the stream's own declared length: the container's may be another stream's.
    """
    declared = stream_seconds(stream)
    if declared is None or expected_end is None:
        return
    if expected_end - decoded_end > max(0.5, 0.1 * declared):
        raise TruncatedMedia.at(path, f"truncated ({kind} ends at {decoded_end:.2f} s of {expected_end:.2f} s)")


def _decode(container, path: Path, *, fps, n_frames, max_frames, max_pixels, sample_rate, with_video, with_audio,
            start_s, end_s) -> DecodedClip:
    vstream = container.streams.video[0] if container.streams.video else None
    astream = container.streams.audio[0] if container.streams.audio else None
    if vstream is None and astream is None:  # FFmpeg knew the container: it is valid but holds nothing
        raise EmptyMedia.at(path, "no audio or video stream in the container")
    if with_video and vstream is None:
        raise NoVideoStream.at(path, "no video stream")
    duration = (float(container.duration) / 1e6 if container.duration else None) or \
        stream_seconds(vstream) or stream_seconds(astream) or 0.0
    source_fps = float(vstream.average_rate) if vstream is not None and vstream.average_rate else None
    # one clock for frames and audio: seconds since the video's first timestamp
    ref = vstream if vstream is not None else astream
    t0 = float(ref.start_time * ref.time_base) if ref is not None and ref.start_time is not None else 0.0
    seg_lo = start_s or 0.0
    hi = min(end_s, duration) if end_s is not None and duration > 0 else end_s
    if start_s is not None and duration > 0 and start_s >= duration:
        raise ValueError(f"{path}: segment starts at {start_s} s, after the clip's end ({duration:.3f} s)")
    lo = start_s if start_s is not None else -math.inf  # whole clip: every frame is eligible

    picker = audio = None
    if with_video:
        assert vstream is not None
        seg_len = (hi if hi is not None else duration) - seg_lo
        targets = seg_lo + frame_times_for(seg_len, fps=fps, n_frames=n_frames, max_frames=max_frames)
        tb = float(vstream.time_base)  # float maths per packet: Fractions cost more than the rest of the loop
        step = 1.0 / (source_fps or 25.0)
        picker = _Picker(path, targets, lo, hi, max_pixels, tb, t0, step)
        # frame threads: output order and pixels are unchanged; wall time drops when a core is free
        vstream.thread_type = "AUTO"
    if with_audio and astream is not None:
        audio = _Audio(sample_rate, t0, lo, hi)
    wanted = [s for s, on in ((vstream, picker is not None), (astream, audio is not None)) if on]
    if start_s is not None and start_s > 0.1:
        # back to the keyframe at or before start (a little earlier, for the audio decoder's pre-roll);
        # the mp4 demuxer moves every stream to that time, so audio and video start together
        s = wanted[0]
        container.seek(int((start_s - 0.1 + t0) / s.time_base), stream=s, backward=True, any_frame=False)

    cc = vstream.codec_context if picker is not None else None
    skipping = False
    for packet in container.demux(*wanted):
        if picker is not None and packet.stream is vstream:
            if picker.done:
                if audio is None or audio.done:
                    break
                continue
            if picker.may_skip(packet.pts) != skipping:
                skipping = not skipping
                cc.skip_frame = "NONREF" if skipping else "DEFAULT"
            picker.seen(packet.pts)
            for frame in packet.decode():
                picker.push(frame)
        elif audio is not None and not audio.done:
            for frame in packet.decode():
                audio.push(frame)
            if audio.done and (picker is None or picker.done):
                break

    frames = None
    if picker is not None:
        if picker.prev is None:
            _no_frames(path, vstream, start_s)
        if picker.k < len(picker.targets):
            _check_complete(path, "video", picker.end, hi if hi is not None else stream_seconds(vstream), vstream)
        picker.finish()
        frames = picker.out
    samples = None
    if audio is not None:
        samples, decoded_end = audio.finish()
        expected = stream_seconds(astream)
        _check_complete(path, "audio", decoded_end, min(hi, expected) if hi and expected else expected, astream)
    return DecodedClip(
        frames=frames,
        frame_times=picker.times if picker is not None else np.zeros(0),
        audio=samples,
        sample_rate=sample_rate,
        duration_s=round(duration, 3),
        source_fps=source_fps,
        start_s=seg_lo,
        end_s=hi,
    )


def _no_frames(path: Path, vstream, start_s: float | None) -> None:
    if start_s is not None:
        raise EmptyMedia.at(path, f"no video frames in the segment starting at {start_s} s")
    if vstream.frames:
        raise TruncatedMedia.at(path, f"truncated (index lists {vstream.frames} video frames, none decode)")
    raise EmptyMedia.at(path, "no decodable video frames")
