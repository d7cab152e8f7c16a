"""The mapping contract: which TikTok orders become which Klaviyo events and profiles."""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal

import pytest

from tiktok.models import OrderStatus
from tiktok.schemas import load_order
from workers.mapping import (
    CANCELLED_ORDER,
    FULFILLED_ORDER,
    ORDERED_PRODUCT,
    PLACED_ORDER,
    BuyerStats,
    LedgerEntry,
    buyer_profile,
    buyer_stats,
    event_key,
    is_placed,
    order_events,
    valid_e164,
)

T0 = 1_790_000_000


def make_order(status="COMPLETED", paid=True, **overrides) -> dict:
    order = {
        "id": "576461413038785752",
        "status": status,
        "create_time": T0,
        "update_time": T0 + 900,
        "user_id": "7021436810468230477",
        "buyer_email": "v2b2V5@scs.tiktokw.us",
        "payment": {"currency": "USD", "total_amount": "36.97", "sub_total": "32.97", "shipping_fee": "3.00",
                    "tax": "2.00", "seller_discount": "1.00", "platform_discount": "0.50"},
        "recipient_address": {"name": "J*** D***", "first_name": "J***", "last_name": "D***",
                              "phone_number": "(+1)213-***-1234", "full_address": "1199 C***** Ave",
                              "postal_code": "95110", "region_code": "US",
                              "district_info": [{"address_level": "L0", "address_name": "United States"},
                                                {"address_level": "L1", "address_name": "California"},
                                                {"address_level": "L3", "address_name": "San Jose"}]},
        "line_items": [
            {"id": "1", "sku_id": "sku-mug", "product_id": "p-mug", "product_name": "Mug", "sale_price": "9.99",
             "seller_sku": "MUG-RED"},
            {"id": "2", "sku_id": "sku-mug", "product_id": "p-mug", "product_name": "Mug", "sale_price": "9.99",
             "seller_sku": "MUG-RED"},
            {"id": "3", "sku_id": "sku-tee", "product_id": "p-tee", "product_name": "T-shirt", "sale_price": "12.99"},
        ],
    }
    if paid:
        order["paid_time"] = T0 + 60
    for key, value in overrides.items():
        order[key] = value
    return order


def metrics(order_dict) -> list[str]:
    return [e.metric_name for e in order_events(load_order(order_dict))]


@pytest.mark.parametrize("status, paid, expected", [
    ("UNPAID", False, []),
    ("ON_HOLD", True, []),
    ("AWAITING_SHIPMENT", True, [PLACED_ORDER, ORDERED_PRODUCT, ORDERED_PRODUCT]),
    ("PARTIALLY_SHIPPING", True, [PLACED_ORDER, ORDERED_PRODUCT, ORDERED_PRODUCT]),
    ("AWAITING_COLLECTION", True, [PLACED_ORDER, ORDERED_PRODUCT, ORDERED_PRODUCT]),
    ("IN_TRANSIT", True, [PLACED_ORDER, ORDERED_PRODUCT, ORDERED_PRODUCT, FULFILLED_ORDER]),
    ("DELIVERED", True, [PLACED_ORDER, ORDERED_PRODUCT, ORDERED_PRODUCT, FULFILLED_ORDER]),
    ("COMPLETED", True, [PLACED_ORDER, ORDERED_PRODUCT, ORDERED_PRODUCT, FULFILLED_ORDER]),
    ("CANCELLED", True, [PLACED_ORDER, ORDERED_PRODUCT, ORDERED_PRODUCT, CANCELLED_ORDER]),
    ("CANCELLED", False, []),
])
def test_each_status_yields_exactly_its_events(status, paid, expected):
    assert metrics(make_order(status, paid)) == expected


def test_unpaid_and_on_hold_orders_are_not_placed_but_a_paid_cancellation_is():
    assert not is_placed(load_order(make_order("UNPAID", paid=False)))
    assert not is_placed(load_order(make_order("ON_HOLD")))
    assert is_placed(load_order(make_order("CANCELLED", paid=True)))
    assert not is_placed(load_order(make_order("CANCELLED", paid=False)))


