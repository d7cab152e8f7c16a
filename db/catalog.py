"""What each Klaviyo account's catalog holds (``catalog_entries``): read for planning, written as jobs land.

Keyed by Klaviyo account, like the ledger: two connections feeding one account share its catalog
(product and SKU ids are TikTok's, unique across shops), two accounts never mix.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from .ledger import chunks
from .models import CatalogEntry, utcnow

ITEM, VARIANT, CATEGORY = "item", "variant", "category"
PRODUCTS_STREAM = "products"


@dataclass(frozen=True)
class Entry:
    """One row as planning sees it."""

    kind: str
    external_id: str
    product_id: str
    fingerprint: str
    inventory_quantity: int | None
    published: bool


def _entry(row: CatalogEntry) -> Entry:
    return Entry(row.kind, row.external_id, row.product_id, row.fingerprint, row.inventory_quantity, row.published)


def entries_of_products(session: Session, account: str, product_ids: Iterable[str]) -> list[Entry]:
    """The items and variants of these products the account's catalog holds."""
    out = []
    for chunk in chunks(sorted(set(product_ids))):
        out += [_entry(r) for r in session.scalars(select(CatalogEntry).where(
            CatalogEntry.account == account, CatalogEntry.kind.in_((ITEM, VARIANT)),
            CatalogEntry.product_id.in_(chunk)))]
    return out


def known_categories(session: Session, account: str, external_ids: Iterable[str]) -> set[str]:
    found = set()
    for chunk in chunks(sorted(set(external_ids))):
        found |= set(session.scalars(select(CatalogEntry.external_id).where(
            CatalogEntry.account == account, CatalogEntry.kind == CATEGORY, CatalogEntry.external_id.in_(chunk))))
    return found


def product_ids(session: Session, account: str, connection_id: str) -> list[str]:
    """Every product of the connection the account's catalog holds (what a stock poll asks about)."""
    return list(session.scalars(select(CatalogEntry.external_id).where(
        CatalogEntry.account == account, CatalogEntry.kind == ITEM, CatalogEntry.connection_id == connection_id)
        .order_by(CatalogEntry.external_id)))


def variants_of_products(session: Session, account: str, product_ids_: Iterable[str]) -> list[Entry]:
    return [e for e in entries_of_products(session, account, product_ids_) if e.kind == VARIANT]


def item_details(session: Session, account: str, product_ids_: Iterable[str]) -> dict[str, dict]:
    """product id -> the order-event fields of its catalog item (URL, image, categories, brand)."""
    out = {}
    for chunk in chunks(sorted(set(product_ids_))):
        for external_id, details in session.execute(select(CatalogEntry.external_id, CatalogEntry.details).where(
                CatalogEntry.account == account, CatalogEntry.kind == ITEM, CatalogEntry.external_id.in_(chunk))):
            out[external_id] = details or {}
    return out


def upsert(session: Session, account: str, connection_id: str | None, run_id: str, rows: Iterable[dict]) -> None:
    """Record what landed: each row has kind, external_id, product_id, fingerprint, inventory_quantity,
    published and (items) details."""
    for row in rows:
        current = session.get(CatalogEntry, (account, row["kind"], row["external_id"]))
        if current is None:
            current = CatalogEntry(account=account, kind=row["kind"], external_id=row["external_id"])
            session.add(current)
        current.connection_id = connection_id
        current.product_id = row.get("product_id", "")
        current.fingerprint = row["fingerprint"]
        current.inventory_quantity = row.get("inventory_quantity")
        current.published = row.get("published", True)
        current.details = row.get("details")
        current.run_id = run_id
        current.updated_at = utcnow()


def set_stock(session: Session, account: str, quantities: dict[str, int]) -> None:
    """A stock-only update landed: variant external id -> its new quantity."""
    for external_id, quantity in quantities.items():
        row = session.get(CatalogEntry, (account, VARIANT, external_id))
        if row is not None:
            row.inventory_quantity = quantity
            row.updated_at = utcnow()


def remove(session: Session, account: str, kind: str, external_ids: Iterable[str]) -> None:
    for chunk in chunks(sorted(set(external_ids))):
        session.execute(delete(CatalogEntry).where(CatalogEntry.account == account, CatalogEntry.kind == kind,
                                                   CatalogEntry.external_id.in_(chunk)))


def counts(session: Session, account: str) -> dict[str, int]:
    return {kind: len(list(session.scalars(select(CatalogEntry.external_id).where(
        CatalogEntry.account == account, CatalogEntry.kind == kind)))) for kind in (ITEM, VARIANT, CATEGORY)}
