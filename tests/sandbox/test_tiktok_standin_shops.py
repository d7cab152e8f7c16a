"""Several shops and sellers in one TikTok stand-in: identities, isolation, shared buyers, controls over HTTP."""

from __future__ import annotations

import requests
import pytest

from sandbox.tiktok import ShopSpec, TikTokStandIn
from sandbox.tiktok.probe import call, search_all

SEARCH, SHOPS = "/order/202309/orders/search", "/authorization/202309/shops"


class As:
    """A view of the stand-in that signs with another seller's token (what ``call`` reads)."""

    def __init__(self, t, seller):
        self.url, self.app_key, self.app_secret = t.url, t.app_key, t.app_secret
        self.access_token = t.seller(seller).tokens.current.access_token


@pytest.fixture(scope="module")
def market():
    specs = [ShopSpec(seller="a", orders=150), ShopSpec(seller="a", currency="GBP", orders=150),
             ShopSpec(seller="b", orders=150)]
    with TikTokStandIn(shops=specs, shared_buyers=0.3, seed=21) as t:
        yield t


def test_a_default_stand_in_is_the_single_shop_it_always_was():
    one, spec = TikTokStandIn(orders=50, seed=7, now=1_790_000_000), TikTokStandIn(orders=50, seed=7, now=1_790_000_000,
                                                                                   shops=[ShopSpec()])
    assert (one.shop_id, one.shop_cipher, one.access_token) == (spec.shop_id, spec.shop_cipher, spec.access_token)
    assert one.orders() == spec.orders() and len(one.shops) == 1 and one.shop() is one.first
    assert one.shop().info() == {"id": one.shop_id, "name": "Ksync Demo Shop", "region": "US",
                                 "seller_type": "LOCAL", "cipher": one.shop_cipher, "code": one.shop_code}


def test_each_shop_has_its_own_identity_orders_and_products(market):
    shops = market.shops
    assert len({s.id for s in shops}) == len({s.cipher for s in shops}) == 3
    assert [s.region for s in shops] == ["US", "GB", "US"]
    order_ids = [{o["id"] for o in s.orders()} for s in shops]
    assert all(len(ids) == 150 for ids in order_ids) and not (order_ids[0] & order_ids[1] | order_ids[0] & order_ids[2])
    products = [{p["id"] for p in s.products()} for s in shops]
    assert not products[0] & products[1]
    assert {o["payment"]["currency"] for o in shops[1].orders()} == {"GBP"}


def test_a_seller_sees_all_its_shops_and_a_cross_border_seller_is_marked_so(market):
    listed = call(As(market, "a"), "GET", SHOPS).json()["data"]["shops"]
    assert [s["cipher"] for s in listed] == [market.shop(0).cipher, market.shop(1).cipher]
    assert {s["seller_type"] for s in listed} == {"CROSS_BORDER"}
    (only,) = call(As(market, "b"), "GET", SHOPS).json()["data"]["shops"]
    assert (only["cipher"], only["seller_type"]) == (market.shop(2).cipher, "LOCAL")


def test_a_cipher_of_another_seller_is_refused_like_an_unknown_one(market):
    theirs = call(As(market, "a"), "POST", SEARCH, {"shop_cipher": market.shop(2).cipher, "page_size": 10}, {})
    unknown = call(As(market, "a"), "POST", SEARCH, {"shop_cipher": "ROW_nope", "page_size": 10}, {})
    assert theirs.status_code == unknown.status_code == 400
    assert theirs.json()["code"] == unknown.json()["code"] == 36009004
    assert theirs.json()["message"] == unknown.json()["message"]
    for path in ("/return_refund/202309/returns/search", "/product/202309/products/search"):
        assert call(As(market, "b"), "POST", path, {"shop_cipher": market.shop(0).cipher, "page_size": 10},
                    {}).json()["code"] == 36009004
    own = search_all(_with_cipher(market, "b", 2))
    assert {o["id"] for o in own} == {o["id"] for o in market.shop(2).orders()}


def _with_cipher(t, seller, index):
    view = As(t, seller)
    view.shop_cipher = t.shop(index).cipher
    return view