def test_placed_order_carries_order_id_total_currency_and_paid_time():
    placed = order_events(load_order(make_order("AWAITING_SHIPMENT")))[0]
    assert placed.metric_name == PLACED_ORDER
    assert placed.unique_id == "576461413038785752"
    assert placed.value == Decimal("36.97")
    assert placed.value_currency == "USD"
    assert placed.time == datetime.fromtimestamp(T0 + 60, tz=timezone.utc)
    props = placed.properties
    assert props["OrderId"] == "576461413038785752"
    assert props["ItemNames"] == ["Mug", "T-shirt"]
    assert props["DiscountValue"] == 1.5 and props["ShippingFee"] == 3.0 and props["Tax"] == 2.0
    assert props["Source"] == "TikTok Shop"
    assert props["Items"] == [
        {"ProductID": "p-mug", "VariantID": "sku-mug", "SKU": "MUG-RED", "ProductName": "Mug", "Quantity": 2,
         "ItemPrice": 9.99, "RowTotal": 19.98},
        {"ProductID": "p-tee", "VariantID": "sku-tee", "SKU": "sku-tee", "ProductName": "T-shirt", "Quantity": 1,
         "ItemPrice": 12.99, "RowTotal": 12.99},
    ]


def test_ordered_product_is_one_event_per_distinct_sku_with_quantity_and_row_total():
    products = [e for e in order_events(load_order(make_order("COMPLETED"))) if e.metric_name == ORDERED_PRODUCT]
    assert [(e.unique_id, e.properties["Quantity"], e.value) for e in products] == [
        ("576461413038785752:sku-mug", 2, Decimal("19.98")),
        ("576461413038785752:sku-tee", 1, Decimal("12.99")),
    ]


def test_cancelled_paid_order_yields_one_cancelled_order_event_with_reason_and_the_order_id():
    order = make_order("CANCELLED", cancel_reason="Buyer changed mind", cancel_time=T0 + 3600)
    cancelled = [e for e in order_events(load_order(order)) if e.metric_name == CANCELLED_ORDER]
    assert len(cancelled) == 1
    assert cancelled[0].unique_id == order["id"]
    assert cancelled[0].properties["Reason"] == "Buyer changed mind"
    assert cancelled[0].time == datetime.fromtimestamp(T0 + 3600, tz=timezone.utc)


def test_fulfilled_order_reuses_the_order_id_and_uses_collection_time():
    order = make_order("IN_TRANSIT", collection_time=T0 + 7200, tracking_number="TT123")
    fulfilled = [e for e in order_events(load_order(order)) if e.metric_name == FULFILLED_ORDER][0]
    assert fulfilled.unique_id == order["id"]
    assert fulfilled.time == datetime.fromtimestamp(T0 + 7200, tz=timezone.utc)
    assert fulfilled.properties["TrackingNumber"] == "TT123"


def test_event_keys_are_stable_across_calls_so_resends_are_recognised():
    first = [event_key(e) for e in order_events(load_order(make_order("COMPLETED")))]
    second = [event_key(e) for e in order_events(load_order(make_order("COMPLETED")))]
    assert first == second
    assert len(set(first)) == len(first)


def test_events_identify_the_buyer_by_relay_email_and_tiktok_external_id_only():
    for event in order_events(load_order(make_order("COMPLETED"))):
        assert event.profile.email == "v2b2V5@scs.tiktokw.us"
        assert event.profile.external_id == "tiktok:7021436810468230477"
        assert event.profile.phone_number is None and event.profile.first_name is None


def test_buyer_without_email_is_identified_by_external_id_alone():
    order = make_order("COMPLETED")
    del order["buyer_email"]
    events = order_events(load_order(order))
    assert all(e.profile.email is None and e.profile.external_id.startswith("tiktok:") for e in events)
    profile = buyer_profile(load_order(order), BuyerStats(1, Decimal("36.97"), "USD"))
    assert profile.email is None and profile.external_id == "tiktok:7021436810468230477"


