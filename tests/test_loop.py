"""The shared request loop: retries, Retry-After, timeouts, budgets, rate limits, cache, secrets."""

from __future__ import annotations

import asyncio
import time

import pytest

from mtavg.cache import ResponseCache
from mtavg.evaluators import Evaluator, PermanentError, Request, Response, TransientError
from mtavg.limits import RateLimiter, RetryPolicy
from mtavg.loop import RequestLoop
from mtavg.secrets import redact


def _request(qid: str = "q1") -> Request:
    return Request(qid=qid, prompt="p", media=(), modality="text", format="single", question="?",
                   options={"A": "a", "B": "b"})


class Scripted(Evaluator):
    """Raises the scripted exceptions in order, then answers; records call times."""

    name = "test:scripted"

    def __init__(self, script=(), delay: float = 0.0, usage: int = 0):
        self.script, self.delay, self.usage, self.times = list(script), delay, usage, []

    async def respond(self, request: Request) -> Response:
        self.times.append(time.monotonic())
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.script:
            raise self.script.pop(0)
        return Response(raw='{"answer": ["A"]}', usage={"prompt_tokens": self.usage, "completion_tokens": 0})


FAST = RetryPolicy(max_attempts=4, base_delay_s=0.001, max_delay_s=0.01)


def test_transient_errors_are_retried_and_retry_after_is_honoured():
    ev = Scripted([TransientError("slow down", status=429, retry_after=0.3), TransientError("boom", status=500)])
    out = asyncio.run(RequestLoop(ev, policy=FAST).call(_request()))
    assert out.response.raw and out.attempts == 3 and out.error is None
    assert ev.times[1] - ev.times[0] >= 0.29  # waited for Retry-After, not the 1 ms backoff
    assert len(out.history) == 2 and "429" in out.history[0]


def test_permanent_errors_and_unknown_exceptions_are_not_retried():
    for exc in (PermanentError("bad request", status=400), KeyError("bug")):
        ev = Scripted([exc])
        out = asyncio.run(RequestLoop(ev, policy=FAST).call(_request()))
        assert out.response is None and out.attempts == 1 and len(ev.times) == 1
        assert out.error_type == type(exc).__name__


def test_attempts_per_item_and_total_retry_budget():
    ev = Scripted([TransientError("x", status=503)] * 10)
    out = asyncio.run(RequestLoop(ev, policy=FAST).call(_request()))
    assert out.attempts == 4 and out.error_status == 503 and out.error.startswith("TransientError(503)")
    ev = Scripted([TransientError("x", status=503)] * 10)
    policy = RetryPolicy(max_attempts=10, base_delay_s=0.001, max_delay_s=0.01, max_total_retries=2)
    loop = RequestLoop(ev, policy=policy)
    assert asyncio.run(loop.call(_request())).attempts == 3 and loop.ledger.retries == 2


def test_timeout_fires_and_is_retried():
    ev = Scripted(delay=0.5)
    policy = RetryPolicy(max_attempts=2, base_delay_s=0.001, timeout_s=0.05)
    out = asyncio.run(RequestLoop(ev, policy=policy).call(_request()))
    assert out.response is None and out.attempts == 2 and out.error_type == "TimeoutError"


def test_concurrency_is_bounded_and_reached():
    ev = Scripted(delay=0.1)
    loop = RequestLoop(ev, concurrency=4, policy=FAST)

    async def many():
        return await asyncio.gather(*(loop.call(_request(str(i))) for i in range(12)))

    start = time.monotonic()
    asyncio.run(many())
    elapsed = time.monotonic() - start
    assert 0.29 <= elapsed < 0.6  # 12 calls of 0.1 s, 4 at a time: three waves


def test_rpm_spaces_requests():
    ev = Scripted()
    loop = RequestLoop(ev, concurrency=10, limiter=RateLimiter(rpm=600), policy=FAST)  # one per 0.1 s

    async def many():
        await asyncio.gather(*(loop.call(_request(str(i))) for i in range(5)))

    asyncio.run(many())
    gaps = [b - a for a, b in zip(ev.times, ev.times[1:], strict=False)]
    # starts are spaced 0.1 s apart by the limiter; scheduling jitter may shift one start a little
    assert (ev.times[-1] - ev.times[0]) / len(gaps) >= 0.095 and min(gaps) >= 0.05


def test_tpm_waits_for_the_window():
    limiter = RateLimiter(tpm=1000)

    async def scenario():
        r = await limiter.acquire()
        limiter.release(r, 1000)  # the whole minute's budget used
        start = time.monotonic()
        try:
            await asyncio.wait_for(limiter.acquire(), 0.3)
        except asyncio.TimeoutError:
            return time.monotonic() - start
        return 0.0

    assert asyncio.run(scenario()) >= 0.29


def test_cache_hit_makes_no_call(tmp_path):
    cache = ResponseCache(tmp_path / "c.sqlite")
    ev = Scripted(usage=7)
    loop = RequestLoop(ev, cache=cache, policy=FAST)
    first = asyncio.run(loop.call(_request(), "k1"))
    second = asyncio.run(loop.call(_request(), "k1"))
    assert len(ev.times) == 1 and not first.cached and second.cached
    assert second.response.raw == first.response.raw and second.response.usage == {"prompt_tokens": 7,
                                                                                    "completion_tokens": 0}
    assert loop.ledger.calls == 1 and loop.ledger.cached == 1 and len(cache) == 1


def test_failures_are_not_cached(tmp_path):
    cache = ResponseCache(tmp_path / "c.sqlite")
    ev = Scripted([PermanentError("no")])
    asyncio.run(RequestLoop(ev, cache=cache, policy=FAST).call(_request(), "k"))
    assert len(cache) == 0


def test_redact_removes_key_values(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-SECRET-0123456789")
    monkeypatch.setenv("MY_SERVICE_TOKEN", "tok-abcdefgh-12345")
    text = "401: invalid key sk-test-SECRET-0123456789 (token tok-abcdefgh-12345) Bearer abcdefghijklmnopqrstuv"
    red = redact(text)
    assert "SECRET" not in red and "tok-abcdefgh" not in red and "abcdefghijklmnopqrstuv" not in red


def test_errors_written_by_the_loop_are_redacted(monkeypatch):
    monkeypatch.setenv("GEMINI_API_KEY", "AIzaFAKE-KEY-9876543210")
    ev = Scripted([PermanentError("rejected key AIzaFAKE-KEY-9876543210", status=403)])
    out = asyncio.run(RequestLoop(ev, policy=FAST).call(_request()))
    assert "AIzaFAKE" not in out.error and "403" in out.error


@pytest.mark.parametrize("prices", [(2.0, 8.0)])
def test_ledger_costs(prices):
    from mtavg.loop import Ledger

    lg = Ledger(*prices)
    lg.add_usage({"prompt_tokens": 1_000_000, "completion_tokens": 500_000})
    assert lg.cost_usd == pytest.approx(2.0 + 4.0)
