"""KlaviyoClient's catalog calls against the Klaviyo stand-in, over real HTTP.

Single resources, listings with filters, bulk jobs (chunking, validation before
sending, per-row errors mapped back to the caller's list), creates that are
never repeated blindly, and restocks seen by back-in-stock subscribers.
"""

from __future__ import annotations

import json
import time

import pytest
import requests

from klaviyo import (
    CatalogCategory,
    CatalogItem,
    CatalogVariant,
    KlaviyoClient,
    KlaviyoConflictError,
    KlaviyoNotFoundError,
    KlaviyoServerError,
    KlaviyoValidationError,
    NoRateLimit,
    RetryPolicy,
    catalog_id,
)
from sandbox.klaviyo import KlaviyoStandIn


@pytest.fixture(scope="module")
def standin():
    with KlaviyoStandIn(rate_limit_scale=100, job_stage_seconds=0.05) as k:
        yield k


@pytest.fixture
def klaviyo(standin):
    standin.reset(reset_config=True)
    client = KlaviyoClient(standin.api_key, base_url=standin.url, rate_limiter=NoRateLimit())
    yield client
    client.close()


def item(n, **kw) -> CatalogItem:
    return CatalogItem(**{"external_id": f"P{n}", "title": f"Product {n}", "description": "",
                          "url": f"https://shop.example.com/p/{n}", "price": 19.99, **kw})


def variant(n, product=1, **kw) -> CatalogVariant:
    return CatalogVariant(**{"external_id": f"S{n}", "item_external_id": f"P{product}", "title": f"Product / {n}",
                             "description": "", "sku": f"SKU-{n}", "price": 19.99, "inventory_quantity": 3,
                             "url": f"https://shop.example.com/p/{product}", **kw})


def wait(client, submission):
    return client.wait_for_catalog_jobs(submission, timeout=20, poll=0.05)


# -- single resources --------------------------------------------------------------------------------

def test_an_item_is_created_read_updated_and_deleted_by_its_external_id(klaviyo):
    created = klaviyo.create_catalog_item(item(1, custom_metadata={"brand": "Acme"}, images=["https://i/1.jpg"]))
    assert (created.id, created.title, created.published) == (catalog_id("P1"), "Product 1", True)
    assert klaviyo.get_catalog_item("P1").custom_metadata == {"brand": "Acme"}
    updated = klaviyo.update_catalog_item(CatalogItem("P1", title="Renamed", published=False))
    assert (updated.title, updated.published, updated.price, updated.images) == \
        ("Renamed", False, 19.99, ["https://i/1.jpg"])  # what was left None stays as it was
    assert klaviyo.delete_catalog_item("P1") is True
    assert klaviyo.delete_catalog_item("P1") is False  # already gone: a retried delete is harmless
    with pytest.raises(KlaviyoNotFoundError):
        klaviyo.get_catalog_item("P1")


def test_creating_an_item_that_already_exists_raises_conflict(klaviyo):
    klaviyo.create_catalog_item(item(1))
    with pytest.raises(KlaviyoConflictError):
        klaviyo.create_catalog_item(item(1))


def test_a_create_answered_5xx_after_klaviyo_made_it_is_not_repeated_blindly(standin, klaviyo):
    # Given a create whose answer is lost after the item was made
    standin.set_faults(error_rate=1.0, error_statuses=[500], error_after_commit=True, ops=["create_catalog_item"])
    klaviyo._sleep = lambda seconds: None
    # I expect the client to look, find it, and never send the create twice
    assert klaviyo.create_catalog_item(item(1)).external_id == "P1"
    assert [r["status"] for r in standin.requests("create_catalog_item")] == [500]
    assert standin.summary()["catalog"]["items"] == 1


def test_a_create_that_stays_unanswered_is_retried_then_raised(standin, klaviyo):
    standin.set_faults(error_rate=1.0, ops=["create_catalog_item"])
    klaviyo._sleep = lambda seconds: None
    with pytest.raises(KlaviyoServerError):
        klaviyo.create_catalog_item(item(1), attempts=2)
    assert len(standin.requests("create_catalog_item")) == 2 and len(standin.requests("get_catalog_item")) == 1


