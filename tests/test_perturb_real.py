"""Acceptance measurements of the perturbation engine on real generated clips (AVGen-Bench demo assets).

Set MTAVG_REAL_CLIPS to their directory to run. Every check compares the ORIGINAL source clip with the
perturbed output file, decoded, and measures with its own simple code (numpy/scipy), not with
``mtavg.perturb.measure`` (which is checked separately, through ``verify_clip``, for the pictures).
"""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter
from scipy.signal import resample_poly, welch

from mtavg.metrics.audio_pitch import yin
from mtavg.perturb import perturb_clip, read_audio
from mtavg.perturb.measure import verify_clip

REAL = os.environ.get("MTAVG_REAL_CLIPS")
pytestmark = pytest.mark.skipif(not REAL, reason="MTAVG_REAL_CLIPS is not set")

#: One clip per generator for the shifts: speech, effects and music with onsets (no steady tone).
SHIFT_CLIPS = ("case2_ltx2", "case2_ovi", "case1_veo3_1_fast")
#: Clips with pitched sound (a plucked A4, a sine sweep, an advert's music).
PITCHED = ("case6_ltx2", "case6_ovi", "case6_veo3_1_fast", "case3_ltx2", "case1_ovi")
#: The smallest clip (Veo 3.1 Fast, 1280x720, 8 s) for the picture perturbations.
VIDEO_CLIP = "case6_veo3_1_fast"
PITCH_RATE = 16000
MIN_VOICED = 50


def _src(name: str) -> Path:
    path = Path(REAL or "") / f"{name}.mp4"
    assert path.is_file(), f"{path} is missing from MTAVG_REAL_CLIPS={REAL}"
    return path


@pytest.fixture(scope="module")
def make(tmp_path_factory):
    """make(clip, perturbation, params) -> the perturbed file (each made once per module)."""
    root = tmp_path_factory.mktemp("perturb-real")
    made: dict[str, Path] = {}

    def _make(name: str, perturbation: str, params: dict) -> Path:
        key = f"{name}-{perturbation}-" + "-".join(f"{k}={v}" for k, v in sorted(params.items()))
        if key not in made:
            out = root / f"{len(made):03d}-{name}-{perturbation}.mp4"
            perturb_clip(_src(name), out, perturbation, params)
            made[key] = out
        return made[key]

    return _make


@pytest.fixture(scope="module")
def original():
    cache: dict[str, object] = {}

    def _original(name: str):
        if name not in cache:
            cache[name] = read_audio(_src(name))
        return cache[name]

    return _original


# ---------------------------------------------------------------- independent measurements
def _mono(track) -> np.ndarray:
    return track.samples.astype(np.float64).mean(axis=0)


def _lag_ms(ref, pert, max_ms: float = 1000.0) -> float:
    """Lag of ``pert`` behind ``ref`` (ms, + = late): FFT cross-correlation peak, parabola-refined."""
    x, y = _mono(ref), _mono(pert)
    n = min(len(x), len(y))
    x, y = x[:n] - x[:n].mean(), y[:n] - y[:n].mean()
    size = 1 << int(np.ceil(np.log2(2 * n)))
    c = np.fft.irfft(np.fft.rfft(y, size) * np.conj(np.fft.rfft(x, size)), size)  # c[k] = sum y[i + k] x[i]
    m = int(max_ms * ref.rate / 1000)
    c = np.concatenate([c[-m:], c[: m + 1]])
    i = int(np.argmax(c))
    a, b, d = c[i - 1], c[i], c[i + 1]
    frac = 0.5 * (a - d) / (a - 2 * b + d)
    return (i - m + frac) / ref.rate * 1000.0


def _peak_correlation(x: np.ndarray, y: np.ndarray, rate: int, max_ms: float) -> float:
    """Largest normalised cross-correlation of two mono signals within +-max_ms."""
    n = min(len(x), len(y))
    x, y = x[:n] - x[:n].mean(), y[:n] - y[:n].mean()
    size = 1 << int(np.ceil(np.log2(2 * n)))
    c = np.fft.irfft(np.fft.rfft(y, size) * np.conj(np.fft.rfft(x, size)), size)
    m = int(max_ms * rate / 1000)
    c = np.concatenate([c[-m:], c[: m + 1]]) if m > 0 else c[:1]
    return float(np.max(c) / np.sqrt(np.sum(x * x) * np.sum(y * y)))


