"""Returns and cancellations (Return & Refund API 202309) as values, and the schemas that read them.

Field names, types and status values follow ``commerce-apis.md`` §1: ids are
strings, money is decimal strings, times integer unix seconds. Like orders,
returned line items carry no quantity: TikTok lists one row per unit, so
``Return.sku_groups()`` folds them by ``sku_id``.

Status values TikTok adds later are kept as plain strings, not refused
(``Token``), so a new state never stops a sync; the known ones are enums.
The money moved only at ``RETURN_OR_REFUND_REQUEST_COMPLETE`` ("the buyer has
been refunded") or ``REPLACEMENT_REQUEST_REFUND_SUCCESS`` (a replacement settled
by a refund; the reference leaves open whether a COMPLETE follows it, so both
count as refunded and a consumer keys on the return id to count it once).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from marshmallow import fields, post_load, pre_load, validate

from .models import InvalidRecord
from .schemas import (CURRENCY_PATTERN, Money, Token, UnixTime, _Record, _Schema, parse_record, record_id)


class ReturnType(str, enum.Enum):
    REFUND = "REFUND"                          #: no goods back
    RETURN_AND_REFUND = "RETURN_AND_REFUND"    #: goods back, inspected, then refunded
    REPLACEMENT = "REPLACEMENT"
    EXCHANGE = "EXCHANGE"                      #: 2026 spec only


class ReturnStatus(str, enum.Enum):
    RETURN_OR_REFUND_REQUEST_PENDING = "RETURN_OR_REFUND_REQUEST_PENDING"
    AWAITING_BUYER_RESPONSE = "AWAITING_BUYER_RESPONSE"
    AWAITING_BUYER_SHIP = "AWAITING_BUYER_SHIP"
    BUYER_SHIPPED_ITEM = "BUYER_SHIPPED_ITEM"
    REFUND_OR_RETURN_REQUEST_REJECT = "REFUND_OR_RETURN_REQUEST_REJECT"
    REJECT_RECEIVE_PACKAGE = "REJECT_RECEIVE_PACKAGE"
    RETURN_OR_REFUND_REQUEST_SUCCESS = "RETURN_OR_REFUND_REQUEST_SUCCESS"     #: approved: *will be* refunded
    RETURN_OR_REFUND_REQUEST_COMPLETE = "RETURN_OR_REFUND_REQUEST_COMPLETE"   #: *has been* refunded
    RETURN_OR_REFUND_REQUEST_CANCEL = "RETURN_OR_REFUND_REQUEST_CANCEL"
    REPLACEMENT_REQUEST_PENDING = "REPLACEMENT_REQUEST_PENDING"
    REPLACEMENT_REQUEST_REJECT = "REPLACEMENT_REQUEST_REJECT"
    REPLACEMENT_REQUEST_CANCEL = "REPLACEMENT_REQUEST_CANCEL"
    REPLACEMENT_REQUEST_COMPLETE = "REPLACEMENT_REQUEST_COMPLETE"
    REPLACEMENT_REQUEST_REFUND_SUCCESS = "REPLACEMENT_REQUEST_REFUND_SUCCESS"


#: The states in which the buyer's money has moved back.
REFUNDED_RETURN_STATUSES = frozenset({ReturnStatus.RETURN_OR_REFUND_REQUEST_COMPLETE,
                                      ReturnStatus.REPLACEMENT_REQUEST_REFUND_SUCCESS})


class CancelType(str, enum.Enum):
    CANCEL = "CANCEL"                  #: by the seller or the system
    BUYER_CANCEL = "BUYER_CANCEL"      #: asked by the buyer; needs approval


class CancelStatus(str, enum.Enum):
    CANCELLATION_REQUEST_PENDING = "CANCELLATION_REQUEST_PENDING"
    CANCELLATION_REQUEST_SUCCESS = "CANCELLATION_REQUEST_SUCCESS"      #: accepted
    CANCELLATION_REQUEST_COMPLETE = "CANCELLATION_REQUEST_COMPLETE"    #: done, refund issued
    #: Closed. Responses and webhooks spell it ``_CANCELLED``; the request filter ``_CANCEL``
    #: (read here as ``_CANCELLED`` too).
    CANCELLATION_REQUEST_CANCELLED = "CANCELLATION_REQUEST_CANCELLED"


@dataclass(frozen=True)
class RefundAmount:
    currency: str
    refund_total: Decimal
    refund_subtotal: Decimal = Decimal("0")
    refund_shipping_fee: Decimal = Decimal("0")
    refund_tax: Decimal = Decimal("0")
    retail_delivery_fee: Decimal = Decimal("0")
    buyer_service_fee: Decimal = Decimal("0")


@dataclass(frozen=True)
class PartialRefund:
    """A refund of part of the price the seller proposed instead of a full one."""

    amount: Decimal
    currency: str


@dataclass(frozen=True)
class AfterSalesLine:
    """One unit of a return or cancellation; joins its order line through ``order_line_item_id``."""

    id: str
    order_line_item_id: str
    sku_id: str
    seller_sku: str | None = None
    sku_name: str | None = None
    product_name: str | None = None
    image_url: str | None = None
    refund_amount: RefundAmount | None = None


@dataclass(frozen=True)
class ReturnedSku:
    """All units of one SKU in a return or cancellation, with what was refunded for them."""

    sku_id: str
    seller_sku: str | None
    product_name: str | None
    sku_name: str | None
    quantity: int
    refund_subtotal: Decimal
    refund_total: Decimal
    image_url: str | None = None


def _fold(lines: tuple[AfterSalesLine, ...]) -> list[ReturnedSku]:
    groups: dict[str, list[AfterSalesLine]] = {}
    for line in lines:
        groups.setdefault(line.sku_id, []).append(line)
    rows = []
    for sku_id, units in groups.items():
        first = units[0]
        amounts = [u.refund_amount for u in units if u.refund_amount is not None]
        rows.append(ReturnedSku(sku_id=sku_id, seller_sku=first.seller_sku, product_name=first.product_name,
                                sku_name=first.sku_name, quantity=len(units),
                                refund_subtotal=sum((a.refund_subtotal for a in amounts), Decimal("0")),
                                refund_total=sum((a.refund_total for a in amounts), Decimal("0")),
                                image_url=first.image_url))
    return rows


@dataclass(frozen=True)
class Return:
    id: str
    order_id: str
    type: ReturnType | str
    status: ReturnStatus | str
    create_time: datetime
    update_time: datetime
    line_items: tuple[AfterSalesLine, ...]
    role: str | None = None
    reason: str | None = None
    reason_text: str | None = None
    refund_amount: RefundAmount | None = None
    partial_refund: PartialRefund | None = None
    seller_proposed_return_type: str | None = None
    arbitration_status: str | None = None
    raw: dict = field(default_factory=dict, compare=False, repr=False)

    @property
    def is_refunded(self) -> bool:
        """The buyer has been refunded (not merely approved: ``..._SUCCESS`` is not refunded yet)."""
        return self.status in REFUNDED_RETURN_STATUSES

    def sku_groups(self) -> list[ReturnedSku]:
        """One row per returned ``sku_id``, quantity = number of its rows."""
        return _fold(self.line_items)


@dataclass(frozen=True)
class Cancellation:
    id: str
    order_id: str
    type: CancelType | str
    status: CancelStatus | str
    create_time: datetime
    update_time: datetime
    line_items: tuple[AfterSalesLine, ...]
    role: str | None = None
    reason: str | None = None
    reason_text: str | None = None
    refund_amount: RefundAmount | None = None
    raw: dict = field(default_factory=dict, compare=False, repr=False)

    @property
    def is_refunded(self) -> bool:
        return self.status == CancelStatus.CANCELLATION_REQUEST_COMPLETE

    def sku_groups(self) -> list[ReturnedSku]:
        return _fold(self.line_items)


# Schemas -----------------------------------------------------------------------------------------

def _currency(**kwargs):
    return fields.String(validate=validate.Regexp(CURRENCY_PATTERN, error="Not an ISO 4217 code."), **kwargs)


class RefundAmountSchema(_Record):
    currency = _currency(required=True)
    refund_total = Money(required=True)
    refund_subtotal = Money(load_default=Decimal("0"))
    refund_shipping_fee = Money(load_default=Decimal("0"))
    refund_tax = Money(load_default=Decimal("0"))
    retail_delivery_fee = Money(load_default=Decimal("0"))
    buyer_service_fee = Money(load_default=Decimal("0"))

    @post_load
    def _make(self, data, **kwargs):
        return RefundAmount(**data)


class PartialRefundSchema(_Record):
    amount = Money(required=True)
    currency = _currency(required=True)

    @post_load
    def _make(self, data, **kwargs):
        return PartialRefund(**data)


class ImageSchema(_Schema):
    url = fields.String(load_default=None)


class _LineSchema(_Record):
    order_line_item_id = record_id()
    sku_id = record_id()
    seller_sku = fields.String(load_default=None)
    sku_name = fields.String(load_default=None)
    product_name = fields.String(load_default=None)
    product_image = fields.Nested(ImageSchema, load_default=None)
    refund_amount = fields.Nested(RefundAmountSchema, load_default=None)
    id_key = ""

    @post_load
    def _make(self, data, **kwargs):
        image = data.pop("product_image") or {}
        return AfterSalesLine(id=data.pop(self.id_key), image_url=image.get("url"), **data)


class ReturnLineSchema(_LineSchema):
    return_line_item_id = record_id()
    id_key = "return_line_item_id"


class CancelLineSchema(_LineSchema):
    cancel_line_item_id = record_id()
    id_key = "cancel_line_item_id"


class ReturnSchema(_Record):
    return_id = record_id()
    order_id = record_id()
    return_type = Token(ReturnType, required=True)
    return_status = Token(ReturnStatus, required=True)
    create_time = UnixTime(required=True)
    update_time = UnixTime(required=True)
    return_line_items = fields.List(fields.Nested(ReturnLineSchema), load_default=list)
    role = fields.String(load_default=None)
    return_reason = fields.String(load_default=None)
    return_reason_text = fields.String(load_default=None)
    refund_amount = fields.Nested(RefundAmountSchema, load_default=None)
    partial_refund = fields.Nested(PartialRefundSchema, load_default=None)
    seller_proposed_return_type = fields.String(load_default=None)
    arbitration_status = fields.String(load_default=None)

    @post_load
    def _make(self, data, **kwargs):
        return Return(id=data["return_id"], order_id=data["order_id"], type=data["return_type"],
                      status=data["return_status"], create_time=data["create_time"], update_time=data["update_time"],
                      line_items=tuple(data["return_line_items"]), role=data["role"], reason=data["return_reason"],
                      reason_text=data["return_reason_text"], refund_amount=data["refund_amount"],
                      partial_refund=data["partial_refund"],
                      seller_proposed_return_type=data["seller_proposed_return_type"],
                      arbitration_status=data["arbitration_status"])


class CancellationSchema(_Record):
    cancel_id = record_id()
    order_id = record_id()
    cancel_type = Token(CancelType, required=True)
    cancel_status = Token(CancelStatus, required=True)
    create_time = UnixTime(required=True)
    update_time = UnixTime(required=True)
    cancel_line_items = fields.List(fields.Nested(CancelLineSchema), load_default=list)
    role = fields.String(load_default=None)
    cancel_reason = fields.String(load_default=None)
    cancel_reason_text = fields.String(load_default=None)
    refund_amount = fields.Nested(RefundAmountSchema, load_default=None)

    @pre_load
    def _spelling(self, data, **kwargs):
        if isinstance(data, dict) and data.get("cancel_status") == "CANCELLATION_REQUEST_CANCEL":
            data = data | {"cancel_status": "CANCELLATION_REQUEST_CANCELLED"}
        return data

    @post_load
    def _make(self, data, **kwargs):
        return Cancellation(id=data["cancel_id"], order_id=data["order_id"], type=data["cancel_type"],
                            status=data["cancel_status"], create_time=data["create_time"],
                            update_time=data["update_time"], line_items=tuple(data["cancel_line_items"]),
                            role=data["role"], reason=data["cancel_reason"], reason_text=data["cancel_reason_text"],
                            refund_amount=data["refund_amount"])


RETURN_SCHEMA = ReturnSchema()
CANCELLATION_SCHEMA = CancellationSchema()


def parse_return(raw) -> Return | InvalidRecord:
    """A ``Return``, or an ``InvalidRecord`` naming the return id and the first bad field."""
    return parse_record("return", RETURN_SCHEMA, raw, "return_id")


def parse_cancellation(raw) -> Cancellation | InvalidRecord:
    """A ``Cancellation``, or an ``InvalidRecord`` naming the cancel id and the first bad field."""
    return parse_record("cancellation", CANCELLATION_SCHEMA, raw, "cancel_id")
