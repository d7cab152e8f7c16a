"""What to send so an account's catalog matches the products read: pure planning against
``catalog_entries`` (passed in as ``Entry`` values), like ``planning.py`` for orders.

- a product never sent is created (item, then its variants); one sent with another fingerprint is
  updated; an unchanged one is not sent, except a variant whose stock alone changed, which gets a
  stock-only update (``inventory_quantity`` and nothing else);
- a SKU that disappeared from a product we hold has its variant deleted;
- a DELETED or FREEZE product we hold has its item deleted and each of its variants deleted
  explicitly (Klaviyo does not say that deleting an item deletes its variants);
- categories are only created, never updated or deleted: one the account has is taken as is.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from db.catalog import CATEGORY, ITEM, VARIANT, Entry
from klaviyo.catalog import CatalogCategory, CatalogItem, CatalogVariant

from .catalog_mapping import DELETE, IGNORE, MappedProduct, fingerprint


@dataclass
class CatalogPlan:
    categories: list[CatalogCategory] = field(default_factory=list)
    item_creates: list[CatalogItem] = field(default_factory=list)
    item_updates: list[CatalogItem] = field(default_factory=list)
    variant_creates: list[CatalogVariant] = field(default_factory=list)
    variant_updates: list[CatalogVariant] = field(default_factory=list)
    #: Variants whose stock alone changed: only ``external_id`` and ``inventory_quantity`` set.
    stock_updates: list[CatalogVariant] = field(default_factory=list)
    #: (SKU id, product id) of the variants to delete.
    variant_deletes: list[tuple[str, str]] = field(default_factory=list)
    item_deletes: list[str] = field(default_factory=list)
    #: (kind, external id) -> the catalog_entries row to write once that object landed.
    rows: dict[tuple[str, str], dict] = field(default_factory=dict)
    unchanged: int = 0
    ignored: int = 0

    @property
    def empty(self) -> bool:
        return not (self.categories or self.item_creates or self.item_updates or self.variant_creates
                    or self.variant_updates or self.stock_updates or self.variant_deletes or self.item_deletes)

    @property
    def size(self) -> int:
        return sum(map(len, (self.categories, self.item_creates, self.item_updates, self.variant_creates,
                             self.variant_updates, self.stock_updates, self.variant_deletes, self.item_deletes)))


def plan_catalog(products: list[MappedProduct], entries: list[Entry], categories_known: set[str]) -> CatalogPlan:
    """Plan ``products`` (the last reading of each wins) against what the catalog holds."""
    plan = CatalogPlan()
    held = {(e.kind, e.external_id): e for e in entries}
    variants_held: dict[str, list[Entry]] = {}
    for e in entries:
        if e.kind == VARIANT:
            variants_held.setdefault(e.product_id, []).append(e)
    latest = {p.product_id: p for p in products}
    new_categories: dict[str, CatalogCategory] = {}
    for product in latest.values():
        if product.disposition == IGNORE:
            plan.ignored += 1
            continue
        if product.disposition == DELETE:
            plan.variant_deletes += [(v.external_id, product.product_id) for v in variants_held.get(product.product_id, [])]
            if (ITEM, product.product_id) in held:
                plan.item_deletes.append(product.product_id)
            continue
        for category in product.categories:
            if category.external_id not in categories_known and category.external_id not in new_categories:
                new_categories[category.external_id] = category
                plan.rows[(CATEGORY, category.external_id)] = {
                    "kind": CATEGORY, "external_id": category.external_id, "product_id": "",
                    "fingerprint": fingerprint(category)}
        _plan_item(plan, product, held.get((ITEM, product.product_id)))
        current = {v.external_id for v in product.variants}
        for variant in product.variants:
            _plan_variant(plan, product, variant, held.get((VARIANT, variant.external_id)))
        plan.variant_deletes += [(v.external_id, product.product_id) for v in variants_held.get(product.product_id, [])
                                 if v.external_id not in current]
    plan.categories = list(new_categories.values())
    return plan


def _plan_item(plan: CatalogPlan, product: MappedProduct, held: Entry | None) -> None:
    item = product.item
    digest = fingerprint(item)
    plan.rows[(ITEM, item.external_id)] = {"kind": ITEM, "external_id": item.external_id,
                                           "product_id": product.product_id, "fingerprint": digest,
                                           "published": bool(item.published), "details": product.details}
    if held is None:
        plan.item_creates.append(item)
    elif held.fingerprint != digest:
        plan.item_updates.append(item)
    else:
        plan.unchanged += 1


def _plan_variant(plan: CatalogPlan, product: MappedProduct, variant: CatalogVariant, held: Entry | None) -> None:
    digest = fingerprint(variant)
    plan.rows[(VARIANT, variant.external_id)] = {
        "kind": VARIANT, "external_id": variant.external_id, "product_id": product.product_id,
        "fingerprint": digest, "inventory_quantity": variant.inventory_quantity,
        "published": bool(variant.published)}
    if held is None:
        plan.variant_creates.append(variant)
    elif held.fingerprint != digest:
        plan.variant_updates.append(variant)
    elif held.inventory_quantity != variant.inventory_quantity:
        plan.stock_updates.append(stock_update(variant.external_id, variant.inventory_quantity))
    else:
        plan.unchanged += 1


def stock_update(external_id: str, quantity: int) -> CatalogVariant:
    """A variant update that sets the stock and leaves everything else as it is."""
    return CatalogVariant(external_id=external_id, inventory_quantity=quantity)


def plan_stock(quantities: dict[str, int], held: dict[str, int | None]) -> list[CatalogVariant]:
    """Stock-only updates for the variants (SKU id -> quantity now) whose stock differs from what the
    catalog holds (``held``); SKUs the catalog does not hold are left to the catalog sync."""
    return [stock_update(sku, q) for sku, q in sorted(quantities.items()) if sku in held and held[sku] != q]


def restocks(quantities: dict[str, int], held: dict[str, int | None]) -> list[str]:
    """The SKUs going from out of stock (≤ 0) to in stock: what back-in-stock subscribers wait for."""
    return [sku for sku, q in sorted(quantities.items()) if sku in held and (held[sku] or 0) <= 0 < q]
