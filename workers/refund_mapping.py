"""TikTok returns -> Klaviyo's standard ``Refunded Order`` event. Pure functions: no Celery, HTTP or SQL.

These rules are a contract (``tests/workers/test_refund_mapping.py`` pins each one):

- Only money back is a refund: a return is refunded once it is ``RETURN_OR_REFUND_REQUEST_COMPLETE``
  (``..._SUCCESS`` is approved, not yet paid), or a replacement settled by a refund because stock
  ran out (``REPLACEMENT_REQUEST_REFUND_SUCCESS``). A replacement that completes as a replacement,
  or a request rejected or cancelled, produces nothing.
- One ``Refunded Order`` per refunded return: a partial refund is its own event. ``value`` is what
  went back (the seller's ``partial_refund`` when there is one, else ``refund_total``) in its
  currency; ``time`` is when it completed (the return's ``update_time``); properties ``OrderId``,
  ``ReturnId``, ``Reason``, ``ReasonCode``, ``RefundType`` (``refund only``, ``return and refund``,
  ``replacement``), ``ItemNames`` and ``Items`` (the refunded SKUs with quantities and amounts).
- ``unique_id``: Klaviyo counts a refund against a customer's lifetime value only when it shares
  the Placed Order's ``unique_id``, and keeps only the first event per (profile, metric, unique_id).
  So the **first** refund of an order (the first ksync plans) gets the order id, and counts in
  Klaviyo's CLV; every later refund of the same order gets ``<order id>:<return id>``, so it is
  never dropped as a duplicate, at the price of not counting in Klaviyo's CLV. ksync's own
  ``tiktok_lifetime_value`` is net of every refund. The choice is recorded the first time it is
  made and never changes, so a re-read cannot give a second refund the order's id.
"""

from __future__ import annotations

from decimal import Decimal

from klaviyo.models import KlaviyoEvent
from tiktok.aftersales import Return

from .mapping import SOURCE, event_profile
from tiktok.models import Order

REFUNDED_ORDER = "Refunded Order"
REFUND_TYPES = {"REFUND": "refund only", "RETURN_AND_REFUND": "return and refund", "REPLACEMENT": "replacement"}


def _text(value) -> str:
    return getattr(value, "value", value) or ""


def refunded_amount(ret: Return) -> tuple[Decimal, str | None]:
    """What went back to the buyer, and its currency."""
    if ret.partial_refund is not None:
        return ret.partial_refund.amount, ret.partial_refund.currency
    if ret.refund_amount is not None:
        return ret.refund_amount.refund_total, ret.refund_amount.currency
    return Decimal("0"), None


def refund_row(ret: Return, order_currency: str | None = None) -> dict:
    """The return as the refunds ledger stores it (``db.ledger.upsert_refunds``)."""
    amount, currency = refunded_amount(ret)
    return dict(return_id=ret.id, order_id=ret.order_id, status=_text(ret.status), return_type=_text(ret.type),
                refunded=ret.is_refunded, amount=amount, currency=currency or order_currency or "USD",
                update_time=ret.update_time, payload=ret.raw or {"return_id": ret.id})


def refund_unique_id(order_id: str, return_id: str, order_has_one: bool) -> str:
    """The order's id for its first refund, ``<order id>:<return id>`` for every later one."""
    return f"{order_id}:{return_id}" if order_has_one else order_id


def refunded_order_event(ret: Return, order: Order, unique_id: str, relay_email: str = "identity") -> KlaviyoEvent:
    """``relay_email``: the connection's option, as for the order's own events (``mapping.event_profile``)."""
    amount, currency = refunded_amount(ret)
    items = [{"ProductID": _product_id(order, g.sku_id), "VariantID": g.sku_id, "SKU": g.seller_sku or g.sku_id,
              "ProductName": g.product_name, "Quantity": g.quantity, "RowTotal": float(g.refund_total),
              **({"ImageURL": g.image_url} if g.image_url else {})} for g in ret.sku_groups()]
    properties = {
        "OrderId": order.id,
        "ReturnId": ret.id,
        "Reason": ret.reason_text or "",
        "ReasonCode": ret.reason or "",
        "RefundType": REFUND_TYPES.get(_text(ret.type), _text(ret.type).lower()),
        "ItemNames": list(dict.fromkeys(i["ProductName"] for i in items if i["ProductName"])),
        "Items": items,
        "Source": SOURCE,
    }
    return KlaviyoEvent(metric_name=REFUNDED_ORDER, profile=event_profile(order, relay_email), properties=properties,
                        time=ret.update_time, value=amount, value_currency=currency or order.payment.currency,
                        unique_id=unique_id)


def _product_id(order: Order, sku_id: str) -> str | None:
    return next((line.product_id for line in order.line_items if line.sku_id == sku_id), None)
