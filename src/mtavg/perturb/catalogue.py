"""The perturbations, what they do, and the magnitudes a dataset builder draws for them.

Each entry names the function that applies it, the evaluation dimension it tests, and a sampler that
draws explicit parameters for an ``easy`` or a ``hard`` negative. Why these ranges:

- time_shift: hard 100-250 ms straddles the ITU-R BT.1359 thresholds (detectable from +45 ms audio early
  / -125 ms late, unacceptable beyond -90 / +185 ms); easy 400-1000 ms is off by whole words.
- speed_change: hard 4-8 % drifts 0.4-0.8 s over a 10 s clip (and, without pitch keeping, moves the
  pitch by 0.7-1.3 semitones); easy 25-50 % is audibly fast or slow from the first second.
- pitch_shift: hard 1-2 semitones is a different but plausible voice; easy 4-8 is a different person.
- noise: hard 15-25 dB SNR is a clear hiss under the content; easy -5..5 dB buries it.
- filter: hard is telephone-like band limiting (300 Hz-3.4 kHz family); easy is "through a wall"
  (low-pass below 800 Hz) or tinny (high-pass above 2 kHz).
- dropout: hard one 0.3-0.8 s gap (a lost word); easy 2-4 s of silence.
- freeze: hard 0.3-0.7 s, easy 2-4 s of a still picture while the sound goes on.
- stutter: hard drops 1 frame in 8-12 (judder); easy halves or thirds the motion rate.
- colour_cast: hard 8-15 % channel gain error (a white-balance slip); easy 30-50 %.
- blur: sigma as a share of the picture height, so a 720p and a 1080p clip blur alike: hard 0.15-0.3 %
  (1-2 px at 720p), easy 0.6-1.2 % (4-9 px at 720p).
- random_mismatch / semantic_mismatch: the soundtrack of another clip (any other; one of another
  category), from a random offset; no magnitude, so easy and hard draw alike.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from mtavg.perturb import audio as A
from mtavg.perturb import video as V

Level = Literal["easy", "hard"]
LEVELS: tuple[str, ...] = ("easy", "hard")

@dataclass(frozen=True)
class SourceFacts:
    """What a sampler may know about the clip it perturbs and the other clips it may borrow from."""

    clip_id: str
    duration_s: float
    height: int
    has_audio: bool
    category: str | None = None
    text: str | None = None
    #: (clip_id, path, category, text, duration_s) of every clip with audio (this one included), for mismatches
    others: tuple[tuple[str, str, str | None, str | None, float], ...] = ()


class NotApplicable(ValueError):
    """This perturbation cannot be made from this clip (no audio, no clip of another category, ...)."""


Sampler = Callable[[np.random.Generator, str, SourceFacts], dict[str, Any]]


@dataclass(frozen=True)
class PerturbationSpec:
    name: str
    target: Literal["audio", "video"]
    dimension: str  # the yes/no dimension it tests (mtavg.suites.yesno.DIMENSIONS)
    description: str
    sample: Sampler
    #: audio: fn(track, **params) -> track; video: VideoOp class taking **params
    apply: Callable[..., Any]
    needs_donor: bool = False
    param_names: tuple[str, ...] = field(default=())


def _between(rng: np.random.Generator, lo: float, hi: float, digits: int = 3) -> float:
    return round(float(rng.uniform(lo, hi)), digits)


def _signed(rng: np.random.Generator, lo: float, hi: float, digits: int = 3) -> float:
    return _between(rng, lo, hi, digits) * (1 if rng.random() < 0.5 else -1)


def _need_audio(src: SourceFacts) -> None:
    if not src.has_audio:
        raise NotApplicable(f"{src.clip_id}: no audio stream to perturb")


def _time_shift(rng, level, src):
    _need_audio(src)
    lo, hi = {"easy": (400, 1000), "hard": (100, 250)}[level]
    hi = min(hi, 1000 * src.duration_s / 2)
    if hi <= lo:
        raise NotApplicable(f"{src.clip_id}: too short ({src.duration_s:.2f} s) for a {level} time shift")
    return {"shift_ms": _signed(rng, lo, hi, 1)}


def _speed(rng, level, src):
    _need_audio(src)
    lo, hi = {"easy": (0.25, 0.5), "hard": (0.04, 0.08)}[level]
    change = _between(rng, lo, hi)
    factor = 1 + change if rng.random() < 0.5 else round(1 / (1 + change), 4)
    return {"factor": round(factor, 4), "keep_pitch": bool(rng.random() < 0.5)}


def _pitch(rng, level, src):
    _need_audio(src)
    lo, hi = {"easy": (4, 8), "hard": (1, 2)}[level]
    return {"semitones": _signed(rng, lo, hi, 2)}


def _noise(rng, level, src):
    _need_audio(src)
    lo, hi = {"easy": (-5, 5), "hard": (15, 25)}[level]
    return {"snr_db": _between(rng, lo, hi, 2), "color": str(rng.choice(["white", "pink", "brown"])),
            "seed": int(rng.integers(0, 2**31 - 1))}


def _filter(rng, level, src):
    _need_audio(src)
    kind = str(rng.choice(["lowpass", "highpass", "bandpass"]))
    if level == "easy":
        ranges = {"lowpass": {"high_hz": (300, 800)}, "highpass": {"low_hz": (2000, 4000)},
                  "bandpass": {"low_hz": (300, 500), "high_hz": (1000, 1500)}}
    else:
        ranges = {"lowpass": {"high_hz": (2500, 4000)}, "highpass": {"low_hz": (300, 600)},
                  "bandpass": {"low_hz": (200, 300), "high_hz": (3400, 4000)}}
    return {"kind": kind, **{k: round(float(rng.uniform(*r))) for k, r in ranges[kind].items()}}


def _dropout(rng, level, src):
    _need_audio(src)
    lo, hi = {"easy": (2.0, 4.0), "hard": (0.3, 0.8)}[level]
    length = min(_between(rng, lo, hi, 2), round(src.duration_s * 0.6, 2))
    start = _between(rng, 0.1 * src.duration_s, max(0.1 * src.duration_s, src.duration_s - length - 0.1), 2)
    return {"segments": [[start, round(start + length, 2)]]}


def _mute(rng, level, src):
    _need_audio(src)
    return {}


def _donor(rng, src, *, other_category: bool):
    _need_audio(src)
    pool = [o for o in src.others if o[0] != src.clip_id]
    if other_category:
        if src.category is not None:
            pool = [o for o in pool if o[2] is not None and o[2] != src.category]
        elif src.text is not None:
            pool = [o for o in pool if o[3] is not None and o[3] != src.text]
        else:
            raise NotApplicable(f"{src.clip_id}: no category or text label, so no semantic mismatch "
                                f"(give --labels or category folders)")
        if not pool:
            raise NotApplicable(f"{src.clip_id}: no other clip of a different category to borrow audio from")
    if not pool:
        raise NotApplicable(f"{src.clip_id}: no other clip to borrow audio from")
    donor_id, donor_path, category, _, duration = pool[int(rng.integers(len(pool)))]
    spare = max(0.0, duration - src.duration_s)
    return {"donor": donor_id, "donor_path": donor_path, "donor_category": category,
            "offset_s": _between(rng, 0.0, spare, 2) if spare > 0 else 0.0}


def _random_mismatch(rng, level, src):
    return _donor(rng, src, other_category=False)


def _semantic_mismatch(rng, level, src):
    return _donor(rng, src, other_category=True)


def _freeze(rng, level, src):
    lo, hi = {"easy": (2.0, 4.0), "hard": (0.3, 0.7)}[level]
    length = min(_between(rng, lo, hi, 2), round(src.duration_s * 0.5, 2))
    start = _between(rng, 0.1 * src.duration_s, max(0.1 * src.duration_s, src.duration_s - length - 0.2), 2)
    return {"start_s": start, "duration_s": length}


def _stutter(rng, level, src):
    if level == "easy":
        period, hold = [(2, 1), (3, 2), (3, 1)][int(rng.integers(3))]
    else:
        period, hold = int(rng.integers(8, 13)), 1
    return {"period": period, "hold": hold}


def _colour(rng, level, src):
    lo, hi = {"easy": (0.3, 0.5), "hard": (0.08, 0.15)}[level]
    gains = [1.0, 1.0, 1.0]
    up, down = rng.choice(3, size=2, replace=False)
    gains[int(up)] = round(1 + _between(rng, lo, hi), 3)
    gains[int(down)] = round(1 - _between(rng, lo, hi) / 2, 3)
    return {"gains": gains}


def _blur(rng, level, src):
    lo, hi = {"easy": (0.006, 0.012), "hard": (0.0015, 0.003)}[level]
    return {"sigma_px": round(max(0.5, _between(rng, lo, hi, 5) * src.height), 2)}


def _apply_donor(track, *, donor_track, offset_s, **_recorded):
    return A.replace_audio(track, donor=donor_track, offset_s=offset_s)


_AV, _VQ = "av_consistency", "visual_quality"
CATALOGUE: dict[str, PerturbationSpec] = {s.name: s for s in (
    PerturbationSpec("time_shift", "audio", _AV, "soundtrack delayed (+) or advanced (-) by shift_ms",
                     _time_shift, A.time_shift),
    PerturbationSpec("speed_change", "audio", _AV, "soundtrack played factor x as fast, pitch kept or not",
                     _speed, A.speed_change),
    PerturbationSpec("pitch_shift", "audio", _AV, "every pitch moved by semitones, timing kept",
                     _pitch, A.pitch_shift),
    PerturbationSpec("noise", "audio", _AV, "white/pink/brown noise added at snr_db", _noise, A.add_noise),
    PerturbationSpec("filter", "audio", _AV, "Butterworth low/high/band-pass, zero phase", _filter,
                     A.band_filter),
    PerturbationSpec("dropout", "audio", _AV, "soundtrack silenced in segments", _dropout, A.dropout),
    PerturbationSpec("mute", "audio", _AV, "soundtrack silent throughout", _mute, lambda t: A.mute(t)),
    PerturbationSpec("random_mismatch", "audio", _AV, "soundtrack of another clip", _random_mismatch,
                     _apply_donor, needs_donor=True),
    PerturbationSpec("semantic_mismatch", "audio", _AV, "soundtrack of a clip of another category",
                     _semantic_mismatch, _apply_donor, needs_donor=True),
    PerturbationSpec("freeze", "video", _VQ, "picture frozen for duration_s from start_s", _freeze, V.Freeze),
    PerturbationSpec("stutter", "video", _VQ, "frame drop: last hold of every period frames repeated",
                     _stutter, V.Stutter),
    PerturbationSpec("colour_cast", "video", _VQ, "R, G, B scaled by gains", _colour, V.ColourCast),
    PerturbationSpec("blur", "video", _VQ, "Gaussian blur of sigma_px", _blur, V.Blur),
)}


def get_spec(name: str) -> PerturbationSpec:
    if name not in CATALOGUE:
        raise KeyError(f"unknown perturbation {name!r}; known: {', '.join(CATALOGUE)}")
    return CATALOGUE[name]
