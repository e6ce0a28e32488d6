"""Audio perturbations: pure functions ``(AudioTrack, **params) -> AudioTrack``.

Every parameter is explicit and lands in the clip's sidecar record, so a negative can be rebuilt or
measured later. Conventions: a positive ``shift_ms`` makes the audio late (it lags the picture);
``factor`` > 1 plays faster (shorter); ``snr_db`` is the clip's mean power over the added noise's.
"""

from __future__ import annotations

import numpy as np
from scipy.signal import butter, sosfiltfilt

from mtavg.perturb.io import AudioTrack
from mtavg.perturb.stretch import fit_length, resample, time_stretch
from mtavg.perturb.stretch import pitch_shift as _pitch_shift

#: Fades at the edges of a dropout, so the cut itself is not a click an evaluator could key on.
FADE_S = 0.005
#: Lowest frequency of added noise.
AUDIBLE_HZ = 20.0


def time_shift(track: AudioTrack, *, shift_ms: float) -> AudioTrack:
    """Delay (``shift_ms`` > 0) or advance the soundtrack against the picture; the length stays the same.

    Delay pads silence at the start and drops the tail; advance drops the head and pads the end.
    """
    n = int(round(abs(shift_ms) * track.rate / 1000.0))
    if n >= track.n:
        raise ValueError(f"shift of {shift_ms} ms is longer than the clip ({track.duration_s:.2f} s)")
    x = track.samples
    if shift_ms < 0:  # advance: drop the head, pad the end
        return track.with_samples(np.pad(x[:, n:], ((0, 0), (0, n))))
    return track.with_samples(np.pad(x[:, : track.n - n], ((0, 0), (n, 0))))


def speed_change(track: AudioTrack, *, factor: float, keep_pitch: bool) -> AudioTrack:
    """Play the soundtrack ``factor`` times as fast: its duration becomes duration / factor.

    ``keep_pitch`` time-stretches (WSOLA, tempo only); otherwise the samples are resampled, as a tape
    played fast, so the pitch moves by 12 * log2(factor) semitones too. The picture is untouched, so the
    soundtrack drifts against it and ends early (fast) or runs past the last frame (slow).
    """
    if not 0.25 <= factor <= 4.0:
        raise ValueError(f"speed factor {factor} outside 0.25..4")
    if keep_pitch:
        y = time_stretch(track.samples, factor, track.rate)
    else:
        y = resample(track.samples, 1.0 / factor)
    return track.with_samples(y)


def pitch_shift(track: AudioTrack, *, semitones: float) -> AudioTrack:
    """Move every pitch by ``semitones`` and keep the timing (WSOLA stretch, then resampling)."""
    if abs(semitones) > 24:
        raise ValueError(f"pitch shift of {semitones} semitones is beyond two octaves")
    return track.with_samples(_pitch_shift(track.samples, semitones, track.rate))


def coloured_noise(shape: tuple[int, int], color: str, rng: np.random.Generator, sample_rate: int) -> np.ndarray:
    """Unit-power noise: white (flat), pink (1/f power) or brown (1/f^2 power), shaped in the spectrum.

    Nothing below 20 Hz: brown noise would otherwise put most of its power into inaudible rumble that
    an AAC encoder partly drops, so the SNR heard (and measured after encoding) would not be the one asked.
    """
    exponent = {"white": 0.0, "pink": 0.5, "brown": 1.0}.get(color)
    if exponent is None:
        raise ValueError(f"noise colour {color!r}: choose white, pink or brown")
    spec = np.fft.rfft(rng.standard_normal(shape), axis=-1)
    f = np.fft.rfftfreq(shape[1], 1.0 / sample_rate)
    gain = np.zeros_like(f)
    audible = f >= AUDIBLE_HZ
    gain[audible] = (f[audible] / AUDIBLE_HZ) ** -exponent
    noise = np.fft.irfft(spec * gain, n=shape[1], axis=-1)
    return noise / np.sqrt(np.mean(noise ** 2) + 1e-30)


