"""mtavg.media.prepare: sampling rule, one-pass decode, cached remux/WAV, error handling."""

from __future__ import annotations

import hashlib
import io
import os
import threading
import wave
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from conftest import write_tiny_clip
from mtavg.media import EmptyMedia, MediaError, OddSizeMedia, prepare, probe
from mtavg.media import cache as media_cache
from mtavg.media.prepare import (
    audio_wav,
    decode_clip,
    file_sha256,
    frame_times_for,
    jpeg_bytes,
    media_cache_dir,
    video_without_audio,
    wav_bytes,
)

REAL_CLIPS = Path("/work/shared/clips/avgen-demo")


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    """2 s, 16 frames at 8 fps, 220 Hz tone."""
    return write_tiny_clip(tmp_path_factory.mktemp("prep") / "clip.mp4", 2.0)


@pytest.fixture(scope="module")
def mute_clip(tmp_path_factory) -> Path:
    return write_tiny_clip(tmp_path_factory.mktemp("prep") / "mute.mp4", 1.0, audio=False)


@pytest.fixture()
def cache(tmp_path) -> Path:
    return tmp_path / "cache"


def all_frames(path: Path) -> tuple[list[float], list[np.ndarray]]:
    with av.open(str(path)) as c:
        frames = list(c.decode(video=0))
        return [float(f.time) for f in frames], [f.to_ndarray(format="rgb24") for f in frames]


def stream_facts(path: Path) -> tuple[int, int, int]:
    with av.open(str(path)) as c:
        return len(c.streams.video), len(c.streams.audio), sum(1 for _ in c.decode(video=0))


def faststart_copy(src: Path, dst: Path) -> Path:
    """Remux with the moov atom first, so a truncated copy still opens (the sneaky case)."""
    with av.open(str(src)) as i, av.open(str(dst), "w", options={"movflags": "faststart"}) as o:
        out = {s.index: o.add_stream_from_template(s) for s in i.streams}
        for p in i.demux():
            if p.dts is not None:
                p.stream = out[p.stream.index]
                o.mux(p)
    return dst


# --- sampling rule -----------------------------------------------------------------------------

def test_frame_times_for_modes():
    np.testing.assert_allclose(frame_times_for(8.0, fps=None, n_frames=None, max_frames=64), np.arange(8) + 0.5)
    np.testing.assert_allclose(frame_times_for(2.0, fps=None, n_frames=4, max_frames=64), [0.25, 0.75, 1.25, 1.75])
    np.testing.assert_allclose(frame_times_for(2.0, fps=2, n_frames=None, max_frames=64), [0, 0.5, 1, 1.5])
    capped = frame_times_for(10.0, fps=8, n_frames=None, max_frames=5)
    assert len(capped) == 5 and capped[0] == 0 and capped[-1] == pytest.approx(79 / 8)
    assert np.all(np.diff(capped) > 0)
    assert len(frame_times_for(10.0, fps=None, n_frames=100, max_frames=16)) == 16
    assert list(frame_times_for(0.0, fps=2, n_frames=None, max_frames=8)) == [0.0]
    with pytest.raises(ValueError):
        frame_times_for(1.0, fps=0, n_frames=None, max_frames=8)


# --- decode_clip -------------------------------------------------------------------------------

def test_decode_n_frames_picks_frame_on_screen(clip):
    times, frames = all_frames(clip)
    d = decode_clip(clip, n_frames=5)
    targets = frame_times_for(2.0, fps=None, n_frames=5, max_frames=64)
    assert d.frames.shape == (5, 48, 64, 3) and d.frames.dtype == np.uint8
    assert d.duration_s == pytest.approx(2.0) and d.source_fps == pytest.approx(8.0)
    for t, target, img in zip(d.frame_times, targets, d.frames, strict=True):
        assert target - 1 / 8 < t <= target + 1e-6
        np.testing.assert_array_equal(img, frames[times.index(t)])


