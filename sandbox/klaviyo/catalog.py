"""One account's catalog: items, variants, categories, back-in-stock subscriptions and restocks.

What is simulated (the 2026-07-15 spec unless marked [INF], i.e. our choice where
Klaviyo documents nothing; see shared/reference/commerce-apis.md §4 and its open questions):

* Ids are ``$custom:::$default:::<external_id>``, so one external id is one
  resource: creating it again is a 409 ``conflict`` [INF: the live answer is undocumented].
* A variant belongs to an item that exists when it is created, and never moves.
* Deleting an item deletes its variants [INF: Klaviyo's commercetools plugin
  relies on it]; deleting a category unlinks its items, which stay.
* PATCH leaves omitted attributes alone; ``null`` clears an optional attribute
  and leaves a required one (title, description, url, sku, price,
  inventory_quantity) as it is [INF].
* A variant whose ``inventory_quantity`` goes from ≤ 0 to > 0, by PATCH or bulk
  update, is a **restock**: it is recorded with the back-in-stock subscriptions
  waiting on the variant, which are then released [INF: what releases Klaviyo's
  subscribers is undocumented; this is the transition ksync must produce].

Callers hold the account's ``store.lock``; errors are ``ApiError`` with a JSON
pointer as for a single-resource request, which bulk jobs re-root at their row.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from .errors import ApiError, invalid, not_found

PREFIX = "$custom:::$default:::"
#: Attributes a PATCH cannot clear with null (they are required at creation).
REQUIRED_ITEM = ("title", "description", "url")
REQUIRED_VARIANT = ("title", "description", "sku", "price", "inventory_quantity", "url")


def compound_id(external_id: str) -> str:
    return PREFIX + external_id


def conflict(detail: str) -> ApiError:
    return ApiError(409, "conflict", "Conflict.", detail, pointer="/data/attributes/external_id")


@dataclass
class Item:
    id: str
    seq: int
    external_id: str
    created: float
    updated: float
    attributes: dict
    category_ids: list = field(default_factory=list)


@dataclass
class Variant:
    id: str
    seq: int
    external_id: str
    item_id: str
    created: float
    updated: float
    attributes: dict


@dataclass
class Category:
    id: str
    seq: int
    external_id: str
    name: str
    created: float
    updated: float


@dataclass
class Subscription:
    """A back-in-stock subscription: a profile waiting for a variant on some channels."""

    seq: int
    profile_id: str
    variant_id: str
    channels: list
    created: float
    released: float | None = None


@dataclass
class Restock:
    """A variant's inventory went from ``before`` (≤ 0) to ``after`` (> 0) at ``at``."""

    variant_id: str
    item_id: str
    before: float
    after: float
    at: float
    released_profiles: list


