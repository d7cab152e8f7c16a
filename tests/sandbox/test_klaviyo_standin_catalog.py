"""The Klaviyo stand-in's catalog over real HTTP: shapes, rules, listings, bulk jobs, limits, faults, back in stock.

Deliberately without our client (see tests/klaviyo/test_catalog.py for it): raw
bodies, so the stand-in is checked against the spec rather than against the client.
"""

from __future__ import annotations

import time

import pytest

from klaviyo.limits import operation_limits
from sandbox.klaviyo import KlaviyoStandIn
from sandbox.klaviyo.limits import FixedWindowLimiter, Limit
from tests.sandbox.test_klaviyo_standin import Api, at_start_of_a_second, error_of, follow

PREFIX = "$custom:::$default:::"
ITEM_ATTRIBUTES = {"external_id", "title", "description", "price", "url", "image_full_url", "image_thumbnail_url",
                   "images", "custom_metadata", "published", "created", "updated"}
VARIANT_ATTRIBUTES = ITEM_ATTRIBUTES | {"sku", "inventory_policy", "inventory_quantity"}
JOB_ATTRIBUTES = {"status", "created_at", "total_count", "completed_count", "failed_count", "completed_at", "errors",
                  "expires_at"}


def item_resource(external_id="P1", **attributes) -> dict:
    base = {"external_id": external_id, "title": "Shirt", "description": "Soft.", "url": "https://shop/p1"}
    return {"type": "catalog-item", "attributes": {**base, **attributes}}


def variant_resource(external_id="S1", item="P1", **attributes) -> dict:
    base = {"external_id": external_id, "title": "Shirt / M", "description": "", "sku": f"SKU-{external_id}",
            "inventory_quantity": 0, "price": 19.5, "url": "https://shop/p1"}
    return {"type": "catalog-variant", "attributes": {**base, **attributes},
            "relationships": {"item": {"data": {"type": "catalog-item", "id": PREFIX + item}}}}


def job_body(kind: str, action: str, rows: list) -> dict:
    key = {"item": "items", "variant": "variants", "category": "categories"}[kind]
    return {"data": {"type": f"catalog-{kind}-bulk-{action}-job", "attributes": {key: {"data": rows}}}}


def settled(api: Api, kind: str, action: str, job_id: str, **params) -> dict:
    for _ in range(100):
        data = api.get(f"/catalog-{kind}-bulk-{action}-jobs/{job_id}", **params).json()
        if data["data"]["attributes"]["status"] in ("complete", "cancelled"):
            return data
        time.sleep(0.02)
    raise AssertionError("the job never completed")


@pytest.fixture
def api(k):
    return Api(k)


def make(api: Api, path: str, resource: dict) -> dict:
    response = api.post(path, {"data": resource})
    assert response.status_code == 201, response.text
    return response.json()["data"]


# -- items, variants, categories ------------------------------------------------------------------------

def test_an_item_is_created_with_the_specs_shape_and_a_compound_id(api):
    data = make(api, "/catalog-items", item_resource(price=42.0, images=["https://i/1.jpg"],
                                                     custom_metadata={"brand": "Acme"}))
    assert (data["type"], data["id"]) == ("catalog-item", PREFIX + "P1")
    assert set(data["attributes"]) == ITEM_ATTRIBUTES
    assert (data["attributes"]["published"], data["attributes"]["price"]) == (True, 42.0)
    assert set(data["relationships"]["variants"]["links"]) == {"self", "related"}
    assert data["links"]["self"] == f"{api.base}/catalog-items/{PREFIX}P1/"
    assert api.get(f"/catalog-items/{PREFIX}P1").json()["data"]["attributes"]["custom_metadata"] == {"brand": "Acme"}


def test_creating_an_id_that_exists_is_409_conflict(api):
    make(api, "/catalog-items", item_resource())
    response = api.post("/catalog-items", {"data": item_resource(title="Other")})
    assert response.status_code == 409 and error_of(response)["code"] == "conflict"


