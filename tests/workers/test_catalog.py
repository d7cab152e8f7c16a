"""The catalog: TikTok products kept in step with a Klaviyo catalog through bulk jobs, stock
polled for back in stock, order events naming catalog ids. Real workers, both stand-ins over HTTP."""

from __future__ import annotations

import time
from decimal import Decimal

import pytest

from tests.support import klaviyo_events, wait_for_run
from workers.api import enqueue_catalog_sync, enqueue_sync, retry_failed

LIVE, HIDDEN_FROM_CATALOG = "ACTIVATE", ("DELETED", "FREEZE", "DRAFT", "PENDING", "FAILED")


def ext(resource_id: str) -> str:
    return resource_id.rsplit(":::", 1)[-1]


def klaviyo_catalog(stack) -> tuple[dict, dict]:
    """(items, variants) of the stand-in's catalog, by external id."""
    catalog = stack.klaviyo.state()["catalog"]
    return ({ext(i["id"]): i for i in catalog["items"]}, {ext(v["id"]): v for v in catalog["variants"]})


def expected_catalog(shop) -> tuple[dict, dict]:
    """What the catalog must hold for the shop's products now: (item id -> (published, price, title),
    variant id -> (item id, published, price, stock))."""
    items, variants = {}, {}
    for p in shop.products():
        if p["status"] in HIDDEN_FROM_CATALOG:
            continue
        published = p["status"] == LIVE
        prices = [Decimal(s["price"]["sale_price"]) for s in p["skus"]]
        items[p["id"]] = (published, float(min(prices)), p["title"])
        for s in p["skus"]:
            variants[s["id"]] = (p["id"], published, float(Decimal(s["price"]["sale_price"])),
                                 sum(w["quantity"] for w in s["inventory"]))
    return items, variants


def assert_in_step(stack, shop):
    want_items, want_variants = expected_catalog(shop)
    items, variants = klaviyo_catalog(stack)
    assert {k: (i["published"], i["price"], i["title"]) for k, i in items.items()} == want_items
    assert {k: (ext(v["item"]), v["published"], v["price"], v["inventory_quantity"])
            for k, v in variants.items()} == want_variants


def product_reads(stack) -> int:
    """Get Product calls the TikTok stand-in answered so far."""
    requests = stack.tiktok.counters()["requests"]
    return sum(sum(codes.values()) for path, codes in requests.items()
               if path.startswith("/product/202309/products/") and not path.endswith("/search"))


def catalog_sync(expect="succeeded"):
    run = wait_for_run(enqueue_catalog_sync(), timeout=300)
    assert run.status == expect, run.error or run.error_details
    return run


@pytest.fixture
def stack_with_products(make_stack):
    stack = make_stack(orders=60, workers=2)
    stack.tiktok.shop(0).add_products(240, variants=2)
    return stack


def test_a_catalog_of_hundreds_of_products_stays_in_step_through_create_price_change_deactivation_and_deletion(
        stack_with_products):
    stack = stack_with_products
    shop = stack.tiktok.shop(0)
    assert len(shop.products()) == 300
    first = catalog_sync()
    assert_in_step(stack, shop)
    live = [p for p in shop.products() if p["status"] == LIVE and len(p["skus"]) >= 2]
    repriced, deactivated, deleted, trimmed = live[0], live[1], live[2], live[3]
    shop.set_price(repriced["skus"][0]["id"], "1.23")
    shop.set_product_status(deactivated["id"], "SELLER_DEACTIVATED")
    shop.set_product_status(deleted["id"], "DELETED")
    shop.remove_sku(trimmed["skus"][-1]["id"])
    time.sleep(1.1)  # the changes' update_time (whole seconds) falls inside the next window
    reads_before = product_reads(stack)
    second = catalog_sync()
    # the 240 products added a moment ago are in the window again, but landed at the same update_time:
    # only the changed live or deactivated ones are read again (the deleted one needs no Get Product)
    assert product_reads(stack) - reads_before == 3
    assert_in_step(stack, shop)
    items, variants = klaviyo_catalog(stack)
    assert deleted["id"] not in items and not {s["id"] for s in deleted["skus"]} & set(variants)
    assert trimmed["skus"][-1]["id"] not in variants and items[deactivated["id"]]["published"] is False
    # only what changed was sent: the repriced item and variant, the deactivated item and its variants,
    # the deleted item and its variants, the trimmed SKU's variant
    assert second.items_total == 2 + (1 + len(deactivated["skus"])) + (1 + len(deleted["skus"])) + 1
    assert first.items_total > 800 and second.success_count == second.items_total
    from db import history
    from db.engine import session_scope
    with session_scope() as session:
        jobs = history.get_run(session, second.id).options["catalog_jobs"]
    assert {j["type"] for j in jobs} >= {"catalog-item-bulk-update-job", "catalog-variant-bulk-delete-job",
                                         "catalog-item-bulk-delete-job"}


