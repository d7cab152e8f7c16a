"""The TikTok stand-in's order generator: deterministic, realistic, exactly typed, optionally malformed."""

from __future__ import annotations

import re
import time
from collections import Counter, defaultdict
from decimal import Decimal

import phonenumbers
import pytest

from sandbox.tiktok import generate_orders
from sandbox.tiktok.lifecycle import STATUSES
from sandbox.tiktok.malformed import KINDS
from sandbox.tiktok.orders import generate

NOW = 1_790_000_000
MONEY = re.compile(r"^\d+\.\d{2}$")
PAYMENT_FIELDS = ("sub_total", "shipping_fee", "tax", "seller_discount", "platform_discount",
                  "original_total_product_price", "original_shipping_fee", "total_amount")


@pytest.fixture(scope="module")
def orders():
    return generate_orders(2000, days=30, seed=7, now=NOW)


def test_same_seed_and_now_give_identical_orders_and_other_seeds_differ(orders):
    assert generate_orders(2000, days=30, seed=7, now=NOW) == orders
    assert generate_orders(50, days=30, seed=8, now=NOW) != orders[:50]


def test_generating_10000_orders_takes_a_couple_of_seconds():
    started = time.perf_counter()
    assert len(generate_orders(10_000, days=30, seed=1)) == 10_000
    assert time.perf_counter() - started < 6       # ~1.5 s on a quiet machine; slack for busy CI


def test_every_status_appears_in_2000_orders(orders):
    counts = Counter(o["status"] for o in orders)
    assert set(counts) == set(STATUSES)
    old = [o for o in orders if o["create_time"] < NOW - 20 * 86400]
    assert sum(o["status"] in ("COMPLETED", "DELIVERED") for o in old) > 0.8 * len(old)
    recent = [o for o in orders if o["create_time"] > NOW - 3600]
    assert {o["status"] for o in recent} >= {"UNPAID", "ON_HOLD"}


def test_fields_have_tiktoks_exact_json_types(orders):
    for o in orders:
        assert isinstance(o["id"], str) and len(o["id"]) == 18 and o["id"].isdigit()
        assert isinstance(o["user_id"], str) and o["user_id"].isdigit()
        for key in ("create_time", "update_time", "paid_time", "rts_time", "collection_time", "delivery_time",
                    "cancel_time"):
            assert key not in o or type(o[key]) is int
        assert all(MONEY.match(o["payment"][k]) for k in PAYMENT_FIELDS)
        assert type(o["is_on_hold_order"]) is bool and type(o["is_cod"]) is bool
        for li in o["line_items"]:
            assert "quantity" not in li
            assert all(isinstance(li[k], str) for k in ("id", "product_id", "sku_id", "sale_price", "original_price"))
    assert len({o["id"] for o in orders}) == len(orders)
    assert len({li["id"] for o in orders for li in o["line_items"]}) == sum(len(o["line_items"]) for o in orders)


def test_money_is_consistent(orders):
    for o in orders:
        p = {k: Decimal(o["payment"][k]) for k in PAYMENT_FIELDS}
        lines = o["line_items"]
        assert p["sub_total"] == sum(Decimal(li["sale_price"]) for li in lines)
        assert p["total_amount"] == p["sub_total"] + p["shipping_fee"] + p["tax"]
        assert p["original_total_product_price"] == sum(Decimal(li["original_price"]) for li in lines)
        assert p["sub_total"] == p["original_total_product_price"] - p["seller_discount"] - p["platform_discount"]
        for li in lines:
            assert Decimal(li["sale_price"]) == (Decimal(li["original_price"]) - Decimal(li["seller_discount"])
                                                 - Decimal(li["platform_discount"])) > 0


@pytest.mark.parametrize("currency", ["JPY", "KRW", "IDR", "VND"])
def test_zero_decimal_currencies_have_no_decimals(currency):
    for o in generate_orders(150, days=30, seed=3, now=NOW, currency=currency):
        amounts = [o["payment"][k] for k in PAYMENT_FIELDS] + [li["sale_price"] for li in o["line_items"]]
        assert all(a.isdigit() for a in amounts), amounts
        assert o["payment"]["currency"] == currency and o["line_items"][0]["currency"] == currency
        p = o["payment"]
        assert int(p["total_amount"]) == int(p["sub_total"]) + int(p["shipping_fee"]) + int(p["tax"])


def test_repeat_buyers_keep_their_id_and_relay_email(orders):
    by_user = defaultdict(set)
    for o in orders:
        by_user[o["user_id"]].add(o.get("buyer_email"))
    assert sum(1 for u in Counter(o["user_id"] for o in orders).values() if u > 1) > 100
    assert all(len(emails) == 1 for emails in by_user.values())
    emails = [o["buyer_email"] for o in orders if "buyer_email" in o]
    assert all(e.endswith("@scs.tiktokw.us") for e in emails)
    assert 0 < len(orders) - len(emails) < 0.1 * len(orders)         # some buyers have no email at all


