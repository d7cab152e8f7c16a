"""Search paging, order detail and lifecycle moves of the TikTok stand-in, over real HTTP."""

from __future__ import annotations

import time
from collections import Counter
from urllib.parse import quote

import pytest
import requests

from sandbox.tiktok import TikTokStandIn, sign_request
from sandbox.tiktok.probe import call, search_all

SEARCH, DETAIL = "/order/202309/orders/search", "/order/202309/orders"


@pytest.fixture(scope="module")
def big():
    with TikTokStandIn(orders=10_000, seed=7, rate_limit_qps=0) as t:   # paging speed must not hit 429
        yield t


@pytest.fixture
def shop():
    with TikTokStandIn(orders=400, seed=3, rate_limit_qps=0) as t:
        yield t


def page(t, body=None, **query):
    q = {"shop_cipher": t.shop_cipher, "page_size": 100, **query}
    answer = call(t, "POST", SEARCH, q, body or {}).json()
    assert answer["code"] == 0, answer
    return answer["data"]


def test_paging_10000_orders_returns_each_exactly_once_newest_first(big):
    orders = search_all(big)
    ids = [o["id"] for o in orders]
    assert len(ids) == 10_000 and set(ids) == {o["id"] for o in big.orders()}
    keys = [(o["create_time"], o["id"]) for o in orders]
    assert keys == sorted(keys, reverse=True)


