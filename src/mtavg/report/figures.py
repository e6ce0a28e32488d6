"""Figures with matplotlib (Agg backend, no display needed)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from mtavg.taxonomy import load_taxonomy


def sub_dimension_bars(results: Sequence[dict], out_dir: Path) -> list[Path]:
    """One PNG per sub-dimension: each evaluator's score with its clustered 95% CI as an error bar."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tax = load_taxonomy()
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for code, sub in tax.sub_dimensions.items():
        entries = [(r["model"], r["sub_dimensions"][code]) for r in results if code in r.get("sub_dimensions", {})]
        if not entries:
            continue
        names = [n for n, _ in entries]
        scores = [e["score"] for _, e in entries]
        lo = [e["score"] - (e["ci95"] or [e["score"]] * 2)[0] for _, e in entries]
        hi = [(e["ci95"] or [e["score"]] * 2)[1] - e["score"] for _, e in entries]
        fig, ax = plt.subplots(figsize=(1.2 + 0.9 * len(entries), 3.2), dpi=110)
        ax.bar(range(len(entries)), scores, yerr=[lo, hi], capsize=4, color="#4C72B0")
        ax.set_xticks(range(len(entries)), names, rotation=20, ha="right", fontsize=8)
        ax.set_ylim(0, 100)
        ax.set_ylabel("score (%)")
        ax.set_title(f"{code} — {sub.name} (n={entries[0][1]['n']})", fontsize=10)
        fig.tight_layout()
        path = out_dir / f"{code}.png"
        fig.savefig(path)
        plt.close(fig)
        written.append(path)
    return written
