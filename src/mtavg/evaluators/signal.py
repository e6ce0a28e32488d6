"""``signal`` — answers QA items offline from the signal metrics, for the failures they can see.

No model: each clip is decoded once, measured, and a detector per visible failure mode turns the
measurements into a score in [0, 1] and the time segments where it happens:

- speech_mode_confusion ← a speech segment (VAD) during which nothing in the picture moves;
- dialogue_turn_taking_failure ← two voices at once (multi-pitch overlap);
- missing_ambient_sound ← digital silence between lines (noise floor below -80 dBFS);
- overpowering_background_audio ← background within 6 dB of the speech;
- reaction_timing_failure ← a confident audio-video offset of 0.25 s or more;
- scene_consistency_drift / visual_mood_drift ← an abrupt colour change inside a shot (mood: the
  picture gets darker; scene: the colour changes at about the same lightness);
- shot_progression_issues ← jump cuts (near-identical framing across a cut);
- character_continuity_break ← a cut after which a few regions change colour while the rest holds.
The thresholds were set on the embedded demo's synthetic clips; on real footage treat the signal
evaluator as a transparent reference point, not a judge.
It answers only from these: an item whose options it cannot see, or where it detects nothing,
gets an explicit abstention (``{"answer": []}``: the parser counts it invalid). It never guesses.
"""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mtavg.evaluators import register
from mtavg.evaluators.base import Evaluator, Request, Response
from mtavg.taxonomy import load_taxonomy

THRESHOLD = 0.5
SEES = ("speech_mode_confusion", "dialogue_turn_taking_failure", "missing_ambient_sound",
        "overpowering_background_audio", "reaction_timing_failure", "scene_consistency_drift",
        "visual_mood_drift", "shot_progression_issues", "character_continuity_break")


@dataclass
class Detection:
    score: float
    segments: list[tuple[float, float]] = field(default_factory=list)
    why: str = ""


def _metric(clip: Any, name: str) -> dict[str, Any]:
    from mtavg.metrics import METRICS, load_builtin_metrics

    load_builtin_metrics()
    spec = METRICS.get(name)
    if spec is None or spec.available() is not True:
        return {}
    try:
        return spec.fn(clip)
    except Exception:  # noqa: BLE001 - a metric that cannot run leaves its detectors silent
        return {}


def _silent_speech(clip: Any, vad: dict[str, Any]) -> Detection:
    from mtavg.metrics.video import motion_envelope

    segments = [s for s in vad.get("segments") or [] if s[1] - s[0] >= 0.5]
    if clip.frames is None or len(segments) < 2:
        return Detection(0.0)
    times, motion = motion_envelope(clip)
    inside = [motion[(times >= a) & (times < b)] for a, b in segments]
    typical = float(np.median(np.concatenate(inside))) if inside else 0.0
    if typical <= 0:
        return Detection(0.0)
    # "Still": the segment's typical motion is ~nil and under a third of its frames move at all (a
    # shifted soundtrack still overlaps the moving mouth for much of a line; a voice without one does not).
    still = [(a, b) for (a, b), m in zip(segments, inside, strict=True)
             if m.size and np.median(m) < 0.05 * typical and np.mean(m > 0.3 * typical) < 0.3]
    moving = len(segments) - len(still)
    score = 1.0 if still and moving else 0.0  # speech with a moving mouth elsewhere, a still picture here
    return Detection(score, [(round(a, 2), round(b, 2)) for a, b in still], "speech while the picture is still")


def _continuity(clip: Any, shots: dict[str, Any]) -> Detection:
    """At a cut, a few regions change colour a lot while most of the frame stays alike (a costume or
    hair change in a continuing scene). A cut to a new framing changes most tiles (median ΔE > 10)."""
    from mtavg.metrics.video import tile_lab

    lab = tile_lab(clip)  # (T, rows, cols, 3) mean Lab per tile
    hits = []
    for cut in shots.get("cuts") or []:
        i = cut["frame"]
        if i < 1 or i >= len(lab):
            continue
        delta = np.linalg.norm(lab[i] - lab[i - 1], axis=-1).ravel()
        p95, med = np.percentile(delta, 95), np.median(delta)
        if p95 > 15 and med < 10 and p95 > 2.5 * med:
            hits.append((round(cut["time"] - 0.3, 2), round(cut["time"] + 0.3, 2)))
    return Detection(1.0 if hits else 0.0, hits, "a region changes colour across a cut that keeps the framing")


