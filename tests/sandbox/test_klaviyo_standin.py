"""The Klaviyo stand-in, over real HTTP: the wire behaviour our client and the benchmarks rely on.

Faults are in test_klaviyo_standin_faults.py; conformance with the official SDK
and with the OpenAPI spec (through Prism) in test_klaviyo_standin_contract.py.
"""

from __future__ import annotations

import json
import math
import signal
import subprocess
import sys
import time

import pytest
import requests

from sandbox.klaviyo import KlaviyoStandIn
from sandbox.klaviyo.limits import FixedWindowLimiter, Limit

JSON_API = "application/vnd.api+json"
REVISION = "2026-07-15"


class Api:
    """A few lines of HTTP with Klaviyo's headers; deliberately not our real client."""

    def __init__(self, standin: KlaviyoStandIn, key: str | None = None, revision: str | None = REVISION):
        self.base = standin.url
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Klaviyo-API-Key {key or standin.api_key}"
        self.session.headers["Accept"] = JSON_API
        if revision:
            self.session.headers["revision"] = revision

    def get(self, path: str, **params) -> requests.Response:
        url = path if path.startswith("http") else self.base + path
        return self.session.get(url, params=params or None, timeout=10)

    def send(self, method: str, path: str, body, content_type: str = JSON_API) -> requests.Response:
        data = body if isinstance(body, (str, bytes)) else json.dumps(body)
        return self.session.request(method, self.base + path, data=data, headers={"Content-Type": content_type},
                                    timeout=10)

    def post(self, path: str, body, **kw) -> requests.Response:
        return self.send("POST", path, body, **kw)


def profile_body(**attributes) -> dict:
    return {"data": {"type": "profile", "attributes": attributes}}


def event_attributes(metric="Placed Order", profile=None, **attributes) -> dict:
    out = {"properties": attributes.pop("properties", {}),
           "metric": {"data": {"type": "metric", "attributes": {"name": metric}}}, **attributes}
    if profile is not None:
        out["profile"] = {"data": {"type": "profile", "attributes": profile}}
    return out


def event_body(metric="Placed Order", profile=None, **attributes) -> dict:
    return {"data": {"type": "event",
                     "attributes": event_attributes(metric, profile or {"email": "buyer@example.com"}, **attributes)}}


def bulk_body(entries: list[tuple[dict, list[dict]]]) -> dict:
    """``entries``: (profile attributes, [event attributes without profile]) per profile."""
    return {"data": {"type": "event-bulk-create-job", "attributes": {"events-bulk-create": {"data": [
        {"type": "event-bulk-create", "attributes": {
            "profile": {"data": {"type": "profile", "attributes": profile}},
            "events": {"data": [{"type": "event", "attributes": e} for e in events]}}}
        for profile, events in entries]}}}}


def error_of(response: requests.Response) -> dict:
    assert response.headers["Content-Type"].startswith(JSON_API)
    (error,) = response.json()["errors"]
    assert set(error) >= {"id", "status", "code", "title", "detail", "source", "links", "meta"}
    assert error["status"] == response.status_code
    return error


def follow(api: Api, path: str, **params) -> tuple[list[dict], int]:
    """Every item of a collection, following ``links.next``; returns (items, pages)."""
    items, pages, response = [], 0, api.get(path, **params)
    while True:
        assert response.status_code == 200, response.text
        document = response.json()
        items += document["data"]
        pages += 1
        if not document["links"].get("next"):
            return items, pages
        response = api.get(document["links"]["next"])


@pytest.fixture
def api(k):
    return Api(k)


def make_profile(api: Api, **attributes) -> str:
    response = api.post("/profiles", profile_body(**attributes))
    assert response.status_code == 201, response.text
    return response.json()["data"]["id"]


# -- authentication and request conventions --------------------------------------------------------------

def test_missing_api_key_is_401_not_authenticated(k):
    response = requests.get(k.url + "/lists", headers={"revision": REVISION}, timeout=5)
    assert response.status_code == 401
    assert error_of(response)["code"] == "not_authenticated"


def test_unknown_api_key_is_401_authentication_failed(k):
    response = Api(k, key="pk_wrong").get("/lists")
    assert response.status_code == 401
    assert error_of(response)["code"] == "authentication_failed"


def test_missing_revision_header_is_400_naming_the_parameter(k):
    response = Api(k, revision=None).get("/lists")
    assert response.status_code == 400
    error = error_of(response)
    assert (error["code"], error["title"], error["source"]) == ("invalid", "Invalid input.", {"parameter": "revision"})


@pytest.mark.parametrize("revision", ["2026-10-15", "2026-07-15", "2024-02-15.pre"])
def test_any_dated_revision_is_accepted(k, revision):
    assert Api(k, revision=revision).get("/lists").status_code == 200


def test_body_with_another_content_type_is_415(api):
    response = api.post("/profiles", profile_body(email="a@example.com"), content_type="text/plain")
    assert response.status_code == 415
    assert error_of(response)["code"] == "unsupported_media_type"


def test_plain_json_content_type_is_accepted(api):
    assert api.post("/profiles", profile_body(email="a@example.com"), content_type="application/json").status_code == 201


def test_invalid_json_is_400(api):
    response = api.post("/profiles", "{not json")
    assert response.status_code == 400
    error_of(response)


def test_unknown_path_is_404_with_klaviyo_error_body(api):
    response = api.get("/nothing-here")
    assert response.status_code == 404
    assert error_of(response)["code"] == "not_found"


# -- profiles --------------------------------------------------------------------------------------------

PROFILE_ATTRIBUTES = {"email", "phone_number", "external_id", "first_name", "last_name", "organization", "locale",
                      "title", "image", "created", "updated", "last_event_date", "location", "properties"}
LOCATION = {"address1", "address2", "city", "country", "latitude", "longitude", "region", "zip", "timezone", "ip"}


def test_create_profile_answers_201_with_the_spec_resource_shape(api):
    response = api.post("/profiles", profile_body(email="Ann@Example.com", phone_number="+15005550006",
                                                  first_name="Ann", location={"city": "Austin"},
                                                  properties={"tiktok_order_count": 1}))
    assert response.status_code == 201
    assert response.headers["Content-Type"] == JSON_API
    data = response.json()["data"]
    assert data["type"] == "profile" and len(data["id"]) == 26 and data["id"].isupper()
    assert set(data["attributes"]) == PROFILE_ATTRIBUTES
    assert set(data["attributes"]["location"]) == LOCATION
    assert data["attributes"]["email"] == "ann@example.com"
    assert data["attributes"]["properties"] == {"tiktok_order_count": 1}
    assert set(data["relationships"]) == {"lists", "segments"}
    assert set(data["relationships"]["lists"]["links"]) == {"self", "related"}
    assert data["links"]["self"].startswith(api.base + "/profiles/" + data["id"])
    assert response.json()["links"]["self"] == data["links"]["self"]


@pytest.mark.parametrize("identifier", [{"email": "dup@example.com"}, {"phone_number": "+15005550006"},
                                        {"external_id": "tt-1"}])
def test_create_profile_with_a_taken_identifier_is_409_duplicate_profile_naming_the_owner(api, identifier):
    owner = make_profile(api, **identifier, first_name="First")
    response = api.post("/profiles", profile_body(**identifier, first_name="Second"))
    assert response.status_code == 409
    error = error_of(response)
    assert (error["code"], error["title"]) == ("duplicate_profile", "Conflict.")
    assert error["detail"] == "A profile already exists with one of these identifiers."
    assert error["source"] == {"pointer": "/data/attributes"}
    assert error["meta"] == {"duplicate_profile_id": owner}


