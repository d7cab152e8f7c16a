"""One shop of the stand-in: its identity, orders, returns, cancellations and products.

``ShopSpec`` describes a shop to build; ``StandInShop`` is the built shop, the
handle ``TikTokStandIn.shop(cipher)`` returns, with the per-shop controls
(``set_status``, ``create_return``, ``set_price``, ...). Every change that
TikTok announces is passed to the stand-in's ``notify`` (webhooks).

The first shop keeps exactly the identity, orders and tokens a single-shop
stand-in had (same seed streams), so existing callers see no difference.
"""

from __future__ import annotations

import random
import string
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from . import lifecycle
from .aftersales import AfterSales, render_cancellation, render_return
from .catalogue import catalogue
from .orders import SharedBuyers, generate
from .people import region_for
from .products import Catalog
from .store import OrderStore
from .webhooks import CANCELLATION_STATUS_CHANGE, ORDER_STATUS_CHANGE, RETURN_STATUS_CHANGE

if TYPE_CHECKING:  # pragma: no cover
    from .standin import TikTokStandIn


@dataclass(frozen=True)
class ShopSpec:
    """A shop to build. ``None`` fields take the stand-in's arguments (``orders``, ``currency``, ...).

    Shops with the same ``seller`` key are one seller's, covered by one token pair (a seller
    with shops in several regions is cross-border); by default each shop has its own seller.
    """

    name: str | None = None
    currency: str | None = None
    orders: int | None = None
    seller: str | None = None
    malformed_ratio: float | None = None