@pytest.mark.parametrize("resource, pointer", [
    (item_resource(title=None), "/data/attributes/title"),
    ({"type": "catalog-item", "attributes": {"title": "T", "description": "", "url": "u"}},
     "/data/attributes/external_id"),
    (item_resource(price="12"), "/data/attributes/price"),
    (item_resource(published="yes"), "/data/attributes/published"),
    (item_resource(images="https://i/1.jpg"), "/data/attributes/images"),
    (item_resource(colour="red"), "/data/attributes/colour"),
    (item_resource(integration_type="$shopify"), "/data/attributes/integration_type"),
    (item_resource(custom_metadata={"nested": {"a": 1}}), "/data/attributes/custom_metadata/nested"),
    (item_resource(custom_metadata={"blob": "x" * (101 * 1024)}), "/data/attributes/custom_metadata"),
    (item_resource(external_id="  "), "/data/attributes/external_id"),
    ({**item_resource(), "type": "catalog-variant"}, "/data/type"),
    ({**item_resource(), "relationships": {"categories": {"data": [{"type": "catalog-category", "id": "nope"}]}}},
     "/data/relationships/categories/data/0/id"),
])
def test_an_invalid_item_is_400_with_a_pointer_to_the_field(k, api, resource, pointer):
    response = api.post("/catalog-items", {"data": resource})
    assert response.status_code == 400, response.text
    error = error_of(response)
    assert (error["code"], error["source"]) == ("invalid", {"pointer": pointer})
    assert k.summary()["catalog"]["items"] == 0


def test_patch_leaves_omitted_attributes_clears_optional_nulls_and_keeps_required_ones(api):
    make(api, "/catalog-items", item_resource(price=5, images=["a"]))
    iid = PREFIX + "P1"
    body = {"data": {"type": "catalog-item", "id": iid, "attributes": {"title": None, "images": None, "price": 7}}}
    attributes = api.send("PATCH", f"/catalog-items/{iid}", body).json()["data"]["attributes"]
    assert (attributes["title"], attributes["images"], attributes["price"], attributes["url"]) == \
        ("Shirt", None, 7, "https://shop/p1")


@pytest.mark.parametrize("attributes, pointer", [({"external_id": "P2"}, "/data/attributes/external_id"),
                                                 ({"catalog_type": "$default"}, "/data/attributes/catalog_type")])
def test_patch_cannot_change_what_only_a_create_sets(api, attributes, pointer):
    make(api, "/catalog-items", item_resource())
    body = {"data": {"type": "catalog-item", "id": PREFIX + "P1", "attributes": attributes}}
    response = api.send("PATCH", f"/catalog-items/{PREFIX}P1", body)
    assert response.status_code == 400 and error_of(response)["source"] == {"pointer": pointer}


def test_patch_needs_the_urls_id_and_an_existing_resource(api):
    make(api, "/catalog-items", item_resource())
    wrong = {"data": {"type": "catalog-item", "id": PREFIX + "P2", "attributes": {}}}
    assert api.send("PATCH", f"/catalog-items/{PREFIX}P1", wrong).status_code == 400
    assert api.send("PATCH", f"/catalog-items/{PREFIX}P2", wrong).status_code == 404
    assert api.get(f"/catalog-items/{PREFIX}P2").status_code == 404
    assert api.send("DELETE", f"/catalog-items/{PREFIX}P2", "").status_code == 404


def test_a_variant_belongs_to_an_existing_item_and_never_moves(api):
    response = api.post("/catalog-variants", {"data": variant_resource()})
    assert response.status_code == 400
    assert error_of(response)["source"] == {"pointer": "/data/relationships/item/data/id"}
    make(api, "/catalog-items", item_resource())
    data = make(api, "/catalog-variants", variant_resource(inventory_policy=1))
    assert set(data["attributes"]) == VARIANT_ATTRIBUTES
    assert data["relationships"]["item"]["data"] == {"type": "catalog-item", "id": PREFIX + "P1"}
    moved = {"data": {"type": "catalog-variant", "id": PREFIX + "S1", "attributes": {},
                      "relationships": {"item": {"data": {"type": "catalog-item", "id": PREFIX + "P2"}}}}}
    assert api.send("PATCH", f"/catalog-variants/{PREFIX}S1", moved).status_code == 400
    no_item = variant_resource()
    del no_item["relationships"]
    assert error_of(api.post("/catalog-variants", {"data": no_item}))["source"] == \
        {"pointer": "/data/relationships/item"}


