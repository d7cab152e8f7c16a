"""Bad input never crashes a worker or stops a page: each bad record becomes a readable item error.

Three layers, cheapest first:

1. pure properties over hypothesis-generated TikTok orders (a valid order mutated: fields dropped,
   wrong JSON types, 0..500 line items, unicode everywhere, absurd amounts and timestamps):
   ``parse_order`` always answers an ``Order`` or an ``InvalidOrder`` naming the order id and the
   field; every ``Order`` maps, plans, round-trips through the item payload and either passes
   Klaviyo's pre-send validation or is refused with a ``KlaviyoValidationError`` naming the field,
   which ``judge`` turns into a failed item with that message;
2. a page of such garbage served over real HTTP: ``search_orders`` yields one result per order,
   in order, and never cuts the page short;
3. end to end with real workers: the TikTok stand-in's broken orders become failed ``order``
   items naming them, every other order's events land exactly once, the workers live on.

Plus what only PostgreSQL refuses (VARCHAR lengths, NUL in text): an order that parses (or fails
to) but cannot be stored as is must still end as an item, not take its whole window down.

Malformed *Klaviyo answers* end to end are ``test_outages.py::test_malformed_klaviyo_answers``;
here only the client level: each kind surfaces as a retriable ``KlaviyoServerError`` saying what
was wrong.
"""

from __future__ import annotations

import os

import json
import time
from datetime import datetime, timezone
from decimal import Decimal

import pytest
from flask import Flask, Response, request
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from db import history
from db.engine import session_scope
from klaviyo import (
    KlaviyoClient,
    KlaviyoEvent,
    KlaviyoProfile,
    KlaviyoServerError,
    KlaviyoValidationError,
    NoRateLimit,
    RetryPolicy,
)
from sandbox.klaviyo import KlaviyoStandIn
from sandbox.server import LoopbackServer
from settings import Settings
from tests.faults.harness import expected, verify
from tests.faults.postgres import PrivatePostgres, binaries
from tests.support import T0, make_order_dict, wait_for_run
from tiktok import InvalidOrder, Order, OrderStatus, TikTokShopClient, parse_order
from tiktok import TikTokRetryPolicy
from tiktok.client import ORDER_SEARCH_PATH
from tiktok.schemas import clean_id, EARLIEST_ORDER_TIME, LATEST_ORDER_TIME, OrderSchema
from workers.api import enqueue_sync
from workers.delivery import judge
from workers.mapping import buyer_profile, buyer_stats, event_key, ledger_entry, order_events
from workers.payloads import event_payload, load_event, load_profile, profile_payload
from workers.planning import EVENT, PROFILE, KnownState, plan_window
from workers.sync import record_plan

ORDER_FIELDS = frozenset(OrderSchema().fields)
STATUSES = [s.value for s in OrderStatus]

# Strategies ---------------------------------------------------------------------------------------

#: Strings that break naive code: NUL, bidi controls, zero-width and astral characters, combining marks,
#: format strings, quotes. No lone surrogates: JSON from TikTok cannot carry them as text.
SPECIALS = ["\x00", "\u202e", "\u200f", "\u200b", "\ufeff", "😀", "👩\u200d👩\u200d👧", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢", "\U0010fffd",
            "עברית", "العربية", "中文", "e\u0301", "\n", "\t", "'", '"', "\\", "%s", "{0}", "<b>&amp;", "\u2028"]
UNICODE = st.one_of(
    st.sampled_from(SPECIALS),
    st.lists(st.sampled_from(SPECIALS), min_size=1, max_size=4).map("".join),
    st.text(alphabet=st.characters(exclude_categories=("Cs",)), min_size=1, max_size=12),
)

#: Values of every JSON type (and NaN / Infinity, which Python's json reads and writes), by Python type.
BY_TYPE = {
    type(None): st.none(), bool: st.booleans(), int: st.integers(min_value=-2**70, max_value=2**70),
    float: st.floats(allow_nan=True, allow_infinity=True), str: st.one_of(UNICODE, st.just("")),
    list: st.lists(st.integers(), max_size=3), dict: st.dictionaries(st.text(max_size=4), st.integers(), max_size=2),
}
JUNK = st.one_of(*BY_TYPE.values())

