"""Signed ORDER_STATUS_CHANGE (type 1) webhooks, delivered from a background thread.

TikTok retries an unacknowledged delivery at 2 min, 30 min, 3 h and 12 h; the
stand-in keeps that shape on a compressed schedule (0.2 s, 1 s, 3 s by
default). Any 2xx acknowledges. Each body is serialised once; the
``Authorization`` header is computed over exactly those bytes.
"""

from __future__ import annotations

import heapq
import itertools
import json
import logging
import random
import threading
import time
from dataclasses import dataclass, field

import requests

from .signing import sign_webhook

log = logging.getLogger(__name__)
DEFAULT_RETRY_SCHEDULE = (0.2, 1.0, 3.0)   #: seconds before each retry (TikTok: 2 min, 30 min, 3 h, 12 h)


def status_change_body(notification_id: str, shop_id: str, order_id: str, status: str, is_on_hold: bool,
                       update_time: int, timestamp: int | None = None) -> bytes:
    """The type-1 envelope, as compact JSON bytes."""
    payload = {"type": 1, "tts_notification_id": notification_id, "shop_id": shop_id,
               "timestamp": int(time.time()) if timestamp is None else timestamp,
               "data": {"is_on_hold_order": is_on_hold, "order_id": order_id, "order_status": status,
                        "update_time": update_time}}
    return json.dumps(payload, separators=(",", ":")).encode("utf-8")


@dataclass(order=True)
class _Delivery:
    due: float
    seq: int
    body: bytes = field(compare=False)
    attempt: int = field(default=0, compare=False)


class WebhookSender:
    """Queue of pending deliveries to ``url``; ``start()`` / ``stop()`` own the thread."""

    def __init__(self, url: str, app_key: str, app_secret: str, shop_id: str, counters,
                 retry_schedule=DEFAULT_RETRY_SCHEDULE, timeout: float = 5.0):
        self.url, self.app_key, self.app_secret, self.shop_id = url, app_key, app_secret, shop_id
        self.counters, self.retry_schedule, self.timeout = counters, tuple(retry_schedule), timeout
        self._queue: list[_Delivery] = []
        self._seq = itertools.count()
        self._ids = itertools.count(random.Random().randrange(7_380_000_000_000_000_000, 7_390_000_000_000_000_000))
        self._cond = threading.Condition()
        self._in_flight = 0
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._session = requests.Session()

    def start(self) -> "WebhookSender":
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="tiktok-webhooks", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=self.timeout + 1)
            self._thread = None
        self._session.close()

    def clear(self) -> None:
        with self._cond:
            self._queue.clear()

    def order_status_changed(self, order_id: str, status: str, is_on_hold: bool, update_time: int) -> None:
        body = status_change_body(str(next(self._ids)), self.shop_id, order_id, status, is_on_hold, update_time)
        with self._cond:
            heapq.heappush(self._queue, _Delivery(time.monotonic(), next(self._seq), body))
            self._cond.notify_all()

    def pending(self) -> int:
        with self._cond:
            return len(self._queue) + self._in_flight

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Block until nothing is queued or in flight (True), or ``timeout`` passes (False)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._queue or self._in_flight:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.05))
            return True

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stopping and (not self._queue or self._queue[0].due > time.monotonic()):
                    wait = self._queue[0].due - time.monotonic() if self._queue else None
                    self._cond.wait(wait)
                if self._stopping:
                    return
                delivery = heapq.heappop(self._queue)
                self._in_flight += 1
            ok = self._post(delivery.body)
            with self._cond:
                self._in_flight -= 1
                if ok:
                    self.counters.add("webhooks_sent")
                elif delivery.attempt < len(self.retry_schedule):
                    delivery.due = time.monotonic() + self.retry_schedule[delivery.attempt]
                    delivery.attempt += 1
                    heapq.heappush(self._queue, delivery)
                else:
                    self.counters.add("webhooks_failed")
                self._cond.notify_all()

    def _post(self, body: bytes) -> bool:
        self.counters.add("webhook_attempts")
        headers = {"Content-Type": "application/json",
                   "Authorization": sign_webhook(self.app_key, self.app_secret, body)}
        try:
            response = self._session.post(self.url, data=body, headers=headers, timeout=self.timeout)
        except requests.RequestException as exc:
            log.info("webhook to %s failed: %s", self.url, exc)
            return False
        return 200 <= response.status_code < 300
