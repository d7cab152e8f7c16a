"""Products and inventory with the client against the stand-in, over real HTTP."""

from __future__ import annotations

import time
from collections import Counter
from decimal import Decimal

import pytest

from sandbox.tiktok import TikTokStandIn
from tiktok import Product, ProductStatus, ProductSummary, TikTokNotFoundError, TikTokRetryPolicy, TikTokShopClient

FAR_FUTURE = int(time.time()) + 86400
INVENTORY = "/product/202309/inventory/search"


def client_for(t: TikTokStandIn) -> TikTokShopClient:
    return TikTokShopClient(t.app_key, t.app_secret, t.access_token, t.shop_cipher, base_url=t.url,
                            auth_base_url=t.auth_url, refresh_token=t.refresh_token,
                            retry=TikTokRetryPolicy(backoff_base=0.05, jitter=0.05))


@pytest.fixture
def shop():
    with TikTokStandIn(orders=400, seed=9, rate_limit_qps=0) as t:
        yield t


def test_product_search_pages_through_every_product_once(shop):
    got = list(client_for(shop).search_products(0, FAR_FUTURE, page_size=25))
    assert all(isinstance(p, ProductSummary) for p in got)
    assert Counter(p.id for p in got) == Counter(p["id"] for p in shop.first.products())
    with pytest.raises(ValueError):
        next(client_for(shop).search_products(0, FAR_FUTURE, page_size=101))


def test_every_product_and_sku_an_order_names_exists_at_the_price_it_sold_for(shop):
    client = client_for(shop)
    products = {p.id: p for p in client.search_products(0, FAR_FUTURE)}
    for order in shop.orders():
        for line in order["line_items"]:
            sku = next(s for s in products[line["product_id"]].skus if s.id == line["sku_id"])
            assert sku.seller_sku == line["seller_sku"]
            assert sku.price.amount == Decimal(line["original_price"])


def test_product_detail_has_description_images_category_chain_and_stock_per_warehouse(shop):
    client = client_for(shop)
    live = next(p for p in client.search_products(0, FAR_FUTURE) if p.is_live)
    product = client.get_product(live.id)
    assert isinstance(product, Product) and product.title == live.title and product.description.startswith("<p>")
    assert product.images and product.images[0].urls[0].startswith("https://") and product.images[0].thumb_urls
    assert product.categories[0].parent_id == "0" and product.categories[-1].is_leaf
    assert [c.parent_id for c in product.categories[1:]] == [c.id for c in product.categories[:-1]]
    sku = product.skus[0]
    assert len(sku.inventory) == 2 and sku.quantity == sum(w.quantity for w in sku.inventory)
    assert sku.attributes[0].value_name and sku.status == "NORMAL"
    trap = [p for p in shop.first.products() if any(s["price"]["sale_price"] != s["price"]["tax_exclusive_price"]
                                                    for s in p["skus"])]
    assert len(trap) == 1                                   # the price-trap fixture


def test_deleted_products_are_refused_in_detail_but_found_by_a_status_search(shop):
    client = client_for(shop)
    deleted = list(client.search_products(0, FAR_FUTURE, status="DELETED"))
    assert deleted and all(p.status == ProductStatus.DELETED for p in deleted)
    with pytest.raises(TikTokNotFoundError) as caught:
        client.get_product(deleted[0].id)
    assert caught.value.status == 404
    assert {p.status for p in client.search_products(0, FAR_FUTURE)} >= {ProductStatus.ACTIVATE,
                                                                         ProductStatus.SELLER_DEACTIVATED}


def test_price_and_status_edits_move_update_time_and_stock_edits_do_not(shop):
    client = client_for(shop)
    product = next(p for p in shop.first.products() if p["status"] == "ACTIVATE")
    sku_id = product["skus"][0]["id"]
    started = int(time.time())
    assert list(client.search_products(started, FAR_FUTURE)) == []
    shop.first.set_inventory(sku_id, 0)
    assert list(client.search_products(started, FAR_FUTURE)) == []
    shop.first.set_price(sku_id, "7.49")
    (changed,) = client.search_products(started, FAR_FUTURE)
    assert changed.id == product["id"] and changed.skus[0].price.amount == Decimal("7.49")
    shop.first.set_product_status(product["id"], "SELLER_DEACTIVATED")
    (deactivated,) = client.search_products(started, FAR_FUTURE)
    assert deactivated.status == ProductStatus.SELLER_DEACTIVATED and not deactivated.is_live


