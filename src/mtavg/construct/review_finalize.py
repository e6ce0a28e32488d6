"""Finish a review: decide every item, apply fixes, write the accepted benchmark and the report.

Decision per item: the two reviewers' shared verdict when they agree fully (same verdict, same
correction), else the adjudicator's. Items without both verdicts (``pending``) or with an open
disagreement (``unresolved``) stop finalize with :class:`~mtavg.construct.review.ReviewError` unless
``drop_open=True``, which leaves them out and counts them in the report.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from mtavg.annotations import match_failure_mode
from mtavg.bench.load import save_jsonl
from mtavg.bench.schema import QAItem
from mtavg.bench.validate import validate_benchmark
from mtavg.construct.qa_bench import link_or_copy
from mtavg.construct.review import ReviewError, ReviewWorkspace
from mtavg.construct.verdicts import Verdict
from mtavg.taxonomy import load_taxonomy

REPORT_JSON, REPORT_MD = "review_report.json", "review_report.md"


def apply_verdict(item: QAItem, verdict: Verdict, how: str) -> QAItem | None:
    """The item as the decision leaves it: ``None`` if rejected; a fix replaces the gold answer(s)."""
    if verdict.verdict == "reject":
        return None
    meta = {**(item.meta or {}), "review": {"decision": verdict.verdict, "how": how}}
    if verdict.verdict == "accept":
        return item.model_copy(update={"meta": meta})
    update: dict[str, Any] = {"meta": meta}
    meta["review"]["original_answer"] = item.answer
    if verdict.corrected_answer:
        update["answer"] = sorted(verdict.corrected_answer)
        if item.format != "pairwise":  # a new gold option names a new failure mode (pairwise answers a clip)
            modes = [m for m in (match_failure_mode(item.options[a]) for a in update["answer"]) if m]
            if modes:
                update["failure_mode"] = modes[0]
                update["sub_dimension"] = load_taxonomy().failure_modes[modes[0]].sub_dimension
                meta["gold_modes"] = modes
    if verdict.corrected_time_answer:
        meta["review"]["original_time_answer"] = item.time_answer
        update["time_answer"] = sorted(verdict.corrected_time_answer)
    return item.model_copy(update=update)


def decide(ws: ReviewWorkspace) -> dict[str, tuple[str, Verdict | None]]:
    """qid -> (how, verdict): how is agreed | adjudicated | unresolved | pending."""
    pairs = {item.qid: (v1, v2) for item, v1, v2 in ws.pairs()}
    adjudicated = {v.qid: v for v in ws.adjudications()}
    out: dict[str, tuple[str, Verdict | None]] = {}
    for item in ws.bench.items:
        if item.qid not in pairs:
            out[item.qid] = ("pending", None)
            continue
        v1, v2 = pairs[item.qid]
        if v1.decision() == v2.decision():
            out[item.qid] = ("agreed", v1)
        elif item.qid in adjudicated:
            out[item.qid] = ("adjudicated", adjudicated[item.qid])
        else:
            out[item.qid] = ("unresolved", None)
    return out


def finalize(ws: ReviewWorkspace, out_dir: str | Path, *, drop_open: bool = False, n_boot: int = 1000,
             overwrite: bool = False) -> dict[str, Any]:
    """Write the accepted benchmark to ``out_dir`` (plus the review report) and return the report."""
    out_dir = Path(out_dir)
    if (out_dir / "qa.jsonl").exists() and not overwrite:
        raise FileExistsError(f"{out_dir / 'qa.jsonl'} exists; pass overwrite=True (--force) to replace it")
    decisions = decide(ws)
    open_items = {q: how for q, (how, _) in decisions.items() if how in ("pending", "unresolved")}
    if open_items and not drop_open:
        counts = Counter(open_items.values())
        raise ReviewError(f"{len(open_items)} item(s) undecided ({dict(counts)}), e.g. "
                          f"{', '.join(list(open_items)[:5])}; import the missing verdicts / adjudications "
                          "or pass drop_open=True (--drop-open)")
    kept = []
    for item in ws.bench.items:
        how, verdict = decisions[item.qid]
        if verdict is not None:
            new = apply_verdict(item, verdict, how)
            if new is not None:
                kept.append(new)
    if not kept:
        raise ReviewError("every item was rejected or left open: nothing to write")
    _write_bench(ws, kept, out_dir)
    report = review_report(ws, decisions, n_boot=n_boot)
    report["accepted_bench"] = str(out_dir)
    for where in (ws.root, out_dir):
        (where / REPORT_JSON).write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
        (where / REPORT_MD).write_text(report_markdown(report), encoding="utf-8")
    return report


def _write_bench(ws: ReviewWorkspace, items: list[QAItem], out_dir: Path) -> None:
    bench = ws.bench
    used = dict.fromkeys(v for it in items for v in it.video_ids)
    out_dir.mkdir(parents=True, exist_ok=True)
    videos = []
    for vid in used:
        video = bench.videos[vid]
        link_or_copy(bench.video_path(vid), out_dir / video.path)
        videos.append(video)
    save_jsonl(videos, out_dir / "videos.jsonl")
    save_jsonl(items, out_dir / "qa.jsonl")
    problems = validate_benchmark(out_dir)
    if problems:  # fixes were checked on import, so this is a bug worth stopping for
        raise ReviewError("accepted benchmark is invalid:\n" + "\n".join(f"  {p}" for p in problems))


def review_report(ws: ReviewWorkspace, decisions: dict[str, tuple[str, Verdict | None]], *,
                  n_boot: int = 1000) -> dict[str, Any]:
    outcome = Counter(v.verdict if v else how for how, v in decisions.values())
    load = Counter(r for revs in ws.assignments().values() for r in revs)
    return {
        "bench": ws.manifest["bench"],
        "n_items": len(decisions),
        "n_reviewed_by_both": len(ws.pairs()),
        "agreement": ws.agreement(n_boot=n_boot),
        "queued": len(ws.queue()),
        "adjudicated": sum(how == "adjudicated" for how, _ in decisions.values()),
        "decisions": {k: outcome.get(k, 0) for k in ("accept", "fix", "reject", "unresolved", "pending")},
        "accepted_items": outcome.get("accept", 0) + outcome.get("fix", 0),
        "reviewer_load": dict(sorted(load.items())),
    }


def _fmt(x: float | None, pct: bool = False) -> str:
    if x is None:
        return "undefined"
    return f"{100 * x:.1f} %" if pct else f"{x:.3f}"


def _ci(ci: list[float] | None) -> str:
    return f"[{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "undefined"


def report_markdown(report: dict[str, Any]) -> str:
    agr = report["agreement"]
    o = agr["overall"]
    lines = [
        "# Review report", "",
        f"Benchmark: `{report['bench']}`  ", f"Items: {report['n_items']}, judged by both reviewers: "
        f"{report['n_reviewed_by_both']}, queued for a third reviewer: {report['queued']}, adjudicated: "
        f"{report['adjudicated']}", "",
        "## Agreement (verdict labels accept / reject / fix)", "",
        "| scope | n | raw agreement | Cohen's κ | 95 % CI (bootstrap) |", "|---|---:|---:|---:|---|",
        f"| overall | {o['n']} | {_fmt(o['raw_agreement'], True)} | {_fmt(o['kappa'])} | {_ci(o['ci95'])} |",
    ]
    tax = load_taxonomy()
    for code, a in agr["per_sub_dimension"].items():
        lines.append(f"| {code} {tax.sub_dimensions[code].name} | {a['n']} | {_fmt(a['raw_agreement'], True)} | "
                     f"{_fmt(a['kappa'])} | {_ci(a['ci95'])} |")
    lines += ["", f"Full agreement (same verdict and same correction): {_fmt(agr['full_agreement'], True)}", "",
              "## Decisions", "", "| decision | items |", "|---|---:|"]
    lines += [f"| {k} | {n} |" for k, n in report["decisions"].items()]
    lines += ["", f"Accepted benchmark: {report['accepted_items']} items"
              + (f" in `{report['accepted_bench']}`" if report.get("accepted_bench") else ""), "",
              "## Reviewer load", "", "| reviewer | items |", "|---|---:|"]
    lines += [f"| {r} | {n} |" for r, n in report["reviewer_load"].items()]
    return "\n".join(lines) + "\n"
