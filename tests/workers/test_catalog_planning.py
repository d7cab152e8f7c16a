"""Catalog mapping and planning, pure: TikTok products become items and variants, planned against
what the account's catalog holds (catalog_entries)."""

from __future__ import annotations

from dataclasses import replace

from db.catalog import CATEGORY, ITEM, VARIANT, Entry
from tiktok.catalog import parse_product
from workers.catalog_mapping import DELETE, IGNORE, PUBLISH, UNPUBLISH, MappedProduct, disposition, fingerprint, \
    map_product
from workers.catalog_planning import plan_catalog, plan_stock, restocks

URL = "https://shop.tiktok.com/view/product/{product_id}?region={region}"


def detail(product_id="1729", status="ACTIVATE", skus=(("17291", "LIP-CH", "9.99", (3, 4)),
                                                        ("17292", "", "12.50", (0, 0)))):
    return {"id": product_id, "title": "Hydrating Lip Oil", "status": status, "product_status": status,
            "description": "<p>Glossy &amp; light.</p><ul><li>Ships fast</li></ul>",
            "audit": {"status": "APPROVED"}, "brand": {"id": "7", "name": "Glow Lab"},
            "category_chains": [{"id": "601", "parent_id": "0", "local_name": "Beauty", "is_leaf": False},
                                {"id": "602", "parent_id": "601", "local_name": "Lips", "is_leaf": True}],
            "main_images": [{"uri": "a", "urls": ["https://img/a.jpeg"], "thumb_urls": ["https://img/a-t.jpeg"],
                             "width": 800, "height": 800},
                            {"uri": "b", "urls": ["https://img/b.jpeg"], "thumb_urls": [], "width": 800,
                             "height": 800}],
            "skus": [{"id": sid, "seller_sku": seller, "price": {"currency": "USD", "sale_price": price,
                                                                 "tax_exclusive_price": price},
                      "inventory": [{"warehouse_id": f"w{i}", "quantity": q} for i, q in enumerate(stock)],
                      "sales_attributes": [{"id": "1", "name": "Shade", "value_id": "2", "value_name": f"Shade {sid}"}],
                      "status_info": {"status": "NORMAL"}} for sid, seller, price, stock in skus],
            "create_time": 1_700_000_000, "update_time": 1_700_000_100}


def mapped(**kw) -> MappedProduct:
    return map_product(parse_product(detail(**kw)), URL, "US")


def held_from(plan_rows: dict) -> list[Entry]:
    """What the catalog holds once a plan's rows all landed."""
    return [Entry(r["kind"], r["external_id"], r["product_id"], r["fingerprint"], r.get("inventory_quantity"),
                  r.get("published", True)) for r in plan_rows.values() if r["kind"] != CATEGORY]


def test_a_product_is_one_item_named_by_its_tiktok_id_and_one_variant_per_sku_named_by_the_sku_id():
    product = mapped()
    assert product.item.external_id == "1729" and product.item.title == "Hydrating Lip Oil"
    assert product.item.description == "Glossy & light. Ships fast"
    assert product.item.url == "https://shop.tiktok.com/view/product/1729?region=US"
    assert product.item.image_full_url == "https://img/a.jpeg" and product.item.images == ["https://img/a.jpeg",
                                                                                           "https://img/b.jpeg"]
    assert product.item.price == 9.99 and product.item.category_ids == ["601", "602"]
    assert [v.external_id for v in product.variants] == ["17291", "17292"]
    assert [v.sku for v in product.variants] == ["LIP-CH", "17292"]  # an empty seller SKU falls back to the id
    assert [v.inventory_quantity for v in product.variants] == [7, 0]  # summed over warehouses
    assert all(v.item_external_id == "1729" and v.published for v in product.variants)
    assert product.details == {"url": product.item.url, "image": "https://img/a.jpeg",
                               "categories": ["Beauty", "Lips"], "brand": "Glow Lab", "update_time": 1_700_000_100}


def test_statuses_decide_publish_unpublish_delete_or_never_send():
    assert [disposition(s) for s in ("ACTIVATE", "SELLER_DEACTIVATED", "PLATFORM_DEACTIVATED", "DELETED", "FREEZE",
                                     "DRAFT", "PENDING", "FAILED", "SOMETHING_NEW")] == \
        [PUBLISH, UNPUBLISH, UNPUBLISH, DELETE, DELETE, IGNORE, IGNORE, IGNORE, IGNORE]
    deactivated = mapped(status="SELLER_DEACTIVATED")
    assert deactivated.item.published is False and not any(v.published for v in deactivated.variants)


