"""DNSMOS P.835 (SIG, BAK, OVRL) and P.808 MOS with the ONNX weights shipped in the ``speechmos`` wheel.

We run the models ourselves with onnxruntime instead of calling ``speechmos.dnsmos.run``: that module
imports librosa (numba, llvmlite) at import time only for one mel spectrogram, loops forever on empty
input and keeps a global session. ``mel_db`` below reproduces librosa's
``melspectrogram(n_fft=321, hop_length=160, n_mels=120)`` + ``power_to_db(ref=max)`` (Slaney mel
scale and norm, centred zero-padded periodic-Hann STFT); the feature pipeline otherwise follows
Microsoft's dnsmos_local.py: 9.01 s windows hopped by 1 s, the polynomial calibration of the P.835
outputs, and the mean over windows. Two deliberate differences bound the cost (~0.35 s per window on
one core): a clip shorter than 9.01 s is repeated into exactly one window, and a long clip is scored
on at most ``max_windows`` evenly spread windows.
"""

from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mtavg.metrics.vad import to_vad_rate

if TYPE_CHECKING:
    from mtavg.metrics.base import ClipMedia

SR = 16000
INPUT_S = 9.01
N_FFT, HOP, N_MELS = 321, 160, 120
# P.835 calibration polynomials (non-personalised model), from dnsmos_local.py / speechmos.
P_SIG = np.poly1d([-0.08397278, 1.22083953, 0.0052439])
P_BAK = np.poly1d([-0.13166888, 1.60915514, -0.39604546])
P_OVR = np.poly1d([-0.06766283, 1.11546468, 0.04602535])


def _models_dir() -> Path | None:
    spec = importlib.util.find_spec("speechmos")  # locate without importing (speechmos.dnsmos needs librosa)
    locations = list(spec.submodule_search_locations or []) if spec else []
    return Path(locations[0]) / "dnsmos_models" if locations else None


def dnsmos_status() -> bool | str:
    if importlib.util.find_spec("onnxruntime") is None:
        return "onnxruntime is not installed (`pip install onnxruntime speechmos`)"
    d = _models_dir()
    if d is None:
        return "speechmos is not installed (`pip install speechmos`; it ships the DNSMOS ONNX weights)"
    if not ((d / "sig_bak_ovr.onnx").is_file() and (d / "model_v8.onnx").is_file()):
        return f"DNSMOS weights missing under {d}"
    return True


@lru_cache(maxsize=1)
def _sessions() -> tuple[Any, Any]:
    import onnxruntime as ort

    d = _models_dir()
    if d is None:
        raise RuntimeError(str(dnsmos_status()))
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    make = lambda name: ort.InferenceSession(str(d / name), sess_options=opts,  # noqa: E731
                                             providers=["CPUExecutionProvider"])
    return make("sig_bak_ovr.onnx"), make("model_v8.onnx")


def _hz_to_mel(f: np.ndarray) -> np.ndarray:
    """Slaney mel scale: linear under 1 kHz, logarithmic above (librosa's default, htk=False)."""
    f = np.asarray(f, np.float64)
    mel = f / (200.0 / 3)
    log_part = 15.0 + np.log(np.maximum(f, 1e-10) / 1000.0) / (np.log(6.4) / 27.0)
    return np.where(f >= 1000.0, log_part, mel)


def _mel_to_hz(m: np.ndarray) -> np.ndarray:
    m = np.asarray(m, np.float64)
    return np.where(m >= 15.0, 1000.0 * np.exp((np.log(6.4) / 27.0) * (m - 15.0)), m * (200.0 / 3))


@lru_cache(maxsize=1)
def mel_filters() -> np.ndarray:
    """(N_MELS, N_FFT // 2 + 1) Slaney-normalised triangular filters, as librosa.filters.mel."""
    fft_freqs = np.fft.rfftfreq(N_FFT, 1.0 / SR)
    mel_f = _mel_to_hz(np.linspace(_hz_to_mel(0.0), _hz_to_mel(SR / 2), N_MELS + 2))
    fdiff = np.diff(mel_f)
    ramps = mel_f[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    return (weights * (2.0 / (mel_f[2:] - mel_f[:-2]))[:, None]).astype(np.float32)


def mel_db(audio: np.ndarray) -> np.ndarray:
    """(frames, 120) P.808 input: (power mel spectrogram in dB re its max, 80 dB range, + 40) / 40."""
    x = np.pad(np.asarray(audio, np.float32), N_FFT // 2)  # center=True, zero padding
    n = 1 + (len(x) - N_FFT) // HOP
    window = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(N_FFT) / N_FFT)).astype(np.float32)  # periodic Hann
    frames = np.lib.stride_tricks.sliding_window_view(x, N_FFT)[::HOP][:n] * window
    power = np.abs(np.fft.rfft(frames, axis=1)) ** 2
    mel = power @ mel_filters().T
    log = 10 * np.log10(np.maximum(mel, 1e-10))
    log = log - 10 * np.log10(max(float(mel.max()), 1e-10))
    log = np.maximum(log, log.max() - 80.0)
    return ((log + 40) / 40).astype(np.float32)


def dnsmos(audio: np.ndarray, sample_rate: int, *, max_windows: int = 6) -> dict[str, Any]:
    """SIG / BAK / OVRL (P.835) and P.808 MOS of a mono signal (1-5 scales), averaged over windows."""
    x = np.clip(to_vad_rate(audio, sample_rate), -1.0, 1.0)
    need = int(INPUT_S * SR)
    if len(x) < SR // 10 or not np.any(x):
        return {"sig": None, "bak": None, "ovrl": None, "p808": None, "n_windows": 0}
    if len(x) < need:
        # The reference doubles a short clip until it is >= 9.01 s and scores every 1 s shift of that
        # (7 windows for an 8 s clip, 2.5 s of CPU); the shifts repeat the same content, so one window
        # of the clip repeated end to end gives the same scores within ~0.1 (checked on 8 s clips).
        x = np.resize(x, need)
    main, p808 = _sessions()
    n_hops = int(np.floor(len(x) / SR) - INPUT_S) + 1  # the reference's 1 s hops
    starts = np.unique(np.linspace(0, n_hops - 1, min(n_hops, max_windows)).round().astype(int)) * SR
    scores = []
    for start in starts:  # long clips: at most `max_windows` evenly spread windows, to bound the cost
        seg = x[start: start + need]
        sig, bak, ovr = main.run(None, {"input_1": seg[None, :].astype(np.float32)})[0][0]
        mos = p808.run(None, {"input_1": mel_db(seg[:-160])[None]})[0][0][0]
        scores.append((P_SIG(sig), P_BAK(bak), P_OVR(ovr), mos))
    s = np.mean(np.asarray(scores, np.float64), axis=0)
    return {"sig": round(float(s[0]), 3), "bak": round(float(s[1]), 3), "ovrl": round(float(s[2]), 3),
            "p808": round(float(s[3]), 3), "n_windows": len(scores)}


def dnsmos_metric(clip: ClipMedia) -> dict[str, Any]:
    """DNSMOS of the whole clip: BAK needs the pauses, and the model was trained on whole clips."""
    audio = clip.audio if clip.audio is not None else np.zeros(0, np.float32)
    return dnsmos(audio, clip.sample_rate)
