"""Conformance of the Klaviyo stand-in with Klaviyo's own artefacts.

* The official SDK (``klaviyo-api``) parses every response with pydantic models
  generated from the spec, so a shape drift fails these tests.
* Prism in proxy mode validates requests and responses against the OpenAPI
  spec (``--errors`` turns a bad response into a 500 ``#VIOLATIONS``);
  ``tests/contract/prism.py`` installs it on first use (required under CI=true).
"""

from __future__ import annotations

import json
import time

import pytest
import requests
from klaviyo_api import KlaviyoAPI

from tests.contract.prism import prism_proxy


@pytest.fixture
def sdk(k):
    return KlaviyoAPI(k.api_key, max_retries=3, max_delay=2, test_host=k.root_url)


def event_body(email: str, unique_id: str, value: float = 9.99) -> dict:
    return {"data": {"type": "event", "attributes": {
        "properties": {"sku": "A-1"}, "value": value, "value_currency": "USD", "unique_id": unique_id,
        "metric": {"data": {"type": "metric", "attributes": {"name": "Placed Order"}}},
        "profile": {"data": {"type": "profile", "attributes": {"email": email, "first_name": "Sam"}}}}}}


def test_official_sdk_creates_events_and_parses_profiles_events_and_lists(k, sdk):
    assert sdk.Events.create_event(event_body("sdk@example.com", "o-1")) is None
    profiles = sdk.Profiles.get_profiles(filter='equals(email,"sdk@example.com")',
                                         additional_fields_profile=["subscriptions"])
    (profile,) = profiles.data
    assert (profile.attributes.email, profile.attributes.first_name) == ("sdk@example.com", "Sam")
    assert profile.attributes.subscriptions.email.marketing.consent == "NEVER_SUBSCRIBED"
    events = sdk.Events.get_events(include=["metric", "profile"], filter=f'equals(profile_id,"{profile.id}")')
    assert events.data[0].attributes.event_properties["$event_id"] == "o-1"
    assert {item["type"] for item in events.included} == {"metric", "profile"}
    assert sdk.Events.get_event(events.data[0].id).data.id == events.data[0].id
    sdk.Lists.create_list({"data": {"type": "list", "attributes": {"name": "SDK list"}}})
    assert [x.attributes.name for x in sdk.Lists.get_lists().data] == ["SDK list"]


def test_official_sdk_parses_upserts_members_segments_and_import_jobs(k, sdk):
    created = sdk.Profiles.create_or_update_profile(
        {"data": {"type": "profile", "attributes": {"email": "m@example.com", "properties": {"tiktok_order_count": 4}}}})
    pid = created.data.id
    assert sdk.Profiles.get_profile(pid).data.attributes.properties == {"tiktok_order_count": 4}
    list_id = sdk.Lists.create_list({"data": {"type": "list", "attributes": {"name": "L"}}}).data.id
    sdk.Lists.add_profiles_to_list(list_id, {"data": [{"type": "profile", "id": pid}]})
    assert [p.id for p in sdk.Lists.get_profiles_for_list(list_id).data] == [pid]
    segment = sdk.Segments.create_segment({"data": {"type": "segment", "attributes": {
        "name": "Repeat", "definition": {"condition_groups": [{"conditions": [{
            "type": "profile-property", "property": "properties['tiktok_order_count']",
            "filter": {"type": "numeric", "operator": "greater-than", "value": 3.5}}]}]}}}})
    assert [s.id for s in sdk.Segments.get_segments().data] == [segment.data.id]
    assert [p.id for p in sdk.Segments.get_profiles_for_segment(segment.data.id).data] == [pid]
    job = sdk.Profiles.bulk_import_profiles({"data": {"type": "profile-bulk-import-job", "attributes": {
        "profiles": {"data": [{"type": "profile", "attributes": {"email": "bulk@example.com"}}]}}}})
    assert job.data.attributes.status == "queued"
    time.sleep(0.15)
    assert sdk.Profiles.get_bulk_import_profiles_job(job.data.id).data.attributes.status == "complete"
    sdk.Profiles.bulk_subscribe_profiles({"data": {"type": "profile-subscription-bulk-create-job", "attributes": {
        "profiles": {"data": [{"type": "profile", "attributes": {
            "email": "m@example.com", "subscriptions": {"email": {"marketing": {"consent": "SUBSCRIBED"}}}}}]}}}})
    sdk.Data_Privacy.request_profile_deletion({"data": {"type": "data-privacy-deletion-job", "attributes": {
        "profile": {"data": {"type": "profile", "attributes": {"email": "bulk@example.com"}}}}}})
    assert k.summary()["profiles"] == 1


