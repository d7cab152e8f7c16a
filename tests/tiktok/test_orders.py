"""Order values: types, SKU grouping, relay and masked buyer data, precise validation errors."""

from datetime import datetime, timezone
from decimal import Decimal

import pytest

from tests.support import make_order_dict
from tiktok import InvalidOrder, OrderStatus, OrderValidationError, is_masked, is_relay_email, load_order, parse_order


def test_ids_stay_strings_money_is_decimal_and_times_are_aware_utc():
    order = load_order(make_order_dict())
    assert order.id == "576461413038785752" and isinstance(order.id, str)
    assert order.payment.total_amount == Decimal("36.97")
    assert order.create_time == datetime.fromtimestamp(1_790_000_000, tz=timezone.utc)
    assert order.create_time.tzinfo is timezone.utc
    assert order.status is OrderStatus.COMPLETED


def test_one_line_item_per_unit_is_grouped_by_sku_with_quantities():
    groups = load_order(make_order_dict()).sku_groups()
    assert [(g.sku_id, g.quantity, g.row_total) for g in groups] == [("sku-mug", 2, Decimal("19.98")),
                                                                      ("sku-tee", 1, Decimal("12.99"))]


@pytest.mark.parametrize("email, relay", [
    ("v2b2V5@scs.tiktokw.us", True), ("abc@scs3.tiktok.com", True), ("x@chat.seller.tiktok.com", True),
    ("jane@example.com", False), ("", False), (None, False),
])
def test_relay_buyer_emails_are_recognised(email, relay):
    assert is_relay_email(email) is relay


def test_masked_values_are_recognised():
    assert is_masked("J*** D***") and is_masked("(+1)213-***-1234")
    assert not is_masked("Jane Doe") and not is_masked(None)


def test_webhook_spelling_cancel_is_read_as_cancelled():
    assert load_order(make_order_dict(status="CANCEL")).status is OrderStatus.CANCELLED


@pytest.mark.parametrize("mutate, field", [
    (lambda o: o["payment"].update(total_amount="12,99"), "payment.total_amount"),
    (lambda o: o["payment"].update(total_amount=12.99), "payment.total_amount"),
    (lambda o: o["payment"].update(total_amount="-1"), "payment.total_amount"),
    (lambda o: o["payment"].update(total_amount="NaN"), "payment.total_amount"),
    (lambda o: o.update(create_time="yesterday"), "create_time"),
    (lambda o: o.update(create_time=0), "create_time"),
    (lambda o: o.update(update_time=4_102_444_800 + 86400 * 400), "update_time"),
    (lambda o: o.update(status="SHIPPED_MAYBE"), "status"),
    (lambda o: o.update(line_items=[]), "line_items"),
    (lambda o: o.pop("line_items"), "line_items"),
    (lambda o: o.pop("user_id"), "user_id"),
    (lambda o: o["line_items"][1].pop("sku_id"), "line_items[1].sku_id"),
    (lambda o: o["payment"].update(currency="dollars"), "payment.currency"),
])
def test_a_malformed_order_names_its_id_and_the_field(mutate, field):
    raw = make_order_dict()
    mutate(raw)
    with pytest.raises(OrderValidationError) as caught:
        load_order(raw)
    assert caught.value.order_id == "576461413038785752"
    assert caught.value.field == field
    assert "576461413038785752" in str(caught.value) and field in str(caught.value)


def test_parse_order_returns_an_invalid_order_instead_of_raising():
    raw = make_order_dict()
    raw["id"] = 123
    result = parse_order(raw)
    assert isinstance(result, InvalidOrder)
    assert result.order_id is None and result.field == "id"
    assert isinstance(parse_order("not an order"), InvalidOrder)


def test_order_repr_masks_the_buyer_email():
    assert "v2b2V5" not in repr(load_order(make_order_dict()))


def test_window_bounds_become_whole_seconds_with_the_exclusive_end_rounded_up():
    from tiktok import unix_seconds

    end = datetime.fromtimestamp(1_790_000_000.7, tz=timezone.utc)
    assert unix_seconds(end) == 1_790_000_000
    assert unix_seconds(end, round_up=True) == 1_790_000_001
    assert unix_seconds(1_790_000_000, round_up=True) == 1_790_000_000
    with pytest.raises(ValueError):
        unix_seconds(datetime(2026, 1, 1))
