"""Decoded media for perturbations, and the writer that turns it back into an H.264/AAC mp4.

Audio is decoded whole at the clip's own rate and channel count (a 10 s stereo clip is ~4 MB), so audio
perturbations are exact sample operations. Video is streamed frame by frame through a ``VideoOp`` and
never held whole (10 s of 1536x1024 RGB would be 1.1 GB). When a perturbation leaves the picture alone
its H.264 packets are copied bit for bit: the negative then differs from its positive in the audio only.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from mtavg.media import NoAudioStream, NoVideoStream, UnreadableMedia, check_file, open_container

#: AAC bit rate per channel. FFmpeg's AAC encoder low-passes at min(12 kHz + bit rate per channel / 16,
#: 22 kHz, Nyquist) (libavcodec/psymodel.h): at 96 kb/s that is 18 kHz, which deletes a quarter of white
#: noise added to a 48 kHz clip (0 dB SNR measured +1.2 dB), and the round trip kept only 32-54 dB SNR.
#: At 160 kb/s the cut-off is 22 kHz, a decode -> encode round trip keeps 39-48 dB SNR on the demo clips,
#: and added noise measures within 0.3 dB of its nominal SNR.
AAC_BITRATE_PER_CHANNEL = 160_000
#: x264 quality for re-encoded pictures: visually lossless, so only the perturbation shows.
X264_CRF = 18


@dataclass
class AudioTrack:
    """(channels, samples) float32 in [-1, 1] at ``rate``."""

    samples: np.ndarray
    rate: int

    def __post_init__(self) -> None:
        self.samples = np.atleast_2d(np.asarray(self.samples, dtype=np.float32))

    @property
    def channels(self) -> int:
        return int(self.samples.shape[0])

    @property
    def n(self) -> int:
        return int(self.samples.shape[1])

    @property
    def duration_s(self) -> float:
        return self.n / self.rate

    def mono(self) -> np.ndarray:
        return self.samples.mean(axis=0)

    def with_samples(self, samples: np.ndarray) -> AudioTrack:
        return AudioTrack(np.ascontiguousarray(samples, dtype=np.float32), self.rate)


@dataclass(frozen=True)
class VideoFacts:
    width: int
    height: int
    fps: float
    n_frames: int | None
    duration_s: float


def read_audio(path: str | Path) -> AudioTrack:
    """The whole audio track at its own rate; more than two channels are folded to stereo."""
    import av

    path = check_file(path)
    container = open_container(path)
    try:
        with container:
            if not container.streams.audio:
                raise NoAudioStream.at(path, "no audio stream")
            stream = container.streams.audio[0]
            rate = stream.codec_context.sample_rate
            layout = "mono" if (stream.codec_context.channels or 1) == 1 else "stereo"
            resampler = av.AudioResampler(format="fltp", layout=layout, rate=rate)
            chunks: list[np.ndarray] = []
            first_t: float | None = None
            for frame in container.decode(stream):
                if first_t is None and frame.time is not None:
                    first_t = float(frame.time) - float((stream.start_time or 0) * stream.time_base)
                chunks.extend(f.to_ndarray() for f in resampler.resample(frame))
            chunks.extend(f.to_ndarray() for f in resampler.resample(None))
    except av.error.FFmpegError as exc:
        raise UnreadableMedia.at(path, f"cannot decode audio ({exc})") from exc
    if not chunks:
        raise NoAudioStream.at(path, "the audio stream holds no samples")
    samples = np.concatenate(chunks, axis=1)
    lead = round((first_t or 0.0) * rate)  # audio starting after t=0 keeps its place on the timeline
    if lead > 0:
        samples = np.pad(samples, ((0, 0), (lead, 0)))
    return AudioTrack(samples, rate)


def video_facts(path: str | Path) -> VideoFacts:
    from mtavg.media import probe

    info = probe(path)
    if not info.has_video:
        raise NoVideoStream.at(path, "no video stream")
    return VideoFacts(width=int(info.width or 0), height=int(info.height or 0), fps=float(info.fps or 25.0),
                      n_frames=info.n_frames, duration_s=float(info.duration_s))


class VideoOp:
    """A streaming picture transform: called once per frame in display order with its index and time.

    Subclasses may keep state (the frame on hold during a freeze) but may only look back, never ahead.
    """

    name = "identity"

    def __call__(self, index: int, t: float, frame: np.ndarray) -> np.ndarray:
        return frame

    def facts(self) -> dict[str, Any]:
        """What the op did (frames held, frames changed), recorded in the sidecar."""
        return {}


def write_clip(src: str | Path, out: str | Path, *, audio: AudioTrack | None,
               video_op: VideoOp | None = None, reencode_video: bool = False) -> dict[str, Any]:
    """Write ``out`` (mp4): the source's picture (copied, or re-encoded through ``video_op``) + ``audio``.

    ``audio=None`` writes a clip without an audio stream. The file appears atomically (tmp + rename), so an
    interrupted build never leaves a half-written clip under its final name. Returns encoder facts.
    """
    import av

    src, out = check_file(src), Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp.mp4")
    copy = video_op is None and not reencode_video
    facts: dict[str, Any] = {"video": "copy" if copy else "libx264", "audio": None}
    try:
        with av.open(str(src)) as inp, av.open(str(tmp), "w", format="mp4") as dst:
            if not inp.streams.video:
                raise NoVideoStream.at(src, "no video stream")
            vin = inp.streams.video[0]
            # Every stream is declared before the first packet: the mp4 header is written with the first.
            vout = dst.add_stream_from_template(vin) if copy else _video_stream(dst, vin)
            aout = _audio_stream(dst, audio) if audio is not None else None
            if copy:
                facts["video_frames"] = _copy_video(inp, vin, dst, vout)
            else:
                facts.update(_encode_video(inp, vin, dst, vout, video_op or VideoOp()))
            if aout is not None and audio is not None:
                facts["audio"] = _encode_audio(dst, aout, audio)
        os.replace(tmp, out)
    except av.error.FFmpegError as exc:
        raise UnreadableMedia.at(src, f"cannot write {out.name} ({exc})") from exc
    finally:
        tmp.unlink(missing_ok=True)
    return facts


def _copy_video(inp, vin, dst, vout) -> int:
    copied = 0
    for packet in inp.demux(vin):
        if packet.dts is None:  # the demuxer's end-of-stream flush packet
            continue
        packet.stream = vout
        dst.mux(packet)
        copied += 1
    return copied


def _video_stream(dst, vin):
    cc = vin.codec_context
    vout = dst.add_stream("libx264", rate=vin.average_rate or 25)
    vout.width, vout.height, vout.pix_fmt = cc.width - cc.width % 2, cc.height - cc.height % 2, "yuv420p"
    vout.time_base = vout.codec_context.time_base = vin.time_base
    vout.options = {"crf": str(X264_CRF), "preset": "veryfast"}
    return vout


def _encode_video(inp, vin, dst, vout, op: VideoOp) -> dict[str, Any]:
    width, height = vout.width, vout.height  # 4:2:0 wants even sides: an odd source loses one row/column
    vin.thread_type = "AUTO"
    t0 = float((vin.start_time or 0) * vin.time_base)
    n = 0
    last_pts = None
    for frame in inp.decode(vin):
        t = float(frame.time) - t0 if frame.time is not None else n / float(vin.average_rate or 25)
        rgb = frame.to_ndarray(format="rgb24")[:height, :width]
        picture = np.ascontiguousarray(op(n, t, rgb), dtype=np.uint8)
        new = _video_frame(picture)
        pts = frame.pts if frame.pts is not None else n
        if last_pts is not None and pts <= last_pts:  # keep pts strictly increasing for the muxer
            pts = last_pts + 1
        new.pts, new.time_base, last_pts = pts, vin.time_base, pts
        for packet in vout.encode(new):
            dst.mux(packet)
        n += 1
    for packet in vout.encode():
        dst.mux(packet)
    return {"video_frames": n, "crf": X264_CRF, **op.facts()}


def _video_frame(rgb: np.ndarray):
    import av

    return av.VideoFrame.from_ndarray(rgb, format="rgb24")


def _fold(audio: AudioTrack) -> np.ndarray:
    samples = audio.samples
    if audio.channels > 2:
        samples = np.stack([samples[0::2].mean(0), samples[1::2].mean(0)])
    return samples


def _audio_stream(dst, audio: AudioTrack):
    channels = _fold(audio).shape[0]
    aout = dst.add_stream("aac", rate=audio.rate, layout="mono" if channels == 1 else "stereo")
    aout.bit_rate = AAC_BITRATE_PER_CHANNEL * channels
    return aout


def _encode_audio(dst, aout, audio: AudioTrack) -> dict[str, Any]:
    import av

    samples = _fold(audio)
    layout = "mono" if samples.shape[0] == 1 else "stereo"
    pcm = np.ascontiguousarray(np.clip(samples, -1.0, 1.0), dtype=np.float32)
    block = 1024  # AAC frame size
    for i in range(0, pcm.shape[1], block):
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(pcm[:, i:i + block]), format="fltp", layout=layout)
        frame.sample_rate, frame.pts, frame.time_base = audio.rate, i, Fraction(1, audio.rate)
        for packet in aout.encode(frame):
            dst.mux(packet)
    for packet in aout.encode():
        dst.mux(packet)
    return {"codec": "aac", "rate": audio.rate, "channels": int(samples.shape[0]), "bit_rate": aout.bit_rate,
            "samples": int(pcm.shape[1])}
