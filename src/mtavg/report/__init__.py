"""Reports from results.json files: Markdown tables in the paper's layouts, PNG figures."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path

from mtavg.report.figures import sub_dimension_bars
from mtavg.report.tables import table3_markdown, temporal_markdown


def _file_name(model: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", model)


def write_report(results: Sequence[dict], out_dir: Path, *, title: str = "mtavg report") -> Path:
    """report/README.md (tables), report/figures/<code>.png, report/results/<model>.json."""
    out_dir.mkdir(parents=True, exist_ok=True)
    figures = sub_dimension_bars(results, out_dir / "figures")
    (out_dir / "results").mkdir(exist_ok=True)
    for r in results:
        (out_dir / "results" / f"{_file_name(r['model'])}_{r['modality']}.json").write_text(json.dumps(r, indent=1))
    md = [
        f"# {title}", "", "## Failure diagnosis (Table 3 layout)", "", table3_markdown(results), "",
        "## Temporal localization and multi-answer strictness", "", temporal_markdown(results), "",
        "## Figures", "", *(f"![{p.stem}](figures/{p.name})" for p in figures), "",
    ]
    path = out_dir / "README.md"
    path.write_text("\n".join(md), encoding="utf-8")
    return path


__all__ = ["table3_markdown", "temporal_markdown", "sub_dimension_bars", "write_report"]