def test_masked_names_and_phones_are_left_out_of_the_profile():
    profile = buyer_profile(load_order(make_order("COMPLETED")), BuyerStats(3, Decimal("99.50"), "USD"))
    assert profile.first_name is None and profile.last_name is None and profile.phone_number is None
    assert profile.location.address1 is None
    assert (profile.location.city, profile.location.region, profile.location.zip) == ("San Jose", "California", "95110")


def test_unmasked_buyer_gets_names_phone_and_address():
    address = {"name": "Jane Doe", "first_name": "Jane", "last_name": "Doe", "phone_number": "+14155550123",
               "full_address": "1199 Coleman Ave San Jose", "address_line1": "1199 Coleman Ave", "postal_code": "95110",
               "region_code": "US"}
    profile = buyer_profile(load_order(make_order("COMPLETED", recipient_address=address)), BuyerStats(1, Decimal("1"), "USD"))
    assert (profile.first_name, profile.last_name, profile.phone_number) == ("Jane", "Doe", "+14155550123")
    assert profile.location.address1 == "1199 Coleman Ave" and profile.location.country == "US"


@pytest.mark.parametrize("phone, expected", [
    ("+14155550123", "+14155550123"),
    ("(+1)213-***-1234", None),
    ("4155550123", None),
    ("+1415555012", None),
    ("+1 415 555 0123", None),
    ("", None),
    (None, None),
])
def test_only_valid_unmasked_e164_phones_are_used(phone, expected):
    assert valid_e164(phone) == expected


def test_profile_properties_come_from_the_ledger_totals_and_never_invent_consent():
    last = datetime(2026, 10, 2, 9, 30, tzinfo=timezone.utc)
    profile = buyer_profile(load_order(make_order("COMPLETED")), BuyerStats(4, Decimal("120.40"), "USD", last))
    assert profile.properties == {"source": "TikTok Shop", "tiktok_user_id": "7021436810468230477",
                                  "tiktok_order_count": 4, "tiktok_lifetime_value": 120.4, "tiktok_refund_count": 0, "tiktok_currency": "USD",
                                  "tiktok_last_order_at": "2026-10-02T09:30:00+00:00"}
    assert profile.subscriptions is None


def test_buyer_stats_count_placed_orders_once_and_leave_out_cancelled_and_unpaid():
    day = lambda d: datetime(2026, 10, d, tzinfo=timezone.utc)  # noqa: E731
    entries = [
        LedgerEntry("a", "u", "COMPLETED", True, Decimal("10.00"), "USD", day(1)),
        LedgerEntry("b", "u", "DELIVERED", True, Decimal("5.50"), "USD", day(5)),
        LedgerEntry("c", "u", "CANCELLED", True, Decimal("99.00"), "USD", day(9)),
        LedgerEntry("d", "u", "UNPAID", False, Decimal("7.00"), "USD", day(12)),
    ]
    assert buyer_stats(entries) == BuyerStats(2, Decimal("15.50"), "USD", day(5))
    assert buyer_stats([]) == BuyerStats(0, Decimal("0"), None)


def test_zero_decimal_currency_values_stay_exact():
    order = make_order("COMPLETED", payment={"currency": "JPY", "total_amount": "5000", "sub_total": "4500",
                                             "shipping_fee": "500", "tax": "0"},
                       line_items=[{"id": "1", "sku_id": "s", "product_id": "p", "product_name": "Tea", "sale_price": "4500"}])
    placed = order_events(load_order(order))[0]
    assert placed.value == Decimal("5000") and placed.value_currency == "JPY"


def test_paid_status_without_paid_time_falls_back_to_create_time():
    placed = order_events(load_order(make_order("AWAITING_SHIPMENT", paid=False)))[0]
    assert placed.time == datetime.fromtimestamp(T0, tz=timezone.utc)


