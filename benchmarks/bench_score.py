"""Time scoring + clustered bootstrap CIs on a synthetic 11,600-item benchmark (the paper's size).

Run: python benchmarks/bench_score.py  -> prints seconds and writes benchmarks/results/bench_score.json
"""

from __future__ import annotations

import json
import random
import time

from _results import save

from mtavg.bench.schema import QAItem, Video
from mtavg.parse import parse_response
from mtavg.score import build_results
from mtavg.taxonomy import load_taxonomy

N_ITEMS, N_VIDEOS = 11_600, 2_466


def pair(rng: random.Random, ids: list[str]) -> list[str]:
    """Two generators' clips of one script (videos 2k, 2k+1), as pairwise items are built."""
    k = rng.randrange(len(ids) // 2)
    return [ids[2 * k], ids[2 * k + 1]]


def synthetic(seed: int = 0) -> tuple[list[QAItem], dict[str, Video], dict[str, dict | None]]:
    rng = random.Random(seed)
    modes = list(load_taxonomy().failure_modes.values())
    videos = {f"v{i}": Video(video_id=f"v{i}", path=f"media/v{i}.mp4", generator=f"g{i % 8}",
                             setting="storyboard" if i % 3 else "short_drama") for i in range(N_VIDEOS)}
    ids = list(videos)
    items, preds = [], {}
    for i in range(N_ITEMS):
        fmt = rng.choice(["single", "single", "multi", "pairwise", "temporal"])
        mode = rng.choice(modes)
        labels = ["A", "B"] if fmt == "pairwise" else list("ABCDE")
        answer = sorted(rng.sample(labels, rng.randint(1, 3))) if fmt == "multi" else [rng.choice(labels)]
        extra = {}
        if fmt == "temporal":
            extra = {"time_options": {k: (2.0 * j, 2.0 * j + 2) for j, k in enumerate("ABCDE")},
                     "time_answer": [rng.choice("ABCDE")], "evidence": "e"}
        items.append(QAItem(qid=f"q{i}", format=fmt, video_ids=pair(rng, ids) if fmt == "pairwise" else [rng.choice(ids)],
                            question="?", options={k: k for k in labels}, answer=answer,
                            sub_dimension=mode.sub_dimension, failure_mode=mode.slug, **extra))
        preds[f"q{i}"] = None if rng.random() < 0.05 else {
            "answer": sorted(rng.sample(labels, rng.randint(1, 2))) if fmt == "multi" else [rng.choice(labels)],
            "time": [rng.choice("ABCDE")]}
    return items, videos, preds


def raw_text(item: QAItem, pred: dict | None) -> str:
    """A response as a model would write it (JSON or prose), so re-parsing is part of the timing."""
    if pred is None:
        return "I'm sorry, I cannot determine this from the clip."
    if item.format == "temporal":
        return json.dumps({"primary_issue": pred["answer"][0], "time": pred["time"], "rationale": "..."})
    if int(item.qid[1:]) % 2:
        return "Looking at the clip, the speakers overlap. Final answer: " + ", ".join(pred["answer"])
    return "```json\n" + json.dumps({"answer": pred["answer"], "rationale": "..."}) + "\n```"


def main() -> None:
    items, videos, preds = synthetic()
    by_qid = {it.qid: it for it in items}
    raws = {q: raw_text(by_qid[q], p) for q, p in preds.items()}
    timings, full = [], []
    for _ in range(3):
        start = time.perf_counter()
        res = build_results(items, preds, videos, model="synthetic", bench="synthetic", n_boot=1000)
        timings.append(time.perf_counter() - start)
        start = time.perf_counter()  # what `mtavg score` does: re-parse every raw response, then score
        parsed = {q: parse_response(r, by_qid[q].options, by_qid[q].format, by_qid[q].time_options)
                  for q, r in raws.items()}
        build_results(items, {q: p.prediction() for q, p in parsed.items()}, videos, model="synthetic",
                      bench="synthetic", n_boot=1000)
        full.append(time.perf_counter() - start)
    out = {"n_items": len(items), "n_videos": len(videos), "n_boot": 1000, "seconds_best": round(min(timings), 3),
           "seconds_all": [round(t, 3) for t in timings], "parse_and_score_seconds_best": round(min(full), 3),
           "parse_and_score_seconds_all": [round(t, 3) for t in full], "overall": res["overall"]}
    path = save("bench_score", out)
    print(f"scored {len(items)} items with clustered bootstrap CIs (1000 resamples, incl. by-generator and "
          f"by-setting tables): best {out['seconds_best']} s of {out['seconds_all']}; re-parsing raw text too: "
          f"best {out['parse_and_score_seconds_best']} s of {out['parse_and_score_seconds_all']}  -> {path}")


if __name__ == "__main__":
    main()
