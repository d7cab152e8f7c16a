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