@pytest.mark.parametrize("attributes, pointer", [({"inventory_policy": 3}, "/data/attributes/inventory_policy"),
                                                 ({"inventory_quantity": None}, "/data/attributes/inventory_quantity"),
                                                 ({"sku": 12}, "/data/attributes/sku")])
def test_an_invalid_variant_is_400_with_a_pointer(api, attributes, pointer):
    make(api, "/catalog-items", item_resource())
    response = api.post("/catalog-variants", {"data": variant_resource(**attributes)})
    assert response.status_code == 400 and error_of(response)["source"] == {"pointer": pointer}


def test_deleting_an_item_deletes_its_variants(k, api):
    make(api, "/catalog-items", item_resource())
    make(api, "/catalog-variants", variant_resource())
    assert api.send("DELETE", f"/catalog-items/{PREFIX}P1", "").status_code == 204
    assert api.get(f"/catalog-variants/{PREFIX}S1").status_code == 404
    assert k.summary()["catalog"] == {**k.summary()["catalog"], "items": 0, "variants": 0}


def test_categories_link_items_and_deleting_one_leaves_the_items(api):
    make(api, "/catalog-categories", {"type": "catalog-category", "attributes": {"external_id": "C1", "name": "Tops"}})
    category = make(api, "/catalog-categories", {"type": "catalog-category", "attributes": {
        "external_id": "C2", "name": "Sale"}})
    assert set(category["attributes"]) == {"external_id", "name", "updated"}
    link = {"relationships": {"categories": {"data": [{"type": "catalog-category", "id": PREFIX + "C1"},
                                                      {"type": "catalog-category", "id": PREFIX + "C2"}]}}}
    make(api, "/catalog-items", {**item_resource(), **link})
    names = lambda: [c["attributes"]["name"] for c in api.get(  # noqa: E731
        "/catalog-categories", filter=f'equals(item.id,"{PREFIX}P1")').json()["data"]]
    assert names() == ["Tops", "Sale"]
    renamed = {"data": {"type": "catalog-category", "id": PREFIX + "C2", "attributes": {"name": "Deals"}}}
    assert api.send("PATCH", f"/catalog-categories/{PREFIX}C2", renamed).json()["data"]["attributes"]["name"] == "Deals"
    assert api.send("DELETE", f"/catalog-categories/{PREFIX}C1", "").status_code == 204
    assert names() == ["Deals"] and api.get(f"/catalog-items/{PREFIX}P1").status_code == 200
    in_c2 = api.get("/catalog-items", filter=f'equals(category.id,"{PREFIX}C2")').json()["data"]
    assert [i["id"] for i in in_c2] == [PREFIX + "P1"]


# -- listings --------------------------------------------------------------------------------------------

def test_items_list_with_the_specs_filters_sorts_sparse_fields_and_includes(api):
    for n, title, published in ((1, "Red shirt", True), (2, "Blue shirt", False), (3, "Red shoe", True)):
        make(api, "/catalog-items", item_resource(f"P{n}", title=title, published=published))
    make(api, "/catalog-variants", variant_resource("S1", "P1"))

    def ids(**params):
        return [d["attributes"]["external_id"] for d in api.get("/catalog-items", **params).json()["data"]]

    assert ids() == ["P1", "P2", "P3"] and ids(sort="-created") == ["P3", "P2", "P1"]
    assert ids(filter='contains(title,"shirt")') == ["P1", "P2"]
    assert ids(filter="equals(published,false)") == ["P2"]
    assert ids(filter=f'any(ids,["{PREFIX}P3","{PREFIX}P1"])') == ["P1", "P3"]
    assert ids(filter=f'and(contains(title,"Red"),any(ids,["{PREFIX}P3"]))') == ["P3"]
    document = api.get("/catalog-items", include="variants", **{"fields[catalog-item]": "title"}).json()
    assert set(document["data"][0]["attributes"]) == {"title"}
    assert [i["id"] for i in document["included"]] == [PREFIX + "S1"]
    for params in ({"filter": 'equals(sku,"x")'}, {"sort": "title"}, {"include": "categories"},
                   {"page[size]": "101"}, {"filter": 'equals(category.id,["a"])'}):
        assert api.get("/catalog-items", **params).status_code == 400, params