def test_every_status_is_covered_by_the_table():
    covered = {"UNPAID", "ON_HOLD", "AWAITING_SHIPMENT", "PARTIALLY_SHIPPING", "AWAITING_COLLECTION", "IN_TRANSIT",
               "DELIVERED", "COMPLETED", "CANCELLED"}
    assert covered == {s.value for s in OrderStatus}


# The catalog in order events ---------------------------------------------------------------------

CATALOG = {"p-mug": {"url": "https://shop.tiktok.com/view/product/p-mug?region=US", "image": "https://img/mug.jpeg",
                     "categories": ["Home", "Kitchen"], "brand": "Nestwell"}}


def test_order_items_name_the_catalog_item_and_variant_and_take_its_url_image_categories_and_brand():
    order = load_order(make_order())
    placed, mug, tee = order_events(order, CATALOG)[:3]
    item = placed.properties["Items"][0]
    assert (item["ProductID"], item["VariantID"], item["SKU"]) == ("p-mug", "sku-mug", "MUG-RED")
    assert item["ProductURL"] == CATALOG["p-mug"]["url"] and item["ImageURL"] == "https://img/mug.jpeg"
    assert item["Categories"] == ["Home", "Kitchen"] and item["Brand"] == "Nestwell"
    assert placed.properties["Categories"] == ["Home", "Kitchen"] and placed.properties["Brands"] == ["Nestwell"]
    assert mug.metric_name == ORDERED_PRODUCT and mug.properties["VariantID"] == "sku-mug"
    assert mug.properties["ProductBrand"] == "Nestwell" and "Brand" not in mug.properties


def test_an_order_whose_product_is_not_in_the_catalog_yet_maps_without_catalog_fields():
    placed = order_events(load_order(make_order()), {})[0]
    tee = placed.properties["Items"][1]
    assert tee["VariantID"] == "sku-tee" and tee["SKU"] == "sku-tee"  # no seller SKU: the SKU id
    assert not {"ProductURL", "ImageURL", "Categories", "Brand"} & set(tee)
    assert "Categories" not in placed.properties


# relay_email ---------------------------------------------------------------------------------------

STATS = BuyerStats(1, Decimal("36.97"), "USD")


def test_relay_email_identity_is_the_profile_and_event_email():
    order = load_order(make_order())
    assert buyer_profile(order, STATS).email == "v2b2V5@scs.tiktokw.us"
    assert order_events(order)[0].profile.email == "v2b2V5@scs.tiktokw.us"


def test_relay_email_property_keeps_the_address_only_as_a_profile_property():
    order = load_order(make_order(recipient_address={"phone_number": "+12135551234", "region_code": "US"}))
    profile = buyer_profile(order, STATS, relay_email="property")
    assert profile.email is None and profile.properties["tiktok_relay_email"] == "v2b2V5@scs.tiktokw.us"
    assert profile.external_id == "tiktok:7021436810468230477" and profile.phone_number == "+12135551234"
    assert all(e.profile.email is None and e.profile.external_id == profile.external_id
               for e in order_events(order, relay_email="property"))


def test_relay_email_skip_sends_the_address_nowhere():
    order = load_order(make_order())
    profile = buyer_profile(order, STATS, relay_email="skip")
    assert profile.email is None and "tiktok_relay_email" not in profile.properties
    assert all(e.profile.email is None for e in order_events(order, relay_email="skip"))


def test_relay_email_options_leave_a_real_address_alone():
    order = load_order(make_order(buyer_email="jane@example.com"))
    for mode in ("property", "skip"):
        assert buyer_profile(order, STATS, relay_email=mode).email == "jane@example.com"
        assert "tiktok_relay_email" not in buyer_profile(order, STATS, relay_email=mode).properties
        assert order_events(order, relay_email=mode)[0].profile.email == "jane@example.com"
