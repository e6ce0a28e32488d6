"""Units of the perturbation engine on signals and tiny clips built in code (no real clips needed)."""

from __future__ import annotations

import hashlib
import json
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from scipy.signal import resample_poly, welch

from conftest import write_tiny_clip
from mtavg.media import probe
from mtavg.metrics.audio_pitch import yin
from mtavg.perturb import CATALOGUE, LEVELS, AudioTrack, NotApplicable, perturb_clip, read_audio
from mtavg.perturb import audio as A
from mtavg.perturb import io as pio
from mtavg.perturb import video as V
from mtavg.perturb.catalogue import SourceFacts
from mtavg.perturb.measure import verify_clip

RATE = 16000


def _tone(freq: float, seconds: float = 2.0, rate: int = RATE, amp: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _median_f0(x: np.ndarray, rate: int = RATE) -> float:
    f0 = yin(np.asarray(x, np.float64), rate).f0
    voiced = f0[np.isfinite(f0)]
    assert len(voiced) >= 50, "too few voiced frames to read a pitch"
    return float(np.median(voiced))


def _power(x: np.ndarray) -> float:
    return float(np.mean(np.asarray(x, np.float64) ** 2))


def _snr_db(clean: np.ndarray, noisy: np.ndarray) -> float:
    return 10 * np.log10(_power(clean) / _power(np.asarray(noisy, np.float64) - clean))


# ---------------------------------------------------------------- audio functions
def test_time_shift_is_an_exact_sample_shift_and_keeps_the_length():
    rng = np.random.default_rng(0)
    x = rng.uniform(-0.5, 0.5, (2, 1000)).astype(np.float32)
    track = AudioTrack(x, 1000)
    late = A.time_shift(track, shift_ms=10).samples  # 10 samples at 1 kHz
    assert late.shape == x.shape
    np.testing.assert_array_equal(late[:, :10], 0)
    np.testing.assert_array_equal(late[:, 10:], x[:, :990])
    early = A.time_shift(track, shift_ms=-25).samples  # advance: head dropped, end padded
    assert early.shape == x.shape
    np.testing.assert_array_equal(early[:, :975], x[:, 25:])
    np.testing.assert_array_equal(early[:, 975:], 0)
    np.testing.assert_array_equal(A.time_shift(track, shift_ms=0).samples, x)


@pytest.mark.parametrize("shift_ms", [1000, -1000, 1500])
def test_time_shift_longer_than_the_clip_raises(shift_ms):
    track = AudioTrack(np.ones((1, 1000), np.float32), 1000)  # 1 s
    with pytest.raises(ValueError, match="longer than the clip"):
        A.time_shift(track, shift_ms=shift_ms)


@pytest.mark.parametrize("factor", [0.5, 0.8, 1.25, 2.0])
@pytest.mark.parametrize("keep_pitch", [True, False])
def test_speed_change_lengths(factor, keep_pitch):
    track = AudioTrack(np.stack([_tone(220), _tone(330)]), RATE)
    out = A.speed_change(track, factor=factor, keep_pitch=keep_pitch)
    assert out.channels == 2 and out.rate == RATE
    assert abs(out.n - track.n / factor) <= 2


@pytest.mark.parametrize("factor", [0.2, 4.5, 0.0, -1.0])
def test_speed_change_factor_out_of_range_raises(factor):
    with pytest.raises(ValueError, match="outside"):
        A.speed_change(AudioTrack(_tone(220), RATE), factor=factor, keep_pitch=True)


def test_speed_change_pitch_follows_keep_pitch():
    track = AudioTrack(_tone(220), RATE)
    kept = A.speed_change(track, factor=1.25, keep_pitch=True).mono()
    tape = A.speed_change(track, factor=1.25, keep_pitch=False).mono()
    assert abs(12 * np.log2(_median_f0(kept) / 220)) < 0.1
    assert abs(12 * np.log2(_median_f0(tape) / 220) - 12 * np.log2(1.25)) < 0.1


@pytest.mark.parametrize("semitones", [3, -2, 7, -5.5])
def test_pitch_shift_moves_a_tone_and_keeps_the_length(semitones):
    track = AudioTrack(_tone(220), RATE)
    out = A.pitch_shift(track, semitones=semitones)
    assert out.n == track.n and out.rate == RATE
    f = _median_f0(out.mono())
    assert abs(12 * np.log2(f / (220 * 2 ** (semitones / 12))) ) < 0.1, f


def test_pitch_shift_beyond_two_octaves_raises():
    with pytest.raises(ValueError, match="two octaves"):
        A.pitch_shift(AudioTrack(_tone(220), RATE), semitones=25)


@pytest.mark.parametrize("snr_db", [-5.0, 0.0, 12.5, 30.0])
@pytest.mark.parametrize("color", ["white", "pink", "brown"])
def test_add_noise_has_the_exact_snr_before_encoding(snr_db, color):
    x = np.stack([_tone(220), 0.5 * _tone(440)])
    out = A.add_noise(AudioTrack(x, RATE), snr_db=snr_db, color=color, seed=3)
    assert out.samples.shape == x.shape
    assert abs(_snr_db(x, out.samples) - snr_db) < 0.01


def test_add_noise_is_deterministic_per_seed():
    track = AudioTrack(_tone(220), RATE)
    a = A.add_noise(track, snr_db=10, seed=1).samples
    b = A.add_noise(track, snr_db=10, seed=1).samples
    c = A.add_noise(track, snr_db=10, seed=2).samples
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_add_noise_refuses_digital_silence_and_unknown_colours():
    with pytest.raises(ValueError, match="silence"):
        A.add_noise(AudioTrack(np.zeros((2, 1000), np.float32), RATE), snr_db=10)
    with pytest.raises(ValueError, match="colour"):
        A.add_noise(AudioTrack(_tone(220), RATE), snr_db=10, color="violet")


@pytest.mark.parametrize("kwargs, match", [
    ({"kind": "lowpass", "high_hz": 8000}, "Nyquist"),
    ({"kind": "lowpass", "high_hz": 9000}, "Nyquist"),
    ({"kind": "highpass", "low_hz": 8000}, "Nyquist"),
    ({"kind": "bandpass", "low_hz": 300, "high_hz": 8000}, "Nyquist"),
    ({"kind": "bandpass", "low_hz": 1000, "high_hz": 1000}, "low_hz < high_hz"),
    ({"kind": "bandpass", "low_hz": 2000, "high_hz": 1000}, "low_hz < high_hz"),
    ({"kind": "bandpass", "low_hz": 300}, "low_hz < high_hz"),
    ({"kind": "lowpass"}, "high_hz"),
    ({"kind": "highpass"}, "low_hz"),
    ({"kind": "notch", "low_hz": 300, "high_hz": 500}, "kind"),
])
def test_band_filter_rejects_bad_edges(kwargs, match):
    with pytest.raises(ValueError, match=match):
        A.band_filter(AudioTrack(_tone(220), RATE), **kwargs)


def _band_db(x: np.ndarray, lo: float, hi: float, rate: int = RATE) -> float:
    f, p = welch(np.asarray(x, np.float64), fs=rate, nperseg=4096)
    return float(10 * np.log10(p[(f >= lo) & (f < hi)].mean() + 1e-30))


@pytest.mark.parametrize("kind, params, stop, keep", [
    ("lowpass", {"high_hz": 500}, (1000, 2000), (50, 250)),
    ("highpass", {"low_hz": 2000}, (250, 1000), (4000, 7000)),
    ("bandpass", {"low_hz": 500, "high_hz": 1500}, (3000, 6000), (700, 1100)),
])
def test_band_filter_attenuates_the_stop_band_and_keeps_the_pass_band(kind, params, stop, keep):
    noise = np.random.default_rng(0).standard_normal((1, 4 * RATE)).astype(np.float32) * 0.1
    out = A.band_filter(AudioTrack(noise, RATE), kind=kind, **params).mono()
    assert _band_db(noise[0], *stop) - _band_db(out, *stop) >= 40
    assert abs(_band_db(noise[0], *keep) - _band_db(out, *keep)) < 1.0


def test_band_filter_is_zero_phase():
    x = _tone(200, amp=0.5)
    out = A.band_filter(AudioTrack(x, RATE), kind="lowpass", high_hz=2000).mono()
    mid = slice(RATE // 2, -RATE // 2)  # away from the edge transients
    assert np.max(np.abs(out[mid] - x[mid])) < 1e-3


def test_dropout_silences_the_segment_with_fades():
    rate = 8000
    fade = int(A.FADE_S * rate)  # 40 samples
    x = np.ones((2, 2 * rate), np.float32)
    out = A.dropout(AudioTrack(x, rate), segments=[[0.5, 1.0]]).samples
    a, b = int(0.5 * rate), int(1.0 * rate)
    np.testing.assert_array_equal(out[:, a:b], 0)
    np.testing.assert_array_equal(out[:, : a - fade], 1)
    np.testing.assert_array_equal(out[:, b + fade:], 1)
    for edge in (out[0, a - fade: a], out[0, b: b + fade][::-1]):  # falls into the gap, rises out of it
        assert np.all(np.diff(edge) <= 0) and edge[0] == 1 and edge[-1] == 0
        assert 0 < edge[fade // 2] < 1


def test_dropout_rejects_an_empty_segment():
    with pytest.raises(ValueError, match="empty or outside"):
        A.dropout(AudioTrack(_tone(220), RATE), segments=[[1.0, 1.0]])
    with pytest.raises(ValueError, match="empty or outside"):
        A.dropout(AudioTrack(_tone(220), RATE), segments=[[5.0, 6.0]])


def test_mute_keeps_shape_and_silences():
    track = AudioTrack(np.stack([_tone(220), _tone(330)]), RATE)
    out = A.mute(track)
    assert out.samples.shape == track.samples.shape and not out.samples.any()


def test_replace_audio_resamples_the_donor_to_the_clip_rate():
    track = AudioTrack(np.stack([_tone(220), _tone(220)]), RATE)
    donor = AudioTrack(np.stack([_tone(500, 3.0, 8000), _tone(500, 3.0, 8000)]), 8000)
    out = A.replace_audio(track, donor=donor, offset_s=0.5)
    assert out.rate == RATE and out.samples.shape == track.samples.shape
    assert abs(12 * np.log2(_median_f0(out.mono()) / 500)) < 0.05  # same tone, not 2x too high


def test_replace_audio_loops_a_short_donor():
    donor_x = np.linspace(-0.5, 0.5, 300, dtype=np.float32)[None]
    track = AudioTrack(np.zeros((1, 1000), np.float32), 1000)
    out = A.replace_audio(track, donor=AudioTrack(donor_x, 1000), offset_s=0.1)
    loop = donor_x[0, 100:]  # from the offset, 200 samples, repeated
    np.testing.assert_array_equal(out.samples[0], np.tile(loop, 5))


def test_replace_audio_matches_the_clip_channel_count():
    mono = AudioTrack(np.random.default_rng(0).uniform(-0.5, 0.5, (1, 1000)).astype(np.float32), 1000)
    stereo = AudioTrack(np.random.default_rng(1).uniform(-0.5, 0.5, (2, 1000)).astype(np.float32), 1000)
    up = A.replace_audio(AudioTrack(np.zeros((2, 800)), 1000), donor=mono)
    assert up.channels == 2 and up.n == 800
    np.testing.assert_array_equal(up.samples[0], mono.samples[0, :800])
    np.testing.assert_array_equal(up.samples[1], mono.samples[0, :800])
    down = A.replace_audio(AudioTrack(np.zeros((1, 800)), 1000), donor=stereo)
    assert down.channels == 1
    np.testing.assert_allclose(down.samples[0], stereo.samples[:, :800].mean(axis=0), atol=1e-7)


def test_replace_audio_offset_outside_the_donor_raises():
    track = AudioTrack(_tone(220), RATE)
    with pytest.raises(ValueError, match="outside the donor"):
        A.replace_audio(track, donor=AudioTrack(_tone(330, 1.0), RATE), offset_s=1.5)
    with pytest.raises(ValueError, match="outside the donor"):
        A.replace_audio(track, donor=AudioTrack(_tone(330, 1.0), RATE), offset_s=-0.1)


def test_coloured_noise_has_unit_power_and_pink_is_darker_than_white():
    rng = np.random.default_rng(0)
    shares = {}
    for color in ("white", "pink", "brown"):
        n = A.coloured_noise((2, 64000), color, rng, RATE)
        assert n.shape == (2, 64000)
        assert abs(np.mean(n ** 2) - 1) < 1e-6 and abs(np.mean(n)) < 1e-6
        f, p = welch(n[0], fs=RATE, nperseg=4096)
        shares[color] = p[f < 500].sum() / p.sum()
    assert abs(shares["white"] - 500 / 8000) < 0.01  # flat: its share below 500 Hz is 500 / 8000
    assert shares["pink"] > 2 * shares["white"] and shares["brown"] > shares["pink"]
    with pytest.raises(ValueError):
        A.coloured_noise((1, 100), "violet", rng, RATE)


# ---------------------------------------------------------------- video ops
def _frames(n: int = 20, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (12, 16, 3), dtype=np.uint8) for _ in range(n)]


def _run(op, frames, fps: float = 10.0) -> list[np.ndarray]:
    return [op(i, i / fps, f) for i, f in enumerate(frames)]


def test_freeze_holds_the_frame_at_start_for_the_window_only():
    frames = _frames()
    op = V.Freeze(start_s=0.5, duration_s=0.5)  # frames 5..9 at 10 fps
    out = _run(op, frames)
    for i, (o, f) in enumerate(zip(out, frames, strict=True)):
        np.testing.assert_array_equal(o, frames[5] if 5 <= i < 10 else f)
    assert op.facts() == {"frames_held": 4}


@pytest.mark.parametrize("kwargs", [{"start_s": -1, "duration_s": 1}, {"start_s": 0, "duration_s": 0}])
def test_freeze_rejects_bad_windows(kwargs):
    with pytest.raises(ValueError):
        V.Freeze(**kwargs)


@pytest.mark.parametrize("period, hold", [(2, 1), (3, 2), (4, 1), (6, 2)])
def test_stutter_pattern_and_facts(period, hold):
    frames = _frames(24)
    op = V.Stutter(period=period, hold=hold)
    out = _run(op, frames)
    dropped = 0
    for i, o in enumerate(out):
        phase = i % period
        if phase >= period - hold:  # repeats the last shown frame: the one at period - hold - 1
            np.testing.assert_array_equal(o, frames[i - phase + period - hold - 1])
            dropped += 1
        else:
            np.testing.assert_array_equal(o, frames[i])
    assert dropped == 24 * hold // period
    assert op.facts() == {"frames_dropped": dropped}


@pytest.mark.parametrize("period, hold", [(1, 1), (3, 0), (3, 3)])
def test_stutter_rejects_bad_patterns(period, hold):
    with pytest.raises(ValueError):
        V.Stutter(period=period, hold=hold)


@pytest.mark.parametrize("gains", [[1.2, 1.0, 0.8], [0.5, 1.5, 1.0], [1.37, 0.91, 2.0]])
def test_colour_cast_equals_float_multiply_and_clip(gains):
    frame = np.random.default_rng(0).integers(0, 256, (40, 50, 3), dtype=np.uint8)
    out = V.ColourCast(gains=gains)(0, 0.0, frame)
    want = np.clip(np.round(frame.astype(np.float64) * np.array(gains)), 0, 255)
    diff = np.abs(out.astype(np.float64) - want)
    assert out.dtype == np.uint8 and diff.max() <= 1 and diff.mean() < 1e-3  # half-way ties may differ


@pytest.mark.parametrize("gains", [[1.0, 1.0], [1.0, 0.0, 1.0], [1.0, -0.5, 1.0]])
def test_colour_cast_rejects_bad_gains(gains):
    with pytest.raises(ValueError):
        V.ColourCast(gains=gains)


def test_blur_reduces_variance_and_cv2_and_scipy_paths_agree(monkeypatch):
    pytest.importorskip("cv2")
    frame = np.random.default_rng(0).integers(0, 256, (60, 80, 3), dtype=np.uint8)
    fast = V.Blur(sigma_px=2.0)
    assert fast._cv2 is not None
    a = fast(0, 0.0, frame)
    monkeypatch.setitem(sys.modules, "cv2", None)  # import cv2 now raises ImportError
    slow = V.Blur(sigma_px=2.0)
    assert slow._cv2 is None
    b = slow(0, 0.0, frame)
    assert a.shape == b.shape == frame.shape and a.dtype == b.dtype == np.uint8
    assert a.astype(float).var() < 0.2 * frame.astype(float).var()
    assert b.astype(float).var() < 0.2 * frame.astype(float).var()
    diff = np.abs(a.astype(int) - b.astype(int))
    assert diff.mean() < 1.0 and diff.max() <= 4
    with pytest.raises(ValueError):
        V.Blur(sigma_px=0)


# ---------------------------------------------------------------- tiny clips
def _write_clip(path: Path, audio: np.ndarray | None, *, rate: int = RATE, seconds: float = 2.0, fps: int = 8,
                seed: int = 0) -> Path:
    """64x48 H.264 at ``fps`` with mid-tone moving content, plus AAC of ``audio`` (channels, n) if given."""
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:48, 0:64]
    with av.open(str(path), "w") as c:
        v = c.add_stream("libx264", rate=fps)
        v.width, v.height, v.pix_fmt = 64, 48, "yuv420p"
        a = None
        if audio is not None:
            a = c.add_stream("aac", rate=rate, layout="mono" if audio.shape[0] == 1 else "stereo")
        for i in range(int(seconds * fps)):
            img = np.stack([60 + (xx * 2 + i * 3) % 100, 70 + (yy * 2) % 90, 50 + (xx + yy + i) % 110], -1)
            img = (img + rng.integers(0, 8, img.shape)).astype(np.uint8)
            for p in v.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(p)
        for p in v.encode():
            c.mux(p)
        if a is not None:
            pcm = np.ascontiguousarray(audio, np.float32)
            layout = "mono" if pcm.shape[0] == 1 else "stereo"
            for s in range(0, pcm.shape[1], 1024):
                frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(pcm[:, s:s + 1024]), format="fltp",
                                                   layout=layout)
                frame.sample_rate, frame.pts, frame.time_base = rate, s, Fraction(1, rate)
                for p in a.encode(frame):
                    c.mux(p)
            for p in a.encode():
                c.mux(p)
    return path