def test_paging_by_update_time_with_filters_returns_exactly_the_matching_orders(big):
    truth = big.orders()
    lo = sorted(o["update_time"] for o in truth)[len(truth) // 4]
    hi = sorted(o["update_time"] for o in truth)[3 * len(truth) // 4]
    body = {"update_time_ge": lo, "update_time_lt": hi}
    got = search_all(big, body, sort_field="update_time", sort_order="ASC")
    expected = {o["id"] for o in truth if lo <= o["update_time"] < hi}
    assert [o["id"] for o in got] and len(got) == len(expected) and {o["id"] for o in got} == expected
    assert [o["update_time"] for o in got] == sorted(o["update_time"] for o in got)
    completed = search_all(big, {"order_status": "COMPLETED", "create_time_ge": lo}, page_size=37)
    assert {o["id"] for o in completed} == {o["id"] for o in truth
                                            if o["status"] == "COMPLETED" and o["create_time"] >= lo}


def test_buyer_filter_finds_all_orders_of_a_repeat_buyer(big):
    (user_id, count), = Counter(o["user_id"] for o in big.orders()).most_common(1)
    got = search_all(big, {"buyer_user_id": user_id})
    assert count > 1 and len(got) == count and all(o["user_id"] == user_id for o in got)


def test_page_tokens_are_standard_base64_with_plus_and_slash_and_survive_percent_encoding(big):
    data = page(big)
    token = data["next_page_token"]
    assert "+" in token and "/" in token and data["total_count"] == 10_000
    second = page(big, page_token=token)                     # requests percent-encodes + and /
    assert {o["id"] for o in second["orders"]}.isdisjoint(o["id"] for o in data["orders"])
    # A client that puts the token in the URL raw: the server reads "+" as a space.
    q = {"app_key": big.app_key, "timestamp": str(int(time.time())), "shop_cipher": big.shop_cipher,
         "page_size": "100", "page_token": token}
    q["sign"] = sign_request(big.app_secret, SEARCH, q, b"{}")
    raw_url = big.url + SEARCH + "?" + "&".join(f"{k}={v if k == 'page_token' else quote(v, safe='')}"
                                                 for k, v in q.items())
    r = requests.post(raw_url, data=b"{}", headers={"x-tts-access-token": big.access_token})
    assert (r.status_code, r.json()["code"]) == (401, 106001)


def test_last_page_has_an_empty_next_page_token(shop):
    data = page(shop, {"order_status": "CANCELLED"})
    assert data["next_page_token"] == "" and len(data["orders"]) == data["total_count"]
    empty = page(shop, {"create_time_ge": 2**31})
    assert empty == {"next_page_token": "", "total_count": 0, "orders": []}


def test_a_token_from_another_search_or_altered_is_invalid_param(shop):
    token = page(shop, {"order_status": "COMPLETED"}, page_size=5)["next_page_token"]
    for body, query in [({"order_status": "DELIVERED"}, {}), ({"order_status": "COMPLETED"}, {"sort_order": "ASC"}),
                        ({"order_status": "COMPLETED"}, {"sort_field": "update_time"})]:
        r = call(shop, "POST", SEARCH, {"shop_cipher": shop.shop_cipher, "page_size": 5, "page_token": token,
                                        **query}, body)
        assert (r.status_code, r.json()["code"], r.json()["message"]) == (400, 36009004, "invalid param error")
    altered = token[:10] + ("A" if token[10] != "A" else "B") + token[11:]
    r = call(shop, "POST", SEARCH, {"shop_cipher": shop.shop_cipher, "page_size": 5, "page_token": altered},
             {"order_status": "COMPLETED"})
    assert r.json()["code"] == 36009004


def test_orders_updated_during_paging_are_never_skipped(shop):
    # Given a search by update_time newest first, and orders moving while I page,
    # I expect every order that matched when paging began to be served once.
    before = {o["id"] for o in shop.orders()}
    seen, token, moved = [], "", []
    while True:
        data = page(shop, sort_field="update_time", page_size=50, **({"page_token": token} if token else {}))
        seen += [o["id"] for o in data["orders"]]
        token = data["next_page_token"]
        if not token:
            break
        if not moved:
            moved = shop.advance(2 * 86400)
            assert moved
    assert set(seen) == before and len(seen) == len(before)


def test_detail_returns_the_requested_orders_and_omits_unknown_ids(shop):
    truth = shop.orders()
    ids = [truth[0]["id"], "576000000000000001", truth[5]["id"]]
    r = call(shop, "GET", DETAIL, {"shop_cipher": shop.shop_cipher, "ids": ",".join(ids)})
    assert r.status_code == 200 and r.json()["code"] == 0
    assert [o["id"] for o in r.json()["data"]["orders"]] == [truth[0]["id"], truth[5]["id"]]
    assert r.json()["data"]["orders"][0] == truth[0]


def test_advance_moves_orders_and_an_update_time_search_finds_exactly_those(shop):
    before = {o["id"]: o for o in shop.orders()}
    since = int(time.time())
    moved = shop.advance(3 * 3600)
    after = {o["id"]: o for o in shop.orders()}
    changed = {i for i in after if after[i]["update_time"] != before[i]["update_time"]}
    assert moved and set(moved) == changed
    assert all(after[i]["status"] != before[i]["status"] and after[i]["update_time"] >= since for i in moved)
    found = search_all(shop, {"update_time_ge": since}, sort_field="update_time", sort_order="ASC")
    assert {o["id"] for o in found} == set(moved)
    assert shop.advance(0) == []


def test_advance_walks_a_fresh_order_through_its_whole_lifecycle(shop):
    order = next(o for o in shop.orders() if o["status"] == "UNPAID" and o.get("cancel_order_sla_time"))
    for _ in range(40):
        shop.advance(86400)
    now = next(o for o in shop.orders() if o["id"] == order["id"])
    assert now["status"] in ("COMPLETED", "CANCELLED")
    if now["status"] == "COMPLETED":
        assert now["paid_time"] <= now["rts_time"] <= now["collection_time"] <= now["delivery_time"]
        assert now["tracking_number"] and now["recipient_address"]["district_info"]


def test_set_status_cancelled_after_payment_keeps_paid_time(shop):
    order = next(o for o in shop.orders() if o["status"] == "IN_TRANSIT" or o["status"] == "AWAITING_SHIPMENT")
    now = int(time.time())
    cancelled = shop.set_status(order["id"], "CANCELLED", cancel_reason="Out of stock")
    assert cancelled["status"] == "CANCELLED" and cancelled["paid_time"] == order["paid_time"]
    assert cancelled["update_time"] >= now and cancelled["cancel_time"] == cancelled["update_time"]
    assert cancelled["cancel_reason"] == "Out of stock" and cancelled["cancellation_initiator"] == "SELLER"
    assert all(li["display_status"] == "CANCELLED" and li["cancel_user"] == "SELLER"
               for li in cancelled["line_items"])
    shop.advance(30 * 86400)
    assert next(o for o in shop.orders() if o["id"] == order["id"])["status"] == "CANCELLED"


def test_set_status_on_an_unpaid_order_then_advance_continues_the_lifecycle(shop):
    order = next(o for o in shop.orders() if o["status"] == "UNPAID")
    paid = shop.set_status(order["id"], "ON_HOLD")
    assert paid["paid_time"] == paid["update_time"] and "recipient_address" not in paid
    shop.advance(3600)
    now = next(o for o in shop.orders() if o["id"] == order["id"])
    assert now["status"] == "AWAITING_SHIPMENT" and now["recipient_address"]["district_info"]
    with pytest.raises(KeyError):
        shop.set_status("nope", "CANCELLED")
    with pytest.raises(ValueError):
        shop.set_status(order["id"], "SHIPPED")


def test_malformed_orders_are_served_by_search_and_detail_with_their_ids():
    with TikTokStandIn(orders=300, seed=9, malformed_ratio=0.05, rate_limit_qps=0) as t:
        bad = t.malformed_ids()
        assert len(bad) == 15
        served = search_all(t)
        assert len(served) == 300 and bad <= {o["id"] for o in served}
        r = call(t, "GET", DETAIL, {"shop_cipher": t.shop_cipher, "ids": ",".join(sorted(bad))})
        assert {o["id"] for o in r.json()["data"]["orders"]} == bad
