"""Real time: TikTok notifications become targeted syncs within seconds; polling stays the safety net.

A notification is a hint, never data: the web service (``workers/web.py``) notes the order it
names here, and ``ksync.sync_orders`` fetches the orders' current state with Get Order Detail
and sends them through the same mapping, planning and ledger as the poller (so ``unique_id``s
are the same and nothing is sent twice when the poller reads the order later).

- **Coalescing**: notes for one connection gather in Redis; the first note schedules one fetch
  ``COALESCE_SECONDS`` later, which takes everything noted by then. A burst of 1,000 webhooks
  becomes a few fetches of up to 50 orders each, not 1,000 TikTok calls.
- **Order**: TikTok retries and may deliver out of order. The fetch reads the order as it is
  now, and an order whose ``update_time`` is not newer than the ledger's is neither fetched nor
  planned again, so an old AWAITING_SHIPMENT notice after DELIVERED changes nothing.
- **Safety net**: a realtime run never moves the watermark. A notification that never arrives
  (the web service down, TikTok giving up after its retries) is caught by the next scheduled
  sync: at most one sync interval plus the lag after the change (the lookback re-reads the
  edge), 10 minutes and 1 by default.

Counters and the latency histogram live in Redis (``stats``), so every web process and worker
adds to the same numbers and ``/metrics`` reads them at scrape time.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

#: How long notes for one connection gather before one fetch takes them all (KSYNC_REALTIME_COALESCE_MS).
DEFAULT_COALESCE_SECONDS = 0.25
#: A scheduled fetch that never ran (its worker died) stops blocking the next one after this.
SCHEDULE_GUARD_MS = 30_000
NAMESPACE = "ksync:rt"
#: Upper bounds (seconds) of the queue-to-Klaviyo latency histogram's buckets.
LATENCY_BUCKETS = (0.25, 0.5, 1, 2, 3, 5, 10, 30, 60, 300)


def _keys(connection_id: str) -> tuple[str, str, str]:
    base = f"{NAMESPACE}:{{{connection_id}}}"
    return f"{base}:orders", f"{base}:received", f"{base}:scheduled"


def note_orders(redis_client, connection_id: str, orders: Iterable[tuple[str, int]], received_at: float) -> bool:
    """Remember ``(order id, update_time)`` pairs for the connection's next fetch. True when the
    caller must schedule that fetch (no fetch is pending yet)."""
    orders_key, received_key, scheduled_key = _keys(connection_id)
    pipe = redis_client.pipeline(transaction=True)
    for order_id, update_time in orders:
        pipe.hset(orders_key, order_id, int(update_time or 0))
    pipe.set(received_key, repr(received_at), nx=True)
    pipe.set(scheduled_key, 1, nx=True, px=SCHEDULE_GUARD_MS)
    return bool(pipe.execute()[-1])


def take_orders(redis_client, connection_id: str) -> tuple[dict[str, int], float | None]:
    """Everything noted so far, atomically; a note arriving from now on schedules a new fetch."""
    orders_key, received_key, scheduled_key = _keys(connection_id)
    pipe = redis_client.pipeline(transaction=True)
    pipe.delete(scheduled_key)
    pipe.hgetall(orders_key)
    pipe.get(received_key)
    pipe.delete(orders_key, received_key)
    _, orders, received, _ = pipe.execute()
    decoded = {_text(k): int(v) for k, v in orders.items()}
    return decoded, float(_text(received)) if received else None


def note_returns(redis_client, connection_id: str, return_id: str | None, order_id: str | None) -> bool:
    """A return or refund changed: noted for the connection's next targeted fetch (the returns stream's
    poll would find it too; the note makes it come within seconds). True when a fetch must be scheduled."""
    if not (return_id or order_id):
        return False
    _, received_key, scheduled_key = _keys(connection_id)
    pipe = redis_client.pipeline(transaction=True)
    pipe.hset(f"{NAMESPACE}:{{{connection_id}}}:returns", return_id or f"order:{order_id}", order_id or "")
    pipe.set(received_key, repr(time.time()), nx=True)
    pipe.set(scheduled_key, 1, nx=True, px=SCHEDULE_GUARD_MS)
    return bool(pipe.execute()[-1])


def take_returns(redis_client, connection_id: str) -> dict[str, str]:
    """The returns noted so far (return id, or ``order:<id>`` -> order id), atomically."""
    key = f"{NAMESPACE}:{{{connection_id}}}:returns"
    pipe = redis_client.pipeline(transaction=True)
    pipe.hgetall(key)
    pipe.delete(key)
    found, _ = pipe.execute()
    return {_text(k): _text(v) for k, v in found.items()}


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


# Counters ----------------------------------------------------------------------------------------

STATS_KEY = f"{NAMESPACE}:stats"
LATENCY_KEY = f"{NAMESPACE}:latency"


def count(redis_client, name: str, amount: int = 1) -> None:
    """Add to a named counter (``webhooks:<type>:<outcome>``, ``tiktok_fetches``...)."""
    redis_client.hincrby(STATS_KEY, name, amount)


def observe_latency(redis_client, seconds: float, n: int = 1) -> None:
    """``n`` records reached Klaviyo ``seconds`` after their notification was received."""
    pipe = redis_client.pipeline(transaction=False)
    for bound in LATENCY_BUCKETS:
        if seconds <= bound:
            pipe.hincrby(LATENCY_KEY, f"le:{bound:g}", n)
    pipe.hincrby(LATENCY_KEY, "count", n)
    pipe.hincrbyfloat(LATENCY_KEY, "sum", seconds * n)
    pipe.execute()


def stats(redis_client) -> tuple[dict[str, int], dict[str, float]]:
    counters = {_text(k): int(v) for k, v in redis_client.hgetall(STATS_KEY).items()}
    latency = {_text(k): float(v) for k, v in redis_client.hgetall(LATENCY_KEY).items()}
    return counters, latency


def now() -> float:
    return time.time()
