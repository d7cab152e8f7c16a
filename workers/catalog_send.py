"""Send a catalog plan through Klaviyo's bulk catalog jobs and account for every row.

Order: categories, then items (their jobs complete before any variant is created, since a variant
needs its item), then variants (creates, updates, stock-only updates, deletes), then item deletes
(after their variants'). Every row is a ``sync_items`` row of the run (kinds ``catalog_item``,
``catalog_variant``, ``catalog_category``, keyed by TikTok id) whose ``external_ref`` is the job
that carried it; the run's ``options["catalog_jobs"]`` lists every job (type, id, rows, failed).

Outcomes per row:

- applied: ``succeeded``, and ``catalog_entries`` records what the account holds now;
- refused by Klaviyo (a job's per-row error, or our own validation before sending): ``failed``,
  naming the record and field (``variant <sku id> (product <id>): <field>: <detail>``), replayable
  with ``ksync retry-failed``; the variants of an item that failed fail too, naming the item;
- a create of an id Klaviyo already has is sent again as an update; a delete of one already gone
  is done.

Whole-request errors are not row failures: a 429, 5xx or network error raises (the task retries
and plans again from ``catalog_entries``, so what landed is not sent twice); a 401/403 raises for
the task to stop the run with one reason.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from sqlalchemy import select, update

from db import catalog as entries
from db.engine import session_scope
from db.models import SyncItem, SyncRun, utcnow
from klaviyo import KlaviyoValidationError
from klaviyo.catalog import CatalogSubmission

from .catalog_planning import CatalogPlan

log = logging.getLogger(__name__)

ITEM_KIND, VARIANT_KIND, CATEGORY_KIND = "catalog_item", "catalog_variant", "catalog_category"
#: How long one batch of jobs may take before the task gives up waiting (it retries, and plans again).
JOB_TIMEOUT_SECONDS = 240


@dataclass
class Outcome:
    succeeded: set[tuple[str, str]] = field(default_factory=set)
    failed: dict[tuple[str, str], str] = field(default_factory=dict)
    jobs: list[dict] = field(default_factory=list)


def record_plan(run_id: str, plan: CatalogPlan) -> None:
    """The plan's rows as pending items of the run (a re-plan after a retry adds only new ones)."""
    products_of = _products_of(plan)
    rows = [{"kind": CATEGORY_KIND, "key": c.external_id} for c in plan.categories]
    rows += [{"kind": ITEM_KIND, "key": i.external_id, "payload": {"product_id": i.external_id}}
             for i in plan.item_creates + plan.item_updates]
    rows += [{"kind": ITEM_KIND, "key": p, "payload": {"product_id": p}} for p in plan.item_deletes]
    rows += [{"kind": VARIANT_KIND, "key": v.external_id, "payload": {"product_id": products_of.get(v.external_id)}}
             for v in plan.variant_creates + plan.variant_updates + plan.stock_updates]
    rows += [{"kind": VARIANT_KIND, "key": s, "payload": {"product_id": p}} for s, p in plan.variant_deletes]
    from db import history

    with session_scope() as session:
        history.insert_items(session, run_id, rows)
        run = session.get(SyncRun, run_id)
        run.items_total = session.query(SyncItem).filter(SyncItem.run_id == run_id).count()
        run.updated_at = utcnow()


def send_plan(client, run_id: str, account: str, connection_id: str, plan: CatalogPlan) -> Outcome:
    outcome = Outcome()
    products_of = _products_of(plan)

    def label(kind: str, external_id: str) -> str:
        if kind == VARIANT_KIND:
            return f"variant {external_id} (product {products_of.get(external_id, '?')})"
        return f"{'product' if kind == ITEM_KIND else 'category'} {external_id}"

    def run(kind: str, action: str, values: list, submit, key=lambda v: v.external_id) -> list:
        """Submit ``values`` (dropping rows our own validation refuses), wait, account; returns the rows a
        create found already present (to send again as updates)."""
        values = list(values)
        while values:
            try:
                submission: CatalogSubmission = submit(values)
                break
            except KlaviyoValidationError as exc:
                if exc.index is None:
                    raise
                bad = values.pop(exc.index)
                outcome.failed[(kind, key(bad))] = f"{label(kind, key(bad))}: {exc.message}"
        else:
            return []
        submission = client.wait_for_catalog_jobs(submission, timeout=JOB_TIMEOUT_SECONDS)
        if not submission.done:
            raise TimeoutError(f"Klaviyo's catalog jobs did not finish in {JOB_TIMEOUT_SECONDS} s")
        errors, present = {}, set(submission.already_present)
        for error in submission.row_errors():
            if error.index is not None and not error.settled:
                errors[error.index] = error
            elif error.index is not None and action == "create":  # created meanwhile: sent again as an update
                present.add(error.index)
        for job in submission.jobs:
            outcome.jobs.append({"type": job.job_type, "id": job.job_id, "rows": len(job.external_ids),
                                 "failed": job.failed_count})
            _set_ref(run_id, kind, list(job.external_ids), job.job_id)
        for index, value in enumerate(values):
            ident = (kind, key(value))
            if index in errors:
                e = errors[index]
                detail = ": ".join(p for p in (e.field, e.detail or e.code) if p)
                outcome.failed[ident] = f"{label(kind, key(value))}: {detail}"
            elif not (action == "create" and index in present):
                outcome.succeeded.add(ident)
        return [values[i] for i in sorted(present)] if action == "create" else []

    # categories: only created; one the account has is taken as is
    present = run(CATEGORY_KIND, "create", plan.categories, client.bulk_create_catalog_categories)
    outcome.succeeded |= {(CATEGORY_KIND, c.external_id) for c in present}
    # items
    again = run(ITEM_KIND, "create", plan.item_creates, client.bulk_create_catalog_items)
    run(ITEM_KIND, "update", plan.item_updates + again, client.bulk_update_catalog_items)
    # variants of an item that failed fail too, naming the item
    failed_items = {k: v for (kind, k), v in outcome.failed.items() if kind == ITEM_KIND}

    def of_live_item(values):
        keep = []
        for v in values:
            product = v.item_external_id or products_of.get(v.external_id)
            if product in failed_items:
                outcome.failed[(VARIANT_KIND, v.external_id)] = (
                    f"{label(VARIANT_KIND, v.external_id)}: its item failed ({failed_items[product]})")
            else:
                keep.append(v)
        return keep

    again = run(VARIANT_KIND, "create", of_live_item(plan.variant_creates), client.bulk_create_catalog_variants)
    run(VARIANT_KIND, "update", of_live_item(plan.variant_updates + again) + plan.stock_updates,
        client.bulk_update_catalog_variants)
    run(VARIANT_KIND, "delete", [s for s, _ in plan.variant_deletes], client.bulk_delete_catalog_variants,
        key=lambda s: s)
    run(ITEM_KIND, "delete", plan.item_deletes, client.bulk_delete_catalog_items, key=lambda p: p)
    _settle(run_id, account, connection_id, plan, outcome)
    return outcome


