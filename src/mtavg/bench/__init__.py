"""Benchmarks: schema (Video, QAItem), loading from a directory or HF id, validation, statistics."""

from mtavg.bench.load import (
    Benchmark,
    BenchmarkInvalid,
    BenchmarkNotFound,
    load_benchmark,
    resolve_benchmark,
    save_jsonl,
    save_qa_parquet,
)
from mtavg.bench.schema import FORMATS, QAItem, Video
from mtavg.bench.stats import bench_stats, format_stats_table, stats_rows
from mtavg.bench.validate import Problem, validate_benchmark

__all__ = [
    "FORMATS",
    "Benchmark",
    "BenchmarkInvalid",
    "BenchmarkNotFound",
    "Problem",
    "QAItem",
    "Video",
    "bench_stats",
    "format_stats_table",
    "load_benchmark",
    "resolve_benchmark",
    "save_jsonl",
    "save_qa_parquet",
    "stats_rows",
    "validate_benchmark",
]
