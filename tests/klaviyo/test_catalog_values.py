"""Pure tests of the catalog values and bulk mechanics: ids, bodies, chunks, pointers, per-row errors."""

from __future__ import annotations

from decimal import Decimal

import pytest

from klaviyo import CatalogItem, CatalogJob, CatalogVariant, KlaviyoValidationError, catalog_id
from klaviyo.catalog import external_id_of
from klaviyo.catalog_bulk import KINDS, chunks, job_body, path_id, resource, rows
from klaviyo.catalog_schemas import JOB_RESOURCE, job_error


def item(n, **kw) -> CatalogItem:
    return CatalogItem(**{"external_id": str(n), "title": "T", "description": "", "url": "https://u", **kw})


def test_catalog_ids_are_the_external_id_under_klaviyos_custom_prefix():
    assert catalog_id("1729") == "$custom:::$default:::1729"
    assert external_id_of(catalog_id("a:b")) == "a:b" and external_id_of("other") == "other"
    assert path_id("1/2 x") == "%24custom%3A%3A%3A%24default%3A%3A%3A1%2F2%20x"


def test_an_item_create_body_has_the_specs_shape_and_sends_nothing_left_none():
    body = resource(KINDS["item"], "create", item(7, price=Decimal("19.90"), category_ids=["c1"]))
    assert body == {"type": "catalog-item",
                    "attributes": {"external_id": "7", "title": "T", "description": "", "url": "https://u",
                                   "price": 19.9},
                    "relationships": {"categories": {"data": [{"type": "catalog-category",
                                                               "id": "$custom:::$default:::c1"}]}}}


def test_an_update_body_carries_the_id_and_only_what_is_set():
    body = resource(KINDS["variant"], "update", CatalogVariant("s1", inventory_quantity=0))
    assert body == {"type": "catalog-variant", "id": "$custom:::$default:::s1", "attributes": {"inventory_quantity": 0}}


def test_a_variant_create_names_its_item_and_keeps_whole_numbers_whole():
    body = resource(KINDS["variant"], "create", CatalogVariant(
        "s1", item_external_id="p1", title="T", description="", sku="S", price=10, inventory_quantity=4, url="u"))
    assert body["relationships"] == {"item": {"data": {"type": "catalog-item", "id": "$custom:::$default:::p1"}}}
    assert (body["attributes"]["price"], body["attributes"]["inventory_quantity"]) == (10, 4)


def test_a_delete_body_is_a_bare_reference():
    assert job_body(KINDS["item"], "delete", rows(KINDS["item"], "delete", ["9"])) == {"data": {
        "type": "catalog-item-bulk-delete-job",
        "attributes": {"items": {"data": [{"type": "catalog-item", "id": "$custom:::$default:::9"}]}}}}


@pytest.mark.parametrize("value, field", [
    (CatalogVariant("s", item_external_id="p", title="T", description="", sku="S", price=1, url="u"),
     "variants[0].inventory_quantity"),
    (CatalogVariant("s", item_external_id="p", title="T", description="", sku="S", price=float("nan"),
                    inventory_quantity=1, url="u"), "variants[0].price"),
    (CatalogVariant("s", item_external_id="p", title="T", description="", sku="S", price=True,
                    inventory_quantity=1, url="u"), "variants[0].price"),
])
def test_variant_rows_are_refused_naming_the_field(value, field):
    with pytest.raises(KlaviyoValidationError) as refused:
        rows(KINDS["variant"], "create", [value])
    assert (refused.value.field, refused.value.index) == (field, 0)


def test_chunks_hold_at_most_100_rows():
    sizes = [len(c) for c in chunks(rows(KINDS["item"], "create", [item(n) for n in range(201)]))]
    assert sizes == [100, 100, 1]


def test_chunks_hold_at_most_5_mb():
    heavy = [item(n, custom_metadata={"blob": "x" * 95_000}) for n in range(60)]
    cut = list(chunks(rows(KINDS["item"], "create", heavy)))
    assert len(cut) == 2 and all(sum(len(str(r.resource)) for r in c) < 5 * 1024 * 1024 for c in cut)
    assert [r.index for c in cut for r in c] == list(range(60))


def test_a_job_errors_pointer_gives_its_row_and_field():
    error = job_error({"code": "invalid", "detail": "d",
                       "source": {"pointer": "/data/attributes/variants/data/12/attributes/price"}})
    assert (error.position, error.field) == (12, "price")
    assert job_error({"code": "x", "source": {"pointer": None}}).position is None
    assert job_error({"code": "x", "source": {"pointer": "/data/attributes/items/data/3"}}).field is None


def test_row_errors_map_job_positions_to_the_callers_list_and_find_silent_gaps():
    job = JOB_RESOURCE.load({"type": "catalog-item-bulk-create-job", "id": "J", "attributes": {
        "status": "complete", "total_count": 3, "completed_count": 1, "failed_count": 1,
        "errors": [{"id": "e", "code": "conflict", "title": "Conflict.", "detail": "already exists",
                    "source": {"pointer": "/data/attributes/items/data/1/attributes/external_id"}}]},
        "relationships": {"items": {"data": [{"type": "catalog-item", "id": catalog_id("a")}]}}})
    job = CatalogJob(**{**job.__dict__, "external_ids": ("a", "b", "c"), "rows": (4, 7, 9)})
    assert [(e.index, e.external_id, e.code, e.settled) for e in job.row_errors()] == \
        [(7, "b", "conflict", True), (9, "c", "missing", False)]


def test_a_job_not_yet_done_reports_no_missing_rows():
    job = CatalogJob("J", "catalog-variant-bulk-update-job", "processing", external_ids=("a",), rows=(0,))
    assert job.action == "update" and job.row_errors() == []


def test_polling_a_job_of_an_unknown_type_is_refused_before_any_request():
    from klaviyo import KlaviyoClient

    client = KlaviyoClient("pk_test", base_url="http://127.0.0.1:9")  # nothing listens: no request may be sent
    with pytest.raises(KlaviyoValidationError) as refused:
        client.get_catalog_job(CatalogJob("J", "profile-bulk-import-job", "queued"))
    assert refused.value.field == "job_type"