def test_official_sdk_follows_full_next_urls_despite_its_leading_equals_quirk(k, sdk):
    for i in range(5):
        sdk.Profiles.create_profile({"data": {"type": "profile", "attributes": {"email": f"p{i}@example.com"}}})
    seen, page = [], sdk.Profiles.get_profiles(page_size=2)
    while True:
        seen += [p.id for p in page.data]
        if not page.links.next:
            break
        page = sdk.Profiles.get_profiles(page_size=2, page_cursor=page.links.next)
    assert len(seen) == len(set(seen)) == 5


def test_official_sdk_retries_our_429_after_the_integer_retry_after(k, sdk):
    k.set_faults(force_429=1, retry_after=1)
    started = time.monotonic()
    assert sdk.Lists.get_lists().data == []
    assert time.monotonic() - started >= 1.0
    assert [e["status"] for e in k.requests("get_lists")] == [429, 200]


# -- Prism -------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def prism(standin):
    with prism_proxy(standin.root_url) as url:
        yield url


def test_every_operation_answers_as_the_spec_says_through_prism(k, prism):
    """Each operation, well-formed, through ``prism proxy --errors``: no 422 (request) and no 500 (response)."""
    session = requests.Session()
    session.headers.update({"Authorization": f"Klaviyo-API-Key {k.api_key}", "revision": "2026-07-15",
                            "Content-Type": "application/vnd.api+json", "Accept": "application/vnd.api+json"})
    seen = []

    def call(method, path, expected, body=None, **params):
        response = session.request(method, prism + "/api" + path, params=params or None, timeout=30,
                                   data=None if body is None else json.dumps(body))
        seen.append((method, path, response.status_code))
        assert response.status_code == expected, f"{method} {path}: {response.status_code} {response.text[:2000]}"
        return response

    profile = {"data": {"type": "profile", "attributes": {
        "email": "prism@example.com", "phone_number": "+15005550006", "location": {"city": "Austin", "latitude": 30.2},
        "properties": {"tiktok_order_count": 5}}}}
    pid = call("POST", "/profiles", 201, profile).json()["data"]["id"]
    call("POST", "/profiles", 409, profile)
    call("PATCH", f"/profiles/{pid}", 200, {"data": {"type": "profile", "id": pid, "attributes": {"title": "Dr"}}})
    call("POST", "/profile-import", 201, {"data": {"type": "profile", "attributes": {"email": "two@example.com"}}})
    call("POST", "/profile-import", 200, {"data": {"type": "profile", "attributes": {"email": "two@example.com"}}})
    call("GET", f"/profiles/{pid}", 200, **{"additional-fields[profile]": "subscriptions"})
    call("GET", "/profiles/01UNKNOWN", 404)
    call("GET", "/profiles", 200, filter='equals(email,"prism@example.com")', **{"additional-fields[profile]": "subscriptions"})
    call("GET", "/profiles", 400, **{"page[cursor]": "garbage"})
    call("POST", "/events", 202, event_body("prism@example.com", "o-1"))
    eid = call("GET", "/events", 200, include="metric,profile").json()["data"][0]["id"]
    call("GET", f"/events/{eid}", 200, include="metric,profile")
    call("POST", "/event-bulk-create-jobs", 202, {"data": {"type": "event-bulk-create-job", "attributes": {
        "events-bulk-create": {"data": [{"type": "event-bulk-create", "attributes": {
            "profile": {"data": {"type": "profile", "attributes": {"email": "bulk@example.com"}}},
            "events": {"data": [{"type": "event", "attributes": {
                "properties": {}, "unique_id": "b-1",
                "metric": {"data": {"type": "metric", "attributes": {"name": "Viewed"}}}}}]}}}]}}}})
    lid = call("POST", "/lists", 201, {"data": {"type": "list", "attributes": {"name": "Buyers"}}}).json()["data"]["id"]
    call("GET", "/lists", 200)
    call("GET", f"/lists/{lid}", 200, **{"additional-fields[list]": "profile_count"})
    call("POST", f"/lists/{lid}/relationships/profiles", 204, {"data": [{"type": "profile", "id": pid}]})
    call("GET", f"/lists/{lid}/profiles", 200)
    call("DELETE", f"/lists/{lid}/relationships/profiles", 204, {"data": [{"type": "profile", "id": pid}]})
    segment = {"data": {"type": "segment", "attributes": {"name": "Repeat", "definition": {"condition_groups": [
        {"conditions": [{"type": "profile-property", "property": "properties['tiktok_order_count']",
                         "filter": {"type": "numeric", "operator": "greater-than", "value": 3.5}}]}]}}}}
    sid = call("POST", "/segments", 201, segment).json()["data"]["id"]
    call("GET", "/segments", 200)
    call("GET", f"/segments/{sid}", 200, **{"additional-fields[segment]": "profile_count"})
    call("GET", f"/segments/{sid}/profiles", 200)
    job = call("POST", "/profile-bulk-import-jobs", 202, {"data": {"type": "profile-bulk-import-job", "attributes": {
        "profiles": {"data": [{"type": "profile", "attributes": {"email": "i@example.com"}},
                              {"type": "profile", "attributes": {"email": "not-an-email"}}]}},
        "relationships": {"lists": {"data": [{"type": "list", "id": lid}]}}}}).json()["data"]["id"]
    time.sleep(0.15)
    call("GET", f"/profile-bulk-import-jobs/{job}", 200, include="lists")
    call("GET", f"/profile-bulk-import-jobs/{job}/import-errors", 200)
    call("GET", "/profile-bulk-import-jobs", 200)
    subscription = {"data": {"type": "profile-subscription-bulk-create-job", "attributes": {"profiles": {"data": [
        {"type": "profile", "attributes": {"email": "s@example.com",
                                           "subscriptions": {"email": {"marketing": {"consent": "SUBSCRIBED"}}}}}]}},
        "relationships": {"list": {"data": {"type": "list", "id": lid}}}}}
    call("POST", "/profile-subscription-bulk-create-jobs", 202, subscription)
    subscription["data"]["type"] = "profile-subscription-bulk-delete-job"
    del subscription["data"]["relationships"]
    marketing = subscription["data"]["attributes"]["profiles"]["data"][0]["attributes"]["subscriptions"]["email"]
    marketing["marketing"]["consent"] = "UNSUBSCRIBED"
    call("POST", "/profile-subscription-bulk-delete-jobs", 202, subscription)
    suppression = {"data": {"type": "profile-suppression-bulk-create-job", "attributes": {"profiles": {"data": [
        {"type": "profile", "attributes": {"email": "s@example.com"}}]}}}}
    call("POST", "/profile-suppression-bulk-create-jobs", 202, suppression)
    suppression["data"]["type"] = "profile-suppression-bulk-delete-job"
    call("POST", "/profile-suppression-bulk-delete-jobs", 202, suppression)
    call("POST", "/data-privacy-deletion-jobs", 202, {"data": {"type": "data-privacy-deletion-job", "attributes": {
        "profile": {"data": {"type": "profile", "attributes": {"email": "two@example.com"}}}}}})
    k.set_faults(force_429=1)
    call("GET", "/lists", 429)
    k.set_faults(error_rate=1.0, error_statuses=[503])
    call("GET", "/lists", 503)
    k.clear_faults()
    assert len(seen) == 34


