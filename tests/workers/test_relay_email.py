"""``relay_email`` per connection: TikTok's relay addresses as identity (default), as a profile
property only, or sent nowhere; Refunded Order honours it too. Real workers, both stand-ins."""

from __future__ import annotations

import pytest

from tests.support import klaviyo_events, valid_orders, wait_for_run
from tiktok import is_relay_email
from workers.api import enqueue_sync
from workers.mapping import FULFILLED_STATUSES, external_id, is_placed


def set_relay_email(mode: str) -> None:
    from db.engine import session_scope
    from db.models import Connection
    from workers.sync import resolve_connection

    connection_id = resolve_connection()
    with session_scope() as session:
        row = session.get(Connection, connection_id)
        row.options = dict(row.options or {}) | {"relay_email": mode}


@pytest.mark.parametrize("mode", ["property", "skip"])
def test_relay_addresses_never_identify_a_profile_or_an_event_outside_identity_mode(make_stack, mode):
    stack = make_stack(orders=150, workers=2)
    set_relay_email(mode)
    run = wait_for_run(enqueue_sync(days_back=31))
    assert run.status == "succeeded", run.error or run.error_details
    orders = valid_orders(stack)
    relayed = {external_id(o.user_id): o.buyer_email for o in orders
               if is_placed(o) and is_relay_email(o.buyer_email)}
    assert relayed
    profiles = {p["external_id"]: p for p in stack.klaviyo.state()["profiles"]}
    for key, email in relayed.items():
        profile = profiles[key]
        assert not is_relay_email(profile.get("email"))
        assert profile["properties"].get("tiktok_relay_email") == (email if mode == "property" else None)
        assert profile["email_marketing"]["consent"] != "SUBSCRIBED"
    # a refund after the switch: its Refunded Order is identified without the relay address too
    shop = stack.tiktok.shop(0)
    order = next(o for o in orders if o.status in FULFILLED_STATUSES and is_relay_email(o.buyer_email))
    ret = shop.create_return(order.id, "REFUND", reason="Damaged")
    shop.complete_refund(ret["return_id"])
    again = wait_for_run(enqueue_sync(days_back=1))
    assert again.status == "succeeded", again.error or again.error_details
    events = klaviyo_events(stack)
    refunded = next(e for k, e in events.items() if k.startswith(f"Refunded Order|{order.id}"))
    by_id = {p["id"]: p for p in stack.klaviyo.state()["profiles"]}
    assert by_id[refunded["profile_id"]]["external_id"] == external_id(order.user_id)
    assert not any(is_relay_email(p.get("email")) for p in stack.klaviyo.state()["profiles"])
