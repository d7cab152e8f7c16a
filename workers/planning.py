"""Decide what a sync window sends: pure functions over orders and what we already know.

Given the window's orders and a snapshot of our own state (the ledger's other
orders for these buyers, events Klaviyo already confirmed, records in flight in
other runs, fingerprints of profiles last sent), ``plan_window`` returns the
profile and event items to send. Nothing already confirmed is planned again, so
a re-run over the same window costs no Klaviyo budget.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Iterable

from tiktok.models import Order

from .mapping import LedgerEntry, buyer_profile, buyer_stats, event_key, external_id, is_placed, ledger_entry, order_events
from .payloads import event_payload, payload_hash, profile_payload

PROFILE = "profile"
EVENT = "event"
ORDER = "order"


@dataclass(frozen=True)
class PlannedItem:
    kind: str
    key: str
    payload: dict
    fingerprint: str | None = None


@dataclass(frozen=True)
class KnownState:
    """What the database knows, for the buyers and events of one window."""

    ledger: dict[str, list[LedgerEntry]] = field(default_factory=dict)  # user_id -> entries, every shop of the account
    delivered: frozenset[str] = frozenset()                               # event keys Klaviyo confirmed
    in_flight: frozenset[tuple[str, str]] = frozenset()                   # (kind, key) open in other runs
    #: external_id -> fingerprint of its profile open in another run: left to that run only if ours is the same.
    in_flight_profiles: dict[str, str] = field(default_factory=dict)
    profile_hashes: dict[str, str] = field(default_factory=dict)          # external_id -> fingerprint
    #: (kind, key) -> fingerprints of record failures on file: the same record, unchanged, is not
    #: planned (and failed) again in every later run; it stays listed in the run that failed it.
    reported: dict[tuple[str, str], frozenset[str]] = field(default_factory=dict)

    shop: str = ""                                                        # the window's shop (cipher)
    shop_names: dict[str, str] = field(default_factory=dict)              # cipher -> name, for tiktok_shops
    #: product id -> its catalog item's details (URL, image, categories, brand), for order events
    products: dict[str, dict] = field(default_factory=dict)
    relay_email: str = "identity"                                        # the connection's option

    def already_failing(self, kind: str, key: str, payload: dict) -> bool:
        fingerprints = self.reported.get((kind, key))
        return bool(fingerprints) and payload_hash(payload) in fingerprints


@dataclass(frozen=True)
class Plan:
    orders: list[Order]
    profiles: list[PlannedItem]
    events: list[PlannedItem]
    already_delivered: int
    unchanged_profiles: int
    in_flight_elsewhere: int
    already_failing: int = 0

    @property
    def items(self) -> list[PlannedItem]:
        return [*self.profiles, *self.events]


def latest_by_id(orders: Iterable[Order]) -> list[Order]:
    """One order per id, the one with the latest ``update_time`` (pages can overlap)."""
    latest: dict[str, Order] = {}
    for order in orders:
        current = latest.get(order.id)
        if current is None or order.update_time >= current.update_time:
            latest[order.id] = order
    return sorted(latest.values(), key=lambda o: (o.update_time, o.id))


def merged_entries(user_id: str, window: list[Order], known: list[LedgerEntry], shop: str = "") -> list[LedgerEntry]:
    """The buyer's ledger with this window's orders (of ``shop``) replacing their older versions."""
    by_id = {e.order_id: e for e in known}
    for order in window:
        before = by_id.get(order.id)
        entry = ledger_entry(order, shop)
        if before is not None and getattr(before, "refunds", 0):  # the order's refunds stay with it
            entry = replace(entry, refunded=Decimal(before.refunded), refunds=int(before.refunds))
        by_id[order.id] = entry
    return [e for e in by_id.values() if e.user_id == user_id]


def plan_window(orders: Iterable[Order], known: KnownState, with_events: bool = True,
                with_profiles: bool = True) -> Plan:
    """The events and profiles ``orders`` imply that Klaviyo does not have yet. A streaming run
    plans events page by page (``with_profiles=False``), then each touched buyer's profile once,
    from the ledger, when the read is done (``with_events=False``)."""
    window = latest_by_id(orders)
    by_buyer: dict[str, list[Order]] = {}
    for order in window:
        by_buyer.setdefault(order.user_id, []).append(order)

    events, delivered, elsewhere, failing = [], 0, 0, 0
    for order in window if with_events else ():
        for event in order_events(order, known.products, known.relay_email):
            key = event_key(event)
            if key in known.delivered:
                delivered += 1
            elif (EVENT, key) in known.in_flight:
                elsewhere += 1
            else:
                payload = event_payload(event)
                if known.already_failing(EVENT, key, payload):
                    failing += 1
                else:
                    events.append(PlannedItem(EVENT, key, payload))

    profiles, unchanged = [], 0
    for user_id, buyer_orders in by_buyer.items() if with_profiles else ():
        placed = [o for o in buyer_orders if is_placed(o)]
        if not placed:
            continue
        newest = max(placed, key=lambda o: (o.create_time, o.id))
        entries = merged_entries(user_id, buyer_orders, known.ledger.get(user_id, []), known.shop)
        shops = {known.shop_names.get(e.shop, e.shop) for e in entries if e.placed and e.shop}
        payload = profile_payload(buyer_profile(newest, buyer_stats(entries), shops, known.relay_email))
        fingerprint = payload_hash(payload)
        key = external_id(user_id)
        if known.profile_hashes.get(key) == fingerprint:
            unchanged += 1
        elif (PROFILE, key) in known.in_flight and known.in_flight_profiles.get(key, fingerprint) == fingerprint:
            # The same profile is on its way in another run. A different one there was planned from an
            # older ledger (before this shop's orders were in it, two shops feeding one account): ours goes too.
            elsewhere += 1
        elif known.already_failing(PROFILE, key, payload):
            failing += 1
        else:
            profiles.append(PlannedItem(PROFILE, key, payload, fingerprint))

    return Plan(orders=window, profiles=profiles, events=events, already_delivered=delivered,
                unchanged_profiles=unchanged, in_flight_elsewhere=elsewhere, already_failing=failing)
