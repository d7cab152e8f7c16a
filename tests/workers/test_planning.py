"""Planning a window against what we already know: nothing confirmed is planned twice."""

from __future__ import annotations

from decimal import Decimal

from tests.support import make_order_dict
from tiktok.schemas import load_order
from workers.mapping import LedgerEntry
from workers.planning import EVENT, PROFILE, KnownState, latest_by_id, plan_window


def order(status="COMPLETED", order_id="100", user="u1", update=900, total="36.97", **kw):
    return load_order(make_order_dict(status=status, order_id=order_id, user_id=user, update_offset=update,
                                      total=total, **kw))


def test_a_fresh_window_plans_one_profile_per_buyer_and_every_event():
    plan = plan_window([order(order_id="1", user="a"), order(order_id="2", user="a"), order(order_id="3", user="b")],
                       KnownState())
    assert sorted(p.key for p in plan.profiles) == ["tiktok:a", "tiktok:b"]
    assert len(plan.events) == 3 * 4  # placed + 2 products + fulfilled, per order


def test_overlapping_pages_are_deduplicated_and_the_latest_update_wins():
    older = order(status="AWAITING_SHIPMENT", update=100)
    newer = order(status="CANCELLED", update=200, cancel_reason="late")
    assert latest_by_id([newer, older]) == [newer]
    plan = plan_window([older, newer, older], KnownState())
    assert {e.key.split("|")[0] for e in plan.events} == {"Placed Order", "Ordered Product", "Cancelled Order"}


def test_events_already_confirmed_by_klaviyo_are_not_planned_again():
    first = plan_window([order()], KnownState())
    delivered = frozenset(e.key for e in first.events)
    second = plan_window([order()], KnownState(delivered=delivered))
    assert second.events == [] and second.already_delivered == len(first.events)


def test_records_in_flight_in_another_run_are_left_to_that_run():
    first = plan_window([order()], KnownState())
    in_flight = frozenset({(EVENT, first.events[0].key), (PROFILE, first.profiles[0].key)})
    second = plan_window([order()], KnownState(in_flight=in_flight))
    assert len(second.events) == len(first.events) - 1 and second.profiles == []
    assert second.in_flight_elsewhere == 2


def test_a_profile_in_flight_elsewhere_with_older_totals_is_planned_again_with_the_ledgers_newer_ones():
    """Two shops feeding one account sync at once: the other run planned the shared buyer before
    this shop's orders reached the ledger, so its profile undercounts; ours goes too."""
    mine = order(order_id="2", user="u1")
    other_shop = LedgerEntry(order_id="1", user_id="u1", status="COMPLETED", placed=True,
                             total_amount=Decimal("10.00"), currency="USD", shop="other-shop")
    theirs = plan_window([order(order_id="1", user="u1", total="10.00")], KnownState()).profiles[0]
    in_flight = frozenset({(PROFILE, theirs.key)})
    plan = plan_window([mine], KnownState(ledger={"u1": [other_shop]}, in_flight=in_flight,
                                          in_flight_profiles={theirs.key: theirs.fingerprint}))
    assert [p.key for p in plan.profiles] == [theirs.key] and plan.in_flight_elsewhere == 0
    assert plan.profiles[0].payload != theirs.payload
    same = plan_window([mine], KnownState(ledger={"u1": [other_shop]}, in_flight=in_flight,
                                          in_flight_profiles={theirs.key: plan.profiles[0].fingerprint}))
    assert same.profiles == [] and same.in_flight_elsewhere == 1


def test_an_unchanged_profile_is_not_sent_again_but_a_changed_one_is():
    first = plan_window([order()], KnownState())
    hashes = {p.key: p.fingerprint for p in first.profiles}
    assert plan_window([order()], KnownState(profile_hashes=hashes)).profiles == []
    grown = plan_window([order(), order(order_id="101")], KnownState(profile_hashes=hashes))
    assert [p.payload["properties"]["tiktok_order_count"] for p in grown.profiles] == [2]


def test_buyer_totals_merge_the_ledger_with_the_window_without_double_counting():
    ledger = {"u1": [LedgerEntry("100", "u1", "AWAITING_SHIPMENT", True, Decimal("36.97"), "USD"),
                     LedgerEntry("99", "u1", "COMPLETED", True, Decimal("10.00"), "USD")]}
    plan = plan_window([order(order_id="100", status="COMPLETED")], KnownState(ledger=ledger))
    props = plan.profiles[0].payload["properties"]
    assert props["tiktok_order_count"] == 2 and props["tiktok_lifetime_value"] == 46.97


def test_an_order_leaving_on_hold_is_planned_and_an_unpaid_one_is_not():
    assert plan_window([order(status="ON_HOLD")], KnownState()).items == []
    assert plan_window([order(status="UNPAID", paid=False)], KnownState()).items == []
    assert len(plan_window([order(status="AWAITING_SHIPMENT")], KnownState()).events) == 3
