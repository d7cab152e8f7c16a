"""TikTok products as Klaviyo catalog objects: pure, like ``mapping.py`` (no I/O, no Celery, no SQL).

One catalog item per product, external id = the TikTok product id; one variant per SKU, external
id = the TikTok SKU id (seller SKUs can be empty, and collide between shops). The mapping table is
``commerce-apis.md`` §6 "Catalog". What a product's status means for the catalog (``disposition``):

    ACTIVATE                                  published item and variants
    SELLER_DEACTIVATED, PLATFORM_DEACTIVATED  kept, ``published: false`` on item and variants
    DELETED, FREEZE                           item deleted, and each variant deleted explicitly
    DRAFT, PENDING, FAILED, anything unknown  never sent (left as it is if it was sent before)
"""

from __future__ import annotations

import hashlib
import html
import json
import re
from dataclasses import asdict, dataclass
from decimal import Decimal

from klaviyo.catalog import CatalogCategory, CatalogItem, CatalogVariant

PUBLISH, UNPUBLISH, DELETE, IGNORE = "publish", "unpublish", "delete", "ignore"
_DISPOSITION = {"ACTIVATE": PUBLISH, "SELLER_DEACTIVATED": UNPUBLISH, "PLATFORM_DEACTIVATED": UNPUBLISH,
                "DELETED": DELETE, "FREEZE": DELETE}
#: 1: an out-of-stock variant is hidden from product feeds and blocks (as Klaviyo's own plugin does).
INVENTORY_POLICY = 1
_TAGS = re.compile(r"<[^>]+>")
_SPACE = re.compile(r"\s+")


def disposition(status) -> str:
    """What the catalog does with a product in this TikTok ``status``."""
    return _DISPOSITION.get(getattr(status, "value", status), IGNORE)


def plain_text(description: str | None) -> str:
    """TikTok's HTML description as plain text (block ends become spaces)."""
    text = _TAGS.sub(" ", description or "")
    return _SPACE.sub(" ", html.unescape(text)).strip()


def product_url(template: str, product_id: str, region: str) -> str:
    return template.format(product_id=product_id, region=region or "US")


def _price(sku) -> Decimal | None:
    return sku.price.amount if sku.price is not None else None


def _number(value: Decimal | None) -> float | None:
    return float(value) if value is not None else None


@dataclass(frozen=True)
class MappedProduct:
    """A product as the catalog should hold it: the item, its variants and categories, and the
    order-event fields kept in ``catalog_entries`` (URL, image, category names, brand)."""

    product_id: str
    disposition: str
    item: CatalogItem | None
    variants: tuple[CatalogVariant, ...] = ()
    categories: tuple[CatalogCategory, ...] = ()
    details: dict | None = None


def map_product(product, url_template: str, region: str = "US") -> MappedProduct:
    """A Get Product detail as its catalog item, variants and categories."""
    action = disposition(product.status)
    if action in (DELETE, IGNORE):
        return MappedProduct(product.id, action, None)
    published = action == PUBLISH
    url = product_url(url_template, product.id, region)
    images = [i.urls[0] for i in product.images if i.urls]
    thumb = next((i.thumb_urls[0] for i in product.images if i.thumb_urls), None)
    prices = [p for p in (_price(s) for s in product.skus) if p is not None]
    description = plain_text(product.description) or product.title
    categories = tuple(CatalogCategory(external_id=c.id, name=c.name) for c in product.categories)
    item = CatalogItem(
        external_id=product.id, title=product.title, description=description, url=url,
        price=_number(min(prices)) if prices else None,
        image_full_url=images[0] if images else None, image_thumbnail_url=thumb or (images[0] if images else None),
        images=images or None, published=published, category_ids=[c.external_id for c in categories],
        custom_metadata={k: v for k, v in (("brand", product.brand), ("tiktok_status", str(getattr(
            product.status, "value", product.status))), ("currency", _currency(product))) if v})
    variants = tuple(_variant(product, sku, url, images, published) for sku in product.skus)
    details = {"url": url, "image": images[0] if images else None, "categories": [c.name for c in product.categories],
               "brand": product.brand, "update_time": int(product.update_time.timestamp())}
    return MappedProduct(product.id, action, item, variants, categories, details)


def _currency(product) -> str | None:
    return next((s.price.currency for s in product.skus if s.price is not None), None)


def _variant(product, sku, url: str, images: list[str], published: bool) -> CatalogVariant:
    names = [a.value_name for a in sku.attributes if a.value_name]
    own_image = next((a.image_url for a in sku.attributes if a.image_url), None)
    image = own_image or (images[0] if images else None)
    return CatalogVariant(
        external_id=sku.id, item_external_id=product.id,
        title=" / ".join([product.title, *names]) if names else product.title,
        description=plain_text(product.description) or product.title,
        sku=sku.seller_sku or sku.id, price=_number(_price(sku)), inventory_quantity=sku.quantity,
        inventory_policy=INVENTORY_POLICY, url=url, image_full_url=image, image_thumbnail_url=image,
        published=published and (sku.status or "NORMAL") == "NORMAL")


def fingerprint(value) -> str:
    """A hash of what is sent for ``value`` (item, variant or category), the stock left out: an
    unchanged object is not sent again, and a stock change alone is a stock-only update."""
    data = asdict(value)
    data.pop("inventory_quantity", None)
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()