def _resampled(x: np.ndarray, rate: int, to: int) -> np.ndarray:
    frac = Fraction(to, rate)
    return x if frac == 1 else resample_poly(x, frac.numerator, frac.denominator)


def _f0(track) -> np.ndarray:
    return yin(_resampled(_mono(track), track.rate, PITCH_RATE), PITCH_RATE).f0


def _pitch_change(ref, pert, time_scale: float = 1.0) -> tuple[float, int]:
    """Median semitone change over frames voiced in both; pert's frame i / time_scale matches ref's frame i."""
    fa, fb = _f0(ref), _f0(pert)
    idx = np.round(np.arange(len(fa)) / time_scale).astype(int)
    ok = idx < len(fb)
    fa, fb = fa[ok], fb[idx[ok]]
    both = np.isfinite(fa) & np.isfinite(fb)
    return float(np.median(12 * np.log2(fb[both] / fa[both]))), int(both.sum())


def _snr_db(ref, pert) -> float:
    n = min(ref.n, pert.n)
    r = ref.samples[:, :n].astype(np.float64)
    return float(10 * np.log10(np.mean(r ** 2) / np.mean((pert.samples[:, :n] - r) ** 2)))


def _band_db(x: np.ndarray, rate: int, lo: float, hi: float) -> float:
    f, p = welch(x, fs=rate, nperseg=4096)
    return float(10 * np.log10(np.mean(p[(f >= lo) & (f < hi)]) + 1e-30))


def _video_packets(path: Path) -> list[tuple[int | None, int | None, bytes]]:
    import av

    with av.open(str(path)) as c:
        return [(p.pts, p.dts, bytes(p)) for p in c.demux(c.streams.video[0]) if p.dts is not None]


def _decoded(path: Path, step: int = 1, fmt: str = "rgb24"):
    """Every ``step``-th decoded picture, full resolution (one at a time: 720p x 192 would be 530 MB)."""
    import av

    with av.open(str(path)) as c:
        for i, frame in enumerate(c.decode(c.streams.video[0])):
            if i % step == 0:
                yield i, frame.to_ndarray(format=fmt)


# ---------------------------------------------------------------- audio
@pytest.mark.parametrize("name", SHIFT_CLIPS)
@pytest.mark.parametrize("shift_ms", [40.0, -120.0, 250.0, -700.0])
def test_time_shift_is_recovered_by_cross_correlation(make, original, name, shift_ms):
    out = make(name, "time_shift", {"shift_ms": shift_ms})
    pert = read_audio(out)
    measured = _lag_ms(original(name), pert)
    assert abs(measured - shift_ms) <= min(5.0, abs(shift_ms) / 10), (name, shift_ms, measured)
    assert pert.n == original(name).n  # the length stays


@pytest.mark.parametrize("name", PITCHED)
@pytest.mark.parametrize("semitones", [3.0, -2.0])
def test_pitch_shift_moves_the_yin_pitch(make, original, name, semitones):
    out = make(name, "pitch_shift", {"semitones": semitones})
    pert = read_audio(out)
    change, voiced = _pitch_change(original(name), pert)
    assert voiced >= MIN_VOICED, (name, voiced)
    assert abs(change - semitones) <= 0.3, (name, semitones, change)
    assert pert.n == original(name).n


@pytest.mark.parametrize("snr_db", [0.0, 10.0, 20.0])
@pytest.mark.parametrize("color", ["white", "pink"])
@pytest.mark.parametrize("name", ["case2_ltx2", "case1_veo3_1_fast"])  # 24 kHz and 48 kHz
def test_noise_measures_its_snr(make, original, name, snr_db, color):
    out = make(name, "noise", {"snr_db": snr_db, "color": color, "seed": 7})
    measured = _snr_db(original(name), read_audio(out))
    assert abs(measured - snr_db) <= 1.0, (name, color, snr_db, measured)


