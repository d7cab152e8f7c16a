"""The seeded, deterministic order generator.

``generate(...)`` plans every order (buyer, units, prices, shipping, the whole
timeline) from one ``random.Random(seed)``, splits each timeline at ``now``
into history and pending steps, and renders the JSON the API serves. Same
seed and ``now`` → byte-identical orders. Malformed orders are picked with a
separate random stream, so mixing them in leaves the other orders unchanged.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field, replace
from decimal import Decimal

from . import lifecycle, money, people
from .catalogue import Sku, catalogue
from .malformed import KINDS, corrupt
from .render import render

ORDER_ID_BASE = 576_000_000_000_000_000   #: 18-digit ids, increasing with create_time
ID_EPOCH = 1_600_000_000
UNITS_WEIGHTS = [45, 25, 13, 8, 5, 4]     #: 1..6 units per order
PROVIDERS = [("7117858858072016686", "USPS"), ("7117859084333745966", "UPS"), ("6617675021119438849", "FedEx")]
PAYMENT_METHODS = ["CCDC", "CCDC", "CCDC", "PayPal", "Apple Pay", "Google Pay", "Klarna"]


@dataclass
class Unit:
    """One line item: TikTok sends one per unit bought, never a quantity."""

    id: str
    sku: Sku
    original: Decimal
    seller_discount: Decimal
    platform_discount: Decimal
    package: int
    prices: dict = field(default_factory=dict)   #: the four wire money strings, formatted once

    def __post_init__(self):
        self.prices = {"original_price": self.original,
                       "sale_price": self.original - self.seller_discount - self.platform_discount,
                       "seller_discount": self.seller_discount, "platform_discount": self.platform_discount}


@dataclass
class OrderPlan:
    id: str
    create_time: int
    buyer: people.Buyer
    region: people.Region
    currency: str
    units: list[Unit]
    payment: dict
    shipping_type: str
    masked: bool
    package_ids: list[str]
    tracking: list[str]
    provider: tuple[str, str]
    payment_method: str
    buyer_message: str


@dataclass
class OrderRecord:
    """An order's plan plus where its life stands; ``data`` is the JSON currently served."""

    plan: OrderPlan
    history: list[lifecycle.Step]
    pending: list[lifecycle.Step]
    cancel: lifecycle.Cancel | None
    malformation: str | None = None
    data: dict = field(default_factory=dict)

    def rerender(self) -> dict:
        self.data = render(self)
        if self.malformation:
            corrupt(self.data, self.malformation)
        return self.data


def _create_times(rng: random.Random, n: int, days: float, now: int) -> list[int]:
    """Mostly uniform over the window; 4 % in a live-stream burst in the last 3 hours."""
    span = max(int(days * 86400), 60)
    burst = min(3 * 3600, span)
    times = [now - 1 - (rng.randrange(burst) if rng.random() < 0.04 else rng.randrange(span)) for _ in range(n)]
    return sorted(times)


def _units(rng: random.Random, skus, sku_weights, currency: str, first_id: int) -> list[Unit]:
    count = rng.choices(range(1, 7), weights=UNITS_WEIGHTS)[0]
    chosen: list[Sku] = []
    for _ in range(count):
        if chosen and rng.random() < 0.45:
            chosen.append(rng.choice(chosen))          # another unit of a SKU already in the cart
        else:
            chosen.append(rng.choices(skus, cum_weights=sku_weights)[0])
    platform_pct = Decimal(rng.choice([5, 10, 15])) / 100 if rng.random() < 0.15 else Decimal(0)
    pct: dict[str, Decimal] = {}
    units = []
    for k, sku in enumerate(chosen):
        if sku.sku_id not in pct:
            roll = rng.random()
            pct[sku.sku_id] = Decimal(0) if roll < 0.65 else Decimal(rng.choice([10, 15, 20, 25, 30, 40])) / 100
        original = money.shelf_price(sku.price_usd, currency)
        seller = money.q(original * pct[sku.sku_id], currency)
        platform = money.q((original - seller) * platform_pct, currency)
        units.append(Unit(str(first_id + k), sku, original, seller, platform, 0))
    for u in units:
        u.prices = {key: money.fmt(value, currency) for key, value in u.prices.items()}
    distinct = list(dict.fromkeys(u.sku.sku_id for u in units))
    if len(distinct) > 1 and rng.random() < 0.3:       # second SKU ships in its own package
        for u in units:
            u.package = 1 if u.sku.sku_id == distinct[-1] else 0
    return units


def _payment(rng: random.Random, units: list[Unit], currency: str, tax_rate: str) -> dict:
    f = lambda d: money.fmt(d, currency)  # noqa: E731 - a local formatter reads best here
    original_total = sum((u.original for u in units), Decimal(0))
    seller = sum((u.seller_discount for u in units), Decimal(0))
    platform = sum((u.platform_discount for u in units), Decimal(0))
    sub_total = original_total - seller - platform
    ship_orig = money.shelf_price(Decimal("5.99"), currency)
    ship_seller = ship_platform = Decimal(0)
    if original_total >= money.shelf_price(Decimal("35"), currency):
        (ship_seller, ship_platform) = (ship_orig, Decimal(0)) if rng.random() < 0.5 else (Decimal(0), ship_orig)
    elif rng.random() < 0.2:
        ship_platform = money.q(ship_orig / 2, currency)
    shipping = ship_orig - ship_seller - ship_platform
    tax = money.q(sub_total * Decimal(tax_rate), currency)
    return {
        "currency": currency, "sub_total": f(sub_total), "shipping_fee": f(shipping), "tax": f(tax),
        "product_tax": f(tax), "shipping_fee_tax": f(Decimal(0)), "seller_discount": f(seller),
        "platform_discount": f(platform), "original_total_product_price": f(original_total),
        "original_shipping_fee": f(ship_orig), "shipping_fee_seller_discount": f(ship_seller),
        "shipping_fee_platform_discount": f(ship_platform), "shipping_fee_cofunded_discount": f(Decimal(0)),
        "total_amount": f(sub_total + shipping + tax),
    }


