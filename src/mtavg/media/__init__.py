"""Media access. This module probes clips (PyAV) so a broken file fails its item, not the run.

Errors are typed (all ``MediaError``) and carry a stable ``code`` for output records.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

#: Largest side we accept: H.264 level 6.2 tops out at 8192x4320; beyond that a clip is not usable here.
MAX_SIDE = 8192


class MediaError(RuntimeError):
    """A clip cannot be used: unreadable, truncated, zero-length or without the streams needed.

    ``code`` is a stable short name for output records. ``str()`` of a subclass ends with
    ``[MediaError:<code>]`` so records that keep only the class name + message still show the family.
    """

    code = "media"

    def __init__(self, message: str, *, path: str | Path | None = None) -> None:
        super().__init__(message)
        self.path = str(path) if path is not None else None

    @classmethod
    def at(cls, path: str | Path, detail: str) -> MediaError:
        """The error for ``path``, its message starting with the file name."""
        return cls(f"{path}: {detail}", path=path)

    def __str__(self) -> str:
        msg = super().__str__()
        return msg if type(self) is MediaError else f"{msg} [MediaError:{self.code}]"


class MissingMedia(MediaError):
    """No such file."""

    code = "missing"


class EmptyMedia(MediaError):
    """A zero-length file, or a container whose streams hold no frames."""

    code = "empty"


class UnreadableMedia(MediaError):
    """Not a media container (garbage), or no stream that can be decoded."""

    code = "unreadable"


class TruncatedMedia(MediaError):
    """The file ends before its own index or stated duration says it should (cut-short copy/download)."""

    code = "truncated"


class NoAudioStream(MediaError):
    """Audio is needed but the clip has no audio stream."""

    code = "no_audio"


class NoVideoStream(MediaError):
    """Video is needed but the clip has no video stream."""

    code = "no_video"


class OddSizeMedia(MediaError):
    """A frame size the pipeline cannot use (zero, or beyond 8K). Odd but sane sizes are only flagged."""

    code = "odd_size"


def check_file(path: str | Path, *, structure: bool = True) -> Path:
    """The path, after the cheap checks: exists, non-empty, and (``structure``, MP4/MOV) not cut short."""
    path = Path(path)
    if not path.is_file():
        raise MissingMedia.at(path, "no such file")
    size = path.stat().st_size
    if size == 0:
        raise EmptyMedia.at(path, "zero-length file")
    problem = _iso_box_problem(path, size) if structure else None
    if problem:
        raise TruncatedMedia.at(path, f"truncated ({problem})")
    return path


_ISO_START = (b"ftyp",)


def _iso_box_problem(path: Path, size: int) -> str | None:
    """Walk the top-level boxes of an ISO-BMFF file (mp4/mov/m4a); say why it is cut short, or None.

    Why: a cut-short mp4 either lacks its index ('moov' was to come at the end) or has an 'mdat' that
    runs past the end of the file; FFmpeg reports the first as generic 'invalid data' and decodes the
    second 'fine' until the data stops. Reading a few 16-byte headers tells both apart for free.
    Files that do not start with 'ftyp' are left to FFmpeg.
    """
    seen: set[bytes] = set()
    if size < 8:
        return None
    with open(path, "rb") as fh:
        pos = 0
        for _ in range(100_000):
            if pos >= size:
                break
            fh.seek(pos)
            hdr = fh.read(16)
            if len(hdr) < 8:
                break  # a few trailing bytes: FFmpeg ignores them, so do we
            box_size, kind = int.from_bytes(hdr[:4], "big"), hdr[4:8]
            if pos == 0 and kind not in _ISO_START:
                return None
            if not all(32 <= b < 127 for b in kind):
                return None  # not a box boundary after all: let FFmpeg judge the file
            if box_size == 1 and len(hdr) == 16:
                box_size = int.from_bytes(hdr[8:16], "big")
            elif box_size == 0:  # 'extends to the end of the file'
                box_size = size - pos
            if box_size < 8:
                return None
            seen.add(kind)
            if pos + box_size > size:
                return f"'{kind.decode()}' box ends at byte {pos + box_size}, file has {size} bytes"
            pos += box_size
    if b"moov" not in seen:
        return "no 'moov' index box: the file was cut short or never finalised"
    return None


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
    vfr: bool = False  # frame intervals vary (> 5 %) or the average rate differs from the nominal one
    n_frames: int | None = None  # video frame count from the container index, when it has one
    audio_rate: int | None = None
    audio_channels: int | None = None
    video_codec: str | None = None
    audio_codec: str | None = None
    rotation: int | None = None  # display rotation in degrees (from the display matrix), if any
    odd_size: bool = False  # odd width/height: decoders cope, frames come out cropped to even dims
    size_bytes: int = 0


def probe(path: str | Path) -> StreamInfo:
    """Stream facts, after decoding the first video frame to prove it decodes (memoised per file version).

    Raises MissingMedia, EmptyMedia, TruncatedMedia, UnreadableMedia or OddSizeMedia, naming the file.
    """
    p = Path(path)
    try:
        st = p.stat()
    except OSError:
        raise MissingMedia.at(p, "no such file") from None
    if not p.is_file():
        raise MissingMedia.at(p, "no such file")
    return _probe(str(p), st.st_size, st.st_mtime_ns)  # size + mtime: an edited file is probed anew


@lru_cache(maxsize=4096)
def _probe(path_s: str, size: int, mtime_ns: int) -> StreamInfo:
    import av  # imported here: the CLI's start-up should not pay for it

    path = check_file(path_s)
    container = open_container(path)
    try:
        with container:
            return _facts(container, path, size)
    except av.error.FFmpegError as exc:
        raise UnreadableMedia.at(path, f"cannot decode ({exc})") from exc


def open_container(path: Path):
    """av.open for reading, its failures typed: EOF inside the header is a cut-short file, the rest garbage."""
    import av

    try:
        return av.open(str(path))
    except av.error.EOFError as exc:
        raise TruncatedMedia.at(path, f"truncated (file ends inside its header: {exc})") from exc
    except av.error.FFmpegError as exc:
        raise UnreadableMedia.at(path, f"not a readable media file ({exc})") from exc


probe.cache_clear = _probe.cache_clear  # type: ignore[attr-defined]  # kept from the lru_cache days


def _facts(container, path: Path, size: int) -> StreamInfo:
    video = container.streams.video[0] if container.streams.video else None
    audio = container.streams.audio[0] if container.streams.audio else None
    if video is None and audio is None:  # FFmpeg knew the container: it is valid but holds nothing
        raise EmptyMedia.at(path, "no audio or video stream in the container")
    duration = float(container.duration) / 1e6 if container.duration else None
    frames, rotation, width, height, vfr = 0, None, None, None, False
    if video is not None:
        if not video.codec_context.name:
            raise UnreadableMedia.at(path, "video codec unknown to FFmpeg")
        pts: list[int] = []
        demuxed = container.demux(video)
        for packet in demuxed:
            if packet.pts is not None:
                pts.append(packet.pts)
            decoded = packet.decode()
            if decoded:
                frames, first = 1, decoded[0]
                rotation = int(round(first.rotation)) if first.rotation is not None else None
                width, height = first.width, first.height
                break
        if not frames:
            if video.frames:
                raise TruncatedMedia.at(path, f"truncated (index lists {video.frames} video frames, none decode)")
            raise EmptyMedia.at(path, "no video frames")
        check_size(path, width, height)
        vfr = _is_vfr(video, pts, demuxed)
        if duration is None and video.duration and video.time_base:
            duration = float(video.duration * video.time_base)
    if duration is None and audio is not None and audio.duration and audio.time_base:
        duration = float(audio.duration * audio.time_base)
    return StreamInfo(
        path=str(path),
        duration_s=round(duration or 0.0, 3),
        has_video=video is not None,
        has_audio=audio is not None,
        width=width,
        height=height,
        fps=float(video.average_rate) if video is not None and video.average_rate else None,
        frames_decoded=frames,
        vfr=vfr,
        n_frames=(video.frames or None) if video is not None else None,
        audio_rate=(audio.codec_context.sample_rate or None) if audio is not None else None,
        audio_channels=(audio.codec_context.channels or None) if audio is not None else None,
        video_codec=video.codec_context.name if video is not None else None,
        audio_codec=(audio.codec_context.name or None) if audio is not None else None,
        rotation=rotation,
        odd_size=bool(width and height and (width % 2 or height % 2)),
        size_bytes=size,
    )


def check_size(path: Path, width: int | None, height: int | None) -> None:
    """Raise OddSizeMedia for sizes nothing downstream can use; odd-but-sane sizes pass."""
    if not width or not height or width <= 0 or height <= 0:
        raise OddSizeMedia.at(path, f"unusable frame size {width}x{height}")
    if width > MAX_SIDE or height > MAX_SIDE:
        raise OddSizeMedia.at(path, f"frame size {width}x{height} beyond {MAX_SIDE} px (8K)")


_VFR_WINDOW = 120  # frames whose timestamps are compared


def _is_vfr(video, pts: list[int], demuxed) -> bool:
    """VFR if the first ~120 frame intervals deviate > 5 % from their median, or average != nominal rate.

    Reads timestamps from the container index when it is complete (mp4: free), else demuxes (never
    decodes) up to 120 more packets.
    """
    stamps: list[int] = []
    index = video.index_entries
    if video.frames and len(index) >= video.frames:
        stamps = [index[i].timestamp for i in range(min(len(index), _VFR_WINDOW + 1))]  # decode order (dts)
    else:
        stamps = pts
        for packet in demuxed:
            if len(stamps) > _VFR_WINDOW:
                break
            if packet.pts is not None:
                stamps.append(packet.pts)
    times = sorted(set(stamps))
    if len(times) >= 3:
        steps = [b - a for a, b in zip(times, times[1:], strict=False)]
        median = sorted(steps)[len(steps) // 2]
        if median > 0 and max(abs(s - median) for s in steps) > 0.05 * median:
            return True
    avg, nominal = video.average_rate, video.guessed_rate
    return bool(avg and nominal and abs(float(avg) / float(nominal) - 1.0) > 0.05)
