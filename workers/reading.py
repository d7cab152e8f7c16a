"""Read a window and plan it as it streams: memory bounded by a batch of orders, not the window.

A backfill of 100,000 orders must neither hold the whole window in memory nor wait for the
whole read before the first event goes out. So the read is planned batch by batch:

1. every ``PLAN_BATCH_ORDERS`` orders: store them in the ledger, plan their events, record them
   and hand their ids to the ``Dispatcher``, which sends full bulk chunks as they fill;
2. when the read is done: each buyer the window touched gets one profile, planned from the ledger
   (their totals over every shop of the Klaviyo account), a page of buyers at a time.

Events of one order can show up in two batches (an order updated while it is being read): the
item row is unique per (run, kind, key), so the second is dropped, never sent twice.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from db import history, ledger
from db.engine import session_scope
from db.models import SyncRun, utcnow
from tiktok import parse_order
from tiktok.models import InvalidOrder, Order

from .mapping import ledger_row
from .planning import EVENT, PROFILE, plan_window
from .sync import PROGRESS_EVERY, Window, _progress, known_state, record_invalid

log = logging.getLogger(__name__)

#: Orders planned per batch: 10 TikTok pages. Bounds memory (a batch, its state snapshot and its
#: items) and is large enough that each batch's few queries stay cheap per order.
PLAN_BATCH_ORDERS = 1000
#: Buyers whose profiles are planned per step once the read is done.
PROFILE_PAGE = 1000


def stream_window(ctx, run_id: str, window: Window, heartbeat: Callable[[], None] | None,
                  send: Callable[[str, list[int]], None]) -> dict:
    """Read ``window`` of the connection's orders, planning and recording as it goes; ``send(kind,
    ids)`` receives the ids of the items each step recorded. Returns the run's counts."""
    with session_scope() as session:
        run = session.get(SyncRun, run_id)
        dry_run = run.dry_run
    started = utcnow()
    names = shop_names_of(ctx)
    counts = {"read": 0, "invalid": 0, "items": 0, "already_delivered": 0, "unchanged_profiles": 0,
              "in_flight_elsewhere": 0, "already_failing": 0}
    kept: list[Order] = []  # a dry run writes no ledger, so it keeps its orders for the profiles
    batch: list[Order] = []
    invalid: list[InvalidOrder] = []
    for order in ctx.tiktok.search_orders(window.start, window.end):
        counts["read"] += 1
        if isinstance(order, InvalidOrder):
            invalid.append(order)
        else:
            batch.append(order)
            if dry_run:
                kept.append(order)
        if counts["read"] % PROGRESS_EVERY == 0:
            if heartbeat:
                heartbeat()
            _progress(run_id, counts["read"], counts["invalid"] + len(invalid))
        if len(batch) + len(invalid) >= PLAN_BATCH_ORDERS:
            _plan_events(run_id, batch, invalid, counts, send, names)
            batch, invalid = [], []
    _plan_events(run_id, batch, invalid, counts, send, names)
    _progress(run_id, counts["read"], counts["invalid"])
    _plan_profiles(run_id, started, kept if dry_run else None, counts, send, names)
    with session_scope() as session:
        run = session.get(SyncRun, run_id)
        run.items_total = counts["items"]
        run.phase = "planned"
        run.updated_at = utcnow()
        run.options = (run.options or {}) | {k: counts[k] for k in (
            "already_delivered", "unchanged_profiles", "in_flight_elsewhere", "already_failing")}
    log.info("planned %d records from %d orders (%d invalid, %d events already delivered)", counts["items"],
             counts["read"], counts["invalid"], counts["already_delivered"])
    return counts


def shop_names_of(ctx) -> dict[str, str]:
    """Cipher -> name of every shop writing to the connection's Klaviyo account (``tiktok_shops``)."""
    from .connections import shop_names

    return shop_names(ctx.account) | {ctx.shop: ctx.shop_name}


def _plan_events(run_id: str, orders: list[Order], invalid: list[InvalidOrder], counts: dict, send, names) -> None:
    if not orders and not invalid:
        return
    with session_scope() as session:
        run = session.get(SyncRun, run_id)
        plan = plan_window(orders, known_state(session, run, orders, shop_names=names), with_profiles=False)
        if not run.dry_run:
            ledger.upsert_orders(session, run.account or "", run.connection_id, run.shop,
                                 [ledger_row(o) for o in plan.orders])
        fresh = record_invalid(session, run_id, invalid)
        status = "skipped" if run.dry_run else "pending"
        ids = history.insert_items(session, run_id, [{"kind": i.kind, "key": i.key, "status": status,
                                                      "payload": i.payload} for i in plan.events], returning=True)
    counts["items"] += len(ids) + fresh
    counts["invalid"] += len(invalid)
    counts["already_delivered"] += plan.already_delivered
    counts["in_flight_elsewhere"] += plan.in_flight_elsewhere
    counts["already_failing"] += plan.already_failing + len(invalid) - fresh
    if status == "pending" and ids:
        send(EVENT, ids)


def _plan_profiles(run_id: str, since, dry_run_orders: list[Order] | None, counts: dict, send, names) -> None:
    """One profile per buyer the window touched, planned from the ledger's orders of this shop and
    the buyer's totals over the account, a page of buyers at a time (a dry run: from its orders)."""
    after = ""
    while True:
        with session_scope() as session:
            run = session.get(SyncRun, run_id)
            if dry_run_orders is None:
                buyers = ledger.buyers_touched(session, run.account or "", run.shop, since, after, PROFILE_PAGE)
                raw = ledger.stored_orders(session, run.account or "", user_ids=buyers, shop=run.shop) if buyers else []
            else:
                buyers = sorted({o.user_id for o in dry_run_orders if o.user_id > after})[:PROFILE_PAGE]
        if not buyers:
            return
        if dry_run_orders is None:
            orders = [o for o in map(parse_order, raw) if not isinstance(o, InvalidOrder)]
        else:
            page = set(buyers)
            orders = [o for o in dry_run_orders if o.user_id in page]
        with session_scope() as session:
            run = session.get(SyncRun, run_id)
            plan = plan_window(orders, known_state(session, run, orders, shop_names=names, events=False),
                               with_events=False)
            status = "skipped" if run.dry_run else "pending"
            ids = history.insert_items(session, run_id, [{"kind": i.kind, "key": i.key, "status": status,
                                                          "payload": i.payload} for i in plan.profiles], returning=True)
        counts["items"] += len(ids)
        counts["unchanged_profiles"] += plan.unchanged_profiles
        counts["in_flight_elsewhere"] += plan.in_flight_elsewhere
        counts["already_failing"] += plan.already_failing
        if status == "pending" and ids:
            send(PROFILE, ids)
        after = buyers[-1]
