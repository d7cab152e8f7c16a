"""Real time: TikTok webhooks through the real web service (``ksync serve``, gunicorn) and real
workers reach the Klaviyo stand-in within seconds; polling stays the safety net."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest
import requests

from db import connections as store
from db.engine import session_scope
from sandbox.stack import ROOT
from tests.support import klaviyo_events, valid_orders, wait_for_run
from tiktok.signing import webhook_signature
from workers.api import enqueue_sync
from workers.mapping import FULFILLED_STATUSES, PAID_STATUSES


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class WebService:
    """``ksync serve`` as a subprocess with the stack's settings."""

    def __init__(self, stack):
        self.stack = stack
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = None

    def start(self) -> "WebService":
        log = open(self.stack.log_dir / "web.log", "ab")
        self.process = subprocess.Popen([sys.executable, "-m", "cli.main", "serve", "--bind", f"127.0.0.1:{self.port}",
                                         "--workers", "2"], cwd=ROOT, env=self.stack.env, stdout=log,
                                        stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if requests.get(self.url + "/healthz", timeout=3).ok:
                    return self
            except requests.RequestException:  # not up yet, or a loaded machine answering slowly
                time.sleep(0.2)
        raise RuntimeError("ksync serve did not answer /healthz:\n" + (self.stack.log_dir / "web.log").read_text())

    def stop(self) -> None:
        """SIGTERM to gunicorn's arbiter: a graceful stop, as a supervisor does it."""
        if self.process and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(45)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                raise AssertionError("ksync serve did not stop within 45 s of SIGTERM")

    def metric(self, name: str, **labels) -> float:
        """The value of one sample of /metrics (0 when absent)."""
        from prometheus_client.parser import text_string_to_metric_families

        text = requests.get(self.url + "/metrics", timeout=10).text
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == name and all(sample.labels.get(k) == str(v) for k, v in labels.items()):
                    return sample.value
        return 0.0


@pytest.fixture
def live(make_stack):
    """A stack whose connection has synced once (so it knows its shop id), with the web service up
    and the TikTok stand-in sending every notification type to it."""
    stack = make_stack(orders=400, workers=2)
    first = wait_for_run(enqueue_sync(days_back=31))
    assert first.status in ("succeeded", "partial"), first.error
    web = WebService(stack).start()
    stack.tiktok.set_webhook_url(web.url + "/webhooks/tiktok")
    yield stack, web
    web.stop()


def wait_until(check, timeout: float = 30, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.2)
    raise AssertionError(f"{what}: not within {timeout}s")


def orders_in(stack, statuses, n):
    return [o for o in valid_orders(stack) if o.status in statuses][:n]


def test_a_status_change_reaches_klaviyo_through_the_webhook_within_seconds(live):
    stack, web = live
    [order] = orders_in(stack, PAID_STATUSES - FULFILLED_STATUSES, 1)
    before = stack.tiktok.counters()["requests"].get("/order/202309/orders/search", {})
    stack.tiktok.set_status(order.id, "IN_TRANSIT")
    wait_until(lambda: f"Fulfilled Order|{order.id}" in klaviyo_events(stack), 20, "Fulfilled Order in Klaviyo")
    assert stack.tiktok.counters()["requests"].get("/order/202309/orders/search", {}) == before  # no poll did it
    assert web.metric("ksync_webhooks_total", type="1", outcome="queued") >= 1
    assert web.metric("ksync_realtime_latency_seconds_count") >= 1


def test_a_burst_of_changes_becomes_a_few_fetches_and_each_event_lands_once(live):
    stack, web = live
    moving = orders_in(stack, PAID_STATUSES - FULFILLED_STATUSES, 20)
    assert len(moving) >= 10
    detail = "/order/202309/orders"
    before = sum(stack.tiktok.counters()["requests"].get(detail, {}).values())
    for order in moving:
        stack.tiktok.set_status(order.id, "IN_TRANSIT")
    wait_until(lambda: all(f"Fulfilled Order|{o.id}" in klaviyo_events(stack) for o in moving), 30, "every change")
    fetches = sum(stack.tiktok.counters()["requests"].get(detail, {}).values()) - before
    assert 1 <= fetches <= len(moving) // 4, fetches  # coalesced, not one TikTok call per webhook
    assert stack.klaviyo.summary()["duplicates_dropped"]["total"] == 0


def test_forged_stale_and_repeated_notifications_are_refused_or_dropped_and_counted(live):
    stack, web = live
    moving = orders_in(stack, PAID_STATUSES - FULFILLED_STATUSES, 3)
    for order, fault in zip(moving, ({"forge": 1}, {"stale": 1, "stale_seconds": 3 * 86400}, {"duplicate": 1})):
        stack.tiktok.set_webhook_faults(**fault)
        stack.tiktok.set_status(order.id, "IN_TRANSIT")
        stack.tiktok.wait_for_webhooks(30)
    assert web.metric("ksync_webhooks_rejected_total", reason="signature") >= 1
    assert web.metric("ksync_webhooks_rejected_total", reason="stale") >= 1
    assert web.metric("ksync_webhooks_total", type="1", outcome="duplicate") >= 1


def test_an_older_notification_after_a_newer_one_leaves_the_newer_state(live):
    stack, web = live
    [order] = orders_in(stack, PAID_STATUSES - FULFILLED_STATUSES, 1)
    stack.tiktok.set_webhook_faults(reorder=2)
    stack.tiktok.set_status(order.id, "IN_TRANSIT")
    stack.tiktok.set_status(order.id, "DELIVERED")
    stack.tiktok.webhooks.flush_held()
    wait_until(lambda: f"Fulfilled Order|{order.id}" in klaviyo_events(stack), 20, "Fulfilled Order")
    stack.tiktok.wait_for_webhooks(20)
    time.sleep(1.5)
    from db.models import LedgerOrder

    with session_scope() as session:
        row = session.query(LedgerOrder).filter_by(order_id=order.id).one()
        assert row.status == "DELIVERED"
    assert stack.klaviyo.summary()["duplicates_dropped"]["total"] == 0


def signed_post(stack, web, body: dict) -> requests.Response:
    raw = json.dumps(body).encode()
    return requests.post(web.url + "/webhooks/tiktok", data=raw, timeout=10, headers={
        "Authorization": webhook_signature(stack.tiktok.app_key, stack.tiktok.app_secret, raw),
        "Content-Type": "application/json"})


def test_a_webhook_for_an_unknown_shop_is_acknowledged_and_counted(live):
    stack, web = live
    answer = signed_post(stack, web, {"type": 1, "tts_notification_id": "n-unknown-1", "shop_id": "999999",
                                      "timestamp": int(time.time()),
                                      "data": {"order_id": "1", "order_status": "IN_TRANSIT",
                                               "update_time": int(time.time())}})
    assert answer.status_code == 200
    assert web.metric("ksync_webhooks_total", type="1", outcome="unknown_shop") == 1


def test_deauthorization_stops_the_connection_until_it_is_authorized_again(live):
    stack, web = live
    stack.tiktok.deauthorize()
    stack.tiktok.wait_for_webhooks(20)

    def status():
        with session_scope() as session:
            return store.get(session, "default").status == "needs_reauth"

    wait_until(status, 10, "needs_reauth")
    skipped = wait_for_run(enqueue_sync(days_back=1))
    assert skipped.status == "skipped" and "needs_reauth" in skipped.error

    # The seller consents again; TikTok redirects them to our callback with a code.
    code = stack.tiktok.issue_auth_code()
    page = requests.get(web.url + "/oauth/tiktok/callback", params={"code": code, "state": "s1"}, timeout=30)
    assert page.status_code == 200, page.text
    assert "ksync can now sync: default." in page.text
    again = requests.get(web.url + "/oauth/tiktok/callback", params={"code": code, "state": "s1"}, timeout=30)
    assert again.status_code == 400 and "<p>TikTok refused the authorization code" in again.text, again.text
    with session_scope() as session:
        assert store.get(session, "default").status == "active"
    resumed = wait_for_run(enqueue_sync(days_back=1))
    assert resumed.status == "succeeded", resumed.error


def test_with_the_web_service_down_the_next_scheduled_sync_delivers_every_change(live):
    stack, web = live
    web.stop()
    moving = orders_in(stack, PAID_STATUSES - FULFILLED_STATUSES, 5)
    for order in moving:
        stack.tiktok.set_status(order.id, "IN_TRANSIT")
    stack.tiktok.wait_for_webhooks(20)  # TikTok gives up on them: nothing answers
    run = wait_for_run(enqueue_sync(days_back=1))
    assert run.status == "succeeded"
    assert all(f"Fulfilled Order|{o.id}" in klaviyo_events(stack) for o in moving)


def test_a_completed_refund_reaches_klaviyo_through_its_webhook(live):
    stack, web = live
    returned = {r["order_id"] for r in stack.tiktok.shop(0).returns()}
    [order] = [o for o in orders_in(stack, FULFILLED_STATUSES, 50) if o.id not in returned][:1]
    before = stack.tiktok.counters()["requests"].get("/order/202309/orders/search", {})
    shop = stack.tiktok.shop(0)
    ret = shop.create_return(order.id, "REFUND")
    shop.complete_refund(ret["return_id"])
    wait_until(lambda: f"Refunded Order|{order.id}" in klaviyo_events(stack), 20, "Refunded Order in Klaviyo")
    assert stack.tiktok.counters()["requests"].get("/order/202309/orders/search", {}) == before  # no poll did it
    assert web.metric("ksync_webhooks_total", type="12", outcome="queued") >= 1