MONEY = st.one_of(
    st.sampled_from([
        "NaN", "nan", "-NaN", "sNaN", "Infinity", "-Infinity", "inf", "12,99", "1.234,56", "-1", "-0.01", "-0", "0",
        "0.00", "1e9", "1000000000", "1000000000.0001", "1e10", "9" * 60, "1e999999", "0E+999999999", "1e-999999",
        " 12.5 ", "12.5\n", " ", "abc", "$12.99", "12.99 USD", "١٢.٥", "1_000", "0x1F", "+5", "5.", ".5", "1e",
        "--1", "12.99.1", "\x0012", "12\x00", "-1e400",
    ]),
    st.decimals(allow_nan=True, allow_infinity=True).map(str),
    st.integers(min_value=-2**64, max_value=2**64),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([None, [], {}, True, ["12.99"], {"amount": "12.99"}]),
)

#: 0, 1970, 2100, 2**31, 2**63, negatives, the plausible range's edges, and wrong types.
TIMES = st.one_of(
    st.sampled_from([0, 1, 86_399, 31_535_999, -1, -2**31, -2**63, 2**31 - 1, 2**31, 2**32, 2**63 - 1, 2**63, 2**64,
                     4_102_444_800, 4_133_980_799, EARLIEST_ORDER_TIME - 1, EARLIEST_ORDER_TIME, LATEST_ORDER_TIME,
                     LATEST_ORDER_TIME + 1]),
    st.integers(min_value=-2**64, max_value=2**64),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([str(T0), "yesterday", "2026-09-21T00:00:00Z", "", True, False, None, [T0], {"t": T0}]),
)

#: Survivable oddities: values a valid order may really carry.
ODD_AMOUNTS = st.sampled_from(["0", "0.00", "-0", "1000000000", "999999999.9999", "0.0001", "1e-999999", "0E+999999999",
                               " 12.5 ", "١٢.٥", "+5", "5.", ".5", "1E+2", "36.97"])
ODD_TIMES = st.one_of(st.sampled_from([EARLIEST_ORDER_TIME, LATEST_ORDER_TIME, 946_684_800 + 16 * 365 * 86400,
                                       T0, 2**31 - 1, 2**31, 4_000_000_000]),
                      st.integers(min_value=EARLIEST_ORDER_TIME, max_value=LATEST_ORDER_TIME))


def _address(draw, masked: bool) -> dict:
    phone = draw(st.sampled_from(["(+1)213-***-1234", "+14155550123", "+447911123456", "+1415555", "+99912345678",
                                  "0044 20 7946 0958", "+1 415-555-0123", "", "+", "+١٤١٥٥٥٥٠١٢٣"]))
    return {
        "name": "J*** D***" if masked else "Jane Doe", "first_name": "J***" if masked else "Jane",
        "last_name": "D***" if masked else "Doe", "phone_number": phone,
        "full_address": "1*** M*** St, Portland, OR 97204" if masked else "1 Main St, Portland, OR 97204",
        "address_line1": "1*** M*** St" if masked else "1 Main St", "address_line2": "", "postal_code": "97204",
        "region_code": "US",
        "district_info": [{"address_level": "L0", "address_level_name": "Country", "address_name": "United States",
                           "iso_code": "US"},
                          {"address_level": "L1", "address_level_name": "State", "address_name": "Oregon",
                           "iso_code": "US-OR"},
                          {"address_level": "L3", "address_level_name": "City", "address_name": "Portland",
                           "iso_code": ""}],
    }


@st.composite
def valid_orders(draw) -> dict:
    """A valid order in one of its realistic shapes (status, payment, address, cancel and shipping fields)."""
    order_id = draw(st.sampled_from(["576461413038785752", "576461413038785753", "576461413038785754"]))
    status = draw(st.sampled_from(STATUSES + ["CANCEL"]))
    order = make_order_dict(status=status, order_id=order_id,
                            user_id=draw(st.sampled_from(["7021436810468230477", "7021436810468230478"])),
                            paid=status not in ("UNPAID", "ON_HOLD") and (status not in ("CANCELLED", "CANCEL")
                                                                          or draw(st.booleans())),
                            email=draw(st.sampled_from(["v2b2V5@scs.tiktokw.us", "buyer@example.com", None])))
    if draw(st.booleans()):
        order["recipient_address"] = _address(draw, masked=draw(st.booleans()))
    if status in ("CANCELLED", "CANCEL"):
        order.update(cancel_time=T0 + 1200, cancel_reason="Out of stock", cancellation_initiator="SELLER")
    if status in ("IN_TRANSIT", "DELIVERED", "COMPLETED"):
        order.update(tracking_number="1Z999AA10123456784", collection_time=T0 + 3600, shipping_type="TIKTOK")
        if status != "IN_TRANSIT":
            order["delivery_time"] = T0 + 7200
    order["is_on_hold_order"] = status in ("UNPAID", "ON_HOLD")
    return order


