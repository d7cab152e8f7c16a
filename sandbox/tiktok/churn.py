"""A steady stream of order changes, for benchmarks: ``changes_per_second`` for ``duration`` seconds.

Each tick takes the next order (round robin over the shops' orders that still
have planned steps) and applies its next step now, which notifies the webhook
URL like any other change. Ticks are on an absolute schedule (``start + k /
rate``), so a slow tick is caught up rather than lowering the rate; the stream
ends early when no order has a step left (``exhausted``). Every change is
recorded with its wall-clock time, so a bench can join it to the webhook log
(``LogEntry.changed_at`` / ``acked_at``) or to what reached Klaviyo.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import deque
from dataclasses import asdict, dataclass, field


@dataclass
class ChurnStats:
    rate: float
    duration: float
    shops: list[str]
    started_at: float = 0.0
    stopped_at: float | None = None
    changes: int = 0
    exhausted: bool = False
    changes_log: list[dict] = field(default_factory=list)   #: {order_id, status, shop_id, at}

    def snapshot(self) -> dict:
        data = asdict(self)
        elapsed = (self.stopped_at or time.time()) - self.started_at
        data["achieved_rate"] = self.changes / elapsed if elapsed > 0 else 0.0
        return data


class Churn:
    """The background thread; ``stop()`` ends it early, ``join()`` waits for its end."""

    def __init__(self, shops: list, changes_per_second: float, duration: float):
        if changes_per_second <= 0 or duration <= 0:
            raise ValueError("changes_per_second and duration must be positive")
        self.shops = shops
        self.stats = ChurnStats(changes_per_second, duration, [s.id for s in shops])
        self._stop = threading.Event()
        per_shop = [[(shop, oid) for oid in shop.store.movable()] for shop in shops]
        self._queue = deque(pair for group in itertools.zip_longest(*per_shop) for pair in group if pair)
        self._thread = threading.Thread(target=self._run, name="tiktok-churn", daemon=True)

    def start(self) -> "Churn":
        self.stats.started_at = time.time()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self.join()

    def join(self, timeout: float | None = None) -> None:
        if self._thread.is_alive():
            self._thread.join(timeout)

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def _next_change(self):
        while self._queue:
            shop, order_id = self._queue.popleft()
            moved = shop.step_order(order_id)
            if moved is not None:
                if shop.store.records[order_id].pending:
                    self._queue.append((shop, order_id))     # back of the line for its next step
                return shop, order_id, moved
        return None

    def _run(self) -> None:
        start, interval, k = time.monotonic(), 1.0 / self.stats.rate, 0
        while not self._stop.is_set():
            due = start + k * interval
            if due - start >= self.stats.duration:
                break
            if self._stop.wait(max(0.0, due - time.monotonic())):
                break
            change = self._next_change()
            if change is None:
                self.stats.exhausted = True
                break
            shop, order_id, (status, _) = change
            self.stats.changes += 1
            self.stats.changes_log.append({"order_id": order_id, "status": status, "shop_id": shop.id,
                                           "at": time.time()})
            k += 1
        self.stats.stopped_at = time.time()
