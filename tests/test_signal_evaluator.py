"""The `signal` evaluator answers demo items from the signal alone, abstains elsewhere, beats chance."""

from __future__ import annotations

import asyncio
import json

import pytest

from mtavg.bench import load_benchmark
from mtavg.bench.demo import build_demo_bench
from mtavg.evaluators import Request, make_evaluator
from mtavg.evaluators.signal import SEES, _slug_of
from mtavg.run import run_eval
from mtavg.taxonomy import load_taxonomy

pytest.importorskip("onnxruntime")
from mtavg.metrics.vad import vad_status  # noqa: E402

if vad_status() is not True:
    pytest.skip(f"VAD model unavailable: {vad_status()}", allow_module_level=True)


@pytest.fixture(scope="module")
def demo_results(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo")
    bench = load_benchmark(build_demo_bench(root / "bench"))
    signal = run_eval(bench, make_evaluator("signal", bench.items), root / "signal", progress=False, n_boot=0,
                      concurrency=2)
    rand = run_eval(bench, make_evaluator("baseline:random", bench.items), root / "random", progress=False,
                    n_boot=0)
    rows = [json.loads(x) for x in (root / "signal" / "samples.jsonl").read_text().splitlines()]
    return bench, signal, rand, rows


def test_signal_beats_random_overall_and_on_what_it_sees(demo_results):
    bench, signal, rand, _ = demo_results
    assert signal["overall"] > rand["overall"] + 20
    tax = load_taxonomy()
    claimed = {tax.failure_modes[s].sub_dimension for s in SEES}
    for code, entry in signal["sub_dimensions"].items():
        if code in claimed:
            assert entry["score"] >= rand["sub_dimensions"][code]["score"], code
    assert signal["temporal"]["PIA"] > rand["temporal"]["PIA"]


def test_signal_abstains_instead_of_guessing(demo_results):
    bench, signal, _, rows = demo_results
    by_qid = {it.qid: it for it in bench.items}
    for r in rows:
        item = by_qid[r["qid"]]
        if not r["valid"]:  # an abstention: explicit, never a random letter
            assert r["invalid_reason"] in ("empty_answer", "no_answer_found", "empty") and "abstain" in r["raw"]
        elif item.format != "pairwise":
            assert all(_slug_of(item.options[a]) in SEES for a in r["prediction"]["answer"])
    assert signal["n_invalid"] < len(rows) / 2


def test_text_modality_abstains(demo_results):
    bench, *_ = demo_results
    ev = make_evaluator("signal", bench.items)
    item = bench.items[0]
    req = Request(qid=item.qid, prompt="", media=(), modality="text", format=item.format,
                  question=item.question, options=dict(item.options))
    assert json.loads(asyncio.run(ev.respond(req)).raw)["answer"] == []


def test_option_text_maps_to_slugs():
    assert _slug_of("Speech Mode Confusion") == "speech_mode_confusion"
    assert _slug_of("Which clip shows this problem: Missing Ambient Sound — ...") == "missing_ambient_sound"
    assert _slug_of("Clip 1") is None
