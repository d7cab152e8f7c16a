"""One sync of one shop: window, read, plan, record. The task in ``tasks.py`` strings these together.

The window runs from the watermark minus a lookback to now minus a small lag
(TikTok's ``update_time`` can land a little late), as a Singer bookmark would:
the edge is read again, and deterministic ``unique_id``s make that harmless.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from sqlalchemy.exc import IntegrityError

from db import history, ledger
from db.engine import session_scope
from db.models import SyncRun, utcnow
from settings import Settings
from tiktok.models import InvalidOrder, Order

from .planning import EVENT, ORDER, PROFILE, KnownState, Plan, plan_window
from .schedules import period_key

log = logging.getLogger(__name__)

#: How often (in orders) the run's ``orders_read`` is written while paging, for live progress.
PROGRESS_EVERY = 500


@dataclass(frozen=True)
class Window:
    start: datetime
    end: datetime


def parse_time(value) -> datetime | None:
    """ISO-8601 text (task arguments are JSON) or a datetime -> aware UTC datetime."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        parsed = value
    else:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def compute_window(run: SyncRun, watermark: datetime | None, settings: Settings, now: datetime) -> Window:
    """The [start, end) of ``update_time`` this run reads."""
    options = run.options or {}
    end = parse_time(options.get("until")) or now - timedelta(seconds=settings.lag_seconds)
    since = parse_time(options.get("since"))
    if since:
        start = since
    elif options.get("days_back"):
        start = now - timedelta(days=float(options["days_back"]))
    elif run.sync_type == "reconcile":
        start = now - timedelta(days=settings.reconcile_lookback_days)
    elif watermark:
        start = watermark - timedelta(seconds=settings.lookback_seconds)
    else:
        start = now - timedelta(days=settings.first_run_days)
    return Window(start=min(start, end), end=end)


def create_or_get_run(*, shop: str, sync_type: str, trigger: str, dry_run: bool, options: dict,
                      run_id: str | None, settings: Settings) -> SyncRun | None:
    """The run row for this task. Beat runs are deduplicated per period: a second beat's
    firing in the same period finds the unique (shop, type, period) taken and returns None."""
    with session_scope() as session:
        if run_id:
            run = session.get(SyncRun, run_id)
            if run is not None:
                return run
        period = None
        if trigger == "beat":
            seconds = settings.sync_interval_seconds if sync_type == "incremental" else 86400
            period = period_key(seconds)
    try:
        with session_scope() as session:
            return history.create_run(session, shop=shop, sync_type=sync_type, trigger=trigger, dry_run=dry_run,
                                      options=options, period_key=period, run_id=run_id)
    except IntegrityError:
        log.info("sync of %s for period %s already exists; skipping duplicate beat", shop, period)
        return None


def begin(run_id: str, task_id: str | None, settings: Settings) -> Window | None:
    """Mark the run started and fix its window. None if the run already finished."""
    with session_scope() as session:
        run = session.get(SyncRun, run_id)
        if run is None or history.is_final(run):
            return None
        history.start_run(session, run, task_id)
        if run.window_start is None or run.window_end is None:
            window = compute_window(run, ledger.get_watermark(session, run.shop), settings, utcnow())
            run.window_start, run.window_end = window.start, window.end
        return Window(run.window_start, run.window_end)


def read_window(client, run_id: str, window: Window, heartbeat=None) -> tuple[list[Order], list[InvalidOrder]]:
    """Page through TikTok's orders updated in the window; invalid ones are kept apart.

    ``heartbeat`` (the single-flight lock's extension) is called every page."""
    orders: list[Order] = []
    invalid: list[InvalidOrder] = []
    for count, order in enumerate(client.search_orders(window.start, window.end), start=1):
        (invalid if isinstance(order, InvalidOrder) else orders).append(order)
        if count % 100 == 0 and heartbeat:
            heartbeat()
        if count % PROGRESS_EVERY == 0:
            _progress(run_id, count, len(invalid))
    _progress(run_id, len(orders) + len(invalid), len(invalid))
    return orders, invalid