def detect(clip: Any) -> dict[str, Detection]:
    """Score every failure mode this evaluator can see, for one decoded clip."""
    out: dict[str, Detection] = {}
    vad = _metric(clip, "vad") if clip.audio is not None else {}
    if clip.audio is not None:
        ovl = _metric(clip, "overlap")
        if ovl.get("overlap_s", 0) >= 0.3:
            out["dialogue_turn_taking_failure"] = Detection(1.0, [tuple(s) for s in ovl["overlap_segments"]],
                                                            f"{ovl['overlap_s']} s of overlapping voices")
        bg = _metric(clip, "speech_background")
        floor, s2b = bg.get("noise_floor_dbfs"), bg.get("speech_to_background_db")
        if floor is not None and floor < -80:
            out["missing_ambient_sound"] = Detection(1.0, [(0.0, clip.duration_s)], f"noise floor {floor} dBFS")
        if s2b is not None and s2b < 6 and floor is not None and floor > -80:
            out["overpowering_background_audio"] = Detection(1.0, [], f"speech only {s2b} dB above background")
    if clip.frames is None:
        return out
    if vad:
        out["speech_mode_confusion"] = _silent_speech(clip, vad)
    if clip.audio is not None:
        from mtavg.metrics.av_offset import estimate_offset

        try:  # motion only: face-mesh mouths cost seconds per clip and cartoons have no faces to find
            off = estimate_offset(clip, use_mouth=False)
        except Exception:  # noqa: BLE001 - no estimate, no detection
            off = {}
        if off.get("confident") and abs(off.get("offset_s") or 0) >= 0.25:
            out["reaction_timing_failure"] = Detection(1.0, [(0.0, clip.duration_s)],
                                                       f"audio {off['offset_s']:+.2f} s against the picture")
    frames = _metric(clip, "frames")
    for jump in frames.get("color_jumps") or []:
        mode = "visual_mood_drift" if jump.get("d_lightness", 0) < -8 else "scene_consistency_drift"
        seg = (round(jump["start_s"] - 0.1, 2), round(jump["end_s"] + 0.1, 2))
        out.setdefault(mode, Detection(1.0, [], "abrupt colour change within a shot")).segments.append(seg)
    shots = _metric(clip, "shots")
    if shots.get("jump_cuts"):
        out["shot_progression_issues"] = Detection(1.0, [(t - 0.2, t + 0.2) for t in shots["jump_cuts"]],
                                                   f"{len(shots['jump_cuts'])} jump cut(s)")
    if shots.get("cuts"):
        out["character_continuity_break"] = _continuity(clip, shots)
    return out


def _slug_of(text: str) -> str | None:
    """The failure mode an option text or question names (the longest display name it contains)."""
    key = re.sub(r"[^a-z0-9]+", " ", text.lower())
    best = None
    for slug, mode in load_taxonomy().failure_modes.items():
        name = re.sub(r"[^a-z0-9]+", " ", mode.name.lower()).strip()
        if name and name in key and (best is None or len(name) > len(best[1])):
            best = (slug, name)
    return best[0] if best else None


class SignalEvaluator(Evaluator):
    name = "signal"
    fingerprint = "signal-v1"
    cacheable = False  # cheap to recompute and its detectors change with the metrics

    def __init__(self) -> None:
        self._cache: dict[str, dict[str, Detection]] = {}
        self._lock = asyncio.Lock()

    async def _detections(self, path: Path) -> dict[str, Detection]:
        key = str(path)
        async with self._lock:  # one clip decoded at a time: the work is CPU-bound
            if key not in self._cache:
                from mtavg.metrics.base import load_clip

                self._cache[key] = await asyncio.to_thread(lambda: detect(load_clip(path)))
        return self._cache[key]

    async def respond(self, request: Request) -> Response:
        found = [await self._detections(m.path) for m in request.media]
        frames = sum(1 for m in request.media if m.use_video)
        audio = any(m.use_audio and m.has_audio for m in request.media)
        answer, time, why = self._answer(request, found)
        body: dict[str, Any] = {"answer": answer, "rationale": why}
        if request.format == "temporal":
            body = {"primary_issue": answer[0] if answer else None, "time": time, "rationale": why}
        return Response(raw=json.dumps(body), audio_sent=audio, frames_sent=frames)

    def _answer(self, request: Request, found: list[dict[str, Detection]]) -> tuple[list[str], list[str], str]:
        if request.format == "pairwise" and len(found) == 2:
            target = _slug_of(request.question)
            if target not in SEES:
                return [], [], "abstain: the question's failure is not visible to signal detectors"
            scores = [f.get(target, Detection(0.0)).score for f in found]
            if scores[0] == scores[1]:
                return [], [], f"abstain: both clips score {scores[0]} for {target}"
            labels = list(request.options)
            pick = labels[int(scores[1] > scores[0])]
            return [pick], [], f"{target}: clip scores {scores}"
        if not found:
            return [], [], "abstain: no media (text-only modality)"
        det = found[0]
        hits = {label: det[s] for label, text in request.options.items()
                if (s := _slug_of(text)) in det and det[s].score >= THRESHOLD}
        if not hits:
            return [], [], "abstain: none of the options is detected in the signal"
        ranked = sorted(hits, key=lambda k: -hits[k].score)
        answer = sorted(hits) if request.format == "multi" else ranked[:1]
        time: list[str] = []
        if request.time_options and answer:
            segs = hits[answer[0]].segments
            time = [k for k, (a, b) in request.time_options.items() if any(s < b and e > a for s, e in segs)]
        return answer, time, "; ".join(hits[k].why for k in answer)


def factory(name: str, items: Any, options: dict[str, Any]) -> Evaluator:
    return SignalEvaluator()
register("signal", factory)
