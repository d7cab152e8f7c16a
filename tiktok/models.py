"""TikTok Shop orders as values: ids stay strings, money is Decimal, times are aware UTC datetimes.

TikTok sends one line item per *unit* and no quantity field, so ``Order.sku_groups()``
folds the line items into one row per ``sku_id`` with its quantity and row total.
Buyer data arrives disguised: a relay e-mail address and, for platform-shipped
orders, masked names and phones; the helpers below recognise both.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal


class OrderStatus(str, enum.Enum):
    UNPAID = "UNPAID"
    ON_HOLD = "ON_HOLD"
    AWAITING_SHIPMENT = "AWAITING_SHIPMENT"
    PARTIALLY_SHIPPING = "PARTIALLY_SHIPPING"
    AWAITING_COLLECTION = "AWAITING_COLLECTION"
    IN_TRANSIT = "IN_TRANSIT"
    DELIVERED = "DELIVERED"
    COMPLETED = "COMPLETED"
    CANCELLED = "CANCELLED"


#: Relay domains TikTok uses for ``buyer_email`` (the buyer's real address is never shared).
RELAY_EMAIL_DOMAINS = ("scs.tiktokw.us", "scs3.tiktok.com", "chat.seller.tiktok.com")
_RELAY_RE = re.compile(r"@(?:[\w-]+\.)*(?:tiktokw\.us|tiktok\.com)$", re.IGNORECASE)


def is_relay_email(email: str | None) -> bool:
    """True for TikTok's anonymised relay addresses (``...@scs.tiktokw.us`` and friends)."""
    return bool(email) and bool(_RELAY_RE.search(email.strip()))


def mask_email(email: str | None) -> str | None:
    """``jane.doe@example.com`` -> ``j***@example.com``: enough to tell buyers apart in a repr."""
    if not email or "@" not in email:
        return email
    local, _, domain = email.partition("@")
    return f"{local[:1]}***@{domain}"


def is_masked(value: str | None) -> bool:
    """True when TikTok desensitised the value (``J*** D***``, ``(+1)213-***-1234``)."""
    return bool(value) and "*" in value


@dataclass(frozen=True)
class Payment:
    currency: str
    total_amount: Decimal
    sub_total: Decimal = Decimal("0")
    shipping_fee: Decimal = Decimal("0")
    tax: Decimal = Decimal("0")
    seller_discount: Decimal = Decimal("0")
    platform_discount: Decimal = Decimal("0")
    original_total_product_price: Decimal | None = None
    original_shipping_fee: Decimal | None = None

    @property
    def discount(self) -> Decimal:
        return self.seller_discount + self.platform_discount


@dataclass(frozen=True)
class DistrictInfo:
    address_level: str
    address_level_name: str | None = None
    address_name: str | None = None
    iso_code: str | None = None


@dataclass(frozen=True)
class RecipientAddress:
    name: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    phone_number: str | None = None
    full_address: str | None = None
    address_line1: str | None = None
    address_line2: str | None = None
    postal_code: str | None = None
    region_code: str | None = None
    district_info: tuple[DistrictInfo, ...] = ()

    def district(self, level: str) -> str | None:
        """The district name at ``level`` (``L0`` country ... ``L3`` city); absent while UNPAID/ON_HOLD."""
        for info in self.district_info:
            if info.address_level == level:
                return info.address_name
        return None

    def __repr__(self) -> str:
        return f"RecipientAddress(region_code={self.region_code!r}, masked={is_masked(self.name) or is_masked(self.phone_number)})"


@dataclass(frozen=True)
class LineItem:
    id: str
    sku_id: str
    product_id: str
    product_name: str
    sale_price: Decimal
    sku_name: str | None = None
    seller_sku: str | None = None
    original_price: Decimal | None = None
    currency: str | None = None
    sku_image: str | None = None
    display_status: str | None = None
    cancel_reason: str | None = None


@dataclass(frozen=True)
class SkuGroup:
    """All units of one SKU in an order: TikTok's line items folded by ``sku_id``."""

    sku_id: str
    product_id: str
    product_name: str
    sku_name: str | None
    seller_sku: str | None
    quantity: int
    unit_price: Decimal
    row_total: Decimal
    image: str | None = None


@dataclass(frozen=True)
class Order:
    id: str
    status: OrderStatus
    create_time: datetime
    update_time: datetime
    user_id: str
    payment: Payment
    line_items: tuple[LineItem, ...]
    paid_time: datetime | None = None
    cancel_time: datetime | None = None
    cancel_reason: str | None = None
    cancellation_initiator: str | None = None
    buyer_email: str | None = None
    buyer_message: str | None = None
    recipient_address: RecipientAddress | None = None
    shipping_type: str | None = None
    is_on_hold_order: bool = False
    tracking_number: str | None = None
    collection_time: datetime | None = None
    delivery_time: datetime | None = None
    #: The order exactly as TikTok sent it (kept in our ledger).
    raw: dict = field(default_factory=dict, compare=False, repr=False)

    @property
    def buyer_email_is_relay(self) -> bool:
        return is_relay_email(self.buyer_email)

    def sku_groups(self) -> list[SkuGroup]:
        """One row per distinct ``sku_id``, in first-seen order, quantity = number of line items."""
        groups: dict[str, list[LineItem]] = {}
        for item in self.line_items:
            groups.setdefault(item.sku_id, []).append(item)
        rows = []
        for sku_id, items in groups.items():
            first = items[0]
            total = sum((i.sale_price for i in items), Decimal("0"))
            rows.append(SkuGroup(sku_id=sku_id, product_id=first.product_id, product_name=first.product_name,
                                 sku_name=first.sku_name, seller_sku=first.seller_sku, quantity=len(items),
                                 unit_price=first.sale_price, row_total=total, image=first.sku_image))
        return rows

    def __repr__(self) -> str:
        return (f"Order(id={self.id!r}, status={self.status.value}, user_id={self.user_id!r}, "
                f"buyer_email={mask_email(self.buyer_email)!r}, total={self.payment.total_amount} {self.payment.currency})")


@dataclass(frozen=True)
class InvalidOrder:
    """An order from TikTok that failed validation; the rest of its page still comes through."""

    order_id: str | None
    field: str
    message: str
    raw: dict = field(repr=False, compare=False, default_factory=dict)

    @property
    def error(self) -> str:
        return f"order {self.order_id or '<no id>'}: {self.field}: {self.message}"


@dataclass(frozen=True)
class InvalidRecord:
    """A return, cancellation, product or inventory record that failed validation.

    Like ``InvalidOrder``: it names the record's ``kind``, id and the first bad field,
    and the rest of its page still comes through.
    """

    kind: str
    record_id: str | None
    field: str
    message: str
    raw: dict = field(repr=False, compare=False, default_factory=dict)

    @property
    def error(self) -> str:
        return f"{self.kind} {self.record_id or '<no id>'}: {self.field}: {self.message}"


@dataclass(frozen=True)
class Shop:
    id: str
    name: str
    region: str
    cipher: str
    seller_type: str | None = None
    code: str | None = None