def test_variants_list_by_item_sku_and_title_and_under_their_item(api):
    make(api, "/catalog-items", item_resource("P1"))
    make(api, "/catalog-items", item_resource("P2"))
    for n, product in ((1, "P1"), (2, "P1"), (3, "P2")):
        make(api, "/catalog-variants", variant_resource(f"S{n}", product))

    def ids(path="/catalog-variants", **params):
        response = api.get(path, **params)
        assert response.status_code == 200, response.text
        return [d["attributes"]["external_id"] for d in response.json()["data"]]

    assert ids(filter=f'equals(item.id,"{PREFIX}P1")') == ["S1", "S2"]
    assert ids(filter='equals(sku,"SKU-S3")') == ["S3"]
    assert ids(f"/catalog-items/{PREFIX}P2/variants") == ["S3"]
    assert ids(f"/catalog-items/{PREFIX}P2/variants", filter=f'equals(item.id,"{PREFIX}P1")') == []
    assert api.get(f"/catalog-items/{PREFIX}P9/variants").status_code == 404


def test_catalog_listings_page_by_100_with_links_next(api):
    rows = [item_resource(f"P{n}") for n in range(100)] + [item_resource("P100")]
    assert api.post("/catalog-item-bulk-create-jobs", job_body("item", "create", rows[:100])).status_code == 202
    api.post("/catalog-item-bulk-create-jobs", job_body("item", "create", rows[100:]))
    time.sleep(0.15)
    items, pages = follow(api, "/catalog-items")
    assert (len(items), pages) == (101, 2)
    assert len(follow(api, "/catalog-items", **{"page[size]": "7"})[0]) == 101


# -- bulk jobs -------------------------------------------------------------------------------------------

def test_a_bulk_job_is_accepted_queued_then_processing_then_complete():
    with KlaviyoStandIn(rate_limit_scale=100, job_stage_seconds=0.5) as k:
        api = Api(k)
        response = api.post("/catalog-item-bulk-create-jobs", job_body("item", "create", [item_resource()]))
        assert response.status_code == 202
        job = response.json()["data"]
        assert (job["type"], job["attributes"]["status"]) == ("catalog-item-bulk-create-job", "queued")
        assert set(job["attributes"]) == JOB_ATTRIBUTES and job["relationships"]["items"]["data"] == []
        assert k.summary()["catalog"]["items"] == 0
        time.sleep(0.55)
        assert api.get(f"/catalog-item-bulk-create-jobs/{job['id']}").json()["data"]["attributes"]["status"] == \
            "processing"
        time.sleep(0.5)
        done = api.get(f"/catalog-item-bulk-create-jobs/{job['id']}", include="items").json()
        assert done["data"]["attributes"]["status"] == "complete"
        assert (done["data"]["attributes"]["completed_count"], done["data"]["attributes"]["failed_count"]) == (1, 0)
        assert done["data"]["relationships"]["items"]["data"] == [{"type": "catalog-item", "id": PREFIX + "P1"}]
        assert [i["id"] for i in done["included"]] == [PREFIX + "P1"]