def test_a_variant_names_its_item_and_the_item_must_exist(klaviyo):
    with pytest.raises(KlaviyoValidationError) as missing:
        klaviyo.create_catalog_variant(variant(1, item_external_id=None))
    assert missing.value.field == "item_external_id"
    with pytest.raises(KlaviyoValidationError) as unknown:
        klaviyo.create_catalog_variant(variant(1, product=9))
    assert unknown.value.status == 400 and "relationships" in unknown.value.field
    klaviyo.create_catalog_item(item(1))
    made = klaviyo.create_catalog_variant(variant(1, inventory_policy=1))
    assert (made.item_external_id, made.sku, made.inventory_quantity, made.inventory_policy) == ("P1", "SKU-1", 3, 1)
    assert klaviyo.update_catalog_variant(CatalogVariant("S1", inventory_quantity=0)).inventory_quantity == 0


@pytest.mark.parametrize("bad, field", [
    (item(1, url=None), "url"),
    (item(1, price="cheap"), "price"),
    (item(1, custom_metadata={"nested": {"a": 1}}), "custom_metadata"),
    (item(1, custom_metadata={"blob": "x" * (101 * 1024)}), "custom_metadata"),
    (item(1, external_id=""), "external_id"),
])
def test_an_invalid_item_is_refused_before_any_request(standin, klaviyo, bad, field):
    with pytest.raises(KlaviyoValidationError) as refused:
        klaviyo.create_catalog_item(bad)
    assert refused.value.field == field
    assert standin.requests() == []


# -- listings ----------------------------------------------------------------------------------------

def test_listings_filter_by_ids_category_item_sku_title_and_published(klaviyo):
    klaviyo.create_catalog_category(CatalogCategory("C1", name="Tops"))
    klaviyo.create_catalog_category(CatalogCategory("C2", name="Shoes"))
    klaviyo.create_catalog_item(item(1, category_ids=["C1"]))
    klaviyo.create_catalog_item(item(2, title="Red shoe", category_ids=["C2"], published=False))
    for n, product in ((1, 1), (2, 1), (3, 2)):
        klaviyo.create_catalog_variant(variant(n, product=product))
    assert [i.external_id for i in klaviyo.get_catalog_items(category_external_id="C1")] == ["P1"]
    assert [i.external_id for i in klaviyo.get_catalog_items(title_contains="shoe")] == ["P2"]
    assert [i.external_id for i in klaviyo.get_catalog_items(published=False)] == ["P2"]
    assert [i.external_id for i in klaviyo.get_catalog_items(external_ids=["P2", "P9"])] == ["P2"]
    assert list(klaviyo.get_catalog_items(external_ids=[])) == []
    assert [v.external_id for v in klaviyo.get_catalog_variants(item_external_id="P1")] == ["S1", "S2"]
    assert [v.external_id for v in klaviyo.get_catalog_variants(sku="SKU-3")] == ["S3"]
    assert [c.name for c in klaviyo.get_catalog_categories(item_external_id="P2")] == ["Shoes"]
    assert [c.external_id for c in klaviyo.get_catalog_categories(name_contains="op")] == ["C1"]
    klaviyo.update_catalog_item(CatalogItem("P2", category_ids=["C1", "C2"]))
    assert [c.external_id for c in klaviyo.get_catalog_categories(item_external_id="P2")] == ["C1", "C2"]


def test_listings_follow_pages_of_100(standin, klaviyo):
    wait(klaviyo, klaviyo.bulk_create_catalog_items([item(n) for n in range(230)]))
    assert len({i.external_id for i in klaviyo.get_catalog_items()}) == 230
    assert len(standin.requests("get_catalog_items")) >= 3


# -- bulk jobs ---------------------------------------------------------------------------------------

