"""Two-reviewer verification: kappa (vs scikit-learn and by hand), assignment, queue, adjudication, finalize."""

from __future__ import annotations

import csv
import json
import math
import random
from collections import Counter

import pytest
from sklearn.metrics import cohen_kappa_score
from typer.testing import CliRunner

from mtavg.annotations import match_failure_mode
from mtavg.bench import load_benchmark, validate_benchmark
from mtavg.construct.agreement import agreement, bootstrap_kappa_ci, cohen_kappa, raw_agreement
from mtavg.construct.review import ReviewError, ReviewWorkspace, assign_reviewers
from mtavg.construct.review_finalize import finalize
from mtavg.construct.verdicts import (
    Verdict,
    VerdictsInvalid,
    read_verdict_rows,
    read_verdicts,
    write_verdicts,
)
from test_construct_qa import build_bench

POOL = ["ana", "ben", "cai", "dora"]


def test_kappa_equals_sklearn_on_random_ratings():
    for seed in range(20):
        rng = random.Random(seed)
        n = rng.randrange(5, 200)
        a = [rng.choice(["accept", "accept", "reject", "fix"]) for _ in range(n)]
        b = [x if rng.random() < 0.6 else rng.choice(["accept", "reject", "fix"]) for x in a]
        if len(set(a) | set(b)) == 1:
            continue
        assert cohen_kappa(a, b) == pytest.approx(cohen_kappa_score(a, b), abs=1e-12)


def test_kappa_and_agreement_by_hand():
    # 2x2 table: yes/yes 20, yes/no 5, no/yes 10, no/no 15 (n = 50)
    a = ["yes"] * 25 + ["no"] * 25
    b = ["yes"] * 20 + ["no"] * 5 + ["yes"] * 10 + ["no"] * 15
    # p_o = 35/50 = 0.7; p_e = 0.5*0.6 + 0.5*0.4 = 0.5; kappa = 0.2/0.5 = 0.4
    assert raw_agreement(a, b) == pytest.approx(0.7)
    assert cohen_kappa(a, b) == pytest.approx(0.4)
    summary = agreement(a, b)
    assert summary.confusion == {"no": {"no": 15, "yes": 10}, "yes": {"no": 5, "yes": 20}}
    assert summary.ci95 is not None and summary.ci95[0] < 0.4 < summary.ci95[1]


def test_undefined_kappa_is_none_not_a_number():
    same = ["accept"] * 10
    assert cohen_kappa(same, same) is None
    with pytest.warns(UserWarning):  # scikit-learn: undefined, NaN (its UndefinedMetricWarning)
        assert math.isnan(cohen_kappa_score(same, same))
    assert bootstrap_kappa_ci(same, same, n_boot=50) is None
    with pytest.raises(ValueError):
        cohen_kappa([], [])
    with pytest.raises(ValueError):
        cohen_kappa(["a"], ["a", "b"])


def test_bootstrap_ci_is_seeded():
    rng = random.Random(1)
    a = [rng.choice("xyz") for _ in range(60)]
    b = [x if rng.random() < 0.7 else "x" for x in a]
    ci = bootstrap_kappa_ci(a, b, n_boot=300, seed=4)
    assert ci == bootstrap_kappa_ci(a, b, n_boot=300, seed=4)
    assert ci != bootstrap_kappa_ci(a, b, n_boot=300, seed=5)
    assert ci[0] <= cohen_kappa(a, b) <= ci[1]


def test_assignment_two_distinct_reviewers_balanced_and_seeded():
    qids = [f"q{i}" for i in range(101)]
    out = assign_reviewers(qids, POOL, seed=2)
    assert [a.qid for a in out] == qids
    assert all(len(set(a.reviewers)) == 2 for a in out)
    load = Counter(r for a in out for r in a.reviewers)
    assert max(load.values()) - min(load.values()) <= 1 and sum(load.values()) == 202
    first = Counter(a.reviewers[0] for a in out)
    assert max(first.values()) - min(first.values()) <= 1  # nobody is always "rater 1"
    assert out == assign_reviewers(qids, POOL, seed=2)
    assert out != assign_reviewers(qids, POOL, seed=3)
    with pytest.raises(ReviewError, match="at least 2"):
        assign_reviewers(qids, ["solo"])
    with pytest.raises(ReviewError, match="more than once"):
        assign_reviewers(qids, ["a", "b", "a"])