def test_stock_is_left_out_of_the_fingerprint():
    a, b = mapped().variants[0], replace(mapped().variants[0], inventory_quantity=99)
    assert fingerprint(a) == fingerprint(b)
    assert fingerprint(a) != fingerprint(replace(a, price=1.0))


def test_a_new_product_creates_its_categories_item_and_variants():
    plan = plan_catalog([mapped()], [], set())
    assert [c.external_id for c in plan.categories] == ["601", "602"]
    assert [i.external_id for i in plan.item_creates] == ["1729"]
    assert [v.external_id for v in plan.variant_creates] == ["17291", "17292"]
    assert not (plan.item_updates or plan.variant_updates or plan.stock_updates or plan.variant_deletes)


def test_an_unchanged_product_is_not_sent_again_and_a_known_category_is_taken_as_is():
    first = plan_catalog([mapped()], [], set())
    again = plan_catalog([mapped()], held_from(first.rows), {"601", "602"})
    assert again.empty and again.unchanged == 3


def test_a_stock_change_alone_is_a_stock_only_update():
    first = plan_catalog([mapped()], [], set())
    restocked = mapped(skus=(("17291", "LIP-CH", "9.99", (3, 4)), ("17292", "", "12.50", (5, 0))))
    plan = plan_catalog([restocked], held_from(first.rows), {"601", "602"})
    assert [(v.external_id, v.inventory_quantity, v.price, v.title) for v in plan.stock_updates] == \
        [("17292", 5, None, None)]
    assert not (plan.item_updates or plan.variant_updates)


def test_a_price_change_updates_the_item_and_the_variant():
    first = plan_catalog([mapped()], [], set())
    cheaper = mapped(skus=(("17291", "LIP-CH", "7.00", (3, 4)), ("17292", "", "12.50", (0, 0))))
    plan = plan_catalog([cheaper], held_from(first.rows), {"601", "602"})
    assert [i.price for i in plan.item_updates] == [7.0]
    assert [(v.external_id, v.price) for v in plan.variant_updates] == [("17291", 7.0)]


def test_deactivation_updates_item_and_variants_as_unpublished():
    first = plan_catalog([mapped()], [], set())
    plan = plan_catalog([mapped(status="PLATFORM_DEACTIVATED")], held_from(first.rows), {"601", "602"})
    assert [i.published for i in plan.item_updates] == [False]
    assert [v.published for v in plan.variant_updates] == [False, False]
    assert not (plan.item_deletes or plan.variant_deletes)


def test_a_deleted_product_deletes_its_item_and_each_variant_explicitly():
    first = plan_catalog([mapped()], [], set())
    for status in ("DELETED", "FREEZE"):
        plan = plan_catalog([MappedProduct("1729", disposition(status), None)], held_from(first.rows), set())
        assert plan.item_deletes == ["1729"]
        assert sorted(plan.variant_deletes) == [("17291", "1729"), ("17292", "1729")]


def test_a_deleted_product_never_sent_sends_nothing_and_a_draft_is_never_sent():
    assert plan_catalog([MappedProduct("1", DELETE, None)], [], set()).empty
    draft = plan_catalog([MappedProduct("2", IGNORE, None)], [], set())
    assert draft.empty and draft.ignored == 1


def test_a_sku_that_disappears_has_its_variant_deleted():
    first = plan_catalog([mapped()], [], set())
    fewer = mapped(skus=(("17291", "LIP-CH", "9.99", (3, 4)),))
    plan = plan_catalog([fewer], held_from(first.rows), {"601", "602"})
    assert plan.variant_deletes == [("17292", "1729")] and not plan.item_deletes


def test_stock_polls_send_only_changes_and_name_restocks():
    held = {"a": 0, "b": 5, "c": 2}
    updates = plan_stock({"a": 3, "b": 5, "c": 0, "unknown": 9}, held)
    assert [(v.external_id, v.inventory_quantity) for v in updates] == [("a", 3), ("c", 0)]
    assert restocks({"a": 3, "b": 5, "c": 0}, held) == ["a"]


def test_entries_use_the_kinds_the_database_keeps():
    plan = plan_catalog([mapped()], [], set())
    assert {k for k, _ in plan.rows} == {ITEM, VARIANT, CATEGORY}