def test_inventory_goes_to_zero_and_back_per_warehouse(shop):
    client = client_for(shop)
    product = next(p for p in shop.first.products() if p["status"] == "ACTIVATE")
    sku_id, warehouse = product["skus"][0]["id"], product["skus"][0]["inventory"][1]["warehouse_id"]
    shop.first.set_inventory(sku_id, 0, warehouse)
    (record,) = client.search_inventory([product["id"]])
    sku = next(s for s in record.skus if s.id == sku_id)
    assert {w.warehouse_id: w.available_quantity for w in sku.warehouses}[warehouse] == 0
    assert sku.total_available_quantity == sum(w.available_quantity for w in sku.warehouses)
    shop.first.set_inventory(sku_id, 12, warehouse)
    (record,) = client.search_inventory([product["id"]])
    assert {w.warehouse_id: w.available_quantity
            for w in next(s for s in record.skus if s.id == sku_id).warehouses}[warehouse] == 12


def test_inventory_is_asked_a_hundred_products_at_a_time(shop):
    ids = [p["id"] for p in shop.first.products() if p["status"] != "DELETED"]
    wanted = ids + [str(9_000_000_000_000_000_000 + k) for k in range(150 - len(ids))]     # unknown ids are absent
    before = sum(shop.counters()["requests"].get(INVENTORY, {}).values())
    records = client_for(shop).search_inventory(wanted)
    assert sum(shop.counters()["requests"][INVENTORY].values()) - before == 2
    assert sorted(r.product_id for r in records) == sorted(ids)


def test_product_detail_calls_are_counted_and_rate_limited_per_route_not_per_product(shop):
    client = client_for(shop)
    live = [p["id"] for p in shop.first.products() if p["status"] == "ACTIVATE"][:3]
    for product_id in live:
        client.get_product(product_id)
    counted = shop.counters()["requests"]
    assert counted["/product/202309/products/{product_id}"]["0"] == 3
    assert not any(product_id in path for path in counted for product_id in live)


@pytest.mark.parametrize("raw, field", [
    ({"product_id": "1", "skus": [{"id": "2", "total_available_quantity": -1}]}, "skus[0].total_available_quantity"),
    ({"product_id": "1", "skus": [{"id": "2", "total_available_quantity": "5"}]}, "skus[0].total_available_quantity"),
    ({"product_id": "1"}, "skus"),
    ("not an object", "<inventory>"),
])
def test_an_unusable_inventory_record_is_named_by_product_and_field(raw, field):
    from tiktok import InvalidRecord, parse_inventory

    bad = parse_inventory(raw)
    assert isinstance(bad, InvalidRecord) and bad.kind == "inventory" and bad.field == field
    assert bad.record_id == (raw.get("product_id") if isinstance(raw, dict) else None)


@pytest.mark.parametrize("raw, field", [
    ({"id": "1", "title": "T", "status": "ACTIVATE", "create_time": 1_700_000_000, "update_time": 1_700_000_000,
      "skus": [{"id": "2", "price": {"currency": "usd", "sale_price": "1.00"}}]}, "skus[0].price.currency"),
    ({"id": "1", "title": "", "status": "ACTIVATE", "create_time": 1_700_000_000, "update_time": 1_700_000_000,
      "skus": [{"id": "2"}]}, "title"),
    ({"id": "1", "title": "T", "status": "activate", "create_time": 1_700_000_000, "update_time": 1_700_000_000,
      "skus": [{"id": "2"}]}, "status"),
    ({"id": "1", "title": "T", "status": "ACTIVATE", "create_time": 1_700_000_000, "update_time": 1_700_000_000,
      "skus": []}, "skus"),
])
def test_an_unusable_product_detail_is_named_by_id_and_field(raw, field):
    from tiktok import InvalidRecord, parse_product

    bad = parse_product(raw)
    assert isinstance(bad, InvalidRecord) and (bad.kind, bad.record_id, bad.field) == ("product", "1", field)
