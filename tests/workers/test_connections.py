"""Several connections on one stack, with real workers: three TikTok shops into two Klaviyo accounts.

The connections are made with ``ksync connections add`` (``LocalStack(connections=...)``), not
from the environment. What each account should hold is computed from the stand-in's orders of
the shops that feed it (``expected_from(stack, shops)``), never written down.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from db.engine import session_scope
from db.ledger import get_watermark
from sandbox.connection_specs import ConnectionSpec
from tests.support import expected_from, klaviyo_events, valid_orders, wait_for_run
from workers.api import enqueue_sync
from workers.mapping import external_id, is_placed

#: Two shops of one brand feed one Klaviyo account; a third shop feeds another.
SPECS = [ConnectionSpec("glow-us", "glow", shop="Glow US", orders=120),
         ConnectionSpec("glow-ca", "glow", shop="Glow CA", orders=90),
         ConnectionSpec("moss-us", "moss", shop="Moss US", orders=100)]
#: The share of each shop's orders placed by buyers the shops share (same TikTok user id).
SHARED_BUYERS = 0.25


@pytest.fixture
def stack(make_stack):
    return make_stack(connections=SPECS, shared_buyers=SHARED_BUYERS, workers=2)


def sync_all(ids) -> dict:
    runs = {connection: enqueue_sync(days_back=31, connection=connection) for connection in ids}
    return {connection: wait_for_run(run_id) for connection, run_id in runs.items()}


def placed_buyers(stack, connection_id: str) -> set[str]:
    shop = stack.shop_of(connection_id)
    return {external_id(o.user_id) for o in valid_orders(stack, shop.cipher) if is_placed(o)}


def assert_account_holds_exactly(stack, label: str) -> dict:
    """The account holds exactly the events and profiles its shops imply, with their totals;
    returns its profiles by external id."""
    account = stack.account(label)
    expected_events, expected_profiles = expected_from(stack, stack.shops_of_account(label))
    landed = klaviyo_events(stack, account)
    assert set(landed) == set(expected_events), label
    for key, event in expected_events.items():
        assert Decimal(str(landed[key]["value"])) == event.value, key
    profiles = {p["external_id"]: p for p in account.state()["profiles"]}
    assert set(profiles) == set(expected_profiles), label
    for external, stats in expected_profiles.items():
        properties = profiles[external]["properties"]
        assert properties["tiktok_order_count"] == stats.order_count, external
        assert Decimal(str(properties["tiktok_lifetime_value"])) == stats.lifetime_value, external
    assert account.summary()["duplicates_dropped"]["total"] == 0
    return profiles


def test_each_account_holds_exactly_its_shops_data_and_a_shared_buyer_totals_both_shops(stack):
    runs = sync_all([spec.id for spec in SPECS])
    for connection, run in runs.items():
        assert run.status == "succeeded", (connection, run.error, run.error_details)
        assert run.connection_id == connection
    glow = assert_account_holds_exactly(stack, "glow")
    moss = assert_account_holds_exactly(stack, "moss")

    # A buyer of both Glow shops is one profile in the Glow account whose totals cover both shops.
    both = placed_buyers(stack, "glow-us") & placed_buyers(stack, "glow-ca")
    assert both, "the stand-in's Glow shops share no buyer: raise SHARED_BUYERS"
    _, glow_us_alone = expected_from(stack, [stack.shop_of("glow-us")])
    _, combined = expected_from(stack, stack.shops_of_account("glow"))
    for buyer in both:
        properties = glow[buyer]["properties"]
        assert properties["tiktok_order_count"] == combined[buyer].order_count > glow_us_alone[buyer].order_count
        assert properties["tiktok_shops"] == sorted(["Glow US", "Glow CA"])

    # The accounts share nothing: a buyer of Glow US and of Moss US has a profile in each account,
    # each with the totals of that account's shops alone.
    across = placed_buyers(stack, "glow-us") & placed_buyers(stack, "moss-us")
    assert across, "no buyer of both a Glow and the Moss shop: raise SHARED_BUYERS"
    _, moss_alone = expected_from(stack, stack.shops_of_account("moss"))
    for buyer in across:
        assert moss[buyer]["properties"]["tiktok_order_count"] == moss_alone[buyer].order_count
        assert moss[buyer]["properties"]["tiktok_shops"] == ["Moss US"]
        assert glow[buyer]["properties"]["tiktok_order_count"] == combined[buyer].order_count

    with session_scope() as session:
        for connection, run in runs.items():
            assert get_watermark(session, connection) == run.window_end, connection


def test_a_revoked_klaviyo_key_fails_its_connection_alone_and_the_next_sync_after_restoring_lands_the_rest(stack):
    moss = stack.account("moss")
    stack.klaviyo.revoke_key(moss.api_key)

    runs = sync_all([spec.id for spec in SPECS])
    failed = runs.pop("moss-us")
    assert failed.status == "failed"
    assert failed.error == ("Klaviyo rejected the private key (401): check connection moss-us's key "
                            "(`ksync connections test moss-us`)")
    for connection, run in runs.items():
        assert run.status == "succeeded", (connection, run.error, run.error_details)
    assert_account_holds_exactly(stack, "glow")
    assert moss.state()["events"] == [] and moss.state()["profiles"] == []
    with session_scope() as session:
        assert get_watermark(session, "moss-us") is None
        for connection, run in runs.items():
            assert get_watermark(session, connection) == run.window_end, connection

    stack.klaviyo.restore_key(moss.api_key)
    again = wait_for_run(enqueue_sync(days_back=31, connection="moss-us"))
    assert again.status == "succeeded", (again.error, again.error_details)
    assert_account_holds_exactly(stack, "moss")
    assert_account_holds_exactly(stack, "glow")
    with session_scope() as session:
        assert get_watermark(session, "moss-us") == again.window_end
