"""`mtavg avbench score`: yes/no probabilities per clip of a pair dataset, the summary, resume, the CLI.

Scores are checked against values computed by hand from the logprobs a loopback server sends for each
clip; the summary against sklearn and hand-made rows.
"""

from __future__ import annotations

import json
import math
import statistics
import threading
import zlib
from importlib.resources import files
from pathlib import Path
from string import Template
from urllib.parse import unquote, urlparse

import numpy as np
import pytest
from typer.testing import CliRunner

from conftest import write_tiny_clip
from mtavg.bench import load_benchmark
from mtavg.cli import app
from mtavg.evaluators import make_evaluator
from mtavg.perturb.build import BuildOptions, build_pairs
from mtavg.suites.avbench import ScoreConflict, read_scores, score_pairs, summarize, weighted_auc
from mtavg.suites.yesno import parse_yes_no
from mtavg.testing.fake_openai import FakeOpenAIServer

runner = CliRunner()
YES, NO = (" Yes", "Yes", "yes"), ("No", "NO", " no")
SECRET = "sk-live-SECRET-0d1e2a7b9c4f63851"


@pytest.fixture(autouse=True)
def _env(monkeypatch, tmp_path):
    monkeypatch.setenv("MTAVG_CACHE_DIR", str(tmp_path / "media_cache"))


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    src = tmp_path_factory.mktemp("clips")
    for i in range(4):
        write_tiny_clip(src / f"cat{i % 2}" / f"clip{i}.mp4", 2.0, seed=i)
    out = tmp_path_factory.mktemp("pairs")
    report = build_pairs(src, out, BuildOptions(mix="time_shift=1,noise=1", n=4, jobs=1))
    assert not report.failed
    bench = load_benchmark(str(out))
    assert len(bench.items) == 8 and {it.meta["role"] for it in bench.items} == {"positive", "negative"}
    return out, bench


# ---------------------------------------------------------------- a server with per-clip logprobs
def clip_of(body: dict) -> str | None:
    """The clip id of a request sent with transport="file" (the stem of its first file:// URL)."""
    for msg in body.get("messages") or []:
        for part in msg.get("content") if isinstance(msg.get("content"), list) else []:
            for key in ("video_url", "audio_url", "image_url"):
                url = (part.get(key) or {}).get("url", "") if isinstance(part, dict) else ""
                if url.startswith("file://"):
                    return Path(unquote(urlparse(url).path)).stem
    return None


def alts_for(clip: str | None) -> list[tuple[str, float]]:
    """Distinct top logprobs per clip: yes and no variants and an unrelated token, in a per-clip order
    (so the reply token itself is sometimes "Maybe" or a "No" variant)."""
    rng = np.random.default_rng(zlib.crc32((clip or "?").encode()))
    tokens = [*YES, *NO, "Maybe"]
    probs = rng.dirichlet(np.ones(len(tokens))) * 0.97  # the rest is outside the top list
    order = rng.permutation(len(tokens))
    return [(tokens[i], math.log(float(probs[i]))) for i in order]


def hand_p_yes(alts: list[tuple[str, float]]) -> float:
    yes = sum(math.exp(lp) for t, lp in alts if t in YES)
    no = sum(math.exp(lp) for t, lp in alts if t in NO)
    return yes / (yes + no)


class Recorder:
    """first_token callable that answers with ``alts_for`` and keeps each request body per clip."""

    def __init__(self) -> None:
        self.bodies: dict[str, dict] = {}
        self.lock = threading.Lock()

    def __call__(self, body: dict) -> list[tuple[str, float]]:
        clip = clip_of(body)
        with self.lock:
            self.bodies[clip or "?"] = body
        return alts_for(clip)


def openai_ev(srv: FakeOpenAIServer, bench, **kw):
    return make_evaluator("openai:fake", bench.items, base_url=srv.base_url, transport="file", **kw)


def rows_of(out: Path) -> list[dict]:
    return read_scores(out / "scores.jsonl")


