"""The ``tiktok`` package as a standalone library: no app imports, configuration and secrets as arguments."""

from __future__ import annotations

import logging
import subprocess
import sys
import time

import pytest

from sandbox.tiktok import TikTokStandIn
from tiktok import (
    TikTokNetworkError,
    TikTokReauthorizationRequired,
    TikTokRetryPolicy,
    TikTokShopClient,
)
from tiktok.client import DEFAULT_API_BASE_URL, DEFAULT_AUTH_BASE_URL
from tiktok.redact import redact_query

FAR_FUTURE = int(time.time()) + 86400
APP_MODULES = ("logs", "settings", "workers", "db", "cli", "klaviyo", "sandbox")


def test_importing_the_library_loads_no_module_of_the_app():
    code = ("import sys, tiktok, tiktok.client, tiktok.aftersales, tiktok.catalog, tiktok.auth\n"
            f"print(sorted(m for m in sys.modules if m.split('.')[0] in {APP_MODULES!r}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_from_env_reads_the_public_variables_and_keywords_win():
    env = {"TIKTOK_APP_KEY": "k", "TIKTOK_APP_SECRET": "s", "TIKTOK_ACCESS_TOKEN": "a",
           "TIKTOK_REFRESH_TOKEN": "r", "TIKTOK_SHOP_CIPHER": " ROW_one , ROW_two ",
           "TIKTOK_API_BASE_URL": "http://127.0.0.1:1/", "TIKTOK_AUTH_BASE_URL": ""}
    client = TikTokShopClient.from_env(env)
    assert (client.app_key, client.shop_cipher, client.base_url) == ("k", "ROW_one", "http://127.0.0.1:1")
    assert client.auth_base_url == DEFAULT_AUTH_BASE_URL
    assert client._tokens.access_token == "a" and client._tokens.refresh_token == "r"
    assert TikTokShopClient.from_env(env, shop_cipher="ROW_two").shop_cipher == "ROW_two"
    assert TikTokShopClient.from_env({"TIKTOK_APP_KEY": "k", "TIKTOK_APP_SECRET": "s"}).base_url == DEFAULT_API_BASE_URL


def test_on_secret_is_told_every_secret_held_and_every_refreshed_token():
    seen = []
    with TikTokStandIn(orders=20, rate_limit_qps=0) as t:
        client = TikTokShopClient(t.app_key, t.app_secret, t.access_token, t.shop_cipher, base_url=t.url,
                                  auth_base_url=t.auth_url, refresh_token=t.refresh_token, on_secret=seen.append)
        assert {t.app_secret, t.access_token, t.refresh_token} <= set(seen)
        t.expire_access_token()
        assert len(list(client.search_orders(0, FAR_FUTURE))) == 20
        assert {t.access_token, t.refresh_token} <= set(seen)        # the rotated pair too


def test_a_refresh_token_tiktok_rejects_raises_reauthorization_required():
    # Defect: a rejected refresh token was a plain TikTokAuthError, so the app could not tell
    # "the seller must authorize again" from a misconfigured app.
    with TikTokStandIn(orders=5, rate_limit_qps=0) as t:
        client = TikTokShopClient(t.app_key, t.app_secret, t.access_token, t.shop_cipher, base_url=t.url,
                                  auth_base_url=t.auth_url, refresh_token="ROW_not-a-refresh-token-0123456789")
        t.expire_access_token()
        with pytest.raises(TikTokReauthorizationRequired) as caught:
            list(client.search_orders(0, FAR_FUTURE))
        assert caught.value.code == 36004004 and not caught.value.retriable
        assert "ROW_not-a-refresh-token" not in str(caught.value) and t.app_secret not in str(caught.value)


def test_a_network_failure_during_refresh_stays_retriable_and_is_not_a_reauthorization():
    client = TikTokShopClient("k", "the-app-secret-xyz", "a", "c", base_url="http://127.0.0.1:9",
                              auth_base_url="http://127.0.0.1:9", refresh_token="the-refresh-token-xyz",
                              retry=TikTokRetryPolicy(max_network=0))
    with pytest.raises(TikTokNetworkError) as caught:
        client.refresh_access_token()
    assert caught.value.retriable and not isinstance(caught.value, TikTokReauthorizationRequired)
    assert "xyz" not in str(caught.value)


def test_token_host_urls_are_blanked_in_urllib3_debug_lines(caplog):
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="urllib3")  # whatever an earlier test configured for it
    with TikTokStandIn(orders=1) as t:
        client = TikTokShopClient(t.app_key, t.app_secret, t.access_token, t.shop_cipher, base_url=t.url,
                                  auth_base_url=t.auth_url, refresh_token=t.refresh_token)
        old_refresh = t.refresh_token
        client.refresh_access_token()
    assert "/api/v2/token/refresh" in caplog.text                      # the line is there ...
    for secret in (t.app_secret, old_refresh, t.access_token, t.refresh_token):
        assert secret not in caplog.text                                # ... without its secrets
    assert redact_query("/x?app_key=k&app_secret=s3&refresh_token=r&auth_code=c HTTP") == \
        "/x?app_key=k&app_secret=***&refresh_token=***&auth_code=*** HTTP"