class Catalog:
    def __init__(self):
        self.clear()

    def clear(self) -> None:
        self._seq = itertools.count(1)
        self.items: dict[str, Item] = {}
        self.variants: dict[str, Variant] = {}
        self.categories: dict[str, Category] = {}
        self.item_variants: dict[str, dict] = {}     # item id -> {variant id: None}, in creation order
        self.category_items: dict[str, dict] = {}    # category id -> {item id: None}
        self.subscriptions: list[Subscription] = []
        self.restocks: list[Restock] = []
        self.jobs: dict[str, object] = {}            # catalog bulk jobs (catalog_jobs.py)
        self.pending: list[str] = []                 # job ids not yet applied: the jobs "in progress"

    def next_seq(self) -> int:
        return next(self._seq)

    # -- lookups --------------------------------------------------------------------------------

    def item(self, item_id: str) -> Item:
        found = self.items.get(item_id)
        if found is None:
            raise not_found(f"A catalog item with id {item_id} does not exist.")
        return found

    def variant(self, variant_id: str) -> Variant:
        found = self.variants.get(variant_id)
        if found is None:
            raise not_found(f"A catalog variant with id {variant_id} does not exist.")
        return found

    def category(self, category_id: str) -> Category:
        found = self.categories.get(category_id)
        if found is None:
            raise not_found(f"A catalog category with id {category_id} does not exist.")
        return found

    def _known(self, ids: list[str], table: dict, kind: str, pointer: str) -> list[str]:
        for i, rid in enumerate(ids):
            if rid not in table:
                raise invalid(f"A catalog {kind} with id {rid} does not exist.", f"{pointer}/{i}/id")
        return list(dict.fromkeys(ids))

    # -- items ----------------------------------------------------------------------------------

    def create_item(self, external_id: str, attributes: dict, category_ids: list[str], now: float) -> Item:
        item_id = compound_id(external_id)
        if item_id in self.items:
            raise conflict(f"A catalog item with id {item_id} already exists.")
        category_ids = self._known(category_ids, self.categories, "category", "/data/relationships/categories/data")
        item = Item(item_id, self.next_seq(), external_id, now, now, {"published": True, **attributes})
        self.items[item_id] = item
        self.item_variants[item_id] = {}
        self._link(item, category_ids)
        return item

    def update_item(self, item_id: str, attributes: dict, category_ids: list[str] | None, now: float) -> Item:
        item = self.item(item_id)
        if category_ids is not None:
            category_ids = self._known(category_ids, self.categories, "category", "/data/relationships/categories/data")
        _patch(item.attributes, attributes, REQUIRED_ITEM)
        if category_ids is not None:
            self._link(item, category_ids)
        item.updated = now
        return item

    def delete_item(self, item_id: str) -> None:
        item = self.item(item_id)
        for variant_id in list(self.item_variants.pop(item_id, {})):
            self.variants.pop(variant_id, None)
        self._link(item, [])
        del self.items[item_id]

    def _link(self, item: Item, category_ids: list[str]) -> None:
        for old in item.category_ids:
            self.category_items.get(old, {}).pop(item.id, None)
        item.category_ids = list(category_ids)
        for new in category_ids:
            self.category_items.setdefault(new, {})[item.id] = None

    # -- variants -------------------------------------------------------------------------------

    def create_variant(self, external_id: str, item_id: str, attributes: dict, now: float) -> Variant:
        variant_id = compound_id(external_id)
        if variant_id in self.variants:
            raise conflict(f"A catalog variant with id {variant_id} already exists.")
        if item_id not in self.items:
            raise invalid(f"A catalog item with id {item_id} does not exist.", "/data/relationships/item/data/id")
        variant = Variant(variant_id, self.next_seq(), external_id, item_id, now, now,
                          {"published": True, "inventory_policy": 0, **attributes})
        self.variants[variant_id] = variant
        self.item_variants[item_id][variant_id] = None
        return variant

    def update_variant(self, variant_id: str, attributes: dict, now: float) -> Variant:
        variant = self.variant(variant_id)
        before = variant.attributes.get("inventory_quantity")
        _patch(variant.attributes, attributes, REQUIRED_VARIANT)
        after = variant.attributes.get("inventory_quantity")
        if before is not None and after is not None and before <= 0 < after:
            self._restock(variant, before, after, now)
        variant.updated = now
        return variant

    def delete_variant(self, variant_id: str) -> None:
        variant = self.variant(variant_id)
        self.item_variants.get(variant.item_id, {}).pop(variant_id, None)
        del self.variants[variant_id]

    # -- categories -----------------------------------------------------------------------------

    def create_category(self, external_id: str, name: str, item_ids: list[str], now: float) -> Category:
        category_id = compound_id(external_id)
        if category_id in self.categories:
            raise conflict(f"A catalog category with id {category_id} already exists.")
        item_ids = self._known(item_ids, self.items, "item", "/data/relationships/items/data")
        category = Category(category_id, self.next_seq(), external_id, name, now, now)
        self.categories[category_id] = category
        self.category_items[category_id] = {}
        for item_id in item_ids:
            self._link(self.items[item_id], [*self.items[item_id].category_ids, category_id])
        return category

    def update_category(self, category_id: str, name: str | None, item_ids: list[str] | None, now: float) -> Category:
        category = self.category(category_id)
        if item_ids is not None:
            item_ids = self._known(item_ids, self.items, "item", "/data/relationships/items/data")
            for item_id in list(self.category_items.get(category_id, {})):
                item = self.items[item_id]
                self._link(item, [c for c in item.category_ids if c != category_id])
            for item_id in item_ids:
                self._link(self.items[item_id], [*self.items[item_id].category_ids, category_id])
        if name is not None:
            category.name = name
        category.updated = now
        return category

    def delete_category(self, category_id: str) -> None:
        self.category(category_id)
        for item_id in list(self.category_items.pop(category_id, {})):
            item = self.items[item_id]
            item.category_ids = [c for c in item.category_ids if c != category_id]
        del self.categories[category_id]

    # -- back in stock --------------------------------------------------------------------------

    def subscribe(self, profile_id: str, variant_id: str, channels: list[str], now: float) -> Subscription:
        """A profile waits for a variant; subscribing again while waiting only adds channels."""
        for waiting in self.subscriptions:
            if (waiting.profile_id, waiting.variant_id, waiting.released) == (profile_id, variant_id, None):
                waiting.channels = sorted(set(waiting.channels) | set(channels))
                return waiting
        subscription = Subscription(self.next_seq(), profile_id, variant_id, sorted(set(channels)), now)
        self.subscriptions.append(subscription)
        return subscription

    def _restock(self, variant: Variant, before: float, after: float, now: float) -> None:
        released = []
        for waiting in self.subscriptions:
            if waiting.variant_id == variant.id and waiting.released is None:
                waiting.released = now
                released.append(waiting.profile_id)
        self.restocks.append(Restock(variant.id, variant.item_id, before, after, now, released))


def _patch(current: dict, changes: dict, required: tuple) -> None:
    for name, value in changes.items():
        if value is None and name in required:
            continue
        current[name] = value