def test_official_sdk_parses_accounts_catalog_resources_and_jobs(k, sdk):
    (account,) = sdk.Accounts.get_accounts().data
    assert (account.id, account.attributes.public_api_key) == (k.account().id, k.account().id)
    assert sdk.Accounts.get_account(account.id).data.attributes.contact_information.street_address.city == "Boston"
    item = {"data": {"type": "catalog-item", "attributes": {
        "external_id": "P1", "title": "Tee", "description": "", "url": "https://s/p1", "price": 12.5,
        "custom_metadata": {"brand": "Acme"}}}}
    assert sdk.Catalogs.create_catalog_item(item).data.id == "$custom:::$default:::P1"
    variant = {"data": {"type": "catalog-variant", "attributes": {
        "external_id": "S1", "title": "Tee / M", "description": "", "sku": "TEE-M", "inventory_quantity": 0,
        "price": 12.5, "url": "https://s/p1"},
        "relationships": {"item": {"data": {"type": "catalog-item", "id": "$custom:::$default:::P1"}}}}}
    assert sdk.Catalogs.create_catalog_variant(variant).data.attributes.sku == "TEE-M"
    listed = sdk.Catalogs.get_catalog_items(include=["variants"])
    assert [i.id for i in listed.data] == ["$custom:::$default:::P1"] and len(listed.included) == 1
    assert sdk.Catalogs.get_catalog_variants().data[0].attributes.inventory_quantity == 0
    job = sdk.Catalogs.bulk_create_catalog_categories({"data": {"type": "catalog-category-bulk-create-job",
                                                                "attributes": {"categories": {"data": [
        {"type": "catalog-category", "attributes": {"external_id": "C1", "name": "Tops"}}]}}}})
    assert job.data.attributes.status == "queued"
    time.sleep(0.15)
    assert sdk.Catalogs.get_bulk_create_categories_job(job.data.id).data.attributes.status == "complete"
    assert sdk.Catalogs.get_catalog_categories().data[0].attributes.name == "Tops"


