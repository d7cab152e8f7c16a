"""Signed TikTok webhooks, delivered from a background thread, with misbehaviour on request.

Every notification is the envelope ``{type, tts_notification_id, shop_id, timestamp, data}``,
serialised once; ``Authorization`` is hex HMAC-SHA256(app_secret, app_key + those bytes).
Types sent: 1 ORDER_STATUS_CHANGE, 6 SELLER_DEAUTHORIZATION, 7 UPCOMING_AUTHORIZATION_EXPIRATION,
11 CANCELLATION_STATUS_CHANGE, 12 RETURN_STATUS_CHANGE (``data`` shapes as in the references).

Retries: TikTok retries an unacknowledged delivery (non-2xx, or no answer within 3 s)
2 min after the first failure, then 30 min, 3 h and 12 h after each further one, and
drops it after the 4th retry fails (``TIKTOK_RETRY_SCHEDULE``). The stand-in keeps
that shape, four growing waits, compressed to seconds by default
(``DEFAULT_RETRY_SCHEDULE``); pass ``TIKTOK_RETRY_SCHEDULE`` for the real one. Any
2xx acknowledges; the answer must come within ``ACK_TIMEOUT_SECONDS``.

On request (``WebhookFaults``, each for the next N notifications): repeated
deliveries (same bytes, same id), out-of-order deliveries (held, then sent newest
first), a forged signature, a stale ``timestamp``. ``log()`` records each
notification's change time, first attempt and acknowledgement (for latency).
"""

from __future__ import annotations

import heapq
import itertools
import json
import logging
import random
import threading
import time
from dataclasses import asdict, dataclass, field

import requests

from .signing import sign_webhook

log = logging.getLogger(__name__)
#: TikTok's schedule: seconds before each retry (2 min, 30 min, 3 h, 12 h), then dropped.
TIKTOK_RETRY_SCHEDULE = (120.0, 1800.0, 10800.0, 43200.0)
#: The same four growing waits, compressed so tests and benches see every retry in seconds.
DEFAULT_RETRY_SCHEDULE = (0.2, 1.0, 3.0, 6.0)
#: TikTok counts a delivery as failed when no answer comes within 3 s.
ACK_TIMEOUT_SECONDS = 3.0
ORDER_STATUS_CHANGE, SELLER_DEAUTHORIZATION, UPCOMING_AUTHORIZATION_EXPIRATION = 1, 6, 7
CANCELLATION_STATUS_CHANGE, RETURN_STATUS_CHANGE = 11, 12
#: The types the stand-in sends, by TikTok's subscription names.
EVENT_NAMES = {"ORDER_STATUS_CHANGE": ORDER_STATUS_CHANGE, "SELLER_DEAUTHORIZATION": SELLER_DEAUTHORIZATION,
               "UPCOMING_AUTHORIZATION_EXPIRATION": UPCOMING_AUTHORIZATION_EXPIRATION,
               "CANCELLATION_STATUS_CHANGE": CANCELLATION_STATUS_CHANGE, "RETURN_STATUS_CHANGE": RETURN_STATUS_CHANGE}
EVENT_TYPES = tuple(EVENT_NAMES.values())


def event_types(events) -> frozenset[int]:
    """Event names or type numbers -> type numbers; ``ValueError`` for one the stand-in does not send."""
    types = set()
    for event in events:
        value = EVENT_NAMES.get(event, event) if isinstance(event, str) else event
        if value not in EVENT_TYPES:
            raise ValueError(f"unknown webhook event {event!r}")
        types.add(value)
    return frozenset(types)


#: Log entries kept (oldest dropped first), enough for a long benchmark.
MAX_LOG = 200_000


def envelope(type_: int, notification_id: str, shop_id: str, data: dict, timestamp: int | None = None) -> bytes:
    """The webhook body, as compact JSON bytes."""
    payload = {"type": type_, "tts_notification_id": notification_id, "shop_id": shop_id,
               "timestamp": int(time.time()) if timestamp is None else timestamp, "data": data}
    return json.dumps(payload, separators=(",", ":")).encode("utf-8")


def status_change_body(notification_id: str, shop_id: str, order_id: str, status: str, is_on_hold: bool,
                       update_time: int, timestamp: int | None = None) -> bytes:
    """The type-1 envelope, as compact JSON bytes."""
    return envelope(ORDER_STATUS_CHANGE, notification_id, shop_id,
                    {"is_on_hold_order": is_on_hold, "order_id": order_id, "order_status": status,
                     "update_time": update_time}, timestamp)


@dataclass
class WebhookFaults:
    """Misbehaviour for the next N notifications each (counts go down as they are used)."""

    duplicate: int = 0        #: delivered twice, same bytes and id
    reorder: int = 0          #: held until this many are queued, then delivered newest first
    forge: int = 0            #: signed with the wrong secret
    stale: int = 0            #: ``timestamp`` set ``stale_seconds`` in the past (signed correctly)
    stale_seconds: int = 600