def test_bulk_create_sends_jobs_of_at_most_100_rows_and_every_row_arrives(standin, klaviyo):
    submission = klaviyo.bulk_create_catalog_items([item(n) for n in range(250)])
    assert [len(job.external_ids) for job in submission.jobs] == [100, 100, 50]
    assert [job.rows[0] for job in submission.jobs] == [0, 100, 200]
    done = wait(klaviyo, submission)
    assert done.done and done.row_errors() == []
    assert [job.completed_count for job in done.jobs] == [100, 100, 50]
    assert standin.summary()["catalog"]["items"] == 250


def test_bulk_jobs_are_cut_at_5_mb_as_well(klaviyo):
    heavy = [item(n, custom_metadata={"blob": "x" * 90_000}) for n in range(70)]
    submission = klaviyo.bulk_create_catalog_items(heavy)
    assert len(submission.jobs) == 2 and sum(len(j.rows) for j in submission.jobs) == 70


@pytest.mark.parametrize("rows, field, index", [
    ([item(0), item(1), item(2, url=None)], "items[2].url", 2),
    ([item(0), item(0)], "items[1].external_id", 1),
])
def test_bulk_rows_are_validated_before_anything_is_sent_naming_field_and_row(standin, klaviyo, rows, field, index):
    with pytest.raises(KlaviyoValidationError) as refused:
        klaviyo.bulk_create_catalog_items(rows)
    assert (refused.value.field, refused.value.index) == (field, index)
    assert standin.requests() == []


def test_bulk_variant_rows_name_their_field(klaviyo):
    with pytest.raises(KlaviyoValidationError) as refused:
        klaviyo.bulk_update_catalog_variants([CatalogVariant("S1", inventory_quantity=2),
                                              CatalogVariant("S2", inventory_policy=7)])
    assert (refused.value.field, refused.value.index) == ("variants[1].inventory_policy", 1)


def test_a_row_klaviyo_refuses_at_submission_is_named_by_its_index(klaviyo):
    # A blank external id passes our checks (Klaviyo's rule for it is not documented); the stand-in refuses it.
    with pytest.raises(KlaviyoValidationError) as refused:
        klaviyo.bulk_create_catalog_items([item(0), item(1), item(2, external_id="  ")])
    assert refused.value.index == 2 and refused.value.status == 400


def test_bulk_create_skips_what_exists_and_says_so(standin, klaviyo):
    klaviyo.create_catalog_item(item(1))
    klaviyo.create_catalog_item(item(3))
    submission = klaviyo.bulk_create_catalog_items([item(n) for n in range(5)])
    assert submission.already_present == (1, 3)
    (job,) = submission.jobs
    assert (job.external_ids, job.rows) == (("P0", "P2", "P4"), (0, 2, 4))
    assert wait(klaviyo, submission).row_errors() == []
    assert klaviyo.bulk_create_catalog_items([item(1)]).jobs == ()  # nothing left to send, no job


def test_per_row_errors_are_mapped_back_to_the_callers_list(standin, klaviyo):
    wait(klaviyo, klaviyo.bulk_create_catalog_items([item(1)]))
    klaviyo.create_catalog_variant(variant(0))
    rows = [variant(n, product=9 if n in (3, 104) else 1) for n in range(110)]  # rows 3 and 104 name no item
    done = wait(klaviyo, klaviyo.bulk_create_catalog_variants(rows))
    assert done.already_present == (0,)
    errors = done.row_errors()
    assert [(e.index, e.external_id, e.field, e.settled) for e in errors] == \
        [(3, "S3", "relationships.item.data.id", False), (104, "S104", "relationships.item.data.id", False)]
    assert standin.summary()["catalog"]["variants"] == 108


def test_a_row_failed_inside_the_job_is_reported_with_its_index(standin, klaviyo):
    standin.set_faults(fail_rows="P2")
    done = wait(klaviyo, klaviyo.bulk_create_catalog_items([item(n) for n in range(4)]))
    assert [(e.index, e.external_id, e.code) for e in done.row_errors()] == [(2, "P2", "invalid")]
    assert done.jobs[0].failed_count == 1 and catalog_id("P2") not in done.jobs[0].resource_ids


