"""Run-engine throughput against the fake OpenAI-compatible server (a separate process on 127.0.0.1).

With server latency L and C requests in flight the ceiling is C / L items/s. Runs 1,000 text-modality
items at C=32, L=0.2 s, then the same command again (every answer cached: seconds and model calls),
and writes benchmarks/results/bench_throughput.json.

Run: python benchmarks/bench_throughput.py [--items 1000] [--concurrency 32] [--latency 0.2]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _results import save

from mtavg.bench import load_benchmark
from mtavg.evaluators import make_evaluator
from mtavg.run import run_eval


def make_bench(root: Path, n_items: int) -> Path:
    """n single-choice items over 50 clips; text modality never opens the media, so stubs suffice."""
    (root / "media").mkdir(parents=True)
    videos = []
    for v in range(50):
        (root / "media" / f"v{v}.mp4").write_bytes(b"stub")
        videos.append({"video_id": f"v{v}", "path": f"media/v{v}.mp4"})
    items = [{"qid": f"t{i:05d}", "format": "single", "video_ids": [f"v{i % 50}"], "sub_dimension": "IP",
              "failure_mode": "dialogue_turn_taking_failure", "question": f"Question {i}: which failure?",
              "options": {"A": "Dialogue Turn-Taking Failure", "B": "Reaction Timing Failure",
                          "C": "Interaction Eyeline Failure"}, "answer": ["A"]} for i in range(n_items)]
    (root / "videos.jsonl").write_text("".join(json.dumps(v) + "\n" for v in videos))
    (root / "qa.jsonl").write_text("".join(json.dumps(it) + "\n" for it in items))
    return root


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--items", type=int, default=1000)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--latency", type=float, default=0.2)
    args = ap.parse_args()
    server = subprocess.Popen(
        [sys.executable, "-m", "mtavg.testing.fake_openai", "--port", "0", "--latency", str(args.latency),
         "--no-inspect"], stdout=subprocess.PIPE, text=True)
    try:
        base_url = server.stdout.readline().strip()
        with tempfile.TemporaryDirectory() as tmp:
            tmp_path = Path(tmp)
            os.environ["MTAVG_CACHE_DIR"] = str(tmp_path / "cache")  # a cold cache of our own
            bench = load_benchmark(make_bench(tmp_path / "bench", args.items))

            def run(out: str) -> tuple[float, dict]:
                evaluator = make_evaluator("openai:fake-omni", bench.items, base_url=base_url)
                start = time.perf_counter()
                res = run_eval(bench, evaluator, tmp_path / out, modality="text", concurrency=args.concurrency,
                               progress=False, n_boot=0)
                return time.perf_counter() - start, res

            cold_s, cold = run("cold")
            warm_s, warm = run("warm")  # a new run directory: every answer comes from the response cache
            resume_s, resume = run("cold")  # the finished run again: resume skips everything
    finally:
        server.terminate()
        server.wait(timeout=10)
    limit = args.concurrency / args.latency
    out = {
        "items": args.items, "concurrency": args.concurrency, "latency_s": args.latency,
        "ceiling_items_per_s": limit, "cold_seconds": round(cold_s, 3),
        "cold_items_per_s": round(args.items / cold_s, 1), "fraction_of_ceiling": round(args.items / cold_s / limit, 3),
        "cold_model_calls": cold["session"]["calls"], "cold_errors": cold["n_errors"],
        "cached_rerun_seconds": round(warm_s, 3), "cached_rerun_model_calls": warm["session"]["calls"],
        "cached_rerun_cache_hits": warm["session"]["cached"],
        "resume_finished_run_seconds": round(resume_s, 3), "resume_model_calls": resume["session"]["calls"],
    }
    path = save("bench_throughput", out)
    print(f"{args.items} items, C={args.concurrency}, L={args.latency}s: {out['cold_items_per_s']} items/s "
          f"= {out['fraction_of_ceiling']:.0%} of C/L={limit:.0f}; {out['cold_model_calls']} calls, "
          f"{out['cold_errors']} errors")
    print(f"same items, new run dir (cache): {out['cached_rerun_seconds']} s, "
          f"{out['cached_rerun_model_calls']} model calls, {out['cached_rerun_cache_hits']} cache hits")
    print(f"finished run re-run (resume): {out['resume_finished_run_seconds']} s, "
          f"{out['resume_model_calls']} model calls  -> {path}")


if __name__ == "__main__":
    main()
