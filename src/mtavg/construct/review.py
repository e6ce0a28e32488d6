"""Two-reviewer verification of constructed QA: assign, import verdicts, agree, adjudicate, finalize.

A review lives in a *workspace* directory::

    review.json            bench path, reviewer pool, adjudicators, seed
    assignments.jsonl      {"qid", "reviewers": [first, second]} -- two distinct reviewers per item
    sheets/<reviewer>.csv  what each reviewer fills in (verdict columns + the item for context)
    verdicts.jsonl         first-round verdicts imported so far (a re-import replaces a reviewer's verdict)
    queue.jsonl            items the two reviewers disagree on, each with its third reviewer
    sheets/adjudication-<reviewer>.csv
    adjudications.jsonl    third-reviewer verdicts
    review_report.json/md  written by finalize (also into the accepted benchmark)

Two reviewers *agree* when they give the same verdict and, for ``fix``, the same correction; every
other reviewed item goes to a third reviewer, whose verdict decides. Kappa is computed on the verdict
labels (accept / reject / fix), see :mod:`mtavg.construct.agreement`.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mtavg.bench.load import Benchmark, load_benchmark
from mtavg.bench.schema import QAItem
from mtavg.bench.validate import Problem
from mtavg.construct.agreement import agreement
from mtavg.construct.verdicts import (
    VERDICTS,
    Verdict,
    VerdictsInvalid,
    read_verdict_rows,
    write_sheet,
    write_verdicts,
)
from mtavg.taxonomy import load_taxonomy

MANIFEST, ASSIGNMENTS, VERDICTS_FILE = "review.json", "assignments.jsonl", "verdicts.jsonl"
QUEUE, ADJUDICATIONS = "queue.jsonl", "adjudications.jsonl"
ONE_ANSWER = ("single", "pairwise", "temporal")


class ReviewError(ValueError):
    """The review cannot go on as asked (no workspace, too few reviewers, unresolved items, ...)."""


@dataclass(frozen=True)
class Assignment:
    qid: str
    reviewers: tuple[str, ...]  # slot order: reviewers[0] is "rater 1" for kappa


def _check_pool(pool: Sequence[str], need: int, what: str) -> list[str]:
    names = [p.strip() for p in pool if p.strip()]
    dups = sorted({n for n in names if names.count(n) > 1})
    if dups:
        raise ReviewError(f"{what} lists {', '.join(dups)} more than once")
    if len(names) < need:
        raise ReviewError(f"{what} needs at least {need} distinct reviewers, got {len(names)}: {names}")
    return names


def assign_reviewers(qids: Sequence[str], pool: Sequence[str], *, seed: int = 0, per_item: int = 2,
                     ) -> list[Assignment]:
    """Give each item ``per_item`` distinct reviewers, least loaded first (ties by the seeded RNG).

    Loads differ by at most one; the slot order also goes to whoever held slot 1 least often, so no
    reviewer is systematically "rater 1".
    """
    names = _check_pool(pool, per_item, "the reviewer pool")
    rng = random.Random(seed)
    load, first = Counter({n: 0 for n in names}), Counter({n: 0 for n in names})
    out = []
    for qid in qids:
        chosen: list[str] = []
        for _ in range(per_item):
            free = [n for n in names if n not in chosen]
            low = min(load[n] for n in free)
            chosen.append(rng.choice([n for n in free if load[n] == low]))
            load[chosen[-1]] += 1
        rng.shuffle(chosen)
        chosen.sort(key=lambda n: first[n])  # stable: the shuffle breaks ties
        first[chosen[0]] += 1
        out.append(Assignment(qid, tuple(chosen)))
    return out


def fit_problems(v: Verdict, item: QAItem) -> list[str]:
    """Why a correction does not fit its item (labels not among the options, wrong count)."""
    out = []
    if v.corrected_answer:
        bad = [a for a in v.corrected_answer if a not in item.options]
        if bad:
            out.append(f"corrected_answer {bad} not among the options {', '.join(item.options)}")
        if item.format in ONE_ANSWER and len(v.corrected_answer) != 1:
            out.append(f"{item.format} items take exactly one answer, got {len(v.corrected_answer)}")
    if v.corrected_time_answer:
        if item.format != "temporal" or not item.time_options:
            out.append(f"corrected_time_answer given for a {item.format} item")
        else:
            bad = [a for a in v.corrected_time_answer if a not in item.time_options]
            if bad:
                out.append(f"corrected_time_answer {bad} not among the time options {', '.join(item.time_options)}")
    return out


def _fit(v: Verdict, items: dict[str, QAItem], allowed: dict[str, tuple[str, ...]], role: str,
         ) -> list[tuple[str, str, str]]:
    """(field, message, code) for a verdict that does not belong to this review step."""
    if v.qid not in items:
        return [("qid", f"unknown qid {v.qid!r} (not in the benchmark)", "unknown_qid")]
    if v.qid not in allowed:
        return [("qid", f"{v.qid} is not {role} anyone", "not_assigned")]
    if v.reviewer not in allowed[v.qid]:
        return [("reviewer", f"{v.reviewer!r} is not {role} {v.qid} (that is {', '.join(allowed[v.qid])})",
                 "not_assigned")]
    return [("corrected_answer", m, "bad_correction") for m in fit_problems(v, items[v.qid])]


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _write_jsonl(rows: Iterable[dict[str, Any]], path: Path) -> None:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


def _sheet_row(item: QAItem, reviewer: str, **extra: Any) -> dict[str, Any]:
    row = {"qid": item.qid, "reviewer": reviewer, "format": item.format, "video_ids": item.video_ids,
           "question": item.question, "options": item.options, "answer": item.answer,
           "sub_dimension": item.sub_dimension, "failure_mode": item.failure_mode, **extra}
    if item.format == "temporal":
        row.update(time_options=item.time_options, time_answer=item.time_answer)
    return row


class ReviewWorkspace:
    """One review of one benchmark; every step reads and writes the workspace files (re-runnable)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        path = self.root / MANIFEST
        if not path.is_file():
            raise ReviewError(f"{self.root} is not a review workspace (no {MANIFEST}); run `review assign` first")
        self.manifest = json.loads(path.read_text(encoding="utf-8"))
        self._bench: Benchmark | None = None

    # ------------------------------------------------------------ set-up
    @classmethod
    def create(cls, root: str | Path, bench_dir: str | Path, reviewers: Sequence[str], *, seed: int = 0,
               adjudicators: Sequence[str] | None = None, overwrite: bool = False) -> ReviewWorkspace:
        root = Path(root)
        if (root / MANIFEST).exists() and not overwrite:
            raise FileExistsError(f"{root / MANIFEST} exists; pass overwrite=True (--force) to start over")
        bench = load_benchmark(bench_dir)
        pool = _check_pool(reviewers, 2, "the reviewer pool")
        adj = _check_pool(adjudicators or pool, 1, "the adjudicator list")
        if not set(adj) - set(pool) and len(adj) < 3:  # two pool members may have reviewed the item together
            raise ReviewError("a disagreement needs an adjudicator who did not review the item: give 3+ "
                              "reviewers, or adjudicators from outside the pool")
        root.mkdir(parents=True, exist_ok=True)
        for stale in (VERDICTS_FILE, QUEUE, ADJUDICATIONS):
            (root / stale).unlink(missing_ok=True)
        manifest = {"bench": str(Path(bench.root).resolve()), "reviewers": pool, "adjudicators": adj, "seed": seed}
        (root / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
        assignments = assign_reviewers([it.qid for it in bench.items], pool, seed=seed)
        _write_jsonl(({"qid": a.qid, "reviewers": list(a.reviewers)} for a in assignments), root / ASSIGNMENTS)
        ws = cls(root)
        ws._bench = bench
        for name in pool:
            write_sheet([_sheet_row(bench.item(a.qid), name) for a in assignments if name in a.reviewers],
                        root / "sheets" / f"{name}.csv")
        return ws

    @property
    def bench(self) -> Benchmark:
        if self._bench is None:
            self._bench = load_benchmark(self.manifest["bench"])
        return self._bench

    def assignments(self) -> dict[str, tuple[str, ...]]:
        return {r["qid"]: tuple(r["reviewers"]) for r in _read_jsonl(self.root / ASSIGNMENTS)}

    def verdicts(self) -> list[Verdict]:
        return [Verdict.model_validate(r) for r in _read_jsonl(self.root / VERDICTS_FILE)]

    def queue(self) -> dict[str, dict[str, Any]]:
        return {r["qid"]: r for r in _read_jsonl(self.root / QUEUE)}

    def adjudications(self) -> list[Verdict]:
        return [Verdict.model_validate(r) for r in _read_jsonl(self.root / ADJUDICATIONS)]

    # ------------------------------------------------------------ imports
    def _checked(self, rows: Sequence[tuple[int | None, Verdict]], source: str,
                 allowed: dict[str, tuple[str, ...]], role: str) -> list[Verdict]:
        items = {it.qid: it for it in self.bench.items}
        problems = [Problem(source, line, fld, msg, code) for line, v in rows
                    for fld, msg, code in _fit(v, items, allowed, role)]
        if problems:
            raise VerdictsInvalid(problems)
        return [v for _, v in rows]

    def _merge(self, new: list[Verdict], path: Path, old: list[Verdict]) -> int:
        merged = {(v.qid, v.reviewer): v for v in old}
        merged.update({(v.qid, v.reviewer): v for v in new})  # a re-import replaces, never duplicates
        order = {it.qid: i for i, it in enumerate(self.bench.items)}
        write_verdicts(sorted(merged.values(), key=lambda v: (order[v.qid], v.reviewer)), path)
        return len(new)

    def import_verdicts(self, rows: Sequence[tuple[int | None, Verdict]], source: str) -> int:
        """Check first-round verdicts against the bench and the assignment, then merge them in."""
        new = self._checked(rows, source, self.assignments(), "assigned to")
        return self._merge(new, self.root / VERDICTS_FILE, self.verdicts())

    def import_file(self, path: str | Path, *, adjudication: bool = False) -> int:
        rows: list[tuple[int | None, Verdict]] = list(read_verdict_rows(path))
        return self.import_adjudications(rows, str(path)) if adjudication else self.import_verdicts(rows, str(path))

    def import_adjudications(self, rows: Sequence[tuple[int | None, Verdict]], source: str) -> int:
        allowed = {q: (e["adjudicator"],) for q, e in self.queue().items()}
        new = self._checked(rows, source, allowed, "queued for adjudication by")
        return self._merge(new, self.root / ADJUDICATIONS, self.adjudications())

    # ------------------------------------------------------------ agreement and queue
    def pairs(self) -> list[tuple[QAItem, Verdict, Verdict]]:
        """Items both assigned reviewers have judged, with verdicts in slot order."""
        by_key = {(v.qid, v.reviewer): v for v in self.verdicts()}
        out = []
        for qid, revs in self.assignments().items():
            if (qid, revs[0]) in by_key and (qid, revs[1]) in by_key:
                out.append((self.bench.item(qid), by_key[qid, revs[0]], by_key[qid, revs[1]]))
        return out

    def agreement(self, *, n_boot: int = 1000, seed: int | None = None) -> dict[str, Any]:
        """Overall and per-sub-dimension raw agreement and kappa (with bootstrap CI) on verdict labels."""
        pairs = self.pairs()
        if not pairs:
            raise ReviewError("no item has verdicts from both of its reviewers yet")
        seed = self.manifest["seed"] if seed is None else seed
        first, second = [p[1].verdict for p in pairs], [p[2].verdict for p in pairs]
        full = sum(p[1].decision() == p[2].decision() for p in pairs) / len(pairs)
        per_sd: dict[str, Any] = {}
        present = {p[0].sub_dimension for p in pairs}
        for code in (c for c in load_taxonomy().sub_dimensions if c in present):
            sel = [p for p in pairs if p[0].sub_dimension == code]
            per_sd[code] = agreement([p[1].verdict for p in sel], [p[2].verdict for p in sel], labels=VERDICTS,
                                     n_boot=n_boot, seed=seed).to_dict()
        return {"overall": agreement(first, second, labels=VERDICTS, n_boot=n_boot, seed=seed).to_dict(),
                "full_agreement": full, "per_sub_dimension": per_sd}

    def build_queue(self) -> list[dict[str, Any]]:
        """Queue every disagreement for a third reviewer (least loaded, seeded ties); writes queue + sheets."""
        rng = random.Random(self.manifest["seed"] + 1)
        load = Counter({n: 0 for n in self.manifest["adjudicators"]})
        entries = []
        for item, v1, v2 in self.pairs():
            if v1.decision() == v2.decision():
                continue
            free = [n for n in load if n not in (v1.reviewer, v2.reviewer)]
            if not free:
                raise ReviewError(f"{item.qid}: no adjudicator other than {v1.reviewer} and {v2.reviewer}")
            low = min(load[n] for n in free)
            who = rng.choice([n for n in free if load[n] == low])
            load[who] += 1
            entries.append({"qid": item.qid, "adjudicator": who,
                            "verdicts": [v.model_dump(mode="json", exclude_none=True) for v in (v1, v2)]})
        _write_jsonl(entries, self.root / QUEUE)
        for name in load:
            mine = [e for e in entries if e["adjudicator"] == name]
            if mine:
                write_sheet([_sheet_row(self.bench.item(e["qid"]), name, other_verdicts=e["verdicts"])
                             for e in mine], self.root / "sheets" / f"adjudication-{name}.csv")
        return entries