@pytest.mark.parametrize("body, pointer", [
    (profile_body(email="not-an-email"), "/data/attributes/email"),
    (profile_body(phone_number="5005550006"), "/data/attributes/phone_number"),
    (profile_body(phone_number="+0123"), "/data/attributes/phone_number"),
    (profile_body(first_name="No identifier"), "/data/attributes"),
    (profile_body(email="a@example.com", favourite_color="red"), "/data/attributes/favourite_color"),
    (profile_body(email="a@example.com", properties=["not", "an", "object"]), "/data/attributes/properties"),
    (profile_body(email="a@example.com", location={"planet": "Mars"}), "/data/attributes/location/planet"),
    ({"data": {"type": "profiles", "attributes": {"email": "a@example.com"}}}, "/data/type"),
])
def test_invalid_profile_is_400_invalid_with_a_pointer_to_the_field(api, body, pointer):
    response = api.post("/profiles", body)
    assert response.status_code == 400
    error = error_of(response)
    assert (error["code"], error["title"], error["source"]) == ("invalid", "Invalid input.", {"pointer": pointer})


def test_profile_payload_over_100_kb_is_400(api):
    response = api.post("/profiles", profile_body(email="big@example.com", properties={"blob": "x" * 110_000}))
    assert response.status_code == 400
    assert error_of(response)["source"] == {"pointer": "/data"}


def test_patch_leaves_omitted_attributes_alone_and_null_clears(api):
    pid = make_profile(api, email="p@example.com", first_name="Pat", last_name="Lee", properties={"a": 1, "b": 2})
    response = api.send("PATCH", f"/profiles/{pid}", {"data": {
        "type": "profile", "id": pid, "attributes": {"last_name": None, "title": "Boss", "properties": {"b": 3}}}})
    assert response.status_code == 200
    attributes = response.json()["data"]["attributes"]
    assert (attributes["first_name"], attributes["last_name"], attributes["title"]) == ("Pat", None, "Boss")
    assert attributes["properties"] == {"a": 1, "b": 3}


def test_patch_meta_patch_properties_appends_and_unsets(api):
    pid = make_profile(api, email="p@example.com", properties={"tags": ["a"], "gone": 1})
    response = api.send("PATCH", f"/profiles/{pid}", {"data": {
        "type": "profile", "id": pid, "attributes": {},
        "meta": {"patch_properties": {"append": {"tags": "b"}, "unset": "gone"}}}})
    assert response.json()["data"]["attributes"]["properties"] == {"tags": ["a", "b"]}


def test_patch_taking_another_profiles_identifier_is_409_naming_it(api):
    other = make_profile(api, email="other@example.com")
    pid = make_profile(api, email="me@example.com")
    response = api.send("PATCH", f"/profiles/{pid}", {"data": {"type": "profile", "id": pid,
                                                              "attributes": {"email": "other@example.com"}}})
    assert response.status_code == 409
    assert error_of(response)["meta"]["duplicate_profile_id"] == other


def test_patch_unknown_profile_is_404(api):
    response = api.send("PATCH", "/profiles/01UNKNOWN", {"data": {"type": "profile", "id": "01UNKNOWN",
                                                                 "attributes": {"first_name": "X"}}})
    assert response.status_code == 404
    assert error_of(response)["code"] == "not_found"


def test_profile_import_creates_with_201_then_updates_with_200(api):
    first = api.post("/profile-import", profile_body(email="u@example.com", first_name="One"))
    second = api.post("/profile-import", profile_body(email="U@example.com", last_name="Two"))
    assert (first.status_code, second.status_code) == (201, 200)
    assert first.json()["data"]["id"] == second.json()["data"]["id"]
    assert (second.json()["data"]["attributes"]["first_name"], second.json()["data"]["attributes"]["last_name"]) == (
        "One", "Two")


@pytest.mark.parametrize("match", [{"phone_number": "+15005550006"}, {"external_id": "tt-9"}])
def test_profile_import_matches_by_phone_then_external_id(api, match):
    pid = make_profile(api, **match)
    response = api.post("/profile-import", profile_body(**match, email="new@example.com"))
    assert response.status_code == 200
    assert response.json()["data"]["id"] == pid
    assert response.json()["data"]["attributes"]["email"] == "new@example.com"


def test_profile_import_by_id_updates_that_profile(api):
    pid = make_profile(api, email="old@example.com")
    response = api.post("/profile-import", {"data": {"type": "profile", "id": pid,
                                                     "attributes": {"email": "renamed@example.com"}}})
    assert response.status_code == 200 and response.json()["data"]["attributes"]["email"] == "renamed@example.com"


def test_profile_import_identifiers_of_two_profiles_is_409_with_the_first_match(api):
    by_email = make_profile(api, email="e@example.com")
    make_profile(api, phone_number="+15005550006")
    response = api.post("/profile-import", profile_body(email="e@example.com", phone_number="+15005550006"))
    assert response.status_code == 409
    assert error_of(response)["meta"]["duplicate_profile_id"] == by_email


@pytest.mark.parametrize("existing, upsert", [
    ({"email": "shared@example.com", "external_id": "shop:1"}, {"email": "shared@example.com", "external_id": "tt:9"}),
    ({"email": "a@example.com", "phone_number": "+15005550006"}, {"email": "b@example.com",
                                                                  "phone_number": "+15005550006"}),
])
def test_profile_import_never_merges_two_people_it_answers_409(k, api, existing, upsert):
    owner = make_profile(api, **existing)
    response = api.post("/profile-import", profile_body(**upsert))
    assert response.status_code == 409
    assert error_of(response)["meta"]["duplicate_profile_id"] == owner
    assert [{key: p[key] for key in existing} for p in k.state()["profiles"]] == [existing]


def test_get_profile_by_id_and_unknown_is_404(api):
    pid = make_profile(api, email="g@example.com")
    assert api.get(f"/profiles/{pid}").json()["data"]["id"] == pid
    response = api.get("/profiles/01NOPE")
    assert response.status_code == 404
    assert error_of(response)["code"] == "not_found"


@pytest.mark.parametrize("expression", [
    'equals(email,"f2@example.com")', "equals(email,'F2@example.com')", 'equals(phone_number,"+15005550002")',
    'equals(external_id,"ext-2")', 'any(email,["nobody@example.com","f2@example.com"])'])
def test_get_profiles_filters_by_identifier(api, expression):
    for i in range(1, 4):
        make_profile(api, email=f"f{i}@example.com", phone_number=f"+1500555000{i}", external_id=f"ext-{i}")
    found = api.get("/profiles", filter=expression).json()["data"]
    assert [p["attributes"]["email"] for p in found] == ["f2@example.com"]


def test_get_profiles_filters_by_id(api):
    pid = make_profile(api, email="x@example.com")
    make_profile(api, email="y@example.com")
    assert [p["id"] for p in api.get("/profiles", filter=f'equals(id,"{pid}")').json()["data"]] == [pid]


@pytest.mark.parametrize("params", [{"page[size]": "101"}, {"page[size]": "0"}, {"filter": "equals(first_name,\"x\")"},
                                    {"filter": "equals(email,"}, {"filter": "equals(email)"},
                                    {"filter": 'any(email,"a@example.com")'}, {"filter": "equals(created,2025-01-01)"},
                                    {"sort": "first_name"}])
def test_bad_profile_query_is_400_naming_the_parameter(api, params):
    response = api.get("/profiles", **params)
    assert response.status_code == 400
    assert error_of(response)["source"] == {"parameter": next(iter(params))}


def test_additional_fields_subscriptions_adds_consent(api):
    pid = make_profile(api, email="s@example.com")
    plain = api.get(f"/profiles/{pid}").json()["data"]["attributes"]
    extra = api.get(f"/profiles/{pid}", **{"additional-fields[profile]": "subscriptions"}).json()["data"]["attributes"]
    assert "subscriptions" not in plain
    marketing = extra["subscriptions"]["email"]["marketing"]
    assert (marketing["consent"], marketing["can_receive_email_marketing"], marketing["suppression"]) == (
        "NEVER_SUBSCRIBED", True, [])


# -- pagination ------------------------------------------------------------------------------------------

def test_profiles_paginate_to_the_end_following_links_next(api):
    made = {make_profile(api, email=f"page{i}@example.com") for i in range(45)}
    items, pages = follow(api, "/profiles")
    assert pages == 3 and len(items) == 45 and {p["id"] for p in items} == made


