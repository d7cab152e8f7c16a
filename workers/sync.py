"""One sync of one shop: window, read, plan, record. The task in ``tasks.py`` strings these together.

The window runs from the watermark minus a lookback to now minus a small lag
(TikTok's ``update_time`` can land a little late), as a Singer bookmark would:
the edge is read again, and deterministic ``unique_id``s make that harmless.
A window never ends after now minus the lag: a later end would let the watermark
run ahead of what TikTok can have written, and the next syncs would read nothing.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from db import catalog as catalog_store
from db import history, ledger
from db.engine import session_scope
from db.models import SyncRun, utcnow
from settings import Settings
from tiktok.models import InvalidOrder, Order

from .planning import EVENT, ORDER, PROFILE, KnownState, Plan, plan_window
from .schedules import period_key

log = logging.getLogger(__name__)

#: How often (in orders: a page) the run's ``orders_read`` is written while paging, for live
#: progress and as the read's heartbeat (the sweeper restarts a read that stops moving).
PROGRESS_EVERY = 100


@dataclass(frozen=True)
class Window:
    start: datetime
    end: datetime


class WindowError(ValueError):
    """A sync window that cannot be read as asked: the message names the option and the limit."""


def parse_time(value, option: str = "time") -> datetime | None:
    """ISO-8601 text (task arguments are JSON) or a datetime -> aware UTC datetime (naive means UTC)."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        parsed = value
    else:
        try:
            parsed = datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
        except ValueError:
            raise WindowError(f"{option} {value!r} is not an ISO-8601 time (e.g. 2026-11-01T00:00:00Z)") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def window_options(days_back=None, since=None, until=None, *, settings: Settings, now: datetime | None = None) -> dict:
    """Check a sync's window options and return them as task arguments (ISO-8601 text).

    Refused, with a ``WindowError`` naming the option: an unreadable time, ``--days-back`` of zero
    or less, ``--since`` at or after ``--until``, and an ``--until`` later than now minus the lag
    (KSYNC_LAG_SECONDS): the watermark would move past what TikTok can have written yet, and the
    next syncs would read nothing."""
    now = now or utcnow()
    since_at, until_at = parse_time(since, "--since"), parse_time(until, "--until")
    limit = now - timedelta(seconds=settings.lag_seconds)
    if days_back is not None:
        try:
            days_back = float(days_back)
        except (TypeError, ValueError):
            raise WindowError(f"--days-back must be a number of days, got {days_back!r}") from None
        if not days_back > 0:
            raise WindowError(f"--days-back must be more than 0, got {days_back:g}")
        if since_at:
            raise WindowError("give --days-back or --since, not both")
    if until_at and until_at > limit:
        raise WindowError(f"--until {until_at:%Y-%m-%dT%H:%M:%SZ} is later than now minus the lag "
                          f"({limit:%Y-%m-%dT%H:%M:%SZ}, KSYNC_LAG_SECONDS={settings.lag_seconds}); "
                          "leave --until out to read up to then")
    start = since_at or (now - timedelta(days=days_back) if days_back else None)
    if start and start >= (until_at or limit):
        raise WindowError(f"--since {start:%Y-%m-%dT%H:%M:%SZ} is not before --until "
                          f"{(until_at or limit):%Y-%m-%dT%H:%M:%SZ}")
    options = {"days_back": days_back, "since": since_at.isoformat() if since_at else None,
               "until": until_at.isoformat() if until_at else None}
    return {k: v for k, v in options.items() if v is not None}


def compute_window(run: SyncRun, watermark: datetime | None, settings: Settings, now: datetime) -> Window:
    """The [start, end) of ``update_time`` this run reads. The end is capped at now minus the lag,
    whatever ``until`` a caller of ``send_task`` gave."""
    options = run.options or {}
    limit = now - timedelta(seconds=settings.lag_seconds)
    end = min(parse_time(options.get("until"), "until") or limit, limit)
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


def resolve_connection(connection: str | None = None, shop: str | None = None) -> str:
    """The id of the connection a sync acts on: the one named, the one of ``shop`` (cipher or shop
    id), or the only one there is. The environment's implicit connections are brought in step first."""
    from db import connections as store

    from .connections import ensure_env_connections

    ensure_env_connections()
    with session_scope() as session:
        if connection or not shop:
            return store.resolve(session, connection).id
        found = store.by_shop(session, shop)
        if len(found) != 1:
            raise store.ConnectionError_(f"{len(found) or 'no'} connection(s) for shop {shop!r}: say which with "
                                         "--connection ID")
        return found[0].id


