"""Injected faults of the Klaviyo stand-in, each seen from a client over real HTTP."""

from __future__ import annotations

import json
import time

import pytest
import requests

from sandbox.klaviyo import KlaviyoStandIn

JSON_API = "application/vnd.api+json"


def headers(k) -> dict:
    return {"Authorization": f"Klaviyo-API-Key {k.api_key}", "revision": "2026-07-15", "Content-Type": JSON_API}


def create_event(k, unique_id="o1") -> requests.Response:
    body = {"data": {"type": "event", "attributes": {
        "properties": {}, "unique_id": unique_id,
        "metric": {"data": {"type": "metric", "attributes": {"name": "Placed Order"}}},
        "profile": {"data": {"type": "profile", "attributes": {"email": "f@example.com"}}}}}}
    return requests.post(k.url + "/events", data=json.dumps(body), headers=headers(k), timeout=10)


def get_lists(k) -> requests.Response:
    return requests.get(k.url + "/lists", headers=headers(k), timeout=10)


def test_error_rate_answers_500_or_503_with_klaviyo_error_body_and_changes_nothing(k):
    k.set_faults(error_rate=1.0)
    responses = [create_event(k, str(i)) for i in range(20)]
    assert {r.status_code for r in responses} == {500, 503}
    error = responses[0].json()["errors"][0]
    assert error["code"] == "error" and error["status"] == responses[0].status_code
    assert k.summary()["events"] == 0
    assert k.summary()["faults_injected"]["by_kind"] == {"error": 20}


def test_error_statuses_can_be_narrowed(k):
    k.set_faults(error_rate=1.0, error_statuses=[503])
    assert {create_event(k).status_code for _ in range(5)} == {503}


def test_latency_delays_every_matching_request(k):
    k.set_faults(latency_ms=150)
    started = time.perf_counter()
    assert get_lists(k).status_code == 200
    assert time.perf_counter() - started >= 0.15
    assert k.summary()["faults_injected"]["by_kind"] == {"latency": 1}


def test_drop_closes_the_connection_without_an_answer_and_changes_nothing(k):
    k.set_faults(drop_rate=1.0)
    with pytest.raises(requests.ConnectionError):
        create_event(k)
    assert k.summary()["events"] == 0
    (entry,) = k.requests("create_event")
    assert entry["status"] == 0 and entry["dropped"] is True


def test_drop_after_commit_loses_the_answer_but_keeps_the_write(k):
    k.set_faults(drop_rate=1.0, drop_after_commit=True)
    with pytest.raises(requests.ConnectionError):
        create_event(k)
    k.clear_faults()
    assert k.summary()["events"] == 1
    assert create_event(k).status_code == 202  # the client's retry is deduplicated
    assert k.summary()["events"] == 1 and k.summary()["duplicates_dropped"]["total"] == 1


def test_force_429_answers_the_next_n_requests_with_an_integer_retry_after(k):
    k.set_faults(force_429=2, retry_after=3)
    first, second, third = get_lists(k), get_lists(k), get_lists(k)
    assert [first.status_code, second.status_code, third.status_code] == [429, 429, 200]
    assert first.headers["Retry-After"] == "3"
    assert "RateLimit-Limit" not in first.headers and "RateLimit-Limit" in third.headers
    assert first.json()["errors"][0]["code"] == "throttled"
    assert k.summary()["faults_injected"]["by_kind"] == {"force_429": 2}


def test_force_429_rate_throttles_a_fraction(k):
    k.set_faults(force_429_rate=0.5, seed=7)
    statuses = [get_lists(k).status_code for _ in range(40)]
    assert 5 < statuses.count(429) < 35 and set(statuses) == {200, 429}


def test_malformed_html_is_a_502_html_page(k):
    k.set_faults(malformed_rate=1.0, malformed_kind="html")
    response = get_lists(k)
    assert response.status_code == 502 and response.headers["Content-Type"].startswith("text/html")
    assert b"<html>" in response.content


def test_malformed_truncated_serves_the_request_but_cuts_the_answer(k):
    k.set_faults(malformed_rate=1.0, malformed_kind="truncated")
    response = requests.post(k.url + "/profiles", headers=headers(k), timeout=10, data=json.dumps(
        {"data": {"type": "profile", "attributes": {"email": "t@example.com"}}}))
    assert response.status_code == 201
    with pytest.raises(ValueError):
        response.json()
    assert k.summary()["profiles"] == 1  # the work was done; only the answer was damaged


def test_malformed_unexpected_is_200_with_json_of_the_wrong_shape(k):
    k.set_faults(malformed_rate=1.0, malformed_kind="unexpected")
    response = get_lists(k)
    assert response.status_code == 200 and "data" not in response.json()


def test_faults_apply_only_to_the_listed_operations(k):
    k.set_faults(error_rate=1.0, ops=["create_event"])
    assert create_event(k).status_code in (500, 503)
    assert get_lists(k).status_code == 200
    assert k.summary()["faults_injected"]["by_op"] == {"create_event": 1}


def test_faults_clear_themselves_after_their_duration(k):
    k.set_faults(error_rate=1.0, duration=0.3)
    assert get_lists(k).status_code in (500, 503)
    time.sleep(0.35)
    assert get_lists(k).status_code == 200
    assert k.summary()["faults"] is None


def test_faults_given_at_construction_and_unknown_keys_rejected():
    with KlaviyoStandIn(faults={"error_rate": 1.0, "error_statuses": [500]}) as k:
        assert get_lists(k).status_code == 500
        with pytest.raises(TypeError):
            k.set_faults(no_such_fault=1)
        with pytest.raises(ValueError):
            k.set_faults(malformed_rate=1, malformed_kind="gibberish")


def test_faulted_requests_do_not_count_against_the_rate_limit(k):
    k.set_limits({"get_lists": (2, 100, None)})
    k.set_faults(error_rate=1.0, duration=60)
    time.sleep(1 - time.time() % 1 + 0.02)
    assert {get_lists(k).status_code for _ in range(5)} <= {500, 503}
    k.clear_faults()
    assert [get_lists(k).status_code for _ in range(3)] == [200, 200, 429]


def test_reject_with_match_refuses_exactly_the_matching_record_with_a_400(k):
    k.set_faults(reject_rate=1.0, match="poisoned-order", ops=["create_event"])
    refused = create_event(k, unique_id="poisoned-order")
    assert refused.status_code == 400
    error = refused.json()["errors"][0]
    assert error["code"] == "invalid" and error["source"]["pointer"] == "/data/attributes"
    assert create_event(k, unique_id="healthy-order").status_code == 202
    assert k.summary()["events"] == 1
    k.clear_faults()
    assert create_event(k, unique_id="poisoned-order").status_code == 202