def test_decode_fps_mode_and_cap(clip):
    d = decode_clip(clip, fps=4)
    np.testing.assert_allclose(d.frame_times, np.arange(8) / 4)
    d = decode_clip(clip, fps=8, max_frames=4)
    assert len(d.frames) == 4 and d.frame_times[0] == 0 and d.frame_times[-1] == pytest.approx(15 / 8)
    assert len(decode_clip(clip).frames) == 8  # default n_frames


def test_decode_max_pixels_keeps_aspect_even(clip):
    d = decode_clip(clip, n_frames=2, max_pixels=1000)
    _, h, w, _ = d.frames.shape
    assert h * w <= 1000 and h % 2 == 0 and w % 2 == 0
    assert w / h == pytest.approx(64 / 48, rel=0.1)
    assert decode_clip(clip, n_frames=1, max_pixels=10**6).frames.shape[1:3] == (48, 64)  # never upscales


def test_decode_audio(clip):
    d = decode_clip(clip, n_frames=2)
    assert d.audio.dtype == np.float32 and d.audio.ndim == 1 and d.sample_rate == 16000
    assert len(d.audio) / 16000 == pytest.approx(2.0, abs=0.1)
    assert np.sqrt(np.mean(d.audio**2)) > 0.05 and np.abs(d.audio).max() <= 1.0
    d8 = decode_clip(clip, sample_rate=8000, with_video=False)
    assert len(d8.audio) / 8000 == pytest.approx(2.0, abs=0.1)


def test_decode_stream_switches(clip, mute_clip):
    a = decode_clip(clip, with_video=False)
    assert a.frames is None and a.frame_times.shape == (0,) and a.audio is not None
    v = decode_clip(clip, with_audio=False, n_frames=3)
    assert v.audio is None and v.frames.shape[0] == 3
    m = decode_clip(mute_clip, n_frames=3)
    assert m.audio is None and m.frames.shape[0] == 3


def test_decode_vfr_timestamps(tmp_path):
    path, pts = tmp_path / "vfr.mp4", [0, 100, 150, 600, 900, 1400]
    with av.open(str(path), "w") as c:
        v = c.add_stream("libx264", rate=10)
        v.width, v.height, v.pix_fmt = 32, 32, "yuv420p"
        v.time_base = v.codec_context.time_base = Fraction(1, 1000)
        for i, p in enumerate(pts):
            f = av.VideoFrame.from_ndarray(np.full((32, 32, 3), 40 * i, np.uint8), format="rgb24")
            f.pts, f.time_base = p, Fraction(1, 1000)
            for pkt in v.encode(f):
                c.mux(pkt)
        for pkt in v.encode():
            c.mux(pkt)
    d = decode_clip(path, fps=5, with_audio=False)
    targets = frame_times_for(d.duration_s, fps=5, n_frames=None, max_frames=64)
    expected = [max(p / 1000 for p in pts if p / 1000 <= t + 1e-9) for t in targets]
    np.testing.assert_allclose(d.frame_times, expected)
    levels = d.frames[:, 16, 16, 0].astype(int)
    want = [40 * pts.index(round(t * 1000)) for t in expected]
    assert np.all(np.abs(levels - want) <= 6)


# --- errors ------------------------------------------------------------------------------------