def test_units_are_separate_line_items_and_many_orders_mix_skus(orders):
    multi_unit = [o for o in orders if len({li["sku_id"] for li in o["line_items"]}) < len(o["line_items"])]
    multi_sku = [o for o in orders if len({li["sku_id"] for li in o["line_items"]}) > 1]
    assert len(multi_unit) > 100 and len(multi_sku) > 100
    assert {len(o["line_items"]) for o in orders} == {1, 2, 3, 4, 5, 6}
    assert len({li["sku_id"] for o in orders for li in o["line_items"]}) > 100


def test_recipient_address_is_hidden_exactly_while_unpaid_or_on_hold(orders):
    for o in orders:
        hidden = o["status"] in ("UNPAID", "ON_HOLD")
        assert ("recipient_address" not in o) == hidden
        if not hidden:
            levels = [d["address_level"] for d in o["recipient_address"]["district_info"]]
            assert levels == ["L0", "L1", "L2", "L3"]
        assert o["is_on_hold_order"] == hidden


def test_platform_shipped_orders_are_masked_and_some_seller_shipped_are_not(orders):
    addresses = [(o["shipping_type"], o["recipient_address"]) for o in orders if "recipient_address" in o]
    masked = [a for t, a in addresses if "***" in a["phone_number"]]
    plain = [a for t, a in addresses if "***" not in a["phone_number"]]
    assert all("***" in a["phone_number"] and "***" in a["name"] for t, a in addresses if t == "TIKTOK")
    assert re.match(r"^\(\+1\)\d{3}-\*\*\*-\d{4}$", masked[0]["phone_number"])
    assert re.match(r"^\w\*\*\* \w\*\*\*$", masked[0]["name"])
    assert plain and all(t == "SELLER" for t, a in addresses if "***" not in a["phone_number"])
    for a in plain:
        number = phonenumbers.parse(a["phone_number"])
        assert phonenumbers.is_valid_number(number)
        assert phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164) == a["phone_number"]
        assert "*" not in a["full_address"] and "*" not in a["name"]


def test_timelines_are_ordered_and_stamped_per_status(orders):
    for o in orders:
        stamps = [o.get(k) for k in ("create_time", "paid_time", "rts_time", "collection_time", "delivery_time")]
        present = [s for s in stamps if s is not None]
        assert present == sorted(present) and present[-1] <= o["update_time"] < NOW
        if o["status"] != "CANCELLED":
            assert ("paid_time" in o) == (o["status"] != "UNPAID")
        if o["status"] in ("IN_TRANSIT", "DELIVERED", "COMPLETED"):
            assert o["tracking_number"] and o["collection_time"]
        if o["status"] in ("DELIVERED", "COMPLETED"):
            assert o["delivery_time"]


def test_cancellations_happen_before_and_after_payment_with_reasons(orders):
    cancelled = [o for o in orders if o["status"] == "CANCELLED"]
    assert any("paid_time" in o for o in cancelled) and any("paid_time" not in o for o in cancelled)
    assert all(o["cancel_reason"] and o["cancel_time"] == o["update_time"] for o in cancelled)
    assert {o["cancellation_initiator"] for o in cancelled} == {"BUYER", "SELLER", "SYSTEM"}
    assert all("cancel_reason" not in o for o in orders if o["status"] != "CANCELLED")


def test_malformed_ratio_mixes_in_every_kind_of_broken_order_with_valid_ids():
    records = generate(400, days=30, seed=7, now=NOW, malformed_ratio=0.05)
    bad = [r for r in records if r.malformation]
    assert len(bad) == 20 and {r.malformation for r in bad} == set(KINDS)
    for r in bad:
        assert isinstance(r.data["id"], str) and len(r.data["id"]) == 18
    clean = generate_orders(400, days=30, seed=7, now=NOW)
    assert [r.data for r in records if not r.malformation] == [o for o, r in zip(clean, records) if not r.malformation]
    shapes = {r.malformation: r.data for r in bad}
    assert shapes["line_items_null"]["line_items"] is None
    assert shapes["create_time_text"]["create_time"] == "yesterday"
    assert shapes["unknown_status"]["status"] == "SHIPPED_MAYBE"
    assert "user_id" not in shapes["user_id_missing"]
    assert "sku_id" not in shapes["sku_id_missing"]["line_items"][0]
    assert shapes["total_amount_text"]["payment"]["total_amount"] == "abc"
    assert "," in shapes["total_amount_comma"]["payment"]["total_amount"]
