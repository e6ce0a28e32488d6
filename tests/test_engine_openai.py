"""The run engine against a real loopback OpenAI-compatible server: delivery, faults, resume, secrets."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mtavg.bench import load_benchmark
from mtavg.cli import app
from mtavg.evaluators import make_evaluator
from mtavg.limits import RetryPolicy
from mtavg.run import AudioNotDelivered, run_eval
from mtavg.testing.fake_openai import FakeOpenAIServer

pytest.importorskip("openai")
KEY = "sk-mtavg-test-DO-NOT-LEAK-4242424242"
QUESTION = re.compile(r"Question (\d+)")


def _asked(log: list[dict]) -> Counter:
    """How often each item was answered successfully by the server (by its question number)."""
    return Counter(QUESTION.search(r["text"]).group(1) for r in log if r["status"] == 200 and not r.get("fault"))


@pytest.fixture()
def small_bench(random_bench):
    return load_benchmark(random_bench)


@pytest.mark.parametrize("modality,audio,frames", [
    ("full", True, True), ("no_audio", False, True), ("no_vision", True, False), ("text", False, False),
])
def test_what_reaches_the_server_per_modality(small_bench, tmp_path, modality, audio, frames):
    with FakeOpenAIServer() as srv:
        ev = make_evaluator("openai:omni", small_bench.items, base_url=srv.base_url)
        res = run_eval(small_bench, ev, tmp_path / modality, modality=modality, limit=12, progress=False, n_boot=0)
        log = srv.log
    assert len(log) == 12 and res["n_errors"] == 0
    for rec in log:
        videos_with_audio = any(rec["video_has_audio"])
        assert (videos_with_audio or rec["n_audio_parts"] > 0) is audio
        assert (rec["n_video_parts"] + rec["n_image_parts"] > 0) is frames
        if frames:
            assert all(n > 0 for n in rec["video_frames"])
    rows = [json.loads(x) for x in (tmp_path / modality / "samples.jsonl").read_text().splitlines()]
    assert all(r["audio_sent"] is audio and (r["frames_sent"] > 0) is frames for r in rows)
    assert res["audio_delivery"]["ok"]


def test_audio_check_fails_loudly_when_audio_never_arrives(small_bench, tmp_path):
    from mtavg.evaluators import Evaluator, Response

    class Deaf(Evaluator):  # a backend that forgets the audio track, like some harness wrappers
        name = "test:deaf"

        async def respond(self, request):
            return Response(raw='{"answer": ["A"]}', audio_sent=False, frames_sent=8)

    with pytest.raises(AudioNotDelivered, match="never heard"):
        run_eval(small_bench, Deaf(), tmp_path / "deaf", limit=5, progress=False, n_boot=0)
    assert json.loads((tmp_path / "deaf" / "results.json").read_text())["audio_delivery"]["ok"] is False
    run_eval(small_bench, Deaf(), tmp_path / "deaf2", limit=5, progress=False, n_boot=0, modality="no_audio")


def test_twenty_percent_faults_every_item_once_and_rerun_retries_only_errors(small_bench, tmp_path):
    faults = {"p_429": 0.05, "p_500": 0.05, "p_timeout": 0.05, "p_truncated": 0.03, "p_bad_json": 0.02,
              "retry_after": 0.05, "timeout_hold": 2.0, "seed": 3}
    policy = RetryPolicy(max_attempts=2, base_delay_s=0.01, max_delay_s=0.05, timeout_s=0.5)
    items = small_bench.items * 1
    with FakeOpenAIServer(faults=faults, inspect_media=False) as srv:
        ev = make_evaluator("openai:omni", items, base_url=srv.base_url)
        res = run_eval(small_bench, ev, tmp_path / "r", modality="text", concurrency=32, policy=policy,
                       progress=False, n_boot=0)
        first_log = srv.log
    rows = [json.loads(x) for x in (tmp_path / "r" / "samples.jsonl").read_text().splitlines()]
    assert Counter(r["qid"] for r in rows) == Counter(it.qid for it in items)  # none missing, none twice
    injected = sum(1 for r in first_log if r.get("fault"))
    assert injected >= 0.15 * len(first_log)
    errored = {r["qid"] for r in rows if r["error"]}
    assert res["n_errors"] == len(errored) and errored, "with 2 attempts some items must end in an error"
    for r in rows:
        assert r["valid"] if not r["error"] else (r["error_type"] in ("TransientError", "TimeoutError")
                                                 and r["raw"] is None and not r["valid"])
    assert any(r["error_status"] in (429, 500) for r in rows if r["error"])
    with FakeOpenAIServer(inspect_media=False) as srv:
        ev = make_evaluator("openai:omni", items, base_url=srv.base_url)
        res2 = run_eval(small_bench, ev, tmp_path / "r", modality="text", progress=False, n_boot=0)
        second = srv.log
    asked_again = {QUESTION.search(r["text"]).group(1) for r in second}
    errored_questions = {str(int(q[1:])) for q in errored}
    assert asked_again == errored_questions and res2["n_errors"] == 0


def test_finished_run_and_fresh_dir_make_zero_calls_and_keys_stay_off_disk(small_bench, tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    with FakeOpenAIServer() as srv:
        for out in ("a", "a", "b"):  # run, re-run finished run, new dir with the same items (cache)
            ev = make_evaluator("openai:omni", small_bench.items, base_url=srv.base_url)
            res = run_eval(small_bench, ev, tmp_path / out, limit=20, progress=False, n_boot=0)
        assert len(srv.log) == 20 and all(r["auth_header_present"] for r in srv.log)
    assert res["session"]["calls"] == 0 and res["session"]["cached"] == 20
    assert all(json.loads(x)["cached"] for x in (tmp_path / "b" / "samples.jsonl").read_text().splitlines())
    cache_dir = Path(os.environ["MTAVG_CACHE_DIR"])
    for root in (tmp_path, cache_dir):
        for f in root.rglob("*"):
            if f.is_file():
                assert KEY.encode() not in f.read_bytes(), f


def test_sigkill_then_rerun_never_asks_an_answered_item_again(random_bench, tmp_path):
    server = subprocess.Popen([sys.executable, "-m", "mtavg.testing.fake_openai", "--port", "0",
                               "--latency", "0.05", "--no-inspect"], stdout=subprocess.PIPE, text=True)
    try:
        base_url = server.stdout.readline().strip()
        out = tmp_path / "run"
        cmd = [sys.executable, "-m", "mtavg", "eval", "--bench", str(random_bench), "--model", "openai:omni",
               "--base-url", base_url, "--out", str(out), "--modality", "text", "--concurrency", "4",
               "--no-progress"]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        samples = out / "samples.jsonl"
        deadline = time.time() + 60
        while time.time() < deadline and (not samples.exists() or samples.read_text().count("\n") < 40):
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        saved = {json.loads(x)["qid"] for x in samples.read_text().splitlines() if x.endswith("}")}
        assert 0 < len(saved) < 120
        subprocess.run(cmd, check=True, capture_output=True, timeout=120)
        import urllib.request

        log = json.loads(urllib.request.urlopen(base_url.rsplit("/v1", 1)[0] + "/_log").read())
    finally:
        server.terminate()
        server.wait(timeout=10)
    asked = _asked(log)
    twice = {q for q, n in asked.items() if n > 1}
    # Only requests in flight at the kill (answered by the server, never received) may be asked again.
    assert len(asked) == 120 and len(twice) <= 4 and not twice & {str(int(q[1:])) for q in saved}
    rows = [json.loads(x) for x in samples.read_text().splitlines()]
    assert sorted(r["qid"] for r in rows) == sorted({r["qid"] for r in rows}) and len(rows) == 120


def test_cli_eval_with_backend_options_and_ledger(random_bench, tmp_path):
    with FakeOpenAIServer() as srv:
        res = CliRunner().invoke(app, [
            "eval", "--bench", str(random_bench), "--model", "openai:omni", "--base-url", srv.base_url,
            "--out", str(tmp_path / "r"), "--limit", "6", "--option", "video_mode=frames", "--option",
            "max_frames=3", "--price-in", "1.5", "--price-out", "6", "--no-progress"])
        log = srv.log
    assert res.exit_code == 0, res.output
    rows = [json.loads(x) for x in (tmp_path / "r" / "samples.jsonl").read_text().splitlines()]
    assert sum(r["n_image_parts"] for r in log) == sum(r["frames_sent"] for r in rows) > 0
    assert all(0 < r["n_image_parts"] <= 3 * r["text"].count("frames at") for r in log)
    assert all(r["media_params"]["video_mode"] == "frames" for r in rows)
    results = json.loads((tmp_path / "r" / "results.json").read_text())
    usage = results["usage"]
    assert usage["prompt_tokens"] > 0 and usage["cost_usd"] == pytest.approx(
        (usage["prompt_tokens"] * 1.5 + usage["completion_tokens"] * 6) / 1e6, abs=1e-6)
    assert "cost $" in res.output


def test_cli_judge_through_an_openai_judge_fills_rc(random_bench, tmp_path):
    runner = CliRunner()
    res = runner.invoke(app, ["eval", "--bench", str(random_bench), "--model", "baseline:random",
                              "--out", str(tmp_path / "r"), "--no-progress"])
    assert res.exit_code == 0
    with FakeOpenAIServer(responder=lambda body: '{"score": 4, "rationale": "supported"}') as srv:
        res = runner.invoke(app, ["judge", str(tmp_path / "r"), "--judge", "openai:judge-a", "--judge",
                                  "openai:judge-b", "--base-url", srv.base_url, "--no-progress"])
        n_temporal = sum(1 for it in load_benchmark(random_bench).items if it.format == "temporal")
        assert res.exit_code == 0, res.output
        assert len(srv.log) == 2 * n_temporal
        assert all(r["n_video_parts"] == 0 and "Annotated evidence" in r["text"] for r in srv.log)
    results = json.loads((tmp_path / "r" / "results.json").read_text())
    assert results["temporal"]["RC"] == 80.0 and results["temporal"]["RC_n"] == n_temporal
    assert set(results["temporal"]["RC_judges"]) == {"openai:judge-a", "openai:judge-b"}
