"""mtavg.media: typed errors, stream facts, segment decoding, clip_segment, the decoded-array cache."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import threading
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from conftest import write_tiny_clip
from mtavg.media import (
    EmptyMedia,
    MediaError,
    MissingMedia,
    NoAudioStream,
    NoVideoStream,
    OddSizeMedia,
    TruncatedMedia,
    UnreadableMedia,
    cache,
    decode,
    probe,
)
from mtavg.media.prepare import audio_wav, clip_segment, decode_clip, frame_times_for, video_without_audio


def make_clip(path: Path, seconds: float, *, fps: int = 24, size: tuple[int, int] = (96, 64), gop: int = 12,
              bframes: int = 3, audio: bool = True, fmt: str | None = None) -> Path:
    """H.264 with B-frames (non-reference: no pyramid) and short GOPs, every frame distinct; AAC tone."""
    w, h = size
    with av.open(str(path), "w", format=fmt) as c:
        v = c.add_stream("libx264", rate=fps)
        v.width, v.height, v.pix_fmt = w, h, "yuv420p"
        v.options = {"g": str(gop), "bf": str(bframes), "x264-params": "b-pyramid=none:scenecut=0:b-adapt=0"}
        a = c.add_stream("aac", rate=16000) if audio else None
        yy, xx = np.mgrid[0:h, 0:w]
        for i in range(round(seconds * fps)):
            img = np.stack([(xx * 2 + i * 5) % 256, (yy * 3 + i * 11) % 256, np.full_like(xx, (i * 37) % 256)], -1)
            for p in v.encode(av.VideoFrame.from_ndarray(img.astype(np.uint8), format="rgb24")):
                c.mux(p)
        for p in v.encode():
            c.mux(p)
        if a is not None:
            t = np.arange(round(seconds * 16000)) / 16000
            pcm = (0.3 * np.sin(2 * np.pi * 300 * t) * (0.5 + 0.5 * np.sin(2 * np.pi * 0.7 * t))).astype(np.float32)
            for s in range(0, len(pcm), 1024):
                fr = av.AudioFrame.from_ndarray(pcm[None, s:s + 1024], format="fltp", layout="mono")
                fr.sample_rate, fr.pts, fr.time_base = 16000, s, Fraction(1, 16000)
                for p in a.encode(fr):
                    c.mux(p)
            for p in a.encode():
                c.mux(p)
    return path


def full_decode(path: Path) -> tuple[np.ndarray, list[np.ndarray]]:
    with av.open(str(path)) as c:
        frames = list(c.decode(video=0))
        return np.array([float(f.time) for f in frames]), [f.to_ndarray(format="rgb24") for f in frames]


def on_screen(times: np.ndarray, target: float) -> int:
    """Index of the last frame starting at or before ``target`` (the first frame for earlier targets)."""
    return max(int(np.searchsorted(times, target + 1e-6, side="right")) - 1, 0)


@pytest.fixture(scope="module")
def bclip(tmp_path_factory) -> Path:
    """4 s at 24 fps, 96x64, keyframe every 12 frames, 3 non-reference B-frames between references."""
    return make_clip(tmp_path_factory.mktemp("layer") / "b.mp4", 4.0)


# --- typed errors --------------------------------------------------------------------------------

def _faststart(src: Path, dst: Path) -> Path:
    with av.open(str(src)) as i, av.open(str(dst), "w", options={"movflags": "faststart"}) as o:
        out = {s.index: o.add_stream_from_template(s) for s in i.streams}
        for p in i.demux():
            if p.dts is not None:
                p.stream = out[p.stream.index]
                o.mux(p)
    return dst


def _calls(cache_dir: Path):
    return {"probe": probe, "decode_clip": decode_clip,
            "decode_audio": lambda p: decode_clip(p, with_video=False),
            "audio_wav": lambda p: audio_wav(p, cache_dir=cache_dir),
            "video_without_audio": lambda p: video_without_audio(p, cache_dir=cache_dir)}


def test_each_broken_file_raises_its_typed_error(tmp_path, bclip):
    raw, fast = bclip.read_bytes(), _faststart(bclip, tmp_path / "fast.mp4").read_bytes()
    cases = {"missing.mp4": (None, MissingMedia), "empty.mp4": (b"", EmptyMedia),
             "garbage.mp4": (os.urandom(5000), UnreadableMedia), "text.mp4": (b"\x00not an mp4", UnreadableMedia),
             "half.mp4": (raw[: len(raw) // 2], TruncatedMedia),  # moov at the end: the index is gone
             "fasthalf.mp4": (fast[: len(fast) // 2], TruncatedMedia),  # index intact, media data cut
             "fastmost.mp4": (fast[: len(fast) * 9 // 10], TruncatedMedia)}
    cache_dir = tmp_path / "cache"
    for name, (data, kind) in cases.items():
        path = tmp_path / name
        if data is not None:
            path.write_bytes(data)
        for call_name, call in _calls(cache_dir).items():
            with pytest.raises(kind, match=name) as info:
                call(path)
            err = info.value
            assert isinstance(err, MediaError) and err.code == kind.code, (name, call_name)
            assert err.path == str(path) and f"[MediaError:{kind.code}]" in str(err)
    assert not cache_dir.exists() or not list(cache_dir.iterdir())  # nothing half-written left behind


def test_error_codes_are_stable_and_pickle(tmp_path):
    codes = {c.code for c in (MissingMedia, EmptyMedia, UnreadableMedia, TruncatedMedia, NoAudioStream,
                              OddSizeMedia, NoVideoStream)}
    assert codes == {"missing", "empty", "unreadable", "truncated", "no_audio", "odd_size", "no_video"}
    err = pickle.loads(pickle.dumps(TruncatedMedia.at(tmp_path / "x.mp4", "truncated (boom)")))
    assert type(err) is TruncatedMedia and err.path == str(tmp_path / "x.mp4") and "boom" in str(err)
    assert str(MediaError("plain message")) == "plain message"  # the base class reads as before


def test_missing_streams(tmp_path, bclip):
    mute = make_clip(tmp_path / "mute.mp4", 1.0, audio=False)
    with pytest.raises(NoAudioStream, match="no audio stream"):
        audio_wav(mute, cache_dir=tmp_path / "c")
    assert decode_clip(mute, n_frames=2).audio is None  # decode_clip only reports what is there
    only_audio = tmp_path / "audio.m4a"
    with av.open(str(bclip)) as i, av.open(str(only_audio), "w", format="mp4") as o:
        out = o.add_stream_from_template(i.streams.audio[0])
        for p in i.demux(i.streams.audio[0]):
            if p.dts is not None:
                p.stream = out
                o.mux(p)
    info = probe(only_audio)
    assert not info.has_video and info.has_audio and info.audio_codec == "aac"
    with pytest.raises(NoVideoStream, match="audio.m4a"):
        decode_clip(only_audio)
    assert decode_clip(only_audio, with_video=False).audio.size > 16000


# --- stream facts --------------------------------------------------------------------------------

def test_stream_facts_cfr(tmp_path):
    clip = write_tiny_clip(tmp_path / "cfr.mp4", 2.0)
    info = probe(clip)
    assert (info.has_video, info.has_audio, info.width, info.height) == (True, True, 64, 48)
    assert info.fps == pytest.approx(8.0) and info.duration_s == pytest.approx(2.0, abs=0.1)
    assert info.n_frames == 16 and info.frames_decoded == 1 and not info.vfr and not info.odd_size
    assert (info.audio_rate, info.audio_channels) == (16000, 2)  # PyAV's aac stream defaults to stereo
    assert (info.video_codec, info.audio_codec) == ("h264", "aac")
    assert info.rotation in (0, None) and info.size_bytes == clip.stat().st_size


def _vfr_clip(path: Path, fmt: str | None = None) -> Path:
    pts = [0, 100, 150, 600, 900, 1400, 1450, 1500]
    with av.open(str(path), "w", format=fmt) as c:
        v = c.add_stream("libx264", rate=10)
        v.width, v.height, v.pix_fmt = 32, 32, "yuv420p"
        v.time_base = v.codec_context.time_base = Fraction(1, 1000)
        for i, p in enumerate(pts):
            f = av.VideoFrame.from_ndarray(np.full((32, 32, 3), 30 * i, np.uint8), format="rgb24")
            f.pts, f.time_base = p, Fraction(1, 1000)
            for pkt in v.encode(f):
                c.mux(pkt)
        for pkt in v.encode():
            c.mux(pkt)
    return path


def test_stream_facts_vfr_from_index_and_from_demux(tmp_path, bclip):
    assert probe(_vfr_clip(tmp_path / "vfr.mp4")).vfr  # mp4: timestamps from the index
    assert probe(_vfr_clip(tmp_path / "vfr.mkv", "matroska")).vfr  # mkv: index is keyframes only -> demux
    assert not probe(bclip).vfr
    cfr_mkv = make_clip(tmp_path / "cfr.mkv", 2.0, fmt="matroska")
    info = probe(cfr_mkv)
    assert not info.vfr and info.n_frames is None and info.duration_s == pytest.approx(2.0, abs=0.1)


def test_probe_sees_a_rewritten_file(tmp_path):
    path = write_tiny_clip(tmp_path / "x.mp4", 1.0)
    assert probe(path).duration_s == pytest.approx(1.0, abs=0.1)
    write_tiny_clip(tmp_path / "y.mp4", 2.0).replace(path)
    assert probe(path).duration_s == pytest.approx(2.0, abs=0.1)  # memo keyed by size + mtime


# --- decoding: frame skipping proves nothing changes ---------------------------------------------

@pytest.mark.parametrize("kw", [dict(n_frames=5), dict(n_frames=16), dict(fps=3), dict(fps=24, max_frames=200)])
def test_sampled_frames_equal_a_full_decode(bclip, kw, monkeypatch):
    skipped = []
    real = decode._Picker.may_skip
    monkeypatch.setattr(decode._Picker, "may_skip", lambda self, pts: skipped.append(real(self, pts)) or skipped[-1])
    times, frames = full_decode(bclip)
    d = decode_clip(bclip, **kw)
    targets = frame_times_for(d.duration_s, fps=kw.get("fps"), n_frames=kw.get("n_frames"),
                              max_frames=kw.get("max_frames", 64))
    assert len(d.frames) == len(targets)
    for target, t, img in zip(targets, d.frame_times, d.frames, strict=True):
        i = on_screen(times, target)
        assert t == times[i]
        np.testing.assert_array_equal(img, frames[i])
    if kw.get("n_frames") == 5 or kw.get("fps") == 3:
        assert any(skipped)  # sparse targets: some B-frames were never decoded


# --- segments ------------------------------------------------------------------------------------

@pytest.mark.parametrize("start,end", [(1.3, 2.6), (0.0, 1.0), (2.9, 4.0), (1.0, 9.0)])
def test_segment_decode(bclip, start, end):
    times, frames = full_decode(bclip)
    whole = decode_clip(bclip, fps=24, max_frames=1000)
    d = decode_clip(bclip, fps=24, max_frames=1000, start_s=start, end_s=end)
    stop = min(end, 4.0)
    first_inside = int(np.searchsorted(times, start - 1e-6))
    targets = start + frame_times_for(stop - start, fps=24, n_frames=None, max_frames=1000)
    assert len(d.frames) == len(targets)
    # absolute clip times of frames in [start, end) only: the on-screen frame, or the segment's first one
    for target, t, img in zip(targets, d.frame_times, d.frames, strict=True):
        i = max(on_screen(times, target), first_inside)
        assert t == times[i] and start - 1e-6 <= t < stop
        np.testing.assert_array_equal(img, frames[i])
    assert (d.start_s, d.end_s, d.duration_s) == (start, stop, whole.duration_s)
    assert len(d.audio) == round((stop - start) * 16000)  # sample 0 = start_s
    a, b = round(start * 16000) + 800, round(stop * 16000) - 800  # away from the AAC pre-roll after a seek
    seg = d.audio[a - round(start * 16000): b - round(start * 16000)]
    assert np.corrcoef(seg, whole.audio[a:b])[0, 1] > 0.99


def test_segment_sparse_and_errors(bclip):
    d = decode_clip(bclip, n_frames=4, start_s=2.0, end_s=3.0)
    assert len(d.frames) == 4 and np.all((d.frame_times >= 2.0) & (d.frame_times < 3.0))
    tail = decode_clip(bclip, with_video=False, start_s=3.5).audio  # no end: to the end of the audio
    assert tail.size == len(decode_clip(bclip, with_video=False).audio) - 3.5 * 16000
    with pytest.raises(ValueError):
        decode_clip(bclip, start_s=2.0, end_s=1.0)
    with pytest.raises(ValueError):
        decode_clip(bclip, start_s=10.0)


def test_clip_segment(bclip, tmp_path):
    out = clip_segment(bclip, 1.25, 2.75, cache_dir=tmp_path / "c")
    assert out.parent == tmp_path / "c" and out.suffix == ".mp4"
    with av.open(str(out)) as c:
        assert len(c.streams.video) == len(c.streams.audio) == 1
        assert float(c.duration) / 1e6 == pytest.approx(1.5, abs=0.1)
        first = next(c.decode(video=0)).to_ndarray(format="rgb24")
    times, frames = full_decode(bclip)
    assert np.abs(first.astype(int) - frames[on_screen(times, 1.25)]).mean() < 6  # re-encoded, close
    stamp = out.stat().st_mtime_ns
    assert clip_segment(bclip, 1.25, 2.75, cache_dir=tmp_path / "c") == out and out.stat().st_mtime_ns == stamp
    seg = decode_clip(out, with_video=False)
    assert len(seg.audio) / 16000 == pytest.approx(1.5, abs=0.1)


# --- the decoded-array cache ---------------------------------------------------------------------

def _same(a, b) -> None:
    np.testing.assert_array_equal(a.frames, b.frames)
    np.testing.assert_array_equal(a.frame_times, b.frame_times)
    np.testing.assert_array_equal(a.audio, b.audio)
    assert (a.sample_rate, a.duration_s, a.source_fps, a.start_s, a.end_s) == \
        (b.sample_rate, b.duration_s, b.source_fps, b.start_s, b.end_s)


def test_cache_hit_is_identical_fast_and_does_not_decode(bclip, tmp_path, monkeypatch):
    c = tmp_path / "c"
    t = time.perf_counter()
    fresh = decode_clip(bclip, fps=24, max_frames=1000, cache=True, cache_dir=c)
    decode_s = time.perf_counter() - t
    _same(fresh, decode_clip(bclip, fps=24, max_frames=1000))
    monkeypatch.setattr(av, "open", lambda *a, **k: pytest.fail("decoded again"))
    t = time.perf_counter()
    hit = decode_clip(bclip, fps=24, max_frames=1000, cache=True, cache_dir=c)
    hit_s = time.perf_counter() - t
    _same(fresh, hit)
    assert hit_s * 5 < decode_s, (hit_s, decode_s)
    hit.frames[:] = 0  # copy-on-write: the caller may scribble, the cache stays intact
    _same(fresh, decode_clip(bclip, fps=24, max_frames=1000, cache=True, cache_dir=c))
    monkeypatch.undo()
    other = decode_clip(bclip, n_frames=3, cache=True, cache_dir=c)  # other parameters: another entry
    assert len(other.frames) == 3 and len(list(c.iterdir())) == 2


def test_cache_without_video_and_damaged_entry(bclip, tmp_path):
    c = tmp_path / "c"
    a = decode_clip(bclip, with_video=False, cache=True, cache_dir=c)
    assert a.frames is None and decode_clip(bclip, with_video=False, cache=True, cache_dir=c).frames is None
    (entry,) = c.iterdir()
    (entry / "audio.npy").write_bytes(b"junk")
    np.testing.assert_array_equal(decode_clip(bclip, with_video=False, cache=True, cache_dir=c).audio, a.audio)


def test_cache_under_concurrent_threads(bclip, tmp_path, monkeypatch):
    c = tmp_path / "c"
    calls = []
    real = decode._decode_file
    monkeypatch.setattr(decode, "_decode_file", lambda *a, **k: calls.append(1) or real(*a, **k))
    results, errors = [], []

    def work() -> None:
        try:
            results.append(decode_clip(bclip, n_frames=6, cache=True, cache_dir=c))
        except BaseException as exc:  # noqa: BLE001 - surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(results) == 8 and len(calls) == 1
    for r in results[1:]:
        _same(results[0], r)
    assert [p.name for p in c.iterdir()] == [next(c.iterdir()).name]  # one entry, no temp leftovers


def test_cache_under_concurrent_processes(bclip, tmp_path):
    code = ("import sys, numpy as np; from mtavg.media.prepare import decode_clip; "
            "d = decode_clip(sys.argv[1], n_frames=5, cache=True, cache_dir=sys.argv[2]); "
            "print(int(np.asarray(d.frames, np.int64).sum()), len(d.audio))")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    procs = [subprocess.Popen([sys.executable, "-c", code, str(bclip), str(tmp_path / "c")], env=env,
                              stdout=subprocess.PIPE, text=True) for _ in range(3)]
    outs = {p.communicate()[0] for p in procs}
    assert all(p.returncode == 0 for p in procs) and len(outs) == 1
    assert len(list((tmp_path / "c").iterdir())) == 1  # one entry, no temp dirs left by the losers


def test_cache_entry_written_by_another_process_wins(tmp_path):
    target = tmp_path / "entry"
    cache.store_arrays(target, {"x": np.arange(3)}, {"who": "first"})
    cache.store_arrays(target, {"x": np.arange(3)}, {"who": "second"})  # lost the rename race: no error
    arrays, meta = cache.load_arrays(target)
    assert meta["who"] == "first" and list(arrays["x"]) == [0, 1, 2]
    assert [p.name for p in tmp_path.iterdir()] == ["entry"]
