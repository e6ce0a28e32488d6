"""The openai backend against a real loopback server: what arrives is inspected, not assumed."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import urllib.request
from email.utils import formatdate
from pathlib import Path

import pytest

import mtavg
from mtavg.bench import load_benchmark
from mtavg.evaluators import MediaRef, PermanentError, Request, TransientError, make_evaluator
from mtavg.evaluators.openai_backend import OpenAIEvaluator, _retry_after
from mtavg.run import build_request, parsed_fields
from mtavg.testing.fake_openai import FakeOpenAIServer, Faults

KEY = "sk-test-DISTINCTIVE-7f3a9c1e5b2d4860"


@pytest.fixture(autouse=True)
def _env(monkeypatch, tmp_path):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv("MTAVG_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture()
def srv():
    with FakeOpenAIServer() as server:
        yield server


@pytest.fixture()
def bench(random_bench):
    return load_benchmark(random_bench)


def item_of(bench, fmt: str):
    return next(it for it in bench.items if it.format == fmt)


def ask(ev: OpenAIEvaluator, request: Request):
    async def go():
        try:
            return await ev.respond(request)
        finally:
            await ev.aclose()
    return asyncio.run(go())


def one(srv, bench, modality="full", fmt="single", **opts):
    item = item_of(bench, fmt)
    ev = OpenAIEvaluator("omni", base_url=srv.base_url, **opts)
    resp = ask(ev, build_request(item, bench, modality))
    assert len(srv.log) == 1
    return item, resp, srv.log[0]


def test_full_in_video_sends_mp4_with_audio(srv, bench):
    item, resp, rec = one(srv, bench, "full")
    assert rec["part_types"] == ["video_url", "text"]
    assert rec["video_has_audio"] == [True] and rec["video_frames"][0] > 0
    assert rec["mm_processor_kwargs"] == {"fps": 2.0, "max_pixels": 360 * 420, "use_audio_in_video": True}
    assert rec["n_audio_parts"] == 0 and rec["media_errors"] == [] and rec["url_schemes"] == ["data"]
    assert resp.audio_sent is True and resp.frames_sent == 2  # 1 s clip at 2 fps: the requested count
    assert resp.meta["use_audio_in_video"] is True and resp.meta["transport"] == "data"
    assert resp.usage["prompt_tokens"] > 100 and resp.usage["completion_tokens"] > 0
    assert item.question in rec["text"] and rec["auth_header_present"] is True
    assert parsed_fields(item, resp.raw)["valid"]  # the fake's default answer is in the project's format


def test_no_audio_sends_muted_video(srv, bench):
    _, resp, rec = one(srv, bench, "no_audio")
    assert rec["part_types"] == ["video_url", "text"] and rec["video_has_audio"] == [False]
    assert rec["video_frames"][0] > 0 and "use_audio_in_video" not in rec["mm_processor_kwargs"]
    assert resp.audio_sent is False and resp.frames_sent == 2


def test_no_vision_sends_audio_only(srv, bench):
    _, resp, rec = one(srv, bench, "no_vision")
    assert rec["part_types"] == ["input_audio", "text"]
    assert rec["n_video_parts"] == rec["n_image_parts"] == 0 and rec["audio_seconds"][0] > 0.5
    assert resp.audio_sent is True and resp.frames_sent == 0


def test_text_sends_no_media(srv, bench):
    _, resp, rec = one(srv, bench, "text")
    assert rec["part_types"] == ["text"] and rec["mm_processor_kwargs"] is None
    assert resp.audio_sent is False and resp.frames_sent == 0


def test_separate_audio_mode(srv, bench):
    _, resp, rec = one(srv, bench, "full", audio_mode="separate")
    assert rec["part_types"] == ["video_url", "input_audio", "text"]
    assert rec["video_has_audio"] == [False] and rec["audio_seconds"][0] > 0.5
    assert "use_audio_in_video" not in rec["mm_processor_kwargs"] and resp.audio_sent is True


@pytest.mark.parametrize(("modality", "n_audio"), [("full", 1), ("no_audio", 0)])
def test_frames_mode(srv, bench, modality, n_audio):
    _, resp, rec = one(srv, bench, modality, video_mode="frames", fps=4.0, max_frames=3)
    assert rec["n_video_parts"] == 0 and rec["n_image_parts"] == resp.frames_sent == 3
    assert rec["n_audio_parts"] == n_audio and resp.audio_sent is (n_audio == 1)
    assert rec["mm_processor_kwargs"] is None and rec["media_errors"] == []


def test_pairwise_labels_each_clip_in_order(srv, bench):
    _, resp, rec = one(srv, bench, "full", fmt="pairwise")
    assert rec["part_types"] == ["text", "video_url", "text", "video_url", "text"]
    assert rec["text"].startswith("Clip 1:\nClip 2:\n") and rec["video_has_audio"] == [True, True]
    assert resp.frames_sent == 4


@pytest.mark.parametrize("modality", ["full", "no_audio", "no_vision"])
def test_file_transport(srv, bench, modality):
    _, resp, rec = one(srv, bench, modality, transport="file")
    assert rec["url_schemes"] == ["file"] and rec["media_errors"] == []  # the server opened the path
    if modality == "no_vision":
        assert rec["part_types"] == ["audio_url", "text"] and rec["audio_seconds"][0] > 0.5
    else:
        assert rec["video_has_audio"] == [modality == "full"] and rec["video_frames"][0] > 0


def test_options_reach_the_server(srv, bench):
    _, _, rec = one(srv, bench, "full", seed=5, max_tokens=64, temperature=0.3,
                    mm_processor_kwargs={"max_pixels": 1000, "extra": 1})
    assert rec["seed"] == 5 and rec["max_tokens"] == 64 and rec["temperature"] == 0.3
    assert rec["mm_processor_kwargs"] == {"fps": 2.0, "max_pixels": 1000, "use_audio_in_video": True, "extra": 1}


def _request(prompt: str = "Q?\nA. one\nB. two") -> Request:
    return Request(qid="q", prompt=prompt, media=(), modality="text", format="single", question="Q?",
                   options={"A": "one", "B": "two"})


def _fail(srv, request_timeout: float = 30.0, **faults) -> Exception:
    srv.set_faults(**faults)
    ev = OpenAIEvaluator("omni", base_url=srv.base_url, request_timeout=request_timeout)
    with pytest.raises((TransientError, PermanentError)) as info:
        ask(ev, _request())
    return info.value


def test_error_mapping(srv):
    errors = []
    e = _fail(srv, p_429=1.0, retry_after=7)
    assert isinstance(e, TransientError) and e.status == 429 and e.retry_after == 7.0
    errors.append(e)
    e = _fail(srv, p_500=1.0)
    assert isinstance(e, TransientError) and e.status == 500 and e.retryable
    errors.append(e)
    for status in (400, 401, 404):
        e = _fail(srv, fail_first_n=1, fail_first_status=status)
        assert isinstance(e, PermanentError) and e.status == status and not e.retryable
        errors.append(e)
    for fault in ("p_truncated", "p_bad_json"):
        e = _fail(srv, **{fault: 1.0})
        assert isinstance(e, TransientError) and "malformed response" in str(e)
        errors.append(e)
    start = time.perf_counter()
    e = _fail(srv, request_timeout=0.3, p_timeout=1.0, timeout_hold=5.0)
    assert isinstance(e, TransientError) and "timed out" in str(e) and time.perf_counter() - start < 3
    errors.append(e)
    # faults never kill the server, and the key never reaches an error or the server's record
    srv.set_faults()
    assert ask(OpenAIEvaluator("omni", base_url=srv.base_url), _request()).raw
    assert srv.stats()["by_status"]["429"] == 1 and srv.stats()["by_status"]["500"] == 1
    assert all(KEY not in f"{e!s} {e!r}" for e in errors)
    assert KEY not in json.dumps(srv.log) and all(r["auth_header_present"] for r in srv.log)


def test_connection_refused_is_transient():
    server = FakeOpenAIServer()
    url = server.base_url
    server.stop()
    with pytest.raises(TransientError):
        ask(OpenAIEvaluator("omni", base_url=url, request_timeout=5), _request())


def test_retry_after_forms():
    assert _retry_after({"retry-after-ms": "1500"}) == 1.5
    assert _retry_after({"retry-after": "3"}) == 3.0
    assert 8 <= _retry_after({"retry-after": formatdate(time.time() + 10, usegmt=True)}) <= 10
    assert _retry_after({"retry-after": "soon"}) is None and _retry_after({}) is None


def test_faults_are_deterministic_per_seed():
    import random

    def draws(seed):
        f, rng = Faults(seed=seed, p_500=0.3, p_429=0.3), random.Random(seed)
        return [f.pick(rng, i) for i in range(50)]
    assert draws(1) == draws(1) and draws(1) != draws(2)
    assert Faults(fail_first_n=2).pick(random.Random(0), 1) == "fail_first_500"


def test_empty_content_is_an_empty_answer():
    with FakeOpenAIServer(responder=lambda body: "") as server:
        assert ask(OpenAIEvaluator("omni", base_url=server.base_url), _request()).raw == ""


def test_logprobs_and_yes_probability(srv):
    resp = ask(OpenAIEvaluator("omni", base_url=srv.base_url, logprobs=True, top_logprobs=2), _request())
    assert "".join(t["token"] for t in resp.logprobs) == resp.raw
    assert all(len(t["top_logprobs"]) == 2 and t["logprob"] < 0 for t in resp.logprobs)
    ev = OpenAIEvaluator("omni", base_url=srv.base_url)
    p = asyncio.run(ev.yes_probability(_request("Is the speech in sync with the lips? Answer Yes or No.")))
    assert p == pytest.approx(0.8 / (0.8 + 0.15))
    assert srv.log[-1]["max_tokens"] == 1 and srv.log[-1]["top_logprobs"] == 20
    with FakeOpenAIServer(responder=lambda body: "Perhaps") as server, pytest.raises(PermanentError):
        asyncio.run(OpenAIEvaluator("omni", base_url=server.base_url).yes_probability(_request()))


def test_missing_key_is_named(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY")
    with pytest.raises(ValueError, match="OPENAI_API_KEY"):
        OpenAIEvaluator("gpt-4o")
    monkeypatch.setenv("MY_KEY", KEY)
    assert OpenAIEvaluator("gpt-4o", api_key_env="MY_KEY")._api_key == KEY
    assert OpenAIEvaluator("qwen", base_url="http://localhost:8000/v1")._api_key == "EMPTY"


def test_factory_coerces_cli_strings(srv):
    ev = make_evaluator("openai:Qwen/Qwen2.5-Omni-7B", base_url=srv.base_url, fps="4", max_frames="8",
                        logprobs="true", top_logprobs="3", max_pixels="none", seed="0",
                        mm_processor_kwargs='{"use_audio_in_video": false}')
    assert ev.name == "openai:Qwen/Qwen2.5-Omni-7B" and ev.fps == 4.0 and ev.max_frames == 8
    assert ev.logprobs is True and ev.top_logprobs == 3 and ev.max_pixels is None and ev.seed == 0
    assert ev.mm_processor_kwargs == {"use_audio_in_video": False} and KEY not in ev.fingerprint
    other = make_evaluator("openai:Qwen/Qwen2.5-Omni-7B", base_url=srv.base_url, fps="2")
    assert other.fingerprint != ev.fingerprint and other.cacheable
    assert not make_evaluator("openai:m", base_url=srv.base_url, temperature="0.7").cacheable
    with pytest.raises(ValueError, match="unknown option"):
        make_evaluator("openai:m", base_url=srv.base_url, fsp="2")
    with pytest.raises(ValueError, match="video_mode"):
        make_evaluator("openai:m", base_url=srv.base_url, video_mode="gif")


def test_direct_media_ref(srv, tiny_clip):
    ref = MediaRef(video_id="v", path=tiny_clip, role="Clip", use_video=True, use_audio=True)
    resp = ask(OpenAIEvaluator("omni", base_url=srv.base_url), Request(
        qid="q", prompt="Q?\nA. one\nB. two", media=(ref,), modality="full", format="single",
        question="Q?", options={"A": "one", "B": "two"}))
    assert resp.frames_sent == 2 and srv.log[0]["video_has_audio"] == [True]


def test_subprocess_mode_and_control_endpoints():
    src = str(Path(mtavg.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen([sys.executable, "-m", "mtavg.testing.fake_openai", "--port", "0", "--no-inspect"],
                            stdout=subprocess.PIPE, text=True, env=env)
    try:
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:") and url.endswith("/v1")
        root = url.removesuffix("/v1")

        def post(path, obj):
            req = urllib.request.Request(root + path, json.dumps(obj).encode(), method="POST",
                                         headers={"Content-Type": "application/json"})
            return json.load(urllib.request.urlopen(req, timeout=10))
        post("/_faults", {"fail_first_n": 1})
        ev = OpenAIEvaluator("omni", base_url=url)
        with pytest.raises(TransientError):
            ask(ev, _request())
        assert json.loads(ask(ev, _request()).raw)["answer"] == ["A"]
        stats = json.load(urllib.request.urlopen(root + "/_stats", timeout=10))
        assert stats == {"requests": 2, "by_status": {"500": 1, "200": 1}}
        log = json.load(urllib.request.urlopen(root + "/_log", timeout=10))
        assert [r["status"] for r in log] == [500, 200] and KEY not in json.dumps(log)
        post("/_reset", {})
        assert json.load(urllib.request.urlopen(root + "/_stats", timeout=10))["requests"] == 0
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0


def test_concurrent_throughput_smoke():
    """32 in flight at 0.2 s latency: far above serial speed (the benchmark asks >= 150 req/s)."""
    with FakeOpenAIServer(latency=0.2, inspect_media=False) as server:
        ev = OpenAIEvaluator("omni", base_url=server.base_url)

        async def go() -> float:
            sem = asyncio.Semaphore(32)

            async def call():
                async with sem:
                    await ev.respond(_request())
            start = time.perf_counter()
            await asyncio.gather(*(call() for _ in range(96)))
            await ev.aclose()
            return 96 / (time.perf_counter() - start)
        assert asyncio.run(go()) > 80
        assert server.stats()["requests"] == 96


def test_run_engine_retries_through_faults(bench, tmp_path):
    """The backend never retries; the run engine does, honouring Retry-After, and every item ends valid."""
    from mtavg.limits import RetryPolicy
    from mtavg.run import RunOptions, run_eval

    faults = {"seed": 3, "p_429": 0.15, "p_500": 0.15, "p_truncated": 0.1, "p_bad_json": 0.1, "retry_after": 0.01}
    with FakeOpenAIServer(faults=faults) as server:
        ev = OpenAIEvaluator("omni", base_url=server.base_url)
        policy = RetryPolicy(max_attempts=10, base_delay_s=0.01, max_delay_s=0.05, timeout_s=10)
        opts = RunOptions(limit=20, concurrency=8, progress=False, n_boot=10, use_cache=False, policy=policy)
        results = run_eval(bench, ev, tmp_path / "run", opts, modality="full")
        log = server.log
    assert results["n_items"] == 20 and results["n_invalid"] == 0 and results["n_errors"] == 0
    assert any(r["fault"] for r in log) and len(log) > 20  # faults happened and were retried
    assert all(r["video_has_audio"] and all(r["video_has_audio"]) for r in log)
