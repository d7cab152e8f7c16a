"""Our own state about the merchants' data: the orders ledger, what Klaviyo confirmed, watermarks.

The ledger keeps the latest state of every order we read (a newer ``update_time``
wins), so buyer totals are computed from facts, never accumulated: a re-sync of
the same window cannot double count an order.

Everything here is keyed by Klaviyo account (``account``): a buyer who orders from two shops
feeding the same account has one ledger, so their totals cover both; shops feeding different
accounts never mix. Watermarks are per connection. Rows are plain values (dicts in, SQLAlchemy
rows out); the mapping rules live in ``workers/``, which this module does not import.
"""

from __future__ import annotations

from datetime import datetime
from typing import Iterable, Sequence

from sqlalchemy import func, select, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from .models import (
    OPEN_ITEM_STATUSES,
    Refund,
    WATERMARK_SYNC_TYPES,
    BuyerProfile,
    DeliveredEvent,
    LedgerOrder,
    SyncItem,
    SyncRun,
    SyncState,
    utcnow,
)

ORDERS_STREAM = "orders"
RETURNS_STREAM = "returns"
#: Values per IN (...) query: well under every backend's bound-parameter limit.
_CHUNK = 500


def chunks(values: Sequence, size: int = _CHUNK):
    for start in range(0, len(values), size):
        yield values[start:start + size]


def _insert(session: Session):
    return postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert


def upsert_orders(session: Session, account: str, connection_id: str | None, shop: str, rows: Iterable[dict]) -> None:
    """Store the orders' latest state in one statement per batch; an older ``update_time`` never
    overwrites a newer one. Each row: order_id, user_id, status, placed, total_amount, currency,
    create_time, update_time, paid_time, payload."""
    now = utcnow()
    values = [dict(row, account=account, connection_id=connection_id, shop=shop, first_seen_at=now, updated_at=now)
              for row in rows]
    if not values:
        return
    stmt = _insert(session)(LedgerOrder)
    kept = ("first_seen_at", "account", "order_id")
    stmt = stmt.on_conflict_do_update(
        index_elements=["account", "order_id"],
        set_={c: stmt.excluded[c] for c in values[0] if c not in kept},
        where=stmt.excluded.update_time >= LedgerOrder.update_time)
    session.execute(stmt, values)


def ledger_entries(session: Session, account: str, user_ids: Iterable[str]) -> dict[str, list]:
    """Every ledger order of these buyers in this account, over all its shops, with what was
    refunded on it: rows with ``order_id, user_id, status, placed, total_amount, currency,
    placed_at, shop, refunded, refunds``."""
    refunded = (select(Refund.order_id, func.sum(Refund.amount).label("refunded"), func.count().label("refunds"))
                .where(Refund.account == account, Refund.refunded.is_(True)).group_by(Refund.order_id).subquery())
    columns = (LedgerOrder.order_id, LedgerOrder.user_id, LedgerOrder.status, LedgerOrder.placed,
               LedgerOrder.total_amount, LedgerOrder.currency,
               func.coalesce(LedgerOrder.paid_time, LedgerOrder.create_time).label("placed_at"), LedgerOrder.shop,
               func.coalesce(refunded.c.refunded, 0).label("refunded"), func.coalesce(refunded.c.refunds, 0).label("refunds"))
    result: dict[str, list] = {}
    for chunk in chunks(sorted(set(user_ids))):
        query = (select(*columns).outerjoin(refunded, refunded.c.order_id == LedgerOrder.order_id)
                 .where(LedgerOrder.account == account, LedgerOrder.user_id.in_(chunk)))
        for row in session.execute(query):
            result.setdefault(row.user_id, []).append(row)
    return result


def upsert_refunds(session: Session, account: str, connection_id: str | None, shop: str, rows: Iterable[dict]) -> None:
    """Store returns' latest state (an older ``update_time`` never overwrites a newer one); the
    ``unique_id`` a Refunded Order was given is kept. Each row: return_id, order_id, status,
    return_type, refunded, amount, currency, update_time, payload."""
    now = utcnow()
    values = [dict(row, account=account, connection_id=connection_id, shop=shop, updated_at=now) for row in rows]
    if not values:
        return
    stmt = _insert(session)(Refund)
    kept = ("account", "return_id", "unique_id")
    stmt = stmt.on_conflict_do_update(
        index_elements=["account", "return_id"], set_={c: stmt.excluded[c] for c in values[0] if c not in kept},
        where=stmt.excluded.update_time >= Refund.update_time)
    session.execute(stmt, values)


