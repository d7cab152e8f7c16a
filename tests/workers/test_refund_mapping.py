"""The Refunded Order rules (workers/refund_mapping.py), one case each, on TikTok's own shapes."""

from __future__ import annotations

from decimal import Decimal

from tests.support import make_order_dict
from tiktok import parse_order
from tiktok.aftersales import parse_return
from workers.refund_mapping import refund_unique_id, refunded_amount, refunded_order_event

ORDER = parse_order(make_order_dict())


def a_return(status="RETURN_OR_REFUND_REQUEST_COMPLETE", kind="RETURN_AND_REFUND", partial=None, **overrides):
    raw = {"return_id": "r-1", "order_id": ORDER.id, "return_type": kind, "return_status": status, "role": "BUYER",
           "return_reason": "ecom_damaged", "return_reason_text": "Arrived damaged",
           "create_time": 1_790_000_100, "update_time": 1_790_000_900,
           "refund_amount": {"currency": "USD", "refund_total": "22.98", "refund_subtotal": "19.98",
                             "refund_shipping_fee": "3.00", "refund_tax": "0"},
           "return_line_items": [
               {"return_line_item_id": f"rl-{i}", "order_line_item_id": f"{ORDER.id}-{i}", "sku_id": "sku-mug",
                "seller_sku": "MUG-1", "product_name": "Mug", "sku_name": "Mug",
                "refund_amount": {"currency": "USD", "refund_total": "11.49", "refund_subtotal": "9.99"}}
               for i in (1, 2)]}
    if partial:
        raw["partial_refund"] = {"amount": partial, "currency": "USD"}
    raw.update(overrides)
    return parse_return(raw)


def test_only_a_completed_refund_or_a_replacement_settled_by_refund_is_money_back():
    assert a_return().is_refunded
    assert a_return("REPLACEMENT_REQUEST_REFUND_SUCCESS", "REPLACEMENT").is_refunded
    for status in ("RETURN_OR_REFUND_REQUEST_SUCCESS", "RETURN_OR_REFUND_REQUEST_PENDING",
                   "REFUND_OR_RETURN_REQUEST_REJECT", "RETURN_OR_REFUND_REQUEST_CANCEL"):
        assert not a_return(status).is_refunded, status
    assert not a_return("REPLACEMENT_REQUEST_COMPLETE", "REPLACEMENT").is_refunded


def test_the_value_is_what_went_back_a_sellers_partial_refund_first():
    assert refunded_amount(a_return()) == (Decimal("22.98"), "USD")
    assert refunded_amount(a_return(partial="5.00")) == (Decimal("5.00"), "USD")


def test_the_first_refund_of_an_order_shares_its_id_and_later_ones_name_their_return():
    assert refund_unique_id(ORDER.id, "r-1", order_has_one=False) == ORDER.id
    assert refund_unique_id(ORDER.id, "r-2", order_has_one=True) == f"{ORDER.id}:r-2"


def test_a_refunded_order_carries_the_refunded_skus_reason_and_type_at_completion_time():
    event = refunded_order_event(a_return(), ORDER, ORDER.id)
    assert (event.metric_name, event.value, event.value_currency, event.unique_id) == \
        ("Refunded Order", Decimal("22.98"), "USD", ORDER.id)
    assert event.time == a_return().update_time
    assert event.properties["RefundType"] == "return and refund" and event.properties["Reason"] == "Arrived damaged"
    assert event.properties["Items"] == [{"ProductID": "p-mug", "VariantID": "sku-mug", "SKU": "MUG-1",
                                          "ProductName": "Mug", "Quantity": 2,
                                          "RowTotal": 22.98}]
    assert event.profile.external_id == f"tiktok:{ORDER.user_id}"


def test_a_refunded_order_honours_relay_email_like_the_orders_own_events():
    assert refunded_order_event(a_return(), ORDER, ORDER.id).profile.email == ORDER.buyer_email
    for mode in ("property", "skip"):
        event = refunded_order_event(a_return(), ORDER, ORDER.id, relay_email=mode)
        assert event.profile.email is None and event.profile.external_id == f"tiktok:{ORDER.user_id}"