def test_last_page_has_no_next_link_and_later_pages_have_prev(api):
    for i in range(3):
        make_profile(api, email=f"l{i}@example.com")
    first = api.get("/profiles", **{"page[size]": "2"}).json()
    assert "prev" not in first["links"]
    second = api.get(first["links"]["next"]).json()
    assert "next" not in second["links"] and len(second["data"]) == 1
    back = api.get(second["links"]["prev"]).json()
    assert [p["id"] for p in back["data"]] == [p["id"] for p in first["data"]]


def test_cursor_with_a_leading_equals_sign_is_tolerated(api):
    for i in range(3):
        make_profile(api, email=f"c{i}@example.com")
    first = api.get("/profiles", **{"page[size]": "2"}).json()
    cursor = requests.utils.urlparse(first["links"]["next"]).query.split("page%5Bcursor%5D=")[1]
    response = api.get("/profiles", **{"page[size]": "2", "page[cursor]": "=" + requests.utils.unquote(cursor)})
    assert response.status_code == 200 and len(response.json()["data"]) == 1


def test_bad_cursor_is_400_invalid_cursor_provided(api):
    response = api.get("/profiles", **{"page[cursor]": "not-a-cursor"})
    assert response.status_code == 400
    assert error_of(response)["detail"] == "Invalid cursor provided."


def test_cursor_only_works_with_the_sort_it_was_made_for(api):
    for i in range(3):
        make_profile(api, email=f"s{i}@example.com")
    by_email = api.get("/profiles", sort="-email", **{"page[size]": "1"}).json()
    assert by_email["data"][0]["attributes"]["email"] == "s2@example.com"
    items, _ = follow(api, by_email["links"]["next"])
    assert [p["attributes"]["email"] for p in items] == ["s1@example.com", "s0@example.com"]
    cursor = requests.utils.unquote(by_email["links"]["next"].split("page%5Bcursor%5D=")[1])
    response = api.get("/profiles", sort="created", **{"page[cursor]": cursor})
    assert response.status_code == 400 and error_of(response)["detail"] == "Invalid cursor provided."


def test_profile_created_while_paging_is_neither_skipped_nor_repeated(api):
    for i in range(4):
        make_profile(api, email=f"w{i}@example.com")
    first = api.get("/profiles", **{"page[size]": "2"}).json()
    make_profile(api, email="late@example.com")
    rest, _ = follow(api, first["links"]["next"])
    emails = [p["attributes"]["email"] for p in first["data"] + rest]
    assert len(emails) == len(set(emails)) == 5


def test_events_paginate_200_per_page_in_either_order(api):
    events = [event_attributes(properties={"n": i}, unique_id=f"o{i}", time=f"2025-01-01T00:{i // 60:02d}:{i % 60:02d}Z")
              for i in range(450)]
    assert api.post("/event-bulk-create-jobs", bulk_body([({"email": "many@example.com"}, events)])).status_code == 202
    items, pages = follow(api, "/events")
    assert pages == 3 and [e["attributes"]["event_properties"]["n"] for e in items] == list(range(450))
    newest_first, _ = follow(api, "/events", sort="-datetime", **{"page[size]": "1000"})
    assert [e["attributes"]["event_properties"]["n"] for e in newest_first] == list(range(449, -1, -1))


def test_lists_paginate_ten_per_page_and_reject_more(api):
    for i in range(25):
        assert api.post("/lists", {"data": {"type": "list", "attributes": {"name": f"L{i}"}}}).status_code == 201
    items, pages = follow(api, "/lists")
    assert pages == 3 and sorted(x["attributes"]["name"] for x in items) == sorted(f"L{i}" for i in range(25))
    assert api.get("/lists", **{"page[size]": "11"}).status_code == 400


# -- events ----------------------------------------------------------------------------------------------

def test_create_event_answers_202_with_an_empty_body_and_creates_profile_and_metric(k, api):
    response = api.post("/events", event_body(profile={"email": "new@example.com", "first_name": "Neo"},
                                              properties={"sku": "A"}, value=9.99, value_currency="USD",
                                              unique_id="order-1"))
    assert (response.status_code, response.content) == (202, b"")
    state = k.state()
    (profile,) = state["profiles"]
    assert (profile["email"], profile["first_name"]) == ("new@example.com", "Neo")
    (event,) = state["events"]
    assert (event["metric"], event["unique_id"], event["value"], event["value_currency"], event["profile_id"]) == (
        "Placed Order", "order-1", 9.99, "USD", profile["id"])
    assert [m["name"] for m in state["metrics"]] == ["Placed Order"]


def test_event_resource_matches_the_spec_and_mirrors_value_and_unique_id(api):
    api.post("/events", event_body(properties={"sku": "A"}, value=5, unique_id="o-7", time="2025-03-01T10:00:00Z"))
    (event,) = api.get("/events").json()["data"]
    assert set(event) == {"type", "id", "attributes", "relationships", "links"}
    assert event["attributes"]["timestamp"] == 1740823200
    assert event["attributes"]["datetime"] == "2025-03-01T10:00:00+00:00"
    assert event["attributes"]["event_properties"] == {"sku": "A", "$value": 5, "$event_id": "o-7"}
    assert event["relationships"]["profile"]["data"]["type"] == "profile"
    assert event["relationships"]["metric"]["data"]["type"] == "metric"


def test_repeat_unique_id_is_accepted_and_dropped_and_counted(k, api):
    body = event_body(unique_id="order-1", properties={"try": 1})
    assert [api.post("/events", body).status_code for _ in range(3)] == [202, 202, 202]
    summary = k.summary()
    assert summary["events"] == 1
    assert summary["duplicates_dropped"] == {"total": 2, "by_op": {"create_event": 2}}


def test_events_without_unique_id_dedupe_on_the_same_second(k, api):
    api.post("/events", event_body(time="2025-01-01T00:00:00.100Z"))
    api.post("/events", event_body(time="2025-01-01T00:00:00.900Z"))
    api.post("/events", event_body(time="2025-01-01T00:00:01Z"))
    assert k.summary()["events"] == 2


def test_same_unique_id_for_another_metric_or_profile_is_kept(k, api):
    api.post("/events", event_body(unique_id="u1"))
    api.post("/events", event_body(metric="Refunded", unique_id="u1"))
    api.post("/events", event_body(profile={"email": "other@example.com"}, unique_id="u1"))
    assert k.summary()["events"] == 3 and k.summary()["duplicates_dropped"]["total"] == 0


def _without(attributes: dict, key: str) -> dict:
    return {k: v for k, v in attributes.items() if k != key}


@pytest.mark.parametrize("attributes, pointer", [
    (_without(event_attributes(profile={"email": "a@example.com"}), "metric"), "/data/attributes/metric"),
    (event_attributes("M" * 128, {"email": "a@example.com"}), "/data/attributes/metric/data/attributes/name"),
    (_without(event_attributes(profile={"email": "a@example.com"}), "properties"), "/data/attributes/properties"),
    (event_attributes(profile={"email": "a@example.com"}, properties={f"p{i}": i for i in range(401)}),
     "/data/attributes/properties"),
    (event_attributes(profile={"email": "a@example.com"}, time="1999-12-31T23:59:59Z"), "/data/attributes/time"),
    (event_attributes(profile={"email": "a@example.com"}, time="2999-01-01T00:00:00Z"), "/data/attributes/time"),
    (event_attributes(profile={"email": "a@example.com"}, time="yesterday"), "/data/attributes/time"),
    (event_attributes(profile={"email": "a@example.com"}, value="9.99"), "/data/attributes/value"),
    (event_attributes(profile={"first_name": "Nobody"}), "/data/attributes/profile/data/attributes"),
    (event_attributes(profile={"email": "bad"}), "/data/attributes/profile/data/attributes/email"),
    (event_attributes(profile={"phone_number": "12345"}), "/data/attributes/profile/data/attributes/phone_number"),
])
def test_invalid_event_is_400_with_a_pointer_and_stores_nothing(k, api, attributes, pointer):
    response = api.post("/events", {"data": {"type": "event", "attributes": attributes}})
    assert response.status_code == 400
    assert error_of(response)["source"] == {"pointer": pointer}
    assert k.summary()["events"] == 0 and k.summary()["profiles"] == 0