def test_a_row_klaviyo_refuses_fails_alone_naming_the_variant_and_retry_failed_replays_it(stack_with_products):
    stack = stack_with_products
    shop = stack.tiktok.shop(0)
    product = next(p for p in shop.products() if p["status"] == LIVE and len(p["skus"]) >= 2)
    refused = product["skus"][0]["id"]
    stack.klaviyo.set_faults(fail_rows=f'"{refused}"')
    run = catalog_sync(expect="partial")
    assert run.failed_count == 1
    from db import history
    from db.engine import session_scope
    with session_scope() as session:
        [failed] = history.failed_items(session, run.id)
        assert (failed.kind, failed.key) == ("catalog_variant", refused)
        assert failed.error.startswith(f"variant {refused} (product {product['id']}): ")
    items, variants = klaviyo_catalog(stack)
    assert refused not in variants and product["skus"][1]["id"] in variants and product["id"] in items
    stack.klaviyo.clear_faults()
    replay = wait_for_run(retry_failed(run.id), timeout=120)
    assert replay.status == "succeeded" and replay.success_count >= 1, replay.error or replay.error_details
    assert_in_step(stack, shop)


def test_order_events_name_the_catalog_items_and_variants_of_their_products(make_stack):
    stack = make_stack(orders=120, workers=2)
    catalog_sync()
    run = wait_for_run(enqueue_sync(days_back=31))
    assert run.status == "succeeded", run.error or run.error_details
    items, variants = klaviyo_catalog(stack)
    checked = 0
    for key, event in klaviyo_events(stack).items():
        if event["metric"] not in ("Placed Order", "Ordered Product"):
            continue
        lines = event["properties"]["Items"] if event["metric"] == "Placed Order" else [event["properties"]]
        for line in lines:
            if line["ProductID"] not in items:  # a deleted product an old order still names
                assert "ProductURL" not in line
                continue
            assert line["VariantID"] in variants and ext(variants[line["VariantID"]]["item"]) == line["ProductID"]
            assert line["ProductURL"] == items[line["ProductID"]]["url"]
            assert line["ImageURL"] == items[line["ProductID"]]["image_full_url"]
            checked += 1
    assert checked > 100


def test_an_out_of_stock_variant_restocked_reaches_the_catalog_within_the_poll_interval(make_stack):
    poll = 2
    stack = make_stack(orders=40, workers=2, extra_env={"KSYNC_STOCK_POLL_SECONDS": str(poll),
                                                         "KSYNC_SWEEP_SECONDS": "1"})
    shop = stack.tiktok.shop(0)
    product = next(p for p in shop.products() if p["status"] == LIVE)
    sku = product["skus"][0]["id"]
    warehouses = [w["warehouse_id"] for w in product["skus"][0]["inventory"]]
    for warehouse in warehouses:
        shop.set_inventory(sku, 0, warehouse)
    catalog_sync()
    assert klaviyo_catalog(stack)[1][sku]["inventory_quantity"] == 0
    stack.add_beat()
    time.sleep(poll * 2)  # beat is polling
    restocked_at = time.time()
    shop.set_inventory(sku, 7, warehouses[0])
    deadline = restocked_at + 60
    while time.time() < deadline and klaviyo_catalog(stack)[1][sku]["inventory_quantity"] != 7:
        time.sleep(0.2)
    latency = time.time() - restocked_at
    print(f"restock latency: {latency:.1f} s (KSYNC_STOCK_POLL_SECONDS={poll}, KSYNC_SWEEP_SECONDS=1)")
    assert klaviyo_catalog(stack)[1][sku]["inventory_quantity"] == 7
    restocks = [r for r in stack.klaviyo.state()["catalog"]["restocks"] if ext(r["variant"]) == sku]
    assert restocks and restocks[-1]["before"] == 0 and restocks[-1]["after"] == 7
    assert latency < poll + 1 + 10  # a poll period, a beat tick, one bulk job and its polling