def _paths(node, prefix=()):
    """Every (dict key / list index) path in ``node``; only the first few elements of long lists."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield prefix + (key,)
            yield from _paths(value, prefix + (key,))
    elif isinstance(node, list):
        for index, value in enumerate(node[:4]):
            yield prefix + (index,)
            yield from _paths(value, prefix + (index,))


def _parent(order, path):
    node = order
    for step in path[:-1]:
        node = node[step]
    return node


def _set(order, path, value):
    _parent(order, path)[path[-1]] = value


def _map_strings(node, change):
    if isinstance(node, str):
        return change(node)
    if isinstance(node, dict):
        return {key: _map_strings(value, change) for key, value in node.items()}
    if isinstance(node, list):
        return [_map_strings(value, change) for value in node]
    return node


def _pick_path(draw, order, accept=lambda path, value: True):
    if not isinstance(order, dict):
        return None
    paths = [p for p in _paths(order) if accept(p, _get(order, p))]
    return draw(st.sampled_from(paths)) if paths else None


def _get(order, path):
    node = order
    for step in path:
        node = node[step]
    return node


REQUIRED = [("id",), ("status",), ("create_time",), ("update_time",), ("user_id",), ("payment",), ("line_items",),
            ("payment", "currency"), ("payment", "total_amount"), ("line_items", 0, "id"), ("line_items", 0, "sku_id"),
            ("line_items", 0, "product_id"), ("line_items", 0, "product_name"), ("line_items", 0, "sale_price")]
MONEY_KEYS = {"total_amount", "sub_total", "shipping_fee", "tax", "seller_discount", "platform_discount",
              "original_total_product_price", "original_shipping_fee", "sale_price", "original_price"}
TIME_KEYS = {"create_time", "update_time", "paid_time", "cancel_time", "collection_time", "delivery_time"}
ID_KEYS = {"id", "user_id", "sku_id", "product_id"}


def drop_field(draw, order):
    if draw(st.booleans()):
        present = [p for p in REQUIRED if _exists(order, p)]
        path = draw(st.sampled_from(present)) if present else None
    else:
        path = _pick_path(draw, order)
    if path is not None:
        del _parent(order, path)[path[-1]]
    return order


def _exists(order, path):
    try:
        _get(order, path)
        return True
    except (KeyError, IndexError, TypeError):
        return False


def wrong_type(draw, order):
    path = _pick_path(draw, order)
    if path is None:
        return order
    current = _get(order, path)
    if path[-1] in ID_KEYS and isinstance(current, str) and current.isdigit() and draw(st.booleans()):
        value = int(current)  # ids as JSON numbers, the classic 64-bit id bug
    elif path[-1] in TIME_KEYS and draw(st.booleans()):
        value = str(current)  # times as strings
    else:
        value = draw(st.one_of(*(strategy for kind, strategy in BY_TYPE.items() if kind is not type(current))))
    _set(order, path, value)
    return order


def bad_money(draw, order):
    path = _pick_path(draw, order, lambda p, v: p[-1] in MONEY_KEYS)
    if path is not None:
        _set(order, path, draw(MONEY))
    return order


def bad_time(draw, order):
    path = _pick_path(draw, order, lambda p, v: p[-1] in TIME_KEYS)
    if path is None and isinstance(order, dict):
        path = (draw(st.sampled_from(sorted(TIME_KEYS))),)
    if path is not None:
        _set(order, path, draw(TIMES))
    return order


def objects_become_junk(draw, order):
    path = _pick_path(draw, order, lambda p, v: isinstance(v, (dict, list)))
    if path is not None:
        _set(order, path, draw(st.sampled_from([None, [], {}, "", "null", 0, [None], [[]], ["x"], [{}]])))
    return order


def many_line_items(draw, order):
    if not isinstance(order, dict):
        return order
    count = draw(st.one_of(st.integers(0, 3), st.just(500), st.integers(0, 500)))
    skus = draw(st.integers(1, 6))
    order_id = order.get("id") if isinstance(order.get("id"), str) else "x"
    template = {"sku_id": "s", "product_id": "p-mug", "product_name": "Mug", "sale_price": "9.99"}
    order["line_items"] = [dict(template, id=f"{order_id}-{i}", sku_id=f"sku-{i % skus}", product_id=f"p-{i % skus}")
                           for i in range(count)]
    return order


def unicode_everywhere(draw, order):
    texts = draw(st.lists(UNICODE, min_size=1, max_size=3))
    where = draw(st.sampled_from(["prefix", "suffix", "replace"]))
    counter = iter(range(10**9))

    def change(value):
        text = texts[next(counter) % len(texts)]
        return {"prefix": text + value, "suffix": value + text, "replace": text}[where]

    return _map_strings(order, change)


def not_an_object(draw, order):
    return draw(st.one_of(JUNK, st.lists(st.just(order), min_size=1, max_size=2)))


MUTATIONS = [drop_field, wrong_type, bad_money, bad_time, objects_become_junk, many_line_items, unicode_everywhere]


@st.composite
def raw_orders(draw) -> object:
    """What TikTok might send: a valid order, or one broken in one or several ways at once."""
    order = draw(valid_orders())
    for _ in range(draw(st.integers(0, 4))):
        order = draw(st.sampled_from(MUTATIONS))(draw, order)
    if draw(st.integers(0, 30)) == 0:
        order = not_an_object(draw, order)
    return order


@st.composite
def odd_but_valid_orders(draw) -> dict:
    """Orders that pass validation yet are extreme: unicode text, 1..500 line items, edge amounts and times."""
    order = draw(valid_orders())
    if draw(st.booleans()):
        order = many_line_items(draw, order)
        if not order["line_items"]:
            order["line_items"] = [dict(template_line(), id="only")]
    if draw(st.booleans()):
        texts = draw(st.lists(UNICODE, min_size=1, max_size=3))
        counter = iter(range(10**9))
        keep = {"status", "currency", "buyer_email", "phone_number", "address_level", "region_code"} | MONEY_KEYS

        def decorate(node):
            if isinstance(node, dict):
                return {k: (v if k in keep else decorate(v)) for k, v in node.items()}
            if isinstance(node, list):
                return [decorate(v) for v in node]
            if isinstance(node, str):
                return (node + texts[next(counter) % len(texts)])[:64]  # ids stay within 64 characters
            return node

        order = decorate(order)
    for key in ("total_amount", "shipping_fee", "tax", "seller_discount"):
        if draw(st.booleans()):
            order["payment"][key] = draw(ODD_AMOUNTS)
    for line in order["line_items"][:3]:
        if draw(st.booleans()):
            line["sale_price"] = draw(ODD_AMOUNTS)
    for key in ("create_time", "update_time", "paid_time", "cancel_time", "collection_time", "delivery_time"):
        if key in order and draw(st.booleans()):
            order[key] = draw(ODD_TIMES)
    if draw(st.booleans()):
        order["buyer_email"] = draw(st.sampled_from(["a@b", "not-an-email", "José@exämple.com", " x@scs.tiktokw.us ",
                                                     "x" * 300 + "@scs.tiktokw.us", "\u202eevil@example.com"]))
    return order


def template_line() -> dict:
    return {"sku_id": "sku-1", "product_id": "p-1", "product_name": "Mug", "sale_price": "9.99"}


def _top_field(path: str) -> str:
    return path.split(".")[0].split("[")[0]


def assert_names_id_and_field(result: InvalidOrder, raw) -> None:
    """The error is readable: it names the order (when TikTok sent a string id) and the offending field."""
    assert isinstance(result.error, str) and result.message and result.field
    raw_id = raw.get("id") if isinstance(raw, dict) else None
    if clean_id(raw_id):  # a usable id names the order; one with control characters or > 64 chars cannot
        assert result.order_id == raw_id
        assert result.error.startswith(f"order {raw_id}: ")
    else:
        assert result.order_id in (None, "") and result.error.startswith("order <no id>: ")
    assert f": {result.field}: " in result.error
    if isinstance(raw, dict):
        assert _top_field(result.field) in ORDER_FIELDS, result.field  # a real field, e.g. "line_items[3].sku_id"
    else:
        assert result.field == "<order>"


KLAVIYO = KlaviyoClient("pk_offline_validation_only", base_url="http://127.0.0.1:9", rate_limiter=NoRateLimit())
SETTINGS = Settings()


def assert_sendable_or_refused_by_name(item_kind: str, payload: dict) -> str | None:
    """Klaviyo's pre-send validation accepts the payload, or refuses it with a named field that ``judge``
    turns into a failed item carrying that message. Any other exception fails the test."""
    try:
        if item_kind == EVENT:
            KLAVIYO._event_attributes(load_event(payload))
        else:
            KLAVIYO._profile_attributes(load_profile(payload))
    except KlaviyoValidationError as exc:
        assert exc.field and exc.message, exc
        verdict = judge(exc, 1, SETTINGS)
        assert verdict.retry_in is None and verdict.error == exc.message and verdict.counts_as_attempt
        return exc.field
    return None


# 1. Pure properties -------------------------------------------------------------------------------


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(raw=raw_orders())
@example(raw=make_order_dict(id=576461413038785752))
@example(raw=make_order_dict(create_time=0, update_time=2**63))
@example(raw=make_order_dict(payment={"currency": "USD", "total_amount": float("nan")}))
@example(raw=make_order_dict(line_items=[]))
@example(raw=None)
def test_any_raw_order_parses_to_an_order_or_an_invalid_order_naming_its_id_and_field(raw):
    before = repr(raw)
    result = parse_order(raw)
    assert repr(raw) == before  # the raw order is kept in the ledger: parsing must not change it
    assert isinstance(result, (Order, InvalidOrder))
    event(f"parsed to {type(result).__name__}")
    if isinstance(result, InvalidOrder):
        event(f"invalid at {_top_field(result.field)}")
        assert_names_id_and_field(result, raw)
    else:
        assert result.id == raw["id"] and result.raw is raw
        assert 1 <= len(result.line_items) and all(i.sale_price.is_finite() and i.sale_price >= 0
                                                   for i in result.line_items)
        assert datetime(2016, 1, 1, tzinfo=timezone.utc) <= result.update_time <= datetime(2100, 1, 1, tzinfo=timezone.utc)
        assert result.payment.total_amount.is_finite() and 0 <= result.payment.total_amount <= Decimal("1e9")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(raws=st.lists(st.one_of(odd_but_valid_orders(), odd_but_valid_orders(), raw_orders()), min_size=1, max_size=3))
def test_every_valid_order_maps_plans_round_trips_and_is_sent_or_refused_naming_the_field(raws):
    orders = [o for o in map(parse_order, raws) if isinstance(o, Order)]
    for order in orders:
        events = order_events(order)
        assert all(e.unique_id and e.unique_id.startswith(order.id) for e in events)
        profile = buyer_profile(order, buyer_stats([ledger_entry(order)]))
        assert profile.external_id == f"tiktok:{order.user_id}"

    plan = plan_window(orders, KnownState())
    window = {o.id: o for o in plan.orders}
    assert {i.key for i in plan.events} == {event_key(e) for o in window.values() for e in order_events(o)}
    for item in plan.items:
        # The payload goes into a JSON column and back; the task loads it and sends what it loaded.
        assert json.loads(json.dumps(item.payload)) == item.payload
        if item.kind == EVENT:
            assert event_payload(load_event(item.payload)) == item.payload
        else:
            assert item.kind == PROFILE and profile_payload(load_profile(item.payload)) == item.payload
        refused = assert_sendable_or_refused_by_name(item.kind, item.payload)
        event(f"{item.kind} refused at {refused}" if refused else f"{item.kind} sendable")
    event(f"{len(orders)} valid orders, up to {max([len(o.line_items) for o in orders], default=0) // 100 * 100}+ lines")


@pytest.mark.parametrize("klaviyo_event, field", [
    (KlaviyoEvent("Placed Order", KlaviyoProfile(external_id="tiktok:1"), time=datetime(2099, 1, 1, tzinfo=timezone.utc),
                  value=Decimal("1"), value_currency="USD", unique_id="o-1"), "time"),
    (KlaviyoEvent("Placed Order", KlaviyoProfile(email="not-an-email", external_id="tiktok:1"), unique_id="o-1"),
     "profile.email"),
    (KlaviyoEvent("Placed Order", KlaviyoProfile(), unique_id="o-1"), "profile.email"),
    (KlaviyoEvent("Placed Order", KlaviyoProfile(external_id="tiktok:1"), value_currency="usd", unique_id="o-1"),
     "value_currency"),
])
def test_an_event_klaviyo_would_refuse_becomes_a_failed_item_naming_the_field(klaviyo_event, field):
    """The refusal paths the property above relies on, pinned by example."""
    assert assert_sendable_or_refused_by_name(EVENT, event_payload(klaviyo_event)) == field


def test_an_order_dated_2099_is_valid_but_its_events_are_refused_by_klaviyo_naming_time():
    order = parse_order(make_order_dict(create_time=LATEST_ORDER_TIME - 100, update_time=LATEST_ORDER_TIME,
                                        paid_time=LATEST_ORDER_TIME - 50))
    assert isinstance(order, Order)
    plan = plan_window([order], KnownState())
    assert plan.events and {assert_sendable_or_refused_by_name(EVENT, i.payload) for i in plan.events} == {"time"}
    assert all(assert_sendable_or_refused_by_name(PROFILE, i.payload) is None for i in plan.profiles)


@pytest.mark.parametrize("currency", ["USD\n", "usd", "US", "USDX", " USD", "ÜSD", "U\x00D"])
def test_a_currency_that_is_not_exactly_three_capital_letters_is_refused_naming_the_field(currency):
    """The ledger keeps the currency in a VARCHAR(3) and Klaviyo wants an ISO code: "USD\\n" must not pass
    (a ``$`` in a Python regex also matches before a trailing newline)."""
    result = parse_order(make_order_dict(payment={"currency": currency, "total_amount": "36.97"}))
    assert isinstance(result, InvalidOrder), f"{currency!r} accepted as a currency"
    assert result.field == "payment.currency" and result.error.startswith("order 576461413038785752: payment.currency: ")


@pytest.fixture(scope="module")
def postgres_url():
    """A migrated database on a private PostgreSQL cluster, for what SQLite lets through and PostgreSQL refuses."""
    if binaries() is None:
        if os.environ.get("CI") == "true":
            pytest.fail("CI: no PostgreSQL server binaries to run a private cluster (install postgresql)")
        pytest.skip("no PostgreSQL server binaries to run a private cluster")
    from db.migrate import upgrade

    with PrivatePostgres() as pg:
        upgrade(pg.url)
        yield pg.url


@pytest.fixture
def on_postgres(postgres_url, monkeypatch):
    from db.engine import dispose_engines
    from settings import reset_settings_cache

    monkeypatch.setenv("DATABASE_URL", postgres_url)
    reset_settings_cache()
    dispose_engines()
    yield postgres_url
    dispose_engines()
    monkeypatch.undo()
    reset_settings_cache()


@pytest.mark.parametrize("mutate", [
    pytest.param(lambda o: o["payment"].update(currency="USD\n"), id="currency-with-trailing-newline"),
    pytest.param(lambda o: o.update(id="5764614130\x0038785752"), id="NUL-in-order-id"),
    pytest.param(lambda o: o.update(user_id="70214368\x0010468230477"), id="NUL-in-user-id"),
    pytest.param(lambda o: o.update(id="57646\x0041303", status="SHIPPED_MAYBE"), id="NUL-in-id-of-an-invalid-order"),
    pytest.param(lambda o: o.update(id="5" * 300), id="300-character-order-id"),
    pytest.param(lambda o: o["line_items"][0].update(product_name="Mug\x00\u202e😀"), id="NUL-in-product-name"),
])
def test_an_order_postgresql_cannot_store_as_is_never_fails_the_whole_window(on_postgres, mutate):
    """``record_plan`` writes a window's ledger rows, failed orders and items in one transaction: one order whose
    values PostgreSQL refuses (VARCHAR overflow, NUL in text) must become a failed item, not fail the window."""
    from db.models import SyncItem

    bad = make_order_dict()
    mutate(bad)
    good = make_order_dict(order_id="576461413038785799", user_id="7021436810468230499")
    parsed = [parse_order(bad), parse_order(good)]
    with session_scope() as session:
        run_id = history.create_run(session, shop="ROW_test", sync_type="manual", trigger="api", dry_run=False,
                                    options={}).id

    record_plan(run_id, [o for o in parsed if isinstance(o, Order)], [o for o in parsed if isinstance(o, InvalidOrder)])

    with session_scope() as session:
        items = [(i.kind, i.key, i.status, i.error) for i in session.query(SyncItem).filter_by(run_id=run_id)]
    good_keys = {event_key(e) for e in order_events(parsed[1])} | {"tiktok:7021436810468230499"}
    assert good_keys <= {key for _, key, status, _ in items if status == "pending"}
    others = [item for item in items if item[1] not in good_keys]
    assert others, "the bad order left no trace in the run"
    assert all(status == "pending" for _, _, status, _ in others) or \
        [(kind, status) for kind, _, status, _ in others] == [("order", "failed")]


# 2. A page of garbage over real HTTP --------------------------------------------------------------


class GarbagePages:
    """A fake order search: serves ``pages`` (lists of raw orders) in turn, chained by page tokens."""

    def __init__(self):
        self.pages: list[list] = [[]]
        self.requests = 0
        app = Flask("garbage-tiktok")

        @app.post(ORDER_SEARCH_PATH)
        def search():
            self.requests += 1
            index = int(request.args.get("page_token") or 0)
            token = str(index + 1) if index + 1 < len(self.pages) else ""
            body = {"code": 0, "message": "Success", "request_id": f"req-{self.requests}",
                    "data": {"next_page_token": token, "total_count": sum(map(len, self.pages)),
                             "orders": self.pages[index]}}
            return Response(json.dumps(body), mimetype="application/json")  # NaN and Infinity as Python writes them

        self.server = LoopbackServer(app)


@pytest.fixture(scope="module")
def garbage_tiktok():
    fake = GarbagePages()
    fake.server.start()
    client = TikTokShopClient("ksync-app", "ksync-secret", "token", "ROW_cipher", base_url=fake.server.root_url,
                              retry=TikTokRetryPolicy(max_server=0, max_network=0), sleep=lambda s: None)
    try:
        yield fake, client
    finally:
        client.close()
        fake.server.stop()


def _valid(n: int) -> dict:
    return make_order_dict(order_id=f"9{n:017d}", user_id=f"70{n:017d}")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                                                  HealthCheck.function_scoped_fixture])
@given(garbage=st.lists(raw_orders(), min_size=1, max_size=6), valid_at=st.lists(st.booleans(), min_size=2, max_size=10),
       page_break=st.integers(0, 16))
def test_a_page_mixing_garbage_and_valid_orders_yields_one_result_per_order_in_order(garbage_tiktok, garbage, valid_at,
                                                                                      page_break):
    fake, client = garbage_tiktok
    bad = iter(garbage)
    served = [_valid(n) if is_valid else next(bad, _valid(n)) for n, is_valid in enumerate(valid_at)] + list(bad)
    valid_ids = {id(raw) for raw in served if raw not in garbage}
    cut = min(page_break, len(served))
    fake.pages = [served[:cut], served[cut:]] if 0 < cut < len(served) else [served]

    results = list(client.search_orders(0, T0 + 10**6))

    assert len(results) == len(served)  # never cut short: garbage anywhere on any page
    for raw, result in zip(served, results):
        if id(raw) in valid_ids:
            assert isinstance(result, Order) and result.id == raw["id"]  # valid orders come through untouched
        wire = json.loads(json.dumps(raw))  # what the client actually received
        expected_result = parse_order(wire)
        assert type(result) is type(expected_result)
        if isinstance(result, Order):
            assert result.id == wire["id"]
        else:
            assert result.error == expected_result.error
            assert_names_id_and_field(result, wire)


# 3. End to end: the stand-in's broken orders, real workers ----------------------------------------


def test_malformed_tiktok_orders_become_failed_order_items_and_everything_else_lands_once(fault_stack):
    stack = fault_stack(orders=160, workers=2, malformed_ratio=0.05)
    malformed = stack.tiktok.malformed_ids()
    assert len(malformed) >= 8  # every defect kind of sandbox/tiktok/malformed.py at least once
    expected_events, expected_profiles = expected(stack)

    run = wait_for_run(enqueue_sync(days_back=31), timeout=180)
    result = verify(stack, run.id, "malformed TikTok orders (5% of a page)", 1,
                    notes={"malformed_orders": len(malformed)})

    assert run.status == "partial" and run.orders_invalid == len(malformed)
    with session_scope() as session:
        failed = history.failed_items(session, run.id)
    assert {i.key for i in failed} == malformed and run.failed_count == len(malformed)
    raw_by_id = {o["id"]: o for o in stack.tiktok.orders()}
    for item in failed:
        assert item.kind == "order"
        problem = parse_order(raw_by_id[item.key])
        assert item.error == problem.error and item.error.startswith(f"order {item.key}: {problem.field}: ")
        assert item.payload == {"field": problem.field}
    landed: dict[str, int] = {}
    for stored in stack.klaviyo.state()["events"]:
        key = f"{stored['metric']}|{stored['unique_id']}"
        landed[key] = landed.get(key, 0) + 1
    assert set(landed) == expected_events and set(landed.values()) == {1}
    assert not any(m in key for key in landed for m in malformed)
    assert {p["external_id"] for p in stack.klaviyo.state()["profiles"]} == expected_profiles
    assert result.clean and result.stored_twice == 0 and result.duplicated == 0, result
    assert all(w.alive for w in stack.workers)


# Klaviyo answers we cannot read: client level ------------------------------------------------------


@pytest.fixture(scope="module")
def klaviyo_standin():
    with KlaviyoStandIn() as standin:
        yield standin


WHAT_WAS_WRONG = {"html": "HTML", "truncated": "unreadable JSON", "unexpected": ""}


def _event(unique_id: str) -> KlaviyoEvent:
    return KlaviyoEvent("Placed Order", KlaviyoProfile(email="v2b2V5@scs.tiktokw.us", external_id="tiktok:7021"),
                        properties={"OrderId": unique_id}, time=datetime.now(timezone.utc), value=Decimal("36.97"),
                        value_currency="USD", unique_id=unique_id)


@pytest.mark.parametrize("kind", ["html", "truncated", "unexpected"])
@pytest.mark.parametrize("operation", ["get_profile", "create_or_update_profile", "create_event"])
def test_a_malformed_klaviyo_answer_is_a_retriable_server_error_saying_what_was_wrong(klaviyo_standin, kind, operation):
    standin = klaviyo_standin
    standin.reset(reset_config=True)
    client = KlaviyoClient(standin.api_key, base_url=standin.url, rate_limiter=NoRateLimit(),
                           retry=RetryPolicy(max_5xx=1), sleep=lambda s: None)
    existing = client.create_or_update_profile(KlaviyoProfile(external_id="tiktok:7021")).profile_id
    calls = {
        "get_profile": lambda: client.get_profile(existing),
        "create_or_update_profile": lambda: client.create_or_update_profile(
            KlaviyoProfile(email="v2b2V5@scs.tiktokw.us", external_id="tiktok:7021")),
        "create_event": lambda: client.track_event(_event(f"o-{kind}")),
    }
    standin.set_faults(malformed_rate=1.0, malformed_kind=kind, ops=[operation])
    faulted_from = time.time()

    if kind == "truncated" and operation == "create_event":
        # Klaviyo's 202 for an event has no body to read: the stand-in processed the event and cut an
        # empty answer short, so the client rightly reports it accepted, and the event is there.
        assert calls[operation]().accepted
        assert [e["unique_id"] for e in standin.state()["events"]] == [f"o-{kind}"]
        return
    with pytest.raises(KlaviyoServerError) as caught:
        calls[operation]()
    error = caught.value
    assert error.retriable
    assert WHAT_WAS_WRONG[kind] in error.message and error.message.startswith("Klaviyo ")
    if kind == "unexpected":
        assert "without a profile resource" in error.message or "answered 200, expected 202" in error.message
    assert "\n" not in error.message and len(error.message) < 300
    # A bad status is retried inside the client; a 2xx whose body cannot be read is left to the task's retry.
    assert 1 <= len(standin.requests(op=operation, since=faulted_from)) <= 2
    verdict = judge(error, 1, SETTINGS)
    assert verdict.retry_in is not None and verdict.error == error.message  # the task retries later
    client.close()
