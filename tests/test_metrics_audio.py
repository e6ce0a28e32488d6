"""Audio signal metrics on signals built in code with known answers (real clips: set MTAVG_REAL_CLIPS)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import pytest

from mtavg.metrics import audio  # noqa: F401 - registers the metrics
from mtavg.metrics.audio_dnsmos import dnsmos, dnsmos_status, mel_db
from mtavg.metrics.audio_level import loudness_metric, speech_background_metric
from mtavg.metrics.audio_overlap import multipitch, overlap_metric, overlap_segments
from mtavg.metrics.audio_pitch import dominant_note, pitch_aggregate, pitch_metric, yin
from mtavg.metrics.base import METRICS, ClipMedia
from mtavg.metrics.vad import energy_segments, segments_from_probs, speech_segments, vad_status

SR = 16000
AUDIO_METRICS = ("vad", "loudness", "speech_background", "pitch", "overlap", "dnsmos")
VOWELS = np.array([[730, 1090, 2440], [270, 2290, 3010], [530, 1840, 2480], [570, 840, 2410]], float)
needs_vad = pytest.mark.skipif(vad_status() is not True, reason=f"Silero VAD unavailable: {vad_status()}")
needs_dnsmos = pytest.mark.skipif(dnsmos_status() is not True,
                                  reason=f"DNSMOS unavailable: {dnsmos_status()}")


def make_clip(x: np.ndarray, **extras) -> ClipMedia:
    x = np.asarray(x, np.float32)
    return ClipMedia(path=Path("synthetic.wav"), frames=None, frame_times=np.zeros(0), fps=0.0, audio=x,
                     sample_rate=SR, duration_s=len(x) / SR, extras=dict(extras))


def tone(f: float, seconds: float = 2.0, amp: float = 0.3) -> np.ndarray:
    return amp * np.sin(2 * np.pi * f * np.arange(int(seconds * SR)) / SR)


def pink(n: int, seed: int = 1) -> np.ndarray:
    """Unit-RMS pink noise."""
    spec = np.fft.rfft(np.random.default_rng(seed).standard_normal(n))
    x = np.fft.irfft(spec / np.sqrt(np.maximum(np.fft.rfftfreq(n, 1 / SR), 20.0)), n)
    return x / np.sqrt(np.mean(x**2))


def voice(n: int, f0: float, spans: list[tuple[float, float]], seed: int = 0) -> np.ndarray:
    """Speech-like unit-RMS voice: harmonics at f0 (vibrato, declination) through moving vowel formants,
    ~4.5 syllables/s with sin^0.6 envelopes and a consonant-like noise burst at each onset."""
    rng = np.random.default_rng(seed)
    out = np.zeros(n)
    for a, b in spans:
        i0, i1 = int(a * SR), int(b * SR)
        tt = np.arange(i1 - i0) / SR
        n_syl = max(1, round((b - a) / 0.22))
        syl = (b - a) / n_syl
        k = np.minimum((tt // syl).astype(int), n_syl - 1)
        f = f0 * (1 + 0.03 * np.sin(2 * np.pi * 5 * tt)) * (1.05 - 0.1 * tt / (b - a))
        phase = 2 * np.pi * np.cumsum(f) / SR
        fm = VOWELS[(k + seed) % len(VOWELS)]
        sig = np.zeros(len(tt))
        for h in range(1, int(3800 // f0)):
            amp = sum(g / (1 + ((h * f - fm[:, j]) / bw) ** 2)
                      for j, (g, bw) in enumerate(((1, 90), (0.6, 120), (0.3, 180))))
            sig += (amp + 0.02) / np.sqrt(h) * np.sin(h * phase)
        sig *= np.sin(np.pi * np.clip((tt - k * syl) / syl, 0, 1)) ** 0.6
        sig /= np.sqrt(np.mean(sig**2))
        for j in range(n_syl):
            s0 = int(j * syl * SR)
            m = min(int(0.03 * SR), len(sig) - s0)
            burst = np.diff(rng.standard_normal(m + 1)) * np.exp(-np.arange(m) / (0.008 * SR))
            sig[s0: s0 + m] += 0.35 * burst
        out[i0:i1] += sig
    return out


SPANS = [(0.5, 2.0), (3.0, 4.6), (5.5, 7.2)]
NOISE_RMS = 0.003  # -50.5 dBFS


def dialogue(n_s: float = 8.0) -> np.ndarray:
    n = int(n_s * SR)
    spans = [(a, min(b, n_s - 0.1)) for a, b in SPANS if a < n_s - 0.4]
    return 0.1 * voice(n, 120, spans) + NOISE_RMS * pink(n)


# ---------------------------------------------------------------- pitch
@pytest.mark.parametrize(("freq", "note"), [(440.0, "A4"), (466.16, "A#4"), (261.63, "C4"), (110.0, "A2")])
def test_sine_gives_its_note_in_tune(freq, note):
    rec = pitch_metric(make_clip(tone(freq)))
    assert rec["dominant_note"] == note and rec["pitch_class"] == note.rstrip("0123456789")
    assert abs(rec["dominant_note_cents"]) < 2 and rec["dominant_note_share"] == 1.0
    assert rec["voiced_ratio"] > 0.95 and rec["f0_median_hz"] == pytest.approx(freq, rel=0.002)


def test_detuned_note_reports_cents():
    rec = dominant_note(np.full(50, 440.0 * 2 ** (30 / 1200)))
    assert rec["dominant_note"] == "A4" and rec["dominant_note_cents"] == pytest.approx(30, abs=0.1)


def test_yin_follows_a_chirp_and_covers_50_to_2000_hz():
    t = np.arange(2 * SR) / SR
    chirp = 0.3 * np.sin(2 * np.pi * np.cumsum(200 + 300 * t) / SR)  # 200 -> 800 Hz in 2 s
    track = yin(chirp, SR)
    inner = slice(5, -5)
    assert track.voiced[inner].all()
    assert np.max(np.abs(track.f0[inner] / (200 + 300 * track.times[inner]) - 1)) < 0.02
    for f in (55.0, 1800.0):
        assert np.nanmedian(yin(tone(f, 1.0), SR).f0) == pytest.approx(f, rel=0.01)


def test_harmonic_tone_is_not_an_octave_error():
    x = sum(tone(220.0 * h, 1.0, 0.3 / h) for h in range(1, 8))  # rich A3
    assert pitch_metric(make_clip(x))["dominant_note"] == "A3"


def test_silence_and_noise_are_unvoiced_without_crashing():
    for x in (np.zeros(SR), 0.1 * np.random.default_rng(0).standard_normal(SR), np.zeros(0)):
        rec = pitch_metric(make_clip(x))
        assert rec["voiced_ratio"] == 0.0 and rec["dominant_note"] is None and rec["f0_median_hz"] is None
        json.dumps(rec)


def test_pitch_aggregate_counts_dominant_notes():
    signals = (tone(440.0, 0.5), tone(440.0, 0.5), tone(466.16, 0.5), np.zeros(800))
    recs = [pitch_metric(make_clip(x)) for x in signals]
    agg = pitch_aggregate(recs)
    assert agg["dominant_notes"] == {"A4": 2, "A#4": 1}
    assert agg["voiced_ratio"] == pytest.approx(0.75, abs=0.02)


# ---------------------------------------------------------------- loudness
def test_loudness_of_a_sine_follows_bs1770():
    rec = loudness_metric(make_clip(tone(997.0, 3.0, 0.1)))
    assert rec["integrated_lufs"] == pytest.approx(-23.0, abs=0.3)  # 0 dBFS-peak sine = -3.01 LUFS
    assert rec["peak_dbfs"] == pytest.approx(-20.0, abs=0.05)
    assert rec["rms_dbfs"] == pytest.approx(-23.01, abs=0.05)
    assert rec["clipping_ratio"] == 0.0 and rec["clipped_runs"] == 0 and rec["silence_ratio"] == 0.0


def test_clipped_sine_reports_clipping():
    x = np.clip(tone(100.0, 1.0, 1.5), -1, 1)
    rec = loudness_metric(make_clip(x))
    expected = 1 - 2 / np.pi * np.arcsin(0.999 / 1.5)  # time fraction where |1.5 sin| >= 0.999
    assert rec["clipping_ratio"] == pytest.approx(expected, abs=0.01)
    assert rec["clipped_runs"] == pytest.approx(200, abs=2)  # two flat tops per period, 100 periods


def test_silence_short_clips_and_digital_gaps():
    rec = loudness_metric(make_clip(np.zeros(2 * SR)))
    assert rec["integrated_lufs"] is None and rec["peak_dbfs"] is None and rec["silence_ratio"] == 1.0
    assert rec["digital_silence_s"] == 2.0
    short = loudness_metric(make_clip(tone(440.0, 0.3)))
    assert short["integrated_lufs"] is None and short["peak_dbfs"] is not None
    x = NOISE_RMS * pink(3 * SR)
    x[SR: 2 * SR] = 0.0
    rec = loudness_metric(make_clip(x))
    assert rec["digital_silence_s"] == pytest.approx(1.0, abs=0.01)
    assert rec["silence_ratio"] == pytest.approx(1 / 3, abs=0.02)
    assert loudness_metric(make_clip(np.zeros(0)))["integrated_lufs"] is None


# ---------------------------------------------------------------- speech vs background (given segments)
def test_speech_background_with_known_segments():
    clip = make_clip(dialogue(), vad_segments=SPANS)
    rec = speech_background_metric(clip)
    assert rec["background_rms_dbfs"] == pytest.approx(20 * np.log10(NOISE_RMS), abs=1.0)
    assert rec["noise_floor_dbfs"] == pytest.approx(20 * np.log10(NOISE_RMS), abs=3.0)
    assert rec["speech_to_background_db"] > 20 and not rec["no_ambient"] and not rec["loud_background"]


def test_missing_ambience_and_overpowering_background():
    dry = 0.1 * voice(8 * SR, 120, SPANS)
    rec = speech_background_metric(make_clip(dry, vad_segments=SPANS))
    assert rec["noise_floor_dbfs"] < -80 and rec["no_ambient"]
    loud = dry + 0.08 * pink(8 * SR)  # background 2 dB under the speech level
    rec = speech_background_metric(make_clip(loud, vad_segments=SPANS))
    assert rec["speech_to_background_db"] < 6 and rec["loud_background"]
    none = speech_background_metric(make_clip(NOISE_RMS * pink(SR), vad_segments=[]))
    assert none["speech_rms_dbfs"] is None and none["speech_to_background_db"] is None


# ---------------------------------------------------------------- overlap (given segments)
def test_two_voices_at_once_are_detected_one_voice_is_not():
    n = 6 * SR
    noise = NOISE_RMS * pink(n)
    low, high = 0.1 * voice(n, 110, [(0.5, 3.5)]), 0.1 * voice(n, 210, [(2.5, 5.5)], seed=1)
    speech = [(0.5, 5.5)]
    for single in (low, high, 0.1 * voice(n, 210, [(0.5, 5.5)], seed=1)):
        assert overlap_segments(multipitch(single + noise, SR), speech) == []
    segs = overlap_segments(multipitch(low + high + noise, SR), speech)
    assert len(segs) == 1
    assert segs[0][0] == pytest.approx(2.5, abs=0.1) and segs[0][1] == pytest.approx(3.5, abs=0.1)
    rec = overlap_metric(make_clip(low + high + noise, vad_segments=speech))
    assert rec["overlap_ratio"] == pytest.approx(0.2, abs=0.03) and rec["n_overlap_segments"] == 1


def test_overlap_is_only_judged_inside_speech():
    n = 4 * SR
    both = 0.1 * voice(n, 110, [(0.5, 3.5)]) + 0.1 * voice(n, 210, [(0.5, 3.5)], seed=1)
    assert overlap_metric(make_clip(both, vad_segments=[]))["overlap_ratio"] is None
    rec = overlap_metric(make_clip(both, vad_segments=[(0.5, 1.5)]))
    assert rec["overlap_segments"] and all(b <= 1.5 + 1e-6 for _, b in rec["overlap_segments"])


# ---------------------------------------------------------------- VAD
def test_hysteresis_rules_on_probabilities():
    p = np.array([0.0] * 10 + [0.9] * 20 + [0.4] * 5 + [0.9] * 10 + [0.0] * 20 + [0.9] * 3 + [0.0] * 10)
    segs = segments_from_probs(p, len(p) * 512)
    # 0.4 sits between the exit (0.35) and entry (0.5) thresholds: the segment continues through it;
    # the 3-window (96 ms) burst is shorter than min_speech and dropped.
    assert segs == [(round((10 * 512 - 480) / SR, 3), round((45 * 512 + 480) / SR, 3))]


def test_energy_segments_find_loud_regions():
    segs = energy_segments(dialogue(), SR)
    assert len(segs) == 3
    for (a, b), (ta, tb) in zip(segs, SPANS, strict=True):
        assert abs(a - ta) < 0.1 and abs(b - tb) < 0.1


@needs_vad
def test_silero_finds_speech_bursts_over_pink_noise():
    segs = speech_segments(dialogue().astype(np.float32), SR)
    assert len(segs) == 3
    for (a, b), (ta, tb) in zip(segs, SPANS, strict=True):
        assert abs(a - ta) <= 0.1
        assert -0.1 <= b - tb <= 0.2  # Silero's offset lags ~0.1 s, plus its 30 ms pad
    assert speech_segments(np.zeros(SR, np.float32), SR) == []
    assert speech_segments(NOISE_RMS * pink(2 * SR).astype(np.float32), SR) == []


@needs_vad
def test_vad_metric_caches_segments_for_other_metrics():
    clip = make_clip(dialogue())
    rec = METRICS["vad"].fn(clip)
    assert rec["n_segments"] == 3  # speech ratio runs a little high: each end lags ~0.1 s
    assert rec["speech_ratio"] == pytest.approx(sum(b - a for a, b in SPANS) / 8, abs=0.08)
    assert clip.extras["vad_segments"] == [tuple(s) for s in rec["segments"]] and rec["model"]
    assert METRICS["speech_background"].fn(clip)["speech_to_background_db"] > 20
    assert METRICS["overlap"].fn(clip)["overlap_ratio"] == 0.0
    json.dumps(rec)


# ---------------------------------------------------------------- DNSMOS
def test_p808_features_shape_and_range():
    feats = mel_db(tone(440.0, 9.0, 0.1) + NOISE_RMS * pink(9 * SR))
    assert feats.shape == (900, 120) and feats.max() == pytest.approx(1.0) and feats.min() >= -1.0 - 1e-6


@needs_dnsmos
def test_dnsmos_prefers_clean_speech():
    clean, noisy = dialogue(), 0.1 * voice(8 * SR, 120, SPANS) + 0.05 * pink(8 * SR)
    a, b = dnsmos(clean, SR), dnsmos(noisy, SR)
    assert all(1.0 <= a[k] <= 5.0 for k in ("sig", "bak", "ovrl", "p808")) and a["n_windows"] == 1
    assert a["bak"] > b["bak"] + 0.5 and a["ovrl"] > b["ovrl"]
    assert dnsmos(np.zeros(SR), SR)["ovrl"] is None


# ---------------------------------------------------------------- registry, skipping, runtime
def test_metrics_are_registered_as_audio_only():
    for name in AUDIO_METRICS:
        spec = METRICS[name]
        assert spec.needs == ("audio",) and spec.description
        assert spec.available() is True or isinstance(spec.available(), str)


def test_clip_without_audio_is_skipped(tmp_path):
    from conftest import write_tiny_clip
    from mtavg.metrics.run import compute_clip

    path = write_tiny_clip(tmp_path / "mute.mp4", audio=False)
    rec = compute_clip(path, ["loudness", "pitch"])
    assert rec["metrics"]["loudness"] == {"skipped": "no audio stream"}
    assert rec["metrics"]["pitch"] == {"skipped": "no audio stream"}


def _run_all(clip: ClipMedia) -> dict[str, dict]:
    return {n: METRICS[n].fn(clip) for n in AUDIO_METRICS if METRICS[n].available() is True}


def test_all_audio_metrics_on_10_s_within_budget():
    _run_all(make_clip(dialogue(1.0)))  # imports, ONNX sessions
    clip = make_clip(np.concatenate([dialogue(), dialogue(2.0)]))
    start = time.process_time()
    records = _run_all(clip)
    assert time.process_time() - start < 3.0
    json.dumps(records)


REAL = os.environ.get("MTAVG_REAL_CLIPS")


@pytest.mark.skipif(not REAL, reason="MTAVG_REAL_CLIPS is not set")
def test_real_clips():
    from mtavg.metrics.base import load_clip

    for path in sorted(Path(REAL).glob("case6_*.mp4")):  # "a single note A4" on guitar
        rec = pitch_metric(load_clip(path))
        assert rec["voiced_ratio"] > 0.1 and rec["dominant_note"]
    speech = Path(REAL) / "case1_veo3_1_fast.mp4"
    if speech.exists() and vad_status() is True:
        clip = load_clip(speech)
        rec = _run_all(clip)
        assert 0.2 < rec["vad"]["speech_ratio"] < 0.9 and rec["overlap"]["overlap_ratio"] == 0.0
        assert rec["loudness"]["integrated_lufs"] is not None
