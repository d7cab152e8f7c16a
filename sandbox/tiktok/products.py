"""A shop's products as the Product API 202309 serves them: detail, search summary, inventory.

Built from the shop's shelf (``catalogue``), so every product and SKU an order
names exists here, at the price the orders were sold at. Each product gets a
category chain, an HTML description, CDN-style images and stock in the shop's
two warehouses. A few start out deactivated or deleted (old orders still name
them), and one has a ``tax_exclusive_price`` that differs from its
``sale_price`` (the reference's price trap).

Changes (price, status, stock, new products, a SKU removed) happen only through the stand-in's
controls (``/_sandbox/products``, ``/_sandbox/skus/<id>/...``).
Price and status edits move ``update_time``; stock edits do not (the reference
leaves it open, and this forces a client to poll inventory search for stock,
the safe assumption).
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field
from decimal import Decimal

from . import money
from .catalogue import Sku

STATUSES = ("DRAFT", "PENDING", "FAILED", "ACTIVATE", "SELLER_DEACTIVATED", "PLATFORM_DEACTIVATED", "FREEZE",
            "DELETED")
#: Get Product refuses these (search with a ``status`` filter finds them).
HIDDEN = frozenset({"FREEZE", "DELETED"})
#: (keywords, category path) — the first match wins.
CATEGORIES = [
    (("Lip", "Blush", "Brow", "Setting Spray", "Tanning", "Nails", "Eyelash"), ("Beauty & Personal Care", "Makeup", "Face Makeup")),
    (("Serum", "Essence", "Roller", "Mask", "Whitening", "Butter", "Steamers"), ("Beauty & Personal Care", "Skincare", "Treatments")),
    (("Curling", "Scalp", "Clip", "Pillowcase"), ("Beauty & Personal Care", "Hair Care", "Styling Tools")),
    (("Leggings", "Hoodie", "Slides", "Bag", "Posture"), ("Womenswear & Underwear", "Clothing", "Everyday Wear")),
    (("Earrings", "Necklace"), ("Fashion Accessories", "Jewellery", "Earrings & Necklaces")),
    (("Earbuds", "Charging", "Case", "Ring Light", "Microphone", "Headband", "LED", "Lamp", "Mount"), ("Phones & Electronics", "Accessories", "Gadgets")),
    (("Cat", "Dog", "Pet"), ("Pet Supplies", "Dogs & Cats", "Toys & Care")),
    (("Coffee", "Collagen", "Gummy"), ("Health", "Nutrition", "Supplements")),
    (("Yoga", "Bands", "Acupressure", "Towel"), ("Sports & Outdoor", "Fitness", "Training")),
    (("Tiles", "Fidget"), ("Toys & Hobbies", "Educational", "Building")),
]
DEFAULT_CATEGORY = ("Home Supplies", "Home Organisers", "Kitchen & Home")
#: Product index on the shelf -> its initial status (the last products are the least popular).
INITIAL_STATUS = {56: "SELLER_DEACTIVATED", 57: "PLATFORM_DEACTIVATED", 58: "SELLER_DEACTIVATED", 59: "DELETED"}
#: The product whose tax-exclusive price differs from its sale price.
PRICE_TRAP_INDEX = 4


@dataclass
class SkuState:
    sku: Sku
    price: Decimal
    tax_exclusive_price: Decimal
    stock: dict[str, int]           #: warehouse id -> available quantity
    committed: dict[str, int]


@dataclass
class ProductState:
    id: str
    index: int
    title: str
    brand: str
    category: tuple[tuple[str, str], ...]    #: (id, name) root first
    image_keys: tuple[str, ...]
    create_time: int
    update_time: int
    status: str
    skus: list[SkuState] = field(default_factory=list)


def _category(title: str) -> tuple[tuple[str, str], ...]:
    path = next((p for words, p in CATEGORIES if any(w in title for w in words)), DEFAULT_CATEGORY)
    ids = [str(600000 + (sum(map(ord, "/".join(path[:i + 1]))) * 37) % 400000) for i in range(len(path))]
    return tuple(zip(ids, path))


def _image(key: str, thumb: bool = False) -> str:
    size = "100:100" if thumb else "origin"
    return f"https://p16-oec-va.ibyteimg.com/tos-maliva-i-o3syd03w52-us/{key}~tplv-o3syd03w52-{size}-jpeg.jpeg" \
           "?from=1432613627"


class Catalog:
    """All products of one shop; thread-safe. Times are unix seconds."""

    def __init__(self, skus: tuple[Sku, ...], currency: str, shop_seed: str, generated_at: int, days: float,
                 region: str = "US"):
        self.lock = threading.RLock()
        self.currency, self.region = currency, region
        rng = random.Random(f"{shop_seed}:catalog")
        self.warehouses = tuple(str(7_068_517_275_539_719_941 + rng.randrange(10**9) * 2 + k) for k in range(2))
        self.products: dict[str, ProductState] = {}
        self.sku_index: dict[str, tuple[ProductState, SkuState]] = {}
        oldest = generated_at - int(days * 86400)
        for sku in skus:
            product = self.products.get(sku.product_id)
            if product is None:
                index = len(self.products)
                created = oldest - rng.randrange(30 * 86400, 300 * 86400)
                product = ProductState(
                    id=sku.product_id, index=index, title=sku.product_name, brand=rng.choice(["Ksync Basics", "Glow Lab", "Nestwell", "Urban Loop"]),
                    category=_category(sku.product_name),
                    image_keys=tuple(f"{rng.getrandbits(128):032x}" for _ in range(rng.randint(2, 4))),
                    create_time=created, update_time=rng.randrange(created, generated_at),
                    status=INITIAL_STATUS.get(index, "ACTIVATE"))
                self.products[product.id] = product
            price = money.shelf_price(sku.price_usd, currency)
            tax_exclusive = money.q(price / Decimal("1.0925"), currency) if product.index == PRICE_TRAP_INDEX else price
            stock = {w: (0 if rng.random() < 0.06 else rng.randint(5, 400)) for w in self.warehouses}
            state = SkuState(sku, price, tax_exclusive, stock, {w: rng.randint(0, 5) for w in self.warehouses})
            product.skus.append(state)
            self.sku_index[sku.sku_id] = (product, state)

    # -- changes ----------------------------------------------------------------------------------------
    def add_products(self, count: int, now: int, variants: int = 2, status: str = "ACTIVATE") -> list[dict]:
        """``count`` new products of ``variants`` SKUs each, created and updated ``now`` (a seller
        growing the catalog; orders never name them). Returns their details."""
        if not 1 <= count <= 1000 or not 1 <= variants <= 20:
            raise ValueError("count must be 1..1000 and variants 1..20")
        if status not in STATUSES:
            raise ValueError(f"unknown product status {status!r}")
        with self.lock:
            rng = random.Random(f"{self.warehouses[0]}:added:{len(self.products)}")
            added = []
            for _ in range(count):
                index = len(self.products)
                product_id = str(1729390000000000000 + index * 10**7 + rng.randrange(10**7))
                title = f"{rng.choice(['Everyday', 'Cozy', 'Mini', 'Pro', 'Travel'])} " \
                        f"{rng.choice(['Lip Oil', 'Yoga Mat', 'Desk Lamp', 'Hoodie', 'Pet Brush', 'Serum'])} {index}"
                product = ProductState(
                    id=product_id, index=index, title=title, brand="Ksync Basics", category=_category(title),
                    image_keys=tuple(f"{rng.getrandbits(128):032x}" for _ in range(2)), create_time=now,
                    update_time=now, status=status)
                self.products[product_id] = product
                for v in range(variants):
                    sku_id = str(int(product_id) + 10**15 + v)
                    price = money.q(Decimal(rng.randint(500, 6000)) / 100, self.currency)
                    sku = Sku(product_id, title, sku_id, f"Option {v + 1}", f"ADD-{index}-{v}",
                              _image(f"{rng.getrandbits(128):032x}"), price)
                    state = SkuState(sku, price, price, {w: rng.randint(1, 50) for w in self.warehouses},
                                     {w: 0 for w in self.warehouses})
                    product.skus.append(state)
                    self.sku_index[sku_id] = (product, state)
                added.append(self.detail(product_id, any_status=True))
            return added

    def remove_sku(self, sku_id: str, now: int) -> dict:
        """The seller deletes one SKU of a product (the product stays); moves ``update_time``."""
        with self.lock:
            product, sku = self.sku_index.pop(sku_id)
            if len(product.skus) == 1:
                self.sku_index[sku_id] = (product, sku)
                raise ValueError("a product keeps at least one SKU; delete the product instead")
            product.skus.remove(sku)
            product.update_time = now
            return self.detail(product.id, any_status=True)

    def set_price(self, sku_id: str, price: str | Decimal, now: int) -> dict:
        """New sale price (and tax-exclusive price) for a SKU; moves the product's ``update_time``."""
        with self.lock:
            product, sku = self.sku_index[sku_id]
            value = Decimal(str(price))
            if not value.is_finite() or value <= 0:
                raise ValueError("price must be a positive decimal")
            sku.price = sku.tax_exclusive_price = money.q(value, self.currency)
            product.update_time = now
            return self.detail(product.id, any_status=True)

    def set_status(self, product_id: str, status: str, now: int) -> dict:
        """``ACTIVATE``, ``SELLER_DEACTIVATED``, ``DELETED``, ...; moves ``update_time``."""
        if status not in STATUSES:
            raise ValueError(f"unknown product status {status!r}")
        with self.lock:
            product = self.products[product_id]
            product.status, product.update_time = status, now
            return self.detail(product_id, any_status=True)

    def set_inventory(self, sku_id: str, quantity: int, warehouse_id: str | None = None) -> dict:
        """Available stock of a SKU in one warehouse (default: the first); ``update_time`` stays."""
        if isinstance(quantity, bool) or not isinstance(quantity, int) or not 0 <= quantity <= 99_999:
            raise ValueError("quantity must be an integer 0..99999")
        with self.lock:
            product, sku = self.sku_index[sku_id]
            warehouse = warehouse_id or self.warehouses[0]
            if warehouse not in sku.stock:
                raise ValueError(f"unknown warehouse {warehouse!r}")
            sku.stock[warehouse] = quantity
            return self.inventory_of(product)

    # -- rendering --------------------------------------------------------------------------------------
    def _price(self, sku: SkuState) -> dict:
        return {"currency": self.currency, "sale_price": money.fmt(sku.price, self.currency),
                "tax_exclusive_price": money.fmt(sku.tax_exclusive_price, self.currency)}

    def summary(self, product: ProductState) -> dict:
        """A product as Search Products lists it."""
        return {"id": product.id, "title": product.title, "status": product.status,
                "create_time": product.create_time, "update_time": product.update_time, "sales_regions": [self.region],
                "skus": [{"id": s.sku.sku_id, "seller_sku": s.sku.seller_sku, "price": self._price(s),
                          "inventory": [{"warehouse_id": w, "quantity": q} for w, q in s.stock.items()]}
                         for s in product.skus]}

    def detail(self, product_id: str, any_status: bool = False) -> dict | None:
        """Get Product's answer; None for an unknown id, or a DELETED / FREEZE one unless ``any_status``."""
        with self.lock:
            product = self.products.get(product_id)
            if product is None or (product.status in HIDDEN and not any_status):
                return None
            chain = [{"id": cid, "parent_id": product.category[i - 1][0] if i else "0", "local_name": name,
                      "is_leaf": i == len(product.category) - 1} for i, (cid, name) in enumerate(product.category)]
            images = [{"uri": f"tos-maliva-i-o3syd03w52-us/{k}", "urls": [_image(k)], "thumb_urls": [_image(k, True)],
                       "width": 800, "height": 800} for k in product.image_keys]
            skus = []
            for s in product.skus:
                attribute = {"id": "100000", "name": "Variant", "value_id": str(int(s.sku.sku_id) % 10**9),
                             "value_name": s.sku.sku_name, "sku_img": {"urls": [s.sku.sku_image]}}
                skus.append({"id": s.sku.sku_id, "seller_sku": s.sku.seller_sku, "price": self._price(s),
                             "inventory": [{"warehouse_id": w, "quantity": q} for w, q in s.stock.items()],
                             "sales_attributes": [attribute], "status_info": {"status": "NORMAL"}})
            product_status = "ACTIVATE" if product.status in ("PENDING", "FAILED") else product.status
            return {"id": product.id, "title": product.title, "status": product.status,
                    "product_status": product_status,
                    "description": f"<p>{product.title}: a {product.category[-1][1].lower()} favourite.</p>"
                                   f"<ul><li>Ships in 1-3 days</li><li>30-day returns</li></ul>",
                    "audit": {"status": "APPROVED"}, "brand": {"id": str(7_000_000 + product.index),
                                                               "name": product.brand},
                    "category_chains": chain, "main_images": images, "skus": skus, "is_not_for_sale": False,
                    "create_time": product.create_time, "update_time": product.update_time}

    def inventory_of(self, product: ProductState, sku_ids: set[str] | None = None) -> dict:
        skus = []
        for s in product.skus:
            if sku_ids is not None and s.sku.sku_id not in sku_ids:
                continue
            skus.append({"id": s.sku.sku_id, "seller_sku": s.sku.seller_sku,
                         "total_available_quantity": sum(s.stock.values()),
                         "total_committed_quantity": sum(s.committed.values()),
                         "warehouse_inventory": [{"warehouse_id": w, "available_quantity": q,
                                                  "committed_quantity": s.committed[w]} for w, q in s.stock.items()]})
        return {"product_id": product.id, "skus": skus}

    def inventory(self, product_ids: list[str] | None = None, sku_ids: list[str] | None = None) -> list[dict]:
        """Inventory Search: by SKU ids when given (they win over product ids), else by product ids.
        Unknown and deleted products are left out."""
        with self.lock:
            if sku_ids:
                wanted = set(sku_ids)
                products = list(dict.fromkeys(self.sku_index[s][0].id for s in sku_ids if s in self.sku_index))
                return [self.inventory_of(self.products[p], wanted) for p in products
                        if self.products[p].status != "DELETED"]
            return [self.inventory_of(self.products[p]) for p in dict.fromkeys(product_ids or [])
                    if p in self.products and self.products[p].status != "DELETED"]

    def search_rows(self, status: str | None, seller_skus: set[str] | None, bounds: dict) -> list[tuple[int, str, dict]]:
        """(update_time, id, summary) of the products matching the Search body; both time bounds inclusive."""
        with self.lock:
            rows = []
            for p in self.products.values():
                if status not in (None, "ALL") and p.status != status:
                    continue
                if seller_skus and not seller_skus & {s.sku.seller_sku for s in p.skus}:
                    continue
                if not _within(p.create_time, bounds.get("create_time_ge"), bounds.get("create_time_le")) or \
                        not _within(p.update_time, bounds.get("update_time_ge"), bounds.get("update_time_le")):
                    continue
                rows.append((p.update_time, p.id, self.summary(p)))
            return sorted(rows, key=lambda r: (r[0], r[1]))


def _within(value: int, ge: int | None, le: int | None) -> bool:
    return (ge is None or value >= ge) and (le is None or value <= le)