def refunds_of_orders(session: Session, account: str, order_ids: Iterable[str]) -> list[Refund]:
    found: list[Refund] = []
    for chunk in chunks(sorted(set(order_ids))):
        found += session.scalars(select(Refund).where(Refund.account == account, Refund.order_id.in_(chunk)))
    return found


def fix_refund_ids(session: Session, account: str, ids: dict[str, str]) -> None:
    """Record the ``unique_id`` each return's Refunded Order was given (return id -> unique id),
    only where none was recorded yet: once chosen, an event's identity never changes."""
    for return_id, unique_id in ids.items():
        session.execute(update(Refund).where(Refund.account == account, Refund.return_id == return_id,
                                             Refund.unique_id.is_(None))
                        .values(unique_id=unique_id).execution_options(synchronize_session=False))


def touch_orders(session: Session, account: str, order_ids: Iterable[str]) -> None:
    """Mark orders as changed now (a refund changed their buyer's totals): the run plans those
    buyers' profiles again."""
    for chunk in chunks(sorted(set(order_ids))):
        session.execute(update(LedgerOrder).where(LedgerOrder.account == account, LedgerOrder.order_id.in_(chunk))
                        .values(updated_at=utcnow()).execution_options(synchronize_session=False))


def stored_orders(session: Session, account: str, order_ids: Iterable[str] = (), user_ids: Iterable[str] = (),
                  shop: str | None = None) -> list[dict]:
    """The raw TikTok orders the ledger holds for these ids and for every order of these buyers
    (a replay re-plans from them: the latest state we know, never an older payload)."""
    scope = [LedgerOrder.account == account] + ([LedgerOrder.shop == shop] if shop else [])
    found: dict[str, dict] = {}
    for chunk in chunks(sorted(set(order_ids))):
        found.update(session.execute(select(LedgerOrder.order_id, LedgerOrder.payload)
                                     .where(*scope, LedgerOrder.order_id.in_(chunk))).all())
    for chunk in chunks(sorted(set(user_ids))):
        found.update(session.execute(select(LedgerOrder.order_id, LedgerOrder.payload)
                                     .where(*scope, LedgerOrder.user_id.in_(chunk))).all())
    return list(found.values())


def buyers_touched(session: Session, account: str, shop: str, since: datetime, after_user: str = "",
                   limit: int = 1000, max_orders: int | None = None) -> list[str]:
    """Buyers of ``shop`` whose ledger rows were written since ``since``, in user id order from
    ``after_user``: a streaming run plans their profiles page by page once its read is done.

    A page holds at most ``limit`` buyers and, with ``max_orders``, stops at the buyer whose orders
    in the account take it past that many (always at least one buyer): planning a profile reads a
    row of every order of the buyer, and a few buyers can hold a large share of a shop's orders."""
    page = select(LedgerOrder.user_id).where(
        LedgerOrder.account == account, LedgerOrder.shop == shop, LedgerOrder.updated_at >= since,
        LedgerOrder.user_id > after_user).group_by(LedgerOrder.user_id).order_by(LedgerOrder.user_id).limit(limit)
    buyers = list(session.scalars(page))
    if max_orders is None or not buyers:
        return buyers
    counts: dict[str, int] = {}
    for chunk in chunks(buyers):
        counts.update(session.execute(select(LedgerOrder.user_id, func.count()).where(
            LedgerOrder.account == account, LedgerOrder.user_id.in_(chunk)).group_by(LedgerOrder.user_id)).all())
    taken, total = [], 0
    for user_id in buyers:
        total += counts.get(user_id, 0)
        if taken and total > max_orders:
            break
        taken.append(user_id)
    return taken


