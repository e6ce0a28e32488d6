"""Several OpenAI-compatible endpoints: balancing by load, failover with no lost item, counters, secrets."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections import Counter

import pytest
from typer.testing import CliRunner

from mtavg.bench import load_benchmark
from mtavg.cli import app
from mtavg.endpoints import EndpointPool, display_url, endpoint_options, is_endpoint_failure, split_urls
from mtavg.evaluators import make_evaluator
from mtavg.evaluators.base import PermanentError, TransientError
from mtavg.limits import RetryPolicy
from mtavg.run import run_eval
from mtavg.testing.fake_openai import FakeOpenAIServer

pytest.importorskip("openai")
KEY = "sk-mtavg-endpoints-DO-NOT-LEAK-777"
FAST = RetryPolicy(max_attempts=4, base_delay_s=0.01, max_delay_s=0.05, timeout_s=10.0)


def _rows(path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()]


def _answered(srv: FakeOpenAIServer) -> int:
    return sum(1 for r in srv.log if r["status"] == 200 and not r.get("killed"))


def test_split_urls_and_display_hide_credentials():
    assert split_urls("http://a/v1/, http://b/v1,http://a/v1") == ["http://a/v1", "http://b/v1"]
    assert split_urls(["http://a/v1", " "]) == ["http://a/v1"]
    assert display_url("http://user:secret@node1:8000/v1") == "http://node1:8000/v1"
    assert is_endpoint_failure(TransientError("x", status=503)) and is_endpoint_failure(TransientError("conn"))
    assert not is_endpoint_failure(TransientError("slow down", status=429))
    assert not is_endpoint_failure(PermanentError("bad", status=400))


def test_endpoint_options_total_concurrency_and_kind_check():
    opts, total = endpoint_options("openai:m", ["http://a/v1", "http://b/v1,http://c/v1"], 4, 8)
    assert opts == {"base_url": "http://a/v1,http://b/v1,http://c/v1", "per_endpoint_concurrency": 4} and total == 12
    assert endpoint_options("gemini:x", ["http://g"], None, 8) == ({"base_url": "http://g"}, 8)
    with pytest.raises(ValueError, match="openai"):
        endpoint_options("gemini:x", ["http://a", "http://b"], None, 8)
    with pytest.raises(ValueError, match=">= 1"):
        endpoint_options("openai:m", ["http://a"], 0, 8)


def test_pool_caps_each_endpoint_and_prefers_the_least_loaded():
    pool = EndpointPool(["http://a", "http://b"], per_endpoint=2)
    peak: Counter = Counter()
    now: Counter = Counter()

    async def call(url: str) -> str:
        now[url] += 1
        peak[url] = max(peak[url], now[url])
        await asyncio.sleep(0.01 if url == "http://a" else 0.05)
        now[url] -= 1
        return url

    async def main() -> list[str]:
        return await asyncio.gather(*(pool.run(call) for _ in range(40)))

    served = Counter(asyncio.run(main()))
    assert peak["http://a"] <= 2 and peak["http://b"] <= 2
    assert served["http://a"] > served["http://b"] > 0
    assert sum(s["requests"] for s in pool.stats()) == 40


def test_pool_fails_over_then_raises_only_when_every_endpoint_failed():
    clock = [0.0]
    pool = EndpointPool(["http://dead", "http://alive"], cooldown_s=5.0, clock=lambda: clock[0])
    calls: list[str] = []

    async def call(url: str) -> str:
        calls.append(url)
        if url == "http://dead":
            raise TransientError("connection error")
        return "ok"

    assert asyncio.run(pool.run(call)) == "ok"
    dead = pool.stats()[0]
    assert dead["errors"] == 1 and dead["marked_down"] == 1
    calls.clear()
    asyncio.run(pool.run(call))
    assert calls == ["http://alive"], "a down endpoint is skipped during its cool-down"
    clock[0] = 6.0

    async def always_500(url: str) -> str:
        raise TransientError("boom", status=502)

    with pytest.raises(TransientError, match="all 2 endpoint"):
        asyncio.run(pool.run(always_500))

    async def bad_request(url: str) -> str:
        raise PermanentError("no", status=400)

    clock[0] = 100.0
    with pytest.raises(PermanentError):  # not the endpoint's fault: no failover
        asyncio.run(pool.run(bad_request))
    assert sum(e.in_flight for e in pool.endpoints) == 0


def test_two_servers_both_serve_the_faster_more_and_a_kill_loses_nothing(random_bench, tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    bench = load_benchmark(random_bench)
    with FakeOpenAIServer(latency=0.01, inspect_media=False) as fast, \
            FakeOpenAIServer(latency=0.08, inspect_media=False) as slow:
        ev = make_evaluator("openai:omni", bench.items, base_url=f"{fast.base_url},{slow.base_url}")
        res = run_eval(bench, ev, tmp_path / "both", modality="text", limit=60, concurrency=8, policy=FAST,
                       progress=False, n_boot=0, use_cache=False)
        n_fast, n_slow = _answered(fast), _answered(slow)
    assert res["n_errors"] == 0 and n_fast + n_slow == 60
    assert n_slow > 0 and n_fast > 2 * n_slow, (n_fast, n_slow)
    counters = {e["url"]: e for e in res["session"]["endpoints"]}
    assert counters[fast.base_url]["ok"] == n_fast and counters[slow.base_url]["ok"] == n_slow
    assert counters[slow.base_url]["mean_latency_s"] > counters[fast.base_url]["mean_latency_s"]
    assert json.loads((tmp_path / "both" / "run.json").read_text())["endpoints"] == res["session"]["endpoints"]

    # Kill one server while requests are in flight on it: every item is still answered exactly once.
    with FakeOpenAIServer(latency=0.03, inspect_media=False) as a, FakeOpenAIServer(latency=0.03,
                                                                                     inspect_media=False) as b:
        def killer() -> None:
            deadline = time.monotonic() + 20
            while len(b.log) < 15 and time.monotonic() < deadline:
                time.sleep(0.005)
            b.kill()

        thread = threading.Thread(target=killer, daemon=True)
        thread.start()
        ev = make_evaluator("openai:omni", bench.items, base_url=[a.base_url, b.base_url],
                            per_endpoint_concurrency=4)
        res = run_eval(bench, ev, tmp_path / "kill", modality="text", concurrency=8, policy=FAST,
                       progress=False, n_boot=0, use_cache=False)
        thread.join()
        killed = sum(1 for r in b.log if r.get("killed"))
    rows = _rows(tmp_path / "kill" / "samples.jsonl")
    assert Counter(r["qid"] for r in rows) == Counter(it.qid for it in bench.items)
    assert res["n_errors"] == 0 and all(r["valid"] for r in rows)
    assert killed > 0, "the kill must catch requests in flight"
    by_url = {e["url"]: e for e in res["session"]["endpoints"]}
    assert by_url[b.base_url]["failovers"] >= killed and by_url[b.base_url]["marked_down"] >= 1
    assert by_url[a.base_url]["ok"] + by_url[b.base_url]["ok"] == len(bench.items)
    for f in tmp_path.rglob("*"):
        if f.is_file():
            assert KEY.encode() not in f.read_bytes(), f


def test_cli_takes_repeated_base_urls(random_bench, tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    with FakeOpenAIServer(inspect_media=False) as a, FakeOpenAIServer(inspect_media=False) as b:
        out = tmp_path / "run"
        result = CliRunner().invoke(app, [
            "eval", "--bench", str(random_bench), "--model", "openai:omni", "--out", str(out),
            "--modality", "text", "--limit", "20", "--base-url", a.base_url, "--base-url", b.base_url,
            "--per-endpoint-concurrency", "2", "--no-progress", "--no-cache"])
        assert result.exit_code == 0, result.output
        assert len(a.log) > 0 and len(b.log) > 0 and len(a.log) + len(b.log) == 20
    meta = json.loads((out / "run.json").read_text())
    assert [e["url"] for e in meta["endpoints"]] == [a.base_url, b.base_url]
    bad = CliRunner().invoke(app, ["eval", "--bench", str(random_bench), "--model", "baseline:random", "--out",
                                   str(tmp_path / "x"), "--base-url", "http://a", "--base-url", "http://b"])
    assert bad.exit_code == 2 and "openai" in bad.output