# ---------------------------------------------------------------- 1. fake openai
def test_scores_are_the_hand_computed_yes_share(dataset, tmp_path):
    root, bench = dataset
    rec = Recorder()
    with FakeOpenAIServer(first_token=rec) as srv:
        summary = score_pairs(bench, openai_ev(srv, bench), tmp_path / "run", cache_path=tmp_path / "c.sqlite",
                              progress=False, n_boot=50)
        log = srv.log
    rows = rows_of(tmp_path / "run")
    assert len(rows) == len(bench.items) == len(log) == summary["n_items"]
    assert {r["qid"] for r in rows} == {it.qid for it in bench.items}
    firsts = set()
    for r in rows:
        alts = alts_for(r["clip_id"])
        firsts.add(alts[0][0])
        assert r["valid"] is True and r["error"] is None and r["method"] == "prob"
        assert r["score"] == pytest.approx(hand_p_yes(alts), abs=1e-12)
    assert len({r["score"] for r in rows}) == len(rows)  # really per clip
    assert summary["n_failed"] == 0 and summary["errors"] == 0
    # What was asked: one token, its top 20 alternatives, the yes/no prompt with the item's question.
    template = Template((files("mtavg.prompts") / "yes_no.txt").read_text(encoding="utf-8"))
    for entry in log:
        assert entry["max_tokens"] == 1 and entry["logprobs"] is True and entry["top_logprobs"] == 20
        assert entry["url_schemes"] == ["file"] and entry["video_has_audio"] == [True]
    for it in bench.items:
        text = "\n".join(p["text"] for m in rec.bodies[it.video_ids[0]]["messages"]
                         for p in m["content"] if p.get("type") == "text")
        assert template.substitute(question=it.question).strip() in text
        assert it.question in text and "Yes or No" in text
    assert firsts - {"Maybe"}, "some replies should start with a yes/no variant"


def test_server_without_logprobs_fails_every_row_and_nothing_crashes(dataset, tmp_path):
    _, bench = dataset
    with FakeOpenAIServer(first_token=lambda b: None) as srv:
        summary = score_pairs(bench, openai_ev(srv, bench), tmp_path / "run", cache_path=tmp_path / "c.sqlite",
                              progress=False, n_boot=50)
        n_calls = len(srv.log)
    rows = rows_of(tmp_path / "run")
    assert len(rows) == len(bench.items) == n_calls  # a permanent error: no retries
    for r in rows:
        assert r["score"] is None and r["valid"] is False
        assert "no logprobs" in r["error"] and r["error_type"] == "PermanentError"
    assert summary["n_failed"] == summary["errors"] == len(rows) and summary["n_invalid"] == 0
    block = summary["dimensions"]["av_consistency"]
    assert block["auc"]["value"] is None and block["positives"]["n_failed"] == 4
    assert block["pairwise_accuracy"]["n_incomplete"] == block["pairwise_accuracy"]["n_pairs"] == 4
    assert block["pairwise_accuracy"]["value"] == 0.0
    saved = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert saved["n_failed"] == len(rows)


