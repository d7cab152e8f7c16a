"""Webhooks beyond order status: types 6, 7, 11, 12, per-shop URLs, misbehaviour on request, churn."""

from __future__ import annotations

import json
import time

import pytest

from sandbox.tiktok import DEFAULT_RETRY_SCHEDULE, TIKTOK_RETRY_SCHEDULE, TikTokStandIn
from tests.sandbox.test_tiktok_standin_webhooks import FAST_RETRIES, Receiver
from tiktok import WebhookSignatureError, verify_webhook

ALL_EVENTS = ("ORDER_STATUS_CHANGE", "CANCELLATION_STATUS_CHANGE", "RETURN_STATUS_CHANGE", "SELLER_DEAUTHORIZATION",
              "UPCOMING_AUTHORIZATION_EXPIRATION")


def payloads(receiver):
    return [json.loads(body) for body, _ in receiver.deliveries]


@pytest.fixture
def receiver():
    with Receiver() as r:
        yield r


def test_return_and_cancellation_changes_send_types_12_and_11_with_the_documented_fields(receiver):
    with TikTokStandIn(orders=200, seed=6, webhook_url=receiver.url, webhook_events=ALL_EVENTS) as t:
        delivered = next(o for o in t.orders() if o["status"] == "DELIVERED")
        made = t.first.create_return(delivered["id"], "RETURN_AND_REFUND")
        t.first.set_return_status(made["return_id"], "AWAITING_BUYER_SHIP")
        waiting = next(o for o in t.orders() if o["status"] == "AWAITING_SHIPMENT")
        asked = t.first.request_cancellation(waiting["id"])
        assert t.wait_for_webhooks(5)
    returns = [p for p in payloads(receiver) if p["type"] == 12]
    assert [p["data"]["return_status"] for p in returns] == ["RETURN_OR_REFUND_REQUEST_PENDING", "AWAITING_BUYER_SHIP"]
    assert set(returns[0]["data"]) == {"order_id", "return_role", "return_type", "return_status", "return_id",
                                       "create_time", "update_time"}
    assert returns[0]["data"]["return_id"] == made["return_id"] and returns[0]["shop_id"] == t.shop_id
    (cancel,) = [p for p in payloads(receiver) if p["type"] == 11]
    assert cancel["data"] == {"order_id": waiting["id"], "cancellations_role": "BUYER",
                              "cancel_status": "CANCELLATION_REQUEST_PENDING", "cancel_id": asked["cancel_id"],
                              "create_time": asked["create_time"]}


def test_a_url_given_at_construction_hears_only_order_status_unless_it_subscribes_to_more(receiver):
    with TikTokStandIn(orders=100, seed=6, webhook_url=receiver.url) as t:
        t.first.create_return(next(o for o in t.orders() if o["status"] == "DELIVERED")["id"])
        t.set_status(next(o for o in t.orders() if o["status"] == "AWAITING_SHIPMENT")["id"], "CANCELLED")
        assert t.wait_for_webhooks(5)
    assert [p["type"] for p in payloads(receiver)] == [1]


def test_deauthorization_and_expiry_warnings_reach_every_shop_of_the_seller():
    with Receiver() as r, TikTokStandIn(shops=[{"seller": "x"}, {"seller": "x", "currency": "GBP"}, {}], orders=20,
                                        webhook_url=None) as t:
        t.set_webhook_url(r.url)
        warned = t.warn_authorization_expiry("x", days=30)
        gone = t.deauthorize("x")
        assert t.wait_for_webhooks(5) and len(warned) == len(gone) == 2
    sevens = [p for p in payloads(r) if p["type"] == 7]
    sixes = [p for p in payloads(r) if p["type"] == 6]
    assert {p["shop_id"] for p in sevens} == {p["shop_id"] for p in sixes} == {t.shop(0).id, t.shop(1).id}
    assert isinstance(sevens[0]["data"]["expiration_time"], str)
    assert abs(int(sevens[0]["data"]["expiration_time"]) - (time.time() + 30 * 86400)) < 60
    assert sixes[0]["data"]["message"].startswith(f"Shop_id {sixes[0]['shop_id']} is deauthorized")


