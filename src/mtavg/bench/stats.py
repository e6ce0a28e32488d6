"""Benchmark statistics in the shape of the MTAVG-Bench 2.0 paper's Table 1 (size, formats, coverage)."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any

from mtavg.bench.schema import FORMATS
from mtavg.taxonomy import Taxonomy, load_taxonomy

if TYPE_CHECKING:  # only for annotations: keeps rich off the import path of library users
    from rich.table import Table

    from mtavg.bench.load import Benchmark


def _ordered(counter: Counter[str]) -> dict[str, int]:
    # Most frequent first, ties by name: stable output for reports and tests.
    return dict(sorted(counter.items(), key=lambda kv: (-kv[1], kv[0])))


def bench_stats(bench: Benchmark) -> dict[str, Any]:
    """Plain-JSON facts about a benchmark.

    Keys: name, n_videos, n_items, formats (all four, zeros kept), sub_dimensions (all ten codes in
    taxonomy order, zeros kept), categories, failure_modes_covered / failure_modes_total,
    videos_per_setting, items_per_setting, videos_per_generator (empty dicts when the field is never set),
    mean_options, temporal_items, mean_duration_s / total_duration_s (None without duration_s).
    """
    tax = load_taxonomy(bench.taxonomy)
    items = bench.items
    formats = Counter(it.format for it in items)
    subs = Counter(it.sub_dimension for it in items)
    cats = Counter(tax.category_of(it.sub_dimension) for it in items if it.sub_dimension in tax.sub_dimensions)
    modes = {it.failure_mode for it in items if it.failure_mode in tax.failure_modes}

    def item_setting(it: Any) -> str | None:
        # An item's setting defaults to its (first) clip's, as the field is optional on items.
        if it.setting:
            return it.setting
        v = bench.videos.get(it.video_ids[0])
        return v.setting if v else None

    durations = [v.duration_s for v in bench.videos.values() if v.duration_s is not None]
    return {
        "name": bench.name,
        "n_videos": len(bench.videos),
        "n_items": len(items),
        "formats": {f: formats.get(f, 0) for f in FORMATS},
        "sub_dimensions": {code: subs.get(code, 0) for code in tax.sub_dimensions},
        "categories": {slug: cats.get(slug, 0) for slug in tax.categories},
        "failure_modes_covered": len(modes),
        "failure_modes_total": len(tax.failure_modes),
        "videos_per_setting": _ordered(Counter(v.setting for v in bench.videos.values() if v.setting)),
        "items_per_setting": _ordered(Counter(s for s in map(item_setting, items) if s)),
        "videos_per_generator": _ordered(Counter(v.generator for v in bench.videos.values() if v.generator)),
        "mean_options": round(sum(len(it.options) for it in items) / len(items), 3) if items else 0.0,
        "temporal_items": formats.get("temporal", 0),
        "mean_duration_s": round(sum(durations) / len(durations), 3) if durations else None,
        "total_duration_s": round(sum(durations), 3) if durations else None,
    }


def stats_rows(stats: dict[str, Any], taxonomy: Taxonomy | None = None) -> list[tuple[str, str]]:
    """(label, value) rows; indented labels are breakdowns of the row above them (``taxonomy``: the
    benchmark's, for the category and sub-dimension names; default MTAVG-Bench 2.0)."""
    tax = load_taxonomy(taxonomy)
    rows: list[tuple[str, str]] = [
        ("Benchmark", str(stats["name"])),
        ("Videos", str(stats["n_videos"])),
        ("QA items", str(stats["n_items"])),
    ]
    rows += [(f"  {f}", str(n)) for f, n in stats["formats"].items()]
    rows.append(("Mean options per item", f"{stats['mean_options']:.2f}"))
    rows.append(("Failure modes covered", f"{stats['failure_modes_covered']} / {stats['failure_modes_total']}"))
    for slug, n in stats["categories"].items():
        rows.append((f"{tax.categories[slug].name}", str(n)))
        for code in tax.categories[slug].sub_dimensions:
            rows.append((f"  {code} {tax.sub_dimensions[code].name}", str(stats["sub_dimensions"][code])))
    for key, title in (("videos_per_setting", "Videos per setting"), ("items_per_setting", "Items per setting"),
                       ("videos_per_generator", "Videos per generator")):
        if stats[key]:
            rows.append((title, ""))
            rows += [(f"  {k}", str(n)) for k, n in stats[key].items()]
    if stats["mean_duration_s"] is not None:
        rows.append(("Mean duration (s)", f"{stats['mean_duration_s']:.1f}"))
        rows.append(("Total duration (min)", f"{stats['total_duration_s'] / 60:.1f}"))
    return rows


def format_stats_table(stats: dict[str, Any], taxonomy: Taxonomy | None = None) -> Table:
    """A two-column rich Table of :func:`stats_rows`, ready for ``Console().print``."""
    from rich.table import Table  # lazy: the CLI is the only caller

    table = Table(title=f"Benchmark {stats['name']}", show_header=True)
    table.add_column("Fact")
    table.add_column("Value", justify="right")
    for label, value in stats_rows(stats, taxonomy):
        table.add_row(label, value)
    return table