def _progress(run_id: str, read: int, invalid: int) -> None:
    with session_scope() as session:
        run = session.get(SyncRun, run_id)
        run.orders_read, run.orders_invalid = read, invalid


def known_state(session, shop: str, run_id: str, orders: list[Order]) -> KnownState:
    """Snapshot of our own state for the buyers and events this window touches."""
    from .mapping import event_key, external_id, order_events

    user_ids = {o.user_id for o in orders}
    event_keys = {event_key(e) for o in orders for e in order_events(o)}
    profile_keys = {external_id(u) for u in user_ids}
    candidates = {(EVENT, k) for k in event_keys} | {(PROFILE, k) for k in profile_keys}
    return KnownState(
        ledger=ledger.ledger_entries(session, shop, user_ids),
        delivered=frozenset(ledger.delivered_keys(session, event_keys)),
        in_flight=frozenset(ledger.in_flight(session, candidates, exclude_run=run_id)),
        profile_hashes=ledger.profile_hashes(session, profile_keys),
    )


def record_plan(run_id: str, orders: list[Order], invalid: list[InvalidOrder], extra_items: list[dict] = ()) -> Plan:
    """Plan the window against our state and record it: ledger, failed orders, items to send.

    In a dry run the ledger is left alone and the items are recorded as ``skipped``:
    the history shows exactly what would have been sent. ``extra_items`` are item rows
    planned elsewhere (a retry of another run's failures).
    """
    with session_scope() as session:
        run = session.get(SyncRun, run_id)
        plan = plan_window(orders, known_state(session, run.shop, run_id, orders))
        if not run.dry_run:
            ledger.upsert_orders(session, run.shop, plan.orders)
        history.insert_items(session, run_id, [
            {"kind": ORDER, "key": invalid_key(bad), "status": "failed", "error": bad.error,
             "payload": {"field": bad.field}} for bad in invalid])
        status = "skipped" if run.dry_run else "pending"
        history.insert_items(session, run_id, [
            {"kind": item.kind, "key": item.key, "status": status, "payload": item.payload} for item in plan.items])
        history.insert_items(session, run_id, [dict(row, status=status) for row in extra_items])
        run.phase = "dispatched"
        run.items_total = len(plan.items) + len(invalid) + len(extra_items)
        run.options = (run.options or {}) | {
            "already_delivered": plan.already_delivered, "unchanged_profiles": plan.unchanged_profiles,
            "in_flight_elsewhere": plan.in_flight_elsewhere}
    log.info("planned %d profiles and %d events (%d invalid orders, %d events already delivered)",
             len(plan.profiles), len(plan.events), len(invalid), plan.already_delivered)
    return plan


def invalid_key(bad: InvalidOrder) -> str:
    """The item key of an order we could not read: its id, or a fingerprint of it when the id itself is bad."""
    if bad.order_id:
        return bad.order_id
    digest = hashlib.sha256(json.dumps(bad.raw, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return f"unreadable:{digest}"


def finish_if_done(run_id: str) -> SyncRun | None:
    """Finalise the run when its last item is final, and advance the watermark.

    Call it only after the outcome you recorded is committed, never inside that transaction:
    two tasks settling a run's last two items at once would each still see the other's item
    open (neither commit visible to the other) and the run would never finish. Checked after
    the commit, the later of the two commits is followed by a check that sees both."""
    with session_scope() as session:
        run = history.finalize_if_done(session, run_id)
        if run is not None:
            ledger.advance_watermark(session, run)
            log.info("run %s finished: %s (%d succeeded, %d failed)", run_id, run.status, run.success_count,
                     run.failed_count)
        return run


def fail(run_id: str, error: str) -> None:
    with session_scope() as session:
        run = session.get(SyncRun, run_id)
        if run is not None and not history.is_final(run):
            history.fail_run(session, run, error)
