"""AVGen-Bench checks; writes benchmarks/results/validate_avgen.json.

1. The published table (tests/fixtures/avgen/published_table.csv): our total vs the published one, per row.
2. Pitch accuracy on synthetic tones: notes C2..C6 in semitone steps, each exact and detuned by ±10, ±30
   cents, plus Karplus-Strong plucks; the share read as the right note and the cents error.
3. Pitch accuracy on the real "single note A4" clips (when MTAVG_REAL_CLIPS is set): dominant note, Hz,
   cents, score, seconds per clip.

Run: [MTAVG_REAL_CLIPS=/path/to/clips] python benchmarks/validate_avgen.py
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
from _results import save

from mtavg.metrics.audio_pitch import midi_to_hz, note_name
from mtavg.suites.avgen import aggregate_table, read_table
from mtavg.suites.avgen_pitch import PitchTarget, score_pitch
from mtavg.testing.pluck import karplus_strong

SR = 16000
TABLE = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "avgen" / "published_table.csv"


def table_section() -> dict:
    totals = aggregate_table(read_table(TABLE))
    deltas = {name: round(t.total - t.published_total, 4) for name, t in totals.items()}
    worst = max(abs(d) for d in deltas.values())
    print(f"published table: {len(deltas)} rows, max |ours - published| = {worst:.4f}")
    return {"rows": len(deltas), "max_abs_delta": worst, "deltas": deltas}


def harmonic(f: float, seconds: float = 1.0) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    x = sum(np.sin(2 * np.pi * f * h * t) / h for h in range(1, 5)) * np.exp(-t / 2)
    return 0.3 * x / np.abs(x).max()


def tone_section() -> dict:
    rows = []
    rng = np.random.default_rng(0)
    for midi in range(36, 85):
        target = PitchTarget("note", notes=(midi,))
        for detune in (-30, -10, 0, 10, 30):
            f = midi_to_hz(midi) * 2 ** (detune / 1200)
            for kind, audio in (("harmonic", harmonic(f)), ("pluck", 0.3 * karplus_strong(f, 1.0, rng))):
                r = score_pitch(target, audio, SR)
                rows.append({"note": note_name(midi), "detune": detune, "kind": kind, "match": r.get("note_match"),
                             "cents_error": r.get("cents_error"), "score": r["score"]})
    ok = [r for r in rows if r["match"]]
    errors = [abs(r["cents_error"] - r["detune"]) for r in ok]
    out = {"n": len(rows), "right_note_share": round(len(ok) / len(rows), 4),
           "cents_error_median": round(float(np.median(errors)), 2), "cents_error_p95": round(float(np.percentile(errors, 95)), 2),
           "misses": [r for r in rows if not r["match"]][:20]}
    print(f"synthetic notes C2-C6 x detune x kind: {out['right_note_share']:.1%} read as the right note, "
          f"cents error median {out['cents_error_median']}, p95 {out['cents_error_p95']}")
    return out


def real_section() -> dict | None:
    root = os.environ.get("MTAVG_REAL_CLIPS")
    if not root:
        print("real clips: MTAVG_REAL_CLIPS not set, skipped")
        return None
    from mtavg.metrics.base import load_clip

    target = PitchTarget("note", notes=(69,))
    out = {}
    for path in sorted(Path(root).glob("case6_*.mp4")):
        t0 = time.perf_counter()
        clip = load_clip(path)
        r = score_pitch(target, clip.audio, clip.sample_rate)
        r["seconds"] = round(time.perf_counter() - t0, 2)
        out[path.stem] = r
        print(f"{path.stem}: dominant {r['dominant_note']} ({r['dominant_hz']} Hz, {r['dominant_cents']:+} cents), "
              f"{r['cents_error']:+} cents off A4, score {r['score']}, {r['seconds']} s")
    return out


def main() -> None:
    numbers = {"table": table_section(), "tones": tone_section(), "real_a4": real_section()}
    print("->", save("validate_avgen", numbers))


if __name__ == "__main__":
    main()