def create_or_get_run(*, connection_id: str | None, sync_type: str, trigger: str, dry_run: bool, options: dict,
                      run_id: str | None, settings: Settings, shop: str | None = None) -> SyncRun | None:
    """The run row for this task (a new one for the connection). Beat runs are deduplicated per
    period: a second firing in the same period finds the unique (connection, type, period) taken
    and returns None."""
    from db import connections as store

    with session_scope() as session:
        if run_id:
            run = session.get(SyncRun, run_id)
            if run is not None:
                return run
    connection_id = resolve_connection(connection_id, shop)
    with session_scope() as session:
        connection = store.get(session, connection_id)
        cipher, interval = connection.shop_cipher, (connection.options or {}).get("sync_interval_seconds")
    period = None
    if trigger == "beat":
        period = period_key(int(interval or settings.sync_interval_seconds) if sync_type == "incremental" else 86400)
    try:
        with session_scope() as session:
            run = history.create_run(session, shop=cipher, sync_type=sync_type, trigger=trigger, dry_run=dry_run,
                                     options=options, period_key=period, run_id=run_id)
            run.connection_id = connection_id
            return run
    except IntegrityError:
        log.info("sync of %s for period %s already exists; skipping duplicate beat", connection_id, period)
        return None


def begin(run_id: str, task_id: str | None, settings: Settings, account: str) -> Window | None:
    """Mark the run started (writing to Klaviyo ``account``) and fix its window. None if there is
    nothing to read: the run finished, or a redelivered task finds it already planned."""
    with session_scope() as session:
        run = session.get(SyncRun, run_id)
        if run is None or history.is_final(run) or run.phase in ("planned", "dispatched"):
            return None
        history.start_run(session, run, task_id)
        run.account = account
        if run.window_start is None or run.window_end is None:
            watermark = ledger.get_watermark(session, run.connection_id or run.shop)
            window = compute_window(run, watermark, settings, utcnow())
            run.window_start, run.window_end = window.start, window.end
        return Window(run.window_start, run.window_end)


def read_window(client, run_id: str, window: Window, heartbeat=None) -> tuple[list[Order], list[InvalidOrder]]:
    """Page through TikTok's orders updated in the window; invalid ones are kept apart.

    ``heartbeat`` (the single-flight lock's extension) is called every page, and the run's
    progress is written every page too: it tells the sweeper the read is alive."""
    orders: list[Order] = []
    invalid: list[InvalidOrder] = []
    for count, order in enumerate(client.search_orders(window.start, window.end), start=1):
        (invalid if isinstance(order, InvalidOrder) else orders).append(order)
        if count % PROGRESS_EVERY == 0:
            if heartbeat:
                heartbeat()
            _progress(run_id, count, len(invalid))
    _progress(run_id, len(orders) + len(invalid), len(invalid))
    return orders, invalid


def _progress(run_id: str, read: int, invalid: int) -> None:
    with session_scope() as session:
        run = session.get(SyncRun, run_id)
        run.orders_read, run.orders_invalid = read, invalid
        run.updated_at = utcnow()


def known_state(session, run: SyncRun, orders: list[Order], replay: bool = False, shop_names: dict | None = None,
                events: bool = True, profiles: bool = True) -> KnownState:
    """Snapshot of our own state for the buyers and events these orders touch, in the run's
    Klaviyo account. A ``replay`` (of a run's failures) ignores the failures on file: sending those
    again is its point. ``events=False`` / ``profiles=False`` leave out what only planning those
    needs (a streaming read plans events per batch, and each buyer's whole ledger only later)."""
    from .mapping import event_key, external_id, order_events
    from .payloads import payload_hash

    account = run.account or ""
    user_ids = {o.user_id for o in orders} if profiles else set()
    event_keys = {event_key(e) for o in orders for e in order_events(o)} if events else set()
    profile_keys = {external_id(u) for u in user_ids}
    delivered = frozenset(ledger.delivered_keys(session, account, event_keys))
    candidates = {(EVENT, k) for k in event_keys - delivered} | {(PROFILE, k) for k in profile_keys}
    return KnownState(
        ledger=ledger.ledger_entries(session, account, user_ids),
        delivered=delivered,
        in_flight=frozenset(ledger.in_flight(session, account, candidates, exclude_run=run.id)),
        in_flight_profiles={key: payload_hash(payload) for key, payload in
                            ledger.open_profile_payloads(session, account, profile_keys, exclude_run=run.id).items()},
        profile_hashes=ledger.profile_hashes(session, account, profile_keys),
        reported={} if replay else history.reported_failures(session, candidates),
        shop=run.shop, shop_names=shop_names or {},
        products=catalog_store.item_details(session, account, {li.product_id for o in orders for li in o.line_items}),
        relay_email=relay_email_of(session, run.connection_id),
    )


