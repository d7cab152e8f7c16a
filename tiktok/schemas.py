"""marshmallow schemas that turn TikTok's order JSON into ``tiktok.models`` values.

Strict on types, because a wrong type is how a broken order shows itself: ids
must be strings, times integer unix seconds in a plausible range, money decimal
strings (``"12.99"``, ``"5000"``) that are finite and not negative. A failure
names the order id and the first offending field; the caller turns it into an
``InvalidOrder`` and goes on with the page.
"""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation

from marshmallow import EXCLUDE, Schema, ValidationError, fields, post_load, pre_load, validate

from .exceptions import OrderValidationError, RecordValidationError
from .models import DistrictInfo, InvalidOrder, InvalidRecord, LineItem, Order, OrderStatus, Payment, RecipientAddress, Shop

#: Plausible order times: TikTok Shop did not exist before 2016; nothing is dated past 2099.
EARLIEST_ORDER_TIME = int(datetime(2016, 1, 1, tzinfo=timezone.utc).timestamp())
LATEST_ORDER_TIME = int(datetime(2099, 12, 31, tzinfo=timezone.utc).timestamp())
#: No real order is worth more than this in any currency's major unit (IDR included).
MAX_AMOUNT = Decimal("1000000000")
MAX_LINE_ITEMS = 1000


class Money(fields.Field):
    """A decimal string in major units -> Decimal. Numbers, NaN, Infinity and negatives are refused."""

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, str):
            raise ValidationError(f"Money must be a decimal string, got {type(value).__name__}.")
        try:
            amount = Decimal(value.strip())
        except InvalidOperation:
            raise ValidationError(f"Not a decimal amount: {value[:40]!r}.") from None
        if not amount.is_finite():
            raise ValidationError("Money must be finite.")
        if amount < 0 or amount > MAX_AMOUNT:
            raise ValidationError(f"Amount {value[:40]!r} is out of range (0 to {MAX_AMOUNT}).")
        return amount


class UnixTime(fields.Field):
    """Integer unix seconds -> aware UTC datetime, within the plausible range."""

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValidationError(f"Time must be integer unix seconds, got {type(value).__name__}.")
        if not EARLIEST_ORDER_TIME <= value <= LATEST_ORDER_TIME:
            raise ValidationError(f"Time {value} is outside 2016..2099.")
        return datetime.fromtimestamp(value, tz=timezone.utc)


#: Ids are printable text: no control characters (a NUL cannot even be stored in PostgreSQL).
ID_PATTERN = r"^[^\x00-\x1f\x7f]{1,64}\Z"
#: ``\Z``, not ``$``: in Python ``$`` also matches before a trailing newline ("USD\n").
CURRENCY_PATTERN = r"^[A-Z]{3}\Z"


def clean_id(value) -> str | None:
    """``value`` if it is a usable id (printable, 1 to 64 characters), else None."""
    return value if isinstance(value, str) and re.match(ID_PATTERN, value) else None


def _id():
    return fields.String(required=True, validate=validate.Regexp(ID_PATTERN, error="Not a valid id (1 to 64 printable characters)."))


class _Schema(Schema):
    class Meta:
        unknown = EXCLUDE


class _Record(_Schema):
    """Base for after-sales and catalog records: ``None`` and ``""`` mean "not set" (TikTok sends both)."""

    @pre_load
    def _drop_empty(self, data, **kwargs):
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if v is not None and v != ""}
        return data


#: Status and type values: upper-case tokens. Values we do not know yet are kept, not refused,
#: because TikTok adds states (e.g. the 2026 EXCHANGE_* return states) without a new API version.
TOKEN_PATTERN = r"^[A-Z][A-Z0-9_]{0,63}\Z"


class Token(fields.String):
    """An upper-case status/type token -> the ``enum`` member when known, else the string itself."""

    def __init__(self, enum=None, **kwargs):
        super().__init__(validate=validate.Regexp(TOKEN_PATTERN, error="Not a status token."), **kwargs)
        self.enum = enum

    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs)
        if self.enum is not None and text in self.enum.__members__:
            return self.enum[text]
        return text


def record_id(required: bool = True):
    """An id field: printable text, 1 to 64 characters."""
    kwargs = {"required": True} if required else {"load_default": None}
    return fields.String(validate=validate.Regexp(ID_PATTERN, error="Not a valid id (1 to 64 printable characters)."),
                         **kwargs)


class PaymentSchema(_Schema):
    currency = fields.String(required=True, validate=validate.Regexp(CURRENCY_PATTERN, error="Not an ISO 4217 code."))
    total_amount = Money(required=True)
    sub_total = Money(load_default=Decimal("0"))
    shipping_fee = Money(load_default=Decimal("0"))
    tax = Money(load_default=Decimal("0"))
    seller_discount = Money(load_default=Decimal("0"))
    platform_discount = Money(load_default=Decimal("0"))
    original_total_product_price = Money(load_default=None)
    original_shipping_fee = Money(load_default=None)

    @post_load
    def _make(self, data, **kwargs):
        return Payment(**data)


class DistrictInfoSchema(_Schema):
    address_level = fields.String(required=True)
    address_level_name = fields.String(load_default=None)
    address_name = fields.String(load_default=None)
    iso_code = fields.String(load_default=None)

    @post_load
    def _make(self, data, **kwargs):
        return DistrictInfo(**data)


