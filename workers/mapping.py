"""TikTok orders -> Klaviyo profiles and events. Pure functions: no Celery, HTTP or SQL.

These rules are a contract (``tests/workers/test_mapping.py`` pins each one):

- An order is *placed* when its status is paid (AWAITING_SHIPMENT, PARTIALLY_SHIPPING,
  AWAITING_COLLECTION, IN_TRANSIT, DELIVERED, COMPLETED), or it is CANCELLED with a
  ``paid_time``. UNPAID and ON_HOLD orders produce nothing yet.
- One profile per buyer: email = TikTok's relay ``buyer_email`` when present,
  external_id = ``"tiktok:" + user_id``; names, phone (valid E.164 only) and location
  only where TikTok did not mask them; properties ``source``, ``tiktok_user_id``,
  ``tiktok_order_count``, ``tiktok_lifetime_value`` (and ``tiktok_currency``,
  ``tiktok_last_order_at``) from our own ledger.
- ``Placed Order`` (unique_id = order id, value = payment total, time = paid time),
  ``Ordered Product`` per distinct SKU (unique_id = ``"<order id>:<sku_id>"``),
  ``Fulfilled Order`` once IN_TRANSIT / DELIVERED / COMPLETED, ``Cancelled Order``
  (with ``Reason``) when CANCELLED after payment; both reuse the order id as unique_id
  so Klaviyo counts them against the Placed Order.
- Items name the catalog: ``ProductID`` = the catalog item's external id (TikTok product id),
  ``VariantID`` = the variant's (TikTok SKU id), ``SKU`` = the seller SKU else the SKU id; and,
  once the product is in the catalog (``products``: product id -> its catalog_entries details),
  ``ProductURL``, ``ImageURL``, ``Categories`` and the brand (``Brand``; ``ProductBrand`` on
  Ordered Product). An order whose product is not synced yet maps without them.
- ``relay_email`` (a connection option) decides what happens to a TikTok *relay* address (other
  addresses are unaffected): ``identity`` (default) makes it the profile's e-mail; ``property``
  keeps it only as the profile property ``tiktok_relay_email`` (the profile is identified by its
  external id and a valid phone, and events carry only the external id); ``skip`` sends it nowhere.
- No consent is ever set: TikTok gives none, so none is invented.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Iterable

import phonenumbers

from klaviyo.models import KlaviyoEvent, KlaviyoProfile, ProfileLocation
from tiktok.models import Order, OrderStatus, SkuGroup, is_masked, is_relay_email

SOURCE = "TikTok Shop"
EXTERNAL_ID_PREFIX = "tiktok:"

PLACED_ORDER = "Placed Order"
ORDERED_PRODUCT = "Ordered Product"
FULFILLED_ORDER = "Fulfilled Order"
CANCELLED_ORDER = "Cancelled Order"

PAID_STATUSES = frozenset({
    OrderStatus.AWAITING_SHIPMENT, OrderStatus.PARTIALLY_SHIPPING, OrderStatus.AWAITING_COLLECTION,
    OrderStatus.IN_TRANSIT, OrderStatus.DELIVERED, OrderStatus.COMPLETED,
})
FULFILLED_STATUSES = frozenset({OrderStatus.IN_TRANSIT, OrderStatus.DELIVERED, OrderStatus.COMPLETED})
IDENTITY, PROPERTY, SKIP = "identity", "property", "skip"
#: What a connection's ``relay_email`` option may say (the CLI repeats them so that it starts without this module).
RELAY_EMAIL_MODES = (IDENTITY, PROPERTY, SKIP)
RELAY_PROPERTY = "tiktok_relay_email"


@dataclass(frozen=True)
class BuyerStats:
    """A buyer's totals from our ledger: placed, not cancelled orders, their value, the latest one."""

    order_count: int
    lifetime_value: Decimal
    currency: str | None
    last_order_at: datetime | None = None
    refund_count: int = 0


@dataclass(frozen=True)
class LedgerEntry:
    """The ledger's view of one order, enough to compute buyer totals."""

    order_id: str
    user_id: str
    status: str
    placed: bool
    total_amount: Decimal
    currency: str
    placed_at: datetime | None = None
    shop: str = ""
    #: What completed refunds gave back on this order, and how many there were.
    refunded: Decimal = Decimal("0")
    refunds: int = 0


def is_placed(order: Order) -> bool:
    return order.status in PAID_STATUSES or (order.status is OrderStatus.CANCELLED and order.paid_time is not None)


def external_id(user_id: str) -> str:
    return EXTERNAL_ID_PREFIX + user_id


def event_key(event: KlaviyoEvent) -> str:
    """Our identity of an event, as Klaviyo dedupes it: metric name and unique_id."""
    return f"{event.metric_name}|{event.unique_id}"