def test_a_shop_with_its_own_url_is_notified_there():
    with Receiver() as app_wide, Receiver() as own, TikTokStandIn(shops=2, orders=100, seed=2) as t:
        t.set_webhook_url(app_wide.url)
        t.set_webhook_url(own.url, shop=t.shop(1).cipher)
        for shop in t.shops:
            t.set_status(next(o for o in shop.orders() if o["status"] != "CANCELLED")["id"], "CANCELLED")
        assert t.wait_for_webhooks(5)
    assert {p["shop_id"] for p in payloads(app_wide)} == {t.shop(0).id}
    assert {p["shop_id"] for p in payloads(own)} == {t.shop(1).id}


def test_forged_stale_repeated_and_reordered_deliveries_do_what_they_say(receiver):
    with TikTokStandIn(orders=300, seed=5, webhook_url=receiver.url) as t:
        unpaid = [o["id"] for o in t.orders() if o["status"] == "UNPAID"][:6]
        t.set_webhook_faults(forge=1)
        t.set_status(unpaid[0], "CANCELLED")
        t.set_webhook_faults(stale=1, stale_seconds=900)
        t.set_status(unpaid[1], "CANCELLED")
        t.set_webhook_faults(duplicate=1)
        t.set_status(unpaid[2], "CANCELLED")
        assert t.wait_for_webhooks(5)
        t.set_webhook_faults(reorder=3)
        for order_id in unpaid[3:6]:
            t.set_status(order_id, "CANCELLED")
        assert t.wait_for_webhooks(5)
    deliveries = receiver.deliveries
    forged_body, forged_headers = deliveries[0]
    with pytest.raises(WebhookSignatureError):
        verify_webhook(t.app_key, t.app_secret, forged_headers["Authorization"], forged_body)
    for body, headers in deliveries[1:]:
        verify_webhook(t.app_key, t.app_secret, headers["Authorization"], body)      # the others are genuine
    stale = json.loads(deliveries[1][0])
    assert time.time() - stale["timestamp"] >= 890
    assert deliveries[2][0] == deliveries[3][0]                                       # same bytes, same id
    assert [json.loads(b)["data"]["order_id"] for b, _ in deliveries[4:]] == unpaid[3:6][::-1]
    log = {e["subject"]: e for e in t.webhook_log()}
    assert log[unpaid[0]]["forged"] and log[unpaid[1]]["stale"] and log[unpaid[2]]["copies"] == 2


def test_retries_follow_four_growing_waits_like_tiktoks_schedule():
    assert len(TIKTOK_RETRY_SCHEDULE) == len(DEFAULT_RETRY_SCHEDULE) == 4
    assert list(DEFAULT_RETRY_SCHEDULE) == sorted(DEFAULT_RETRY_SCHEDULE)
    with Receiver(fail_first=100) as r, TikTokStandIn(orders=50, seed=2, webhook_url=r.url,
                                                      webhook_retry_schedule=FAST_RETRIES + (0.3,)) as t:
        t.set_status(t.orders()[0]["id"], "CANCELLED")
        assert t.wait_for_webhooks(5)
        (entry,) = t.webhook_log()
    assert len(r.deliveries) == 5 and entry["attempts"] == 5 and entry["outcome"] == "dropped"


def test_churn_moves_orders_at_a_steady_rate_and_logs_change_and_arrival_times(receiver):
    with TikTokStandIn(orders=2000, seed=7, webhook_url=receiver.url, rate_limit_qps=0) as t:
        churn = t.start_churn(changes_per_second=40, duration=1.0)
        churn.join(5)
        assert t.wait_for_webhooks(5)
        stats = t.churn_stats()
        log = t.webhook_log()
    assert stats["changes"] == 40 and not stats["exhausted"]            # 40/s for 1 s, on a fixed schedule
    assert 20 <= stats["achieved_rate"] <= 45
    assert len(log) == stats["changes"] == len(receiver.deliveries)
    assert all(e["outcome"] == "acked" and e["acked_at"] >= e["changed_at"] for e in log)
    last = {c["order_id"]: c["status"] for c in stats["changes_log"]}
    current = {o["id"]: o["status"] for o in t.orders()}
    assert all(current[order_id] == status for order_id, status in last.items())
