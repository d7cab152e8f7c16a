"""Products and stock (Product API 202309) as values, and the schemas that read them.

Three shapes, per ``commerce-apis.md`` §2: a search summary (``ProductSummary``:
status, times, SKUs with price and stock), the full detail (``Product``: HTML
description, images, category chain, brand, SKU attributes) and inventory
records (``InventoryRecord``: available and committed stock per warehouse).

Price: Get Product and Search Products document ``sale_price`` and
``tax_exclusive_price`` differently (the "price trap"); ``Price.amount`` takes
``sale_price`` and falls back to ``tax_exclusive_price``, as the reference advises.
Unknown product statuses are kept as strings (``Token``), never refused.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from marshmallow import fields, post_load, validate

from .models import InvalidRecord
from .schemas import CURRENCY_PATTERN, Money, Token, UnixTime, _Record, parse_record, record_id


class ProductStatus(str, enum.Enum):
    """``status`` of Search and Get Product: product state and audit state in one value."""

    DRAFT = "DRAFT"
    PENDING = "PENDING"
    FAILED = "FAILED"
    ACTIVATE = "ACTIVATE"
    SELLER_DEACTIVATED = "SELLER_DEACTIVATED"
    PLATFORM_DEACTIVATED = "PLATFORM_DEACTIVATED"
    FREEZE = "FREEZE"
    DELETED = "DELETED"


def _quantity(**kwargs):
    return fields.Integer(strict=True, validate=validate.Range(min=0, max=10**9), **kwargs)


@dataclass(frozen=True)
class Price:
    currency: str
    sale_price: Decimal | None = None
    tax_exclusive_price: Decimal | None = None

    @property
    def amount(self) -> Decimal | None:
        """``sale_price``, else ``tax_exclusive_price`` (the reference's rule for the price trap)."""
        return self.sale_price if self.sale_price is not None else self.tax_exclusive_price


@dataclass(frozen=True)
class WarehouseStock:
    warehouse_id: str
    quantity: int


@dataclass(frozen=True)
class SalesAttribute:
    name: str
    value_name: str
    image_url: str | None = None


@dataclass(frozen=True)
class ProductSku:
    id: str
    seller_sku: str | None
    price: Price | None
    inventory: tuple[WarehouseStock, ...] = ()
    attributes: tuple[SalesAttribute, ...] = ()
    #: ``status_info.status``: ``NORMAL`` or ``DEACTIVATED`` where TikTok sends it (202502 on).
    status: str | None = None

    @property
    def quantity(self) -> int:
        """Stock that can ship now, summed over warehouses."""
        return sum(w.quantity for w in self.inventory)


@dataclass(frozen=True)
class Category:
    id: str
    parent_id: str
    name: str
    is_leaf: bool


@dataclass(frozen=True)
class Image:
    uri: str | None
    urls: tuple[str, ...]
    thumb_urls: tuple[str, ...] = ()
    width: int | None = None
    height: int | None = None


@dataclass(frozen=True)
class ProductSummary:
    """A product as Search Products lists it."""

    id: str
    title: str
    status: ProductStatus | str
    create_time: datetime
    update_time: datetime
    skus: tuple[ProductSku, ...] = ()
    sales_regions: tuple[str, ...] = ()
    raw: dict = field(default_factory=dict, compare=False, repr=False)

    @property
    def is_live(self) -> bool:
        return self.status == ProductStatus.ACTIVATE


@dataclass(frozen=True)
class Product:
    """A product as Get Product details it (never DELETED or FREEZE: TikTok refuses those)."""

    id: str
    title: str
    status: ProductStatus | str
    create_time: datetime
    update_time: datetime
    skus: tuple[ProductSku, ...]
    description: str = ""
    product_status: str | None = None
    audit_status: str | None = None
    brand: str | None = None
    #: Root first (``parent_id`` "0") down to the leaf.
    categories: tuple[Category, ...] = ()
    images: tuple[Image, ...] = ()
    is_not_for_sale: bool = False
    raw: dict = field(default_factory=dict, compare=False, repr=False)

    @property
    def is_live(self) -> bool:
        return self.status == ProductStatus.ACTIVATE


@dataclass(frozen=True)
class WarehouseInventory:
    warehouse_id: str
    available_quantity: int
    committed_quantity: int = 0


@dataclass(frozen=True)
class SkuInventory:
    id: str
    seller_sku: str | None
    total_available_quantity: int
    total_committed_quantity: int = 0
    warehouses: tuple[WarehouseInventory, ...] = ()


@dataclass(frozen=True)
class InventoryRecord:
    product_id: str
    skus: tuple[SkuInventory, ...]
    raw: dict = field(default_factory=dict, compare=False, repr=False)


# Schemas -----------------------------------------------------------------------------------------

class PriceSchema(_Record):
    currency = fields.String(required=True, validate=validate.Regexp(CURRENCY_PATTERN, error="Not an ISO 4217 code."))
    sale_price = Money(load_default=None)
    tax_exclusive_price = Money(load_default=None)

    @post_load
    def _make(self, data, **kwargs):
        return Price(**data)


class WarehouseStockSchema(_Record):
    warehouse_id = record_id()
    quantity = _quantity(required=True)

    @post_load
    def _make(self, data, **kwargs):
        return WarehouseStock(**data)


class SkuImageSchema(_Record):
    urls = fields.List(fields.String(), load_default=list)


class SalesAttributeSchema(_Record):
    name = fields.String(load_default="")
    value_name = fields.String(load_default="")
    sku_img = fields.Nested(SkuImageSchema, load_default=None)

    @post_load
    def _make(self, data, **kwargs):
        urls = (data["sku_img"] or {}).get("urls") or []
        return SalesAttribute(data["name"], data["value_name"], urls[0] if urls else None)


class StatusInfoSchema(_Record):
    status = fields.String(load_default=None)


class SkuSchema(_Record):
    id = record_id()
    seller_sku = fields.String(load_default=None)
    price = fields.Nested(PriceSchema, load_default=None)
    inventory = fields.List(fields.Nested(WarehouseStockSchema), load_default=list)
    sales_attributes = fields.List(fields.Nested(SalesAttributeSchema), load_default=list)
    status_info = fields.Nested(StatusInfoSchema, load_default=None)

    @post_load
    def _make(self, data, **kwargs):
        return ProductSku(id=data["id"], seller_sku=data["seller_sku"], price=data["price"],
                          inventory=tuple(data["inventory"]), attributes=tuple(data["sales_attributes"]),
                          status=(data["status_info"] or {}).get("status"))


class CategorySchema(_Record):
    id = record_id()
    parent_id = fields.String(load_default="0")
    local_name = fields.String(load_default="")
    is_leaf = fields.Boolean(load_default=False)

    @post_load
    def _make(self, data, **kwargs):
        return Category(data["id"], data["parent_id"], data["local_name"], data["is_leaf"])


class ImageSchema(_Record):
    uri = fields.String(load_default=None)
    urls = fields.List(fields.String(), load_default=list)
    thumb_urls = fields.List(fields.String(), load_default=list)
    width = fields.Integer(strict=True, load_default=None)
    height = fields.Integer(strict=True, load_default=None)

    @post_load
    def _make(self, data, **kwargs):
        return Image(data["uri"], tuple(data["urls"]), tuple(data["thumb_urls"]), data["width"], data["height"])


class _ProductBase(_Record):
    id = record_id()
    title = fields.String(required=True, validate=validate.Length(min=1, max=1000))
    status = Token(ProductStatus, required=True)
    create_time = UnixTime(required=True)
    update_time = UnixTime(required=True)
    skus = fields.List(fields.Nested(SkuSchema), load_default=list)


class ProductSummarySchema(_ProductBase):
    sales_regions = fields.List(fields.String(), load_default=list)

    @post_load
    def _make(self, data, **kwargs):
        return ProductSummary(**(data | {"skus": tuple(data["skus"]), "sales_regions": tuple(data["sales_regions"])}))


class NamedSchema(_Record):
    name = fields.String(load_default=None)
    status = fields.String(load_default=None)


class ProductSchema(_ProductBase):
    skus = fields.List(fields.Nested(SkuSchema), required=True, validate=validate.Length(min=1))
    description = fields.String(load_default="")
    product_status = fields.String(load_default=None)
    audit = fields.Nested(NamedSchema, load_default=None)
    brand = fields.Nested(NamedSchema, load_default=None)
    category_chains = fields.List(fields.Nested(CategorySchema), load_default=list)
    main_images = fields.List(fields.Nested(ImageSchema), load_default=list)
    is_not_for_sale = fields.Boolean(load_default=False)

    @post_load
    def _make(self, data, **kwargs):
        return Product(id=data["id"], title=data["title"], status=data["status"], create_time=data["create_time"],
                       update_time=data["update_time"], skus=tuple(data["skus"]), description=data["description"],
                       product_status=data["product_status"], audit_status=(data["audit"] or {}).get("status"),
                       brand=(data["brand"] or {}).get("name"), categories=tuple(data["category_chains"]),
                       images=tuple(data["main_images"]), is_not_for_sale=data["is_not_for_sale"])


class WarehouseInventorySchema(_Record):
    warehouse_id = record_id()
    available_quantity = _quantity(required=True)
    committed_quantity = _quantity(load_default=0)

    @post_load
    def _make(self, data, **kwargs):
        return WarehouseInventory(**data)


class SkuInventorySchema(_Record):
    id = record_id()
    seller_sku = fields.String(load_default=None)
    total_available_quantity = _quantity(required=True)
    total_committed_quantity = _quantity(load_default=0)
    warehouse_inventory = fields.List(fields.Nested(WarehouseInventorySchema), load_default=list)

    @post_load
    def _make(self, data, **kwargs):
        return SkuInventory(data["id"], data["seller_sku"], data["total_available_quantity"],
                            data["total_committed_quantity"], tuple(data["warehouse_inventory"]))


class InventorySchema(_Record):
    product_id = record_id()
    skus = fields.List(fields.Nested(SkuInventorySchema), required=True)

    @post_load
    def _make(self, data, **kwargs):
        return InventoryRecord(data["product_id"], tuple(data["skus"]))


PRODUCT_SUMMARY_SCHEMA = ProductSummarySchema()
PRODUCT_SCHEMA = ProductSchema()
INVENTORY_SCHEMA = InventorySchema()


def parse_product_summary(raw) -> ProductSummary | InvalidRecord:
    return parse_record("product", PRODUCT_SUMMARY_SCHEMA, raw, "id")


def parse_product(raw) -> Product | InvalidRecord:
    return parse_record("product", PRODUCT_SCHEMA, raw, "id")


def parse_inventory(raw) -> InventoryRecord | InvalidRecord:
    return parse_record("inventory", INVENTORY_SCHEMA, raw, "product_id")
