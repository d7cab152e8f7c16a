"""Returns and cancellations with the client against the stand-in, over real HTTP."""

from __future__ import annotations

import time
from collections import Counter
from decimal import Decimal

import pytest
from flask import Flask

from sandbox.server import LoopbackServer
from sandbox.tiktok import TikTokStandIn
from tiktok import (
    Cancellation,
    CancelStatus,
    InvalidRecord,
    Return,
    ReturnStatus,
    ReturnType,
    TikTokRetryPolicy,
    TikTokShopClient,
    parse_return,
)

FAR_FUTURE = int(time.time()) + 86400


def client_for(t: TikTokStandIn) -> TikTokShopClient:
    return TikTokShopClient(t.app_key, t.app_secret, t.access_token, t.shop_cipher, base_url=t.url,
                            auth_base_url=t.auth_url, refresh_token=t.refresh_token,
                            retry=TikTokRetryPolicy(backoff_base=0.05, jitter=0.05))


@pytest.fixture(scope="module")
def shop():
    with TikTokStandIn(orders=1500, seed=3, rate_limit_qps=0) as t:
        yield t


@pytest.fixture
def fresh():
    with TikTokStandIn(orders=300, seed=8, rate_limit_qps=0) as t:
        yield t


def test_returns_page_in_tens_and_each_comes_back_exactly_once(shop):
    before = sum(shop.counters()["requests"].get("/return_refund/202309/returns/search", {}).values())
    got = list(client_for(shop).search_returns(0, FAR_FUTURE, page_size=10))
    calls = sum(shop.counters()["requests"]["/return_refund/202309/returns/search"].values()) - before
    truth = {r["return_id"] for r in shop.first.returns()}
    assert all(isinstance(r, Return) for r in got) and len(truth) > 30
    assert Counter(r.id for r in got) == Counter(truth)
    assert calls == -(-len(truth) // 10)
    stamps = [r.update_time for r in got]
    assert stamps == sorted(stamps)


def test_return_page_sizes_outside_ten_to_fifty_are_refused_before_asking(shop):
    client = client_for(shop)
    for size in (9, 51):
        with pytest.raises(ValueError):
            next(client.search_returns(0, FAR_FUTURE, page_size=size))
    with pytest.raises(ValueError):
        next(client.search_cancellations(0, FAR_FUTURE, page_size=0))


def test_the_generated_returns_show_each_kind_and_belong_to_paid_orders(shop):
    returns = [r for r in client_for(shop).search_returns(0, FAR_FUTURE)]
    orders = {o["id"]: o for o in shop.orders()}
    assert all("paid_time" in orders[r.order_id] and orders[r.order_id]["status"] != "CANCELLED" for r in returns)
    kinds = {(r.type, r.status) for r in returns}
    assert (ReturnType.RETURN_AND_REFUND, ReturnStatus.RETURN_OR_REFUND_REQUEST_COMPLETE) in kinds
    assert (ReturnType.REFUND, ReturnStatus.RETURN_OR_REFUND_REQUEST_COMPLETE) in kinds
    assert (ReturnType.RETURN_AND_REFUND, ReturnStatus.REFUND_OR_RETURN_REQUEST_REJECT) in kinds
    assert (ReturnType.REPLACEMENT, ReturnStatus.REPLACEMENT_REQUEST_COMPLETE) in kinds
    partial = [r for r in returns if r.partial_refund is not None]
    assert partial and partial[0].seller_proposed_return_type == "PARTIAL_REFUND"
    assert partial[0].refund_amount.refund_total == partial[0].partial_refund.amount
    assert any(n > 1 for n in Counter(r.order_id for r in returns).values())      # two returns, one order
    walk = next(r for r in returns if r.type == ReturnType.RETURN_AND_REFUND and r.is_refunded)
    record = shop.first.aftersales.returns[walk.id]
    assert [s for s, _ in record.history][-3:] == ["BUYER_SHIPPED_ITEM", "RETURN_OR_REFUND_REQUEST_SUCCESS",
                                                    "RETURN_OR_REFUND_REQUEST_COMPLETE"]


def test_refund_amounts_add_up_from_the_returned_units_at_their_sale_prices(shop):
    orders = {o["id"]: o for o in shop.orders()}
    for r in client_for(shop).search_returns(0, FAR_FUTURE):
        lines = {li["id"]: li for li in orders[r.order_id]["line_items"]}
        assert r.line_items and all(li.order_line_item_id in lines for li in r.line_items)
        if r.type == ReturnType.REPLACEMENT or r.partial_refund is not None:
            continue
        assert r.refund_amount.refund_subtotal == sum(Decimal(lines[li.order_line_item_id]["sale_price"])
                                                      for li in r.line_items)
        assert r.refund_amount.refund_total == (r.refund_amount.refund_subtotal + r.refund_amount.refund_tax
                                                + r.refund_amount.refund_shipping_fee)
        assert sum(g.quantity for g in r.sku_groups()) == len(r.line_items)


def test_a_return_moved_through_its_statuses_is_found_by_update_time_and_read_as_refunded_only_when_complete(fresh):
    client = client_for(fresh)
    order = next(o for o in fresh.orders() if o["status"] == "DELIVERED")
    started = int(time.time())
    created = fresh.first.create_return(order["id"], "REFUND")
    (pending,) = client.search_returns(started, FAR_FUTURE, return_ids=[created["return_id"]])
    assert pending.status == ReturnStatus.RETURN_OR_REFUND_REQUEST_PENDING and not pending.is_refunded
    fresh.first.set_return_status(created["return_id"], "RETURN_OR_REFUND_REQUEST_SUCCESS")
    (approved,) = client.search_returns(started, FAR_FUTURE, return_ids=[created["return_id"]])
    assert approved.status == ReturnStatus.RETURN_OR_REFUND_REQUEST_SUCCESS and not approved.is_refunded
    fresh.first.complete_refund(created["return_id"])
    (done,) = client.search_returns(started, FAR_FUTURE, order_ids=[order["id"]])
    assert done.is_refunded and done.refund_amount.refund_total > 0
    assert list(client.search_returns(0, started, return_ids=[created["return_id"]])) == []     # [ge, lt)


def test_unpaid_orders_take_no_return(fresh):
    unpaid = next(o for o in fresh.orders() if o["status"] == "UNPAID")
    with pytest.raises(ValueError):
        fresh.first.create_return(unpaid["id"])


def test_cancelling_a_paid_order_settles_a_cancellation_the_search_finds(fresh):
    client = client_for(fresh)
    existing = list(client.search_cancellations(0, FAR_FUTURE))
    orders = {o["id"]: o for o in fresh.orders()}
    assert existing and all(isinstance(c, Cancellation) and "paid_time" in orders[c.order_id] for c in existing)
    assert all(c.status == CancelStatus.CANCELLATION_REQUEST_COMPLETE and c.is_refunded for c in existing)
    order = next(o for o in fresh.orders() if o["status"] == "AWAITING_SHIPMENT")
    started = int(time.time())
    fresh.set_status(order["id"], "CANCELLED", cancel_reason="Out of stock")
    (new,) = client.search_cancellations(started, FAR_FUTURE)
    assert (new.order_id, new.role, new.reason_text) == (order["id"], "SELLER", "Out of stock")
    assert new.refund_amount.refund_total == Decimal(order["payment"]["total_amount"])
    assert len(new.line_items) == len(order["line_items"])


def test_a_buyers_cancellation_request_runs_pending_to_complete_and_cancels_the_order(fresh):
    client = client_for(fresh)
    order = next(o for o in fresh.orders() if o["status"] == "AWAITING_SHIPMENT")
    request = fresh.first.request_cancellation(order["id"])
    (pending,) = client.search_cancellations(0, FAR_FUTURE, cancel_ids=[request["cancel_id"]])
    assert (pending.type, pending.status) == ("BUYER_CANCEL", CancelStatus.CANCELLATION_REQUEST_PENDING)
    fresh.first.set_cancellation_status(request["cancel_id"], "CANCELLATION_REQUEST_COMPLETE")
    assert {o["id"]: o for o in fresh.orders()}[order["id"]]["status"] == "CANCELLED"


def test_an_invalid_return_is_named_and_the_rest_of_its_page_still_loads():
    app = Flask("bad_returns")
    good = {"return_id": "1", "order_id": "2", "return_type": "REFUND", "return_status": "SOME_NEW_STATUS",
            "create_time": 1_700_000_000, "update_time": 1_700_000_100,
            "refund_amount": {"currency": "USD", "refund_total": "1.23"}}
    bad = good | {"return_id": "3", "refund_amount": {"currency": "USD", "refund_total": 1.23}}

    @app.post("/return_refund/202309/returns/search")
    def search():
        return {"code": 0, "message": "Success", "request_id": "1",
                "data": {"return_orders": [bad, good], "total_count": 2, "next_page_token": ""}}

    with LoopbackServer(app) as server:
        client = TikTokShopClient("k", "s", "t", "c", base_url=server.root_url, auth_base_url=server.root_url)
        first, second = client.search_returns(0, FAR_FUTURE)
    assert isinstance(first, InvalidRecord) and (first.kind, first.record_id) == ("return", "3")
    assert first.field == "refund_amount.refund_total" and "return 3" in first.error
    assert isinstance(second, Return) and second.status == "SOME_NEW_STATUS"       # unknown status: kept
    assert parse_return({"return_id": "x"}).field in ("order_id", "return_type", "return_status", "create_time",
                                                      "update_time")