def test_event_naming_an_unknown_profile_id_without_identifiers_is_400(k, api):
    body = {"data": {"type": "event", "attributes": {**event_attributes(), "profile": {
        "data": {"type": "profile", "id": "01UNKNOWN", "attributes": {}}}}}}
    response = api.post("/events", body)
    assert response.status_code == 400
    assert error_of(response)["source"] == {"pointer": "/data/attributes/profile/data/id"}
    assert k.summary()["profiles"] == 0


def test_event_naming_a_known_profile_id_is_recorded_for_it(k, api):
    pid = make_profile(api, email="known@example.com")
    body = {"data": {"type": "event", "attributes": {**event_attributes(), "profile": {
        "data": {"type": "profile", "id": pid, "attributes": {"first_name": "Kim"}}}}}}
    assert api.post("/events", body).status_code == 202
    assert [e["profile_id"] for e in k.state()["events"]] == [pid]
    assert k.state()["profiles"][0]["first_name"] == "Kim"


def test_event_never_merges_two_people(k, api):
    owner = make_profile(api, email="a@example.com", phone_number="+15005550006")
    api.post("/events", event_body(profile={"email": "b@example.com", "phone_number": "+15005550006"}))
    profiles = {p["email"]: p for p in k.state()["profiles"]}
    assert profiles["a@example.com"]["id"] == owner and profiles["a@example.com"]["phone_number"] == "+15005550006"
    assert profiles["b@example.com"]["phone_number"] is None
    assert k.state()["events"][0]["profile_id"] == profiles["b@example.com"]["id"]


def test_event_updates_its_profile_attributes_and_properties(k, api):
    pid = make_profile(api, email="e@example.com", properties={"keep": 1})
    api.post("/events", event_body(profile={"email": "e@example.com", "first_name": "Eve",
                                            "properties": {"tiktok_order_count": 2}}))
    (profile,) = k.state()["profiles"]
    assert (profile["id"], profile["first_name"], profile["properties"]) == (
        pid, "Eve", {"keep": 1, "tiktok_order_count": 2})
    assert profile["last_event_date"] is not None


def test_get_events_filters_by_profile_and_metric(api):
    api.post("/events", event_body(profile={"email": "a@example.com"}, unique_id="1"))
    api.post("/events", event_body(profile={"email": "b@example.com"}, unique_id="2"))
    api.post("/events", event_body(metric="Refunded", profile={"email": "a@example.com"}, unique_id="3"))
    everything = api.get("/events").json()["data"]
    a = everything[0]["relationships"]["profile"]["data"]["id"]
    placed = everything[0]["relationships"]["metric"]["data"]["id"]
    assert len(api.get("/events", filter=f'equals(profile_id,"{a}")').json()["data"]) == 2
    assert len(api.get("/events", filter=f'equals(metric_id,"{placed}")').json()["data"]) == 2
    both = api.get("/events", filter=f'and(equals(profile_id,"{a}"),equals(metric_id,"{placed}"))').json()["data"]
    assert [e["attributes"]["event_properties"]["$event_id"] for e in both] == ["1"]


def test_get_events_filters_by_unquoted_datetime(api):
    for i, when in enumerate(["2025-01-01T00:00:00Z", "2025-02-01T00:00:00Z", "2025-03-01T00:00:00Z"]):
        api.post("/events", event_body(unique_id=str(i), time=when))
    found = api.get("/events", filter="greater-than(datetime,2025-01-15T00:00:00Z)").json()["data"]
    assert [e["attributes"]["event_properties"]["$event_id"] for e in found] == ["1", "2"]


def test_get_events_include_metric_and_profile(api):
    api.post("/events", event_body(unique_id="1"))
    api.post("/events", event_body(unique_id="2"))
    document = api.get("/events", include="metric,profile").json()
    assert sorted(x["type"] for x in document["included"]) == ["metric", "profile"]
    metric = next(x for x in document["included"] if x["type"] == "metric")
    assert metric["attributes"]["name"] == "Placed Order"


def test_get_event_by_id_and_unknown_is_404(api):
    api.post("/events", event_body())
    (event,) = api.get("/events").json()["data"]
    assert api.get(f"/events/{event['id']}").json()["data"]["id"] == event["id"]
    assert api.get("/events/01NOPE").status_code == 404


# -- bulk event create -----------------------------------------------------------------------------------

def test_bulk_create_of_1000_events_is_accepted_quickly_and_stored(k, api):
    entries = [({"email": f"b{p}@example.com"}, [event_attributes(properties={"i": i}, unique_id=f"{p}-{i}", value=1.5)
                                                 for i in range(10)]) for p in range(100)]
    started = time.perf_counter()
    response = api.post("/event-bulk-create-jobs", bulk_body(entries))
    elapsed = time.perf_counter() - started
    assert (response.status_code, response.content) == (202, b"")
    assert k.summary()["events"] == 1000 and k.summary()["profiles"] == 100
    assert elapsed < 1.0, f"1,000-event bulk request took {elapsed * 1000:.0f} ms"


def test_bulk_create_over_1000_events_is_400(k, api):
    entries = [({"email": f"b{p}@example.com"}, [event_attributes(unique_id=str(i)) for i in range(91)])
               for p in range(11)]
    response = api.post("/event-bulk-create-jobs", bulk_body(entries))
    assert response.status_code == 400
    assert error_of(response)["source"] == {"pointer": "/data/attributes/events-bulk-create/data"}
    assert k.summary()["events"] == 0


def test_bulk_create_with_one_invalid_event_fails_the_whole_request_with_its_pointer(k, api):
    entries = [({"email": f"b{p}@example.com"}, [event_attributes(unique_id="x")]) for p in range(4)]
    entries[3][1][0] = _without(entries[3][1][0], "metric")
    response = api.post("/event-bulk-create-jobs", bulk_body(entries))
    assert response.status_code == 400
    assert error_of(response)["source"]["pointer"] == (
        "/data/attributes/events-bulk-create/data/3/attributes/events/data/0/attributes/metric")
    assert k.summary()["events"] == 0 and k.summary()["profiles"] == 0


def test_bulk_create_repeating_a_unique_id_inside_one_request_is_400_and_nothing_is_stored(k, api):
    entries = [({"email": "a@example.com"}, [event_attributes(unique_id="o1"), event_attributes(unique_id="o2")]),
               ({"email": "A@example.com"}, [event_attributes(unique_id="o1")])]
    response = api.post("/event-bulk-create-jobs", bulk_body(entries))
    assert response.status_code == 400
    assert error_of(response)["source"]["pointer"].endswith("/data/1/attributes/events/data/0/attributes/unique_id")
    assert k.summary()["events"] == 0


def test_bulk_create_dedupes_against_earlier_requests_and_counts(k, api):
    api.post("/events", event_body(profile={"email": "a@example.com"}, unique_id="o1"))
    entries = [({"email": "a@example.com"}, [event_attributes(unique_id="o1"), event_attributes(unique_id="o2")])]
    assert api.post("/event-bulk-create-jobs", bulk_body(entries)).status_code == 202
    summary = k.summary()
    assert summary["events"] == 2
    assert summary["duplicates_dropped"] == {"total": 1, "by_op": {"bulk_create_events": 1}}


# -- lists -----------------------------------------------------------------------------------------------

def make_list(api: Api, name: str) -> str:
    response = api.post("/lists", {"data": {"type": "list", "attributes": {"name": name}}})
    assert response.status_code == 201, response.text
    return response.json()["data"]["id"]


def members_body(ids) -> dict:
    return {"data": [{"type": "profile", "id": i} for i in ids]}