def test_every_job_type_runs_its_rows(k, api):
    category = {"type": "catalog-category", "attributes": {"external_id": "C1", "name": "Tops"}}
    steps = [("category", "create", [category]),
             ("item", "create", [item_resource()]),
             ("variant", "create", [variant_resource()]),
             ("category", "update", [{"type": "catalog-category", "id": PREFIX + "C1", "attributes": {"name": "T"}}]),
             ("item", "update", [{"type": "catalog-item", "id": PREFIX + "P1", "attributes": {"price": 3}}]),
             ("variant", "update", [{"type": "catalog-variant", "id": PREFIX + "S1",
                                     "attributes": {"inventory_quantity": 2}}]),
             ("variant", "delete", [{"type": "catalog-variant", "id": PREFIX + "S1"}]),
             ("item", "delete", [{"type": "catalog-item", "id": PREFIX + "P1"}]),
             ("category", "delete", [{"type": "catalog-category", "id": PREFIX + "C1"}])]
    for kind, action, rows in steps:
        response = api.post(f"/catalog-{kind}-bulk-{action}-jobs", job_body(kind, action, rows))
        assert response.status_code == 202, (kind, action, response.text)
        done = settled(api, kind, action, response.json()["data"]["id"])["data"]
        assert done["attributes"]["errors"] == [] and done["attributes"]["completed_count"] == 1, (kind, action)
    assert k.summary()["catalog"] | {"jobs": 0, "restocks": 0} == {
        "items": 0, "variants": 0, "categories": 0, "jobs": 0, "jobs_in_progress": 0, "restocks": 0,
        "back_in_stock_waiting": 0}
    assert len(k.state()["catalog"]["restocks"]) == 1  # the variant update took it from 0 to 2


def test_a_job_of_more_than_100_rows_is_400_and_makes_no_job(k, api):
    response = api.post("/catalog-item-bulk-create-jobs",
                        job_body("item", "create", [item_resource(f"P{n}") for n in range(101)]))
    assert response.status_code == 400
    assert error_of(response)["source"] == {"pointer": "/data/attributes/items/data"}
    assert k.summary()["catalog"]["jobs"] == 0


def test_a_malformed_row_fails_the_whole_request_naming_the_row(k, api):
    rows = [item_resource("P0"), item_resource("P1", price="free")]
    response = api.post("/catalog-item-bulk-create-jobs", job_body("item", "create", rows))
    assert response.status_code == 400
    assert error_of(response)["source"] == {"pointer": "/data/attributes/items/data/1/attributes/price"}
    assert k.summary()["catalog"]["jobs"] == 0


def test_rows_that_fail_inside_a_job_are_errors_naming_the_row_and_missing_from_relationships(api):
    make(api, "/catalog-items", item_resource("P1"))
    rows = [variant_resource("S1"), variant_resource("S2", item="P9"), variant_resource("S1")]
    job = api.post("/catalog-variant-bulk-create-jobs", job_body("variant", "create", rows)).json()["data"]
    done = settled(api, "variant", "create", job["id"])["data"]
    attributes = done["attributes"]
    assert (attributes["total_count"], attributes["completed_count"], attributes["failed_count"]) == (3, 1, 2)
    assert [(e["code"], e["source"]["pointer"]) for e in attributes["errors"]] == [
        ("invalid", "/data/attributes/variants/data/1/relationships/item/data/id"),
        ("conflict", "/data/attributes/variants/data/2/attributes/external_id")]
    assert all(set(e) == {"id", "code", "title", "detail", "source"} for e in attributes["errors"])
    assert done["relationships"]["variants"]["data"] == [{"type": "catalog-variant", "id": PREFIX + "S1"}]


def test_jobs_list_by_type_and_status_and_a_job_is_found_only_under_its_type(api):
    job = api.post("/catalog-item-bulk-create-jobs", job_body("item", "create", [item_resource()])).json()["data"]
    assert api.get(f"/catalog-item-bulk-update-jobs/{job['id']}").status_code == 404
    settled(api, "item", "create", job["id"])
    listed = api.get("/catalog-item-bulk-create-jobs", filter='equals(status,"complete")').json()["data"]
    assert [j["id"] for j in listed] == [job["id"]]
    assert api.get("/catalog-item-bulk-create-jobs", filter='equals(status,"queued")').json()["data"] == []
    assert api.get("/catalog-variant-bulk-create-jobs").json()["data"] == []


