"""Synthetic two-speaker clips for the demo benchmark: cartoon picture + speech-like audio, real mp4.

A :class:`ClipSpec` says what is on screen and heard, including the failures injected on purpose;
:func:`render_clip` writes it as H.264/AAC with PyAV — numpy only, deterministic from ``spec.seed``.
Drawing is a pure function of world coordinates, so a shot's base frame and its mouth/eye patches are
rendered once and each video frame is a copy plus a few small pastes (a whole bench takes seconds).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np

W, H, FPS, SR = 256, 192, 15, 16000
SPEAKERS: tuple[str, ...] = ("A", "B")
MOUTH_LEVELS = 8  # mouth opening is quantised so every opening is a precomputed patch
Rect = tuple[int, int, int, int]  # (y0, y1, x0, x1) in pixels, numpy slice order

# World geometry: a wide two-shot at scale 1 maps world coordinates 1:1 onto the 256x192 frame.
HEAD = {"A": (80.0, 92.0), "B": (176.0, 92.0)}  # head centres (x, y)
HEAD_RX, HEAD_RY, MOUTH_DY, MOUTH_HW, MOUTH_HH = 22.0, 28.0, 13.0, 7.0, 4.5
TABLE_Y = 158.0
# World boxes (x0, x1, y0, y1) around each mouth and pair of eyes: the regions that animate.
MOUTH_BOX = {sp: (x - 10, x + 10, y + MOUTH_DY - 8, y + MOUTH_DY + 8) for sp, (x, y) in HEAD.items()}
EYE_BOX = {sp: (x - 14, x + 14, y - 8.5, y + 0.5) for sp, (x, y) in HEAD.items()}

PALETTES: dict[str, dict[str, tuple[int, int, int]]] = {
    "warm": {"top": (222, 188, 148), "bot": (186, 136, 98), "floor": (112, 80, 58), "table": (138, 92, 60)},
    "cool": {"top": (160, 178, 198), "bot": (104, 124, 152), "floor": (72, 76, 90), "table": (96, 100, 112)},
    "green": {"top": (176, 200, 160), "bot": (118, 150, 108), "floor": (84, 92, 66), "table": (120, 98, 70)},
    "dusk": {"top": (120, 70, 128), "bot": (222, 120, 70), "floor": (60, 40, 60), "table": (70, 50, 80)},
}


@dataclass(frozen=True)
class Appearance:
    skin: tuple[int, int, int]
    hair: tuple[int, int, int]
    shirt: tuple[int, int, int]


@dataclass
class Turn:
    speaker: str
    start_s: float
    end_s: float
    text: str = ""


@dataclass
class Shot:
    start_s: float
    end_s: float
    scale: float = 1.0  # zoom; 1.0 is the wide two-shot
    cx: float = W / 2  # world point at the frame centre
    cy: float = H / 2
    palette: str = "warm"
    looks: dict[str, Appearance] | None = None  # per-shot override (continuity breaks)


@dataclass
class Injection:
    failure_mode: str
    start_s: float
    end_s: float
    evidence: str


@dataclass
class ClipSpec:
    video_id: str
    script_id: str
    generator: str
    setting: str
    duration_s: float
    seed: int
    turns: list[Turn]
    shots: list[Shot]
    looks: dict[str, Appearance]
    injections: list[Injection] = field(default_factory=list)
    mute_mouths: list[tuple[float, float]] = field(default_factory=list)  # speech plays, lips stay shut
    audio_offset_s: float = 0.0  # > 0: the soundtrack lags the picture
    ambient: bool = True  # room tone; False leaves digital silence between lines
    music: list[tuple[float, float]] = field(default_factory=list)  # windows of overpowering music
    palette_switch: tuple[float, str] | None = None  # (t, palette): wall repaints inside one shot
    grade_switch: tuple[float, float] | None = None  # (t, ramp_s): colour grade turns cold and dark

    @property
    def n_frames(self) -> int:
        return int(round(self.duration_s * FPS))

    def shot_index(self, t: float) -> int:
        return next((i for i, s in enumerate(self.shots) if s.start_s <= t < s.end_s), len(self.shots) - 1)

    def palette_at(self, t: float) -> str:
        if self.palette_switch and t >= self.palette_switch[0]:
            return self.palette_switch[1]
        return self.shots[self.shot_index(t)].palette

    def mouth_rect(self, speaker: str, t: float) -> Rect | None:
        """Pixel rectangle holding ``speaker``'s mouth at time ``t`` (None when off screen)."""
        return _screen_rect(self.shots[self.shot_index(t)], *MOUTH_BOX[speaker])

    def to_script(self) -> dict[str, Any]:
        """JSON-able description stored as ``videos.jsonl`` ``script`` (what a reader may check)."""
        def tidy(d: dict[str, Any]) -> dict[str, Any]:
            return {k: round(v, 3) if isinstance(v, float) else v for k, v in d.items() if k != "looks"}

        shots = [{**tidy(asdict(s)),
                  "mouth_rects": {sp: _screen_rect(s, *MOUTH_BOX[sp]) for sp in SPEAKERS},
                  "looks_changed": sorted(s.looks or {})} for s in self.shots]
        return {
            "script_id": self.script_id,
            "lines": [asdict(t) for t in self.turns],
            "shots": shots,
            "injected": [asdict(i) for i in self.injections],
            "audio_offset_s": self.audio_offset_s,
        }


