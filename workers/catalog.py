"""A catalog sync of one connection: window, read products, plan against ``catalog_entries``, send.

The ``products`` stream has its own watermark per connection, with the orders' rules: the window
runs from the watermark minus the lookback to now minus the lag (Search Products' bounds are both
inclusive; the client sends ``le = lt - 1``), the edge is read again (harmless: an unchanged
product is not sent), and the watermark moves to the window's end only once every row of the run
is final and none is unsent. The first run reads every product (no lower bound): the catalog is
state, not a stream of events, so it starts complete.

Search Products lists every status (DELETED and FREEZE only appear there: Get Product refuses
them), and Get Product gives the detail a catalog item needs (description, images, categories,
brand) for the products that are live or deactivated. Drafts and products in review are never
sent.

Stock: a stock edit does not move ``update_time`` (commerce-apis.md, open question 1; the stand-in
behaves so), so the stock poll (``poll_stock``) keeps ``inventory_quantity`` right between syncs.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone

from sqlalchemy import update

from db import catalog as entries
from db import history, ledger
from db.engine import session_scope
from db.models import OPEN_ITEM_STATUSES, Connection, SyncItem, SyncRun, utcnow
from tiktok import TikTokNotFoundError
from tiktok.models import InvalidRecord

from .catalog_mapping import DELETE, IGNORE, MappedProduct, disposition, map_product
from .catalog_planning import CatalogPlan, plan_catalog, plan_stock, restocks
from .catalog_send import ITEM_KIND, record_plan, send_plan
from .sync import Window

log = logging.getLogger(__name__)

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
CATALOG, STOCK = "catalog", "stock"
#: Sync types of catalog runs (the sweeper and ``retry_failed`` send them to the catalog tasks).
CATALOG_SYNC_TYPES = (CATALOG, STOCK)
#: Products read, planned and sent together: one Search page, at most one bulk job per kind.
BATCH = 100


def create_run(connection_id: str, sync_type: str, trigger: str, period: str | None = None,
               parent_run_id: str | None = None) -> str | None:
    """A new catalog or stock run of the connection (None when a beat run of this period exists)."""
    from sqlalchemy.exc import IntegrityError

    from db import connections as store

    try:
        with session_scope() as session:
            connection = store.get(session, connection_id)
            run = history.create_run(session, shop=connection.shop_cipher, sync_type=sync_type, trigger=trigger,
                                     period_key=period, parent_run_id=parent_run_id)
            run.connection_id = connection_id
            return run.id
    except IntegrityError:
        return None


def begin(run_id: str, task_id: str | None, account: str, settings, now: datetime | None = None) -> Window | None:
    """Start the run and fix its window (None when it is final already)."""
    now = now or utcnow()
    with session_scope() as session:
        run = session.get(SyncRun, run_id)
        if run is None or history.is_final(run):
            return None
        history.start_run(session, run, task_id)
        run.account = account
        if run.window_start is None or run.window_end is None:
            watermark = ledger.get_watermark(session, run.connection_id, entries.PRODUCTS_STREAM)
            end = now - timedelta(seconds=settings.lag_seconds)
            start = watermark - timedelta(seconds=settings.lookback_seconds) if watermark else EPOCH
            run.window_start, run.window_end = min(start, end), end
        return Window(run.window_start, run.window_end)


def region_of(connection_id: str) -> str:
    with session_scope() as session:
        row = session.get(Connection, connection_id)
        return (row.shop_region if row else "") or "US"


def wanted_products(ctx, window: Window | None, product_ids: list[str] | None = None
                    ) -> tuple[list[tuple[str, str | None, int | None]], list[InvalidRecord]]:
    """(product id, disposition, update_time) of the products updated in the window, or of exactly
    ``product_ids`` (a replay: disposition and time unknown until read), and the unreadable ones."""
    if product_ids is not None:
        return [(p, None, None) for p in product_ids], []
    found = list(ctx.tiktok.search_products(window.start, window.end))
    invalid = [s for s in found if isinstance(s, InvalidRecord)]
    return [(s.id, disposition(s.status), int(s.update_time.timestamp())) for s in found
            if not isinstance(s, InvalidRecord)], invalid


def not_landed(account: str, wanted: list[tuple[str, str | None, int | None]]) -> tuple[list, int]:
    """Leave out the live or deactivated products whose item landed, with every variant, at this very
    ``update_time`` (an edge re-read, or a retried run resuming): no Get Product for those. Stock is
    not in ``update_time``; the stock poll keeps it right."""
    timed = [p for p, action, t in wanted if t is not None and action not in (DELETE, IGNORE)]
    with session_scope() as session:
        landed = {p: d.get("update_time") for p, d in entries.item_details(session, account, timed).items()}
    keep = [w for w in wanted if w[2] is None or w[1] in (DELETE, IGNORE) or landed.get(w[0]) != w[2]]
    return keep, len(wanted) - len(keep)


def read_products(ctx, wanted: list[tuple[str, str | None, int | None]], settings,
                  heartbeat=None) -> tuple[list[MappedProduct], list[InvalidRecord]]:
    """The products wanted, mapped: Get Product for the live and deactivated ones (and for a replay)."""
    region = region_of(ctx.id)
    mapped, invalid = [], []
    for count, (product_id, action, _) in enumerate(wanted, start=1):
        if action in (DELETE, IGNORE):
            mapped.append(MappedProduct(product_id, action, None))
            continue
        try:
            product = ctx.tiktok.get_product(product_id)
        except TikTokNotFoundError:  # deleted or frozen since (Get Product refuses those)
            mapped.append(MappedProduct(product_id, DELETE, None))
            continue
        if isinstance(product, InvalidRecord):
            invalid.append(product)
        else:
            mapped.append(map_product(product, settings.product_url_template, region))
        if heartbeat and count % 20 == 0:
            heartbeat()
    return mapped, invalid


def plan(run_id: str, account: str, products: list[MappedProduct]) -> CatalogPlan:
    ids = {p.product_id for p in products}
    categories = {c.external_id for p in products for c in p.categories}
    with session_scope() as session:
        held = entries.entries_of_products(session, account, ids)
        known = entries.known_categories(session, account, categories)
    return plan_catalog(products, held, known)


def record_invalid(run_id: str, invalid: list[InvalidRecord]) -> None:
    """Products TikTok sent that we cannot read: failed items (replayable: a replay reads them again)."""
    with session_scope() as session:
        history.insert_items(session, run_id, [
            {"kind": ITEM_KIND, "key": bad.record_id or "unreadable", "status": "failed", "error": bad.error,
             "payload": {"product_id": bad.record_id}} for bad in invalid])


def sync(ctx, run_id: str, window: Window | None, settings, product_ids: list[str] | None = None,
         heartbeat=None) -> None:
    """Read, plan, record and send, 100 products at a time (what landed is in ``catalog_entries`` after
    each batch, so a task that runs out of time resumes where it stopped: ``not_landed``)."""
    wanted, invalid = wanted_products(ctx, window, product_ids)
    record_invalid(run_id, invalid)
    read, skipped, unchanged, ignored, sent, failed = len(invalid), 0, 0, 0, 0, 0
    for start in range(0, len(wanted), BATCH):
        batch = wanted[start:start + BATCH]
        if product_ids is None:
            batch, landed = not_landed(ctx.account, batch)
            skipped += landed
        products, bad = read_products(ctx, batch, settings, heartbeat)
        record_invalid(run_id, bad)
        catalog_plan = plan(run_id, ctx.account, products)
        record_plan(run_id, catalog_plan)
        outcome = send_plan(ctx.klaviyo, run_id, ctx.account, ctx.id, catalog_plan)
        read += len(products) + len(bad)
        unchanged, ignored = unchanged + catalog_plan.unchanged, ignored + catalog_plan.ignored
        sent, failed = sent + len(outcome.succeeded), failed + len(outcome.failed)
        with session_scope() as session:  # progress, and the sweeper's sign that the run is alive
            run = session.get(SyncRun, run_id)
            run.orders_read = read
            run.options = (run.options or {}) | {"products_unchanged": unchanged + skipped,
                                                 "products_ignored": ignored}
            run.updated_at = utcnow()
        if heartbeat:
            heartbeat()
    log.info("catalog of %s: %d rows sent, %d failed, %d products unchanged", ctx.id, sent, failed,
             unchanged + skipped)


def poll_stock(ctx, product_ids: list[str] | None = None) -> tuple[CatalogPlan, list[str]]:
    """The stock-only updates the catalog needs now, as a plan, and which of them are restocks, from
    Inventory Search on the connection's products in the catalog (or ``product_ids``)."""
    with session_scope() as session:
        ids = product_ids if product_ids is not None else entries.product_ids(session, ctx.account, ctx.id)
        variants = entries.variants_of_products(session, ctx.account, ids)
    held = {e.external_id: e.inventory_quantity for e in variants}
    if not ids:
        return CatalogPlan(), []
    quantities = {}
    for record in ctx.tiktok.search_inventory(ids):
        if isinstance(record, InvalidRecord):
            log.warning("inventory record skipped: %s", record.error)
            continue
        for sku in record.skus:
            quantities[sku.id] = sku.total_available_quantity
    updates = plan_stock(quantities, held)
    product_of = {e.external_id: e.product_id for e in variants}
    return CatalogPlan(stock_updates=updates, rows={  # rows name each variant's product (failures, history)
        ("variant", v.external_id): {"kind": "variant", "external_id": v.external_id,
                                     "product_id": product_of[v.external_id]} for v in updates}), \
        restocks(quantities, held)


