"""The embedded demo end to end: build clips and QA, evaluate every offline evaluator, score, report."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from mtavg.bench import Benchmark, load_benchmark
from mtavg.bench.demo import build_demo_bench
from mtavg.evaluators import BASELINES, make_evaluator
from mtavg.report import write_report
from mtavg.report.site import build_report
from mtavg.run import run_eval


@dataclass
class DemoOutcome:
    bench_dir: Path
    report: Path  # Markdown tables
    site: Path  # the HTML report's index.html (tables, figures, item browser)
    results: list[dict]
    seconds: float


DEMO_MODELS: tuple[str, ...] = (*BASELINES, "signal")


class DemoSeedMismatch(ValueError):
    """``out`` holds a demo built with another seed (its clips, items and runs follow that seed)."""


def _check_demo_seed(bench: Benchmark, seed: int) -> None:
    source = next((v.source for v in bench.videos.values() if v.source), None) or ""
    if source.startswith("mtavg-demo seed=") and source != f"mtavg-demo seed={seed}":
        built = source.removeprefix("mtavg-demo seed=")
        raise DemoSeedMismatch(f"{bench.root.parent} holds the demo built with --seed {built}, not {seed}; "
                               f"pass another --out (or --seed {built} to re-use it)")


def run_demo(out: Path, *, seed: int = 0, models: Sequence[str] = DEMO_MODELS, progress: bool = True) -> DemoOutcome:
    """Build the demo benchmark under ``out/bench`` (reused when present), evaluate, and report."""
    start = time.perf_counter()
    bench_dir = out / "bench"
    if not (bench_dir / "qa.jsonl").exists():
        build_demo_bench(bench_dir, seed=seed)
    bench = load_benchmark(bench_dir)
    _check_demo_seed(bench, seed)
    results = []
    for spec in models:
        evaluator = make_evaluator(spec, bench.items, seed=seed)
        run_dir = out / "runs" / spec.replace(":", "_")
        results.append(run_eval(bench, evaluator, run_dir, progress=progress, concurrency=2))
    title = "mtavg demo — embedded synthetic benchmark"
    report = write_report(results, out / "report", title=title)
    site, _ = build_report([out / "runs" / spec.replace(":", "_") for spec in models], out / "report", title=title)
    return DemoOutcome(bench_dir, report, site, results, time.perf_counter() - start)