def test_more_than_the_open_jobs_limit_is_429_until_the_oldest_completes():
    with KlaviyoStandIn(rate_limit_scale=100, job_stage_seconds=0.5, max_open_catalog_jobs=2) as k:
        api = Api(k)
        body = job_body("item", "create", [item_resource()])
        assert [api.post("/catalog-item-bulk-create-jobs", body).status_code for _ in range(2)] == [202, 202]
        refused = api.post("/catalog-variant-bulk-update-jobs", job_body("variant", "update", [
            {"type": "catalog-variant", "id": PREFIX + "S1", "attributes": {}}]))
        assert refused.status_code == 429 and refused.headers["Retry-After"] == "1"
        assert error_of(refused)["code"] == "throttled"
        time.sleep(1.05)
        assert api.post("/catalog-item-bulk-create-jobs", body).status_code == 202


def test_catalog_limits_are_the_specs(k, api):
    limiter = FixedWindowLimiter()
    assert limiter.limit_for("bulk_create_catalog_variants") == Limit(75, 750, None)
    assert limiter.limit_for("get_bulk_create_variants_job") == Limit(75, 750, None)
    assert limiter.limit_for("get_bulk_delete_catalog_items_job") == Limit(350, 3500, None)
    assert limiter.limit_for("get_catalog_items") == Limit(350, 3500, None)
    assert limiter.limit_for("create_catalog_item") == Limit(75, 750, None)
    k.set_limits({"bulk_create_catalog_items": (1, 100, None)})
    at_start_of_a_second()
    body = job_body("item", "create", [item_resource()])
    assert [api.post("/catalog-item-bulk-create-jobs", body).status_code for _ in range(2)] == [202, 429]


def test_every_catalog_and_account_route_is_named_by_the_specs_operation_id(k):
    by_path = {(limit.method, limit.path): op for op, limit in operation_limits().items()}
    checked = 0
    for rule in k.app.url_map.iter_rules():
        if not rule.rule.startswith(("/api/catalog", "/api/accounts", "/api/back-in-stock")):
            continue
        path = rule.rule.replace("<id>", "{id}").replace("<job_id>", "{job_id}")
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            assert by_path[(method, path)] == rule.endpoint, (method, path)
            checked += 1
    assert checked == 46


# -- faults and accounts ---------------------------------------------------------------------------------

def test_faults_apply_to_catalog_operations(k, api):
    k.set_faults(error_rate=1.0, ops=["create_catalog_item"])
    assert api.post("/catalog-items", {"data": item_resource()}).status_code in (500, 503)
    assert api.get("/catalog-items").status_code == 200
    assert k.summary()["catalog"]["items"] == 0


@pytest.mark.parametrize("outcome, counts", [("cancelled", ("cancelled", 0, 0, 0)), ("short", ("complete", 2, 0, 2)),
                                             ("orphan_error", ("complete", 3, 1, 3))])
def test_a_job_outcome_fault_ends_catalog_jobs_too(k, api, outcome, counts):
    k.set_faults(job_outcome=outcome)
    rows = [item_resource(f"P{n}") for n in range(4)]
    job = api.post("/catalog-item-bulk-create-jobs", job_body("item", "create", rows)).json()["data"]
    attributes = settled(api, "item", "create", job["id"])["data"]["attributes"]
    status, completed, failed, items = counts
    assert (attributes["status"], attributes["completed_count"], attributes["failed_count"]) == \
        (status, completed, failed)
    assert k.summary()["catalog"]["items"] == items
    if outcome == "orphan_error":
        assert attributes["errors"][0]["source"] == {"pointer": None}