def test_create_list_allows_duplicate_names_and_filters_by_name(api):
    a, b = make_list(api, "Buyers"), make_list(api, "Buyers")
    make_list(api, "Other")
    assert a != b and len(a) == 6 and a.isalnum()
    found = api.get("/lists", filter='equals(name,"Buyers")').json()["data"]
    assert sorted(x["id"] for x in found) == sorted([a, b])
    assert api.get(f"/lists/{a}").json()["data"]["attributes"]["name"] == "Buyers"
    assert api.get("/lists/NOPE12").status_code == 404


def test_list_members_are_added_and_removed_without_touching_consent(k, api):
    lid = make_list(api, "Buyers")
    ids = [make_profile(api, email=f"m{i}@example.com") for i in range(25)]
    assert api.post(f"/lists/{lid}/relationships/profiles", members_body(ids)).status_code == 204
    assert api.post(f"/lists/{lid}/relationships/profiles", members_body(ids[:5])).status_code == 204
    items, pages = follow(api, f"/lists/{lid}/profiles")
    assert pages == 2 and [p["id"] for p in items] == ids
    assert all("joined_group_at" in p["attributes"] for p in items)
    assert api.send("DELETE", f"/lists/{lid}/relationships/profiles", members_body(ids[:20])).status_code == 204
    assert [p["id"] for p in api.get(f"/lists/{lid}/profiles").json()["data"]] == ids[20:]
    assert {p["email_marketing"]["consent"] for p in k.state()["profiles"]} == {"NEVER_SUBSCRIBED"}
    counted = api.get(f"/lists/{lid}", **{"additional-fields[list]": "profile_count"}).json()["data"]["attributes"]
    assert counted["profile_count"] == 5


def test_adding_more_than_1000_members_at_once_is_400(api):
    lid = make_list(api, "Big")
    response = api.post(f"/lists/{lid}/relationships/profiles", members_body([f"id{i}" for i in range(1001)]))
    assert response.status_code == 400 and error_of(response)["source"] == {"pointer": "/data"}


def test_adding_an_unknown_profile_is_400_pointing_at_it(api):
    lid = make_list(api, "L")
    pid = make_profile(api, email="real@example.com")
    response = api.post(f"/lists/{lid}/relationships/profiles", members_body([pid, "01UNKNOWN"]))
    assert response.status_code == 400 and error_of(response)["source"] == {"pointer": "/data/1/id"}


# -- segments --------------------------------------------------------------------------------------------

def make_segment(api: Api, *conditions, name="Segment") -> dict:
    body = {"data": {"type": "segment", "attributes": {"name": name, "definition": {"condition_groups": [
        {"conditions": list(group)} for group in conditions]}}}}
    response = api.post("/segments", body)
    assert response.status_code == 201, response.text
    return response.json()


def order_count_over(n) -> dict:
    return {"type": "profile-property", "property": "properties['tiktok_order_count']",
            "filter": {"type": "numeric", "operator": "greater-than", "value": n}}


def segment_emails(api: Api, sid: str) -> list[str]:
    items, _ = follow(api, f"/segments/{sid}/profiles")
    return sorted(p["attributes"]["email"] for p in items)


def test_segment_members_follow_profile_properties_live(api):
    sid = make_segment(api, [order_count_over(3)])["data"]["id"]
    make_profile(api, email="low@example.com", properties={"tiktok_order_count": 2})
    make_profile(api, email="high@example.com", properties={"tiktok_order_count": 7})
    assert segment_emails(api, sid) == ["high@example.com"]
    api.post("/profile-import", profile_body(email="low@example.com", properties={"tiktok_order_count": 4}))
    assert segment_emails(api, sid) == ["high@example.com", "low@example.com"]
    assert api.get(f"/segments/{sid}", **{"additional-fields[segment]": "profile_count"}).json()[
        "data"]["attributes"]["profile_count"] == 2


def test_segment_groups_and_conditions_combine_as_and_of_ors(api):
    vip = {"type": "profile-property", "property": "properties['vip']", "filter": {"type": "boolean", "operator": "equals",
                                                                                     "value": True}}
    austin = {"type": "profile-property", "property": "location.city",
              "filter": {"type": "string", "operator": "equals", "value": "Austin"}}
    sid = make_segment(api, [order_count_over(3), vip], [austin])["data"]["id"]
    make_profile(api, email="a@example.com", properties={"vip": True}, location={"city": "Austin"})
    make_profile(api, email="b@example.com", properties={"tiktok_order_count": 9}, location={"city": "Austin"})
    make_profile(api, email="c@example.com", properties={"vip": True}, location={"city": "Boston"})
    assert segment_emails(api, sid) == ["a@example.com", "b@example.com"]


def test_segment_on_email_consent_and_on_metric_counts(api):
    lid = make_list(api, "Newsletter")
    consented = {"type": "profile-marketing-consent", "consent": {
        "channel": "email", "can_receive_marketing": True, "consent_status": {"subscription": "subscribed"}}}
    sid = make_segment(api, [consented])["data"]["id"]
    api.post("/profile-subscription-bulk-create-jobs", subscribe_body(["yes@example.com"], lid))
    make_profile(api, email="no@example.com")
    assert segment_emails(api, sid) == ["yes@example.com"]
    metric_id = None
    for i in range(3):
        api.post("/events", event_body(profile={"email": "buyer@example.com"}, unique_id=f"o{i}"))
    api.post("/events", event_body(profile={"email": "once@example.com"}, unique_id="x"))
    metric_id = api.get("/events").json()["data"][0]["relationships"]["metric"]["data"]["id"]
    repeat = {"type": "profile-metric", "metric_id": metric_id, "measurement": "count",
              "measurement_filter": {"type": "numeric", "operator": "greater-than-or-equal", "value": 2},
              "timeframe_filter": {"type": "date", "operator": "in-the-last", "quantity": 30, "unit": "day"}}
    assert segment_emails(api, make_segment(api, [repeat])["data"]["id"]) == ["buyer@example.com"]


def test_conditions_not_simulated_are_ignored_and_named_in_meta(api):
    region = {"type": "profile-region", "in_region": True, "region": "united_states"}
    created = make_segment(api, [region], [order_count_over(0)])
    assert "profile-region" in created["meta"]["sandbox"]["not_evaluated"][0]
    make_profile(api, email="a@example.com", properties={"tiktok_order_count": 1})
    response = api.get(f"/segments/{created['data']['id']}/profiles").json()
    assert [p["attributes"]["email"] for p in response["data"]] == ["a@example.com"]
    assert response["meta"]["sandbox"]["not_evaluated"]


def test_segment_members_paginate_and_segments_list(api):
    sid = make_segment(api, [order_count_over(0)])["data"]["id"]
    for i in range(30):
        make_profile(api, email=f"s{i}@example.com", properties={"tiktok_order_count": 1})
    items, pages = follow(api, f"/segments/{sid}/profiles")
    assert pages == 2 and len({p["id"] for p in items}) == 30
    assert [s["id"] for s in api.get("/segments").json()["data"]] == [sid]
    assert api.get("/segments/NOPE12").status_code == 404


def test_segment_without_condition_groups_is_400(api):
    response = api.post("/segments", {"data": {"type": "segment", "attributes": {
        "name": "Empty", "definition": {"condition_groups": []}}}})
    assert response.status_code == 400
    assert error_of(response)["source"]["pointer"] == "/data/attributes/definition/condition_groups"


# -- bulk profile import ---------------------------------------------------------------------------------

def import_body(rows: list[dict], list_ids=()) -> dict:
    body = {"data": {"type": "profile-bulk-import-job", "attributes": {"profiles": {"data": [
        {"type": "profile", "attributes": row} for row in rows]}}}}
    if list_ids:
        body["data"]["relationships"] = {"lists": {"data": [{"type": "list", "id": i} for i in list_ids]}}
    return body


