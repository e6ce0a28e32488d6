"""A synthetic talking face with a known lip-audio lag, built from a real photo shipped by scikit-image.

``make_talking_face`` takes the astronaut portrait (``skimage.data.astronaut()``, public domain, NASA),
crops a 384x216 frame around the face (the analysis size, so no resampling blurs the mouth) and opens the
mouth frame by frame: everything below the lip line inside a jaw-shaped region is pulled down, and the gap
is filled with a dark mouth interior, so a face-landmark model sees the lower lip move. The opening follows
a syllable-like envelope (3-5 Hz, with pauses); the soundtrack is a harmonic voice under the same envelope,
shifted by ``lag_frames`` (positive: the audio is late). Written as H.264 + AAC with PyAV.

The mouth geometry is fixed in photo coordinates, measured once with MediaPipe Face Mesh on the still
(inner lips 13/14 at (223, 143)/(223, 150), corners 78/308 at (203, 140)/(243, 141)).
Needs scikit-image (and scipy); the lips test also needs mediapipe.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy import ndimage

from mtavg.bench.demo_media import encode_mp4

SR = 16000
CROP = (20, 236, 30, 414)  # (y0, y1, x0, x1) of the astronaut photo: 216 x 384, face in the middle
MOUTH_CX, LIP_Y = 223.0, 148.0  # mouth centre x and the line between upper teeth and lower lip (photo px)
MAX_OPEN = 11.0  # px the lower lip drops at full opening (mouth ~40 px wide)
# Horizontal extent of the pull: flat centre, cosine taper to 0 at the mouth corners on the lip line,
# widening towards the chin so the jaw moves as a block rather than the lip alone.
LIP_HALF_W, JAW_HALF_W, FLAT_FRAC = 19.0, 30.0, 0.45
CHIN_Y, NECK_Y = 178.0, 196.0  # full pull down to the chin, fading out towards the neck
INNER = np.array([70.0, 22.0, 28.0])  # mouth interior colour


def syllable_envelope(seconds: float, rate: int, rng: np.random.Generator, lead_s: float = 0.4) -> np.ndarray:
    """0..1 envelope at ``rate`` Hz: syllables of 0.2-0.33 s (3-5 Hz), a pause every 3-6 syllables."""
    n = int(round(seconds * rate))
    env = np.zeros(n)
    t, count, next_pause = lead_s, 0, int(rng.integers(3, 7))
    while t < seconds - 0.3:
        d = rng.uniform(0.2, 0.33)
        a, b = int(t * rate), min(n, int((t + d) * rate))
        u = (np.arange(b - a) + 0.5) / max(b - a, 1)
        env[a:b] = np.sin(np.pi * u) ** 0.7 * rng.uniform(0.6, 1.0)
        t, count = t + d, count + 1
        if count == next_pause:
            t, count, next_pause = t + rng.uniform(0.25, 0.5), 0, int(rng.integers(3, 7))
    return env


def voice(env: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Harmonic voice (f0 ~150 Hz, vibrato, two formant bumps) under ``env`` (audio rate), faint noise."""
    n = len(env)
    t = np.arange(n) / SR
    f0 = 150 * (1 + 0.03 * np.sin(2 * np.pi * 5.3 * t)) * (1 + 0.05 * np.sin(2 * np.pi * 0.7 * t))
    phase = 2 * np.pi * np.cumsum(f0) / SR
    sig = np.zeros(n)
    for k in range(1, 24):
        fk = 150.0 * k
        gain = 1 / k + 0.6 * np.exp(-(((fk - 700) / 250) ** 2)) + 0.3 * np.exp(-(((fk - 1800) / 400) ** 2))
        sig += gain * np.sin(k * phase)
    sig /= np.sqrt(np.mean(sig**2)) + 1e-9
    return (0.25 * sig * env + 0.002 * rng.standard_normal(n)).astype(np.float32)