@pytest.mark.parametrize("factor", [0.8, 1.25])
@pytest.mark.parametrize("keep_pitch", [True, False])
def test_speed_change_duration_and_pitch(make, original, factor, keep_pitch):
    name = "case3_ltx2"  # a sweeping sine tone: pitched from start to end
    out = make(name, "speed_change", {"factor": factor, "keep_pitch": keep_pitch})
    ref, pert = original(name), read_audio(out)
    ratio = pert.duration_s / ref.duration_s
    assert abs(ratio * factor - 1) <= 0.01, (factor, keep_pitch, ratio)
    change, voiced = _pitch_change(ref, pert, time_scale=factor)
    assert voiced >= MIN_VOICED
    want = 0.0 if keep_pitch else 12 * np.log2(factor)
    assert abs(change - want) <= 0.3, (factor, keep_pitch, change)


def test_lowpass_cuts_the_octave_above_the_cutoff(make, original):
    name = "case2_ltx2"
    out = make(name, "filter", {"kind": "lowpass", "high_hz": 500})
    ref, pert = original(name), read_audio(out)
    x, y = _mono(ref), _mono(pert)
    ref_stop = _band_db(x, ref.rate, 1000, 2000)
    assert ref_stop > -100  # the source has sound there to cut
    assert ref_stop - _band_db(y, ref.rate, 1000, 2000) >= 20
    assert abs(_band_db(x, ref.rate, 60, 250) - _band_db(y, ref.rate, 60, 250)) < 1.0  # pass band kept


def test_dropout_silences_the_segment_only(make, original):
    name = "case2_ltx2"
    start, end = 3.0, 4.0
    out = make(name, "dropout", {"segments": [[start, end]]})
    ref, pert = original(name), read_audio(out)
    r = ref.rate
    edge = int(0.01 * r)  # the 5 ms fades, and the codec's spread of them
    inside = pert.samples[:, int(start * r) + edge: int(end * r) - edge].astype(np.float64)
    assert 10 * np.log10(np.mean(inside ** 2) + 1e-20) <= -60
    assert 10 * np.log10(np.mean(ref.samples[:, int(start * r): int(end * r)] ** 2)) > -50  # was not silent
    keep = np.ones(ref.n, bool)
    keep[int(start * r) - 4 * edge: int(end * r) + 4 * edge] = False
    a, b = ref.samples[:, keep].astype(np.float64), pert.samples[:, keep].astype(np.float64)
    assert 10 * np.log10(np.mean(a ** 2) / np.mean((b - a) ** 2)) >= 30  # only the codec's error outside


def test_random_mismatch_correlates_with_the_donor(make, original):
    name, donor_name = "case2_ltx2", "case1_ovi"  # 24 kHz clip, 44.1 kHz donor
    out = make(name, "random_mismatch", {"donor": donor_name, "donor_path": str(_src(donor_name)),
                                          "offset_s": 0.0})
    ref, pert = original(name), read_audio(out)
    donor = original(donor_name)
    d = _resampled(_mono(donor), donor.rate, ref.rate)
    with_donor = _peak_correlation(d, _mono(pert), ref.rate, 20)
    with_original = _peak_correlation(_mono(ref), _mono(pert), ref.rate, 1000)
    assert with_donor >= 0.9 and with_original < 0.3, (with_donor, with_original)


@pytest.mark.parametrize("perturbation, params", [
    ("time_shift", {"shift_ms": -120.0}),
    ("pitch_shift", {"semitones": 3.0}),
    ("noise", {"snr_db": 10.0, "color": "pink", "seed": 7}),
    ("speed_change", {"factor": 0.8, "keep_pitch": True}),
    ("dropout", {"segments": [[3.0, 4.0]]}),
])
def test_audio_perturbations_copy_the_video_stream_bit_exactly(make, perturbation, params):
    name = "case1_ovi"
    out = make(name, perturbation, params)
    src_packets, out_packets = _video_packets(_src(name)), _video_packets(out)
    assert len(src_packets) == len(out_packets) > 100
    assert [p[2] for p in src_packets] == [p[2] for p in out_packets]
    assert [p[:2] for p in src_packets] == [p[:2] for p in out_packets]


# ---------------------------------------------------------------- pictures
FREEZE = {"start_s": 2.0, "duration_s": 1.5}
STUTTER = {"period": 3, "hold": 1}
GAINS = [1.2, 1.0, 0.85]
SIGMA = 4.0


