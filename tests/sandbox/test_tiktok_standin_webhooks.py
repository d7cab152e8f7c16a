"""Webhooks from the TikTok stand-in: signed type-1 envelopes, retried on failure."""

from __future__ import annotations

import json
import threading

import pytest
from flask import Flask, request

from sandbox.server import LoopbackServer
from sandbox.tiktok import TikTokStandIn, sign_webhook

FAST_RETRIES = (0.05, 0.1, 0.2)


class Receiver:
    """A little webhook endpoint that records every delivery and fails the first ``fail_first`` of them."""

    def __init__(self, fail_first: int = 0):
        self.fail_first, self.deliveries, self.lock = fail_first, [], threading.Lock()
        app = Flask("receiver")

        @app.post("/hook")
        def hook():
            with self.lock:
                self.deliveries.append((request.get_data(), dict(request.headers)))
                failing = len(self.deliveries) <= self.fail_first
            return ("nope", 500) if failing else ("", 204)

        self.server = LoopbackServer(app)

    def __enter__(self):
        self.server.start()
        self.url = self.server.root_url + "/hook"
        return self

    def __exit__(self, *exc):
        self.server.stop()


@pytest.fixture
def receiver():
    with Receiver(fail_first=1) as r:
        yield r


def test_status_changes_are_delivered_signed_and_retried_after_a_500(receiver):
    with TikTokStandIn(orders=100, seed=2, webhook_url=receiver.url, webhook_retry_schedule=FAST_RETRIES) as t:
        order = next(o for o in t.orders() if o["status"] == "AWAITING_SHIPMENT")
        t.set_status(order["id"], "CANCELLED", cancel_reason="Out of stock")
        assert t.wait_for_webhooks(5)
        counters = t.counters()
    assert counters["webhooks_sent"] == 1 and counters["webhooks_failed"] == 0
    assert counters["webhook_attempts"] == 2 and len(receiver.deliveries) == 2
    (first, _), (body, headers) = receiver.deliveries
    assert first == body                                   # a retry resends the same bytes
    assert headers["Authorization"] == sign_webhook(t.app_key, t.app_secret, body)
    payload = json.loads(body)
    assert payload["type"] == 1 and payload["shop_id"] == t.shop_id
    assert isinstance(payload["tts_notification_id"], str) and isinstance(payload["timestamp"], int)
    assert payload["data"] == {"is_on_hold_order": False, "order_id": order["id"], "order_status": "CANCELLED",
                               "update_time": t.orders()[[o["id"] for o in t.orders()].index(order["id"])]["update_time"]}


def test_every_transition_of_advance_sends_one_webhook():
    with Receiver() as r, TikTokStandIn(orders=300, seed=4, webhook_url=r.url) as t:
        before = {o["id"]: o["status"] for o in t.orders()}
        moved = t.advance(2 * 3600)
        assert moved and t.wait_for_webhooks(5)
        payloads = [json.loads(body)["data"] for body, _ in r.deliveries]
        assert {p["order_id"] for p in payloads} == set(moved)
        assert len({json.loads(body)["tts_notification_id"] for body, _ in r.deliveries}) == len(r.deliveries)
        final = {o["id"]: o for o in t.orders()}
        last = {p["order_id"]: p for p in payloads}
        assert all(last[i]["order_status"] == final[i]["status"] != before[i] for i in moved)
        assert t.counters()["webhooks_sent"] == len(payloads)


def test_a_receiver_that_keeps_failing_is_given_up_on_and_counted():
    with Receiver(fail_first=100) as r, TikTokStandIn(orders=50, seed=2, webhook_url=r.url,
                                                      webhook_retry_schedule=FAST_RETRIES) as t:
        t.set_status(t.orders()[0]["id"], "CANCELLED")
        assert t.wait_for_webhooks(5)
        assert (t.counters()["webhooks_sent"], t.counters()["webhooks_failed"]) == (0, 1)
        assert len(r.deliveries) == 1 + len(FAST_RETRIES)
