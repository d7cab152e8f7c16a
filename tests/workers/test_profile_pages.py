"""A streaming run plans each touched buyer's profile from the ledger, a bounded page at a time.

Database-backed (``migrated_database``), no workers: ``reading._plan_profiles`` runs in the test.
"""
from __future__ import annotations

from datetime import timedelta

import pytest

from db import history, ledger
from db.engine import session_scope
from db.models import SyncItem, SyncRun, utcnow
from tests.support import make_order_dict
from tiktok import parse_order
from workers import reading
from workers.mapping import ledger_row
from workers.planning import plan_window
from workers.sync import known_state

ACCOUNT, SHOP = "acct-a", "shop-1"
HEAVY = "7000000000000000001"


def orders_of(user_id: str, n: int, first_id: int, shop_offset: int = 0) -> list[dict]:
    """``n`` orders of one buyer, one a minute apart; every fifth cancelled after payment, the newest unpaid."""
    made = []
    for i in range(n):
        status, paid = ("CANCELLED", True) if i % 5 == 4 else ("COMPLETED", True)
        if i == n - 1 and n > 1:
            status, paid = "UNPAID", False
        made.append(make_order_dict(status=status, order_id=str(first_id + i), user_id=user_id, paid=paid,
                                    total=f"{10 + i}.50", create_time=1_790_000_000 + 60 * (i + shop_offset),
                                    email=f"buyer{user_id[-3:]}@example.com",
                                    recipient_address={"name": f"Name {i}", "phone_number": "(+1)213-***-1234"}))
    return made


@pytest.fixture
def ledger_of_one_account(migrated_database):
    """Shop 1: a heavy buyer (40 orders, 8 more in shop 2 of the same account), six light ones, one
    with only an unpaid order. Returns the run that planned them and the shop's orders."""
    shop_orders = orders_of(HEAVY, 40, 100_000)
    for b in range(6):
        shop_orders += orders_of(f"70000000000000001{b}0", 1 + b % 3, 200_000 + 100 * b)
    shop_orders += [make_order_dict(status="UNPAID", order_id="300000", user_id="7000000000000000900", paid=False)]
    other_shop = orders_of(HEAVY, 8, 400_000, shop_offset=1000)
    since = utcnow() - timedelta(seconds=1)
    with session_scope() as s:
        ledger.upsert_orders(s, ACCOUNT, "c1", SHOP, [ledger_row(parse_order(o)) for o in shop_orders])
        ledger.upsert_orders(s, ACCOUNT, "c2", "shop-2", [ledger_row(parse_order(o)) for o in other_shop])
        run = history.create_run(s, shop=SHOP, sync_type="manual", trigger="api")
        run.account, run.connection_id, run.status = ACCOUNT, "c1", "running"
        run_id = run.id
    return run_id, since, [parse_order(o) for o in shop_orders]


def planned_profiles(run_id: str) -> dict[str, dict]:
    with session_scope() as s:
        return {i.key: i.payload for i in s.query(SyncItem).filter_by(run_id=run_id, kind="profile")}


def plan_pages(run_id: str, since) -> None:
    counts = {"items": 0, "unchanged_profiles": 0, "in_flight_elsewhere": 0, "already_failing": 0}
    reading._plan_profiles(run_id, since, None, counts, lambda kind, ids: None, {})


def test_profiles_planned_page_by_page_match_planning_each_buyer_from_every_order(ledger_of_one_account, monkeypatch):
    run_id, since, orders = ledger_of_one_account
    monkeypatch.setattr(reading, "PROFILE_PAGE", 3)
    monkeypatch.setattr(reading, "PROFILE_PAGE_ORDERS", 10)
    plan_pages(run_id, since)
    with session_scope() as s:
        run = s.get(SyncRun, run_id)
        whole = plan_window(orders, known_state(s, run, orders, events=False), with_events=False)
    expected = {p.key: p.payload for p in whole.profiles}
    assert len(expected) == 7  # the buyer with only an unpaid order has no profile
    assert planned_profiles(run_id) == expected
    heavy = expected[f"tiktok:{HEAVY}"]["properties"]
    assert heavy["tiktok_order_count"] == 32 + 6  # placed and not cancelled, over both shops


def test_a_heavy_buyers_profile_is_planned_without_loading_all_their_orders(ledger_of_one_account, monkeypatch):
    run_id, since, _ = ledger_of_one_account
    parsed = []

    def counting_parse(raw):
        parsed.append(raw["id"])
        return parse_order(raw)

    monkeypatch.setattr(reading, "parse_order", counting_parse)
    plan_pages(run_id, since)
    assert len(planned_profiles(run_id)) == 7
    assert len(parsed) == 7  # one order per buyer (their newest placed), not the 56 stored


def test_a_profile_page_stops_at_the_buyer_whose_orders_pass_the_bound(ledger_of_one_account):
    _, since, _ = ledger_of_one_account
    with session_scope() as s:
        everyone = ledger.buyers_touched(s, ACCOUNT, SHOP, since, "", limit=100)
        first = ledger.buyers_touched(s, ACCOUNT, SHOP, since, "", limit=100, max_orders=10)
        second = ledger.buyers_touched(s, ACCOUNT, SHOP, since, first[-1], limit=100, max_orders=10)
    assert everyone[0] == HEAVY and len(everyone) == 8
    assert first == [HEAVY]  # 48 orders in the account: a page of one, never none
    assert second == everyone[1:6]  # 1 + 2 + 3 + 1 + 2 orders; the next buyer's 3 would pass 10


def test_a_buyers_newest_placed_order_in_the_shop_is_what_the_profile_is_planned_from(ledger_of_one_account):
    with session_scope() as s:
        newest = ledger.newest_placed_orders(s, ACCOUNT, SHOP, [HEAVY, "7000000000000000900"])
    assert [o["id"] for o in newest] == ["100038"]  # 100039 is unpaid; shop 2's orders are later but elsewhere
