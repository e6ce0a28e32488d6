"""Several OpenAI-compatible endpoints (one vLLM server per GPU node) behind one evaluator.

``EndpointPool.run`` sends a call to the healthy endpoint with the fewest requests in flight
(optionally at most ``per_endpoint`` each). An endpoint that fails with a connection error, a timeout
or a 5xx is marked down for ``cooldown_s`` and the same request moves on to another endpoint, so a
dead node loses no item; only when every endpoint has failed this request does the error reach the
run engine (which retries with backoff, probing the down endpoints again once their cool-down ends).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

from mtavg.evaluators.base import EvaluatorError

T = TypeVar("T")


class NoEndpoints(ValueError):
    """No usable endpoint URL was given."""


def split_urls(value: str | Sequence[str] | None) -> list[str]:
    """Endpoint URLs from a comma-separated string or a list (duplicates removed, order kept)."""
    parts = value.split(",") if isinstance(value, str) else list(value or ())
    urls = [u.strip().rstrip("/") for u in parts if u and u.strip()]
    return list(dict.fromkeys(urls))


def display_url(url: str) -> str:
    """The URL without user:password@ (what run files may show)."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def is_endpoint_failure(exc: BaseException) -> bool:
    """A failure of the server rather than of the request: connection, timeout, malformed body, 5xx.

    429 is not one: the server is alive and asking us to slow down, which the run engine's backoff does.
    """
    if isinstance(exc, EvaluatorError):
        return exc.retryable and (exc.status is None or exc.status >= 500)
    return isinstance(exc, (asyncio.TimeoutError, TimeoutError, ConnectionError))


@dataclass
class Endpoint:
    url: str
    in_flight: int = 0
    down_until: float = 0.0
    requests: int = 0
    ok: int = 0
    errors: int = 0
    failovers: int = 0  # requests that failed here and moved on to another endpoint
    marked_down: int = 0
    latency_total_s: float = 0.0
    last_error: str | None = None

    def healthy(self, now: float) -> bool:
        return self.down_until <= now

    def as_dict(self) -> dict[str, Any]:
        return {"url": display_url(self.url), "requests": self.requests, "ok": self.ok, "errors": self.errors,
                "failovers": self.failovers, "marked_down": self.marked_down,
                "mean_latency_s": round(self.latency_total_s / self.ok, 4) if self.ok else None,
                "last_error": self.last_error}


@dataclass
class EndpointPool:
    """Least-outstanding-requests balancing with failover and a cool-down for failed endpoints."""

    urls: Sequence[str]
    per_endpoint: int | None = None  # None: no cap (the run engine's --concurrency bounds the total)
    cooldown_s: float = 10.0
    clock: Callable[[], float] = time.monotonic
    endpoints: list[Endpoint] = field(init=False)

    def __post_init__(self) -> None:
        urls = split_urls(self.urls)
        if not urls:
            raise NoEndpoints("no endpoint URL given (--base-url http://HOST:PORT/v1, repeatable)")
        if self.per_endpoint is not None and self.per_endpoint < 1:
            raise ValueError(f"per-endpoint concurrency must be >= 1, not {self.per_endpoint}")
        self.endpoints = [Endpoint(u) for u in urls]
        self._changed: asyncio.Condition | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _condition(self) -> asyncio.Condition:
        # A Condition belongs to the event loop it was made on; each asyncio.run gets a fresh one.
        loop = asyncio.get_running_loop()
        if self._changed is None or self._loop is not loop:
            self._changed, self._loop = asyncio.Condition(), loop
        return self._changed

    def _has_room(self, ep: Endpoint) -> bool:
        return self.per_endpoint is None or ep.in_flight < self.per_endpoint

    def _pick(self, tried: set[str]) -> Endpoint | None | bool:
        """An endpoint to use now, False to wait for a free slot, None when nothing is left to try."""
        now = self.clock()
        untried = [ep for ep in self.endpoints if ep.url not in tried]
        healthy = [ep for ep in untried if ep.healthy(now)]
        pool = healthy or untried  # all down: probe the one whose cool-down ends first
        if not pool:
            return None
        free = [ep for ep in pool if self._has_room(ep)]
        if not free:
            return False
        if healthy:
            return min(free, key=lambda ep: (ep.in_flight, ep.requests))
        return min(free, key=lambda ep: ep.down_until)

    async def _acquire(self, tried: set[str]) -> Endpoint | None:
        changed = self._condition()
        async with changed:
            while (picked := self._pick(tried)) is False:
                await changed.wait()
            if picked is None:
                return None
            assert isinstance(picked, Endpoint)
            picked.in_flight += 1
            picked.requests += 1
            return picked

    async def _release(self, ep: Endpoint) -> None:
        changed = self._condition()
        async with changed:
            ep.in_flight -= 1
            changed.notify_all()

    async def run(self, call: Callable[[str], Awaitable[T]]) -> T:
        """``await call(url)`` on one endpoint after another until one answers.

        Errors that are not endpoint failures (400, 429, a bug) leave at once; endpoint failures move the
        request on, and the last one is raised when every endpoint has failed it.
        """
        tried: set[str] = set()
        last: BaseException | None = None
        while (ep := await self._acquire(tried)) is not None:
            tried.add(ep.url)
            start = self.clock()
            try:
                result = await call(ep.url)
            except Exception as exc:
                ep.errors += 1
                ep.last_error = type(exc).__name__ + (f"({exc.status})" if getattr(exc, "status", None) else "")
                if not is_endpoint_failure(exc):
                    raise
                ep.marked_down += ep.healthy(self.clock())
                ep.down_until = self.clock() + self.cooldown_s
                ep.failovers += 1
                last = exc
                continue
            finally:
                await self._release(ep)
            ep.ok += 1
            ep.latency_total_s += self.clock() - start
            return result
        assert last is not None  # at least one endpoint exists, so at least one attempt was made
        ep_failures = sum(1 for e in self.endpoints if e.url in tried)
        if isinstance(last, EvaluatorError):
            raise type(last)(f"all {ep_failures} endpoint(s) failed; last: {last}", status=last.status,
                             retry_after=last.retry_after) from None
        raise last

    def stats(self) -> list[dict[str, Any]]:
        """Per-endpoint counters (URLs without credentials) for run.json / results.json."""
        return [ep.as_dict() for ep in self.endpoints]


def endpoint_options(model: str, base_urls: Sequence[str] | None, per_endpoint: int | None,
                     concurrency: int) -> tuple[dict[str, Any], int]:
    """Backend options and the run's total concurrency from `mtavg eval`'s --base-url (repeatable or
    comma-separated) and --per-endpoint-concurrency N (total = N x endpoints, overriding --concurrency)."""
    urls = split_urls(",".join(base_urls or ()))
    several = len(urls) > 1 or per_endpoint is not None
    if several and not model.startswith("openai:"):
        raise ValueError(f"several --base-url / --per-endpoint-concurrency work with openai: models, not {model}")
    if per_endpoint is not None and per_endpoint < 1:
        raise ValueError(f"--per-endpoint-concurrency must be >= 1, not {per_endpoint}")
    options: dict[str, Any] = {}
    if urls:
        options["base_url"] = ",".join(urls)
    if per_endpoint is not None:
        options["per_endpoint_concurrency"] = per_endpoint
        return options, per_endpoint * max(1, len(urls))
    return options, concurrency