def _simulate(ws: ReviewWorkspace, seed: int = 0) -> list[Verdict]:
    """Two reviewers per item who mostly agree; fixes pick another option."""
    rng = random.Random(seed)
    out = []
    for qid, revs in ws.assignments().items():
        item = ws.bench.item(qid)
        base = rng.choice(["accept"] * 6 + ["reject", "fix"])
        for r in revs:
            v = base if rng.random() < 0.8 else rng.choice(["accept", "reject"])
            fix = [next(k for k in item.options if k not in item.answer)] if v == "fix" else None
            out.append(Verdict(qid=qid, reviewer=r, verdict=v, corrected_answer=fix, comment=f"{r} on {qid}"))
    return out


@pytest.fixture
def workspace(tmp_path):
    bench = build_bench(tmp_path / "src", tmp_path / "bench")
    return ReviewWorkspace.create(tmp_path / "review", bench, POOL, seed=1)


def test_workspace_agreement_equals_sklearn_overall_and_per_sub_dimension(workspace):
    verdicts = _simulate(workspace)
    assert workspace.import_verdicts([(None, v) for v in verdicts], "sim") == len(verdicts)
    result = workspace.agreement(n_boot=200)
    by = {(v.qid, v.reviewer): v.verdict for v in verdicts}
    slots = workspace.assignments()
    items = {it.qid: it for it in workspace.bench.items}
    a = [by[q, r[0]] for q, r in slots.items()]
    b = [by[q, r[1]] for q, r in slots.items()]
    assert result["overall"]["n"] == len(slots)
    assert result["overall"]["kappa"] == pytest.approx(cohen_kappa_score(a, b))
    assert result["overall"]["raw_agreement"] == pytest.approx(sum(x == y for x, y in zip(a, b, strict=True)) / len(a))
    for code, sub in result["per_sub_dimension"].items():
        sel = [i for i, q in enumerate(slots) if items[q].sub_dimension == code]
        sa, sb = [a[i] for i in sel], [b[i] for i in sel]
        assert sub["n"] == len(sel)
        if len(set(sa) | set(sb)) > 1:
            assert sub["kappa"] == pytest.approx(cohen_kappa_score(sa, sb))
    assert len(result["per_sub_dimension"]) == 10


def test_queue_adjudication_and_finalize(workspace, tmp_path):
    verdicts = _simulate(workspace, seed=3)
    workspace.import_verdicts([(None, v) for v in verdicts], "sim")
    queue = workspace.build_queue()
    pairs = workspace.pairs()
    disagree = {it.qid for it, v1, v2 in pairs if v1.decision() != v2.decision()}
    assert {e["qid"] for e in queue} == disagree and disagree
    for e in queue:
        assert e["adjudicator"] not in workspace.assignments()[e["qid"]]
    assert (workspace.root / "sheets" / f"adjudication-{queue[0]['adjudicator']}.csv").is_file()

    wrong = queue[0]["verdicts"][0]["reviewer"]  # one of the two original reviewers
    with pytest.raises(VerdictsInvalid, match="not queued for adjudication by"):
        workspace.import_adjudications([(7, Verdict(qid=queue[0]["qid"], reviewer=wrong, verdict="accept"))], "adj")

    with pytest.raises(ReviewError, match="undecided"):
        finalize(workspace, tmp_path / "accepted", n_boot=50)

    rng = random.Random(9)
    adjudications = []
    for e in queue:
        item = workspace.bench.item(e["qid"])
        choice = rng.choice(["accept", "reject", "fix"])
        fix = [k for k in item.options if k not in item.answer][:1] if choice == "fix" else None
        adjudications.append(Verdict(qid=e["qid"], reviewer=e["adjudicator"], verdict=choice, corrected_answer=fix))
    workspace.import_adjudications([(None, v) for v in adjudications], "adj")
    report = finalize(workspace, tmp_path / "accepted", n_boot=50)

    assert validate_benchmark(tmp_path / "accepted") == []
    accepted = {it.qid: it for it in load_benchmark(tmp_path / "accepted").items}
    final = {it.qid: v for it, v1, v2 in pairs for v in [v1] if v1.decision() == v2.decision()}
    final.update({v.qid: v for v in adjudications})
    assert report["decisions"]["accept"] == sum(v.verdict == "accept" for v in final.values())
    assert report["decisions"]["reject"] == sum(v.verdict == "reject" for v in final.values())
    assert report["accepted_items"] == len(accepted)
    for qid, v in final.items():
        if v.verdict == "reject":
            assert qid not in accepted
        elif v.verdict == "fix":
            it = accepted[qid]
            assert it.answer == v.corrected_answer and it.meta["review"]["decision"] == "fix"
            if it.format in ("single", "temporal"):  # the gold mode follows the corrected option
                assert it.failure_mode == match_failure_mode(it.options[it.answer[0]])
        else:
            assert accepted[qid].answer == workspace.bench.item(qid).answer
    md = (tmp_path / "accepted" / "review_report.md").read_text()
    assert "Cohen's κ" in md and "| overall |" in md
    assert json.loads((workspace.root / "review_report.json").read_text())["queued"] == len(queue)


