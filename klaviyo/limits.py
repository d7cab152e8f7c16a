"""Klaviyo's per-operation rate limits, and the client's rate-limit hook.

``ratelimits.json`` is generated from the ``x-klaviyo-ratelimit`` extension of
Klaviyo's official OpenAPI spec (``scripts/gen_klaviyo_ratelimits.py``) and
checked in as data: operationId -> burst per second, steady per minute, daily.

The client asks its ``rate_limiter`` for a token of the operation's bucket before
every request, and reports a 429's Retry-After back to it. Anything with these two
methods plugs in::

    acquire(bucket: str, timeout: float | None = None) -> float   # seconds waited
    cool_down(bucket: str, seconds: float) -> None

``LocalTokenBucket`` is the default: one token bucket per process, like the seed's
(10/s, burst 20). A fleet of workers needs ``workers.ratelimit.RedisRateLimiter``.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Protocol


@dataclass(frozen=True)
class OperationLimit:
    operation: str
    method: str
    path: str
    burst: int
    steady: int
    daily: int | None


@lru_cache(maxsize=1)
def operation_limits() -> dict[str, OperationLimit]:
    """The checked-in table, keyed by Klaviyo operationId."""
    raw = json.loads(resources.files("klaviyo").joinpath("ratelimits.json").read_text())
    return {op: OperationLimit(operation=op, **spec) for op, spec in raw["operations"].items()}


class RateLimiter(Protocol):
    def acquire(self, bucket: str, timeout: float | None = None) -> float: ...

    def cool_down(self, bucket: str, seconds: float) -> None: ...


class RateLimitTimeout(Exception):
    """No token within the timeout. ``retry_in`` says when one is likely."""

    def __init__(self, bucket: str, waited: float, retry_in: float):
        super().__init__(bucket, waited, retry_in)  # the raw args, so the exception pickles (Celery)
        self.bucket = bucket
        self.waited = waited
        self.retry_in = retry_in

    def __str__(self) -> str:
        return f"no rate-limit token for {self.bucket!r} after {self.waited:.3f}s; next grant in about {self.retry_in:.3f}s"


class LocalTokenBucket:
    """A token bucket per process and bucket name: ``rate`` tokens/s, ``capacity`` burst.

    Good for a script or a single process. Every process has its own, so N
    workers send N times the rate: use the Redis limiter for a fleet.
    """

    def __init__(self, rate: float = 10.0, capacity: int = 20, clock=time.monotonic, sleep=time.sleep):
        self.rate = rate
        self.capacity = capacity
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._tokens: dict[str, float] = {}
        self._stamp: dict[str, float] = {}
        self._paused_until: dict[str, float] = {}

    def _try(self, bucket: str) -> float:
        now = self._clock()
        paused = self._paused_until.get(bucket, 0.0) - now
        if paused > 0:
            return paused
        tokens = min(self.capacity, self._tokens.get(bucket, self.capacity) + (now - self._stamp.get(bucket, now)) * self.rate)
        self._stamp[bucket] = now
        if tokens >= 1:
            self._tokens[bucket] = tokens - 1
            return 0.0
        self._tokens[bucket] = tokens
        return (1 - tokens) / self.rate

    def acquire(self, bucket: str, timeout: float | None = None) -> float:
        waited = 0.0
        while True:
            with self._lock:
                wait = self._try(bucket)
            if wait <= 0:
                return waited
            if timeout is not None and waited + wait > timeout:
                raise RateLimitTimeout(bucket, waited, wait)
            self._sleep(wait)
            waited += wait

    def cool_down(self, bucket: str, seconds: float) -> None:
        with self._lock:
            until = self._clock() + seconds
            self._paused_until[bucket] = max(self._paused_until.get(bucket, 0.0), until)


class NoRateLimit:
    """A limiter that never waits (for tests that exercise the server's own 429s)."""

    def acquire(self, bucket: str, timeout: float | None = None) -> float:
        return 0.0

    def cool_down(self, bucket: str, seconds: float) -> None:
        return None