@dataclass
class LogEntry:
    notification_id: str
    type: int
    shop_id: str
    url: str
    subject: str                 #: the order, return, cancellation or seller id the notice is about
    changed_at: float            #: when the change happened (unix seconds, sub-second)
    queued_at: float
    first_attempt_at: float | None = None
    acked_at: float | None = None
    attempts: int = 0
    copies: int = 1
    forged: bool = False
    stale: bool = False
    outcome: str = "pending"     #: pending, acked, dropped


@dataclass(order=True)
class _Delivery:
    due: float
    seq: int
    body: bytes = field(compare=False)
    url: str = field(compare=False)
    entry: LogEntry = field(compare=False)
    attempt: int = field(default=0, compare=False)


class WebhookSender:
    """Queue of pending deliveries; ``start()`` / ``stop()`` own the thread."""

    def __init__(self, app_key: str, app_secret: str, counters, retry_schedule=DEFAULT_RETRY_SCHEDULE,
                 timeout: float = ACK_TIMEOUT_SECONDS):
        self.app_key, self.app_secret = app_key, app_secret
        self.counters, self.retry_schedule, self.timeout = counters, tuple(retry_schedule), timeout
        self.faults = WebhookFaults()
        self._queue: list[_Delivery] = []
        self._held: list[_Delivery] = []
        self._log: list[LogEntry] = []
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
            self._held.clear()
            self._log.clear()
            self.faults = WebhookFaults()

    def set_faults(self, **changes) -> dict:
        """Change the named fault counts (unknown names raise ``TypeError``); returns them all."""
        with self._cond:
            for name, value in changes.items():
                if name not in WebhookFaults.__dataclass_fields__:
                    raise TypeError(f"unknown webhook fault {name!r}")
                setattr(self.faults, name, int(value))
            return asdict(self.faults)

    def notify(self, url: str | None, type_: int, shop_id: str, data: dict, subject: str = "",
               changed_at: float | None = None) -> str | None:
        """Queue one notification to ``url`` (nothing when None); returns its ``tts_notification_id``."""
        if not url:
            return None
        now = time.time()
        with self._cond:
            f = self.faults
            stale, forged, copies = f.stale > 0, f.forge > 0, 2 if f.duplicate > 0 else 1
            f.stale, f.forge, f.duplicate = max(0, f.stale - 1), max(0, f.forge - 1), max(0, f.duplicate - 1)
            notification_id = str(next(self._ids))
            body = envelope(type_, notification_id, shop_id, data,
                            int(now) - f.stale_seconds if stale else int(now))
            entry = LogEntry(notification_id, type_, shop_id, url, subject, changed_at or now, now, copies=copies,
                             forged=forged, stale=stale)
            self._log.append(entry)
            if len(self._log) > MAX_LOG:
                del self._log[: len(self._log) - MAX_LOG]
            deliveries = [_Delivery(time.monotonic(), next(self._seq), body, url, entry) for _ in range(copies)]
            if f.reorder > 0:
                self._held.extend(deliveries)
                f.reorder -= 1
                if f.reorder == 0:
                    self._release_held()
            else:
                for d in deliveries:
                    heapq.heappush(self._queue, d)
            self._cond.notify_all()
            return notification_id

    def flush_held(self) -> int:
        """Send whatever ``reorder`` is still holding (newest first); returns how many."""
        with self._cond:
            count = len(self._held)
            self.faults.reorder = 0
            self._release_held()
            self._cond.notify_all()
            return count

    def _release_held(self) -> None:
        start = time.monotonic()
        for k, d in enumerate(reversed(self._held)):
            d.due, d.seq = start, next(self._seq)
            heapq.heappush(self._queue, d)
        self._held.clear()

    def log(self) -> list[dict]:
        with self._cond:
            return [asdict(e) for e in self._log]

    def pending(self) -> int:
        with self._cond:
            return len(self._queue) + self._in_flight + len(self._held)

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Block until nothing is queued or in flight (True), or ``timeout`` passes (False). Held
        (``reorder``) notifications do not count: they wait for more to come."""
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
            started = time.time()
            ok = self._post(delivery)
            with self._cond:
                self._in_flight -= 1
                entry = delivery.entry
                entry.attempts += 1
                entry.first_attempt_at = entry.first_attempt_at or started
                if ok:
                    self.counters.add("webhooks_sent")
                    if entry.acked_at is None:
                        entry.acked_at, entry.outcome = time.time(), "acked"
                elif delivery.attempt < len(self.retry_schedule):
                    delivery.due = time.monotonic() + self.retry_schedule[delivery.attempt]
                    delivery.attempt += 1
                    heapq.heappush(self._queue, delivery)
                else:
                    self.counters.add("webhooks_failed")
                    if entry.acked_at is None:
                        entry.outcome = "dropped"
                self._cond.notify_all()

    def _post(self, delivery: _Delivery) -> bool:
        self.counters.add("webhook_attempts")
        secret = "forged-" + self.app_secret if delivery.entry.forged else self.app_secret
        headers = {"Content-Type": "application/json",
                   "Authorization": sign_webhook(self.app_key, secret, delivery.body)}
        try:
            response = self._session.post(delivery.url, data=delivery.body, headers=headers, timeout=self.timeout)
        except requests.RequestException as exc:
            log.info("webhook to %s failed: %s", delivery.url, type(exc).__name__)
            return False
        return 200 <= response.status_code < 300