def test_fail_rows_makes_matching_rows_fail_inside_the_job(k, api):
    k.set_faults(fail_rows='"P2"')
    rows = [item_resource(f"P{n}") for n in range(4)]
    job = api.post("/catalog-item-bulk-create-jobs", job_body("item", "create", rows)).json()["data"]
    errors = settled(api, "item", "create", job["id"])["data"]["attributes"]["errors"]
    assert [e["source"]["pointer"] for e in errors] == ["/data/attributes/items/data/2/attributes"]
    assert k.summary()["catalog"]["items"] == 3


def test_each_account_has_its_own_catalog_and_jobs():
    with KlaviyoStandIn(accounts={"AbC123": ("pk_a",), "XyZ789": ("pk_b",)}, rate_limit_scale=100,
                        job_stage_seconds=0) as k:
        a, b = Api(k, key="pk_a"), Api(k, key="pk_b")
        job = a.post("/catalog-item-bulk-create-jobs", job_body("item", "create", [item_resource()])).json()["data"]
        assert b.get(f"/catalog-item-bulk-create-jobs/{job['id']}").status_code == 404
        assert b.get(f"/catalog-items/{PREFIX}P1").status_code == 404
        assert b.post("/catalog-items", {"data": item_resource()}).status_code == 201  # same external id, own catalog
        assert (k.account("pk_a").summary()["catalog"]["items"], k.account("pk_b").summary()["catalog"]["items"]) == \
            (1, 1)


# -- back in stock ---------------------------------------------------------------------------------------

def subscription(variant="S1", channels=("EMAIL",), **profile) -> dict:
    return {"data": {"type": "back-in-stock-subscription", "attributes": {
        "channels": list(channels), "profile": {"data": {"type": "profile",
                                                         "attributes": profile or {"email": "w@example.com"}}}},
        "relationships": {"variant": {"data": {"type": "catalog-variant", "id": PREFIX + variant}}}}}


def test_a_restock_from_zero_releases_the_waiting_subscribers_once(k, api):
    make(api, "/catalog-items", item_resource())
    make(api, "/catalog-variants", variant_resource(inventory_quantity=0))
    assert api.post("/back-in-stock-subscriptions", subscription()).status_code == 202
    assert api.post("/back-in-stock-subscriptions", subscription(channels=["SMS", "EMAIL"],
                                                                 email="w@example.com")).status_code == 202
    assert k.summary()["catalog"]["back_in_stock_waiting"] == 1
    # One event: the repeat names the same profile and metric in the same second (Klaviyo's dedupe without unique_id).
    assert k.summary()["events_by_metric"] == {"Subscribed to Back in Stock": 1}
    patch = lambda quantity: api.send("PATCH", f"/catalog-variants/{PREFIX}S1", {"data": {  # noqa: E731
        "type": "catalog-variant", "id": PREFIX + "S1", "attributes": {"inventory_quantity": quantity}}})
    assert patch(-1).status_code == 200 and k.state()["catalog"]["restocks"] == []
    patch(4)
    patch(0)
    patch(6)
    restocks = k.state()["catalog"]["restocks"]
    assert [(r["before"], r["after"], len(r["released_profiles"])) for r in restocks] == [(-1, 4, 1), (0, 6, 0)]
    (waiting,) = k.state()["catalog"]["back_in_stock_subscriptions"]
    assert waiting["channels"] == ["EMAIL", "SMS"] and waiting["released"] is not None


@pytest.mark.parametrize("body, pointer", [
    (subscription(variant="S9"), "/data/relationships/variant/data/id"),
    (subscription(channels=["FAX"]), "/data/attributes/channels"),
    (subscription(channels=[]), "/data/attributes/channels"),
    (subscription(email="not-an-email"), "/data/attributes/profile/data/attributes/email"),
])
def test_an_invalid_back_in_stock_subscription_is_400(api, body, pointer):
    make(api, "/catalog-items", item_resource())
    make(api, "/catalog-variants", variant_resource())
    response = api.post("/back-in-stock-subscriptions", body)
    assert response.status_code == 400 and error_of(response)["source"] == {"pointer": pointer}
