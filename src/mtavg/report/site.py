"""``mtavg report``: one self-contained static site (tables, figures, item browser) from run directories.

The site is ``index.html`` (CSS, JavaScript and the item data inlined) beside ``media/`` (the clips,
hard-linked when possible), ``figures/`` and ``tables/`` — relative links only, no CDN, no fetches, so
the folder can be zipped and opened anywhere. Item data sits in ``<script type="application/json">``
with ``<``, ``>`` and ``&`` escaped, and the browser script sets model text with ``textContent`` only;
a Content-Security-Policy allows no script but the inlined one (by hash) and no network access.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path
from typing import Any

from mtavg import __version__
from mtavg.bench.load import Benchmark
from mtavg.bench.schema import FORMATS
from mtavg.report.site_items import (
    STATUSES,
    BrowserData,
    ReportInputError,
    Run,
    browser_data,
    label_runs,
    load_run,
    place_file,
    resolve_bench,
)
from mtavg.report.tables import paper_tables, write_tables
from mtavg.taxonomy import taxonomy_for_bench

PAGE_SIZE = 20
_JSON_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}
_JSON_ESCAPE_RE = re.compile("[<>&\u2028\u2029]")


def embed_json(obj: Any) -> str:
    """JSON safe inside ``<script type="application/json">``: no ``<``, ``>`` or ``&`` survive, so a
    ``</script>`` or ``<!--`` in a model's answer cannot end the element; ``JSON.parse`` restores them."""
    text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return _JSON_ESCAPE_RE.sub(lambda m: _JSON_ESCAPES[m.group(0)], text)


def _asset(name: str) -> str:
    return resources.files("mtavg.report").joinpath("site_assets", name).read_text(encoding="utf-8")


def _csp(script: str) -> str:
    """Only the inlined script runs (by hash); media, images and styles come from the site folder."""
    digest = base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode("ascii")
    return ("default-src 'none'; "
            f"script-src 'sha256-{digest}'; style-src 'unsafe-inline'; "
            "img-src 'self' data:; media-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'")


# ---------------------------------------------------------------- tables
def _tables_html(results: Sequence[Mapping[str, Any]], out_dir: Path,
                 metrics_summary: Mapping[str, Mapping[str, Any]] | None) -> str:
    files = write_tables(results, out_dir / "tables", metrics_summary=metrics_summary)
    parts = []
    for table in paper_tables(results, metrics_summary):  # the set write_tables writes
        parts.append(table.to_html(ci=True))
        links = [f'<a href="tables/{html.escape(p.name)}">{fmt}</a>' for fmt, p in files.get(table.key, {}).items()]
        if links:
            parts.append(f'<p class="downloads">Download: {" · ".join(links)}</p>')
    return "\n".join(parts) or '<p class="note">No results.</p>'


# ---------------------------------------------------------------- figures
def _figures_html(figures: Sequence[Path], out_dir: Path) -> str:
    """Copy every figure into ``out_dir/figures``; show one image per stem (PNG first), link the others."""
    by_stem: dict[str, list[str]] = {}
    sources: dict[str, Path] = {}
    for fig in figures:
        fig = Path(fig)
        if fig.name in sources and sources[fig.name].resolve() != fig.resolve():
            raise ReportInputError(f"two figures are named {fig.name}: {sources[fig.name]} and {fig}")
        if fig.name in sources:
            continue
        sources[fig.name] = fig
        if fig.suffix.lower() not in (".png", ".svg"):
            raise ReportInputError(f"figure {fig}: only PNG and SVG figures can be shown")
        if not fig.is_file():
            raise ReportInputError(f"figure {fig} does not exist")
        place_file(fig, out_dir / "figures" / fig.name)
        by_stem.setdefault(fig.stem, []).append(fig.name)
    parts = []
    for stem, names in by_stem.items():
        names.sort(key=lambda n: (not n.lower().endswith(".png"), n))
        e = html.escape
        links = " · ".join(f'<a href="figures/{e(n)}">{e(Path(n).suffix[1:].upper())}</a>' for n in names)
        parts.append(f'<figure><img src="figures/{e(names[0])}" alt="{e(stem)}" loading="lazy">'
                     f"<figcaption>{e(stem)} — {links}</figcaption></figure>")
    return f'<div class="figures">{"".join(parts)}</div>' if parts else '<p class="note">No figures.</p>'


# ---------------------------------------------------------------- page
def _facets(bench_root: Path, items: Sequence[dict[str, Any]]) -> dict[str, list[list[str]]]:
    """Select options in taxonomy order, only for values some item has."""
    tax = taxonomy_for_bench(bench_root)
    subs = {it["sub"]: it["sub_name"] for it in items}
    modes = {it["mode"]: it["mode_name"] for it in items}
    sub_order = [c for c in tax.sub_dimensions if c in subs] + sorted(set(subs) - set(tax.sub_dimensions))
    mode_order = [m for m in tax.failure_modes if m in modes] + sorted(set(modes) - set(tax.failure_modes))
    return {
        "sub": [[c, f"{c} {subs[c]}"] for c in sub_order],
        "mode": [[m, modes[m]] for m in mode_order],
        "format": [[f, f] for f in FORMATS if any(it["format"] == f for it in items)],
    }


