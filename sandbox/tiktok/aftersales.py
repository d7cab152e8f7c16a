"""Returns and cancellations of one shop, consistent with its orders (Return & Refund API 202309).

Returns exist only for paid, not cancelled orders; cancellations only for orders
cancelled after payment (an unpaid order has nothing to refund). Each record
keeps its status history; ``update_time`` is the last step's time. Amounts come
from the order's own line prices: ``refund_subtotal`` is the returned units'
sale prices, ``refund_tax`` their share of the order's tax, ``refund_shipping_fee``
the shipping fee when every unit goes back. One row per returned unit, no
quantity field, as TikTok does.

Generated history shows each kind once when the shop has enough delivered
orders (a full return walk PENDING → AWAITING_BUYER_SHIP → BUYER_SHIPPED_ITEM →
SUCCESS → COMPLETE, a refund-only return, a seller-proposed partial refund, a
rejected request, a replacement, a second return on one order) and then about
6 % of the other delivered orders at random. Only the controls move them later.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field
from decimal import Decimal

from . import lifecycle, money
from .orders import OrderRecord

PENDING, SUCCESS, COMPLETE = ("RETURN_OR_REFUND_REQUEST_PENDING", "RETURN_OR_REFUND_REQUEST_SUCCESS",
                              "RETURN_OR_REFUND_REQUEST_COMPLETE")
RETURN_STATUSES = (PENDING, "AWAITING_BUYER_RESPONSE", "AWAITING_BUYER_SHIP", "BUYER_SHIPPED_ITEM",
                   "REFUND_OR_RETURN_REQUEST_REJECT", "REJECT_RECEIVE_PACKAGE", SUCCESS, COMPLETE,
                   "RETURN_OR_REFUND_REQUEST_CANCEL", "REPLACEMENT_REQUEST_PENDING", "REPLACEMENT_REQUEST_REJECT",
                   "REPLACEMENT_REQUEST_CANCEL", "REPLACEMENT_REQUEST_COMPLETE", "REPLACEMENT_REQUEST_REFUND_SUCCESS")
RETURN_TYPES = ("REFUND", "RETURN_AND_REFUND", "REPLACEMENT")
CANCEL_STATUSES = ("CANCELLATION_REQUEST_PENDING", "CANCELLATION_REQUEST_SUCCESS", "CANCELLATION_REQUEST_COMPLETE",
                   "CANCELLATION_REQUEST_CANCELLED")
#: The showcase, in order: (return type, status path, partial refund share).
SHOWCASE = [
    ("RETURN_AND_REFUND", [PENDING, "AWAITING_BUYER_SHIP", "BUYER_SHIPPED_ITEM", SUCCESS, COMPLETE], None),
    ("REFUND", [PENDING, SUCCESS, COMPLETE], None),
    ("REFUND", [PENDING, "AWAITING_BUYER_RESPONSE", SUCCESS, COMPLETE], Decimal("0.5")),
    ("RETURN_AND_REFUND", [PENDING, "REFUND_OR_RETURN_REQUEST_REJECT"], None),
    ("REPLACEMENT", ["REPLACEMENT_REQUEST_PENDING", "REPLACEMENT_REQUEST_COMPLETE"], None),
]
REASONS = [("ecom_order_delivered_refund_and_return_reason_damaged", "Damaged product"),
           ("ecom_order_delivered_refund_and_return_reason_wrong_item", "Wrong item delivered"),
           ("ecom_order_delivered_refund_and_return_reason_not_as_described", "Item not as described"),
           ("ecom_order_delivered_refund_and_return_reason_no_longer_needed", "No longer needed")]
RETURN_ID_BASE = 4_035_000_000_000_000_000
CANCEL_ID_BASE = 4_036_000_000_000_000_000


@dataclass
class AfterSale:
    """One return or cancellation: the order units it covers and its status history [(status, at)]."""

    kind: str                                    #: "return" or "cancel"
    id: str
    order: OrderRecord
    type: str
    role: str
    reason: tuple[str, str]
    units: list
    history: list[tuple[str, int]]
    partial_share: Decimal | None = None
    extra: dict = field(default_factory=dict)

    @property
    def status(self) -> str:
        return self.history[-1][0]

    @property
    def create_time(self) -> int:
        return self.history[0][1]

    @property
    def update_time(self) -> int:
        return self.history[-1][1]


def _amounts(record: AfterSale, units) -> dict:
    plan = record.order.plan
    cur = plan.currency
    sub_total = Decimal(plan.payment["sub_total"]) or Decimal(1)
    tax = Decimal(plan.payment["tax"])
    subtotal = sum((Decimal(u.prices["sale_price"]) for u in units), Decimal(0))
    if record.type == "REPLACEMENT":
        subtotal, tax_part, shipping = Decimal(0), Decimal(0), Decimal(0)
    elif record.partial_share is not None:
        subtotal, tax_part, shipping = money.q(subtotal * record.partial_share, cur), Decimal(0), Decimal(0)
    else:
        tax_part = money.q(tax * subtotal / sub_total, cur)
        whole_order = units is record.units and len(units) == len(plan.units)   # shipping goes back too
        shipping = Decimal(plan.payment["shipping_fee"]) if whole_order else Decimal(0)
    f = lambda d: money.fmt(d, cur)  # noqa: E731
    return {"currency": cur, "refund_total": f(subtotal + tax_part + shipping), "refund_subtotal": f(subtotal),
            "refund_shipping_fee": f(shipping), "refund_tax": f(tax_part), "retail_delivery_fee": f(Decimal(0)),
            "buyer_service_fee": f(Decimal(0))}


def _lines(record: AfterSale, prefix: str) -> list[dict]:
    lines = []
    for k, unit in enumerate(record.units):
        sku = unit.sku
        lines.append({f"{prefix}_line_item_id": f"{record.id}{k:02d}", "order_line_item_id": unit.id,
                      "sku_id": sku.sku_id, "sku_name": sku.sku_name, "seller_sku": sku.seller_sku,
                      "product_name": sku.product_name,
                      "product_image": {"url": sku.sku_image, "width": 800, "height": 800},
                      "refund_amount": _amounts(record, [unit])})
    return lines


def render_return(r: AfterSale) -> dict:
    data = {"return_id": r.id, "order_id": r.order.plan.id, "return_type": r.type, "return_status": r.status,
            "role": r.role, "return_reason": r.reason[0], "return_reason_text": r.reason[1],
            "create_time": r.create_time, "update_time": r.update_time, "refund_amount": _amounts(r, r.units),
            "return_line_items": _lines(r, "return"), "shipment_type": "PLATFORM",
            "can_buyer_keep_item": r.type == "REFUND", "is_combined_return": False}
    if r.partial_share is not None:
        data["seller_proposed_return_type"] = "PARTIAL_REFUND"
        data["partial_refund"] = {"amount": data["refund_amount"]["refund_total"], "currency": r.order.plan.currency}
        data["buyer_rejected_partial_refund"] = False
    if r.type == "RETURN_AND_REFUND" and any(s == "BUYER_SHIPPED_ITEM" for s, _ in r.history):
        data["return_tracking_number"] = "9400" + r.id[-18:]
        data["return_provider_name"] = "USPS"
    return data


def render_cancellation(c: AfterSale) -> dict:
    return {"cancel_id": c.id, "order_id": c.order.plan.id, "cancel_type": c.type, "cancel_status": c.status,
            "role": c.role, "cancel_reason": c.reason[0], "cancel_reason_text": c.reason[1],
            "create_time": c.create_time, "update_time": c.update_time, "refund_amount": _amounts(c, c.units),
            "cancel_line_items": _lines(c, "cancel")}


def _paid_and_open(record: OrderRecord) -> bool:
    return lifecycle.paid_at(record.history) is not None and record.history[-1].status != lifecycle.CANCELLED \
        and not record.malformation


class AfterSales:
    """Returns and cancellations of one shop; thread-safe."""

    def __init__(self, records: list[OrderRecord], shop_seed: str, now: int):
        self.lock = threading.RLock()
        self.returns: dict[str, AfterSale] = {}
        self.cancellations: dict[str, AfterSale] = {}
        self._counts: dict[str, int] = {}
        rng = random.Random(f"{shop_seed}:aftersales")
        delivered = [r for r in records if _paid_and_open(r) and
                     lifecycle.first_at(r.history, lifecycle.DELIVERED, lifecycle.COMPLETED) is not None]
        multi = next((r for r in delivered if len(r.plan.units) > 1), None)
        if multi is not None:                    # the full walk goes first, on an order it half returns
            delivered.remove(multi)
            delivered.insert(0, multi)
        showcase = list(SHOWCASE)
        for record in delivered:
            first = not self.returns
            if showcase:
                kind, path, share = showcase.pop(0)
            elif rng.random() < 0.06:
                kind = rng.choice(RETURN_TYPES[:2] if rng.random() < 0.9 else RETURN_TYPES[2:])
                path = [PENDING, SUCCESS, COMPLETE] if kind == "REFUND" else SHOWCASE[0][1]
                if kind == "REPLACEMENT":
                    path = SHOWCASE[4][1]
                roll = rng.random()
                path = path[:1] + ["RETURN_OR_REFUND_REQUEST_CANCEL"] if roll < 0.08 and kind != "REPLACEMENT" else \
                    path[:2] if roll < 0.15 else path
                share = None
            else:
                continue
            delivered_at = lifecycle.first_at(record.history, lifecycle.DELIVERED, lifecycle.COMPLETED)
            units = record.plan.units if rng.random() < 0.5 else record.plan.units[:max(1, len(record.plan.units) // 2)]
            if first:
                units = record.plan.units[:1]
            at, steps = delivered_at + rng.randint(3600, 4 * 86400), []
            for status in path:
                if at >= now:
                    break
                steps.append((status, at))
                at += rng.randint(1800, 2 * 86400)
            if steps:
                self._add_return(record, kind, "BUYER", rng.choice(REASONS), list(units), steps, share)
                if first and len(record.plan.units) > len(units):
                    rest = list(record.plan.units[len(units):])  # the same order's second return
                    second_at = steps[-1][1] + 3600
                    if second_at < now:
                        self._add_return(record, "REFUND", "BUYER", REASONS[3], rest, [(PENDING, second_at)], None)
        for record in records:
            if record.history[-1].status == lifecycle.CANCELLED and lifecycle.paid_at(record.history) is not None \
                    and not record.malformation:
                self.add_cancellation(record, record.history[-1].at, settled=True)

    def _next_id(self, base: int, order_id: str) -> str:
        k = self._counts.get(f"{base}:{order_id}", 0)
        self._counts[f"{base}:{order_id}"] = k + 1
        return str(base + (int(order_id) % 10**15) * 4 + k)

    def _add_return(self, order, kind, role, reason, units, steps, share) -> AfterSale:
        r = AfterSale("return", self._next_id(RETURN_ID_BASE, order.plan.id), order, kind, role, reason, units,
                      steps, share)
        self.returns[r.id] = r
        return r

    # -- controls ---------------------------------------------------------------------------------------
    def create_return(self, order: OrderRecord, now: int, return_type: str = "RETURN_AND_REFUND",
                      sku_ids: list[str] | None = None, reason: str | None = None) -> AfterSale:
        """A buyer's new request, PENDING (REPLACEMENT_REQUEST_PENDING for a replacement); paid orders only."""
        if return_type not in RETURN_TYPES:
            raise ValueError(f"unknown return type {return_type!r}")
        if not _paid_and_open(order):
            raise ValueError(f"order {order.plan.id} is not paid (or is cancelled): no return possible")
        units = [u for u in order.plan.units if sku_ids is None or u.sku.sku_id in sku_ids]
        if not units:
            raise ValueError("none of the order's line items has those sku_ids")
        first = "REPLACEMENT_REQUEST_PENDING" if return_type == "REPLACEMENT" else PENDING
        text = reason or REASONS[0][1]
        with self.lock:
            return self._add_return(order, return_type, "BUYER", (REASONS[0][0], text), units, [(first, now)], None)

    def set_return_status(self, return_id: str, status: str, now: int, partial_share: str | None = None) -> AfterSale:
        """Move a return on; ``partial_share`` (e.g. "0.5") turns it into a seller-proposed partial refund."""
        if status not in RETURN_STATUSES:
            raise ValueError(f"unknown return status {status!r}")
        with self.lock:
            r = self.returns[return_id]
            if partial_share is not None:
                r.partial_share = Decimal(str(partial_share))
            r.history.append((status, max(now, r.update_time)))
            return r

    def add_cancellation(self, order: OrderRecord, at: int, settled: bool, role: str | None = None) -> AfterSale:
        """A cancellation of a paid order: settled (COMPLETE, refund issued) or a buyer's PENDING request."""
        cancel = order.cancel
        role = role or (cancel.initiator if cancel else "BUYER")
        kind = "BUYER_CANCEL" if role == "BUYER" else "CANCEL"
        reason = cancel.reason if cancel else "No longer needed"
        steps = [("CANCELLATION_REQUEST_COMPLETE", at)] if settled else [("CANCELLATION_REQUEST_PENDING", at)]
        if settled and kind == "BUYER_CANCEL":
            steps.insert(0, ("CANCELLATION_REQUEST_PENDING", max(order.history[0].at, at - 1800)))
        with self.lock:
            c = AfterSale("cancel", self._next_id(CANCEL_ID_BASE, order.plan.id), order, kind, role,
                          ("ecom_order_cancel_reason_" + reason.lower().replace(" ", "_")[:40], reason),
                          list(order.plan.units), steps)
            self.cancellations[c.id] = c
            return c

    def set_cancellation_status(self, cancel_id: str, status: str, now: int) -> AfterSale:
        if status not in CANCEL_STATUSES:
            raise ValueError(f"unknown cancellation status {status!r}")
        with self.lock:
            c = self.cancellations[cancel_id]
            c.history.append((status, max(now, c.update_time)))
            return c

    # -- reads ------------------------------------------------------------------------------------------
    def rows(self, kind: str, filters: dict, sort_field: str) -> list[tuple[int, str, dict]]:
        """(sort value, id, rendered record) of the records matching the search body; ``[ge, lt)`` bounds."""
        with self.lock:
            items = self.returns if kind == "return" else self.cancellations
            render = render_return if kind == "return" else render_cancellation
            ids = filters.get("return_ids" if kind == "return" else "cancel_ids")
            types = filters.get("return_types" if kind == "return" else "cancel_types")
            statuses = filters.get("return_status" if kind == "return" else "cancel_status")
            if statuses and kind == "cancel":
                statuses = [("CANCELLATION_REQUEST_CANCELLED" if s == "CANCELLATION_REQUEST_CANCEL" else s)
                            for s in statuses]
            rows = []
            for item in items.values():
                if (ids and item.id not in ids) or (types and item.type not in types) or \
                        (statuses and item.status not in statuses) or \
                        (filters.get("order_ids") and item.order.plan.id not in filters["order_ids"]) or \
                        (filters.get("buyer_user_ids") and item.order.plan.buyer.user_id not in filters["buyer_user_ids"]):
                    continue
                if not _in(item.create_time, filters, "create_time") or not _in(item.update_time, filters, "update_time"):
                    continue
                value = item.create_time if sort_field == "create_time" else item.update_time
                rows.append((value, item.id, render(item)))
            return sorted(rows, key=lambda r: (r[0], r[1]))

    def all(self, kind: str) -> list[dict]:
        return [row[2] for row in self.rows(kind, {}, "create_time")]


def _in(value: int, filters: dict, name: str) -> bool:
    ge, lt = filters.get(f"{name}_ge"), filters.get(f"{name}_lt")
    return (ge is None or value >= ge) and (lt is None or value < lt)