def test_drop_open_leaves_pending_items_out(workspace, tmp_path):
    verdicts = _simulate(workspace, seed=5)
    agreeing = {it.qid for it, v1, v2 in _pairs_of(workspace, verdicts) if v1.decision() == v2.decision()}
    keep = [v for v in verdicts if v.qid in agreeing][:40]  # some items get no verdicts at all
    workspace.import_verdicts([(None, v) for v in keep], "part")
    report = finalize(workspace, tmp_path / "acc", drop_open=True, n_boot=20)
    decided = {v.qid for v in keep if sum(k.qid == v.qid for k in keep) == 2}
    assert report["decisions"]["pending"] == len(workspace.bench.items) - len(decided)


def _pairs_of(ws, verdicts):
    by = {(v.qid, v.reviewer): v for v in verdicts}
    return [(ws.bench.item(q), by[q, r[0]], by[q, r[1]]) for q, r in ws.assignments().items()]


def test_imports_check_assignment_and_corrections(workspace):
    qid, (r1, _) = next(iter(workspace.assignments().items()))
    outsider = next(p for p in POOL if p not in workspace.assignments()[qid])
    item = workspace.bench.item(qid)
    rows = [(2, Verdict(qid=qid, reviewer=outsider, verdict="accept")),
            (3, Verdict(qid="nope", reviewer=r1, verdict="accept")),
            (4, Verdict(qid=qid, reviewer=r1, verdict="fix", corrected_answer=["Z"]))]
    with pytest.raises(VerdictsInvalid) as exc:
        workspace.import_verdicts(rows, "v.jsonl")
    text = str(exc.value)
    assert "v.jsonl:2: reviewer" in text and "v.jsonl:3: qid: unknown qid 'nope'" in text
    assert "v.jsonl:4: corrected_answer" in text and "not among the options" in text
    # a later import replaces the reviewer's earlier verdict instead of adding a second one
    workspace.import_verdicts([(None, Verdict(qid=qid, reviewer=r1, verdict="reject"))], "a")
    workspace.import_verdicts([(None, Verdict(qid=qid, reviewer=r1, verdict="fix",
                                              corrected_answer=[next(iter(item.options))]))], "b")
    mine = [v for v in workspace.verdicts() if v.qid == qid]
    assert [v.verdict for v in mine] == ["fix"]