# ---------------------------------------------------------------- 2. tiny hf model
@pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")  # transformers' own code
def test_tiny_hf_model_scores_are_probabilities(dataset, tmp_path_factory, tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("transformers", minversion="4.52")
    from mtavg.testing.tiny_qwen_omni import build_tiny_qwen_omni

    _, bench = dataset
    tiny = build_tiny_qwen_omni(tmp_path_factory.mktemp("tiny_qwen_omni"))
    ev = make_evaluator(f"hf:{tiny}", bench.items, max_pixels=112 * 112, fps=2.0)
    summary = score_pairs(bench, ev, tmp_path / "run", limit=2, cache_path=tmp_path / "c.sqlite",
                          progress=False, n_boot=20)
    rows = rows_of(tmp_path / "run")
    assert len(rows) == 2 and summary["n_items"] == 2 and summary["n_failed"] == 0
    for r in rows:
        assert r["error"] is None and r["valid"] is True
        assert isinstance(r["score"], float) and math.isfinite(r["score"]) and 0.0 < r["score"] < 1.0


# ---------------------------------------------------------------- 3. the summary
def row(source, role, score, *, perturbation=None, level=None, dim="av_consistency", error=None) -> dict:
    return {"qid": f"{source}-{role}-{perturbation}-{dim}", "dimension": dim, "role": role, "source_id": source,
            "perturbation": perturbation or "none", "level": level, "score": score, "error": error,
            "valid": score is not None}


def neg(source, score, perturbation, level, **kw) -> dict:
    return row(source, "negative", score, perturbation=perturbation, level=level, **kw)


ROWS = [
    row("A", "positive", 0.9), neg("A", 0.2, "time_shift", "easy"), neg("A", 0.9, "noise", "hard"),  # 1, tie
    row("B", "positive", 0.6), neg("B", 0.7, "time_shift", "hard"),  # lost
    neg("B", None, "noise", "easy", error="PermanentError: boom"),  # failed negative: a lost pair
    row("C", "positive", 0.4), neg("C", 0.4, "time_shift", "easy"),  # tie
    row("D", "positive", None), neg("D", 0.1, "time_shift", "easy"),  # invalid positive: a lost pair
    row("E", "positive", 0.8), neg("E", 0.5, "time_shift", "hard"),  # won
    row("S", "positive", 0.7, dim="visual_quality"), neg("S", 0.2, "freeze", "easy", dim="visual_quality"),
]


def auc_of(rows: list[dict], kind: str | None = None, level: str | None = None) -> float:
    from sklearn.metrics import roc_auc_score

    keep = [r for r in rows if r["score"] is not None and (r["role"] == "positive" or (
        (kind is None or r["perturbation"] == kind) and (level is None or r["level"] == level)))]
    return float(roc_auc_score([r["role"] == "positive" for r in keep], [r["score"] for r in keep]))


def test_summary_matches_sklearn_and_hand_values():
    s = summarize(ROWS, n_boot=400, seed=1)
    assert (s["n_items"], s["n_failed"], s["n_invalid"], s["errors"]) == (14, 2, 1, 1)
    av = [r for r in ROWS if r["dimension"] == "av_consistency"]
    d = s["dimensions"]["av_consistency"]
    approx = lambda x: pytest.approx(x, abs=1e-6)  # noqa: E731 - the summary rounds to 6 places

    # AUC over scored clips, ties counting half (sklearn), failed clips left out
    assert d["auc"]["value"] == approx(auc_of(av))
    assert (d["auc"]["n_pos"], d["auc"]["n_neg"]) == (4, 6)
    # pairwise: A 1, A-noise tie 0.5, B 0, B-noise failed 0, C tie 0.5, D failed positive 0, E 1
    assert d["pairwise_accuracy"]["value"] == approx(3.0 / 7)
    assert (d["pairwise_accuracy"]["n_pairs"], d["pairwise_accuracy"]["n_incomplete"]) == (7, 2)
    # mean / std / share >= 0.5 of the scored clips
    pos, negs = [0.9, 0.6, 0.4, 0.8], [0.2, 0.9, 0.7, 0.4, 0.1, 0.5]
    assert d["positives"] == {"n": 5, "n_scored": 4, "n_failed": 1, "mean": approx(0.675),
                              "std": approx(statistics.stdev(pos)), "share_ge_0_5": approx(0.75)}
    assert d["negatives"] == {"n": 7, "n_scored": 6, "n_failed": 1, "mean": approx(2.8 / 6),
                              "std": approx(statistics.stdev(negs)), "share_ge_0_5": approx(0.5)}
    assert d["all"]["n"] == 12 and d["all"]["mean"] == approx(statistics.mean(pos + negs))

    # by perturbation: all positives against that type's negatives
    ts, noise = d["by_perturbation"]["time_shift"], d["by_perturbation"]["noise"]
    assert set(d["by_perturbation"]) == {"time_shift", "noise"}
    assert ts["auc"]["value"] == approx(auc_of(av, kind="time_shift"))
    assert ts["pairwise_accuracy"]["value"] == approx(2.5 / 5) and ts["pairwise_accuracy"]["n_incomplete"] == 1
    assert ts["negatives"]["mean"] == approx(statistics.mean([0.2, 0.7, 0.4, 0.1, 0.5]))
    assert noise["auc"]["value"] == approx(auc_of(av, kind="noise")) == approx(0.5 / 4)
    assert noise["pairwise_accuracy"]["value"] == approx(0.25) and noise["negatives"]["n_failed"] == 1
    assert noise["positives"]["n"] == 5
    # by level
    easy, hard = d["by_level"]["easy"], d["by_level"]["hard"]
    assert set(d["by_level"]) == {"easy", "hard"}
    assert easy["auc"]["value"] == approx(auc_of(av, level="easy"))
    assert hard["auc"]["value"] == approx(auc_of(av, level="hard"))
    assert easy["pairwise_accuracy"]["value"] == approx(1.5 / 4) and easy["pairwise_accuracy"]["n_incomplete"] == 2
    assert hard["pairwise_accuracy"]["value"] == approx(1.5 / 3) and hard["pairwise_accuracy"]["n_incomplete"] == 0

    # CIs: none with fewer than 3 source clusters on a side, else an interval around the estimate
    assert noise["auc"]["ci95"] is None and noise["pairwise_accuracy"]["ci95"] is None  # negatives of A, B only
    vq = s["dimensions"]["visual_quality"]
    assert vq["auc"]["value"] == 1.0 and vq["auc"]["ci95"] is None and vq["pairwise_accuracy"]["ci95"] is None
    for block in (d, ts, easy, hard):
        for key in ("auc", "pairwise_accuracy"):
            lo, hi = block[key]["ci95"]
            assert lo <= block[key]["value"] <= hi and lo < hi
    # deterministic for the seed; another seed resamples differently
    assert summarize(ROWS, n_boot=400, seed=1) == s
    assert summarize(ROWS, n_boot=400, seed=2)["dimensions"]["av_consistency"]["auc"]["ci95"] != d["auc"]["ci95"]


def test_numeric_levels_group_their_negatives():
    rows = [row(s, "positive", 0.8) for s in "ABC"] + [
        neg("A", 0.1, "noise", 1), neg("B", 0.9, "noise", 2), neg("C", 0.3, "noise", 1)]
    levels = summarize(rows, n_boot=0)["dimensions"]["av_consistency"]["by_level"]
    assert set(levels) == {"1", "2"}
    assert levels["1"]["negatives"]["n"] == 2 and levels["1"]["auc"]["value"] == 1.0
    assert levels["2"]["negatives"]["n"] == 1 and levels["2"]["auc"]["value"] == 0.0


def test_weighted_auc_equals_sklearn_with_sample_weights():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(7)
    pos = np.round(rng.uniform(0.2, 1.0, 30), 1)  # one decimal: many ties within and across the classes
    neg = np.round(rng.uniform(0.0, 0.8, 25), 1)
    w_pos = rng.integers(0, 4, (6, 30)).astype(float)
    w_neg = rng.integers(0, 4, (6, 25)).astype(float)
    got = weighted_auc(pos, neg, w_pos, w_neg)
    for b in range(6):
        want = roc_auc_score(np.r_[np.ones(30), np.zeros(25)], np.r_[pos, neg], sample_weight=np.r_[w_pos[b], w_neg[b]])
        assert got[b] == pytest.approx(want, abs=1e-12)
    ones = weighted_auc(pos, neg, np.ones((1, 30)), np.ones((1, 25)))[0]
    assert ones == pytest.approx(roc_auc_score(np.r_[np.ones(30), np.zeros(25)], np.r_[pos, neg]), abs=1e-12)
    assert np.isnan(weighted_auc(pos, neg, np.zeros((1, 30)), np.ones((1, 25)))[0])  # nothing to compare


# ---------------------------------------------------------------- 4. run behaviour
def test_rerun_makes_no_calls_and_the_cache_serves_a_new_dir(dataset, tmp_path):
    _, bench = dataset
    cache = tmp_path / "c.sqlite"
    with FakeOpenAIServer(first_token=Recorder()) as srv:
        first = score_pairs(bench, openai_ev(srv, bench), tmp_path / "run", cache_path=cache, progress=False, n_boot=50)
        n = len(srv.log)
        again = score_pairs(bench, openai_ev(srv, bench), tmp_path / "run", cache_path=cache, progress=False, n_boot=50)
        assert len(srv.log) == n == len(bench.items)
        assert again["session"]["calls"] == 0
        other = score_pairs(bench, openai_ev(srv, bench), tmp_path / "run2", cache_path=cache, progress=False,
                            n_boot=50)
        assert len(srv.log) == n, "a yes/no probability scored before must come from the cache"
    strip = lambda s: {k: v for k, v in s.items() if k != "session"}  # noqa: E731
    assert strip(again) == strip(first) == strip(other)
    assert all(r["cached"] for r in rows_of(tmp_path / "run2"))
    assert sorted(r["score"] for r in rows_of(tmp_path / "run2")) == sorted(r["score"] for r in rows_of(tmp_path / "run"))
    with pytest.raises(ScoreConflict, match="baseline:random|openai:fake"):
        score_pairs(bench, make_evaluator("baseline:random", bench.items), tmp_path / "run", progress=False)
    with pytest.raises(ScoreConflict):
        score_pairs(bench, openai_ev(srv, bench), tmp_path / "run", method="answer", progress=False)


def test_prob_needs_logprobs_and_answer_uses_the_option_parser(dataset, tmp_path):
    _, bench = dataset
    text = make_evaluator("baseline:text", bench.items)
    with pytest.raises(ValueError, match="--method answer"):
        score_pairs(bench, text, tmp_path / "prob", progress=False)
    assert not (tmp_path / "prob" / "scores.jsonl").exists()
    with pytest.raises(ValueError, match="method 'logits'"):
        score_pairs(bench, text, tmp_path / "x", method="logits", progress=False)
    summary = score_pairs(bench, text, tmp_path / "answer", method="answer", progress=False, n_boot=50)
    rows = rows_of(tmp_path / "answer")
    assert len(rows) == len(bench.items) and summary["n_failed"] == 0
    for r in rows:
        assert parse_yes_no(r["raw"]) is None  # {"answer": ["A"], ...}: read through the item's options
        assert json.loads(r["raw"])["answer"] == ["A"]  # "Yes" is the longer option: the text baseline's pick
        assert r["score"] == 1.0 and r["valid"] is True and r["method"] == "answer"


def test_answers_without_yes_or_no_are_invalid_not_guessed(dataset, tmp_path):
    _, bench = dataset
    replies = {"pos": "Yes, they match.", "neg-00000": "No.", "neg-00001": '{"answer": ["B"]}'}

    def responder(body: dict) -> str:
        clip = clip_of(body) or ""
        return next((v for k, v in replies.items() if clip.startswith(k)), "I cannot tell from this clip.")

    with FakeOpenAIServer(responder=responder) as srv:
        summary = score_pairs(bench, openai_ev(srv, bench), tmp_path / "run", method="answer",
                              cache_path=tmp_path / "c.sqlite", progress=False, n_boot=50)
    rows = {r["clip_id"]: r for r in rows_of(tmp_path / "run")}
    assert all(rows[c]["score"] == 1.0 for c in rows if c.startswith("pos"))
    assert rows["neg-00000"]["score"] == 0.0 and rows["neg-00001"]["score"] == 0.0
    for c in ("neg-00002", "neg-00003"):
        assert rows[c]["score"] is None and rows[c]["valid"] is False and rows[c]["error"] is None
        assert rows[c]["invalid_reason"]
    assert summary["n_invalid"] == 2 and summary["n_failed"] == 2 and summary["errors"] == 0


def test_the_api_key_is_never_written(dataset, tmp_path, monkeypatch):
    _, bench = dataset
    monkeypatch.setenv("MTAVG_TEST_KEY", SECRET)
    cache = tmp_path / "c.sqlite"
    with FakeOpenAIServer(first_token=Recorder()) as srv:
        score_pairs(bench, openai_ev(srv, bench, api_key_env="MTAVG_TEST_KEY"), tmp_path / "ok", cache_path=cache,
                    progress=False, n_boot=20)
        assert all(e["auth_header_present"] for e in srv.log)
    with FakeOpenAIServer(first_token=lambda b: None) as srv:
        score_pairs(bench, openai_ev(srv, bench, api_key_env="MTAVG_TEST_KEY"), tmp_path / "failed",
                    cache_path=cache, progress=False, n_boot=20)
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.name == "c.sqlite" for p in written) and any(p.name == "scores.jsonl" for p in written)
    for p in written:
        assert SECRET.encode() not in p.read_bytes(), p