@pytest.mark.parametrize("perturbation, params", [
    ("freeze", FREEZE), ("stutter", STUTTER), ("colour_cast", {"gains": GAINS}), ("blur", {"sigma_px": SIGMA}),
])
def test_video_perturbations_verify(make, perturbation, params):
    out = make(VIDEO_CLIP, perturbation, params)
    result = verify_clip(out, _src(VIDEO_CLIP), perturbation, params)
    assert result["ok"] is True, result
    assert read_audio(out).n == read_audio(_src(VIDEO_CLIP)).n  # the soundtrack goes along unchanged in length


def _stills(path: Path) -> dict[int, float]:
    """{index: share of identical Y samples} of decoded frames that repeat the one before them.

    A re-encoded copy of a frame is not bit-identical to its first encoding (x264 keeps refining it), so a
    repeat is a frame where no pixel moved beyond the codec's noise: 99.9 % of |dY| <= 10 levels. Real
    motion, even the slight sway of this clip, moves 0.1 % of the pixels by 13 levels or more.
    """
    out, prev = {}, None
    for i, frame in _decoded(path, fmt="gray"):
        frame = frame.astype(np.int16)
        if prev is not None:
            d = np.abs(frame - prev)
            if np.percentile(d, 99.9) <= 10:
                out[i] = float(np.mean(d == 0))
        prev = frame
    return out


@pytest.fixture(scope="module")
def source_stills():
    return _stills(_src(VIDEO_CLIP))


def test_freeze_repeats_the_frames_of_its_window(make, source_stills):
    out = make(VIDEO_CLIP, "freeze", FREEZE)
    fps = 24
    first, last = round(FREEZE["start_s"] * fps), round((FREEZE["start_s"] + FREEZE["duration_s"]) * fps) - 1
    stills = _stills(out)
    in_window = {i: share for i, share in stills.items() if first < i <= last}
    assert len(in_window) == last - first, (sorted(in_window), first, last)  # every frame after the first
    assert min(in_window.values()) >= 0.98  # held: all but a few codec-refined samples identical
    assert len(stills) - len(in_window) <= len(source_stills) + 2


def test_stutter_repeats_every_third_frame(make, source_stills):
    out = make(VIDEO_CLIP, "stutter", STUTTER)
    stills = _stills(out)
    period, hold = STUTTER["period"], STUTTER["hold"]
    dropped = [i for i in range(1, 192) if i % period >= period - hold]
    assert all(i in stills for i in dropped), sorted(set(dropped) - set(stills))
    assert len(set(stills) - set(dropped)) <= len(source_stills) + 2


def test_colour_cast_scales_the_channels(make):
    out = make(VIDEO_CLIP, "colour_cast", {"gains": GAINS})
    num, den = np.zeros(3), np.zeros(3)
    for (_, r), (_, p) in zip(_decoded(_src(VIDEO_CLIP), step=12), _decoded(out, step=12), strict=True):
        r, p = r[::2, ::2].astype(np.float64), p[::2, ::2].astype(np.float64)
        for c in range(3):
            mid = (r[..., c] > 30) & (r[..., c] < 200)  # neither crushed nor clipped after the gain
            num[c] += np.sum(p[..., c][mid] * r[..., c][mid])
            den[c] += np.sum(r[..., c][mid] ** 2)
    measured = num / den  # least-squares gain per channel
    assert np.all(np.abs(measured - GAINS) <= 0.04), measured


def test_blur_matches_a_gaussian_of_the_original(make):
    out = make(VIDEO_CLIP, "blur", {"sigma_px": SIGMA})
    for (_, r), (_, p) in zip(_decoded(_src(VIDEO_CLIP), step=48), _decoded(out, step=48), strict=True):
        r, p = r.astype(np.float32), p.astype(np.float32)
        blurred = gaussian_filter(r, sigma=(SIGMA, SIGMA, 0), mode="reflect")
        to_blurred, to_sharp = np.mean((p - blurred) ** 2), np.mean((p - r) ** 2)
        assert to_blurred < 0.25 * to_sharp, (to_blurred, to_sharp)
        grad = lambda g: np.mean(np.abs(np.diff(g.mean(axis=2), axis=1)))  # noqa: E731
        assert grad(p) < 0.6 * grad(r)
