"""Request and delivery counters, for tests and benchmarks to assert on."""

from __future__ import annotations

import threading
from collections import defaultdict

NAMES = ("http_429", "signature_failures", "token_refreshes", "webhooks_sent", "webhooks_failed",
         "webhook_attempts")


class Counters:
    """``requests[path][str(code)]`` plus named totals; ``snapshot()`` is JSON-ready."""

    def __init__(self):
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self._requests: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
            self._totals = dict.fromkeys(NAMES, 0)

    def request(self, path: str, code: int, http_status: int) -> None:
        with self._lock:
            self._requests[path][str(code)] += 1
            if http_status == 429:
                self._totals["http_429"] += 1

    def add(self, name: str, amount: int = 1) -> None:
        with self._lock:
            self._totals[name] += amount

    def snapshot(self) -> dict:
        with self._lock:
            requests = {path: dict(codes) for path, codes in self._requests.items()}
            return {"requests": requests, "requests_total": sum(sum(c.values()) for c in requests.values()),
                    **self._totals}
