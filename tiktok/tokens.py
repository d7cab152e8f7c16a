"""Where the TikTok access/refresh token pair lives, so every worker uses the newest one.

TikTok rotates *both* tokens on refresh, so a refresh done by one worker must be
seen by all the others. ``TokenStore`` is the small interface the client needs;
``RedisTokenStore`` shares the pair (and a refresh lock, so two workers never
refresh at once) through the Redis every worker already talks to.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import ContextManager, Protocol


@dataclass(frozen=True)
class TokenPair:
    access_token: str = field(repr=False)
    refresh_token: str | None = field(default=None, repr=False)
    #: Absolute unix seconds, as TikTok's ``*_expire_in`` fields are.
    access_expires_at: int | None = None
    refresh_expires_at: int | None = None

    def expired(self, now: float | None = None, skew: float = 60) -> bool:
        return self.access_expires_at is not None and (now or time.time()) + skew >= self.access_expires_at


class TokenStore(Protocol):
    def load(self) -> TokenPair | None: ...

    def save(self, pair: TokenPair) -> None: ...

    def lock(self) -> ContextManager: ...


class MemoryTokenStore:
    """A process-local store (scripts, tests)."""

    def __init__(self, pair: TokenPair | None = None):
        self._pair = pair
        self._lock = threading.Lock()

    def load(self) -> TokenPair | None:
        return self._pair

    def save(self, pair: TokenPair) -> None:
        self._pair = pair

    def lock(self) -> ContextManager:
        return self._lock


class RedisTokenStore:
    """The pair as one JSON value in Redis, keyed by a hash of the app key (never the key itself)."""

    def __init__(self, redis_client, app_key: str, namespace: str = "ksync:tiktok:tokens", lock_timeout: float = 30):
        digest = hashlib.sha256(app_key.encode()).hexdigest()[:16]
        self.redis = redis_client
        self.key = f"{namespace}:{digest}"
        self.lock_timeout = lock_timeout

    def __repr__(self) -> str:
        return f"RedisTokenStore(key={self.key!r})"

    def load(self) -> TokenPair | None:
        raw = self.redis.get(self.key)
        if not raw:
            return None
        return TokenPair(**json.loads(raw))

    def save(self, pair: TokenPair) -> None:
        self.redis.set(self.key, json.dumps(asdict(pair)))

    def lock(self) -> ContextManager:
        # An expiring lock: a worker killed mid-refresh cannot leave it held.
        lock = self.redis.lock(f"{self.key}:refresh", timeout=self.lock_timeout, blocking_timeout=self.lock_timeout)
        return _held(lock)


@contextlib.contextmanager
def _held(lock):
    if not lock.acquire():
        raise TimeoutError("could not take the TikTok token refresh lock")
    try:
        yield
    finally:
        with contextlib.suppress(Exception):
            lock.release()
