"""The whole pipeline with real worker processes, real Redis and a real database, against both stand-ins."""

from __future__ import annotations

from collections import Counter
from decimal import Decimal

import pytest

from db import history
from db.engine import session_scope
from db.ledger import get_watermark
from db.models import SyncItem
from tiktok import InvalidOrder, parse_order
from workers.mapping import is_placed
from workers.api import enqueue_sync, retry_failed
from tests.support import expected_from, klaviyo_events, wait_for_run

FINAL = ("succeeded", "partial", "failed")


def item_totals(run_id: str) -> Counter:
    totals: Counter = Counter()
    with session_scope() as session:
        for (_, status), n in history.item_counts(session, run_id).items():
            totals[status] += n
    return totals


@pytest.mark.slow
def test_two_thousand_orders_land_exactly_once_and_a_rerun_sends_nothing(make_stack):
    stack = make_stack(orders=2000, workers=2)
    expected_events, expected_profiles = expected_from(stack)

    run = wait_for_run(enqueue_sync(days_back=31))
    assert run.status == "succeeded", run.error_details
    totals = item_totals(run.id)
    assert run.success_count == totals["succeeded"] == len(expected_events) + len(expected_profiles)
    assert run.failed_count == totals["failed"] == 0
    assert run.records_synced == run.success_count and run.orders_read == 2000

    landed = klaviyo_events(stack)
    assert set(landed) == set(expected_events)
    for key, event in expected_events.items():
        assert Decimal(str(landed[key]["value"])) == event.value, key
    profiles = stack.klaviyo.state()["profiles"]
    assert {p["external_id"] for p in profiles} == set(expected_profiles)
    for profile in profiles:
        stats = expected_profiles[profile["external_id"]]
        assert profile["properties"]["tiktok_order_count"] == stats.order_count
        assert Decimal(str(profile["properties"]["tiktok_lifetime_value"])) == stats.lifetime_value
        assert profile["email_marketing"]["consent"] in (None, "NEVER_SUBSCRIBED")
    with session_scope() as session:
        assert get_watermark(session, "default") == run.window_end

    before = stack.klaviyo.summary()
    again = wait_for_run(enqueue_sync(days_back=31))
    after = stack.klaviyo.summary()
    assert again.status == "succeeded" and again.success_count == 0 and again.failed_count == 0
    assert again.options["already_delivered"] == len(expected_events)
    assert after["requests_total"] == before["requests_total"]
    assert after["duplicates_dropped"]["total"] == 0


def _first(stack, status, placed=True):
    for raw in stack.tiktok.orders():
        order = parse_order(raw)
        if not isinstance(order, InvalidOrder) and order.status.value == status and is_placed(order) == placed:
            return order
    raise AssertionError(f"the stand-in has no {status} order")


def test_status_changes_between_runs_send_only_the_new_events(make_stack):
    stack = make_stack(orders=150, workers=1, extra_env={"KSYNC_BULK_THRESHOLD": "100000"})
    shipping = _first(stack, "AWAITING_SHIPMENT")
    on_hold = _first(stack, "ON_HOLD", placed=False)

    first = wait_for_run(enqueue_sync(days_back=31))
    assert first.status == "succeeded", first.error_details
    landed = klaviyo_events(stack)
    assert f"Placed Order|{on_hold.id}" not in landed
    assert f"Cancelled Order|{shipping.id}" not in landed
    requests_after_first = stack.klaviyo.summary()["requests"]["create_event"]["202"]

    stack.tiktok.set_status(shipping.id, "CANCELLED", cancel_reason="Out of stock")
    stack.tiktok.set_status(on_hold.id, "AWAITING_SHIPMENT")
    second = wait_for_run(enqueue_sync(days_back=31))
    assert second.status == "succeeded", second.error_details

    landed = klaviyo_events(stack)
    cancelled = [k for k in landed if k == f"Cancelled Order|{shipping.id}"]
    assert len(cancelled) == 1 and landed[cancelled[0]]["properties"]["Reason"] == "Out of stock"
    assert f"Placed Order|{on_hold.id}" in landed
    new_events = {k for k in landed if k.endswith(on_hold.id) or on_hold.id + ":" in k} | set(cancelled)
    sent_in_second = stack.klaviyo.summary()["requests"]["create_event"]["202"] - requests_after_first
    assert sent_in_second == len(new_events)
    assert stack.klaviyo.summary()["duplicates_dropped"]["total"] == 0


def test_malformed_orders_become_failed_items_and_the_rest_of_the_run_goes_on(make_stack):
    stack = make_stack(orders=300, workers=1, malformed_ratio=0.03)
    malformed = stack.tiktok.malformed_ids()
    assert malformed
    expected_events, _ = expected_from(stack)

    run = wait_for_run(enqueue_sync(days_back=31))
    assert run.status == "partial"
    assert run.failed_count == len(malformed) and run.orders_invalid == len(malformed)
    with session_scope() as session:
        failed = history.failed_items(session, run.id)
    assert {i.key for i in failed} == malformed
    for item in failed:
        assert item.kind == "order" and item.error.startswith(f"order {item.key}: ")
    assert set(klaviyo_events(stack)) == set(expected_events)

    replay = wait_for_run(retry_failed(run.id))
    assert replay.parent_run_id == run.id and replay.status == "partial"  # record failures only
    assert replay.failed_count == len(malformed)

    again = wait_for_run(enqueue_sync(days_back=31))  # the same malformed orders, unchanged
    assert again.status == "succeeded" and again.failed_count == 0
    assert again.options["already_failing"] == len(malformed)


def test_a_dry_run_records_what_would_be_sent_and_sends_nothing(make_stack):
    stack = make_stack(orders=80, workers=1)
    expected_events, expected_profiles = expected_from(stack)
    run_id = enqueue_sync(days_back=31, dry_run=True)
    run = wait_for_run(run_id)
    assert run.status == "succeeded" and run.dry_run
    assert set(stack.klaviyo.summary()["requests"]) <= {"get_accounts"}  # only which account the key is: no write
    with session_scope() as session:
        skipped = session.query(SyncItem).filter_by(run_id=run_id, status="skipped").all()
        assert get_watermark(session, "default") is None
    assert {i.key for i in skipped if i.kind == "event"} == set(expected_events)
    assert {i.key for i in skipped if i.kind == "profile"} == set(expected_profiles)


def test_the_per_record_path_sends_one_request_per_profile_and_event(make_stack):
    stack = make_stack(orders=40, workers=1, extra_env={"KSYNC_BULK_THRESHOLD": "100000"})
    expected_events, expected_profiles = expected_from(stack)
    run = wait_for_run(enqueue_sync(days_back=31))
    assert run.status == "succeeded"
    requests = stack.klaviyo.summary()["requests"]
    assert requests["create_event"]["202"] == len(expected_events)
    assert sum(requests["create_or_update_profile"].values()) == len(expected_profiles)
    assert "bulk_create_events" not in requests