def _mouth_frame(photo: np.ndarray, opening: float, grid: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """The photo crop with the lower lip/jaw pulled down by ``opening`` px and the gap filled dark."""
    ys, xs = grid
    dx = np.abs(xs - MOUTH_CX)
    half = LIP_HALF_W + (JAW_HALF_W - LIP_HALF_W) * np.clip((ys - LIP_Y) / (CHIN_Y - LIP_Y), 0, 1)
    flat = FLAT_FRAC * half
    wx = 0.5 + 0.5 * np.cos(np.pi * np.clip((dx - flat) / (half - flat), 0, 1))
    wy = np.clip((NECK_Y - ys) / (NECK_Y - CHIN_Y), 0, 1) * (ys >= LIP_Y)
    shift = opening * wx * wy
    src_y = ys - shift
    gap = np.clip(LIP_Y - src_y, 0, 1) * (ys >= LIP_Y)  # 1 inside the opening, soft 1 px edge
    src_y = np.maximum(src_y, LIP_Y)  # the gap samples the lower lip's top edge, then is painted over
    y0, x0 = int(ys[0, 0]), int(xs[0, 0])
    out = np.empty(ys.shape + (3,))
    for c in range(3):
        out[..., c] = ndimage.map_coordinates(photo[..., c].astype(np.float64), [src_y - y0, xs - x0],
                                              order=1, mode="nearest")
    # darker towards the middle of the opening: a mouth interior, not a flat hole
    depth = 1 - 0.35 * np.clip(gap * wx, 0, 1)
    out = out * (1 - gap[..., None]) + INNER * depth[..., None] * gap[..., None]
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def render_face_frames(openings: np.ndarray) -> list[np.ndarray]:
    """One 216x384 RGB frame per opening (px), only the mouth region recomputed."""
    from skimage import data

    photo = data.astronaut()
    ry0, ry1 = int(LIP_Y) - 2, int(NECK_Y) + 2
    rx0, rx1 = int(MOUTH_CX - JAW_HALF_W) - 2, int(MOUTH_CX + JAW_HALF_W) + 3
    region = photo[ry0:ry1, rx0:rx1]
    grid = np.mgrid[ry0:ry1, rx0:rx1].astype(np.float64)
    base = photo[CROP[0]: CROP[1], CROP[2]: CROP[3]]
    cache: dict[int, np.ndarray] = {}
    frames = []
    for o in openings:
        key = int(round(o * 4))  # quarter-pixel steps: smooth enough, and patches are reused
        if key not in cache:
            patch = _mouth_frame(region, key / 4, (grid[0], grid[1]))
            img = base.copy()
            img[ry0 - CROP[0]: ry1 - CROP[0], rx0 - CROP[2]: rx1 - CROP[2]] = patch
            cache[key] = img
        frames.append(cache[key])
    return frames


def make_talking_face(path: str | Path, *, lag_frames: int = 0, seconds: float = 6.0, fps: int = 25,
                      seed: int = 0) -> Path:
    """Write a talking-face mp4 whose audio lags the mouth by ``lag_frames`` (negative: audio early)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    pad = abs(lag_frames) / fps + 0.5  # envelope beyond both ends, so a shifted soundtrack is never cut
    env = syllable_envelope(seconds + 2 * pad, SR, rng, lead_s=pad + 0.3)
    lead = int(round(pad * SR))
    n_frames, n_audio = int(round(seconds * fps)), int(round(seconds * SR))
    # the mouth at frame i shows the envelope around t = i / fps (mean over one frame period)
    hop = SR / fps
    centres = lead + (np.arange(n_frames) * hop).astype(int)
    k = np.arange(-int(hop // 2), int(hop // 2))
    openings = env[centres[:, None] + k[None, :]].mean(axis=1) * MAX_OPEN
    shift = int(round(lag_frames * hop))  # audio sample s plays the envelope of time s - shift
    audio = voice(env[lead - shift: lead - shift + n_audio], rng)
    frames = render_face_frames(openings)
    encode_mp4(Path(path), list(frames), audio[:n_audio], fps=fps, sample_rate=SR, crf=18)
    return path