def _notes(data: BrowserData) -> str:
    e = html.escape
    notes = []
    if data.missing_clips:
        shown = "".join(f"<li>{e(n)}</li>" for n in data.missing_clips[:20])
        more = f"<li>… and {len(data.missing_clips) - 20} more</li>" if len(data.missing_clips) > 20 else ""
        notes.append(f'<div class="warning"><strong>{len(data.missing_clips)} clip(s) are missing</strong>; '
                     f"their items are shown without video.<ul>{shown}{more}</ul></div>")
    unanswered = data.n_bench_items - len(data.items)
    if unanswered:
        notes.append(f'<p class="note">{unanswered} of the benchmark\'s {data.n_bench_items} items have no answer '
                     "in these runs and are not listed.</p>")
    return "\n".join(notes)


def _fill(template: str, values: Mapping[str, str]) -> str:
    # One pass, so a value that happens to contain "{{X}}" is never substituted again.
    return re.sub(r"\{\{([A-Z]+)\}\}", lambda m: values[m.group(1)], template)


def render_index(*, title: str, summary: str, notes: str, tables: str, figures: str, data: dict[str, Any]) -> str:
    """index.html from the template; ``data`` is embedded with embed_json."""
    script = _asset("browser.js")
    if "</script" in script.lower():
        raise AssertionError("browser.js must not contain '</script' (it is inlined)")
    return _fill(_asset("index.html"), {
        "TITLE": html.escape(title), "SUMMARY": html.escape(summary), "NOTES": notes, "TABLES": tables,
        "FIGURES": figures, "CSS": _asset("site.css"), "DATA": embed_json(data), "JS": script,
        "CSP": html.escape(_csp(script)), "VERSION": html.escape(__version__),
    })


def build_site(run_dirs: Sequence[Path], out_dir: Path, *, bench: str | Path | None = None,
               title: str = "mtavg report", figures: Sequence[Path] = (),
               metrics_summary: Mapping[str, Mapping[str, Any]] | None = None, page_size: int = PAGE_SIZE,
               on_warning: Callable[[str], None] | None = None) -> Path:
    """Write the site into ``out_dir``; returns ``out_dir/index.html``.

    ``bench`` defaults to the benchmark the runs record (run.json ``bench_root``, else results.json
    ``bench``); runs on different benchmarks, a missing samples.jsonl/results.json or a qid the
    benchmark lacks raise ReportInputError. A clip missing on disk leaves its item in, with a note
    (also passed to ``on_warning``).
    """
    runs = _labelled_runs(run_dirs)
    return _write_site(runs, resolve_bench(runs, bench), out_dir, title=title, figures=figures,
                       metrics_summary=metrics_summary, page_size=page_size, on_warning=on_warning)


def _labelled_runs(run_dirs: Sequence[Path]) -> list[Run]:
    runs = [load_run(Path(d)) for d in run_dirs]
    label_runs(runs)
    return runs


def _labelled_results(runs: Sequence[Run]) -> list[dict[str, Any]]:
    """results.json dicts carrying the browser's label, so tables and figures name runs as it does."""
    return [{**r.results, "label": r.label} for r in runs]


def _write_site(runs: Sequence[Run], b: Benchmark, out_dir: Path, *, title: str, figures: Sequence[Path],
                metrics_summary: Mapping[str, Mapping[str, Any]] | None, page_size: int = PAGE_SIZE,
                on_warning: Callable[[str], None] | None = None) -> Path:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    data = browser_data(b, runs, out_dir)
    for note in data.missing_clips:
        if on_warning is not None:
            on_warning(note)
    results = _labelled_results(runs)
    summary = (f"Benchmark {b.name} · {len(data.items)} items · evaluators: {', '.join(data.evaluators)} · "
               f"generated {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC by mtavg {__version__}")
    page = render_index(
        title=title, summary=summary, notes=_notes(data), tables=_tables_html(results, out_dir, metrics_summary),
        figures=_figures_html(figures, out_dir),
        data={"evaluators": data.evaluators, "statuses": list(STATUSES), "page_size": page_size,
              "facets": _facets(b.root, data.items), "items": data.items},
    )
    index = out_dir / "index.html"
    index.write_text(page, encoding="utf-8")
    return index


def build_report(run_dirs: Sequence[Path], out_dir: Path, *, bench: str | Path | None = None,
                 title: str = "mtavg report", annotations: Sequence[Any] | None = None,
                 metrics_summary: Mapping[str, Mapping[str, Any]] | None = None,
                 on_warning: Callable[[str], None] | None = None) -> tuple[Path, list[Path]]:
    """Figures (per-sub-dimension bars, radar charts, and the failure analysis when annotations are given
    or the benchmark ships ``annotations.jsonl``; Table 4 / metric scatter with ``metrics_summary``), then the
    site. Returns (index.html, figure files)."""
    from mtavg.annotations import ANNOTATIONS_FILE, load_annotations
    from mtavg.report.figures import sub_dimension_bars, write_figures

    runs = _labelled_runs(run_dirs)  # loaded once: the figures and the site share runs and benchmark
    b = resolve_bench(runs, bench)
    if annotations is None and (found := b.root / ANNOTATIONS_FILE).is_file():
        annotations = load_annotations(found)
    results = _labelled_results(runs)
    fig_dir = Path(out_dir) / "figures"
    figures = [*sub_dimension_bars(results, fig_dir),
               *write_figures(results, fig_dir, annotations=annotations, metrics_summary=metrics_summary)]
    index = _write_site(runs, b, out_dir, title=title, figures=figures, metrics_summary=metrics_summary,
                        on_warning=on_warning)
    return index, figures