def _products_of(plan: CatalogPlan) -> dict[str, str]:
    """SKU id -> product id, for every variant the plan touches."""
    products_of = {s: p for s, p in plan.variant_deletes}
    for row in plan.rows.values():
        if row["kind"] == "variant":
            products_of[row["external_id"]] = row["product_id"]
    return products_of


def _set_ref(run_id: str, kind: str, keys: list[str], job_id: str) -> None:
    with session_scope() as session:
        session.execute(update(SyncItem).where(SyncItem.run_id == run_id, SyncItem.kind == kind,
                                               SyncItem.key.in_(keys))
                        .values(external_ref=job_id, updated_at=utcnow()).execution_options(synchronize_session=False))


def _settle(run_id: str, account: str, connection_id: str, plan: CatalogPlan, outcome: Outcome) -> None:
    """Write every row's outcome and what the catalog holds now, in one transaction."""
    kinds = {ITEM_KIND: "item", VARIANT_KIND: "variant", CATEGORY_KIND: "category"}
    deleted_items, deleted_variants = set(plan.item_deletes), {s for s, _ in plan.variant_deletes}
    stock_only = {v.external_id: v.inventory_quantity for v in plan.stock_updates}
    products_of = _products_of(plan)
    incomplete = {key if kind == ITEM_KIND else products_of.get(key) for kind, key in outcome.failed}
    with session_scope() as session:
        landed, gone_items, gone_variants, stock = [], [], [], {}
        for kind, key in outcome.succeeded:
            if kind == ITEM_KIND and key in deleted_items:
                gone_items.append(key)
            elif kind == VARIANT_KIND and key in deleted_variants:
                gone_variants.append(key)
            elif kind == VARIANT_KIND and key in stock_only:
                stock[key] = stock_only[key]
            elif (kinds[kind], key) in plan.rows:
                row = plan.rows[(kinds[kind], key)]
                if kind == ITEM_KIND and key in incomplete and row.get("details"):
                    # a variant failed: no update_time, so the next sync reads the product again
                    row = row | {"details": {k: v for k, v in row["details"].items() if k != "update_time"}}
                landed.append(row)
        # unchanged items of products that fully landed: the catalog holds them as planned; their
        # details (update_time) move on, so the next sync need not read them again
        landed += [row for (kind, key), row in plan.rows.items() if kind == "item" and key not in incomplete
                   and (ITEM_KIND, key) not in outcome.succeeded and (ITEM_KIND, key) not in outcome.failed
                   and row.get("details") is not None]
        entries.upsert(session, account, connection_id, run_id, landed)
        entries.set_stock(session, account, stock)
        entries.remove(session, account, "item", gone_items)
        entries.remove(session, account, "variant", gone_variants)
        items = {(i.kind, i.key): i for i in session.scalars(select(SyncItem).where(SyncItem.run_id == run_id))}
        now = utcnow()
        for ident, item in items.items():
            if item.status not in ("pending", "sending"):
                continue
            if ident in outcome.failed:
                item.status, item.error = "failed", outcome.failed[ident]
            elif ident in outcome.succeeded:
                item.status, item.error = "succeeded", None
            else:
                continue
            item.attempts += 1
            item.updated_at = now
        run = session.get(SyncRun, run_id)
        run.options = (run.options or {}) | {"catalog_jobs": (run.options or {}).get("catalog_jobs", []) + outcome.jobs}
        run.updated_at = now
    for ident, error in list(outcome.failed.items())[:20]:
        log.warning("catalog row failed: %s", error)
