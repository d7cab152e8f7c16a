"""Single-flight: at most one sync of a shop reads and plans at a time, fleet-wide.

A Redis lock with an expiry (redis-py's ``Lock``, released by token through Lua),
extended while paging goes on. A worker killed mid-sync cannot leave it stuck:
the lock expires ``ttl`` seconds after its last extension.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import redis
from redis.exceptions import LockError

#: Seconds a sync's lock lives without a heartbeat (it is extended every page of orders).
DEFAULT_LOCK_TTL = 300


class Busy(Exception):
    """Another sync of the same shop holds the lock."""


class Heartbeat:
    def __init__(self, lock, ttl: int):
        self._lock = lock
        self._ttl = ttl

    def __call__(self) -> None:
        with contextlib.suppress(LockError):
            self._lock.extend(self._ttl, replace_ttl=True)


@contextlib.contextmanager
def single_flight(client: redis.Redis, shop: str, ttl: int = DEFAULT_LOCK_TTL) -> Iterator[Heartbeat]:
    lock = client.lock(f"ksync:lock:sync:{shop}", timeout=ttl, blocking=False)
    if not lock.acquire(blocking=False):
        raise Busy(f"a sync of shop {shop} is already reading")
    try:
        yield Heartbeat(lock, ttl)
    finally:
        with contextlib.suppress(LockError):
            lock.release()