# ---------------------------------------------------------------- 5. CLI
def test_cli_score_then_summarize(dataset, tmp_path):
    root, bench = dataset
    out = tmp_path / "run"
    res = runner.invoke(app, ["avbench", "score", str(root), "--model", "baseline:random", "--out", str(out),
                              "--no-progress"])
    assert res.exit_code == 0, res.output
    summary = json.loads((out / "summary.json").read_text())
    rows = rows_of(out)
    assert len(rows) == summary["n_items"] == len(bench.items) and summary["n_failed"] == 0
    assert all(0.0 <= r["score"] <= 1.0 for r in rows) and len({r["score"] for r in rows}) == len(rows)
    assert summary["evaluator"] == "baseline:random" and summary["method"] == "prob"
    res = runner.invoke(app, ["avbench", "summarize", str(out / "scores.jsonl"), "--out", str(tmp_path / "s.json")])
    assert res.exit_code == 0, res.output
    again = json.loads((tmp_path / "s.json").read_text())
    for key in ("n_items", "n_failed", "n_invalid", "errors", "dimensions", "evaluator", "method"):
        assert again[key] == summary[key], key
    dim = again["dimensions"]["av_consistency"]
    assert dim["auc"]["value"] == pytest.approx(auc_of(rows), abs=1e-6)


def test_cli_summarize_takes_the_score_directory(dataset, tmp_path):
    root, _ = dataset
    out = tmp_path / "run"
    assert runner.invoke(app, ["avbench", "score", str(root), "--model", "baseline:random", "--out", str(out),
                               "--no-progress"]).exit_code == 0
    res = runner.invoke(app, ["avbench", "summarize", str(out), "--out", str(tmp_path / "s.json")])
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "s.json").read_text())["n_items"] == json.loads(
        (out / "summary.json").read_text())["n_items"]
