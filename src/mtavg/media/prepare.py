"""Turn clips into what evaluators and metrics consume: frames, audio, muted remuxes, WAVs, segments.

One forward demux/decode pass per clip (``decode_clip``, in ``decode``); derived files are content-addressed
(sha256 of the clip) in an on-disk cache (``cache``) and written atomically, so concurrent workers are safe.
This module is the stable import point for all of it.
"""

from __future__ import annotations

import io
import wave
from fractions import Fraction
from pathlib import Path

import numpy as np

from mtavg.media import (
    EmptyMedia,
    MediaError,
    NoAudioStream,
    NoVideoStream,
    TruncatedMedia,
    UnreadableMedia,
    check_file,
    probe,
)
from mtavg.media.cache import cache_root, cached_file, file_sha256, media_cache_dir
from mtavg.media.decode import DecodedClip, decode_clip, fit_pixels, frame_times_for

__all__ = [
    "DecodedClip", "MediaError", "audio_wav", "clip_segment", "decode_clip", "file_sha256", "frame_times_for",
    "jpeg_bytes", "media_cache_dir", "video_without_audio", "wav_bytes",
]


def video_without_audio(path: str | Path, cache_dir: str | Path | None = None) -> Path:
    """The clip's video stream alone, remuxed (stream copy) into an mp4; the input if it has no audio."""
    import av

    path = check_file(path)
    target = cache_root(cache_dir) / f"{file_sha256(path)}-noaudio.mp4"
    if target.is_file():
        return target
    info = probe(path)  # cheap, cached, and raises a typed MediaError naming the file
    if not info.has_audio:
        return path
    if not info.has_video:
        raise NoVideoStream.at(path, "no video stream")

    def write(tmp: Path) -> None:
        try:
            with av.open(str(path)) as src, av.open(str(tmp), "w", format="mp4") as dst:
                vin = src.streams.video[0]
                vout = dst.add_stream_from_template(vin)
                copied = 0
                for packet in src.demux(vin):
                    if packet.dts is None:  # the demuxer's end-of-stream flush packet
                        continue
                    packet.stream = vout
                    dst.mux(packet)
                    copied += 1
        except av.error.FFmpegError as exc:
            raise UnreadableMedia.at(path, f"cannot remux ({exc})") from exc
        # a stream copy never decodes, so a cut-short file shows only as missing packets
        if vin.frames and copied < vin.frames:
            raise TruncatedMedia.at(path, f"truncated ({copied} of {vin.frames} video packets)")

    return cached_file(target, write)


def audio_wav(path: str | Path, sample_rate: int = 16000, cache_dir: str | Path | None = None) -> Path:
    """The audio track as mono PCM16 WAV at ``sample_rate``, cached as <sha256>-<rate>.wav."""
    path = check_file(path)
    target = cache_root(cache_dir) / f"{file_sha256(path)}-{sample_rate}.wav"

    def write(tmp: Path) -> None:
        if not probe(path).has_audio:
            raise NoAudioStream.at(path, "no audio stream")
        clip = decode_clip(path, sample_rate=sample_rate, with_video=False)
        if clip.audio is None:  # pragma: no cover - probe said there is audio
            raise NoAudioStream.at(path, "no audio stream")
        tmp.write_bytes(wav_bytes(clip.audio, sample_rate))

    return cached_file(target, write)


def clip_segment(path: str | Path, start_s: float, end_s: float, cache_dir: str | Path | None = None) -> Path:
    """An mp4 of [start_s, end_s) of the clip (H.264 + AAC, re-encoded), cached; for sending one segment.

    The frame on screen at start_s opens the segment at t=0; later frames keep their offsets (VFR stays VFR).
    """
    path = check_file(path)
    if not 0 <= start_s < end_s:
        raise ValueError(f"bad segment [{start_s}, {end_s}): need 0 <= start_s < end_s")
    name = f"{file_sha256(path)}-seg-{round(start_s * 1000)}-{round(end_s * 1000)}.mp4"
    target = cache_root(cache_dir) / name
    if target.is_file():
        return target
    info = probe(path)
    if info.duration_s and start_s >= info.duration_s:
        raise ValueError(f"{path}: segment starts at {start_s} s, after the clip's end ({info.duration_s} s)")
    return cached_file(target, lambda tmp: _encode_segment(path, tmp, start_s, end_s))


def _encode_segment(path: Path, tmp: Path, start_s: float, end_s: float) -> None:
    import av

    try:
        with av.open(str(path)) as src, av.open(str(tmp), "w", format="mp4") as dst:
            _SegmentWriter(src, dst, path, start_s, end_s).run()
    except av.error.FFmpegError as exc:
        raise UnreadableMedia.at(path, f"cannot cut segment ({exc})") from exc