def test_bulk_import_job_moves_from_queued_to_processing_to_complete_then_upserts():
    with KlaviyoStandIn(rate_limit_scale=100, job_stage_seconds=0.4) as k:
        api = Api(k)
        started = time.time()
        created = api.post("/profile-bulk-import-jobs", import_body([{"email": f"i{i}@example.com"} for i in range(3)]))
        assert created.status_code == 202
        job = created.json()["data"]
        assert (job["type"], job["attributes"]["status"], job["attributes"]["total_count"]) == (
            "profile-bulk-import-job", "queued", 3)
        assert k.summary()["profiles"] == 0
        time.sleep(max(0.0, started + 0.55 - time.time()))
        polled = api.get(f"/profile-bulk-import-jobs/{job['id']}").json()["data"]["attributes"]
        assert polled["status"] == "processing" and polled["started_at"] is not None
        time.sleep(max(0.0, started + 0.95 - time.time()))
        done = api.get(f"/profile-bulk-import-jobs/{job['id']}").json()["data"]["attributes"]
        assert (done["status"], done["completed_count"], done["failed_count"]) == ("complete", 3, 0)
        assert done["completed_at"] is not None
        assert k.summary()["profiles"] == 3


def test_bulk_import_turns_invalid_rows_into_import_errors_and_joins_lists(k, api):
    lid = make_list(api, "Imported")
    existing = make_profile(api, email="old@example.com", first_name="Old")
    rows = [{"email": "old@example.com", "last_name": "Updated"}, {"email": "bad-email"}, {"first_name": "No id"},
            {"email": "new@example.com", "phone_number": "12"}, {"email": "ok@example.com"}]
    job = api.post("/profile-bulk-import-jobs", import_body(rows, [lid])).json()["data"]
    time.sleep(0.15)
    attributes = api.get(f"/profile-bulk-import-jobs/{job['id']}").json()["data"]["attributes"]
    assert (attributes["status"], attributes["completed_count"], attributes["failed_count"]) == ("complete", 2, 3)
    errors = api.get(f"/profile-bulk-import-jobs/{job['id']}/import-errors").json()["data"]
    assert [e["attributes"]["source"]["pointer"] for e in errors] == [
        "/data/attributes/profiles/data/1/attributes/email", "/data/attributes/profiles/data/2/attributes",
        "/data/attributes/profiles/data/3/attributes/phone_number"]
    assert errors[0]["type"] == "import-error" and errors[0]["attributes"]["original_payload"] == {"email": "bad-email"}
    old = api.get(f"/profiles/{existing}").json()["data"]["attributes"]
    assert (old["first_name"], old["last_name"]) == ("Old", "Updated")
    members = api.get(f"/lists/{lid}/profiles").json()["data"]
    assert sorted(p["attributes"]["email"] for p in members) == ["ok@example.com", "old@example.com"]


def test_import_errors_paginate(api):
    job = api.post("/profile-bulk-import-jobs", import_body([{"email": f"bad{i}"} for i in range(25)])).json()["data"]
    time.sleep(0.15)
    errors, pages = follow(api, f"/profile-bulk-import-jobs/{job['id']}/import-errors")
    assert pages == 2 and len(errors) == 25


def test_bulk_import_over_10000_profiles_is_400(api):
    response = api.post("/profile-bulk-import-jobs", import_body([{"email": f"x{i}@example.com"} for i in range(10_001)]))
    assert response.status_code == 400
    assert error_of(response)["source"] == {"pointer": "/data/attributes/profiles/data"}


def test_unknown_import_job_is_404(api):
    assert api.get("/profile-bulk-import-jobs/01NOPE").status_code == 404


# -- consent, suppression, deletion ----------------------------------------------------------------------

def subscribe_body(emails, list_id=None, consented_at=None, historical=None, kind="create") -> dict:
    consent = "SUBSCRIBED" if kind == "create" else "UNSUBSCRIBED"
    marketing = {"consent": consent, **({"consented_at": consented_at} if consented_at else {})}
    attributes = {"profiles": {"data": [{"type": "profile", "attributes": {
        "email": e, "subscriptions": {"email": {"marketing": marketing}}}} for e in emails]}}
    if historical is not None:
        attributes["historical_import"] = historical
    body = {"data": {"type": f"profile-subscription-bulk-{kind}-job", "attributes": attributes}}
    if list_id:
        body["data"]["relationships"] = {"list": {"data": {"type": "list", "id": list_id}}}
    return body


def suppression_body(emails, kind="create") -> dict:
    return {"data": {"type": f"profile-suppression-bulk-{kind}-job", "attributes": {"profiles": {"data": [
        {"type": "profile", "attributes": {"email": e}} for e in emails]}}}}


def marketing_of(api: Api, email: str) -> dict:
    (profile,) = api.get("/profiles", filter=f'equals(email,"{email}")',
                         **{"additional-fields[profile]": "subscriptions"}).json()["data"]
    return profile["attributes"]["subscriptions"]["email"]["marketing"]


def test_subscribe_sets_consent_clears_suppressions_creates_profiles_and_joins_the_list(api):
    lid = make_list(api, "Newsletter")
    api.post("/profile-suppression-bulk-create-jobs", suppression_body(["known@example.com"]))
    assert marketing_of(api, "known@example.com")["can_receive_email_marketing"] is False
    response = api.post("/profile-subscription-bulk-create-jobs",
                        subscribe_body(["known@example.com", "new@example.com"], lid))
    assert (response.status_code, response.content) == (202, b"")
    for email in ("known@example.com", "new@example.com"):
        marketing = marketing_of(api, email)
        assert (marketing["consent"], marketing["can_receive_email_marketing"], marketing["suppression"]) == (
            "SUBSCRIBED", True, [])
        assert marketing["consent_timestamp"] is not None
    assert len(api.get(f"/lists/{lid}/profiles").json()["data"]) == 2


def test_consented_at_without_historical_import_is_400(api):
    response = api.post("/profile-subscription-bulk-create-jobs",
                        subscribe_body(["a@example.com"], consented_at="2024-01-01T00:00:00Z"))
    assert response.status_code == 400
    assert error_of(response)["source"]["pointer"].endswith("/subscriptions/email/marketing/consented_at")


def test_historical_import_keeps_the_consent_time(api):
    api.post("/profile-subscription-bulk-create-jobs",
             subscribe_body(["a@example.com"], consented_at="2024-01-01T00:00:00Z", historical=True))
    assert marketing_of(api, "a@example.com")["consent_timestamp"] == "2024-01-01T00:00:00+00:00"


def test_unsubscribe_sets_unsubscribed_globally(api):
    api.post("/profile-subscription-bulk-create-jobs", subscribe_body(["a@example.com"]))
    assert api.post("/profile-subscription-bulk-delete-jobs", subscribe_body(["a@example.com"], kind="delete")
                    ).status_code == 202
    marketing = marketing_of(api, "a@example.com")
    assert (marketing["consent"], marketing["can_receive_email_marketing"]) == ("UNSUBSCRIBED", False)


@pytest.mark.parametrize("path, kind, limit", [("/profile-subscription-bulk-create-jobs", "create", 1000),
                                               ("/profile-subscription-bulk-delete-jobs", "delete", 100)])
def test_subscription_jobs_over_their_size_limit_are_400(api, path, kind, limit):
    emails = [f"s{i}@example.com" for i in range(limit + 1)]
    assert api.post(path, subscribe_body(emails, kind=kind)).status_code == 400


def test_suppress_and_unsuppress_answer_202_with_a_job_body(api):
    created = api.post("/profile-suppression-bulk-create-jobs", suppression_body(["a@example.com"]))
    assert created.status_code == 202
    assert created.json()["data"]["type"] == "profile-suppression-bulk-create-job"
    assert [s["reason"] for s in marketing_of(api, "a@example.com")["suppression"]] == ["USER_SUPPRESSED"]
    removed = api.post("/profile-suppression-bulk-delete-jobs", suppression_body(["a@example.com", "x@example.com"],
                                                                                 "delete"))
    assert removed.status_code == 202 and removed.json()["data"]["attributes"]["skipped_count"] == 1
    assert marketing_of(api, "a@example.com")["can_receive_email_marketing"] is True
    too_many = api.post("/profile-suppression-bulk-create-jobs", suppression_body([f"{i}@x.com" for i in range(101)]))
    assert too_many.status_code == 400


