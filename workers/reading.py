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
#: Buyers whose profiles are planned per step once the read is done...
PROFILE_PAGE = 1000
#: ...and at most this many of their orders (a row each, for their totals), whichever comes first:
#: a shop's best buyers can hold a third of its orders, and they sort together when user ids follow
#: sign-up order, so a page bounded by buyers alone grew with the window (476 MB at 30,000 orders).
#: A single buyer with more orders than this still makes a page of one.
PROFILE_PAGE_ORDERS = 5000


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
    read_refunds(ctx, run_id, refunds_window(run_id, window), counts, send, heartbeat)
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


def refunds_window(run_id: str, orders_window: Window) -> Window:
    """The returns stream's window: from its own watermark (minus the lookback) to the orders
    window's end; a connection's first read of returns starts with its orders window."""
    from datetime import timedelta

    from settings import get_settings

    with session_scope() as session:
        run = session.get(SyncRun, run_id)
        options = run.options or {}
        watermark = ledger.get_watermark(session, run.connection_id or run.shop, ledger.RETURNS_STREAM)
        start = orders_window.start
        if run.sync_type == "incremental" and watermark is not None and not options.get("since"):
            start = watermark - timedelta(seconds=get_settings().lookback_seconds)
        run.options = options | {"returns_window": [start.isoformat(), orders_window.end.isoformat()]}
    return Window(start, orders_window.end)


def read_refunds(ctx, run_id: str, window: Window, counts: dict, send, heartbeat=None, return_ids=None) -> None:
    """Read the returns updated in ``window`` (or the ones named) and plan a Refunded Order for each
    completed refund, a batch at a time; the buyers' orders are touched so their profiles (totals
    net of refunds) are planned again."""
    from tiktok.models import InvalidRecord

    batch: list = []
    found = ctx.tiktok.search_returns(window.start, window.end, return_ids=return_ids)
    for number, record in enumerate(found, start=1):
        if isinstance(record, InvalidRecord):
            _record_invalid_return(run_id, record, counts)
            continue
        batch.append(record)
        if len(batch) >= PLAN_BATCH_ORDERS // 20:  # returns are few; 50 a page, one batch a page
            _plan_refunds(ctx, run_id, batch, counts, send)
            batch = []
        if heartbeat and number % PROGRESS_EVERY == 0:
            heartbeat()
    _plan_refunds(ctx, run_id, batch, counts, send)


def _record_invalid_return(run_id: str, record, counts: dict) -> None:
    import hashlib
    import json

    fingerprint = hashlib.sha256(json.dumps(record.raw, sort_keys=True, default=str).encode()).hexdigest()
    key = record.record_id or f"unreadable:{fingerprint[:16]}"
    with session_scope() as session:
        if fingerprint in history.reported_failures(session, [("return", key)]).get(("return", key), ()):
            counts["already_failing"] += 1
            return
        history.insert_items(session, run_id, [{"kind": "return", "key": key, "status": "failed",
                                                "error": f"return {key}: {record.field}: {record.message}",
                                                "payload": {"field": record.field}, "fingerprint": fingerprint}])
    counts["items"] += 1


def _plan_refunds(ctx, run_id: str, returns: list, counts: dict, send) -> None:
    from .mapping import event_key, ledger_row
    from .payloads import event_payload
    from .refund_mapping import refund_row, refund_unique_id, refunded_order_event

    if not returns:
        return
    order_ids = {r.order_id for r in returns}
    with session_scope() as session:
        run = session.get(SyncRun, run_id)
        account, dry_run = run.account or "", run.dry_run
        stored = {o.id: o for o in map(parse_order, ledger.stored_orders(session, account, order_ids))
                  if not isinstance(o, InvalidOrder)}
    missing = sorted(order_ids - set(stored))
    fetched = [o for o in (ctx.tiktok.get_orders(missing) if missing else []) if not isinstance(o, InvalidOrder)]
    stored.update({o.id: o for o in fetched})
    refunded = sorted((r for r in returns if r.is_refunded and r.order_id in stored),
                      key=lambda r: (r.update_time, r.id))
    with session_scope() as session:
        run = session.get(SyncRun, run_id)
        if not dry_run:
            ledger.upsert_orders(session, account, run.connection_id, run.shop, [ledger_row(o) for o in fetched])
            ledger.upsert_refunds(session, account, run.connection_id, run.shop,
                                  [refund_row(r, stored[r.order_id].payment.currency if r.order_id in stored else None)
                                   for r in returns])
        known = ledger.refunds_of_orders(session, account, order_ids)
        chosen = {k.return_id: k.unique_id for k in known if k.unique_id}
        taken = {k.order_id for k in known if k.unique_id == k.order_id}
        events = []
        for ret in refunded:
            unique_id = chosen.get(ret.id) or refund_unique_id(ret.order_id, ret.id, ret.order_id in taken)
            chosen[ret.id] = unique_id
            if unique_id == ret.order_id:
                taken.add(ret.order_id)
            events.append(refunded_order_event(ret, stored[ret.order_id], unique_id,
                                               relay_email=ctx.options.relay_email))
        keys = [event_key(e) for e in events]
        delivered = ledger.delivered_keys(session, account, keys)
        busy = ledger.in_flight(session, account, [("event", k) for k in keys], exclude_run=run_id)
        planned = [(k, e) for k, e in zip(keys, events) if k not in delivered and ("event", k) not in busy]
        status = "skipped" if dry_run else "pending"
        ids = history.insert_items(session, run_id, [{"kind": EVENT, "key": k, "status": status,
                                                     "payload": event_payload(e)} for k, e in planned], returning=True)
        if not dry_run:
            ledger.fix_refund_ids(session, account, {r.id: chosen[r.id] for r in refunded})
            ledger.touch_orders(session, account, {r.order_id for r in refunded})
    counts["items"] += len(ids)
    counts["already_delivered"] += len(delivered)
    counts["refunds_read"] = counts.get("refunds_read", 0) + len(returns)
    if status == "pending" and ids:
        send(EVENT, ids)


def shop_names_of(ctx) -> dict[str, str]:
    """Cipher -> name of every shop writing to the connection's Klaviyo account (``tiktok_shops``)."""
    from .connections import shop_names

    return shop_names(ctx.account) | {ctx.shop: ctx.shop_name}


def _plan_events(run_id: str, orders: list[Order], invalid: list[InvalidOrder], counts: dict, send, names) -> None:
    if not orders and not invalid:
        return
    with session_scope() as session:
        run = session.get(SyncRun, run_id)
        plan = plan_window(orders, known_state(session, run, orders, shop_names=names, profiles=False),
                           with_profiles=False)
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
    """One profile per buyer the window touched, planned from the buyer's newest order in this shop
    and their totals over the account (the ledger's rows), a page of buyers at a time (a dry run:
    from its orders)."""
    after = ""
    while True:
        with session_scope() as session:
            run = session.get(SyncRun, run_id)
            if dry_run_orders is None:
                buyers = ledger.buyers_touched(session, run.account or "", run.shop, since, after, PROFILE_PAGE,
                                               max_orders=PROFILE_PAGE_ORDERS)
                raw = ledger.newest_placed_orders(session, run.account or "", run.shop, buyers) if buyers else []
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
