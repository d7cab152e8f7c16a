"""Realtime latency: an order change in TikTok -> its event accepted by Klaviyo, by webhook and by polling.

    .venv/bin/python bench/realtime.py [--changes 500] [--rate 5] [--backfill 20000] [--live-orders 2000]
                                       [--poll-interval 60] [--workers 2] [--concurrency 2]
                                       [--database-url postgresql://...]

One stack (``sandbox.stack.LocalStack``: embedded Redis, both stand-ins, real Celery workers; SQLite
unless ``--database-url`` names a PostgreSQL server, where it gets a throwaway database) with one
TikTok seller and two shops, two connections writing to the same Klaviyo account:

1. ``webhooks``: ``ksync serve`` (gunicorn) receives the stand-in's signed notifications while the
   other connection runs a ``--backfill``-order first sync (the ``backfill`` lane); the stand-in's
   churn mode moves ``--changes`` orders of the live shop through their next status at ``--rate``
   per second. No beat: only webhooks can deliver.
2. ``polling``: the web service is gone; beat polls every ``--poll-interval`` seconds (the lag,
   ``KSYNC_LAG_SECONDS``, stays at its production 60 s); the same number of changes again.

A change's latency is from the stand-in's change time to the Klaviyo stand-in's arrival time of the
event that change implies (a Placed Order when an order is paid, a Fulfilled Order when it ships, a
Cancelled Order when a paid order is cancelled); changes that imply no new event (delivered after
in transit, for one) are not counted. Reported: p50 / p95 / p99, changes lost (an implied event
that never arrived), and TikTok Get Order Detail calls per change. Target: webhooks p95 <= 5 s
with the backfill running, nothing lost, well under one TikTok call per change.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sandbox.stack import DEMO_KLAVIYO_KEY, LocalStack  # noqa: E402
from sandbox.tiktok.shops import ShopSpec  # noqa: E402

DETAIL = "/order/202309/orders"
PAID = {"AWAITING_SHIPMENT", "PARTIALLY_SHIPPING", "AWAITING_COLLECTION", "IN_TRANSIT", "DELIVERED", "COMPLETED"}
FULFILLED = {"IN_TRANSIT", "DELIVERED", "COMPLETED"}


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def implied(previous: str, new: str, paid: bool) -> str | None:
    """The metric a status change newly implies (mapping rules), or None."""
    if new in FULFILLED and previous not in FULFILLED:
        return "Fulfilled Order" if previous in PAID else "Placed Order"
    if new in PAID and previous not in PAID and previous != "CANCELLED":
        return "Placed Order"
    if new == "CANCELLED" and (paid or previous in PAID):
        return "Cancelled Order"
    return None


def latencies(changes: list[dict], before: dict[str, dict], events: list[dict]) -> tuple[list[float], int]:
    """Per change that implies an event: seconds from the change to that event's arrival; and how
    many never arrived."""
    arrived = {(e["metric"], e["unique_id"]): e["received"] for e in events}
    status = {oid: o["status"] for oid, o in before.items()}
    paid = {oid: bool(o.get("paid_time")) for oid, o in before.items()}
    found, lost = [], 0
    for change in changes:
        oid = change["order_id"]
        metric = implied(status.get(oid, "UNPAID"), change["status"], paid.get(oid, False))
        status[oid] = change["status"]
        paid[oid] = paid.get(oid, False) or change["status"] in PAID
        if metric is None:
            continue
        at = arrived.get((metric, oid))
        if at is None:
            lost += 1
        else:
            found.append(max(0.0, at - change["at"]))
    return found, lost


def percentiles(values: list[float]) -> dict:
    if not values:
        return {"n": 0}
    cuts = statistics.quantiles(values, n=100, method="inclusive") if len(values) > 1 else [values[0]] * 99
    return {"n": len(values), "p50": round(cuts[49], 2), "p95": round(cuts[94], 2), "p99": round(cuts[98], 2),
            "max": round(max(values), 2)}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_web(stack) -> tuple[subprocess.Popen, str]:
    import requests

    port = free_port()
    log_file = open(stack.log_dir / "web.log", "ab")
    process = subprocess.Popen([sys.executable, "-m", "cli.main", "serve", "--bind", f"127.0.0.1:{port}",
                                "--workers", "2"], cwd=ROOT, env=stack.env, stdout=log_file, stderr=subprocess.STDOUT,
                               start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    for _ in range(150):
        with contextlib.suppress(requests.RequestException):
            if requests.get(url + "/healthz", timeout=1).ok:
                return process, url
        time.sleep(0.2)
    raise RuntimeError("ksync serve did not start")


def add_backfill_connection(stack) -> str:
    """The second shop as its own connection, on the environment's authorization (one seller)."""
    from db import connections as store
    from db.engine import session_scope
    from db.models import TikTokAuthorization
    from workers.connections import ENV_AUTHORIZATION, ensure_env_connections

    ensure_env_connections()
    with session_scope() as session:
        store.add(session, connection_id="backfill", authorization=session.get(TikTokAuthorization, ENV_AUTHORIZATION),
                  shop_cipher=stack.tiktok.shop(1).cipher, klaviyo_api_key=DEMO_KLAVIYO_KEY)
    return "backfill"