def test_some_buyers_shop_in_several_shops_with_the_same_id_and_relay_email(market):
    def buyers(shop):
        return {(o["user_id"], o.get("buyer_email")) for o in shop.orders()}

    shared = buyers(market.shop(0)) & buyers(market.shop(1))
    assert shared and all(email and email.endswith(("@scs.tiktokw.us", "@chat.seller.tiktok.com"))
                          for _, email in shared)
    alone = TikTokStandIn(shops=2, orders=150, seed=21)
    assert not {o["user_id"] for o in alone.shop(0).orders()} & {o["user_id"] for o in alone.shop(1).orders()}


def test_admin_routes_drive_shops_sellers_returns_and_products():
    with TikTokStandIn(shops=2, orders=200, seed=4, rate_limit_qps=0) as t:
        admin = t.url + "/_sandbox"
        second = t.shop(1)
        assert [s["cipher"] for s in requests.get(f"{admin}/shops").json()["shops"]] == [t.shop_cipher, second.cipher]
        code = requests.post(f"{admin}/auth_codes", json={"seller": second.seller_key}).json()["code"]
        grant = requests.get(t.auth_url + "/api/v2/token/get", params={
            "app_key": t.app_key, "app_secret": t.app_secret, "auth_code": code, "grant_type": "authorized_code"}).json()
        assert grant["code"] == 0 and grant["data"]["open_id"] == t.seller(second.seller_key).open_id
        settings = requests.get(f"{admin}/settings", params={"shop": second.cipher}).json()
        assert settings["TIKTOK_SHOP_CIPHER"] == second.cipher
        assert settings["TIKTOK_ACCESS_TOKEN"] == grant["data"]["access_token"]

        order = next(o for o in second.orders() if o["status"] == "DELIVERED")
        created = requests.post(f"{admin}/orders/{order['id']}/returns", json={"return_type": "REFUND"}).json()
        assert created["return_status"] == "RETURN_OR_REFUND_REQUEST_PENDING"
        done = requests.post(f"{admin}/returns/{created['return_id']}/complete").json()
        assert done["return_status"] == "RETURN_OR_REFUND_REQUEST_COMPLETE"
        listed = requests.get(f"{admin}/returns", params={"shop": second.cipher}).json()["returns"]
        assert created["return_id"] in {r["return_id"] for r in listed}
        unpaid = next(o for o in second.orders() if o["status"] == "UNPAID")
        assert requests.post(f"{admin}/orders/{unpaid['id']}/returns", json={}).status_code == 400
        assert requests.post(f"{admin}/returns/nope/complete").status_code == 404

        waiting = next(o for o in second.orders() if o["status"] == "AWAITING_SHIPMENT")
        asked = requests.post(f"{admin}/orders/{waiting['id']}/cancellations").json()
        assert asked["cancel_status"] == "CANCELLATION_REQUEST_PENDING"
        requests.post(f"{admin}/cancellations/{asked['cancel_id']}/status",
                      json={"status": "CANCELLATION_REQUEST_COMPLETE"})
        assert {o["id"]: o for o in second.orders()}[waiting["id"]]["status"] == "CANCELLED"

        products = requests.get(f"{admin}/products", params={"shop": second.cipher}).json()
        product = next(p for p in products["products"] if p["status"] == "ACTIVATE")
        sku = product["skus"][0]["id"]
        assert requests.post(f"{admin}/skus/{sku}/price", json={"price": "9.99"}).json()["skus"][0]["price"][
            "sale_price"] == "9.99"
        stock = requests.post(f"{admin}/skus/{sku}/inventory", json={"quantity": 0,
                                                                     "warehouse_id": products["warehouses"][0]}).json()
        assert stock["skus"][0]["warehouse_inventory"][0]["available_quantity"] == 0
        assert requests.post(f"{admin}/products/{product['id']}/status", json={"status": "DELETED"}).json()[
            "status"] == "DELETED"
        assert requests.post(f"{admin}/products/{product['id']}/status", json={"status": "GONE"}).status_code == 400

        requests.post(f"{admin}/sellers/{second.seller_key}/refresh_token/revoke")
        refused = requests.get(t.auth_url + "/api/v2/token/refresh", params={
            "app_key": t.app_key, "app_secret": t.app_secret, "refresh_token": grant["data"]["refresh_token"],
            "grant_type": "refresh_token"}).json()
        assert refused["code"] == 36004004