def _tracking(rng: random.Random, provider: str) -> str:
    if provider == "UPS":
        return "1Z" + "".join(rng.choice("0123456789ABCDEFGHJKLMNPRSTVWXYZ") for _ in range(16))
    if provider == "FedEx":
        return str(rng.randrange(10**11, 10**12))
    return "9400" + str(rng.randrange(10**17, 10**18))


@dataclass(frozen=True)
class SharedBuyers:
    """Buyers several shops share (same ``user_id`` and relay e-mail), and the share of orders they place.

    Drawn from their own random stream, so a shop's other orders are planned as without them.
    """

    pool: tuple[people.Buyer, ...]
    fraction: float
    seed: str

    def pick(self, rng: random.Random, region: people.Region) -> people.Buyer | None:
        if not self.pool or rng.random() >= self.fraction:
            return None
        buyer = rng.choice(self.pool)
        if buyer.place not in region.places:     # same person, an address in this shop's country
            buyer = replace(buyer, place=region.places[int(buyer.user_id) % len(region.places)])
        return buyer


def generate(n: int, days: float = 30, seed: int | str = 7, now: int | None = None, currency: str = "USD",
             malformed_ratio: float = 0.0, skus=None, shared: SharedBuyers | None = None,
             used_ids: set | None = None) -> list[OrderRecord]:
    """Plan and render ``n`` orders created in the ``days`` before ``now`` (default: the real clock).

    ``skus`` is the shop's shelf (default: the shared catalogue), ``shared`` buyers other shops
    also have, ``used_ids`` the order ids other shops already hold (ids are unique across shops).
    """
    now = int(time.time()) if now is None else int(now)
    currency = currency.upper()
    rng = random.Random(seed)
    shared_rng = random.Random(f"{seed}:shared:{shared.seed}") if shared else None
    region = people.region_for(currency)
    skus = catalogue() if skus is None else skus
    sku_weights, total = [], 0.0
    for i in range(len(skus)):
        total += 1 / (i + 6) ** 0.8
        sku_weights.append(total)
    pool = int(n * 1.2) + 10
    buyers: dict[int, people.Buyer] = {}
    buyer_weights, total = [], 0.0
    for r in range(pool):
        total += 1 / (r + 60)
        buyer_weights.append(total)

    records, used = [], (set() if used_ids is None else used_ids)
    for create_time in _create_times(rng, n, days, now):
        oid = ORDER_ID_BASE + (create_time - ID_EPOCH) * 1_000_000 + rng.randrange(0, 1_000_000, 8)
        while oid in used:
            oid += 8
        used.add(oid)
        b = rng.choices(range(pool), cum_weights=buyer_weights)[0]
        if b not in buyers:
            buyers[b] = people.make_buyer(random.Random(f"{seed}:buyer:{b}"), region, b, with_email=b % 23 != 5)
        buyer = (shared and shared.pick(shared_rng, region)) or buyers[b]
        units = _units(rng, skus, sku_weights, currency, oid + 10**15)
        two_packages = any(u.package for u in units)
        shipping_type = "SELLER" if rng.random() < 0.2 else "TIKTOK"
        masked = shipping_type == "TIKTOK" or rng.random() < 0.4
        provider = rng.choice(PROVIDERS)
        packages = [str(1_153_000_000_000_000_000 + (oid - ORDER_ID_BASE) * 2 + p) for p in range(1 + two_packages)]
        plan = OrderPlan(
            id=str(oid), create_time=create_time, buyer=buyer, region=region, currency=currency, units=units,
            payment=_payment(rng, units, currency, buyer.place.tax), shipping_type=shipping_type, masked=masked,
            package_ids=packages, tracking=[_tracking(rng, provider[1]) for _ in packages], provider=provider,
            payment_method=rng.choice(PAYMENT_METHODS),
            buyer_message=rng.choice(people.BUYER_MESSAGES) if rng.random() < 0.06 else "",
        )
        steps, cancel = lifecycle.plan(rng, create_time, two_packages)
        history = [s for s in steps if s.at < now]
        records.append(OrderRecord(plan, history, [s for s in steps if s.at >= now], cancel))

    _mark_malformed(records, seed, malformed_ratio)
    for record in records:
        record.rerender()
    return records


def _mark_malformed(records: list[OrderRecord], seed: int, ratio: float) -> None:
    """Pick ``round(n * ratio)`` orders (at least one if ratio > 0) and give each a defect kind in turn."""
    if ratio <= 0 or not records:
        return
    count = min(len(records), max(1, round(len(records) * ratio)))
    picked = random.Random(f"{seed}:malformed").sample(range(len(records)), count)
    for k, index in enumerate(picked):
        records[index].malformation = KINDS[k % len(KINDS)]
        records[index].pending = []      # junk does not move along its lifecycle


def generate_orders(n: int, days: float = 30, seed: int = 7, now: int | None = None, currency: str = "USD",
                    malformed_ratio: float = 0.0) -> list[dict]:
    """The raw order dicts a stand-in with these settings would serve, oldest first."""
    return [r.data for r in generate(n, days, seed, now, currency, malformed_ratio)]