def test_suppressing_a_list_suppresses_its_members_and_mixing_targets_is_400(api):
    lid = make_list(api, "Complainers")
    api.post(f"/lists/{lid}/relationships/profiles", members_body([make_profile(api, email="m@example.com")]))
    body = {"data": {"type": "profile-suppression-bulk-create-job", "attributes": {},
                     "relationships": {"list": {"data": {"type": "list", "id": lid}}}}}
    response = api.post("/profile-suppression-bulk-create-jobs", body)
    assert response.status_code == 202 and response.json()["data"]["attributes"]["completed_count"] == 1
    assert marketing_of(api, "m@example.com")["can_receive_email_marketing"] is False
    body["data"]["attributes"] = suppression_body(["x@example.com"])["data"]["attributes"]
    assert api.post("/profile-suppression-bulk-create-jobs", body).status_code == 400


def deletion_body(pid=None, **attributes) -> dict:
    data = {"type": "profile", "attributes": attributes}
    if pid:
        data["id"] = pid
    return {"data": {"type": "data-privacy-deletion-job", "attributes": {"profile": {"data": data}}}}


@pytest.mark.parametrize("by", ["id", "email", "phone_number"])
def test_deletion_removes_the_profile_its_events_and_memberships(k, api, by):
    lid = make_list(api, "L")
    pid = make_profile(api, email="gone@example.com", phone_number="+15005550006")
    keep = make_profile(api, email="stay@example.com")
    api.post(f"/lists/{lid}/relationships/profiles", members_body([pid, keep]))
    api.post("/events", event_body(profile={"email": "gone@example.com"}, unique_id="1"))
    api.post("/events", event_body(profile={"email": "stay@example.com"}, unique_id="1"))
    body = deletion_body(pid) if by == "id" else deletion_body(**{by: {"email": "gone@example.com",
                                                                       "phone_number": "+15005550006"}[by]})
    response = api.post("/data-privacy-deletion-jobs", body)
    assert (response.status_code, response.content) == (202, b"")
    state = k.state()
    assert [p["id"] for p in state["profiles"]] == [keep]
    assert [e["profile_id"] for e in state["events"]] == [keep]
    assert state["lists"][0]["members"] == [keep]
    assert api.get(f"/profiles/{pid}").status_code == 404


@pytest.mark.parametrize("body", [deletion_body(), deletion_body("01ID", email="a@example.com"),
                                  deletion_body(email="a@example.com", phone_number="+15005550006")])
def test_deletion_needs_exactly_one_identifier(api, body):
    assert api.post("/data-privacy-deletion-jobs", body).status_code == 400


# -- robustness ------------------------------------------------------------------------------------------

GOOD_WRITES = {
    "/profiles": profile_body(email="a@example.com", location={"city": "x"}, properties={"a": [1, {"b": 2}]}),
    "/profile-import": {"data": {"type": "profile", "id": None, "attributes": {"email": "a@example.com"},
                                 "meta": {"patch_properties": {"append": {"t": 1}, "unset": "x"}}}},
    "/events": event_body(profile={"email": "a@example.com", "properties": {"p": 1}}, value=1.5, unique_id="u"),
    "/event-bulk-create-jobs": bulk_body([({"email": "a@example.com"}, [event_attributes(unique_id="u")])]),
    "/lists": {"data": {"type": "list", "attributes": {"name": "n", "opt_in_process": "single_opt_in"}}},
    "/segments": {"data": {"type": "segment", "attributes": {"name": "s", "definition": {"condition_groups": [
        {"conditions": [{"type": "profile-property", "property": "properties['a']",
                         "filter": {"type": "numeric", "operator": "greater-than", "value": 1}}]}]}}}},
    "/profile-bulk-import-jobs": {"data": {"type": "profile-bulk-import-job", "attributes": {"profiles": {"data": [
        {"type": "profile", "attributes": {"email": "a@example.com"}, "meta": {"patch_properties": {"unset": "x"}}}]}},
        "relationships": {"lists": {"data": [{"type": "list", "id": "LIST"}]}}}},
    "/profile-subscription-bulk-create-jobs": subscribe_body(["a@example.com"], "LIST"),
    "/profile-suppression-bulk-create-jobs": {"data": {"type": "profile-suppression-bulk-create-job", "attributes": {
        "profiles": {"data": [{"type": "profile", "attributes": {"email": "a@example.com"}}]}},
        "relationships": {"list": {"data": {"type": "list", "id": "LIST"}}}}},
    "/data-privacy-deletion-jobs": {"data": {"type": "data-privacy-deletion-job", "attributes": {
        "profile": {"data": {"type": "profile", "attributes": {"email": "a@example.com"}}}}}},
}
JUNK = [None, 1, "x", [], {}, [1], {"a": 1}, [None], {"data": None}, True]


def mutations(value, rng, depth=0):
    """A copy of ``value`` with one branch replaced by junk or removed."""
    if depth > 6 or not isinstance(value, (dict, list)) or not value or rng.random() < 0.2:
        return rng.choice(JUNK)
    copy = dict(value) if isinstance(value, dict) else list(value)
    key = rng.choice(list(copy)) if isinstance(copy, dict) else rng.randrange(len(copy))
    if isinstance(copy, dict) and rng.random() < 0.3:
        del copy[key]
    else:
        copy[key] = mutations(copy[key], rng, depth + 1)
    return copy


def test_malformed_bodies_get_4xx_answers_never_a_server_error(api):
    import random
    rng = random.Random(20260715)
    lid = make_list(api, "L")
    failures = []
    for path, good in GOOD_WRITES.items():
        good = json.loads(json.dumps(good).replace('"LIST"', f'"{lid}"'))
        for _ in range(25):
            body = mutations(good, rng)
            response = api.post(path, body)
            if response.status_code >= 500:
                failures.append((path, body, response.status_code))
    assert failures == []


# -- rate limits -----------------------------------------------------------------------------------------

def at_start_of_a_second(margin_to_minute_end: float = 3.0) -> None:
    """Sleep to just after a second boundary, and out of the last seconds of a minute."""
    now = time.time()
    if 60 - now % 60 < margin_to_minute_end:
        time.sleep(60 - now % 60 + 0.02)
    time.sleep(1 - time.time() % 1 + 0.02)


def test_over_the_burst_limit_is_429_with_an_integer_retry_after_and_no_ratelimit_headers(k, api):
    k.set_limits({"get_lists": (3, 100, None)})
    at_start_of_a_second()
    responses = [api.get("/lists") for _ in range(4)]
    assert [r.status_code for r in responses] == [200, 200, 200, 429]
    throttled = responses[-1]
    assert throttled.headers["Retry-After"] == "1"
    assert not any(h.lower().startswith("ratelimit-") for h in throttled.headers)
    error = error_of(throttled)
    assert (error["code"], error["title"]) == ("throttled", "Request was throttled.")
    assert error["detail"] == "Request was throttled. Expected available in 1 second."


def test_non_429_answers_carry_ratelimit_headers_for_the_steady_window(k, api):
    k.set_limits({"get_lists": (50, 100, None)})
    at_start_of_a_second()
    first, second = api.get("/lists"), api.get("/lists")
    assert (first.headers["RateLimit-Limit"], first.headers["RateLimit-Remaining"]) == ("100", "99")
    assert second.headers["RateLimit-Remaining"] == "98"
    assert 1 <= int(first.headers["RateLimit-Reset"]) <= 60
    invalid = api.get("/lists", **{"page[size]": "99"})
    assert invalid.status_code == 400 and invalid.headers["RateLimit-Remaining"] == "97"


