"""Validate the signal metrics against known ground truth; writes benchmarks/results/validate_metrics.json.

One function per section (``SECTIONS``); ``main`` runs the named sections (default: all) and keeps the
other sections already in the JSON. Real clips come from $MTAVG_REAL_CLIPS (sections that need them
record why they skipped the real part when it is unset).

offset -- ``av_offset``. Real clips: the decoded audio is shifted by known amounts (zero padded) and the
estimate is compared with the clip's own unshifted estimate (true offsets of generated clips are unknown);
an end-to-end check remuxes a shifted mp4 with PyAV and decodes it again. Null pairs (picture of one real
clip, sound of another) measure how often "confident" is said by chance. Synthetic clips with known
offsets: one-frame flashes with clicks, a bouncing ball with impact thuds, the project's demo clips,
static frames with noise. Real-clip shifts use max_lag_s=1.5 so that a 1.0 s shift on top of the clip's own
offset stays inside the search range (the default, 1.0 s, would put it at the edge: "not confident").

pitch -- ``pitch`` on the case6_* clips ("a guitarist plucks A4 four times") against an independent reference
(onsets + harmonic series of each pluck's spectral peaks), and on Karplus-Strong plucks of known notes
(``_validate_pitch``). shots -- ``shots`` against hand-labelled boundaries (``SHOT_TRUTH`` in
``_validate_shots``, with how they were labelled) and synthetic edits. lips -- ``lips`` on the synthetic talking
face with injected lags of -5..+5 frames at 24/25/30 fps (``_validate_lips``).

Run: MTAVG_REAL_CLIPS=/path/to/clips python benchmarks/validate_metrics.py [offset pitch shots lips]
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import av
import numpy as np
from _results import save
from _validate_lips import print_lips, validate_lips
from _validate_pitch import print_pitch, validate_pitch
from _validate_shots import print_shots, validate_shots

from mtavg.metrics import av_offset as ao
from mtavg.metrics.base import ClipMedia, load_clip
from mtavg.testing.av_events import flash_click
from mtavg.testing.av_events import synthetic_clip as _clip

SR = 16000
SHIFTS = (-1.0, -0.8, -0.6, -0.4, -0.2, 0.2, 0.4, 0.6, 0.8, 1.0)
LAG_S = 1.5
FRAME_TOL_S = 2 / 24  # acceptance: 2 frames at 24 fps
# What the prompts show (clips/README.md), for reading the table -- never used by the estimator.
CONTENT = {"case1": "product advert: music, text, cuts", "case2": "heist trailer: whisper, engines, cuts",
           "case3": "sand on a plate, sine sweep", "case4": "stirred beaker, colour changes",
           "case6": "guitarist plucks A4 four times"}


# ---------------------------------------------------------------- helpers
def real_clips() -> list[Path]:
    root = os.environ.get("MTAVG_REAL_CLIPS")
    return sorted(Path(root).glob("*.mp4")) if root else []


def with_audio(clip: ClipMedia, audio: np.ndarray) -> ClipMedia:
    """Same picture (and its cached luma / face tracks), other sound."""
    keep = {k: v for k, v in clip.extras.items() if k in ("mouth_envelopes", "motion_envelope")}
    out = dataclasses.replace(clip, audio=audio.astype(np.float32), extras=keep)
    out.__dict__["gray"] = clip.gray  # cached_property: share, do not recompute
    return out


def shift_audio(audio: np.ndarray, shift_s: float, sr: int = SR) -> np.ndarray:
    """Delay (+) or advance (-) by shift_s, zero padded, same length."""
    k = int(round(shift_s * sr))
    pad = np.zeros(min(abs(k), len(audio)), np.float32)
    return np.concatenate([pad, audio[:len(audio) - len(pad)]]) if k >= 0 else np.concatenate([audio[len(pad):], pad])


def remux_shifted(src: Path, dst: Path, shift_s: float) -> Path:
    """Stream-copy src with the audio packets retimed by +shift_s (a negative shift delays the video)."""
    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        vi, ai = inp.streams.video[0], inp.streams.audio[0]
        vo, a_o = out.add_stream_from_template(vi), out.add_stream_from_template(ai)
        delay = {vi: round(max(0.0, -shift_s) / vi.time_base), ai: round(max(0.0, shift_s) / ai.time_base)}
        for pkt in inp.demux(vi, ai):
            if pkt.dts is None:
                continue
            d = delay[pkt.stream]
            pkt.stream = vo if pkt.stream is vi else a_o
            pkt.pts, pkt.dts = pkt.pts + d, pkt.dts + d
            out.mux(pkt)
    return dst


def bouncing_ball(shift: float, seed: int, fps: float = 30.0, dur: float = 8.0) -> ClipMedia:
    """A ball falling under gravity, kicked back up at random speeds; a 180 Hz thud at each impact."""
    rng = np.random.default_rng(seed)
    n, h, w = int(dur * fps), 90, 120
    ys, impacts, y, v = [], [], 0.0, 0.0
    for step in range(int(dur * 1000)):  # 1 ms physics
        v += 9.8e-3
        y += v * 1e-3
        if y >= 1.0:
            y, v = 1.0, -rng.uniform(1.5, 4.4)
            impacts.append(step / 1000)
        ys.append(y)
    yy, xx = np.mgrid[0:h, 0:w]
    frames = np.full((n, h, w, 3), 60, np.uint8)
    for k in range(n):
        cy, cx = 8 + ys[min(len(ys) - 1, int(k / fps * 1000))] * (h - 20), w / 2 + 20 * np.sin(k / fps)
        frames[k][(yy - cy) ** 2 + (xx - cx) ** 2 < 64] = 220
    audio = 0.005 * rng.standard_normal(int(dur * SR))
    tt = np.arange(int(0.15 * SR)) / SR
    thud = 0.5 * np.sin(2 * np.pi * 180 * tt) * np.exp(-tt / 0.03)
    for t in impacts:
        i = int(round((t + shift) * SR))
        if 0 <= i < len(audio) - len(thud):
            audio[i:i + len(thud)] += thud
    return _clip(frames, fps, audio)


def _summary(errors: list[float]) -> dict[str, Any]:
    e = np.abs(errors)
    return {"n": len(e), "median_abs_error_ms": round(float(np.median(e)) * 1000, 1) if len(e) else None,
            "max_abs_error_ms": round(float(np.max(e)) * 1000, 1) if len(e) else None,
            "within_2_frames": int(np.sum(e <= FRAME_TOL_S + 1e-9))}


# ---------------------------------------------------------------- offset
def _offset_real(paths: list[Path]) -> dict[str, Any]:
    clips, per_clip, conf_err, all_err, default_err = {}, {}, [], [], []
    seconds: dict[str, list[float]] = {"decode": [], "mouths": [], "estimate": []}
    for p in paths:
        t = time.perf_counter()
        clip = clips[p.stem] = load_clip(p)
        seconds["decode"].append(time.perf_counter() - t)
        t = time.perf_counter()
        ao._mouth_envelopes(clip)  # face tracking (mediapipe), cached in extras; reused by every shift
        seconds["mouths"].append(time.perf_counter() - t)
        t = time.perf_counter()
        base = ao.estimate_offset(clip, max_lag_s=LAG_S)
        seconds["estimate"].append(time.perf_counter() - t)
        pairs = []
        for s in SHIFTS:
            r = ao.estimate_offset(with_audio(clip, shift_audio(clip.audio, s)), max_lag_s=LAG_S)
            err = None if r["offset_s"] is None or base["offset_s"] is None else r["offset_s"] - base["offset_s"] - s
            pairs.append({"shift_s": s, "offset_s": r["offset_s"], "error_s": None if err is None else round(err, 4),
                          "confident": r["confident"], "confidence": r["confidence"], "source": r["source"]})
            if err is not None:
                all_err.append(err)
                if r["confident"] and base["confident"]:
                    conf_err.append(err)
        base_d = ao.estimate_offset(clip)  # the metric's default +-1.0 s, for shifts that fit inside it
        for s in (x for x in SHIFTS if abs(x) <= 0.8):
            r = ao.estimate_offset(with_audio(clip, shift_audio(clip.audio, s)))
            if r["confident"] and base_d["confident"]:
                default_err.append(r["offset_s"] - base_d["offset_s"] - s)
        good = [q["error_s"] for q in pairs if q["confident"] and base["confident"]]
        per_clip[p.stem] = {
            "content": CONTENT.get(p.stem.split("_")[0], ""), "base": {k: base[k] for k in (
                "offset_s", "confidence", "confident", "reason", "source", "n_cuts", "n_faces")},
            "confident_pairs": len(good), **_summary(good), "pairs": pairs}
    n_pairs = len(paths) * len(SHIFTS)
    return {
        "max_lag_s": LAG_S, "shifts_s": list(SHIFTS), "clips": per_clip,
        "overall_confident": {**_summary(conf_err), "of_pairs": n_pairs,
                              "clips_confident": sum(c["base"]["confident"] for c in per_clip.values())},
        "overall_all_pairs": _summary(all_err),
        "default_lag_1s_confident": {**_summary(default_err), "of_pairs": len(paths) * 8},
        "seconds_per_clip": {k: round(float(np.mean(v)), 3) for k, v in seconds.items()},
        "null_pairs": _offset_null(clips), "end_to_end": _offset_remux(paths, clips),
    }


def _offset_null(clips: dict[str, ClipMedia]) -> dict[str, Any]:
    """Picture of one clip with the sound of another: any confident answer is a false alarm."""
    hits, n = [], 0
    for vi, cv in clips.items():
        for aj, ca in clips.items():
            if vi == aj:
                continue
            audio = np.resize(ca.audio, len(cv.audio)) if len(ca.audio) < len(cv.audio) else ca.audio[:len(cv.audio)]
            r = ao.estimate_offset(with_audio(cv, audio), max_lag_s=LAG_S)
            n += 1
            if r["confident"]:
                hits.append({"video": vi, "audio": aj, "confidence": r["confidence"], "source": r["source"]})
    return {"n": n, "n_confident": len(hits), "false_alarm_rate": round(len(hits) / max(n, 1), 4),
            "confident": hits}


def _offset_remux(paths: list[Path], clips: dict[str, ClipMedia]) -> dict[str, Any]:
    """Remuxed mp4s with retimed audio decode to the array-shifted audio and give the same estimate."""
    name = max(clips, key=lambda k: ao.estimate_offset(clips[k], max_lag_s=LAG_S)["confidence"])
    src = next(p for p in paths if p.stem == name)
    out = {"clip": name, "checks": []}
    with tempfile.TemporaryDirectory() as tmp:
        for s in (0.4, -0.4):
            dec = load_clip(remux_shifted(src, Path(tmp) / f"shift{s}.mp4", s))
            ref = shift_audio(clips[name].audio, s)
            lags = np.arange(-400, 401)  # decoded samples should equal the array-shifted ones at lag 0
            seg = ref[2 * SR:3 * SR]
            mad = [np.abs(dec.audio[2 * SR + k:3 * SR + k] - seg).mean() for k in lags]
            sample_err = int(lags[int(np.argmin(mad))])
            r_file = ao.estimate_offset(dec, max_lag_s=LAG_S)
            r_arr = ao.estimate_offset(with_audio(clips[name], ref), max_lag_s=LAG_S)
            out["checks"].append({"shift_s": s, "audio_misalignment_samples": sample_err,
                                  "mean_abs_sample_diff": round(float(np.min(mad)), 6),
                                  "offset_file_s": r_file["offset_s"], "offset_array_s": r_arr["offset_s"],
                                  "difference_ms": round((r_file["offset_s"] - r_arr["offset_s"]) * 1000, 2),
                                  "confident_file": r_file["confident"]})
    return out


def _offset_synthetic() -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, make, cases in (
            ("flash_click", flash_click, [(s, seed, fps) for seed, fps in enumerate((15.0, 24.0, 25.0, 30.0, 24.0))
                                          for s in (-0.6, -0.2, 0.2, 0.6)]),
            ("bouncing_ball", bouncing_ball, [(s, seed, 30.0) for seed in range(4) for s in (-0.4, 0.3)])):
        recs = [(s, fps, ao.estimate_offset(make(s, seed, fps))) for s, seed, fps in cases]
        errs = [r["offset_s"] - s for s, _, r in recs if r["confident"]]
        out[name] = {**_summary(errs), "n": len(recs), "n_confident": len(errs),
                     "median_error_ms_all": round(float(np.median([r["offset_s"] - s for s, _, r in recs])) * 1000, 1)}
    rng = np.random.default_rng(0)
    noise = []
    for seed in range(6):  # static picture (sensor noise only) + white-noise audio
        base = np.random.default_rng(seed).integers(0, 255, (72, 96, 3))
        frames = np.clip(base[None] + rng.integers(-2, 3, (192, 72, 96, 3)), 0, 255).astype(np.uint8)
        noise.append(ao.estimate_offset(_clip(frames, 24.0, 0.2 * rng.standard_normal(8 * SR)))["confident"])
    indep = []
    for seed in range(20):  # flashes of one clip, clicks of another
        a = flash_click(0.0, seed)
        indep.append(ao.estimate_offset(with_audio(a, flash_click(0.0, seed + 100).audio))["confident"])
    out["static_noise"] = {"n": len(noise), "n_confident": int(sum(noise))}
    out["independent_events"] = {"n": len(indep), "n_confident": int(sum(indep))}
    out["demo"] = _offset_demo()
    return out


def _offset_demo() -> dict[str, Any]:
    from mtavg.bench.demo import build_demo_bench

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = build_demo_bench(Path(tmp))
        for line in (root / "videos.jsonl").read_text().splitlines():
            v = json.loads(line)
            r = ao.estimate_offset(load_clip(root / v["path"]))
            rows.append({"video_id": v["video_id"], "true_offset_s": v["script"]["audio_offset_s"],
                         "offset_s": r["offset_s"], "confident": r["confident"], "source": r["source"],
                         "error_s": round(r["offset_s"] - v["script"]["audio_offset_s"], 4)})
    errs = [r["error_s"] for r in rows if r["confident"]]
    return {**_summary(errs), "n": len(rows), "n_confident": len(errs), "fps": 15,
            "note": "mouths are drawn from the next frame interval's speech: +33 ms (half a frame) expected",
            "clips": rows}


def validate_offset() -> dict[str, Any]:
    paths = real_clips()
    out: dict[str, Any] = {"threshold": ao.CONF_THRESHOLD, "synthetic": _offset_synthetic()}
    out["real"] = _offset_real(paths) if paths else {"skipped": "MTAVG_REAL_CLIPS is not set"}
    return out


def print_offset(res: dict[str, Any]) -> None:
    real = res.get("real", {})
    for name, c in real.get("clips", {}).items():
        b = c["base"]
        print(f"{name:20s} base {b['offset_s']:+.3f}s conf {b['confidence']:5.2f} {'Y' if b['confident'] else 'n'} "
              f"{b['source']:6s} | confident pairs {c['confident_pairs']:2d}/{len(SHIFTS)} "
              f"median |err| {c['median_abs_error_ms']} ms max {c['max_abs_error_ms']} | {c['content']}")
    if "overall_confident" in real:
        print("overall (confident):", real["overall_confident"], "| all pairs:", real["overall_all_pairs"])
        print("default +-1 s lag range, |shift| <= 0.8:", real["default_lag_1s_confident"])
        print("null pairs:", {k: v for k, v in real["null_pairs"].items() if k != "confident"})
        print("end to end:", real["end_to_end"], "| s/clip:", real["seconds_per_clip"])
    print("synthetic:", {k: {kk: vv for kk, vv in v.items() if kk != "clips"} for k, v in res["synthetic"].items()})


SECTIONS: dict[str, Callable[[], dict[str, Any]]] = {
    "offset": validate_offset, "pitch": lambda: validate_pitch(real_clips()),
    "shots": lambda: validate_shots(real_clips()), "lips": validate_lips}
PRINTERS: dict[str, Callable[[dict[str, Any]], None]] = {
    "offset": print_offset, "pitch": print_pitch, "shots": print_shots, "lips": print_lips}


def main(argv: list[str] | None = None) -> None:
    names = argv if argv else list(SECTIONS)
    unknown = [n for n in names if n not in SECTIONS]
    if unknown:
        raise SystemExit(f"unknown section(s) {unknown}; known: {list(SECTIONS)}")
    path = Path(__file__).parent / "results" / "validate_metrics.json"
    results = json.loads(path.read_text()) if path.exists() else {}
    results = {k: v for k, v in results.items() if k in SECTIONS}  # machine info is re-added by save()
    for name in names:
        t = time.perf_counter()
        results[name] = SECTIONS[name]()
        results[name]["seconds"] = round(time.perf_counter() - t, 1)
        PRINTERS.get(name, lambda r: None)(results[name])
    print(save("validate_metrics", results))


if __name__ == "__main__":
    main(sys.argv[1:])
