"""The request loop, written once for every backend: cache, rate limits, timeout, retries, ledger.

A backend converts a Request to its API and back; everything about getting thousands of requests
through a server — concurrency, backoff that honours Retry-After, a retry budget, typed errors
recorded per item and never turned into answers — lives here.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field
from typing import Any

from mtavg.cache import ResponseCache
from mtavg.evaluators.base import Evaluator, EvaluatorError, Request, Response
from mtavg.limits import RateLimiter, RetryPolicy
from mtavg.secrets import redact


@dataclass
class Ledger:
    """Calls, tokens and money for one run; prices are USD per million tokens."""

    price_in: float = 0.0
    price_out: float = 0.0
    calls: int = 0
    cached: int = 0
    retries: int = 0
    errors: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def add_usage(self, usage: dict[str, Any] | None) -> None:
        self.prompt_tokens += int((usage or {}).get("prompt_tokens") or 0)
        self.completion_tokens += int((usage or {}).get("completion_tokens") or 0)

    @property
    def cost_usd(self) -> float:
        return (self.prompt_tokens * self.price_in + self.completion_tokens * self.price_out) / 1e6

    def as_dict(self) -> dict[str, Any]:
        return {"calls": self.calls, "cached": self.cached, "retries": self.retries, "errors": self.errors,
                "prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
                "cost_usd": round(self.cost_usd, 6)}


@dataclass
class CallOutcome:
    response: Response | None
    cached: bool = False
    attempts: int = 0
    latency_s: float = 0.0
    error: str | None = None  # "TransientError(429): rate limited", secrets redacted
    error_type: str | None = None
    error_status: int | None = None
    history: list[str] = field(default_factory=list)  # one entry per failed attempt


class RequestLoop:
    def __init__(
        self, evaluator: Evaluator, *, concurrency: int = 8, policy: RetryPolicy | None = None,
        limiter: RateLimiter | None = None, cache: ResponseCache | None = None, ledger: Ledger | None = None,
        seed: int = 0,
    ) -> None:
        self.evaluator = evaluator
        self.policy = policy or RetryPolicy()
        self.limiter = limiter or RateLimiter()
        self.cache = cache if evaluator.cacheable else None
        self.ledger = ledger or Ledger()
        self.concurrency = max(1, concurrency)
        self._gate = asyncio.Semaphore(self.concurrency)
        self._rng = random.Random(seed)
        self._retries_left = self.policy.max_total_retries

    async def _attempt(self, method: str, request: Request) -> Any:
        reservation = await self.limiter.acquire()
        usage_tokens = None
        try:
            async with self._gate:  # held only while a request is in flight, not during backoff
                self.ledger.calls += 1
                call = getattr(self.evaluator, method)(request)
                result = await asyncio.wait_for(call, self.policy.timeout_s) if self.policy.timeout_s else await call
            if isinstance(result, Response) and result.usage:
                usage_tokens = sum(int(result.usage.get(k) or 0) for k in ("prompt_tokens", "completion_tokens"))
            return result
        finally:
            self.limiter.release(reservation, usage_tokens)

    async def call(self, request: Request, cache_key: str | None = None, method: str = "respond") -> CallOutcome:
        """Answer one request: from the cache, or by calling the backend with retries."""
        start = time.perf_counter()
        if self.cache is not None and cache_key is not None:
            hit = self.cache.get(cache_key)
            if hit is not None:
                self.ledger.cached += 1
                return CallOutcome(hit, cached=True, latency_s=time.perf_counter() - start)
        outcome = CallOutcome(None)
        while True:
            outcome.attempts += 1
            try:
                result = await self._attempt(method, request)
            except Exception as exc:  # noqa: BLE001 - every failure is typed and recorded, never swallowed
                retryable, status, retry_after = _classify(exc)
                message = redact(f"{type(exc).__name__}{f'({status})' if status else ''}: {exc}")
                outcome.history.append(message or "")
                if retryable and outcome.attempts < self.policy.max_attempts and self._retries_left > 0:
                    self._retries_left -= 1
                    self.ledger.retries += 1
                    await asyncio.sleep(self.policy.delay(outcome.attempts, retry_after, self._rng))
                    continue
                self.ledger.errors += 1
                outcome.error, outcome.error_type, outcome.error_status = message, type(exc).__name__, status
                break
            if isinstance(result, Response):
                self.ledger.add_usage(result.usage)
                outcome.response = result
            else:  # yes_probability and other scalar methods
                outcome.response = Response(raw=json_number(result))
            if self.cache is not None and cache_key is not None:  # scalars too: a clip scored before is free
                self.cache.put(cache_key, self.evaluator.name, outcome.response)
            break
        outcome.latency_s = time.perf_counter() - start
        return outcome


def json_number(x: Any) -> str:
    return repr(float(x))


def _classify(exc: BaseException) -> tuple[bool, int | None, float | None]:
    """(retryable, status, retry_after) for any exception a backend or the timeout raised."""
    if isinstance(exc, EvaluatorError):
        return exc.retryable, exc.status, exc.retry_after
    if isinstance(exc, (asyncio.TimeoutError, TimeoutError, ConnectionError)):
        return True, None, None
    return False, None, None  # a bug or an unknown failure: record it, don't hammer
