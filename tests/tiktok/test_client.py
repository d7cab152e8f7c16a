"""TikTokShopClient against the TikTok Shop stand-in, over real HTTP."""

from __future__ import annotations

import time
from collections import Counter

import pytest
from flask import Flask, request

from sandbox.server import LoopbackServer
from sandbox.tiktok import TikTokStandIn
from tiktok import (
    InvalidOrder,
    MemoryTokenStore,
    Order,
    RedisTokenStore,
    TikTokAuthError,
    TikTokPagingError,
    TikTokRateLimitError,
    TikTokRetryPolicy,
    TikTokShopClient,
    TikTokSignatureError,
)
from tiktok.webhooks import parse_order_status_notification

FAR_FUTURE = int(time.time()) + 86400


def client_for(t: TikTokStandIn, **kwargs) -> TikTokShopClient:
    kwargs.setdefault("retry", TikTokRetryPolicy(backoff_base=0.05, jitter=0.05))
    return TikTokShopClient(t.app_key, kwargs.pop("app_secret", t.app_secret), t.access_token, t.shop_cipher,
                            base_url=t.url, auth_base_url=t.auth_url, refresh_token=t.refresh_token, **kwargs)


@pytest.fixture(scope="module")
def big_shop():
    with TikTokStandIn(orders=10_000, days=30, seed=7, rate_limit_qps=0) as t:
        yield t


def test_paging_ten_thousand_orders_returns_each_exactly_once(big_shop):
    orders = list(client_for(big_shop).search_orders(0, FAR_FUTURE))
    ids = Counter(o.id for o in orders)
    assert len(ids) == 10_000 and set(ids.values()) == {1}
    assert ids.keys() == {o["id"] for o in big_shop.orders()}
    assert all(isinstance(o, Order) for o in orders)


def test_search_is_bounded_by_update_time_and_sorted_oldest_first(big_shop):
    truth = sorted(o["update_time"] for o in big_shop.orders())
    lo, hi = truth[2000], truth[4000]
    got = list(client_for(big_shop).search_orders(lo, hi, page_size=50))
    assert len(got) == sum(1 for u in truth if lo <= u < hi)
    stamps = [int(o.update_time.timestamp()) for o in got]
    assert stamps == sorted(stamps) and all(lo <= s < hi for s in stamps)


def test_get_orders_asks_in_batches_of_at_most_fifty(big_shop):
    ids = [o["id"] for o in big_shop.orders()[:120]]
    before = big_shop.counters()["requests"].get("/order/202309/orders", {})
    got = client_for(big_shop).get_orders(ids + ["999999999999999999"])
    after = big_shop.counters()["requests"]["/order/202309/orders"]
    assert [o.id for o in got] == ids
    assert sum(after.values()) - sum(before.values()) == 3


def test_a_token_expiring_mid_paging_is_refreshed_and_paging_completes():
    with TikTokStandIn(orders=1500, rate_limit_qps=0) as t:
        store = MemoryTokenStore()
        client = client_for(t, token_store=store)
        seen = []
        for i, order in enumerate(client.search_orders(0, FAR_FUTURE, page_size=100)):
            seen.append(order.id)
            if i == 450:
                t.expire_access_token()
        assert len(set(seen)) == 1500
        assert t.counters()["token_refreshes"] == 1
        assert store.load().access_token == t.access_token


def test_workers_share_a_refresh_through_the_redis_token_store(redis_client):
    with TikTokStandIn(orders=50, rate_limit_qps=0) as t:
        first = client_for(t, token_store=RedisTokenStore(redis_client, t.app_key, namespace="test:tok"))
        second = client_for(t, token_store=RedisTokenStore(redis_client, t.app_key, namespace="test:tok"))
        stale = t.access_token
        t.expire_access_token()
        assert len(list(first.search_orders(0, FAR_FUTURE))) == 50
        assert len(list(second.search_orders(0, FAR_FUTURE))) == 50
        assert t.counters()["token_refreshes"] == 1
        assert second._tokens.access_token != stale
        assert stale not in str(redis_client.keys("test:tok*"))


def test_a_wrong_app_secret_gets_106001_and_a_signature_error_without_the_secret():
    with TikTokStandIn(orders=5) as t:
        client = client_for(t, app_secret="not-the-secret-xyz")
        with pytest.raises(TikTokSignatureError) as caught:
            list(client.search_orders(0, FAR_FUTURE))
        assert caught.value.code == 106001
        assert "not-the-secret-xyz" not in str(caught.value) and "not-the-secret" not in repr(client)
        assert t.counters()["signature_failures"] >= 1


def test_429s_are_waited_out_and_each_retry_is_signed_afresh():
    with TikTokStandIn(orders=300, rate_limit_qps=0) as t:
        t.set_faults(force_429=3)
        got = list(client_for(t).search_orders(0, FAR_FUTURE))
        assert len(got) == 300
        assert t.counters()["http_429"] == 3


