"""Seller authorization with the client over real HTTP: consent URL, code exchange once, shops, reauth."""

from __future__ import annotations

import logging
import time
from urllib.parse import parse_qs, urlsplit

import pytest

from sandbox.tiktok import ShopSpec, TikTokStandIn
from tiktok import (
    TikTokAuthError,
    TikTokReauthorizationRequired,
    TikTokRetryPolicy,
    TikTokShopClient,
    TokenGrant,
    authorization_url,
)

FAR_FUTURE = int(time.time()) + 86400


@pytest.fixture(scope="module")
def market():
    """Two sellers: a cross-border one with a US and a UK shop, and a local one."""
    specs = [ShopSpec(name="Glow US", seller="glow", orders=40), ShopSpec(name="Glow UK", seller="glow", currency="GBP",
                                                                          orders=40),
             ShopSpec(name="Corner Shop", seller="corner", orders=40)]
    with TikTokStandIn(shops=specs, rate_limit_qps=0) as t:
        yield t


def fresh_client(t, **kwargs) -> TikTokShopClient:
    """A client that has no token yet: what the app holds before the seller's consent comes back."""
    return TikTokShopClient(t.app_key, t.app_secret, base_url=t.url, auth_base_url=t.auth_url,
                            retry=TikTokRetryPolicy(backoff_base=0.05, jitter=0.05), **kwargs)


def test_authorization_url_points_at_the_regional_consent_page_with_the_state():
    row = urlsplit(authorization_url("7123", state="s t&ate"))
    assert (row.scheme, row.netloc, row.path) == ("https", "services.tiktokshop.com", "/open/authorize")
    assert parse_qs(row.query) == {"service_id": ["7123"], "state": ["s t&ate"]}
    assert urlsplit(authorization_url("7123", "x", region="us")).netloc == "services.us.tiktokshop.com"
    assert authorization_url(state="x", app_key="k") == "https://auth.tiktok-shops.com/oauth/authorize?app_key=k&state=x"
    assert authorization_url("1", "x", base_url="http://127.0.0.1:5/").startswith("http://127.0.0.1:5/open/authorize?")
    with pytest.raises(ValueError):
        authorization_url("7123", "x", region="EU")
    with pytest.raises(ValueError):
        authorization_url(state="x")


def test_an_auth_code_is_exchanged_once_for_a_grant_covering_the_sellers_shops(market):
    seen = []
    client = fresh_client(market, on_secret=seen.append)
    code = market.issue_auth_code("glow")
    grant = client.exchange_auth_code(code)
    assert isinstance(grant, TokenGrant) and grant.open_id == market.seller("glow").open_id
    assert grant.seller_base_region == "US" and grant.user_type == 0 and "seller.order.info" in grant.granted_scopes
    assert grant.access_token_expires_at > time.time() + 6 * 86400          # absolute unix seconds
    assert grant.refresh_token_expires_at > grant.access_token_expires_at
    assert grant.access_token not in repr(grant) and grant.refresh_token not in repr(grant)
    assert {code, grant.access_token, grant.refresh_token, market.app_secret} <= set(seen)

    shops = client.get_authorized_shops()
    assert [(s.name, s.region, s.seller_type) for s in shops] == [("Glow US", "US", "CROSS_BORDER"),
                                                                  ("Glow UK", "GB", "CROSS_BORDER")]
    uk = client.with_shop(shops[1].cipher)
    assert {o.id for o in uk.search_orders(0, FAR_FUTURE)} == {o["id"] for o in market.shop(shops[1].cipher).orders()}

    with pytest.raises(TikTokReauthorizationRequired) as reused:
        fresh_client(market).exchange_auth_code(code)
    assert reused.value.code == 36004004
    assert code not in str(reused.value) and market.app_secret not in str(reused.value)


def test_an_unknown_auth_code_is_refused_and_neither_it_nor_the_secret_is_logged(market, caplog):
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="urllib3")  # whatever an earlier test configured for it
    with pytest.raises(TikTokReauthorizationRequired):
        fresh_client(market).exchange_auth_code("ROW_never-issued-code-123")
    assert "/api/v2/token/get" in caplog.text
    assert "never-issued" not in caplog.text and market.app_secret not in caplog.text


def test_a_token_cannot_reach_a_shop_of_another_seller(market):
    client = fresh_client(market)
    client.exchange_auth_code(market.issue_auth_code("corner"))
    (own,) = client.get_authorized_shops()
    assert own.name == "Corner Shop"
    assert len(list(client.with_shop(own.cipher).search_orders(0, FAR_FUTURE))) == 40
    with pytest.raises(TikTokAuthError) as refused:
        list(client.with_shop(market.shop(0).cipher).search_orders(0, FAR_FUTURE))
    assert refused.value.code == 36009004 and "shop_cipher" in str(refused.value)


@pytest.mark.parametrize("end", ["revoke_refresh_token", "expire_refresh_token"])
def test_a_revoked_or_expired_refresh_token_asks_for_reauthorization(end):
    with TikTokStandIn(orders=5, rate_limit_qps=0) as t:
        client = fresh_client(t, shop_cipher=t.shop_cipher)
        client.exchange_auth_code(t.issue_auth_code())
        getattr(t, end)()
        t.expire_access_token()
        with pytest.raises(TikTokReauthorizationRequired) as caught:
            list(client.search_orders(0, FAR_FUTURE))
        assert caught.value.code in (36004004, 105002)
        client.exchange_auth_code(t.issue_auth_code())          # the seller authorizes again
        assert len(list(client.search_orders(0, FAR_FUTURE))) == 5


def test_after_deauthorization_the_old_tokens_are_refused():
    with TikTokStandIn(orders=5, rate_limit_qps=0) as t:
        client = fresh_client(t, shop_cipher=t.shop_cipher)
        client.exchange_auth_code(t.issue_auth_code())
        t.deauthorize()
        with pytest.raises(TikTokAuthError) as caught:
            list(client.search_orders(0, FAR_FUTURE))
        assert caught.value.code == 36009004


def test_the_consent_page_redirects_with_a_code_the_client_can_exchange():
    import requests

    with TikTokStandIn(orders=3, redirect_url="https://app.example/tiktok/callback") as t:
        url = authorization_url("7123", state="csrf-1", base_url=t.url)
        answer = requests.get(url, allow_redirects=False, timeout=10)
        assert answer.status_code == 302
        location = urlsplit(answer.headers["Location"])
        assert (location.netloc, location.path) == ("app.example", "/tiktok/callback")
        params = parse_qs(location.query)
        assert params["state"] == ["csrf-1"]
        grant = fresh_client(t).exchange_auth_code(params["code"][0])
        assert grant.open_id == t.open_id