def test_every_catalog_and_account_operation_answers_as_the_spec_says_through_prism(k, prism):
    """Each catalog, account and back-in-stock operation through ``prism proxy --errors``, errors included."""
    session = requests.Session()
    session.headers.update({"Authorization": f"Klaviyo-API-Key {k.api_key}", "revision": "2026-07-15",
                            "Content-Type": "application/vnd.api+json", "Accept": "application/vnd.api+json"})
    seen = []
    prefix = "$custom:::$default:::"

    def call(method, path, expected, body=None, **params):
        response = session.request(method, prism + "/api" + path, params=params or None, timeout=30,
                                   data=None if body is None else json.dumps(body))
        seen.append((method, path, response.status_code))
        assert response.status_code == expected, f"{method} {path}: {response.status_code} {response.text[:2000]}"
        return response

    def settle(path):
        for _ in range(100):
            data = call("GET", path, 200).json()["data"]
            if data["attributes"]["status"] == "complete":
                return data
            time.sleep(0.02)
        raise AssertionError(path)

    # (No sparse fields here: the spec marks every account attribute required, so a sparse answer cannot conform.)
    account_id = call("GET", "/accounts", 200).json()["data"][0]["id"]
    call("GET", f"/accounts/{account_id}", 200)
    call("GET", "/accounts/nope", 404)
    category = {"data": {"type": "catalog-category", "attributes": {"external_id": "C1", "name": "Tops"}}}
    call("POST", "/catalog-categories", 201, category)
    call("POST", "/catalog-categories", 409, category)
    call("PATCH", f"/catalog-categories/{prefix}C1", 200, {"data": {"type": "catalog-category", "id": prefix + "C1",
                                                                    "attributes": {"name": "Shirts"}}})
    call("GET", f"/catalog-categories/{prefix}C1", 200)
    item = {"data": {"type": "catalog-item", "attributes": {
        "external_id": "P1", "title": "Tee", "description": "", "url": "https://s/p1", "price": 12.5,
        "images": ["https://i/1"], "custom_metadata": {"brand": "Acme"}, "published": True},
        "relationships": {"categories": {"data": [{"type": "catalog-category", "id": prefix + "C1"}]}}}}
    call("POST", "/catalog-items", 201, item)
    call("POST", "/catalog-items", 409, item)
    call("POST", "/catalog-items", 400, {"data": {"type": "catalog-item", "attributes": {
        "external_id": " ", "title": "T", "description": "", "url": "u"}}})
    call("PATCH", f"/catalog-items/{prefix}P1", 200, {"data": {"type": "catalog-item", "id": prefix + "P1",
                                                               "attributes": {"price": 10.5, "images": None}}})
    call("GET", f"/catalog-items/{prefix}P1", 200, include="variants")
    call("GET", f"/catalog-items/{prefix}P9", 404)
    variant = {"data": {"type": "catalog-variant", "attributes": {
        "external_id": "S1", "title": "Tee / M", "description": "", "sku": "TEE-M", "inventory_quantity": 0,
        "inventory_policy": 1, "price": 12.5, "url": "https://s/p1"},
        "relationships": {"item": {"data": {"type": "catalog-item", "id": prefix + "P1"}}}}}
    call("POST", "/catalog-variants", 201, variant)
    call("PATCH", f"/catalog-variants/{prefix}S1", 200, {"data": {"type": "catalog-variant", "id": prefix + "S1",
                                                                  "attributes": {"inventory_quantity": 0.5}}})
    call("GET", f"/catalog-variants/{prefix}S1", 200)
    call("GET", "/catalog-items", 200, filter=f'any(ids,["{prefix}P1"])', include="variants", sort="-created")
    call("GET", "/catalog-items", 200, filter=f'equals(category.id,"{prefix}C1")', **{"page[size]": "1"})
    call("GET", "/catalog-items", 400, filter='equals(sku,"x")')
    call("GET", "/catalog-variants", 200, filter=f'equals(item.id,"{prefix}P1")')
    call("GET", f"/catalog-items/{prefix}P1/variants", 200)
    call("GET", "/catalog-categories", 200, filter='contains(name,"Sh")')
    call("POST", "/back-in-stock-subscriptions", 202, {"data": {"type": "back-in-stock-subscription", "attributes": {
        "channels": ["EMAIL"], "profile": {"data": {"type": "profile", "attributes": {"email": "w@example.com"}}}},
        "relationships": {"variant": {"data": {"type": "catalog-variant", "id": prefix + "S1"}}}}})
    rows = [{"type": "catalog-variant", "attributes": {**variant["data"]["attributes"], "external_id": f"S{n}"},
             "relationships": variant["data"]["relationships"]} for n in (1, 2)]
    job = call("POST", "/catalog-variant-bulk-create-jobs", 202, {"data": {
        "type": "catalog-variant-bulk-create-job", "attributes": {"variants": {"data": rows}}}}).json()["data"]
    done = settle(f"/catalog-variant-bulk-create-jobs/{job['id']}")
    assert done["attributes"]["failed_count"] == 1  # S1 exists: one per-row error, in the spec's shape
    call("GET", f"/catalog-variant-bulk-create-jobs/{job['id']}", 200, include="variants")
    call("GET", "/catalog-variant-bulk-create-jobs", 200, filter='equals(status,"complete")')
    for kind, key, rid, attributes in (("item", "items", "P1", {"title": "Tee 2"}),
                                       ("variant", "variants", "S2", {"inventory_quantity": 4}),
                                       ("category", "categories", "C1", {"name": "Tees"})):
        for action, row in (("update", {"id": prefix + rid, "attributes": attributes}), ("delete", {"id": prefix + rid})):
            body = {"data": {"type": f"catalog-{kind}-bulk-{action}-job",
                             "attributes": {key: {"data": [{"type": f"catalog-{kind}", **row}]}}}}
            if (kind, action) == ("item", "delete"):
                continue  # the item goes last, with the single DELETE below
            job = call("POST", f"/catalog-{kind}-bulk-{action}-jobs", 202, body).json()["data"]
            settle(f"/catalog-{kind}-bulk-{action}-jobs/{job['id']}")
            call("GET", f"/catalog-{kind}-bulk-{action}-jobs", 200)
    items_job = call("POST", "/catalog-item-bulk-create-jobs", 202, {"data": {
        "type": "catalog-item-bulk-create-job", "attributes": {"items": {"data": [
            {"type": "catalog-item", "attributes": {"external_id": "P2", "title": "T", "description": "",
                                                    "url": "u"}}]}}}}).json()["data"]
    settle(f"/catalog-item-bulk-create-jobs/{items_job['id']}")
    call("GET", "/catalog-item-bulk-create-jobs", 200)
    call("GET", "/catalog-category-bulk-create-jobs", 200)
    call("POST", "/catalog-category-bulk-create-jobs", 202, {"data": {"type": "catalog-category-bulk-create-job",
                                                                      "attributes": {"categories": {"data": [
        {"type": "catalog-category", "attributes": {"external_id": "C9", "name": "New"}}]}}}})
    call("POST", "/catalog-item-bulk-delete-jobs", 202, {"data": {"type": "catalog-item-bulk-delete-job",
                                                                  "attributes": {"items": {"data": [
        {"type": "catalog-item", "id": prefix + "P2"}]}}}})
    call("DELETE", f"/catalog-variants/{prefix}S1", 204)
    call("DELETE", f"/catalog-items/{prefix}P1", 204)
    call("DELETE", f"/catalog-categories/{prefix}C404", 404)
    k.set_faults(force_429=1)
    call("GET", "/catalog-items", 429)
    k.clear_faults()
    assert len(seen) >= 45