def _broken_files(tmp: Path, clip: Path) -> list[Path]:
    raw = clip.read_bytes()
    fast = faststart_copy(clip, tmp / "fast.mp4").read_bytes()
    files = {"missing.mp4": None, "empty.mp4": b"", "garbage.mp4": os.urandom(4096),
             "half.mp4": raw[: len(raw) // 2], "fasthalf.mp4": fast[: len(fast) // 2]}
    for name, data in files.items():
        if data is not None:
            (tmp / name).write_bytes(data)
    return [tmp / name for name in files]


def test_broken_files_raise_media_error_naming_file(tmp_path, cache):
    src = write_tiny_clip(tmp_path / "src.mp4", 4.0)
    for path in _broken_files(tmp_path, src):
        for call in (lambda p: decode_clip(p), lambda p: decode_clip(p, with_video=False),
                     lambda p: audio_wav(p, cache_dir=cache), lambda p: video_without_audio(p, cache_dir=cache)):
            with pytest.raises(MediaError, match=path.name):
                call(path)
    assert not cache.exists() or not list(cache.iterdir())  # nothing half-written left behind


def test_no_audio_cases(mute_clip, cache):
    with pytest.raises(MediaError, match="no audio stream"):
        audio_wav(mute_clip, cache_dir=cache)
    assert video_without_audio(mute_clip, cache_dir=cache) == mute_clip


def test_container_without_frames_is_empty(tmp_path):
    path = tmp_path / "noframes.mp4"
    with av.open(str(path), "w", format="mp4") as c:
        v = c.add_stream("libx264", rate=8)
        v.width, v.height, v.pix_fmt = 64, 48, "yuv420p"
        c.start_encoding()  # header and index, but not a single frame
    for call in (probe, decode_clip):
        with pytest.raises(EmptyMedia, match="noframes.mp4"):
            call(path)


def _encode_frames(path: Path, w: int, h: int, n: int, pix_fmt: str = "yuv420p") -> Path:
    with av.open(str(path), "w") as c:
        v = c.add_stream("libx264", rate=8)
        v.width, v.height, v.pix_fmt = w, h, pix_fmt
        for i in range(n):
            img = (np.arange(h * w * 3).reshape(h, w, 3) * (i + 1) % 251).astype(np.uint8)
            for p in v.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(p)
        for p in v.encode():
            c.mux(p)
    return path


def test_odd_sizes_are_flagged_and_cropped_beyond_8k_refused(tmp_path):
    odd = _encode_frames(tmp_path / "odd.mp4", 63, 47, 4, "yuv444p")  # 4:4:4 can hold odd sizes
    info = probe(odd)
    assert info.odd_size and (info.width, info.height) == (63, 47)
    d = decode_clip(odd, n_frames=4, with_audio=False)
    assert d.frames.shape == (4, 46, 62, 3)  # even dims, by dropping the odd row/column: pixel-exact
    times, frames = all_frames(odd)
    for t, img in zip(d.frame_times, d.frames, strict=True):
        np.testing.assert_array_equal(img, frames[times.index(t)][:46, :62])
    assert decode_clip(odd, n_frames=1, max_pixels=500).frames.shape[1:3] == (18, 24)
    wide = _encode_frames(tmp_path / "wide.mp4", 8200, 16, 1)
    for call in (probe, decode_clip):
        with pytest.raises(OddSizeMedia, match="wide.mp4"):
            call(wide)


# --- cached derived files ----------------------------------------------------------------------

def test_video_without_audio(clip, cache):
    out = video_without_audio(clip, cache_dir=cache)
    assert out.parent == cache and out.name == f"{file_sha256(clip)}-noaudio.mp4"
    n_video, n_audio, n_frames = stream_facts(out)
    assert (n_video, n_audio) == (1, 0) and n_frames == stream_facts(clip)[2] == 16


def test_audio_wav(clip, cache):
    out = audio_wav(clip, cache_dir=cache)
    assert out.name == f"{file_sha256(clip)}-16000.wav"
    with wave.open(str(out)) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, 16000)
        assert w.getnframes() / 16000 == pytest.approx(2.0, abs=0.1)
        pcm = np.frombuffer(w.readframes(w.getnframes()), "<i2")
    assert np.sqrt(np.mean((pcm / 32768.0) ** 2)) > 0.05


def test_cache_hit_does_not_decode(clip, cache, monkeypatch):
    wav, mp4 = audio_wav(clip, cache_dir=cache), video_without_audio(clip, cache_dir=cache)
    stamps = (wav.stat().st_mtime_ns, mp4.stat().st_mtime_ns)

    def boom(*a, **k):
        raise AssertionError("decoded again")

    monkeypatch.setattr(av, "open", boom)
    monkeypatch.setattr(prepare, "decode_clip", boom)
    assert audio_wav(clip, cache_dir=cache) == wav and video_without_audio(clip, cache_dir=cache) == mp4
    assert (wav.stat().st_mtime_ns, mp4.stat().st_mtime_ns) == stamps


def test_concurrent_calls_make_one_valid_file(clip, cache):
    results: list[Path] = []
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            results.append(audio_wav(clip, cache_dir=cache) if i % 2 else video_without_audio(clip, cache_dir=cache))
        except BaseException as exc:  # noqa: BLE001 - surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(set(results)) == 2
    assert sorted(p.name for p in cache.iterdir()) == sorted({p.name for p in results})  # no temp leftovers
    assert stream_facts(next(p for p in results if p.suffix == ".mp4"))[2] == 16
    with wave.open(str(next(p for p in results if p.suffix == ".wav"))) as w:
        assert w.getnframes() > 16000


def test_media_cache_dir_env(tmp_path, monkeypatch):
    monkeypatch.setenv("MTAVG_CACHE_DIR", str(tmp_path / "c"))
    assert media_cache_dir() == tmp_path / "c" / "media" and media_cache_dir().is_dir()


def test_file_sha256_memoised(tmp_path, monkeypatch):
    f = tmp_path / "x.bin"
    f.write_bytes(b"abc")
    assert file_sha256(f) == hashlib.sha256(b"abc").hexdigest()
    monkeypatch.setattr(media_cache.hashlib, "sha256", lambda: pytest.fail("hashed twice"))
    assert file_sha256(str(f)) == hashlib.new("sha256", b"abc").hexdigest()
    monkeypatch.undo()
    f.write_bytes(b"abcd")  # new size -> new key -> rehash
    assert file_sha256(f) == hashlib.sha256(b"abcd").hexdigest()


# --- encoders ----------------------------------------------------------------------------------

def test_jpeg_and_wav_bytes():
    from PIL import Image

    img = np.zeros((24, 40, 3), np.uint8)
    img[:, 20:] = 200
    back = np.asarray(Image.open(io.BytesIO(jpeg_bytes(img))))
    assert back.shape == (24, 40, 3) and abs(int(back[0, 30, 0]) - 200) < 10
    audio = np.array([0.0, 0.5, -1.0, 2.0], np.float32)
    with wave.open(io.BytesIO(wav_bytes(audio, 8000))) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, 8000)
        assert list(np.frombuffer(w.readframes(4), "<i2")) == [0, 16384, -32767, 32767]