def ledger_entry(order: Order, shop: str = "") -> LedgerEntry:
    return LedgerEntry(order_id=order.id, user_id=order.user_id, status=order.status.value, placed=is_placed(order),
                       total_amount=order.payment.total_amount, currency=order.payment.currency,
                       placed_at=order.paid_time or order.create_time, shop=shop)


def ledger_row(order: Order) -> dict:
    """The order as the ledger stores it (``db.ledger.upsert_orders``)."""
    return dict(order_id=order.id, user_id=order.user_id, status=order.status.value, placed=is_placed(order),
                total_amount=order.payment.total_amount, currency=order.payment.currency,
                create_time=order.create_time, update_time=order.update_time, paid_time=order.paid_time,
                payload=order.raw or {"id": order.id})


def buyer_stats(entries: Iterable[LedgerEntry]) -> BuyerStats:
    """Count and value of a buyer's placed orders that were not cancelled (one entry per order id),
    the value net of what completed refunds gave back, and the number of those refunds.

    Value is summed in the currency of the buyer's orders; a shop sells in one
    currency, and entries in another currency are left out rather than mixed in.
    A cancelled order is already out of the value, so its refund is not taken off again.
    """
    counted = [e for e in entries if e.placed and e.status != OrderStatus.CANCELLED.value]
    if not counted:
        return BuyerStats(order_count=0, lifetime_value=Decimal("0"), currency=None)
    currency = counted[-1].currency
    same = [e for e in counted if e.currency == currency]
    dates = [e.placed_at for e in counted if e.placed_at]
    value = sum((e.total_amount - Decimal(getattr(e, "refunded", 0) or 0) for e in same), Decimal("0"))
    refunds = sum(int(getattr(e, "refunds", 0) or 0) for e in counted)
    return BuyerStats(order_count=len(same), lifetime_value=max(value, Decimal("0")), currency=currency,
                      last_order_at=max(dates) if dates else None, refund_count=refunds)


def valid_e164(phone: str | None) -> str | None:
    """``phone`` if it is an unmasked, valid E.164 number, else None."""
    if not phone or is_masked(phone) or not phone.startswith("+"):
        return None
    try:
        parsed = phonenumbers.parse(phone, None)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(parsed):
        return None
    formatted = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
    return formatted if formatted == phone else None


def _unmasked(value: str | None) -> str | None:
    return value if value and not is_masked(value) else None


def buyer_location(order: Order) -> ProfileLocation | None:
    """Where the buyer ships to, from the parts TikTok did not mask. None when nothing is usable."""
    address = order.recipient_address
    if address is None:
        return None
    location = ProfileLocation(
        address1=_unmasked(address.address_line1) if not is_masked(address.full_address) else None,
        address2=_unmasked(address.address_line2) if not is_masked(address.full_address) else None,
        city=_unmasked(address.district("L3") or address.district("L2")),
        region=_unmasked(address.district("L1")),
        country=_unmasked(address.district("L0") or address.region_code),
        zip=_unmasked(address.postal_code),
    )
    return location if any(vars(location).values()) else None


def identity_email(email: str | None, relay_email: str = IDENTITY) -> str | None:
    """The e-mail a profile or event is identified by: none for a relay address unless ``identity``."""
    if not email or (relay_email != IDENTITY and is_relay_email(email)):
        return None
    return email


def buyer_profile(order: Order, stats: BuyerStats, shops: Iterable[str] = (),
                  relay_email: str = IDENTITY) -> KlaviyoProfile:
    """The Klaviyo profile of the order's buyer, with totals from the ledger (over every shop that
    feeds the same Klaviyo account) and ``tiktok_shops``, the names of those shops."""
    address = order.recipient_address
    first = _unmasked(address.first_name) if address else None
    last = _unmasked(address.last_name) if address else None
    if address and not first and not last and _unmasked(address.name):
        first, _, last = address.name.partition(" ")
    properties = {
        "source": SOURCE,
        "tiktok_user_id": order.user_id,
        "tiktok_order_count": stats.order_count,
        "tiktok_lifetime_value": float(stats.lifetime_value),
        "tiktok_refund_count": stats.refund_count,
    }
    if stats.currency:
        properties["tiktok_currency"] = stats.currency
    if stats.last_order_at:
        properties["tiktok_last_order_at"] = stats.last_order_at.isoformat()
    shops = sorted(set(shops))
    if shops:
        properties["tiktok_shops"] = shops
    if relay_email == PROPERTY and is_relay_email(order.buyer_email):
        properties[RELAY_PROPERTY] = order.buyer_email
    return KlaviyoProfile(
        email=identity_email(order.buyer_email, relay_email),
        external_id=external_id(order.user_id),
        phone_number=valid_e164(address.phone_number) if address else None,
        first_name=first or None,
        last_name=last or None,
        location=buyer_location(order),
        properties=properties,
    )


