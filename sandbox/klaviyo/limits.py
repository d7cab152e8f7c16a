"""Klaviyo's rate limits: fixed windows per (account, operationId).

The account is the Klaviyo account (accounts.py), not the key: every private
key of an account counts against the same windows, as Klaviyo counts them.

Klaviyo counts each endpoint in two fixed windows, 1 s (burst) and 60 s
(steady), plus a day for the few endpoints with a ``daily`` limit. Windows are
aligned to the server clock (window n of size w covers [n*w, (n+1)*w)), so up
to twice a limit can pass across a boundary, exactly as with the real API.
A request over any window is refused and does **not** count; otherwise it
counts in every window.

Numbers come from ``klaviyo/ratelimits.json`` (generated from the spec's
``x-klaviyo-ratelimit``), times ``scale``, with per-operation overrides.
"""

from __future__ import annotations

import importlib.resources
import json
import math
import threading
from dataclasses import dataclass

#: Window lengths in seconds, by the name used in ratelimits.json.
WINDOWS = {"burst": 1, "steady": 60, "daily": 86400}

#: Used for an operation the table does not know (Klaviyo's "L" tier).
DEFAULT_LIMIT = (75, 750, None)


@dataclass(frozen=True)
class Limit:
    burst: int
    steady: int
    daily: int | None = None

    def windows(self):
        """(window seconds, allowed count) pairs that apply."""
        yield WINDOWS["burst"], self.burst
        yield WINDOWS["steady"], self.steady
        if self.daily is not None:
            yield WINDOWS["daily"], self.daily


@dataclass(frozen=True)
class Decision:
    """The limiter's answer: ``allowed``, or the whole seconds to wait before retrying.

    ``limit``/``remaining``/``reset`` describe the steady window, for the
    ``RateLimit-*`` headers of a non-429 answer.
    """

    allowed: bool
    retry_after: int
    limit: int
    remaining: int
    reset: int

    def headers(self) -> dict[str, str]:
        return {"RateLimit-Limit": str(self.limit), "RateLimit-Remaining": str(self.remaining),
                "RateLimit-Reset": str(self.reset)}


def load_table() -> dict[str, Limit]:
    """operationId -> Limit, from the packaged ``klaviyo/ratelimits.json``."""
    raw = json.loads(importlib.resources.files("klaviyo").joinpath("ratelimits.json").read_text())
    return {op: Limit(v["burst"], v["steady"], v.get("daily")) for op, v in raw["operations"].items()}


def as_limit(value) -> Limit:
    """Accept ``Limit``, ``(burst, steady, daily)`` or ``{"burst":..,"steady":..,"daily":..}``."""
    if isinstance(value, Limit):
        return value
    if isinstance(value, dict):
        return Limit(int(value["burst"]), int(value["steady"]), None if value.get("daily") is None else int(value["daily"]))
    burst, steady, *rest = value
    daily = rest[0] if rest else None
    return Limit(int(burst), int(steady), None if daily is None else int(daily))


def scaled(limit: Limit, scale: float) -> Limit:
    """``limit`` times ``scale``, never below 1 per window."""
    def one(n):
        return None if n is None else max(1, int(n * scale))
    return Limit(one(limit.burst), one(limit.steady), one(limit.daily))


class FixedWindowLimiter:
    """Thread-safe fixed-window counters; time is passed in so tests can drive it."""

    def __init__(self, table: dict[str, Limit] | None = None, scale: float = 1.0, overrides: dict | None = None):
        self.table = load_table() if table is None else table
        self.scale = scale
        self.overrides: dict[str, Limit] = {}
        self._lock = threading.Lock()
        self._counts: dict[tuple, list] = {}  # (account, op, window) -> [window index, count]
        self.set_overrides(overrides or {})

    def set_overrides(self, overrides: dict) -> None:
        """Replace per-operation limits; these are absolute (not multiplied by ``scale``)."""
        with self._lock:
            self.overrides = {op: as_limit(v) for op, v in overrides.items()}

    def limit_for(self, op: str) -> Limit:
        if op in self.overrides:
            return self.overrides[op]
        return scaled(self.table.get(op) or Limit(*DEFAULT_LIMIT), self.scale)

    def acquire(self, account: str, op: str, now: float) -> Decision:
        """Count one request unless a window is full; say how long to wait if it is."""
        return self._decide(account, op, now, consume=True)

    def peek(self, account: str, op: str, now: float) -> Decision:
        """The current state without counting (for answers that never reached the limiter)."""
        return self._decide(account, op, now, consume=False)

    def reset(self, account: str | None = None) -> None:
        """Forget the counts of every account, or of ``account`` only."""
        with self._lock:
            if account is None:
                self._counts.clear()
            else:
                for key in [k for k in self._counts if k[0] == account]:
                    del self._counts[key]

    def _decide(self, account: str, op: str, now: float, consume: bool) -> Decision:
        limit = self.limit_for(op)
        with self._lock:
            slots, wait = [], 0.0
            for size, allowed in limit.windows():
                index = int(now // size)
                slot = self._counts.get((account, op, size))
                if slot is None or slot[0] != index:
                    slot = self._counts[(account, op, size)] = [index, 0]
                slots.append(slot)
                if slot[1] >= allowed:
                    wait = max(wait, (index + 1) * size - now)
            allowed_now = wait == 0.0
            if allowed_now and consume:
                for slot in slots:
                    slot[1] += 1
            steady_used = slots[1][1]
        steady_reset = max(1, math.ceil(WINDOWS["steady"] - now % WINDOWS["steady"]))
        return Decision(allowed=allowed_now, retry_after=max(1, math.ceil(wait)), limit=limit.steady,
                        remaining=max(0, limit.steady - steady_used), reset=steady_reset)