def add_noise(track: AudioTrack, *, snr_db: float, color: str = "white", seed: int = 0) -> AudioTrack:
    """Add noise at ``snr_db``: 10 log10(mean signal power / mean noise power) over the whole clip."""
    power = float(np.mean(track.samples.astype(np.float64) ** 2))
    if power <= 0:
        raise ValueError("the soundtrack is digital silence: a signal-to-noise ratio is undefined")
    noise = coloured_noise(track.samples.shape, color, np.random.default_rng(seed), track.rate)
    noise *= np.sqrt(power / 10.0 ** (snr_db / 10.0))
    return track.with_samples(track.samples + noise)


def band_filter(track: AudioTrack, *, kind: str, low_hz: float | None = None, high_hz: float | None = None,
                order: int = 6) -> AudioTrack:
    """Butterworth low-pass (``high_hz``), high-pass (``low_hz``) or band-pass (both), zero phase.

    Applied forwards and backwards (sosfiltfilt): no delay, so a filter never doubles as a time shift.
    """
    nyquist = track.rate / 2.0
    if kind == "lowpass":
        if high_hz is None:
            raise ValueError("a low-pass filter needs high_hz (its cut-off)")
        edges, btype = high_hz, "lowpass"
    elif kind == "highpass":
        if low_hz is None:
            raise ValueError("a high-pass filter needs low_hz (its cut-off)")
        edges, btype = low_hz, "highpass"
    elif kind == "bandpass":
        if low_hz is None or high_hz is None or not low_hz < high_hz:
            raise ValueError("a band-pass filter needs low_hz < high_hz")
        edges, btype = [low_hz, high_hz], "bandpass"
    else:
        raise ValueError(f"filter kind {kind!r}: choose lowpass, highpass or bandpass")
    if max(np.atleast_1d(edges)) >= nyquist:
        raise ValueError(f"filter edge {edges} Hz is at or above Nyquist ({nyquist:g} Hz)")
    sos = butter(order // 2 if btype == "bandpass" else order, edges, btype=btype, fs=track.rate, output="sos")
    return track.with_samples(sosfiltfilt(sos, track.samples, axis=-1))


def dropout(track: AudioTrack, *, segments: list[list[float]]) -> AudioTrack:
    """Silence each [start_s, end_s) segment, with 5 ms fades at its edges."""
    y = track.samples.copy()
    fade = max(1, int(FADE_S * track.rate))
    gain = np.ones(track.n, np.float32)
    for start_s, end_s in segments:
        a, b = max(0, int(round(start_s * track.rate))), min(track.n, int(round(end_s * track.rate)))
        if b <= a:
            raise ValueError(f"dropout segment [{start_s}, {end_s}) is empty or outside the clip")
        gain[a:b] = 0.0
        ramp = np.linspace(1.0, 0.0, fade, dtype=np.float32)
        lo = max(0, a - fade)
        gain[lo:a] = np.minimum(gain[lo:a], ramp[fade - (a - lo):])
        hi = min(track.n, b + fade)
        gain[b:hi] = np.minimum(gain[b:hi], ramp[::-1][: hi - b])
    return track.with_samples(y * gain)


def mute(track: AudioTrack) -> AudioTrack:
    """The whole soundtrack silent (the stream stays, so players and evaluators see an audio track)."""
    return track.with_samples(np.zeros_like(track.samples))


def replace_audio(track: AudioTrack, *, donor: AudioTrack, offset_s: float = 0.0) -> AudioTrack:
    """Another clip's soundtrack (from ``offset_s``), at this clip's rate, channels and length.

    A donor shorter than the clip is looped, so the negative has sound from start to end as the original.
    """
    x = donor.samples
    if donor.rate != track.rate:
        x = resample(x, track.rate / donor.rate)
    if x.shape[0] != track.channels:
        x = np.repeat(x.mean(axis=0, keepdims=True), track.channels, axis=0)
    start = int(round(offset_s * track.rate))
    if not 0 <= start < x.shape[1]:
        raise ValueError(f"donor offset {offset_s} s is outside the donor ({x.shape[1] / track.rate:.2f} s)")
    x = x[:, start:]
    reps = int(np.ceil(track.n / max(1, x.shape[1])))
    return track.with_samples(fit_length(np.tile(x, (1, reps)), track.n))
