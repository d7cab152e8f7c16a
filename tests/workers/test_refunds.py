"""Refunds: TikTok returns become Klaviyo's Refunded Order, and profile totals are net of refunds.
Real workers, both stand-ins."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tests.support import expected_from, klaviyo_events, valid_orders, wait_for_run
from workers.api import enqueue_sync
from workers.mapping import FULFILLED_STATUSES, external_id


@pytest.fixture
def synced(make_stack):
    """A stack after its first full sync, and an untouched delivered order of a buyer with no returns."""
    stack = make_stack(orders=300, workers=2)
    first = wait_for_run(enqueue_sync(days_back=31))
    assert first.status == "succeeded", first.error or first.error_details
    returned = {r["order_id"] for r in stack.tiktok.shop(0).returns()}
    orders = [o for o in valid_orders(stack) if o.status in FULFILLED_STATUSES and o.id not in returned]
    users_with_returns = {o.user_id for o in valid_orders(stack) if o.id in returned}
    order = next(o for o in orders if o.user_id not in users_with_returns)
    return stack, order


def profile(stack, user_id) -> dict:
    return next(p for p in stack.klaviyo.state()["profiles"] if p.get("external_id") == external_id(user_id))


def sync_again(stack):
    run = wait_for_run(enqueue_sync(days_back=1))
    assert run.status == "succeeded", run.error or run.error_details
    return run


def test_a_full_refund_is_one_refunded_order_sharing_the_orders_id_and_nets_the_totals(synced):
    stack, order = synced
    shop = stack.tiktok.shop(0)
    before = profile(stack, order.user_id)["properties"]
    ret = shop.create_return(order.id, "REFUND", reason="Damaged")
    shop.complete_refund(ret["return_id"])
    sync_again(stack)
    event = klaviyo_events(stack)[f"Refunded Order|{order.id}"]
    refunded = Decimal(str(shop.returns()[-1]["refund_amount"]["refund_total"]))
    assert Decimal(str(event["value"])) == refunded and event["properties"]["RefundType"] == "refund only"
    assert event["properties"]["OrderId"] == order.id and event["properties"]["ReturnId"] == ret["return_id"]
    after = profile(stack, order.user_id)["properties"]
    assert after["tiktok_refund_count"] == before["tiktok_refund_count"] + 1
    assert Decimal(str(after["tiktok_lifetime_value"])) == Decimal(str(before["tiktok_lifetime_value"])) - refunded
    assert after["tiktok_order_count"] == before["tiktok_order_count"]


def test_a_second_partial_refund_of_one_order_is_its_own_event_not_dropped_as_a_duplicate(synced):
    stack, order = synced
    shop = stack.tiktok.shop(0)
    first = shop.create_return(order.id, "REFUND", reason="Late")
    shop.set_return_status(first["return_id"], "RETURN_OR_REFUND_REQUEST_COMPLETE", partial_refund_share="0.2")
    sync_again(stack)
    second = shop.create_return(order.id, "REFUND", reason="Scratched")
    shop.set_return_status(second["return_id"], "RETURN_OR_REFUND_REQUEST_COMPLETE", partial_refund_share="0.3")
    sync_again(stack)
    landed = klaviyo_events(stack)
    assert f"Refunded Order|{order.id}" in landed                          # counts in Klaviyo's CLV
    assert f"Refunded Order|{order.id}:{second['return_id']}" in landed    # kept, not deduplicated away
    assert stack.klaviyo.summary()["duplicates_dropped"]["total"] == 0
    amounts = [Decimal(str(r["partial_refund"]["amount"])) for r in shop.returns()
               if r["return_id"] in (first["return_id"], second["return_id"])]
    assert Decimal(str(landed[f"Refunded Order|{order.id}"]["value"])) == amounts[0]
    _, expected = expected_from(stack)
    stats = expected[external_id(order.user_id)]
    after = profile(stack, order.user_id)["properties"]
    assert after["tiktok_refund_count"] == stats.refund_count == 2
    assert Decimal(str(after["tiktok_lifetime_value"])) == stats.lifetime_value


@pytest.mark.parametrize("kind, ending", [("RETURN_AND_REFUND", "REFUND_OR_RETURN_REQUEST_REJECT"),
                                          ("REFUND", "RETURN_OR_REFUND_REQUEST_SUCCESS"),
                                          ("REPLACEMENT", "REPLACEMENT_REQUEST_COMPLETE")],
                         ids=["rejected", "approved-not-yet-paid", "replacement"])
def test_no_money_back_means_no_refunded_order(synced, kind, ending):
    stack, order = synced
    shop = stack.tiktok.shop(0)
    before = profile(stack, order.user_id)["properties"]
    ret = shop.create_return(order.id, kind)
    shop.set_return_status(ret["return_id"], ending)
    sync_again(stack)
    assert not any(k.startswith(f"Refunded Order|{order.id}") for k in klaviyo_events(stack))
    after = profile(stack, order.user_id)["properties"]
    assert (after["tiktok_refund_count"], after["tiktok_lifetime_value"]) == \
        (before["tiktok_refund_count"], before["tiktok_lifetime_value"])