class StandInShop:
    """One built shop. ``orders()`` is the API's ground truth; the other methods change it."""

    def __init__(self, standin: "TikTokStandIn", index: int, spec: ShopSpec, seller_key: str,
                 shared: SharedBuyers | None, used_ids: set):
        self.standin, self.index, self.seller_key = standin, index, seller_key
        seed = standin.seed if index == 0 else f"{standin.seed}:{index}"
        self.seed = seed
        self.currency = (spec.currency or standin.currency).upper()
        self.order_count = standin.order_count if spec.orders is None else spec.orders
        ratio = standin.malformed_ratio if spec.malformed_ratio is None else spec.malformed_ratio
        rng = random.Random(f"{standin.seed}:shop" if index == 0 else f"{standin.seed}:shop:{index}")
        self.id = str(7_495_000_000_000_000_000 + rng.randrange(10**15))
        self.cipher = "ROW_" + "".join(rng.choices(string.ascii_letters + string.digits, k=27))
        self.open_id = "".join(rng.choices(string.ascii_letters + string.digits + "-_", k=43))
        self.region = region_for(self.currency).code
        self.name = spec.name or ("Ksync Demo Shop" if index == 0 else f"Ksync Demo Shop {index + 1}")
        self.code = self.region + "LC" + "".join(rng.choices(string.ascii_uppercase + string.digits, k=8))
        self.seller_type = "LOCAL"
        skus = catalogue(index)
        started = time.perf_counter()
        records = generate(self.order_count, standin.days, seed, standin.generated_at, self.currency, ratio,
                           skus=skus, shared=shared, used_ids=used_ids)
        self.generation_seconds = time.perf_counter() - started
        self.store = OrderStore(records, standin.generated_at)
        self.malformed = {r.plan.id for r in records if r.malformation}
        self.aftersales = AfterSales(records, str(seed), standin.generated_at)
        self.catalog = Catalog(skus, self.currency, str(seed), standin.generated_at, standin.days, self.region)

    def info(self) -> dict:
        """The shop as ``/authorization/202309/shops`` lists it."""
        return {"id": self.id, "name": self.name, "region": self.region, "seller_type": self.seller_type,
                "cipher": self.cipher, "code": self.code}

    def __repr__(self) -> str:
        return f"StandInShop(id={self.id!r}, cipher={self.cipher!r}, region={self.region!r}, seller={self.seller_key!r})"

    # -- orders -----------------------------------------------------------------------------------------
    def orders(self) -> list[dict]:
        """Every order exactly as the API serves it now (treat as read-only)."""
        return self.store.all()

    def malformed_ids(self) -> set[str]:
        return set(self.malformed)

    def _announce(self, record, step) -> None:
        self.standin.notify(self, ORDER_STATUS_CHANGE,
                            {"is_on_hold_order": step.status in (lifecycle.UNPAID, lifecycle.ON_HOLD),
                             "order_id": record.plan.id, "order_status": step.status, "update_time": step.at},
                            subject=record.plan.id)

    def advance(self, seconds: float) -> list[str]:
        """Let ``seconds`` of lifecycle pass; due transitions happen now. Returns the ids that moved."""
        moved = self.store.advance(seconds, int(time.time()))
        for record, step in moved:
            self._announce(record, step)
            self._settle_if_cancelled(record, step)
        return list(dict.fromkeys(record.plan.id for record, _ in moved))

    def set_status(self, order_id: str, status: str, cancel_reason: str | None = None,
                   cancellation_initiator: str = "SELLER") -> dict:
        """Force a transition (``update_time`` = now); ``KeyError`` for an unknown id. Cancelling a
        paid order also settles a cancellation record (type 11 webhook)."""
        record, step = self.store.set_status(order_id, status, int(time.time()), cancel_reason,
                                             cancellation_initiator)
        self._announce(record, step)
        self._settle_if_cancelled(record, step)
        return record.data

    def _settle_if_cancelled(self, record, step) -> None:
        """A paid order that is cancelled gets its settled cancellation record (and a type 11 notice)."""
        if step.status == lifecycle.CANCELLED and lifecycle.paid_at(record.history) is not None \
                and not any(c.order is record for c in self.aftersales.cancellations.values()
                            if c.status != "CANCELLATION_REQUEST_CANCELLED"):
            self._cancelled(self.aftersales.add_cancellation(record, step.at, settled=True))

    def step_order(self, order_id: str) -> tuple[str, int] | None:
        """Apply the order's next planned step now (the churn mode); None when it has none left."""
        moved = self.store.step(order_id, int(time.time()))
        if moved is None:
            return None
        record, step = moved
        self._announce(record, step)
        self._settle_if_cancelled(record, step)
        return step.status, step.at

    # -- returns and cancellations ----------------------------------------------------------------------
    def returns(self) -> list[dict]:
        return self.aftersales.all("return")

    def cancellations(self) -> list[dict]:
        return self.aftersales.all("cancel")

    def _returned(self, r) -> dict:
        data = render_return(r)
        self.standin.notify(self, RETURN_STATUS_CHANGE,
                            {"order_id": data["order_id"], "return_role": data["role"],
                             "return_type": data["return_type"], "return_status": data["return_status"],
                             "return_id": data["return_id"], "create_time": data["create_time"],
                             "update_time": data["update_time"]}, subject=data["return_id"])
        return data

    def _cancelled(self, c) -> dict:
        data = render_cancellation(c)
        self.standin.notify(self, CANCELLATION_STATUS_CHANGE,
                            {"order_id": data["order_id"], "cancellations_role": data["role"],
                             "cancel_status": data["cancel_status"], "cancel_id": data["cancel_id"],
                             "create_time": data["create_time"]}, subject=data["cancel_id"])
        return data

    def create_return(self, order_id: str, return_type: str = "RETURN_AND_REFUND", sku_ids: list[str] | None = None,
                      reason: str | None = None) -> dict:
        """A buyer asks to return (paid orders only: ``ValueError`` otherwise); type 12 webhook."""
        record = self.store.records[order_id]
        return self._returned(self.aftersales.create_return(record, int(time.time()), return_type, sku_ids, reason))

    def set_return_status(self, return_id: str, status: str, partial_refund_share: str | None = None) -> dict:
        """Move a return to ``status`` (any of TikTok's values); type 12 webhook."""
        return self._returned(self.aftersales.set_return_status(return_id, status, int(time.time()),
                                                                partial_refund_share))

    def complete_refund(self, return_id: str) -> dict:
        """The refund is paid: ``RETURN_OR_REFUND_REQUEST_COMPLETE`` (via ``..._SUCCESS`` if not yet approved)."""
        current = self.aftersales.returns[return_id]
        if current.status != "RETURN_OR_REFUND_REQUEST_SUCCESS":
            self.set_return_status(return_id, "RETURN_OR_REFUND_REQUEST_SUCCESS")
        return self.set_return_status(return_id, "RETURN_OR_REFUND_REQUEST_COMPLETE")

    def request_cancellation(self, order_id: str) -> dict:
        """The buyer asks to cancel a paid, unshipped order: a PENDING ``BUYER_CANCEL``; type 11 webhook."""
        record = self.store.records[order_id]
        if record.history[-1].status not in (lifecycle.ON_HOLD, lifecycle.AWAITING_SHIPMENT):
            raise ValueError(f"order {order_id} is {record.history[-1].status}: only ON_HOLD or AWAITING_SHIPMENT "
                             "orders take a cancellation request")
        return self._cancelled(self.aftersales.add_cancellation(record, int(time.time()), settled=False,
                                                                role="BUYER"))

    def set_cancellation_status(self, cancel_id: str, status: str) -> dict:
        """Move a cancellation on; at ``CANCELLATION_REQUEST_COMPLETE`` the order becomes CANCELLED."""
        c = self.aftersales.set_cancellation_status(cancel_id, status, int(time.time()))
        data = self._cancelled(c)
        if status == "CANCELLATION_REQUEST_COMPLETE" and c.order.history[-1].status != lifecycle.CANCELLED:
            record, step = self.store.set_status(c.order.plan.id, lifecycle.CANCELLED, int(time.time()),
                                                 c.reason[1], "BUYER")
            self._announce(record, step)
        return data

    # -- products ---------------------------------------------------------------------------------------
    def products(self) -> list[dict]:
        """Every product in detail (deleted ones too), as ground truth."""
        return [self.catalog.detail(p, any_status=True) for p in list(self.catalog.products)]

    def set_price(self, sku_id: str, price: str) -> dict:
        return self.catalog.set_price(sku_id, price, int(time.time()))

    def set_product_status(self, product_id: str, status: str) -> dict:
        """``SELLER_DEACTIVATED`` to deactivate, ``DELETED`` to delete, ``ACTIVATE`` to bring back."""
        return self.catalog.set_status(product_id, status, int(time.time()))

    def set_inventory(self, sku_id: str, quantity: int, warehouse_id: str | None = None) -> dict:
        return self.catalog.set_inventory(sku_id, quantity, warehouse_id)

    def add_products(self, count: int, variants: int = 2, status: str = "ACTIVATE") -> list[dict]:
        return self.catalog.add_products(count, int(time.time()), variants, status)

    def remove_sku(self, sku_id: str) -> dict:
        return self.catalog.remove_sku(sku_id, int(time.time()))