def relay_email_of(session, connection_id: str | None) -> str:
    """The connection's ``relay_email`` option (``identity`` when unset)."""
    from db.models import Connection

    row = session.get(Connection, connection_id) if connection_id else None
    return str(((row.options if row else None) or {}).get("relay_email") or "identity")


def record_plan(run_id: str, orders: list[Order], invalid: list[InvalidOrder], only: set[tuple[str, str]] | None = None,
                replay: bool = False, shop_names: dict | None = None) -> Plan:
    """Plan the window against our state and record it: ledger, failed orders, items to send.

    In a dry run the ledger is left alone and the items are recorded as ``skipped``:
    the history shows exactly what would have been sent. ``only`` restricts the items to these
    (kind, key) pairs (a retry of another run's failures, re-planned from the current ledger).

    An order that fails validation exactly as it did in an earlier run (same fingerprint) is not
    recorded again: it stays listed, once, in the run that first met it (``ksync failures``)."""
    from .mapping import ledger_row

    with session_scope() as session:
        run = session.get(SyncRun, run_id)
        plan = plan_window(orders, known_state(session, run, orders, replay=replay, shop_names=shop_names))
        items = [i for i in plan.items if only is None or (i.kind, i.key) in only]
        if not run.dry_run:
            ledger.upsert_orders(session, run.account or "", run.connection_id, run.shop,
                                 [ledger_row(o) for o in plan.orders])
        fresh = record_invalid(session, run_id, invalid, replay)
        status = "skipped" if run.dry_run else "pending"
        history.insert_items(session, run_id, [
            {"kind": item.kind, "key": item.key, "status": status, "payload": item.payload} for item in items])
        run.phase = "planned"
        run.updated_at = utcnow()
        run.items_total = len(items) + fresh
        run.options = (run.options or {}) | {
            "already_delivered": plan.already_delivered, "unchanged_profiles": plan.unchanged_profiles,
            "in_flight_elsewhere": plan.in_flight_elsewhere,
            "already_failing": plan.already_failing + len(invalid) - fresh}
    log.info("planned %d profiles and %d events (%d invalid orders, %d events already delivered)",
             sum(1 for i in items if i.kind == PROFILE), sum(1 for i in items if i.kind == EVENT), len(invalid),
             plan.already_delivered)
    return plan


def record_invalid(session, run_id: str, invalid: list[InvalidOrder], replay: bool = False) -> int:
    """Failed items for orders we could not read, except those already on file unchanged (unless
    replaying). Returns how many were recorded."""
    rows = [{"kind": ORDER, "key": invalid_key(bad), "status": "failed", "error": bad.error,
             "payload": {"field": bad.field}, "fingerprint": invalid_fingerprint(bad)} for bad in invalid]
    known = {} if replay else history.reported_failures(session, [(ORDER, row["key"]) for row in rows])
    fresh = [row for row in rows if row["fingerprint"] not in known.get((ORDER, row["key"]), ())]
    history.insert_items(session, run_id, fresh)
    return len(fresh)


def replan_failures(run_id: str, failed: list[tuple[str, str]], ctx, shop_names: dict | None = None) -> Plan:
    """Plan a retry of ``failed`` (kind, key) records from what we know now: profiles and events
    from the ledger's latest orders (so a replay never sends an older payload over newer data, and
    skips what a later run delivered), orders we could not read fetched from TikTok again."""
    from tiktok import parse_order

    from .mapping import event_key, external_id, is_placed, order_events

    order_ids = [key for kind, key in failed if kind == ORDER and not key.startswith("unreadable:")]
    fetched, invalid = [], []
    for order in ctx.tiktok.get_orders(order_ids) if order_ids else []:
        (invalid if isinstance(order, InvalidOrder) else fetched).append(order)
    wanted = {(kind, key) for kind, key in failed if kind in (EVENT, PROFILE)}
    event_orders = {key.split("|", 1)[1].split(":", 1)[0] for kind, key in wanted if kind == EVENT and "|" in key}
    buyers = {key.removeprefix("tiktok:") for kind, key in wanted if kind == PROFILE and key.startswith("tiktok:")}
    with session_scope() as session:
        run = session.get(SyncRun, run_id)
        raw_orders = ledger.stored_orders(session, run.account or "", event_orders, buyers, shop=run.shop)
    stored = [parse_order(raw) for raw in raw_orders]
    orders = [o for o in stored if not isinstance(o, InvalidOrder)] + fetched
    only = (wanted | {(EVENT, event_key(e)) for o in fetched for e in order_events(o)}
            | {(PROFILE, external_id(o.user_id)) for o in fetched if is_placed(o)})
    plan = record_plan(run_id, orders, invalid, only=only, replay=True, shop_names=shop_names)
    replan_refunds(ctx, run_id, {key for kind, key in wanted if kind == EVENT and key.startswith("Refunded Order|")})
    return plan