# --- real clips (opt-in) -----------------------------------------------------------------------

@pytest.mark.skipif(not os.environ.get("MTAVG_REAL_CLIPS"), reason="set MTAVG_REAL_CLIPS to use real clips")
def test_real_clip_2fps():
    path = sorted(REAL_CLIPS.glob("*.mp4"))[0]
    d = decode_clip(path, fps=2, max_pixels=360 * 420)
    assert d.frames.shape[0] == len(frame_times_for(d.duration_s, fps=2, n_frames=None, max_frames=64))
    _, h, w, c = d.frames.shape
    assert c == 3 and h * w <= 360 * 420 and h % 2 == 0 and w % 2 == 0
    assert len(d.audio) / 16000 == pytest.approx(d.duration_s, abs=0.2)


@pytest.mark.skipif(not os.environ.get("MTAVG_REAL_CLIPS"), reason="set MTAVG_REAL_CLIPS to use real clips")
def test_real_clips_sparse_frames_equal_full_decode_and_facts():
    for path in sorted(Path(os.environ["MTAVG_REAL_CLIPS"]).glob("*.mp4"))[:4]:
        info = probe(path)
        assert not info.vfr and info.n_frames and info.audio_rate and info.video_codec == "h264"
        times, frames = all_frames(path)
        times = np.array(times)
        d = decode_clip(path, n_frames=16)
        for target, t, img in zip(frame_times_for(d.duration_s, fps=None, n_frames=16, max_frames=64),
                                  d.frame_times, d.frames, strict=True):
            i = max(int(np.searchsorted(times, target + 1e-6, side="right")) - 1, 0)  # on screen
            assert t == times[i]
            np.testing.assert_array_equal(img, frames[i])
        seg = decode_clip(path, fps=4, start_s=3.0, end_s=5.0)
        assert np.all((seg.frame_times >= 3.0) & (seg.frame_times < 5.0)) and len(seg.audio) == 32000