def churn(stack, changes: int, rate: float) -> list[dict]:
    live = stack.tiktok.shop(0)
    stack.tiktok.start_churn(rate, changes / rate, shop=live.id)
    stack.tiktok.churn.join(changes / rate + 30)
    return stack.tiktok.churn_stats()["changes_log"]


def wait_for_arrivals(stack, changes, before, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _, lost = latencies(changes, before, stack.klaviyo.state()["events"])
        if lost == 0:
            return
        time.sleep(2)


def detail_calls(stack) -> int:
    return sum(stack.tiktok.counters()["requests"].get(DETAIL, {}).values())


def run(args) -> dict:
    from tests.support import wait_for_run  # the bench reads sync history the way the tests do
    from workers.api import enqueue_sync

    with _database(args.database_url) as database_url, LocalStack(
            orders=args.live_orders, workers=args.workers, concurrency=args.concurrency, database_url=database_url,
            days=args.days,
            extra_env={"KSYNC_SYNC_INTERVAL_SECONDS": str(args.poll_interval)},
            tiktok_kwargs={"shops": [ShopSpec("live", orders=args.live_orders, seller="one"),
                                     ShopSpec("big", orders=args.backfill, seller="one")],
                           "rate_limit_qps": 0}) as stack:
        stack.activate()
        log("first sync of the live shop (warms the ledger, learns the shop id)")
        first = wait_for_run(enqueue_sync(connection="default", days_back=31), timeout=600)
        log(f"  {first.status}: {first.success_count} records")
        add_backfill_connection(stack)
        web, url = start_web(stack)
        stack.tiktok.set_webhook_url(url + "/webhooks/tiktok")

        log(f"webhooks: {args.changes} changes at {args.rate}/s while the other connection backfills "
            f"{args.backfill} orders")
        before = {o["id"]: o for o in stack.tiktok.shop(0).orders()}
        calls = detail_calls(stack)
        backfill_run = enqueue_sync(connection="backfill", days_back=31)
        changes = churn(stack, args.changes, args.rate)
        wait_for_arrivals(stack, changes, before, 120)
        webhook_latency, webhook_lost = latencies(changes, before, stack.klaviyo.state()["events"])
        webhook_calls = detail_calls(stack) - calls
        backfill_state = run_state(backfill_run)
        web.send_signal(signal.SIGTERM)
        web.wait(30)
        stack.tiktok.set_webhook_url(None)

        log(f"polling alone: {args.changes} changes, beat every {args.poll_interval}s")
        wait_for_run(backfill_run, timeout=1800)
        stack.add_beat()
        before = {o["id"]: o for o in stack.tiktok.shop(0).orders()}
        changes_poll = churn(stack, args.changes, args.rate)
        wait_for_arrivals(stack, changes_poll, before, 3 * args.poll_interval + 120)
        poll_latency, poll_lost = latencies(changes_poll, before, stack.klaviyo.state()["events"])
    implied_changes = len(webhook_latency) + webhook_lost
    return {
        "case": "realtime",
        "changes": len(changes), "rate_per_second": args.rate, "backfill_orders": args.backfill,
        "backfill_status_when_changes_ended": backfill_state,
        "webhooks": percentiles(webhook_latency) | {"lost": webhook_lost,
                                                     "tiktok_detail_calls": webhook_calls,
                                                     "tiktok_calls_per_change": round(webhook_calls / max(1, len(changes)), 3),
                                                     "implied_events": implied_changes},
        "polling": percentiles(poll_latency) | {"lost": poll_lost, "interval_seconds": args.poll_interval,
                                                "lag_seconds": 60},
        "target_webhook_p95_seconds": 5,
        "met": bool(webhook_latency) and percentiles(webhook_latency)["p95"] <= 5 and webhook_lost == 0,
    }


def run_state(run_id: str) -> str:
    """Where a run stands, in a few words (was the backfill really still going?)."""
    from db import history
    from db.engine import session_scope

    with session_scope() as session:
        run = history.get_run(session, run_id)
        done = sum(n for (_, status), n in history.item_counts(session, run_id).items() if status == "succeeded")
        return f"{run.status}/{run.phase}: {done} of {run.items_total} records sent, {run.orders_read} orders read"


@contextlib.contextmanager
def _database(server_url: str | None):
    if not server_url:
        yield None
        return
    from sandbox.postgres import throwaway_database

    with throwaway_database(server_url, prefix="ksync_bench") as url:
        yield url


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--changes", type=int, default=500)
    parser.add_argument("--rate", type=float, default=5.0)
    parser.add_argument("--backfill", type=int, default=20000)
    parser.add_argument("--live-orders", type=int, default=2000)
    parser.add_argument("--poll-interval", type=int, default=60)
    parser.add_argument("--days", type=float, default=1.0,
                        help="order history the stand-in makes: recent orders still have statuses to move through")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--database-url", default=os.environ.get("KSYNC_BENCH_DATABASE_URL"))
    return parser.parse_args(argv)


def main(argv=None) -> int:
    result = run(parse_args(argv))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