def _speechlike(seconds: float, channels: int, seed: int = 0, rate: int = RATE) -> np.ndarray:
    """Aperiodic sound an AAC encoder codes well: random tone bursts over band-limited noise."""
    rng = np.random.default_rng(seed)
    n = int(seconds * rate)
    t = np.arange(n) / rate
    x = np.zeros(n)
    for _ in range(int(seconds * 6)):
        start, length, f = rng.uniform(0, seconds), rng.uniform(0.05, 0.3), rng.uniform(150, 1500)
        env = np.exp(-0.5 * ((t - start - length / 2) / (length / 4)) ** 2)
        x += 0.2 * env * np.sin(2 * np.pi * (f * t + rng.uniform(20, 200) * t * t))
    noise = resample_poly(rng.standard_normal(n // 8), 8, 1)[:n]
    x = x + 0.03 * noise
    out = np.stack([x, 0.8 * x + 0.01 * rng.standard_normal(n)][:channels]).astype(np.float32)
    return out / (np.abs(out).max() * 2)


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    root = tmp_path_factory.mktemp("perturb-units")
    return {
        "stereo": _write_clip(root / "stereo.mp4", _speechlike(2.0, 2)),
        "mono": _write_clip(root / "mono.mp4", _speechlike(2.0, 1, seed=1), seed=1),
        "silent": _write_clip(root / "silent.mp4", None),
        "tiny": write_tiny_clip(root / "tiny.mp4", seconds=1.0),
    }


def test_read_audio_of_a_stereo_clip(clips):
    track = read_audio(clips["stereo"])
    assert track.channels == 2 and track.rate == RATE and abs(track.duration_s - 2.0) < 0.07


@pytest.mark.parametrize("perturbation, params", [
    ("time_shift", {"shift_ms": 120.0}),
    ("noise", {"snr_db": 10.0, "color": "pink", "seed": 4}),
    ("dropout", {"segments": [[0.5, 0.9]]}),
])
def test_perturb_clip_audio_sidecar(clips, tmp_path, perturbation, params):
    src = clips["stereo"]
    out = tmp_path / "neg.mp4"
    side = perturb_clip(src, out, perturbation, params, record={"clip_id": "neg-1"})
    assert out.is_file() and json.loads(out.with_suffix(".json").read_text()) == side
    assert side["perturbation"] == perturbation and side["params"] == params and side["clip_id"] == "neg-1"
    assert side["source_sha256"] == hashlib.sha256(src.read_bytes()).hexdigest()
    assert side["source_path"] == str(src) and side["path"] == "neg.mp4"
    assert side["encode"]["video"] == "copy" and side["encode"]["audio"]["codec"] == "aac"
    assert side["encode"]["audio"]["channels"] == 2 and side["effect"] == {}
    assert probe(out).has_audio and read_audio(out).channels == 2


@pytest.mark.parametrize("perturbation, params, effect", [
    ("freeze", {"start_s": 0.5, "duration_s": 0.75}, {"frames_held": 5}),  # frames 4..9 at 8 fps
    ("stutter", {"period": 4, "hold": 1}, {"frames_dropped": 4}),
    ("colour_cast", {"gains": [1.2, 1.0, 0.9]}, {}),
    ("blur", {"sigma_px": 1.5}, {}),
])
def test_perturb_clip_video_sidecar(clips, tmp_path, perturbation, params, effect):
    out = tmp_path / "neg.mp4"
    side = perturb_clip(clips["stereo"], out, perturbation, params)
    assert side["encode"]["video"] == "libx264" and side["encode"]["video_frames"] == 16
    assert side["effect"] == effect
    assert "frames_held" not in side["encode"] and "frames_dropped" not in side["encode"]
    assert abs(side["duration_s"] - probe(clips["stereo"]).duration_s) < 0.15
    assert read_audio(out).channels == 2  # the soundtrack goes along, re-encoded


def test_identity_positive_keeps_duration_and_audio(clips, tmp_path):
    src = clips["stereo"]
    out = tmp_path / "pos.mp4"
    side = perturb_clip(src, out, "none")
    assert side["perturbation"] == "none" and side["params"] == {} and side["encode"]["video"] == "copy"
    assert abs(probe(out).duration_s - probe(src).duration_s) < 0.07
    a, b = read_audio(src), read_audio(out)
    assert a.n == b.n and a.channels == b.channels
    assert _snr_db(a.samples, b.samples) > 25  # the AAC round trip only


def test_identity_on_a_clip_without_audio_writes_no_audio(clips, tmp_path):
    out = tmp_path / "pos.mp4"
    side = perturb_clip(clips["silent"], out, "none")
    assert not probe(out).has_audio and side["audio_duration_s"] is None and side["encode"]["audio"] is None


def test_audio_perturbation_of_a_clip_without_audio_raises_naming_it(clips, tmp_path):
    with pytest.raises(ValueError, match="silent.mp4"):
        perturb_clip(clips["silent"], tmp_path / "neg.mp4", "time_shift", {"shift_ms": 100})
    assert not list(tmp_path.iterdir())


def test_unknown_perturbation_raises_keyerror_listing_the_known(clips, tmp_path):
    with pytest.raises(KeyError, match="warp") as err:
        perturb_clip(clips["stereo"], tmp_path / "neg.mp4", "warp")
    assert all(name in str(err.value) for name in CATALOGUE)


def test_random_mismatch_reads_a_relative_donor_from_media_root(clips, tmp_path):
    src, donor = clips["stereo"], clips["mono"]
    side = perturb_clip(src, tmp_path / "neg.mp4", "random_mismatch",
                        {"donor": "mono", "donor_path": donor.name, "offset_s": 0.0}, media_root=donor.parent)
    assert side["encode"]["audio"]["channels"] == 2
    out, d = read_audio(tmp_path / "neg.mp4"), read_audio(donor)
    assert _snr_db(d.samples[0], out.samples[0]) > 20  # the donor's sound, not the source's


@pytest.mark.parametrize("target", ["_encode_audio", "_video_frame"])
def test_no_half_written_file_remains_when_writing_fails(clips, tmp_path, monkeypatch, target):
    original = getattr(pio, target)
    raised = []

    def broken(*args, **kwargs):
        if list(tmp_path.glob("*.tmp.mp4")):  # mid-way: the tmp file exists and holds packets
            raised.append(1)
            raise RuntimeError("disk on fire")
        return original(*args, **kwargs)

    monkeypatch.setattr(pio, target, broken)
    perturbation, params = ("noise", {"snr_db": 10}) if target == "_encode_audio" else ("blur", {"sigma_px": 1})
    out = tmp_path / "neg.mp4"
    with pytest.raises(RuntimeError, match="disk on fire"):
        perturb_clip(clips["stereo"], out, perturbation, params)
    assert raised
    assert not out.exists() and not out.with_suffix(".json").exists()
    assert not [p.name for p in tmp_path.iterdir()]


def test_write_clip_without_audio(clips, tmp_path):
    facts = pio.write_clip(clips["stereo"], tmp_path / "v.mp4", audio=None)
    assert facts["audio"] is None and facts["video"] == "copy" and facts["video_frames"] == 16
    assert not probe(tmp_path / "v.mp4").has_audio


# ---------------------------------------------------------------- catalogue samplers
def _facts(**kw) -> SourceFacts:
    base = dict(clip_id="c0", duration_s=10.0, height=720, has_audio=True, category="music", text=None,
                others=(("c0", "media/c0.mp4", "music", None, 10.0), ("c1", "media/c1.mp4", "speech", None, 12.0),
                        ("c2", "media/c2.mp4", "music", None, 8.0), ("c3", "media/c3.mp4", "nature", None, 20.0)))
    base.update(kw)
    return SourceFacts(**base)


def _in(x: float, lo: float, hi: float, eps: float = 1e-9) -> bool:
    return lo - eps <= x <= hi + eps


def _check_params(name: str, level: str, p: dict, src: SourceFacts) -> None:
    easy = level == "easy"
    if name == "time_shift":  # hard 100-250 ms, easy 400-1000 ms, either sign
        assert _in(abs(p["shift_ms"]), *((400, 1000) if easy else (100, 250)))
    elif name == "speed_change":  # hard 4-8 %, easy 25-50 % faster or slower
        lo, hi = (1.25, 1.5) if easy else (1.04, 1.08)
        f = p["factor"]
        assert _in(f, lo, hi) or _in(1 / f, lo, hi, 1e-3), f
        assert isinstance(p["keep_pitch"], bool)
    elif name == "pitch_shift":  # hard 1-2, easy 4-8 semitones
        assert _in(abs(p["semitones"]), *((4, 8) if easy else (1, 2)))
    elif name == "noise":  # hard 15-25 dB, easy -5..5 dB
        assert _in(p["snr_db"], *((-5, 5) if easy else (15, 25)))
        assert p["color"] in ("white", "pink", "brown") and isinstance(p["seed"], int)
    elif name == "filter":
        kind = p["kind"]
        assert kind in ("lowpass", "highpass", "bandpass")
        if easy:  # through a wall (low-pass below 800 Hz) or tinny (high-pass above 2 kHz)
            if kind == "lowpass":
                assert _in(p["high_hz"], 300, 800) and "low_hz" not in p
            elif kind == "highpass":
                assert _in(p["low_hz"], 2000, 4000) and "high_hz" not in p
            else:  # a narrow band around 1 kHz (not named in the docstring)
                assert _in(p["low_hz"], 300, 500) and _in(p["high_hz"], 1000, 1500)
        else:  # telephone-like band limiting, the 300 Hz - 3.4 kHz family
            if kind == "lowpass":
                assert _in(p["high_hz"], 2500, 4000)
            elif kind == "highpass":
                assert _in(p["low_hz"], 300, 600)
            else:
                assert _in(p["low_hz"], 200, 300) and _in(p["high_hz"], 3400, 4000)
    elif name == "dropout":  # hard one 0.3-0.8 s gap, easy 2-4 s
        [[a, b]] = p["segments"]
        assert _in(round(b - a, 2), *((2.0, 4.0) if easy else (0.3, 0.8)), 0.011)
        assert 0 < a < b <= src.duration_s
    elif name == "mute":
        assert p == {}
    elif name in ("random_mismatch", "semantic_mismatch"):
        others = {o[0]: o for o in src.others}
        assert p["donor"] != src.clip_id and p["donor"] in others
        donor = others[p["donor"]]
        assert p["donor_path"] == donor[1] and p["donor_category"] == donor[2]
        assert _in(p["offset_s"], 0, max(0.0, donor[4] - src.duration_s), 0.006)
        if name == "semantic_mismatch":
            assert p["donor_category"] != src.category
    elif name == "freeze":  # hard 0.3-0.7 s, easy 2-4 s of a still picture
        assert _in(p["duration_s"], *((2.0, 4.0) if easy else (0.3, 0.7)))
        assert p["start_s"] > 0 and p["start_s"] + p["duration_s"] <= src.duration_s
    elif name == "stutter":  # hard drops 1 frame in 8-12; easy halves or thirds the motion rate
        if easy:
            assert (p["period"], p["hold"]) in ((2, 1), (3, 2), (3, 1))
        else:
            assert 8 <= p["period"] <= 12 and p["hold"] == 1
    elif name == "colour_cast":  # hard 8-15 %, easy 30-50 % channel gain error
        lo, hi = (0.3, 0.5) if easy else (0.08, 0.15)
        g = p["gains"]
        assert len(g) == 3 and sorted(g)[1] == 1.0
        assert _in(max(g) - 1, lo, hi, 1e-3) and _in(1 - min(g), lo / 2, hi / 2, 1e-3)
    elif name == "blur":  # sigma as a share of the height: hard 0.15-0.3 %, easy 0.6-1.2 %
        lo, hi = (0.006, 0.012) if easy else (0.0015, 0.003)
        assert _in(p["sigma_px"] / src.height, lo, hi, 0.006 / src.height)
    else:
        pytest.fail(f"no documented range for {name}")


@pytest.mark.parametrize("name", list(CATALOGUE))
@pytest.mark.parametrize("level", LEVELS)
def test_samplers_draw_within_documented_ranges(name, level):
    spec = CATALOGUE[name]
    seen = set()
    for height in (720, 1080):
        src = _facts(height=height)
        for seed in range(150):
            p = spec.sample(np.random.default_rng(seed), level, src)
            _check_params(name, level, p, src)
            seen.add(json.dumps(p, sort_keys=True))
            json.dumps(p)  # a sidecar can hold it
    assert len(seen) > (1 if name != "mute" else 0)
    if name in ("time_shift", "pitch_shift"):
        key = "shift_ms" if name == "time_shift" else "semitones"
        signs = {np.sign(json.loads(s)[key]) for s in seen}
        assert signs == {-1.0, 1.0}


@pytest.mark.parametrize("name", list(CATALOGUE))
@pytest.mark.parametrize("level", LEVELS)
def test_samplers_are_deterministic_for_a_seeded_rng(name, level):
    spec = CATALOGUE[name]
    draws = [spec.sample(np.random.default_rng(42), level, _facts()) for _ in range(2)]
    assert draws[0] == draws[1]


@pytest.mark.parametrize("name", [n for n, s in CATALOGUE.items() if s.target == "audio"])
@pytest.mark.parametrize("level", LEVELS)
def test_audio_samplers_refuse_a_clip_without_audio(name, level):
    with pytest.raises(NotApplicable, match="c0"):
        CATALOGUE[name].sample(np.random.default_rng(0), level, _facts(has_audio=False))


@pytest.mark.parametrize("name", [n for n, s in CATALOGUE.items() if s.target == "video"])
def test_video_samplers_do_not_need_audio(name):
    p = CATALOGUE[name].sample(np.random.default_rng(0), "hard", _facts(has_audio=False))
    _check_params(name, "hard", p, _facts(has_audio=False))


def test_semantic_mismatch_needs_a_donor_of_another_category():
    same = (("c0", "a.mp4", "music", None, 10.0), ("c1", "b.mp4", "music", None, 10.0))
    with pytest.raises(NotApplicable, match="different category"):
        CATALOGUE["semantic_mismatch"].sample(np.random.default_rng(0), "hard", _facts(others=same))
    with pytest.raises(NotApplicable, match="no category or text"):
        CATALOGUE["semantic_mismatch"].sample(np.random.default_rng(0), "hard", _facts(category=None))
    # text labels stand in for categories
    texts = (("c0", "a.mp4", None, "a dog barks", 10.0), ("c1", "b.mp4", None, "a dog barks", 10.0),
             ("c2", "c.mp4", None, "rain", 10.0))
    p = CATALOGUE["semantic_mismatch"].sample(np.random.default_rng(0), "hard",
                                              _facts(category=None, text="a dog barks", others=texts))
    assert p["donor"] == "c2"
    # random mismatch takes any other clip, but there must be one
    p = CATALOGUE["random_mismatch"].sample(np.random.default_rng(0), "hard", _facts(others=same))
    assert p["donor"] == "c1"
    with pytest.raises(NotApplicable, match="no other clip"):
        CATALOGUE["random_mismatch"].sample(np.random.default_rng(0), "hard", _facts(others=same[:1]))


def test_time_shift_sampler_refuses_a_too_short_clip():
    with pytest.raises(NotApplicable, match="too short"):
        CATALOGUE["time_shift"].sample(np.random.default_rng(0), "hard", _facts(duration_s=0.15))
    p = CATALOGUE["time_shift"].sample(np.random.default_rng(0), "hard", _facts(duration_s=0.3))
    assert _in(abs(p["shift_ms"]), 100, 150)


# ---------------------------------------------------------------- verify_clip can fail
@pytest.fixture(scope="module")
def made(clips, tmp_path_factory):
    root = tmp_path_factory.mktemp("verify")
    src = clips["stereo"]
    out = {}
    for name, perturbation, params in [
        ("shift", "time_shift", {"shift_ms": 200.0}),
        ("noise", "noise", {"snr_db": 10.0, "color": "white", "seed": 1}),
        ("colour", "colour_cast", {"gains": [1.25, 1.0, 0.85]}),
        ("freeze", "freeze", {"start_s": 0.25, "duration_s": 0.75}),
        ("stutter", "stutter", {"period": 4, "hold": 1}),
    ]:
        perturb_clip(src, root / f"{name}.mp4", perturbation, params)
        out[name] = root / f"{name}.mp4"
    return src, out


@pytest.mark.parametrize("name, perturbation, true_params, false_params", [
    ("shift", "time_shift", {"shift_ms": 200.0}, {"shift_ms": 100.0}),
    ("shift", "time_shift", {"shift_ms": 200.0}, {"shift_ms": -200.0}),
    ("noise", "noise", {"snr_db": 10.0}, {"snr_db": 20.0}),
    ("noise", "noise", {"snr_db": 10.0}, {"snr_db": 8.0}),
    ("colour", "colour_cast", {"gains": [1.25, 1.0, 0.85]}, {"gains": [1.0, 1.0, 1.0]}),
    ("colour", "colour_cast", {"gains": [1.25, 1.0, 0.85]}, {"gains": [1.25, 1.0, 0.95]}),
    ("freeze", "freeze", {"start_s": 0.25, "duration_s": 0.75}, {"start_s": 1.1, "duration_s": 0.75}),
    ("stutter", "stutter", {"period": 4, "hold": 1}, {"period": 2, "hold": 1}),
])
def test_verify_clip_fails_a_wrong_claim(made, name, perturbation, true_params, false_params):
    src, out = made
    right = verify_clip(out[name], src, perturbation, true_params)
    assert right["ok"] is True, right
    wrong = verify_clip(out[name], src, perturbation, false_params)
    assert wrong["ok"] is False, wrong
    if perturbation == "freeze":  # every frame is measured, not a sample of them
        assert right["expected"]["frames_held"] == right["measured"]["frames_held"] == 5