def test_verdict_files_csv_and_jsonl(tmp_path, workspace):
    sheet = workspace.root / "sheets" / "ana.csv"
    with sheet.open() as fh:
        rows = list(csv.DictReader(fh))
    assert rows and all(r["reviewer"] == "ana" and r["question"] for r in rows)
    rows[0]["verdict"], rows[1]["verdict"] = "Accept", "reject"
    rows[2].update(verdict="fix", corrected_answer="A; B" if rows[2]["format"] == "multi" else "A")
    with sheet.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    verdicts = read_verdicts(sheet)  # blank rows are not verdicts; context columns are ignored
    assert [v.verdict for v in verdicts] == ["accept", "reject", "fix"]
    assert verdicts[2].corrected_answer in (["A"], ["A", "B"])
    assert workspace.import_file(sheet) == 3

    path = write_verdicts(verdicts, tmp_path / "v.jsonl")
    assert read_verdicts(path) == verdicts

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"qid": "q", "reviewer": "r", "verdict": "fix"}\n{"qid": "q", "reviewer": "r", "verdict": "ok"}\n'
                   '{"qid": "q2", "reviewer": "r", "verdict": "accept", "corrected_answer": ["A"]}\n'
                   '{"qid": "q3", "reviewer": "r", "verdict": "accept"}\n{"qid": "q3", "reviewer": "r", "verdict": "reject"}\n')
    with pytest.raises(VerdictsInvalid) as exc:
        read_verdict_rows(bad)
    text = str(exc.value)
    assert f"{bad}:1: corrected_answer: a 'fix' verdict needs" in text
    assert f"{bad}:2: verdict" in text and f"{bad}:3: corrected_answer: only 'fix'" in text
    assert f"{bad}:5: qid: second verdict of r on q3 (first on line 4)" in text

    typo = tmp_path / "typo.csv"
    typo.write_text("qid,reviewer,verdit\nq,r,accept\n")
    with pytest.raises(VerdictsInvalid, match="unknown column 'verdit'"):
        read_verdicts(typo)


def test_workspace_needs_an_outside_adjudicator(tmp_path):
    bench = build_bench(tmp_path / "src", tmp_path / "bench")
    with pytest.raises(ReviewError, match="adjudicator who did not review"):
        ReviewWorkspace.create(tmp_path / "r", bench, ["a", "b"])
    ws = ReviewWorkspace.create(tmp_path / "r", bench, ["a", "b"], adjudicators=["c"])
    assert ws.manifest["adjudicators"] == ["c"]
    with pytest.raises(FileExistsError):
        ReviewWorkspace.create(tmp_path / "r", bench, ["a", "b"], adjudicators=["c"])
    with pytest.raises(ReviewError, match="not a review workspace"):
        ReviewWorkspace(tmp_path / "nothing")


def test_cli_review_round(tmp_path):
    import mtavg.cli_construct_qa  # noqa: F401 - registers the commands
    from mtavg.cli import app

    bench = build_bench(tmp_path / "src", tmp_path / "bench")
    ws_dir, runner = tmp_path / "review", CliRunner()
    res = runner.invoke(app, ["construct", "review", "assign", str(bench), "--workspace", str(ws_dir),
                              "--reviewers", "ana,ben,cai", "--seed", "4"])
    assert res.exit_code == 0, res.output
    ws = ReviewWorkspace(ws_dir)
    verdicts = _simulate(ws, seed=11)
    files = []
    for name in ("ana", "ben", "cai"):
        files.append(write_verdicts([v for v in verdicts if v.reviewer == name], tmp_path / f"{name}.jsonl"))
    res = runner.invoke(app, ["construct", "review", "import", str(ws_dir), *map(str, files)])
    assert res.exit_code == 0 and f"{len(verdicts)} verdict(s) imported" in res.output, res.output
    res = runner.invoke(app, ["construct", "review", "agreement", str(ws_dir), "--json", "--n-boot", "50"])
    assert res.exit_code == 0
    by = {(v.qid, v.reviewer): v.verdict for v in verdicts}
    slots = ws.assignments()
    assert json.loads(res.stdout)["overall"]["kappa"] == pytest.approx(
        cohen_kappa_score([by[q, r[0]] for q, r in slots.items()], [by[q, r[1]] for q, r in slots.items()]))
    assert runner.invoke(app, ["construct", "review", "queue", str(ws_dir)]).exit_code == 0
    adj = [Verdict(qid=q, reviewer=e["adjudicator"], verdict="accept") for q, e in ws.queue().items()]
    adj_file = write_verdicts(adj, tmp_path / "adj.jsonl")
    res = runner.invoke(app, ["construct", "review", "adjudicate", str(ws_dir), str(adj_file)])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["construct", "review", "finalize", str(ws_dir), "--out", str(tmp_path / "acc"),
                              "--n-boot", "50"])
    assert res.exit_code == 0, res.output
    assert validate_benchmark(tmp_path / "acc") == [] and "items accepted" in res.output
    bad = runner.invoke(app, ["construct", "review", "import", str(ws_dir), str(adj_file)])
    assert bad.exit_code == 2 and "not assigned to" in bad.output