def test_throttled_requests_do_not_count_and_the_burst_window_resets(k, api):
    k.set_limits({"get_lists": (2, 100, None)})
    at_start_of_a_second()
    assert [api.get("/lists").status_code for _ in range(7)] == [200, 200] + [429] * 5
    time.sleep(1 - time.time() % 1 + 0.02)
    again = [api.get("/lists") for _ in range(3)]
    assert [r.status_code for r in again] == [200, 200, 429]
    assert again[0].headers["RateLimit-Remaining"] == "97"
    assert k.summary()["http_429"] == {"total": 6, "by_op": {"get_lists": 6}}


def test_over_the_steady_limit_retry_after_runs_to_the_end_of_the_minute(k, api):
    k.set_limits({"get_lists": (100, 3, None)})
    at_start_of_a_second()
    statuses = [api.get("/lists") for _ in range(4)]
    assert [r.status_code for r in statuses] == [200, 200, 200, 429]
    expected = math.ceil(60 - time.time() % 60)
    assert abs(int(statuses[-1].headers["Retry-After"]) - expected) <= 1


def test_limits_are_counted_per_account_not_per_key_and_per_operation():
    # Klaviyo counts every private key of an account against the same limits.
    with KlaviyoStandIn(api_keys=("pk_a", "pk_b"), limits={"get_lists": (1, 100, None)}) as k:
        at_start_of_a_second()
        a, b = Api(k, key="pk_a"), Api(k, key="pk_b")
        assert [a.get("/lists").status_code, b.get("/lists").status_code] == [200, 429]
        assert a.get("/segments").status_code == 200


def test_rate_limit_scale_multiplies_the_spec_limits_keeping_at_least_one():
    with KlaviyoStandIn(rate_limit_scale=0.01) as k:
        at_start_of_a_second()
        api = Api(k)
        first = api.get("/segments")
        assert first.headers["RateLimit-Limit"] == "7"  # 750/m * 0.01
        assert [first.status_code, api.get("/segments").status_code] == [200, 429]  # burst 75 * 0.01 -> 1


def test_fixed_windows_align_to_the_clock_and_throttled_calls_do_not_count():
    limiter = FixedWindowLimiter(table={"op": Limit(burst=2, steady=3, daily=4)})
    t = 86400.0 * 20000  # a day (so also a minute) boundary
    assert limiter.acquire("k", "op", t + 0.1).allowed and limiter.acquire("k", "op", t + 0.2).allowed
    refused = limiter.acquire("k", "op", t + 0.3)
    assert (refused.allowed, refused.retry_after) == (False, 1)
    assert limiter.acquire("k", "op", t + 1.0).allowed  # next second
    steady = limiter.acquire("k", "op", t + 1.5)
    assert (steady.allowed, steady.retry_after) == (False, 59)  # 58.5 s to the minute, rounded up
    assert limiter.acquire("k", "op", t + 60).allowed  # 4th of the day
    daily = limiter.acquire("k", "op", t + 61)
    assert not daily.allowed and daily.retry_after == math.ceil(86400 - (t + 61) % 86400)
    assert limiter.acquire("other-key", "op", t + 61).allowed


def test_limits_come_from_the_spec_table(k):
    limiter = FixedWindowLimiter()
    assert limiter.limit_for("create_event") == Limit(350, 3500, None)
    assert limiter.limit_for("create_list") == Limit(10, 150, 150)
    assert limiter.limit_for("request_profile_deletion") == Limit(3, 60, None)


# -- admin -----------------------------------------------------------------------------------------------

def test_admin_state_lists_everything_stored(k, api):
    lid = make_list(api, "L")
    pid = make_profile(api, email="a@example.com")
    api.post(f"/lists/{lid}/relationships/profiles", members_body([pid]))
    api.post("/events", event_body(profile={"email": "a@example.com"}, unique_id="o1", value=3))
    make_segment(api, [order_count_over(0)])
    state = requests.get(k.root_url + "/_sandbox/state", timeout=5).json()
    assert state == k.state()
    assert [p["lists"] for p in state["profiles"]] == [[lid]]
    (event,) = state["events"]
    assert (event["metric"], event["unique_id"], event["value"], event["profile_id"]) == ("Placed Order", "o1", 3, pid)
    assert state["lists"][0]["members"] == [pid] and state["segments"][0]["members"] == []
    assert state["counters"]["requests"]["create_event"] == {"202": 1}


def test_admin_summary_counts_requests_events_and_429s(k, api):
    api.post("/events", event_body(unique_id="1"))
    api.post("/events", event_body(metric="Refunded", unique_id="1"))
    api.get("/profiles/01NOPE")
    summary = requests.get(k.root_url + "/_sandbox/summary", timeout=5).json()
    assert summary["events_by_metric"] == {"Placed Order": 1, "Refunded": 1}
    assert summary["requests"] == {"create_event": {"202": 2}, "get_profile": {"404": 1}}
    assert summary["http_429"] == {"total": 0, "by_op": {}}
    assert summary["profiles"] == 1 and summary["faults_injected"]["total"] == 0


def test_admin_request_log_records_op_arrival_time_and_status(k, api):
    before = time.time()
    api.post("/events", event_body())
    api.get("/lists")
    log = requests.get(k.root_url + "/_sandbox/requests", params={"op": "create_event"}, timeout=5).json()
    assert log["count"] == 1
    (entry,) = log["requests"]
    assert entry["op"] == "create_event" and entry["status"] == 202 and before <= entry["t"] <= time.time()
    assert len(k.requests()) == 2


def test_admin_reset_clears_data_and_counters_but_keeps_configuration(k, api):
    k.set_limits({"get_lists": (5, 5, None)})
    k.set_faults(latency_ms=1)
    api.post("/events", event_body())
    response = requests.post(k.root_url + "/_sandbox/reset", timeout=5)
    assert response.status_code == 200
    summary = k.summary()
    assert (summary["events"], summary["profiles"], summary["requests_total"]) == (0, 0, 0)
    assert summary["faults"]["latency_ms"] == 1
    assert requests.get(k.root_url + "/_sandbox/limits", timeout=5).json()["overrides"] == {"get_lists": [5, 5, None]}
    requests.post(k.root_url + "/_sandbox/reset", json={"reset_config": True}, timeout=5)
    assert k.summary()["faults"] is None


def test_admin_limits_and_faults_endpoints_configure_the_server(k, api):
    set_limits = requests.post(k.root_url + "/_sandbox/limits", json={"limits": {"get_lists": [1, 10, None]}}, timeout=5)
    assert set_limits.json()["overrides"] == {"get_lists": [1, 10, None]}
    at_start_of_a_second()
    assert [api.get("/lists").status_code, api.get("/lists").status_code] == [200, 429]
    configured = requests.post(k.root_url + "/_sandbox/faults", json={"error_rate": 1.0, "ops": ["get_profiles"]},
                               timeout=5)
    assert configured.json()["faults"]["error_rate"] == 1.0
    assert api.get("/profiles").status_code in (500, 503)
    assert requests.post(k.root_url + "/_sandbox/faults", json={"bogus": 1}, timeout=5).status_code == 400
    assert requests.delete(k.root_url + "/_sandbox/faults", timeout=5).json() == {"faults": None}
    assert api.get("/profiles").status_code == 200


def test_admin_lives_outside_api_and_needs_no_key(k):
    assert requests.get(k.root_url + "/_sandbox/summary", timeout=5).status_code == 200
    assert Api(k).get("/_sandbox/summary").status_code == 404


def test_module_cli_serves_until_interrupted_and_prints_url_and_key(tmp_path):
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "sandbox.klaviyo", "--port", str(port), "--api-key", "pk_cli"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        line = proc.stdout.readline()
        assert f"http://127.0.0.1:{port}/api" in line and "pk_cli" in line
        for _ in range(50):
            try:
                response = requests.get(f"http://127.0.0.1:{port}/api/lists", timeout=2,
                                        headers={"Authorization": "Klaviyo-API-Key pk_cli", "revision": REVISION})
                break
            except requests.ConnectionError:
                time.sleep(0.05)
        assert response.status_code == 200
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0