class _SegmentWriter:
    def __init__(self, src, dst, path: Path, start_s: float, end_s: float) -> None:
        import av

        self.src, self.dst, self.path, self.start, self.end = src, dst, path, start_s, end_s
        self.vin = src.streams.video[0] if src.streams.video else None
        self.ain = src.streams.audio[0] if src.streams.audio else None
        ref = self.vin or self.ain
        self.t0 = float(ref.start_time * ref.time_base) if ref is not None and ref.start_time is not None else 0.0
        self.vout = self.aout = None
        if self.vin is not None:
            cc = self.vin.codec_context
            self.size = fit_pixels(cc.width, cc.height, None)  # x264 4:2:0 wants even dims
            self.vout = dst.add_stream("libx264", rate=self.vin.average_rate or 25)
            self.vout.width, self.vout.height = self.size
            self.vout.pix_fmt = "yuv420p"
            self.vout.time_base = self.vout.codec_context.time_base = self.vin.time_base
            self.vout.options = {"crf": "18", "preset": "veryfast"}
            self.vin.thread_type = "AUTO"
        if self.ain is not None:
            rate = self.ain.codec_context.sample_rate or 48000
            self.layout = "mono" if (self.ain.codec_context.channels or 1) == 1 else "stereo"
            self.aout = dst.add_stream("aac", rate=rate, layout=self.layout)
            self.resampler = av.AudioResampler(format="fltp", layout=self.layout, rate=rate)
        self.held = None  # the last frame at or before start: it is on screen when the segment begins
        self.n_video = 0
        self.audio: list[np.ndarray] = []
        self.audio_first: float | None = None

    def run(self) -> None:
        streams = [s for s in (self.vin, self.ain) if s is not None]
        if self.start > 0.1:
            s = streams[0]
            self.src.seek(int((self.start - 0.1 + self.t0) / s.time_base), stream=s, backward=True, any_frame=False)
        v_done, a_done = self.vin is None, self.ain is None
        for packet in self.src.demux(*streams):
            if packet.stream is self.vin and not v_done:
                for frame in packet.decode():
                    v_done = v_done or self._video(frame)
            elif packet.stream is self.ain and not a_done:
                for frame in packet.decode():
                    t = float(frame.time) - self.t0 if frame.time is not None else None
                    if t is not None and t >= self.end:
                        a_done = True
                        break
                    if self.audio_first is None and t is not None:
                        self.audio_first = t
                    self.audio.extend(f.to_ndarray() for f in self.resampler.resample(frame))
            if v_done and a_done:
                break
        if self.vout is not None:
            if self.held is not None:  # nothing after start: the held frame is the whole segment
                self._emit(self.held, self.start)
            if self.n_video == 0:
                raise EmptyMedia.at(self.path, f"no video frames in [{self.start}, {self.end}) s")
            for p in self.vout.encode():
                self.dst.mux(p)
        if self.aout is not None:
            self._write_audio()

    def _video(self, frame) -> bool:
        """Take one decoded frame; True once past the segment."""
        t = float(frame.time) - self.t0 if frame.time is not None else self.start
        if t <= self.start + 1e-6:
            self.held = frame
            return False
        if t >= self.end - 1e-6:
            return True
        if self.held is not None:
            self._emit(self.held, self.start)
            self.held = None
        self._emit(frame, t)
        return False

    def _emit(self, frame, t: float) -> None:
        w, h = self.size
        out = frame.reformat(width=w, height=h, format="yuv420p")
        out.pts, out.time_base = round((t - self.start) / self.vout.time_base), self.vout.time_base
        out.pict_type = av_pict_none()
        for p in self.vout.encode(out):
            self.dst.mux(p)
        self.n_video += 1

    def _write_audio(self) -> None:
        import av

        self.audio.extend(f.to_ndarray() for f in self.resampler.resample(None))
        rate = self.aout.codec_context.sample_rate
        channels = 1 if self.layout == "mono" else 2
        pcm = np.concatenate(self.audio, axis=1) if self.audio else np.zeros((channels, 0), np.float32)
        shift = round(((self.audio_first or 0.0) - self.start) * rate)  # first decoded sample vs start
        pcm = np.pad(pcm, ((0, 0), (shift, 0))) if shift > 0 else pcm[:, -shift:]
        pcm = np.ascontiguousarray(pcm[:, : round((self.end - self.start) * rate)], dtype=np.float32)
        for i in range(0, pcm.shape[1], 1024):
            frame = av.AudioFrame.from_ndarray(pcm[:, i:i + 1024], format="fltp", layout=self.layout)
            frame.sample_rate, frame.pts, frame.time_base = rate, i, Fraction(1, rate)
            for p in self.aout.encode(frame):
                self.dst.mux(p)
        for p in self.aout.encode():
            self.dst.mux(p)


def av_pict_none():
    """The 'let the encoder choose' picture type (decoded frames carry their source type)."""
    import av

    return av.video.frame.PictureType.NONE


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