def test_the_variants_of_an_item_klaviyo_refuses_fail_too_naming_the_item(stack_with_products):
    stack = stack_with_products
    shop = stack.tiktok.shop(0)
    product = next(p for p in shop.products() if p["status"] == LIVE and len(p["skus"]) >= 2)
    stack.klaviyo.set_faults(fail_rows=f'"{product["id"]}"')  # the item's create row only
    run = catalog_sync(expect="partial")
    from db import history
    from db.engine import session_scope
    with session_scope() as session:
        failed = {(i.kind, i.key): i.error for i in history.failed_items(session, run.id)}
    assert set(failed) == {("catalog_item", product["id"])} | {("catalog_variant", s["id"]) for s in product["skus"]}
    assert failed[("catalog_item", product["id"])].startswith(f"product {product['id']}: ")
    for sku in product["skus"]:
        assert failed[("catalog_variant", sku["id"])].startswith(
            f"variant {sku['id']} (product {product['id']}): its item failed")
    items, variants = klaviyo_catalog(stack)
    assert product["id"] not in items and not {s["id"] for s in product["skus"]} & set(variants)


def test_a_webhook_order_sync_polls_the_stock_of_the_orders_products(make_stack):
    from tests.support import valid_orders
    from workers import clients, realtime
    from workers.sync import resolve_connection
    from workers.tasks import sync_orders

    stack = make_stack(orders=60, workers=2)
    shop = stack.tiktok.shop(0)
    catalog_sync()
    _, variants = klaviyo_catalog(stack)
    order = next(o for o in valid_orders(stack) if o.line_items[0].sku_id in variants)
    sku = order.line_items[0].sku_id
    shop.set_inventory(sku, 4321)  # a stock edit: no update_time moves, no catalog sync would see it
    connection = resolve_connection()
    realtime.note_orders(clients.redis_client(), connection, [(order.id, int(order.update_time.timestamp()))],
                         time.time())
    sync_orders.apply_async(kwargs={"connection": connection})
    deadline = time.time() + 60
    while time.time() < deadline and klaviyo_catalog(stack)[1][sku]["inventory_quantity"] == variants[sku][
            "inventory_quantity"]:
        time.sleep(0.3)
    expected = sum(w["quantity"] for p in shop.products() for s in p["skus"] if s["id"] == sku for w in s["inventory"])
    assert klaviyo_catalog(stack)[1][sku]["inventory_quantity"] == expected


def test_the_sweeper_restarts_a_stuck_catalog_run_with_the_catalog_task(make_stack):
    from datetime import timedelta

    from db.engine import session_scope
    from db.models import SyncRun, utcnow
    from workers.catalog import CATALOG, create_run
    from workers.sync import resolve_connection
    from workers.tasks import sweep

    stack = make_stack(orders=40, workers=2)
    run_id = create_run(resolve_connection(), CATALOG, "api")  # its task message "lost": never sent
    with session_scope() as session:
        session.get(SyncRun, run_id).updated_at = utcnow() - timedelta(hours=1)
    assert sweep.apply().get()["restarted_runs"] == 1
    run = wait_for_run(run_id, timeout=120)
    assert run.status == "succeeded" and run.sync_type == CATALOG, run.error
    assert_in_step(stack, stack.tiktok.shop(0))
    assert not any(e["metric"] == "Placed Order" for e in stack.klaviyo.state()["events"])  # not an order sync


def test_an_item_klaviyo_already_has_is_sent_again_as_an_update(make_stack):
    from klaviyo import KlaviyoClient
    from klaviyo.catalog import CatalogItem

    stack = make_stack(orders=40, workers=2)
    shop = stack.tiktok.shop(0)
    product = next(p for p in shop.products() if p["status"] == LIVE)
    # made by someone else (or by a lost answer of ours) before ksync's first sync: stale data
    KlaviyoClient(stack.klaviyo.api_key, base_url=stack.klaviyo.url).create_catalog_item(
        CatalogItem(external_id=product["id"], title="stale", description="stale", url="https://example.com/old",
                    price=999.0))
    run = catalog_sync()
    assert run.failed_count == 0
    items, _ = klaviyo_catalog(stack)
    assert items[product["id"]]["title"] == product["title"] and items[product["id"]]["price"] != 999.0
    assert_in_step(stack, shop)