@pytest.mark.parametrize("outcome, expected", [
    ("cancelled", [(0, "cancelled"), (1, "cancelled"), (2, "cancelled"), (3, "cancelled")]),
    ("short", [(2, "missing"), (3, "missing")]),
    ("orphan_error", [(None, "invalid"), (0, "missing")]),
])
def test_jobs_whose_counts_do_not_add_up_still_account_for_every_row(standin, klaviyo, outcome, expected):
    standin.set_faults(job_outcome=outcome)
    done = wait(klaviyo, klaviyo.bulk_create_catalog_items([item(n) for n in range(4)]))
    assert [(e.index, e.code) for e in done.row_errors()] == expected


def test_a_bulk_create_answered_5xx_after_it_was_accepted_is_not_repeated_blindly(standin, klaviyo):
    # Given a create job accepted by Klaviyo whose answer is lost
    standin.set_faults(error_rate=1.0, error_statuses=[500], error_after_commit=True, ops=["bulk_create_catalog_items"],
                      duration=0.5)
    submission = klaviyo.bulk_create_catalog_items([item(n) for n in range(3)])
    # I expect the client to look again before a second try, find the rows made, and send no second job
    assert (submission.jobs, submission.already_present) == ((), (0, 1, 2))
    assert [r["status"] for r in standin.requests("bulk_create_catalog_items")] == [500]
    assert standin.summary()["catalog"]["items"] == 3


def test_overlapping_create_jobs_make_each_item_once_and_the_late_rows_are_settled():
    with KlaviyoStandIn(rate_limit_scale=100, job_stage_seconds=1) as k:  # slow jobs: the second is sent first
        klaviyo = KlaviyoClient(k.api_key, base_url=k.url, rate_limiter=NoRateLimit())
        first = klaviyo.bulk_create_catalog_items([item(n) for n in range(3)])
        second = klaviyo.bulk_create_catalog_items([item(n) for n in range(3)])  # before the first has run
        assert len(second.jobs) == 1
        wait(klaviyo, first)
        errors = wait(klaviyo, second).row_errors()
        assert [e.index for e in errors] == [0, 1, 2] and all(e.settled for e in errors)
        assert k.summary()["catalog"]["items"] == 3


def test_bulk_delete_removes_items_with_their_variants_and_a_repeat_is_settled(standin, klaviyo):
    wait(klaviyo, klaviyo.bulk_create_catalog_items([item(1), item(2)]))
    wait(klaviyo, klaviyo.bulk_create_catalog_variants([variant(1), variant(2, product=2)]))
    assert wait(klaviyo, klaviyo.bulk_delete_catalog_items(["P1"])).row_errors() == []
    assert [v.external_id for v in klaviyo.get_catalog_variants()] == ["S2"]
    again = wait(klaviyo, klaviyo.bulk_delete_catalog_items(["P1"])).row_errors()
    assert [(e.index, e.settled) for e in again] == [(0, True)]
    assert wait(klaviyo, klaviyo.bulk_delete_catalog_variants(["S2"])).row_errors() == []


def test_bulk_update_changes_only_what_is_given(klaviyo):
    wait(klaviyo, klaviyo.bulk_create_catalog_items([item(1), item(2)]))
    done = wait(klaviyo, klaviyo.bulk_update_catalog_items([CatalogItem("P1", price=5), CatalogItem("P9", price=1)]))
    assert [(e.index, e.code, e.settled) for e in done.row_errors()] == [(1, "not_found", False)]
    assert (klaviyo.get_catalog_item("P1").price, klaviyo.get_catalog_item("P1").title) == (5, "Product 1")