def event_profile(order: Order, relay_email: str = IDENTITY) -> KlaviyoProfile:
    """The identifiers an event carries: the e-mail (a relay one only with ``identity``) and the
    TikTok external id."""
    return KlaviyoProfile(email=identity_email(order.buyer_email, relay_email), external_id=external_id(order.user_id))


def _money(value: Decimal) -> float:
    return float(value)


def catalog_fields(product_id: str | None, products: dict | None, brand_key: str = "Brand") -> dict:
    """What the catalog knows of a product, for an event's item: URL, image, categories, brand."""
    details = (products or {}).get(product_id) or {}
    fields = {"ProductURL": details.get("url"), "ImageURL": details.get("image"),
              "Categories": details.get("categories") or None, brand_key: details.get("brand")}
    return {k: v for k, v in fields.items() if v}


def _item(group: SkuGroup, products: dict | None = None, brand_key: str = "Brand") -> dict:
    return {
        "ProductID": group.product_id,
        "VariantID": group.sku_id,
        "SKU": group.seller_sku or group.sku_id,
        "ProductName": group.product_name,
        "Quantity": group.quantity,
        "ItemPrice": _money(group.unit_price),
        "RowTotal": _money(group.row_total),
        **catalog_fields(group.product_id, products, brand_key),
    }


def _order_properties(order: Order, products: dict | None = None) -> dict:
    groups = order.sku_groups()
    items = [_item(g, products) for g in groups]
    properties = {
        "OrderId": order.id,
        "ItemNames": list(dict.fromkeys(g.product_name for g in groups)),
        "Items": items,
        "DiscountValue": _money(order.payment.discount),
        "ShippingFee": _money(order.payment.shipping_fee),
        "Tax": _money(order.payment.tax),
        "Source": SOURCE,
    }
    categories = list(dict.fromkeys(c for i in items for c in i.get("Categories", ())))
    brands = list(dict.fromkeys(i["Brand"] for i in items if i.get("Brand")))
    if categories:  # flattened: segments and flow filters read top-level properties only
        properties["Categories"] = categories
    if brands:
        properties["Brands"] = brands
    return properties


def placed_order_event(order: Order, products: dict | None = None, relay_email: str = IDENTITY) -> KlaviyoEvent:
    return KlaviyoEvent(
        metric_name=PLACED_ORDER, profile=event_profile(order, relay_email),
        properties=_order_properties(order, products),
        time=order.paid_time or order.create_time, value=order.payment.total_amount,
        value_currency=order.payment.currency, unique_id=order.id)


def ordered_product_events(order: Order, products: dict | None = None,
                           relay_email: str = IDENTITY) -> list[KlaviyoEvent]:
    return [
        KlaviyoEvent(
            metric_name=ORDERED_PRODUCT, profile=event_profile(order, relay_email),
            properties={"OrderId": order.id, **_item(group, products, "ProductBrand"), "Source": SOURCE},
            time=order.paid_time or order.create_time, value=group.row_total, value_currency=order.payment.currency,
            unique_id=f"{order.id}:{group.sku_id}")
        for group in order.sku_groups()
    ]


def fulfilled_order_event(order: Order, products: dict | None = None, relay_email: str = IDENTITY) -> KlaviyoEvent:
    properties = _order_properties(order, products)
    if order.tracking_number:
        properties["TrackingNumber"] = order.tracking_number
    return KlaviyoEvent(
        metric_name=FULFILLED_ORDER, profile=event_profile(order, relay_email), properties=properties,
        time=order.collection_time or order.delivery_time or order.update_time,
        value=order.payment.total_amount, value_currency=order.payment.currency, unique_id=order.id)


def cancelled_order_event(order: Order, products: dict | None = None, relay_email: str = IDENTITY) -> KlaviyoEvent:
    properties = _order_properties(order, products) | {"Reason": order.cancel_reason or ""}
    return KlaviyoEvent(
        metric_name=CANCELLED_ORDER, profile=event_profile(order, relay_email), properties=properties,
        time=order.cancel_time or order.update_time, value=order.payment.total_amount,
        value_currency=order.payment.currency, unique_id=order.id)


def order_events(order: Order, products: dict | None = None, relay_email: str = IDENTITY) -> list[KlaviyoEvent]:
    """Every event the order's current state implies. Re-sending any of them is harmless (unique_id).
    ``products``: product id -> catalog details (see ``catalog_fields``); ``relay_email``: the
    connection's option."""
    if not is_placed(order):
        return []
    events = [placed_order_event(order, products, relay_email), *ordered_product_events(order, products, relay_email)]
    if order.status in FULFILLED_STATUSES:
        events.append(fulfilled_order_event(order, products, relay_email))
    if order.status is OrderStatus.CANCELLED:
        events.append(cancelled_order_event(order, products, relay_email))
    return events