def replan_refunds(ctx, run_id: str, keys: set[str]) -> None:
    """Failed Refunded Orders, planned again from the refunds ledger (their unique ids as chosen)."""
    from tiktok.aftersales import Return, parse_return

    from .reading import _plan_refunds

    if not keys:
        return
    orders = {key.split("|", 1)[1].split(":", 1)[0] for key in keys}
    with session_scope() as session:
        run = session.get(SyncRun, run_id)
        rows = [r for r in ledger.refunds_of_orders(session, run.account or "", orders)
                if f"Refunded Order|{r.unique_id}" in keys]
        payloads = [r.payload for r in rows]
    returns = [r for r in map(parse_return, payloads) if isinstance(r, Return)]
    _plan_refunds(ctx, run_id, returns, {"items": 0, "already_delivered": 0}, lambda kind, ids: None)


def newer_than_ledger(account: str, noted: dict[str, int]) -> dict[str, int]:
    """The noted orders (id -> the update_time a notification gave) the ledger does not already hold
    at that update_time or later: only those are worth fetching again."""
    from db.models import LedgerOrder

    known: dict[str, int] = {}
    with session_scope() as session:
        for chunk in ledger.chunks(sorted(noted)):
            for order_id, update_time in session.execute(
                    select(LedgerOrder.order_id, LedgerOrder.update_time)
                    .where(LedgerOrder.account == account, LedgerOrder.order_id.in_(chunk))):
                known[order_id] = int(update_time.timestamp())
    return {i: t for i, t in noted.items() if i not in known or t > known[i] or not t}


def stored_orders(run_id: str, order_ids: set[str]) -> list[Order]:
    """The ledger's orders (of the run's account) with these ids, as orders."""
    from tiktok import parse_order

    with session_scope() as session:
        run = session.get(SyncRun, run_id)
        raw = ledger.stored_orders(session, run.account or "", order_ids, shop=run.shop) if order_ids else []
    return [o for o in map(parse_order, raw) if not isinstance(o, InvalidOrder)]


def mark_dispatched(run_id: str) -> None:
    """Every item's task is sent: from now on the run can finish (and a redelivered sync task
    finds nothing left to do)."""
    with session_scope() as session:
        run = session.get(SyncRun, run_id)
        if run is not None and run.phase == "planned":
            run.phase = "dispatched"


def invalid_fingerprint(bad: InvalidOrder) -> str:
    return hashlib.sha256(json.dumps(bad.raw, sort_keys=True, default=str).encode()).hexdigest()


def invalid_key(bad: InvalidOrder) -> str:
    """The item key of an order we could not read: its id, or a fingerprint of it when the id itself is bad."""
    return bad.order_id or f"unreadable:{invalid_fingerprint(bad)[:16]}"


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
            returns = (run.options or {}).get("returns_window")
            if returns:
                ledger.advance_watermark(session, run, ledger.RETURNS_STREAM, tuple(map(parse_time, returns)))
            report(run)
        return run


def report(run: SyncRun) -> None:
    """One log line per finished run, at the level its outcome deserves."""
    summary = (f"run {run.id} {run.status}: {run.success_count} records synced, {run.failed_count} failed"
               + (f", {run.unsent_count} not sent" if run.unsent_count else ""))
    if run.status == "failed":
        log.error("%s: %s", summary, run.error)
    elif run.status == "partial":
        log.warning("%s (see `ksync show %s`)", summary, run.id[:8])
    else:
        log.info(summary)


def skip(run_id: str, reason: str) -> None:
    """A run with nothing it may do (its connection is paused or needs re-authorization): ``skipped``
    with the reason; nothing read, nothing sent, the watermark where it was."""
    with session_scope() as session:
        run = session.get(SyncRun, run_id)
        if run is not None and not history.is_final(run):
            run.status, run.phase, run.error, run.finished_at = "skipped", "finished", reason, utcnow()
    log.warning("run %s skipped: %s", run_id, reason)


def stop(run_id: str, error: str) -> None:
    """Stop the run for a fatal cause: ``failed`` with ``error``, what it did not send ``unsent``,
    the watermark where it was (the next sync resumes from it)."""
    with session_scope() as session:
        stopped = history.stop_run(session, run_id, error)
        run = session.get(SyncRun, run_id) if stopped else None
    if run is not None:
        report(run)

