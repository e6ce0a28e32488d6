"""Client-side throughput limits and the retry policy shared by every backend.

Requests per minute are spaced evenly (no bursts that trip a server's limiter); tokens per minute
use a 60 s sliding window in which requests in flight hold a reservation (the running mean of
tokens per call) until their real usage is known.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 4  # per item, first try included
    base_delay_s: float = 1.0
    max_delay_s: float = 60.0
    max_total_retries: int = 1000  # per run: a dead server must not be hammered forever
    timeout_s: float | None = 300.0  # per request

    def delay(self, attempt: int, retry_after: float | None, rng: random.Random) -> float:
        """Exponential backoff with full jitter; never sooner than the server's Retry-After."""
        backoff = rng.uniform(0, min(self.max_delay_s, self.base_delay_s * 2 ** (attempt - 1)))
        return max(backoff, retry_after or 0.0)


class RateLimiter:
    """Gate for request starts (rpm) and token volume (tpm); either may be None (unlimited)."""

    def __init__(self, rpm: float | None = None, tpm: float | None = None) -> None:
        self.rpm, self.tpm = rpm, tpm
        self._next_start = 0.0
        self._window: deque[tuple[float, float]] = deque()  # (time, tokens) of finished calls
        self._reserved = 0.0
        self._mean_tokens, self._n = 1000.0, 0
        self._lock = asyncio.Lock()

    def _window_tokens(self, now: float) -> float:
        while self._window and now - self._window[0][0] > 60.0:
            self._window.popleft()
        return sum(t for _, t in self._window)

    async def acquire(self) -> float:
        """Wait for a slot; returns the token reservation to hand back to ``release``."""
        if self.rpm is None and self.tpm is None:
            return 0.0
        async with self._lock:  # one waiter at a time keeps the spacing fair and ordered
            if self.rpm:
                now = time.monotonic()
                wait = self._next_start - now
                if wait > 0:
                    await asyncio.sleep(wait)
                self._next_start = max(now, self._next_start) + 60.0 / self.rpm
            reservation = 0.0
            if self.tpm:
                reservation = self._mean_tokens
                while True:
                    now = time.monotonic()
                    used = self._window_tokens(now) + self._reserved
                    if used + reservation <= self.tpm or (not self._window and not self._reserved):
                        break
                    oldest = self._window[0][0] if self._window else now
                    await asyncio.sleep(max(0.05, 60.0 - (now - oldest)) if self._window else 0.05)
                self._reserved += reservation
            return reservation

    def release(self, reservation: float, tokens: float | None) -> None:
        if not self.tpm:
            return
        self._reserved = max(0.0, self._reserved - reservation)
        if tokens:
            self._window.append((time.monotonic(), float(tokens)))
            self._n += 1
            self._mean_tokens += (tokens - self._mean_tokens) / self._n
