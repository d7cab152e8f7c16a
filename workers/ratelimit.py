"""One rate limiter shared by every worker process on every host.

Klaviyo limits each account per operation with *fixed* windows of 1 s (burst)
and 60 s (steady), some also per day, and answers 429 with an integer
``Retry-After`` when one is exceeded. Celery's ``rate_limit`` is per worker, so
ksync keeps the count in Redis instead: ``ratelimit.lua`` keeps a sliding log
of grant times per (account, bucket) and decides atomically, timed by Redis
``TIME`` alone. Every *sliding* window then holds at most its limit, so no
phase of Klaviyo's fixed windows can see more. See ``docs/ratelimit.md``.

Examples:
    >>> limiter = RedisRateLimiter.for_klaviyo(redis_client, api_key)
    >>> limiter.acquire("create_event", timeout=5.0)   # seconds waited
    0.0
    >>> limiter.cool_down("create_event", 3)             # after a 429
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import time
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Mapping, NamedTuple

from klaviyo.limits import RateLimitTimeout  # one class for the client hook and the fleet limiter

__all__ = [
    "Attempt", "BucketStats", "Limit", "Pause", "RateLimitTimeout", "RedisRateLimiter", "klaviyo_limits",
]

#: The script, read once at import; each limiter registers it on its client.
LUA_SOURCE = resources.files("workers").joinpath("ratelimit.lua").read_text(encoding="utf-8")
DEFAULT_NAMESPACE = "ksync:rl"
#: Widens every window: absorbs jitter between our grant and Klaviyo's clock.
DEFAULT_MARGIN_SECONDS = 0.05
#: Upper bound of the random delay added to each sleep, so waiters woken by the
#: same departing grant do not all call Redis in the same microsecond.
MAX_JITTER_SECONDS = 0.005
US_PER_SECOND = 1_000_000


@dataclass(frozen=True)
class Limit:
    """Grants allowed per window: ``burst`` per ``burst_window`` seconds,
    ``steady`` per ``steady_window`` seconds and, unless None, ``daily`` per
    ``daily_window`` seconds. Windows are settable so tests can shrink them."""

    burst: int
    steady: int
    daily: int | None = None
    burst_window: float = 1.0
    steady_window: float = 60.0
    daily_window: float = 86400.0

    def __post_init__(self):
        for name in ("burst", "steady", "daily"):
            value = getattr(self, name)
            if value is None and name == "daily":
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"Limit.{name} must be a positive int, got {value!r}")
        for name in ("burst_window", "steady_window", "daily_window"):
            if not getattr(self, name) > 0:
                raise ValueError(f"Limit.{name} must be > 0 seconds")

    def windows(self) -> list[tuple[int, float]]:
        """(limit, window seconds) pairs, burst first; daily only when capped."""
        pairs = [(self.burst, self.burst_window), (self.steady, self.steady_window)]
        if self.daily is not None:
            pairs.append((self.daily, self.daily_window))
        return pairs

    def scaled(self, factor: float) -> "Limit":
        """Each limit times ``factor``, rounded down but never below 1."""
        def scale(n):
            return None if n is None else max(1, math.floor(n * factor + 1e-9))
        return Limit(scale(self.burst), scale(self.steady), scale(self.daily),
                     self.burst_window, self.steady_window, self.daily_window)


class Attempt(NamedTuple):
    """One script decision. ``wait``: seconds until a grant is possible (0.0 if
    granted). ``now_us``: the Redis time of the decision, µs since the epoch."""
    granted: bool
    wait: float
    now_us: int


class Pause(NamedTuple):
    """The shared cool-down in force after ``pause``, in Redis µs."""
    until_us: int
    now_us: int

    @property
    def remaining(self) -> float:
        """Seconds of pause left at the time of the call."""
        return max(0, self.until_us - self.now_us) / US_PER_SECOND


@dataclass(frozen=True)
class BucketStats:
    """Counters (since the bucket was last idle for 7 days) and current windows.

    ``in_last_*`` count grants inside the enforced burst, steady and daily
    windows (margin included); ``in_last_day`` is None without a daily cap.
    """
    grants: int
    denials: int
    seconds_waited: float
    cooldowns: int
    cooldown_remaining: float
    in_last_second: int
    in_last_minute: int
    in_last_day: int | None
    burst: int
    steady: int
    daily: int | None


def _limit(value) -> Limit:
    if isinstance(value, Limit):
        return value
    if isinstance(value, Mapping):
        return Limit(**value)
    return Limit(*value)


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


@lru_cache(maxsize=1)
def _klaviyo_operations() -> dict:
    path = resources.files("klaviyo").joinpath("ratelimits.json")
    return json.loads(path.read_text(encoding="utf-8"))["operations"]


def klaviyo_limits(scale: float = 1.0) -> dict[str, Limit]:
    """Klaviyo's per-operation limits from ``klaviyo/ratelimits.json`` (keyed
    by operationId), each multiplied by ``scale`` (see ``Limit.scaled``)."""
    if not scale > 0:
        raise ValueError("scale must be > 0")
    limits = {op: Limit(spec["burst"], spec["steady"], spec["daily"])
              for op, spec in _klaviyo_operations().items()}
    return limits if scale == 1.0 else {op: limit.scaled(scale) for op, limit in limits.items()}


class RedisRateLimiter:
    """Burst, steady and daily limits per bucket, shared through Redis by
    every process that builds a limiter with the same namespace and account.

    Parameters:
        redis_client(redis.Redis): any client; bytes or decoded replies.
        limits(Mapping[str, Limit | tuple]): bucket name -> its limits.
        account(str): isolates budgets; a label, never a secret.
        namespace(str): prefix of every Redis key.
        margin_seconds(float): added to every window (default 0.05 s).
    """

    def __init__(self, redis_client, limits: Mapping, account: str = "default",
                 namespace: str = DEFAULT_NAMESPACE, margin_seconds: float = DEFAULT_MARGIN_SECONDS):
        if not margin_seconds >= 0:
            raise ValueError("margin_seconds must be >= 0")
        for name in (account, *limits):
            if not name or any(c in str(name) for c in "{}"):
                raise ValueError(f"bad account or bucket name {name!r}: empty or contains braces")
        self.redis = redis_client
        self.account = account
        self.namespace = namespace
        self.margin_seconds = margin_seconds
        self.limits: dict[str, Limit] = {name: _limit(value) for name, value in limits.items()}
        self._script = redis_client.register_script(LUA_SOURCE)
        self._keys = {name: self._bucket_keys(name) for name in self.limits}
        self._windows = {name: self._window_args(limit) for name, limit in self.limits.items()}

    @classmethod
    def for_klaviyo(cls, redis_client, api_key: str, scale: float = 1.0,
                    overrides: Mapping | None = None, **kwargs) -> "RedisRateLimiter":
        """A limiter with a bucket per Klaviyo operation. The account is a short
        SHA-256 of ``api_key``; the key itself is neither stored nor shown.
        ``overrides`` replace (or add) buckets after scaling."""
        if not api_key:
            raise ValueError("api_key is empty")
        account = hashlib.sha256(api_key.encode()).hexdigest()[:12]
        limits = klaviyo_limits(scale)
        limits.update({name: _limit(value) for name, value in (overrides or {}).items()})
        return cls(redis_client, limits, account=account, **kwargs)

    def __repr__(self) -> str:
        names = sorted(self.limits)
        shown = ", ".join(names[:5]) + (f", … (+{len(names) - 5})" if len(names) > 5 else "")
        return f"<RedisRateLimiter account={self.account!r} buckets=[{shown}]>"

    def acquire(self, bucket: str, timeout: float | None = None) -> float:
        """Block until ``bucket`` grants one request; return seconds waited.

        Sleeps for the exact wait the script returns (plus up to
        ``MAX_JITTER_SECONDS``) between attempts. ``timeout=None`` waits for
        ever; otherwise raises ``RateLimitTimeout`` as soon as the next
        possible grant lies beyond the deadline, without sleeping in vain.
        """
        if timeout is not None and timeout < 0:
            raise ValueError("timeout must be >= 0 or None")
        start = time.monotonic()
        slept = 0.0
        while True:
            attempt = self.attempt(bucket, waited=slept)
            elapsed = time.monotonic() - start
            if attempt.granted:
                return elapsed
            if timeout is not None and attempt.wait > timeout - elapsed:
                raise RateLimitTimeout(bucket, waited=elapsed, retry_in=attempt.wait)
            pause = attempt.wait + random.uniform(0, MAX_JITTER_SECONDS)
            if timeout is not None:
                pause = min(pause, timeout - elapsed)
            before = time.monotonic()
            time.sleep(pause)
            slept = time.monotonic() - before

    def try_acquire(self, bucket: str) -> float:
        """Take one grant if possible now: 0.0 if granted, else the seconds to
        wait before one is possible (nothing is consumed)."""
        return self.attempt(bucket).wait

    def attempt(self, bucket: str, *, waited: float = 0.0, now_us: int | None = None) -> Attempt:
        """One atomic try. ``waited`` (seconds slept since the last try) feeds
        the counters; ``now_us`` replaces Redis TIME and exists for tests."""
        granted, wait, now = self._call("acquire", bucket, round(waited * US_PER_SECOND), now_us)
        return Attempt(bool(int(granted)), float(_text(wait)), int(_text(now)))

    def cool_down(self, bucket: str, seconds: float) -> None:
        """Pause ``bucket`` for every worker for ``seconds`` (e.g. a 429's
        Retry-After). Only extends: a shorter pause than the one in force
        changes nothing. Counted in ``cooldowns`` either way."""
        self.pause(bucket, seconds)

    def pause(self, bucket: str, seconds: float, *, now_us: int | None = None) -> Pause:
        """``cool_down`` that reports the pause now in force, in Redis time.
        ``now_us`` replaces Redis TIME and exists for tests."""
        seconds = float(seconds)
        if not math.isfinite(seconds):
            raise ValueError("cool-down seconds must be finite")
        until, now = self._call("cooldown", bucket, round(max(0.0, seconds) * US_PER_SECOND), now_us)
        return Pause(int(_text(until)), int(_text(now)))

    def stats(self, *, now_us: int | None = None) -> dict[str, BucketStats]:
        """Counters and window occupancy of every bucket, in one round trip."""
        pipe = self.redis.pipeline(transaction=False)
        for bucket in self.limits:
            self._call("stats", bucket, 0, now_us, client=pipe)
        return {bucket: self._bucket_stats(bucket, reply)
                for bucket, reply in zip(self.limits, pipe.execute())}

    def _bucket_stats(self, bucket: str, reply) -> BucketStats:
        _, pause_left, counts, flat = reply
        counters = {_text(k): int(_text(v)) for k, v in zip(flat[0::2], flat[1::2])}
        limit = self.limits[bucket]
        return BucketStats(
            grants=counters.get("grants", 0),
            denials=counters.get("denials", 0),
            seconds_waited=counters.get("waited_us", 0) / US_PER_SECOND,
            cooldowns=counters.get("cooldowns", 0),
            cooldown_remaining=float(_text(pause_left)),
            in_last_second=int(counts[0]),
            in_last_minute=int(counts[1]),
            in_last_day=int(counts[2]) if limit.daily is not None else None,
            burst=limit.burst, steady=limit.steady, daily=limit.daily,
        )

    def _call(self, command: str, bucket: str, amount_us: int, now_us: int | None, client=None):
        if bucket not in self.limits:
            raise KeyError(f"unknown rate-limit bucket {bucket!r}")
        args = [command, "" if now_us is None else int(now_us), int(amount_us), *self._windows[bucket]]
        return self._script(keys=self._keys[bucket], args=args, client=client)

    def _bucket_keys(self, bucket: str) -> list[str]:
        # One hash tag per (account, bucket): the script's keys share a Cluster slot.
        base = f"{self.namespace}:{{{self.account}:{bucket}}}"
        return [f"{base}:log", f"{base}:pause", f"{base}:stats"]

    def _window_args(self, limit: Limit) -> list[int]:
        pairs = limit.windows()
        args = [len(pairs)]
        for count, window in pairs:
            args += [count, round((window + self.margin_seconds) * US_PER_SECOND)]
        return args


class LayeredLimiter:
    """A request needs a grant from every layer, innermost first: e.g. a connection's share of a
    Klaviyo account, then the account itself (every key of an account counts against the same
    limits, so the account's bucket is shared by every connection writing to it).

    A grant the inner layer gave for a request the outer layer then refuses is spent, not
    returned: the inner layer only ever caps, so this errs on the side of sending less. A 429
    (``cool_down``) pauses every layer. ``stats`` and ``limits`` are the outermost layer's.
    """

    def __init__(self, *layers: RedisRateLimiter):
        if not layers:
            raise ValueError("at least one layer")
        self.layers = layers
        self.outer = layers[-1]
        self.limits = self.outer.limits
        self.account = self.outer.account

    def __repr__(self) -> str:
        return f"<LayeredLimiter {' -> '.join(layer.account for layer in self.layers)}>"

    def acquire(self, bucket: str, timeout: float | None = None) -> float:
        start = time.monotonic()
        for layer in self.layers:
            left = None if timeout is None else max(0.0, timeout - (time.monotonic() - start))
            layer.acquire(bucket, timeout=left)
        return time.monotonic() - start

    def cool_down(self, bucket: str, seconds: float) -> None:
        for layer in self.layers:
            layer.cool_down(bucket, seconds)

    def stats(self, **kwargs) -> dict[str, BucketStats]:
        return self.outer.stats(**kwargs)


#: TikTok's published default: 50 requests per second per app per API (``tiktok-shop-api.md`` §4.3;
#: "dynamic by authorization scale", so a 429 still cools the bucket down). Per minute: 50 x 60.
TIKTOK_DEFAULT_QPS = 50


class TikTokLimiter:
    """A bucket per TikTok API path for one (app, shop), shared by every worker: ``acquire(path)``
    before each call. Ids in paths (``/product/202309/products/1729...``) share one bucket."""

    def __init__(self, redis_client, app_key: str, shop: str, qps: int = TIKTOK_DEFAULT_QPS, **kwargs):
        from tiktok import client as paths

        names = [getattr(paths, n) for n in dir(paths) if n.endswith("_PATH") and not n.startswith("TOKEN")]
        limits = {_tiktok_bucket(p): Limit(qps, qps * 60) for p in names}
        account = "tiktok-" + hashlib.sha256(f"{app_key}:{shop}".encode()).hexdigest()[:12]
        self.limiter = RedisRateLimiter(redis_client, limits, account=account, **kwargs)

    def acquire(self, path: str, timeout: float | None = None) -> float:
        return self.limiter.acquire(_tiktok_bucket(path), timeout=timeout)

    def cool_down(self, path: str, seconds: float) -> None:
        self.limiter.cool_down(_tiktok_bucket(path), seconds)


def _tiktok_bucket(path: str) -> str:
    return "/".join("id" if (part.isdigit() and len(part) > 8) or part.startswith("{") else part
                    for part in path.split("/"))
