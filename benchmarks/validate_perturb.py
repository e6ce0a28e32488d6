"""Build AVBench-style pair datasets from the real clips and measure every negative; writes
benchmarks/results/validate_perturb.json.

1. Plan 1,000 negatives by the AVBench mix from the real clips: realised share per type vs requested.
2. Build ``--n`` negatives (default 52 = 4 per type, mix ``all``, easy and hard halves) with 2 workers:
   seconds per clip for audio-only perturbations (video stream copied) and for picture perturbations
   (re-encoded).
3. ``verify_dataset``: each negative measured against its source clip by an independent method (cross-
   correlation, YIN, residual power, spectra, frame differences): pass / fail / not measurable per type,
   and the largest error of the measured quantity.

Run: MTAVG_REAL_CLIPS=/path/to/clips python benchmarks/validate_perturb.py [--n 52]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from _results import save

from mtavg.perturb.build import BuildOptions, build_pairs, discover_sources
from mtavg.perturb.measure import verify_dataset
from mtavg.perturb.plan import AVBENCH_MIX, parse_mix, plan_negatives, realised_mix

CATEGORY, GENERATOR = r"^(case\d+)_", r"_([a-z0-9_]+)$"
ERROR_OF = {"time_shift": ("shift_ms", "shift_ms"), "noise": ("snr_db", "snr_db"),
            "pitch_shift": ("semitones", "semitones"), "speed_change": ("duration_ratio", "duration_ratio")}


def mix_section(root: Path) -> dict[str, Any]:
    sources, _ = discover_sources(root, category_pattern=CATEGORY, generator_pattern=GENERATOR)
    planned = plan_negatives(sources, parse_mix("avbench"), 1000, seed=0)
    shares = {k: round(v["share"], 4) for k, v in realised_mix(planned).items()}
    worst = max(abs(shares[k] - AVBENCH_MIX[k]) for k in AVBENCH_MIX)
    return {"n": 1000, "requested": AVBENCH_MIX, "realised": shares, "max_abs_diff_points": round(100 * worst, 3)}


def build_section(root: Path, out: Path, n: int) -> dict[str, Any]:
    per_type: dict[str, list[float]] = defaultdict(list)
    last = [time.perf_counter()]

    def done(result: dict[str, Any]) -> None:  # with 2 workers, the gap between results ~ half a clip's time
        now = time.perf_counter()
        per_type[result.get("perturbation", "?")].append(now - last[0])
        last[0] = now

    start = time.perf_counter()
    report = build_pairs(root, out, BuildOptions(mix="all", n=n, seed=0, jobs=2, category_pattern=CATEGORY,
                                                 generator_pattern=GENERATOR), on_done=done)
    wall = time.perf_counter() - start
    video = {"freeze", "stutter", "colour_cast", "blur"}
    audio_gaps = [g for k, v in per_type.items() if k not in video for g in v]
    video_gaps = [g for k, v in per_type.items() if k in video for g in v]
    return {"n_clips": len(report.planned), "failed": len(report.failed), "wall_s": round(wall, 1),
            "clips_per_s": round(len(report.planned) / wall, 3),
            "mean_gap_s_audio_or_positive": round(sum(audio_gaps) / max(1, len(audio_gaps)), 2),
            "mean_gap_s_video": round(sum(video_gaps) / max(1, len(video_gaps)), 2)}


def verify_section(out: Path) -> dict[str, Any]:
    rows = verify_dataset(out)
    by: dict[str, dict[str, Any]] = {}
    for r in rows:
        entry = by.setdefault(r["perturbation"], {"pass": 0, "fail": 0, "not_measurable": 0, "max_abs_error": None})
        entry[{True: "pass", False: "fail", None: "not_measurable"}[r["ok"]]] += 1
        keys = ERROR_OF.get(r["perturbation"])
        measured = (r.get("measured") or {}).get(keys[1]) if keys else None
        if keys and measured is not None and r["ok"] is not None:
            expected = r["expected"][keys[0]]
            error = abs(measured / expected - 1) if keys[0] == "duration_ratio" else abs(measured - expected)
            entry["max_abs_error"] = round(max(entry["max_abs_error"] or 0.0, error), 4)
    return {"n": len(rows), "pass": sum(r["ok"] is True for r in rows), "fail": sum(r["ok"] is False for r in rows),
            "not_measurable": sum(r["ok"] is None for r in rows), "by_type": by,
            "failures": [r for r in rows if r["ok"] is False]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=52)
    args = parser.parse_args()
    root_s = os.environ.get("MTAVG_REAL_CLIPS")
    if not root_s:
        raise SystemExit("set MTAVG_REAL_CLIPS to a folder of real clips")
    root = Path(root_s)
    numbers: dict[str, Any] = {"mix_1000": mix_section(root)}
    print("mix over 1000:", numbers["mix_1000"]["realised"], "max diff (points):",
          numbers["mix_1000"]["max_abs_diff_points"])
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "pairs"
        numbers["build"] = build_section(root, out, args.n)
        print("build:", numbers["build"])
        numbers["verify"] = verify_section(out)
    v = numbers["verify"]
    print(f"verify: {v['pass']} pass, {v['fail']} fail, {v['not_measurable']} not measurable of {v['n']}")
    for kind, entry in sorted(v["by_type"].items()):
        print(f"  {kind:18s} {entry}")
    print("->", save("validate_perturb", numbers))


if __name__ == "__main__":
    main()