def finish(run_id: str) -> SyncRun | None:
    """Mark the run dispatched and finish it; a finished catalog sync moves the products watermark."""
    from .sync import finish_if_done, mark_dispatched

    with session_scope() as session:
        run = session.get(SyncRun, run_id)
        if run is not None and run.phase in ("queued", "reading"):
            run.phase = "planned"
        # every row was settled by the send; one left open would keep the run open for ever: unsent
        # (the watermark stays, and the next sync sends it)
        session.execute(update(SyncItem).where(SyncItem.run_id == run_id, SyncItem.status.in_(OPEN_ITEM_STATUSES))
                        .values(status="unsent", error="the catalog send left this row without an outcome",
                                updated_at=utcnow()).execution_options(synchronize_session=False))
    mark_dispatched(run_id)
    run = finish_if_done(run_id)
    if run is not None and run.sync_type == CATALOG:
        with session_scope() as session:
            advance_products_watermark(session, session.get(SyncRun, run_id))
    return run


def advance_products_watermark(session, run: SyncRun) -> datetime | None:
    """Move the connection's ``products`` watermark to the run's window end, if the run finished with
    every row delivered or failed for its own data (none unsent), and its window starts at or before
    the watermark (coverage stays contiguous)."""
    current = ledger.get_watermark(session, run.connection_id, entries.PRODUCTS_STREAM)
    if run.status not in ("succeeded", "partial") or run.unsent_count or run.window_end is None:
        return current
    if current is not None and run.window_start > current:
        return current
    if current is None or run.window_end > current:
        ledger.set_watermark(session, run.connection_id, run.window_end, entries.PRODUCTS_STREAM)
        return run.window_end
    return current


def failed_products(parent_run_id: str) -> list[str]:
    """The products a run's failed rows belong to (what a replay reads again)."""
    with session_scope() as session:
        items = history.failed_items(session, parent_run_id)
        return sorted({(i.payload or {}).get("product_id") or i.key for i in items
                       if i.kind in (ITEM_KIND, "catalog_variant")} - {"unreadable", None})

