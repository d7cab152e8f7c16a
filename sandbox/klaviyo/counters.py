"""What the stand-in counts: requests, 429s, dropped duplicates, injected faults, and an arrival log.

Benchmarks read these through ``/_sandbox/summary`` and ``/_sandbox/requests``
(e.g. to find the busiest 1 s / 60 s window a client produced).
"""

from __future__ import annotations

import threading
from collections import Counter, defaultdict, deque

#: Arrival-log entries kept (oldest dropped first).
REQUEST_LOG_CAP = 200_000


class Counters:
    def __init__(self):
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with getattr(self, "_lock", threading.Lock()):
            self.requests: dict[str, Counter] = defaultdict(Counter)   # op -> status -> n
            self.http_429: Counter = Counter()                        # op -> n (limiter only)
            self.duplicates_dropped: Counter = Counter()              # op -> n
            self.faults_by_kind: Counter = Counter()
            self.faults_by_op: Counter = Counter()
            self.log: deque = deque(maxlen=REQUEST_LOG_CAP)

    def request(self, op: str, arrived: float, status: int, dropped: bool = False) -> None:
        entry = {"op": op, "t": arrived, "status": status}
        if dropped:
            entry["dropped"] = True
        with self._lock:
            self.requests[op][status] += 1
            self.log.append(entry)

    def throttled(self, op: str) -> None:
        with self._lock:
            self.http_429[op] += 1

    def duplicate(self, op: str, n: int = 1) -> None:
        with self._lock:
            self.duplicates_dropped[op] += n

    def fault(self, op: str, kind: str) -> None:
        with self._lock:
            self.faults_by_kind[kind] += 1
            self.faults_by_op[op] += 1

    def requests_for(self, op: str | None = None, since: float | None = None) -> list[dict]:
        with self._lock:
            entries = list(self.log)
        return [e for e in entries if (op is None or e["op"] == op) and (since is None or e["t"] >= since)]

    def snapshot(self) -> dict:
        with self._lock:
            return {
                "requests": {op: {str(s): n for s, n in sorted(by.items())} for op, by in sorted(self.requests.items())},
                "requests_total": sum(sum(by.values()) for by in self.requests.values()),
                "http_429": {"total": sum(self.http_429.values()), "by_op": dict(sorted(self.http_429.items()))},
                "duplicates_dropped": {"total": sum(self.duplicates_dropped.values()),
                                       "by_op": dict(sorted(self.duplicates_dropped.items()))},
                "faults_injected": {"total": sum(self.faults_by_kind.values()),
                                    "by_kind": dict(sorted(self.faults_by_kind.items())),
                                    "by_op": dict(sorted(self.faults_by_op.items()))},
            }