def _screen_rect(shot: Shot, x0: float, x1: float, y0: float, y1: float) -> Rect | None:
    sx0, sx1 = ((np.array([x0, x1]) - shot.cx) * shot.scale + W / 2).tolist()
    sy0, sy1 = ((np.array([y0, y1]) - shot.cy) * shot.scale + H / 2).tolist()
    r = (max(0, int(np.floor(sy0))), min(H, int(np.ceil(sy1))),
         max(0, int(np.floor(sx0))), min(W, int(np.ceil(sx1))))
    return r if r[1] > r[0] and r[3] > r[2] else None


# ---------------------------------------------------------------- picture
def _ell(x: np.ndarray, y: np.ndarray, cx: float, cy: float, rx: float, ry: float) -> np.ndarray:
    return ((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2 <= 1.0


def _render(wx: np.ndarray, wy: np.ndarray, palette: str, looks: dict[str, Appearance],
            mouth: dict[str, float], eyes_open: dict[str, bool]) -> np.ndarray:
    """Colour of every world point (wx, wy): room, two seated characters, table in front."""
    p = {k: np.array(v, np.float32) for k, v in PALETTES[palette].items()}
    g = np.clip(wy / 150.0, 0, 1)[..., None]
    img = p["top"] * (1 - g) + p["bot"] * g
    # Wallpaper stripes + blocky value noise: texture so the codec has something real to encode.
    noise = np.modf(np.sin(np.floor(wx / 2) * 12.9898 + np.floor(wy / 2) * 78.233) * 43758.5453)[0]
    img += (5 * np.sin(wx * 0.35) + 8 * noise)[..., None]
    win = (wx > 108) & (wx < 148) & (wy > 18) & (wy < 62)
    img[win] = 238.0
    inner = (wx > 111) & (wx < 145) & (wy > 21) & (wy < 59)
    img[inner] = (np.array([150, 190, 235], np.float32) + (wy[inner, None] - 21) * 1.5)
    img[wy >= 146] = p["floor"] * 1.25
    floor = wy >= 150
    img[floor] = p["floor"] - 18 * ((wx[floor] % 24) < 1.5)[..., None]
    for sp in SPEAKERS:
        hx, hy = HEAD[sp]
        lk = looks[sp]
        img[_ell(wx, wy, hx, hy + 64, 38, 36)] = lk.shirt
        img[(np.abs(wx - hx) < 7) & (wy > hy + 18) & (wy < hy + 34)] = np.array(lk.skin) * 0.9
        img[_ell(wx, wy, hx, hy, HEAD_RX, HEAD_RY)] = lk.skin
        img[_ell(wx, wy, hx, hy - 4, HEAD_RX + 1.5, HEAD_RY + 1.0) & (wy < hy - 12)] = lk.hair
        look = 1.5 if sp == "A" else -1.5  # pupils turn towards the other speaker
        for ex in (hx - 8, hx + 8):
            img[(np.abs(wx - ex) < 4.5) & (np.abs(wy - (hy - 11)) < 0.9)] = lk.hair  # brows
            if eyes_open[sp]:
                img[_ell(wx, wy, ex, hy - 4, 4.2, 3.2)] = (250, 250, 250)
                img[_ell(wx, wy, ex + look, hy - 4, 1.9, 1.9)] = (30, 30, 40)
            else:
                img[(np.abs(wx - ex) < 4.2) & (np.abs(wy - (hy - 4)) < 0.7)] = (60, 40, 40)
        img[_ell(wx, wy, hx + look, hy + 4, 2.0, 3.0)] = np.array(lk.skin) * 0.85
        my, open_ = hy + MOUTH_DY, mouth[sp]
        hh = 0.7 + open_ * MOUTH_HH
        img[_ell(wx, wy, hx, my, MOUTH_HW + 1.2, hh + 1.2)] = (176, 72, 72)  # lips
        img[_ell(wx, wy, hx, my, MOUTH_HW, hh)] = (88, 24, 34)  # open mouth
    img[(wy >= TABLE_Y) & (wx > 28) & (wx < 228)] = p["table"]
    img[(wy >= TABLE_Y) & (wy < TABLE_Y + 3) & (wx > 28) & (wx < 228)] = p["table"] * 1.3
    return np.clip(img, 0, 255).astype(np.uint8)


def _world_grid(shot: Shot, rect: Rect | None = None) -> tuple[np.ndarray, np.ndarray]:
    y0, y1, x0, x1 = rect or (0, H, 0, W)
    ys, xs = np.mgrid[y0:y1, x0:x1].astype(np.float32) + 0.5
    return (xs - W / 2) / shot.scale + shot.cx, (ys - H / 2) / shot.scale + shot.cy


def _shot_assets(spec: ClipSpec, si: int, palette: str) -> tuple[np.ndarray, dict[str, Any]]:
    """Base frame + per speaker (mouth rect, one patch per opening level, eye rect, closed-eye patch)."""
    shot = spec.shots[si]
    looks = {**spec.looks, **(shot.looks or {})}
    closed, opened = dict.fromkeys(SPEAKERS, 0.0), dict.fromkeys(SPEAKERS, True)

    def patch(rect: Rect | None, mouth: dict[str, float], eyes: dict[str, bool]) -> np.ndarray | None:
        return _render(*_world_grid(shot, rect), palette, looks, mouth, eyes) if rect else None

    patches: dict[str, Any] = {}
    for sp in SPEAKERS:
        mr, er = _screen_rect(shot, *MOUTH_BOX[sp]), _screen_rect(shot, *EYE_BOX[sp])
        mouths = [patch(mr, {**closed, sp: lv / (MOUTH_LEVELS - 1)}, opened) for lv in range(MOUTH_LEVELS)]
        patches[sp] = (mr, mouths, er, patch(er, closed, {**opened, sp: False}))
    return _render(*_world_grid(shot), palette, looks, closed, opened), patches


def mouth_levels(spec: ClipSpec, envs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Per-frame mouth opening level (0 = shut) from each speaker's speech envelope (picture time)."""
    hop = SR // FPS
    out = {}
    for sp in SPEAKERS:
        e = envs[sp][: spec.n_frames * hop].reshape(spec.n_frames, hop).mean(axis=1)
        lv = np.rint(np.clip(e * 1.3, 0, 1) * (MOUTH_LEVELS - 1)).astype(int)
        for a, b in spec.mute_mouths:  # the injected voice-with-no-lips window
            lv[int(np.ceil(a * FPS)): int(np.ceil(b * FPS))] = 0
        out[sp] = lv
    return out


def _blinks(spec: ClipSpec) -> dict[str, np.ndarray]:
    """Two-frame blinks every 2-4.5 s per speaker: some life that never touches the mouth region."""
    rng, out = np.random.default_rng([spec.seed, 7]), {}
    for sp in SPEAKERS:
        starts = ((np.cumsum(rng.uniform(2.2, 4.5, 6)) - rng.uniform(1.0, 1.8)) * FPS).astype(int)
        d = np.arange(spec.n_frames)[:, None] - starts[None, :]
        out[sp] = ((d >= 0) & (d < 2)).any(axis=1)
    return out


def render_frames(spec: ClipSpec, envs: dict[str, np.ndarray]) -> list[np.ndarray]:
    levels, blinks = mouth_levels(spec, envs), _blinks(spec)
    cache: dict[tuple[int, str], tuple[np.ndarray, dict[str, Any]]] = {}  # assets per (shot, palette)
    frames = []
    for i in range(spec.n_frames):
        t = i / FPS
        key = (spec.shot_index(t), spec.palette_at(t))
        if key not in cache:
            cache[key] = _shot_assets(spec, *key)
        base, patches = cache[key]
        img = base.copy()
        for sp in SPEAKERS:
            mr, mouths, er, eye = patches[sp]
            if mr:
                img[mr[0]: mr[1], mr[2]: mr[3]] = mouths[levels[sp][i]]
            if er and blinks[sp][i]:
                img[er[0]: er[1], er[2]: er[3]] = eye
        if spec.grade_switch and t >= spec.grade_switch[0]:
            r = min(1.0, (t - spec.grade_switch[0]) / max(spec.grade_switch[1], 1e-6))
            gain = 1 + r * (np.array([0.5, 0.6, 0.95]) - 1)
            img = np.clip(img * gain + r * np.array([0, 6, 34]), 0, 255).astype(np.uint8)
        frames.append(img)
    return frames


# ---------------------------------------------------------------- sound
VOWELS = np.array([[730, 1090, 2440], [270, 2290, 3010], [300, 870, 2240], [530, 1840, 2480],
                   [570, 840, 2410], [660, 1720, 2410]], np.float32)
# A: low voice (~110 Hz), B: higher voice (~210 Hz) with shorter vocal tract and wider vibrato.
VOICES = {"A": {"f0": 112.0, "fmt": 1.0, "vib": (5.2, 0.025)},
          "B": {"f0": 208.0, "fmt": 1.17, "vib": (5.8, 0.035)}}
SPEECH_RMS, ROOM_RMS, MUSIC_RMS = 0.1, 0.006, 0.26


def _voiced(n: int, syl: list[tuple[int, int, int]], voice: dict[str, Any],
            rng: np.random.Generator) -> np.ndarray:
    """Harmonic source at the speaker's f0 (vibrato, declination), shaped by per-syllable formants."""
    t = np.arange(n, dtype=np.float32) / SR
    rate, depth = voice["vib"]
    f0 = voice["f0"] * (1.06 - 0.1 * t / max(t[-1], 1e-3)) * (1 + depth * np.sin(2 * np.pi * rate * t))
    centres = [(a + b) / 2 for a, b, _ in syl]
    fm = np.stack([np.interp(np.arange(n), centres, VOWELS[[v for *_, v in syl], j]) for j in range(3)])
    fm *= voice["fmt"] * rng.uniform(0.96, 1.04)
    phase = 2 * np.pi * np.cumsum(f0) / SR
    k = np.arange(1, int(3800 // f0.min()) + 1, dtype=np.float32)[:, None]
    fk = k * f0[None, :]
    formants = ((1, 90), (0.6, 120), (0.3, 180))  # (gain, bandwidth Hz) of F1..F3 resonances
    amp = sum(g / (1 + ((fk - fm[j][None, :]) / bw) ** 2) for j, (g, bw) in enumerate(formants))
    amp = (amp + 0.02) * (fk < 3900) / np.sqrt(k)
    sig = (amp * np.sin(k * phase[None, :])).sum(axis=0)
    return sig / (np.sqrt(np.mean(sig**2)) + 1e-9)


def speech_track(spec: ClipSpec, speaker: str, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(signal, 0..1 syllable envelope) of one speaker's lines: 3-5 Hz syllables with short pauses."""
    rng = np.random.default_rng([spec.seed, 11, SPEAKERS.index(speaker)])
    sig, env = np.zeros(n, np.float32), np.zeros(n, np.float32)
    for turn in (t for t in spec.turns if t.speaker == speaker):
        i0, i1 = int(turn.start_s * SR), min(n, int(turn.end_s * SR))
        syl, pos, count = [], i0, 0
        while pos + int(0.12 * SR) < i1:
            d = min(int(rng.uniform(0.17, 0.28) * SR), i1 - pos)
            syl.append((pos - i0, pos - i0 + d, int(rng.integers(len(VOWELS)))))
            pos, count = pos + d, count + 1
            if count % int(rng.integers(3, 6)) == 0:
                pos += int(rng.uniform(0.1, 0.2) * SR)  # breath pause inside the line
        if not syl:
            continue
        seg_env = np.zeros(i1 - i0, np.float32)
        for a, b, _ in syl:
            u = np.linspace(0, 1, b - a, endpoint=False) + 0.5 / (b - a)
            seg_env[a:b] = np.sin(np.pi * u) ** 0.6 * rng.uniform(0.75, 1.0)
        src = _voiced(i1 - i0, syl, VOICES[speaker], rng)
        burst = np.zeros(i1 - i0, np.float32)
        for a, _, _ in syl:  # consonant-like noise at syllable onsets
            m = min(int(0.03 * SR), i1 - i0 - a)
            decay = np.exp(-np.arange(m) / (0.008 * SR)) * 0.35
            burst[a: a + m] = np.diff(rng.standard_normal(m + 1)) * decay
        sig[i0:i1] = (src * seg_env + burst) * SPEECH_RMS * 1.6
        env[i0:i1] = seg_env
    return sig, env


def _room_tone(n: int, rng: np.random.Generator) -> np.ndarray:
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1 / SR)
    pink = np.fft.irfft(spec / np.sqrt(np.maximum(f, 20.0)), n)
    t = np.arange(n) / SR
    tone = pink / np.sqrt(np.mean(pink**2)) * ROOM_RMS * (1 + 0.15 * np.sin(2 * np.pi * 0.21 * t))
    return tone + 0.0025 * np.sin(2 * np.pi * 50 * t) + 0.0012 * np.sin(2 * np.pi * 100 * t)


def _music(n: int, windows: list[tuple[float, float]], rng: np.random.Generator) -> np.ndarray:
    """Loud chords + beat inside the given windows (the 'overpowering background' injection)."""
    t = np.arange(n) / SR
    roots = np.array([220.0, 174.6, 196.0, 261.6])[(t // 1.0).astype(int) % 4]
    chord = sum(np.sin(2 * np.pi * np.cumsum(roots * r) / SR * h) / h
                for r in (1, 1.26, 1.5) for h in (1, 2, 3))
    beat = np.sin(2 * np.pi * 60 * t) * np.exp(-((t % 0.5) / 0.06))
    mus = chord + 2 * beat + 0.3 * rng.standard_normal(n)
    gate = np.zeros(n)
    for a, b in windows:
        gate = np.maximum(gate, np.clip(np.minimum(t - a, b - t) / 0.25, 0, 1))
    mus *= gate
    active = gate > 0.99
    return mus / (np.sqrt(np.mean(mus[active] ** 2)) + 1e-9) * MUSIC_RMS if active.any() else mus


def synth_audio(spec: ClipSpec) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """(mono mix in [-1, 1], per-speaker envelopes in picture time — what the mouths follow)."""
    n = int(round(spec.duration_s * SR))
    tracks = {sp: speech_track(spec, sp, n) for sp in SPEAKERS}
    speech = sum(s for s, _ in tracks.values())
    shift = int(round(spec.audio_offset_s * SR))
    if shift > 0:  # soundtrack lags the picture; the envelopes (mouths) stay put
        speech = np.concatenate([np.zeros(shift, np.float32), speech[:-shift]])
    rng = np.random.default_rng([spec.seed, 23])
    mix = speech + (_room_tone(n, rng) if spec.ambient else 0)
    mix = mix + (_music(n, spec.music, rng) if spec.music else 0)
    return np.clip(mix, -0.98, 0.98).astype(np.float32), {sp: e for sp, (_, e) in tracks.items()}


# ---------------------------------------------------------------- encoding
def encode_mp4(path: Path, frames: list[np.ndarray], audio: np.ndarray, *, fps: int = FPS,
               sample_rate: int = SR, crf: int = 20) -> None:
    """H.264 yuv420p + AAC mono, explicit pts so timing is exact (also used by mtavg.testing)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    height, width = frames[0].shape[:2]
    with av.open(str(path), "w") as out:
        vs = out.add_stream("libx264", rate=fps)
        vs.width, vs.height, vs.pix_fmt = width, height, "yuv420p"
        vs.time_base = Fraction(1, fps)
        vs.options = {"preset": "veryfast", "crf": str(crf)}
        aus = out.add_stream("aac", rate=sample_rate)
        aus.layout = "mono"
        for i, img in enumerate(frames):
            f = av.VideoFrame.from_ndarray(img, format="rgb24")
            f.pts = i
            out.mux(vs.encode(f))
        out.mux(vs.encode())
        block = 1024  # AAC frame size; the encoder accepts a short last frame
        for s in range(0, len(audio), block):
            af = av.AudioFrame.from_ndarray(audio[None, s: s + block], format="fltp", layout="mono")
            af.sample_rate, af.pts = sample_rate, s
            out.mux(aus.encode(af))
        out.mux(aus.encode())


def render_clip(spec: ClipSpec, path: Path) -> None:
    audio, envs = synth_audio(spec)
    encode_mp4(path, render_frames(spec, envs), audio)