def test_categories_are_created_in_bulk_and_linked_from_items(klaviyo):
    done = wait(klaviyo, klaviyo.bulk_create_catalog_categories([CatalogCategory("C1", name="Tops"),
                                                                 CatalogCategory("C2", name="Shoes")]))
    assert done.row_errors() == []
    klaviyo.create_catalog_item(item(1, category_ids=["C1", "C2"]))
    assert [c.name for c in klaviyo.get_catalog_categories(item_external_id="P1")] == ["Tops", "Shoes"]
    assert klaviyo.update_catalog_category(CatalogCategory("C1", name="Shirts")).name == "Shirts"
    assert klaviyo.delete_catalog_category("C2") is True
    assert [c.external_id for c in klaviyo.get_catalog_categories(item_external_id="P1")] == ["C1"]


def test_a_job_polled_later_from_its_ids_keeps_its_rows(klaviyo):
    from klaviyo import CatalogJob
    (job,) = klaviyo.bulk_create_catalog_items([item(0), item(1)]).jobs
    stored = {"job_id": job.job_id, "job_type": job.job_type, "external_ids": list(job.external_ids),
              "rows": list(job.rows)}  # what a task would keep
    rebuilt = CatalogJob(stored["job_id"], stored["job_type"], "queued", external_ids=tuple(stored["external_ids"]),
                         rows=tuple(stored["rows"]))
    done = klaviyo.wait_for_catalog_job(rebuilt, timeout=20, poll=0.05)
    assert (done.status, done.rows, done.resource_ids) == ("complete", (0, 1), (catalog_id("P0"), catalog_id("P1")))


def test_too_many_jobs_in_progress_makes_the_client_wait_and_go_on():
    with KlaviyoStandIn(rate_limit_scale=100, job_stage_seconds=0.3, max_open_catalog_jobs=1) as k:
        client = KlaviyoClient(k.api_key, base_url=k.url, rate_limiter=NoRateLimit(), retry=RetryPolicy(max_429=3))
        started = time.monotonic()
        submission = client.bulk_create_catalog_items([item(n) for n in range(150)])
        assert len(submission.jobs) == 2 and time.monotonic() - started >= 0.5  # waited for the first job
        assert [r["status"] for r in k.requests("bulk_create_catalog_items")] == [202, 429, 202]


# -- back in stock -----------------------------------------------------------------------------------

def test_a_restock_pushed_in_bulk_releases_the_subscribers_waiting_on_the_variant(standin, klaviyo):
    wait(klaviyo, klaviyo.bulk_create_catalog_items([item(1)]))
    wait(klaviyo, klaviyo.bulk_create_catalog_variants([variant(1, inventory_quantity=0),
                                                        variant(2, inventory_quantity=0)]))
    subscribe = {"data": {"type": "back-in-stock-subscription", "attributes": {
        "channels": ["EMAIL"], "profile": {"data": {"type": "profile", "attributes": {"email": "wait@example.com"}}}},
        "relationships": {"variant": {"data": {"type": "catalog-variant", "id": catalog_id("S1")}}}}}
    answer = requests.post(standin.url + "/back-in-stock-subscriptions", data=json.dumps(subscribe), timeout=5,
                           headers={"Authorization": f"Klaviyo-API-Key {standin.api_key}", "revision": "2026-07-15",
                                    "Content-Type": "application/vnd.api+json"})
    assert answer.status_code == 202
    wait(klaviyo, klaviyo.bulk_update_catalog_variants([CatalogVariant("S1", inventory_quantity=5),
                                                        CatalogVariant("S2", inventory_quantity=0)]))
    catalog = standin.state()["catalog"]
    (restock,) = catalog["restocks"]
    profile_id = standin.state()["profiles"][0]["id"]
    assert (restock["variant"], restock["before"], restock["after"]) == (catalog_id("S1"), 0, 5)
    assert restock["released_profiles"] == [profile_id]
    assert standin.summary()["events_by_metric"] == {"Subscribed to Back in Stock": 1}
    wait(klaviyo, klaviyo.bulk_update_catalog_variants([CatalogVariant("S1", inventory_quantity=9)]))
    assert len(standin.state()["catalog"]["restocks"]) == 1  # 5 -> 9 is no restock