def test_a_long_retry_after_is_raised_to_the_caller_instead_of_slept_through_when_waits_are_capped():
    # Defect: a task's client slept through `Retry-After: 120` three times (360 s in one call).
    slept = []
    with TikTokStandIn(orders=5, rate_limit_qps=0) as t:
        t.set_faults(force_429=5, retry_after=120)
        client = client_for(t, retry=TikTokRetryPolicy(backoff_base=0.05, jitter=0.05, max_wait=7), sleep=slept.append)
        with pytest.raises(TikTokRateLimitError) as caught:
            list(client.search_orders(0, FAR_FUTURE))
    assert caught.value.retry_after == 120
    assert slept == []


def test_short_waits_under_the_cap_are_still_slept_through():
    slept = []
    with TikTokStandIn(orders=5, rate_limit_qps=0) as t:
        t.set_faults(force_429=2, retry_after=2)
        client = client_for(t, retry=TikTokRetryPolicy(backoff_base=0.05, jitter=0.05, max_wait=7), sleep=slept.append)
        assert len(list(client.search_orders(0, FAR_FUTURE))) == 5
    assert len(slept) == 2 and all(2 <= s <= 7 for s in slept)


def test_retry_after_given_as_an_http_date_is_honoured():
    from email.utils import format_datetime
    from datetime import datetime, timedelta, timezone

    slept = []
    with TikTokStandIn(orders=5, rate_limit_qps=0) as t:
        t.set_faults(force_429=1, retry_after=format_datetime(datetime.now(timezone.utc) + timedelta(seconds=30),
                                                              usegmt=True))
        client = client_for(t, retry=TikTokRetryPolicy(backoff_base=0.05, jitter=0.05, max_wait=7), sleep=slept.append)
        with pytest.raises(TikTokRateLimitError) as caught:
            list(client.search_orders(0, FAR_FUTURE))
    assert 25 <= caught.value.retry_after <= 31 and slept == []


def test_malformed_orders_come_back_as_validation_errors_while_the_others_load():
    with TikTokStandIn(orders=400, malformed_ratio=0.05, rate_limit_qps=0) as t:
        results = list(client_for(t).search_orders(0, FAR_FUTURE))
        invalid = [r for r in results if isinstance(r, InvalidOrder)]
        assert {r.order_id for r in invalid} == t.malformed_ids()
        assert len(results) - len(invalid) == 400 - len(invalid)
        for bad in invalid:
            assert bad.field and bad.order_id in bad.error


def test_authorized_shops_list_the_cipher():
    with TikTokStandIn(orders=1) as t:
        shops = client_for(t).get_authorized_shops()
        assert [s.cipher for s in shops] == [t.shop_cipher]


def test_an_unknown_access_token_is_an_auth_error_not_a_refresh_loop():
    with TikTokStandIn(orders=1) as t:
        client = TikTokShopClient(t.app_key, t.app_secret, "made-up-token", t.shop_cipher, base_url=t.url,
                                  auth_base_url=t.url)
        with pytest.raises(TikTokAuthError):
            list(client.search_orders(0, FAR_FUTURE))
        assert t.counters()["token_refreshes"] == 0


def test_a_repeated_page_token_raises_instead_of_looping():
    app = Flask("looping")

    @app.post("/order/202309/orders/search")
    def search():
        return {"code": 0, "message": "Success", "request_id": "1",
                "data": {"next_page_token": "same+token/==", "total_count": 3, "orders": [{"id": "x"}]}}

    with LoopbackServer(app) as server:
        client = TikTokShopClient("k", "s", "t", "c", base_url=server.root_url, auth_base_url=server.root_url)
        with pytest.raises(TikTokPagingError):
            list(client.search_orders(0, FAR_FUTURE))


def test_stand_in_webhooks_verify_with_our_client_and_a_tampered_body_does_not():
    received = []
    app = Flask("hooks")

    @app.post("/hook")
    def hook():
        received.append((request.headers.get("Authorization"), request.get_data()))
        return "", 200

    with LoopbackServer(app) as server:
        with TikTokStandIn(orders=30, webhook_url=f"{server.root_url}/hook", rate_limit_qps=0) as t:
            order = next(o for o in t.orders() if o["status"] in ("AWAITING_SHIPMENT", "IN_TRANSIT", "UNPAID"))
            t.set_status(order["id"], "CANCELLED", cancel_reason="test")
            assert t.wait_for_webhooks(10)
            client = client_for(t)
            header, body = received[-1]
            client.verify_webhook(header, body)
            note = parse_order_status_notification(body)
            assert (note.order_id, note.order_status) == (order["id"], "CANCELLED")
            with pytest.raises(ValueError):
                client.verify_webhook(header, body.replace(b"CANCELLED", b"DELIVERED"))