class RecipientAddressSchema(_Schema):
    name = fields.String(load_default=None)
    first_name = fields.String(load_default=None)
    last_name = fields.String(load_default=None)
    phone_number = fields.String(load_default=None)
    full_address = fields.String(load_default=None)
    address_line1 = fields.String(load_default=None)
    address_line2 = fields.String(load_default=None)
    postal_code = fields.String(load_default=None)
    region_code = fields.String(load_default=None)
    district_info = fields.List(fields.Nested(DistrictInfoSchema), load_default=list)

    @post_load
    def _make(self, data, **kwargs):
        return RecipientAddress(**(data | {"district_info": tuple(data["district_info"])}))


class LineItemSchema(_Schema):
    id = _id()
    sku_id = _id()
    product_id = _id()
    product_name = fields.String(required=True, validate=validate.Length(max=1000))
    sale_price = Money(required=True)
    sku_name = fields.String(load_default=None)
    seller_sku = fields.String(load_default=None)
    original_price = Money(load_default=None)
    currency = fields.String(load_default=None)
    sku_image = fields.String(load_default=None)
    display_status = fields.String(load_default=None)
    cancel_reason = fields.String(load_default=None)

    @post_load
    def _make(self, data, **kwargs):
        return LineItem(**data)


class OrderSchema(_Schema):
    id = _id()
    status = fields.Enum(OrderStatus, required=True)
    create_time = UnixTime(required=True)
    update_time = UnixTime(required=True)
    user_id = _id()
    payment = fields.Nested(PaymentSchema, required=True)
    line_items = fields.List(fields.Nested(LineItemSchema), required=True,
                             validate=validate.Length(min=1, max=MAX_LINE_ITEMS))
    paid_time = UnixTime(load_default=None)
    cancel_time = UnixTime(load_default=None)
    cancel_reason = fields.String(load_default=None)
    cancellation_initiator = fields.String(load_default=None)
    buyer_email = fields.String(load_default=None)
    buyer_message = fields.String(load_default=None)
    recipient_address = fields.Nested(RecipientAddressSchema, load_default=None)
    shipping_type = fields.String(load_default=None)
    is_on_hold_order = fields.Boolean(load_default=False)
    tracking_number = fields.String(load_default=None)
    collection_time = UnixTime(load_default=None)
    delivery_time = UnixTime(load_default=None)

    @pre_load
    def _normalise(self, data, **kwargs):
        if isinstance(data, dict):
            data = {k: v for k, v in data.items() if v is not None and v != ""}
            if data.get("status") == "CANCEL":  # the webhook topic's spelling of CANCELLED
                data["status"] = "CANCELLED"
            if isinstance(data.get("buyer_email"), str):
                data["buyer_email"] = data["buyer_email"].strip()
        return data

    @post_load
    def _make(self, data, **kwargs):
        return Order(**(data | {"line_items": tuple(data["line_items"])}))


class ShopSchema(_Schema):
    id = _id()
    name = fields.String(load_default="")
    region = fields.String(load_default="")
    cipher = fields.String(required=True)
    seller_type = fields.String(load_default=None)
    code = fields.String(load_default=None)

    @post_load
    def _make(self, data, **kwargs):
        return Shop(**data)


#: Schemas are built once: constructing one (and its nested schemas) costs far more than a load.
ORDER_SCHEMA = OrderSchema()
SHOP_SCHEMA = ShopSchema()


def _first_error(messages, prefix=""):
    if isinstance(messages, dict):
        for key, value in messages.items():
            if key == "_schema":  # a whole nested object was wrong: name the object itself
                path = prefix or "<order>"
            elif isinstance(key, int):
                path = f"{prefix}[{key}]"
            else:
                path = f"{prefix}.{key}" if prefix else str(key)
            return _first_error(value, path)
    if isinstance(messages, list) and messages:
        if isinstance(messages[0], (dict, list)):
            return _first_error(messages[0], prefix)
        return prefix, str(messages[0])
    return prefix, str(messages)


def load_order(raw) -> Order:
    """Validate one order dict; raise ``OrderValidationError`` naming the order id and field."""
    order_id = clean_id(raw.get("id")) if isinstance(raw, dict) else None
    if not isinstance(raw, dict):
        raise OrderValidationError(order_id, "<order>", f"expected an object, got {type(raw).__name__}")
    try:
        return replace(ORDER_SCHEMA.load(raw), raw=raw)
    except ValidationError as exc:
        field, message = _first_error(exc.messages)
        raise OrderValidationError(order_id, field, message) from None


def parse_order(raw) -> Order | InvalidOrder:
    """``load_order`` that returns an ``InvalidOrder`` instead of raising."""
    try:
        return load_order(raw)
    except OrderValidationError as exc:
        return InvalidOrder(order_id=exc.order_id, field=exc.field, message=exc.message,
                            raw=raw if isinstance(raw, dict) else {"value": repr(raw)[:200]})


def load_record(kind: str, schema: Schema, raw, id_key: str):
    """Validate one record; raise ``RecordValidationError`` naming ``kind``, its id and the field."""
    rid = clean_id(raw.get(id_key)) if isinstance(raw, dict) else None
    if not isinstance(raw, dict):
        raise RecordValidationError(kind, rid, f"<{kind}>", f"expected an object, got {type(raw).__name__}")
    try:
        return replace(schema.load(raw), raw=raw)
    except ValidationError as exc:
        field, message = _first_error(exc.messages)
        field = f"<{kind}>" if field in ("", "<order>") else field
        raise RecordValidationError(kind, rid, field, message) from None


def parse_record(kind: str, schema: Schema, raw, id_key: str):
    """``load_record`` that returns an ``InvalidRecord`` instead of raising."""
    try:
        return load_record(kind, schema, raw, id_key)
    except RecordValidationError as exc:
        return InvalidRecord(kind=kind, record_id=exc.record_id, field=exc.field, message=exc.message,
                             raw=raw if isinstance(raw, dict) else {"value": repr(raw)[:200]})
