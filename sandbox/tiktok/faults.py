"""What goes wrong on purpose: the rate limit, forced 429s, server errors, latency.

The rate limit is a token bucket per (app_key, path) holding ``qps`` tokens
and refilling at ``qps`` per second, like TikTok's per-app, per-API QPS
limit. ``qps`` of 0 or ``None`` switches it off.
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import asdict, dataclass


@dataclass
class FaultSettings:
    error_rate: float = 0.0        #: fraction of API requests answered 500 / 36009003
    force_429: int = 0             #: the next N API requests are answered 429 / 36009002
    rate_limit_qps: float | None = None   #: overrides the stand-in's configured QPS while set
    latency_ms: int = 0            #: added before every API answer
    retry_after: str = "1"         #: the 429s' Retry-After header: seconds, or an HTTP date


class Faults:
    def __init__(self, rate_limit_qps: float | None, seed: int = 0, clock=time.monotonic):
        self.default_qps = rate_limit_qps
        self.settings = FaultSettings()
        self.clock = clock
        self._rng = random.Random(f"{seed}:faults")
        self._buckets: dict[tuple[str, str], tuple[float, float]] = {}
        self._lock = threading.Lock()

    @property
    def qps(self) -> float | None:
        return self.settings.rate_limit_qps if self.settings.rate_limit_qps is not None else self.default_qps

    def configure(self, **changes) -> dict:
        """Change the named settings (unknown names raise ``TypeError``); returns them all."""
        with self._lock:
            for name, value in changes.items():
                if name not in FaultSettings.__dataclass_fields__:
                    raise TypeError(f"unknown fault setting {name!r}")
                setattr(self.settings, name, value)
            if "rate_limit_qps" in changes:
                self._buckets.clear()
            return asdict(self.settings)

    def clear(self) -> dict:
        with self._lock:
            self.settings = FaultSettings()
            self._buckets.clear()
            return asdict(self.settings)

    def snapshot(self) -> dict:
        return asdict(self.settings)

    def throttled(self, app_key: str, path: str) -> bool:
        """True if this request must get a 429 (forced, or over the bucket)."""
        with self._lock:
            if self.settings.force_429 > 0:
                self.settings.force_429 -= 1
                return True
            qps = self.qps
            if not qps:
                return False
            now = self.clock()
            tokens, last = self._buckets.get((app_key, path), (float(qps), now))
            tokens = min(float(qps), tokens + (now - last) * qps)
            if tokens < 1.0:
                self._buckets[(app_key, path)] = (tokens, now)
                return True
            self._buckets[(app_key, path)] = (tokens - 1.0, now)
            return False

    def server_error(self) -> bool:
        with self._lock:
            return self.settings.error_rate > 0 and self._rng.random() < self.settings.error_rate

    def delay(self) -> None:
        if self.settings.latency_ms > 0:
            time.sleep(self.settings.latency_ms / 1000.0)
