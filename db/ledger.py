"""Our own state about the merchant's data: the orders ledger, what Klaviyo confirmed, watermarks.

The ledger keeps the latest state of every order we read (a newer ``update_time``
wins), so buyer totals are computed from facts, never accumulated: a re-sync of
the same window cannot double count an order.
"""

from __future__ import annotations

from datetime import datetime
from typing import Iterable, Sequence

from sqlalchemy import func, select, tuple_
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from tiktok.models import Order
from workers.mapping import LedgerEntry, is_placed

from .models import (
    OPEN_ITEM_STATUSES,
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
_CHUNK = 500


def chunks(values: Sequence, size: int = _CHUNK):
    for start in range(0, len(values), size):
        yield values[start:start + size]


def _insert(session: Session):
    return postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert


def upsert_orders(session: Session, shop: str, orders: Iterable[Order]) -> int:
    """Store the orders' latest state; an older ``update_time`` never overwrites a newer one."""
    orders = list(orders)
    existing = {}
    for chunk in chunks([o.id for o in orders]):
        existing.update(session.execute(select(LedgerOrder.order_id, LedgerOrder.update_time)
                                        .where(LedgerOrder.order_id.in_(chunk))).all())
    written = 0
    for order in orders:
        known = existing.get(order.id)
        if known is not None and known > order.update_time:
            continue
        values = dict(shop=shop, user_id=order.user_id, status=order.status.value, placed=is_placed(order),
                      total_amount=order.payment.total_amount, currency=order.payment.currency,
                      create_time=order.create_time, update_time=order.update_time, paid_time=order.paid_time,
                      payload=order.raw or {"id": order.id}, updated_at=utcnow())
        if known is None:
            session.add(LedgerOrder(order_id=order.id, first_seen_at=utcnow(), **values))
        else:
            row = session.get(LedgerOrder, order.id)
            for key, value in values.items():
                setattr(row, key, value)
        written += 1
    session.flush()
    return written


def ledger_entries(session: Session, shop: str, user_ids: Iterable[str]) -> dict[str, list[LedgerEntry]]:
    """Every ledger order of these buyers, as mapping's ``LedgerEntry`` values."""
    result: dict[str, list[LedgerEntry]] = {}
    for chunk in chunks(sorted(set(user_ids))):
        rows = session.execute(select(LedgerOrder.order_id, LedgerOrder.user_id, LedgerOrder.status,
                                      LedgerOrder.placed, LedgerOrder.total_amount, LedgerOrder.currency,
                                      LedgerOrder.paid_time, LedgerOrder.create_time)
                               .where(LedgerOrder.shop == shop, LedgerOrder.user_id.in_(chunk)))
        for order_id, user_id, status, placed, total, currency, paid, created in rows:
            result.setdefault(user_id, []).append(
                LedgerEntry(order_id, user_id, status, placed, total, currency, placed_at=paid or created))
    return result


def stored_orders(session: Session, shop: str, order_ids: Iterable[str] = (), user_ids: Iterable[str] = ()) -> list[dict]:
    """The raw TikTok orders the ledger holds for these ids and for every order of these buyers
    (a replay re-plans from them: the latest state we know, never an older payload)."""
    found: dict[str, dict] = {}
    for chunk in chunks(sorted(set(order_ids))):
        found.update(session.execute(select(LedgerOrder.order_id, LedgerOrder.payload)
                                     .where(LedgerOrder.shop == shop, LedgerOrder.order_id.in_(chunk))).all())
    for chunk in chunks(sorted(set(user_ids))):
        found.update(session.execute(select(LedgerOrder.order_id, LedgerOrder.payload)
                                     .where(LedgerOrder.shop == shop, LedgerOrder.user_id.in_(chunk))).all())
    return list(found.values())


def ledger_payloads(session: Session, order_ids: Iterable[str]) -> dict[str, dict]:
    result = {}
    for chunk in chunks(sorted(set(order_ids))):
        result.update(session.execute(select(LedgerOrder.order_id, LedgerOrder.payload)
                                      .where(LedgerOrder.order_id.in_(chunk))).all())
    return result


def delivered_keys(session: Session, keys: Iterable[str]) -> set[str]:
    found: set[str] = set()
    for chunk in chunks(sorted(set(keys))):
        found.update(session.scalars(select(DeliveredEvent.event_key).where(DeliveredEvent.event_key.in_(chunk))))
    return found


def in_flight(session: Session, kind_keys: Iterable[tuple[str, str]], exclude_run: str) -> set[tuple[str, str]]:
    """(kind, key) pairs open (pending or sending) in another run that is still going."""
    found: set[tuple[str, str]] = set()
    for chunk in chunks(sorted(set(kind_keys))):
        rows = session.execute(
            select(SyncItem.kind, SyncItem.key).join(SyncRun, SyncRun.id == SyncItem.run_id)
            .where(tuple_(SyncItem.kind, SyncItem.key).in_(chunk), SyncItem.status.in_(OPEN_ITEM_STATUSES),
                   SyncItem.run_id != exclude_run, SyncRun.status == "running"))
        found.update((k, key) for k, key in rows)
    return found


def profile_hashes(session: Session, external_ids: Iterable[str]) -> dict[str, str]:
    result = {}
    for chunk in chunks(sorted(set(external_ids))):
        result.update(session.execute(select(BuyerProfile.external_id, BuyerProfile.payload_hash)
                                      .where(BuyerProfile.external_id.in_(chunk))).all())
    return result


def mark_delivered(session: Session, shop: str, run_id: str, keys: Iterable[str]) -> None:
    now = utcnow()
    rows = [{"event_key": k, "shop": shop, "run_id": run_id, "delivered_at": now} for k in set(keys)]
    if rows:
        session.execute(_insert(session)(DeliveredEvent).on_conflict_do_nothing(index_elements=["event_key"]), rows)


def record_profiles(session: Session, shop: str, run_id: str, profiles: Iterable[tuple[str, str | None, str]]) -> None:
    """Remember what each buyer's profile looked like when Klaviyo took it:
    ``(external_id, klaviyo profile id or None, fingerprint)``, upserted in one statement."""
    now = utcnow()
    rows = [{"external_id": e, "shop": shop, "klaviyo_profile_id": pid, "payload_hash": h, "run_id": run_id,
             "synced_at": now} for e, pid, h in profiles]
    if not rows:
        return
    stmt = _insert(session)(BuyerProfile)
    stmt = stmt.on_conflict_do_update(index_elements=["external_id"], set_={
        "payload_hash": stmt.excluded.payload_hash, "run_id": stmt.excluded.run_id, "synced_at": stmt.excluded.synced_at,
        "klaviyo_profile_id": func.coalesce(stmt.excluded.klaviyo_profile_id, BuyerProfile.klaviyo_profile_id)})
    session.execute(stmt, rows)



def get_watermark(session: Session, shop: str, stream: str = ORDERS_STREAM) -> datetime | None:
    row = session.get(SyncState, (shop, stream))
    return row.watermark if row else None


def set_watermark(session: Session, shop: str, value: datetime, stream: str = ORDERS_STREAM) -> None:
    row = session.get(SyncState, (shop, stream))
    if row is None:
        session.add(SyncState(shop=shop, stream=stream, watermark=value, updated_at=utcnow()))
    else:
        row.watermark = value
        row.updated_at = utcnow()


def advance_watermark(session: Session, run: SyncRun, stream: str = ORDERS_STREAM) -> datetime | None:
    """Move the shop's watermark after ``run`` finished, never past work that is not done.

    Only a run that read the shop's whole stream for its window (a scheduled, reconciling or
    manual sync; never a seed-service call with a status filter, a retry or a dry run) and
    delivered or skipped every record (``succeeded`` or ``partial``: record failures stay listed
    and replayable; a ``failed`` run stopped or left records unsent) moves it. It moves only if the
    run's window starts at or before it (coverage is contiguous), to the run's window end, but not
    beyond the start of any run of the same shop that is still open.
    """
    current = get_watermark(session, run.shop, stream)
    if (run.dry_run or run.sync_type not in WATERMARK_SYNC_TYPES or run.status not in ("succeeded", "partial")
            or run.unsent_count or run.window_start is None or run.window_end is None):
        return current
    if current is not None and run.window_start > current:
        return current
    blockers = list(session.scalars(select(SyncRun.window_start).where(
        SyncRun.shop == run.shop, SyncRun.id != run.id, SyncRun.status.in_(("queued", "running")),
        SyncRun.dry_run.is_(False), SyncRun.window_start.is_not(None))))
    target = min([run.window_end, *blockers])
    if current is None or target > current:
        set_watermark(session, run.shop, target, stream)
        return target
    return current