def newest_placed_orders(session: Session, account: str, shop: str, user_ids: Iterable[str]) -> list[dict]:
    """The raw TikTok order each of these buyers placed last in ``shop`` (latest ``create_time``,
    then order id): what a profile's name, address and contact come from. Their totals come from
    ``ledger_entries``, so a buyer with thousands of orders costs one payload here, not thousands."""
    newest = (select(LedgerOrder.payload, func.row_number().over(
        partition_by=LedgerOrder.user_id,
        order_by=(LedgerOrder.create_time.desc(), LedgerOrder.order_id.desc())).label("rank")))
    found: list[dict] = []
    for chunk in chunks(sorted(set(user_ids))):
        ranked = newest.where(LedgerOrder.account == account, LedgerOrder.shop == shop, LedgerOrder.placed.is_(True),
                              LedgerOrder.user_id.in_(chunk)).subquery()
        found.extend(session.scalars(select(ranked.c.payload).where(ranked.c.rank == 1)))
    return found


def delivered_keys(session: Session, account: str, keys: Iterable[str]) -> set[str]:
    found: set[str] = set()
    for chunk in chunks(sorted(set(keys))):
        found.update(session.scalars(select(DeliveredEvent.event_key).where(
            DeliveredEvent.account == account, DeliveredEvent.event_key.in_(chunk))))
    return found


def in_flight(session: Session, account: str, kind_keys: Iterable[tuple[str, str]], exclude_run: str) -> set[tuple[str, str]]:
    """(kind, key) pairs open (pending or sending) in another running run writing to the same account."""
    found: set[tuple[str, str]] = set()
    others = _other_running_runs(session, account, exclude_run)
    if not others:
        return found
    for chunk in chunks(sorted(set(kind_keys))):
        rows = session.execute(
            select(SyncItem.kind, SyncItem.key)
            .where(SyncItem.run_id.in_(others), tuple_(SyncItem.kind, SyncItem.key).in_(chunk),
                   SyncItem.status.in_(OPEN_ITEM_STATUSES)))
        found.update((k, key) for k, key in rows)
    return found


def _other_running_runs(session: Session, account: str, exclude_run: str) -> list[str]:
    """The running runs writing to ``account`` besides ``exclude_run``: a handful at most.

    Asked first so that the item probes above and below look only inside those runs (through the
    (run, kind, key) unique index) and are skipped outright when there are none, as during a lone
    backfill: probing every planned key against all of ``sync_items`` cost about half a PostgreSQL
    core at 330,000 items."""
    return list(session.scalars(select(SyncRun.id).where(
        SyncRun.status == "running", SyncRun.account == account, SyncRun.id != exclude_run)))


def open_profile_payloads(session: Session, account: str, external_ids: Iterable[str], exclude_run: str) -> dict[str, dict]:
    """External id -> the payload of the profile open (pending or sending) in another running run
    writing to the same account (the most recently planned one, if several). Another run's open
    profile may carry older totals than ours: it was planned before our orders reached the ledger."""
    found: dict[str, tuple[int, dict]] = {}
    others = _other_running_runs(session, account, exclude_run)
    if not others:
        return {}
    for chunk in chunks(sorted(set(external_ids))):
        rows = session.execute(
            select(SyncItem.id, SyncItem.key, SyncItem.payload)
            .where(SyncItem.run_id.in_(others), SyncItem.kind == "profile", SyncItem.key.in_(chunk),
                   SyncItem.status.in_(OPEN_ITEM_STATUSES)))
        for item_id, key, payload in rows:
            if payload is not None and (key not in found or item_id > found[key][0]):
                found[key] = (item_id, payload)
    return {key: payload for key, (_, payload) in found.items()}


def profile_hashes(session: Session, account: str, external_ids: Iterable[str]) -> dict[str, str]:
    result = {}
    for chunk in chunks(sorted(set(external_ids))):
        result.update(session.execute(select(BuyerProfile.external_id, BuyerProfile.payload_hash).where(
            BuyerProfile.account == account, BuyerProfile.external_id.in_(chunk))).all())
    return result


def mark_delivered(session: Session, account: str, shop: str, run_id: str, keys: Iterable[str]) -> None:
    now = utcnow()
    rows = [{"account": account, "event_key": k, "shop": shop, "run_id": run_id, "delivered_at": now} for k in set(keys)]
    if rows:
        session.execute(_insert(session)(DeliveredEvent).on_conflict_do_nothing(
            index_elements=["account", "event_key"]), rows)


