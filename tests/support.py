"""Small builders shared by tests (``from tests.support import ...``)."""

from __future__ import annotations

import dataclasses

T0 = 1_790_000_000


def make_order_dict(status="COMPLETED", order_id="576461413038785752", user_id="7021436810468230477",
                    update_offset=900, total="36.97", paid=True, email="v2b2V5@scs.tiktokw.us", **overrides) -> dict:
    """A well-formed TikTok order (two units of one SKU, one of another), as the API sends it."""
    order = {
        "id": order_id,
        "status": status,
        "create_time": T0,
        "update_time": T0 + update_offset,
        "user_id": user_id,
        "payment": {"currency": "USD", "total_amount": total, "sub_total": "32.97", "shipping_fee": "3.00",
                    "tax": "2.00"},
        "line_items": [
            {"id": f"{order_id}-1", "sku_id": "sku-mug", "product_id": "p-mug", "product_name": "Mug", "sale_price": "9.99"},
            {"id": f"{order_id}-2", "sku_id": "sku-mug", "product_id": "p-mug", "product_name": "Mug", "sale_price": "9.99"},
            {"id": f"{order_id}-3", "sku_id": "sku-tee", "product_id": "p-tee", "product_name": "T-shirt", "sale_price": "12.99"},
        ],
    }
    if email:
        order["buyer_email"] = email
    if paid:
        order["paid_time"] = T0 + 60
    order.update(overrides)
    return order


def wait_for_run(run_id: str, timeout: float = 240):
    """Poll sync history until the run is final; fail the test if it is not within ``timeout``."""
    import time

    from db import history
    from db.engine import session_scope

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with session_scope() as session:
            run = history.get_run(session, run_id)
            if run is not None and run.status in ("succeeded", "partial", "failed", "skipped"):
                return run
        time.sleep(0.5)
    raise AssertionError(f"run {run_id} did not finish within {timeout}s")


def valid_orders(stack, shop=None) -> list:
    """The valid orders of one stand-in shop (default: the first)."""
    from tiktok import InvalidOrder, parse_order

    raws = stack.tiktok.shop(shop).orders()
    return [o for o in (parse_order(raw) for raw in raws) if not isinstance(o, InvalidOrder)]


def refunded_returns(stack, shop=None) -> list:
    """The stand-in's returns whose money went back, in the order ksync reads them (update time, id)."""
    from tiktok.aftersales import parse_return

    source = stack.tiktok.shop(shop) if shop is not None else stack.tiktok.shop(0)
    returns = [r for r in map(parse_return, source.returns()) if getattr(r, "is_refunded", False)]
    return sorted(returns, key=lambda r: (r.update_time, r.id))


def expected_from(stack, shops=None):
    """Events and buyers the mapping rules imply for every valid order (and completed refund) of
    ``shops`` (stand-in shops, ciphers or indexes; default the first shop), as one Klaviyo account
    fed by those shops holds them: ``({event key: event}, {external id: BuyerStats})``. A buyer of
    several of the shops is one profile with totals over all of them, net of refunds."""
    from decimal import Decimal

    from workers.mapping import buyer_stats, event_key, external_id, ledger_entry, order_events
    from workers.refund_mapping import refund_unique_id, refunded_amount, refunded_order_event

    shops = [stack.tiktok.shop(s if isinstance(s, (str, int)) else s.cipher) for s in (shops or [0])]
    orders = [o for shop in shops for o in valid_orders(stack, shop.cipher)]
    by_id = {o.id: o for o in orders}
    events = {event_key(e): e for o in orders for e in order_events(o)}
    refunds: dict[str, list] = {}
    taken: set[str] = set()
    returns = [r for shop in shops for r in refunded_returns(stack, shop.cipher)]
    for ret in sorted(returns, key=lambda r: (r.update_time, r.id)):
        if ret.order_id not in by_id:
            continue
        unique_id = refund_unique_id(ret.order_id, ret.id, ret.order_id in taken)
        taken.add(ret.order_id)
        event = refunded_order_event(ret, by_id[ret.order_id], unique_id)
        events[event_key(event)] = event
        refunds.setdefault(ret.order_id, []).append(refunded_amount(ret)[0])
    buyers: dict = {}
    for order in orders:
        entry = ledger_entry(order)
        done = refunds.get(order.id, [])
        buyers.setdefault(order.user_id, []).append(
            dataclasses.replace(entry, refunded=sum(done, Decimal("0")), refunds=len(done)))
    profiles = {external_id(u): buyer_stats(es) for u, es in buyers.items()
                if any(e.placed for e in es)}
    return events, profiles


def klaviyo_events(stack, account=None) -> dict[str, dict]:
    """The events the Klaviyo stand-in stores (in ``account``, an ``AccountView``; default the
    default account), by our event key; fails if one is stored twice."""
    keyed = {}
    for e in (account or stack.klaviyo).state()["events"]:
        key = f"{e['metric']}|{e['unique_id']}"
        assert key not in keyed, f"Klaviyo holds {key} twice"
        keyed[key] = e
    return keyed


def add_connection(connection_id: str, klaviyo_api_key: str, shop_cipher: str = "shop-1", *, access_token: str = "at",
                   refresh_token: str = "rt", authorization_id: str | None = None, options: dict | None = None,
                   shop_id: str = "", shop_name: str = ""):
    """A connection row (and its TikTok authorization) as ``ksync connections add`` makes one."""
    from db import connections
    from db.engine import session_scope

    with session_scope() as session:
        authorization = connections.upsert_authorization(
            session, app_key="ksync-app", open_id=authorization_id or connection_id, access_token=access_token,
            refresh_token=refresh_token, authorization_id=authorization_id)
        connections.add(session, connection_id=connection_id, authorization=authorization, shop_cipher=shop_cipher,
                        klaviyo_api_key=klaviyo_api_key, options=options, shop_id=shop_id, shop_name=shop_name)
    return connection_id