def record_profiles(session: Session, account: str, shop: str, run_id: str,
                    profiles: Iterable[tuple[str, str | None, str]]) -> None:
    """Remember what each buyer's profile looked like when Klaviyo took it:
    ``(external_id, klaviyo profile id or None, fingerprint)``, upserted in one statement."""
    now = utcnow()
    rows = [{"account": account, "external_id": e, "shop": shop, "klaviyo_profile_id": pid, "payload_hash": h,
             "run_id": run_id, "synced_at": now} for e, pid, h in profiles]
    if not rows:
        return
    stmt = _insert(session)(BuyerProfile)
    stmt = stmt.on_conflict_do_update(index_elements=["account", "external_id"], set_={
        "payload_hash": stmt.excluded.payload_hash, "run_id": stmt.excluded.run_id, "synced_at": stmt.excluded.synced_at,
        "shop": stmt.excluded.shop,
        "klaviyo_profile_id": func.coalesce(stmt.excluded.klaviyo_profile_id, BuyerProfile.klaviyo_profile_id)})
    session.execute(stmt, rows)


def adopt_unscoped_rows(session: Session, account: str, connection_id: str, shop: str) -> int:
    """Rows written before connections existed (account "", watermark keyed by the shop cipher)
    become this connection's: run once by the implicit environment connection after an upgrade."""
    moved = 0
    for model in (LedgerOrder, DeliveredEvent, BuyerProfile):
        moved += session.execute(update(model).where(model.account == "", model.shop == shop)
                                 .values(account=account).execution_options(synchronize_session=False)).rowcount
    legacy = session.get(SyncState, (shop, ORDERS_STREAM))
    if legacy is not None and session.get(SyncState, (connection_id, ORDERS_STREAM)) is None:
        session.add(SyncState(connection_id=connection_id, stream=ORDERS_STREAM, watermark=legacy.watermark,
                              updated_at=utcnow()))
        session.delete(legacy)
        moved += 1
    session.execute(update(SyncRun).where(SyncRun.connection_id.is_(None), SyncRun.shop == shop)
                    .values(connection_id=connection_id, account=account).execution_options(synchronize_session=False))
    return moved


# Watermarks --------------------------------------------------------------------------------------


def get_watermark(session: Session, connection_id: str, stream: str = ORDERS_STREAM) -> datetime | None:
    row = session.get(SyncState, (connection_id, stream))
    return row.watermark if row else None


def set_watermark(session: Session, connection_id: str, value: datetime, stream: str = ORDERS_STREAM) -> None:
    row = session.get(SyncState, (connection_id, stream))
    if row is None:
        session.add(SyncState(connection_id=connection_id, stream=stream, watermark=value, updated_at=utcnow()))
    else:
        row.watermark = value
        row.updated_at = utcnow()


def advance_watermark(session: Session, run: SyncRun, stream: str = ORDERS_STREAM,
                      window: tuple[datetime, datetime] | None = None) -> datetime | None:
    """Move the connection's watermark after ``run`` finished, never past work that is not done.

    Only a run that read the shop's whole stream for its window (a scheduled, reconciling or
    manual sync; never a seed-service call with a status filter, a retry or a dry run) and
    delivered or skipped every record (``succeeded`` or ``partial``: record failures stay listed
    and replayable; a ``failed`` run stopped or left records unsent) moves it. It moves only if the
    run's window starts at or before it (coverage is contiguous), to the run's window end, but not
    beyond the start of any run of the same connection that is still open.
    """
    key = run.connection_id or run.shop
    current = get_watermark(session, key, stream)
    start, end = window or (run.window_start, run.window_end)
    if (run.dry_run or run.sync_type not in WATERMARK_SYNC_TYPES or run.status not in ("succeeded", "partial")
            or run.unsent_count or start is None or end is None):
        return current
    if current is not None and start > current:
        return current
    same_connection = (SyncRun.connection_id == run.connection_id) if run.connection_id else (SyncRun.shop == run.shop)
    blockers = list(session.scalars(select(SyncRun.window_start).where(
        same_connection, SyncRun.id != run.id, SyncRun.status.in_(("queued", "running")),
        SyncRun.dry_run.is_(False), SyncRun.window_start.is_not(None),
        SyncRun.sync_type.in_(WATERMARK_SYNC_TYPES))))
    target = min([end, *blockers])
    if current is None or target > current:
        set_watermark(session, key, target, stream)
        return target
    return current

