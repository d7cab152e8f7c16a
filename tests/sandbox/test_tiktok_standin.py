"""The TikTok stand-in over real HTTP: signatures, the checks in order, tokens, rate limits, admin.

Requests are signed with the stand-in's own ``sign_request`` (see ``sandbox.tiktok.probe``).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
import requests

from sandbox.tiktok import TikTokStandIn, sign_request, sign_webhook
from sandbox.tiktok.probe import call
from sandbox.tiktok.signing import signing_base
from tests.tiktok_vectors import REQUEST_VECTORS, WEBHOOK_VECTORS

SEARCH, DETAIL, SHOPS = "/order/202309/orders/search", "/order/202309/orders", "/authorization/202309/shops"


@pytest.fixture(scope="module")
def shop():
    """A read-only stand-in shared by the tests that do not change its state."""
    with TikTokStandIn(orders=300, seed=11) as t:
        yield t


@pytest.fixture
def fresh():
    with TikTokStandIn(orders=200, seed=5) as t:
        yield t


def search(t, query=None, body=None, **kw):
    return call(t, "POST", SEARCH, {"shop_cipher": t.shop_cipher, "page_size": 10, **(query or {})}, body or {}, **kw)


def assert_error(response, http_status, code, message=None):
    payload = response.json()
    assert (response.status_code, payload["code"]) == (http_status, code), payload
    assert payload["data"] is None and payload["request_id"]
    if message is not None:
        assert payload["message"] == message


# -- signing --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("secret, path, query, body, expected", REQUEST_VECTORS)
def test_sign_request_matches_published_vectors(secret, path, query, body, expected):
    assert sign_request(secret, path, query, body) == expected
    assert sign_request(secret, path, {**query, "sign": "x", "access_token": "y"}, body) == expected


def test_signing_base_is_the_docs_printed_string():
    base = signing_base("/authorization/202309/shops", {"timestamp": 1623812664, "app_key": "29a39d"})
    assert base == b"/authorization/202309/shopsapp_key29a39dtimestamp1623812664"


def test_multipart_bodies_are_not_signed():
    query = {"app_key": "29a39d", "timestamp": "1623812664"}
    assert sign_request("s", "/p", query, b"--boundary", content_type="multipart/form-data; boundary=x") == \
        sign_request("s", "/p", query, None)


@pytest.mark.parametrize("app_key, secret, body, expected", WEBHOOK_VECTORS)
def test_sign_webhook_matches_published_vectors(app_key, secret, body, expected):
    assert sign_webhook(app_key, secret, body) == expected


# -- the checks, each with its code and HTTP status, in order -------------------------------------------

def test_a_well_formed_search_succeeds_with_the_envelope(shop):
    r = search(shop)
    payload = r.json()
    assert r.status_code == 200 and payload["code"] == 0 and payload["message"] == "Success"
    assert len(payload["request_id"]) == 34 and payload["request_id"][:14].isdigit()
    assert set(payload["data"]) == {"next_page_token", "total_count", "orders"}
    assert payload["data"]["total_count"] == 300 and len(payload["data"]["orders"]) == 10


def test_unknown_path_is_404_36009009(shop):
    assert_error(call(shop, "GET", "/order/202309/nothing"), 404, 36009009)


def test_wrong_method_is_405_36009010(shop):
    assert_error(call(shop, "GET", SEARCH, {"shop_cipher": shop.shop_cipher, "page_size": 10}), 405, 36009010)


def test_unknown_app_key_is_400_36009004(shop):
    assert_error(search(shop, app_key="someone-else"), 400, 36009004,
                 "Invalid credentials. Invalid 'app_key' query parameter.")


def test_missing_sign_is_400_36009004(shop):
    assert_error(search(shop, sign=False), 400, 36009004,
                 "Missing credentials. The request does not include a required signature in the query.")


@pytest.mark.parametrize("offset, word", [(-301, "earlier than 5 minutes"), (31, "exceed the current time")])
def test_timestamp_outside_the_window_is_400_36009004(shop, offset, word):
    r = search(shop, timestamp=int(time.time()) + offset)
    assert_error(r, 400, 36009004)
    assert word in r.json()["message"]


def test_timestamp_inside_the_window_is_accepted(shop):
    assert search(shop, timestamp=int(time.time()) - 250).json()["code"] == 0
    assert search(shop, timestamp=int(time.time()) + 20).json()["code"] == 0


def test_wrong_secret_is_401_106001_and_counted(fresh):
    r = search(fresh, secret="not-the-secret")
    assert_error(r, 401, 106001, "Invalid credentials. The 'sign' query parameter is invalid.")
    assert fresh.counters()["signature_failures"] == 1


def test_signature_covers_the_raw_body_bytes_not_a_reserialisation(shop):
    signed = b'{"order_status":"COMPLETED"}'
    assert_error(search(shop, body=signed, send_body=b'{"order_status": "COMPLETED"}'), 401, 106001)
    assert search(shop, body=b'{"order_status": "COMPLETED"}').json()["code"] == 0


def test_empty_object_body_may_be_signed_or_not(shop):
    r = call(shop, "POST", SEARCH, {"shop_cipher": shop.shop_cipher, "page_size": 5}, None, send_body=b"{}")
    assert r.json()["code"] == 0


@pytest.mark.parametrize("token", [None, "ROW_not-a-token"])
def test_missing_or_unknown_access_token_is_401_36009004(shop, token):
    assert_error(search(shop, token=token), 401, 36009004,
                 "Invalid credentials. The 'x-tts-access-token' header is invalid.")


def test_expired_access_token_is_401_105002(fresh):
    fresh.expire_access_token()
    assert_error(search(fresh), 401, 105002)


def test_missing_shop_cipher_on_a_shop_endpoint_is_400_106013(shop):
    r = call(shop, "POST", SEARCH, {"page_size": 10}, {})
    assert_error(r, 400, 106013)


def test_shop_cipher_on_authorization_is_400_unexpected_identifier(shop):
    r = call(shop, "GET", SHOPS, {"shop_cipher": shop.shop_cipher})
    assert_error(r, 400, 36009004, "Unexpected identifier. The 'shop_cipher' query parameter is not required "
                                   "for this request.")


def test_unknown_shop_cipher_is_400_36009004(shop):
    assert_error(search(shop, {"shop_cipher": "ROW_somebodyelse"}), 400, 36009004)


@pytest.mark.parametrize("page_size", [0, 101, "ten", None])
def test_page_size_outside_1_to_100_is_invalid_param(shop, page_size):
    query = {"shop_cipher": shop.shop_cipher}
    if page_size is not None:
        query["page_size"] = page_size
    assert_error(call(shop, "POST", SEARCH, query, {}), 400, 36009004, "invalid param error")


def test_more_than_50_ids_is_invalid_param_and_50_is_fine(shop):
    ids = [o["id"] for o in shop.orders()[:51]]
    assert_error(call(shop, "GET", DETAIL, {"shop_cipher": shop.shop_cipher, "ids": ",".join(ids)}), 400, 36009004)
    r = call(shop, "GET", DETAIL, {"shop_cipher": shop.shop_cipher, "ids": ",".join(ids[:50])})
    assert r.json()["code"] == 0 and len(r.json()["data"]["orders"]) == 50


@pytest.mark.parametrize("body", [b"not json", b"[1]", b'{"order_status":"SHIPPED"}', b'{"update_time_ge":"1"}'])
def test_malformed_search_filters_are_invalid_param(shop, body):
    assert_error(search(shop, body=body), 400, 36009004, "invalid param error")


def test_checks_run_in_order_so_the_first_failure_is_reported(shop):
    # Given requests that fail two checks each, I expect the earlier check's error.
    stale = int(time.time()) - 400
    assert search(shop, app_key="x", sign=False).json()["message"].startswith("Invalid credentials. Invalid 'app_key'")
    assert search(shop, sign=False, timestamp=stale).json()["message"].startswith("Missing credentials")
    assert "earlier than 5 minutes" in search(shop, secret="bad", timestamp=stale).json()["message"]
    assert search(shop, secret="bad", token=None).json()["code"] == 106001
    assert call(shop, "POST", SEARCH, {"page_size": 10}, {}, token=None).json()["code"] == 36009004
    assert call(shop, "POST", SEARCH, {"page_size": 0}, {}).json()["code"] == 106013


def test_shops_lists_the_authorized_shop_with_its_cipher(shop):
    r = call(shop, "GET", SHOPS)
    assert r.status_code == 200
    (entry,) = r.json()["data"]["shops"]
    assert entry == {"id": shop.shop_id, "name": shop.shop_name, "region": "US", "seller_type": "LOCAL",
                     "cipher": shop.shop_cipher, "code": shop.shop_code}


# -- rate limits and injected faults --------------------------------------------------------------------

def test_rate_limit_answers_429_36009002_with_retry_after():
    with TikTokStandIn(orders=20, rate_limit_qps=3) as t, requests.Session() as s:
        answers = [search(t, session=s) for _ in range(8)]
        limited = [r for r in answers if r.status_code == 429]
        assert limited and answers[0].status_code == 200
        assert limited[0].headers["Retry-After"] == "1"
        assert_error(limited[0], 429, 36009002,
                     "Too many requests. You've made too many requests in a short period of time.")
        assert t.counters()["http_429"] == len(limited)
        assert call(t, "GET", SHOPS, session=s).status_code == 200      # buckets are per path
        time.sleep(1.1)
        assert search(t, session=s).status_code == 200                   # and refill


def test_faults_force_429_error_rate_and_clear(fresh):
    fresh.set_faults(force_429=2)
    assert [search(fresh).status_code for _ in range(3)] == [429, 429, 200]
    fresh.set_faults(error_rate=1.0)
    assert_error(search(fresh), 500, 36009003)
    fresh.set_faults(latency_ms=300)
    started = time.perf_counter()
    assert search(fresh).status_code == 200 and time.perf_counter() - started >= 0.3
    fresh.set_faults(rate_limit_qps=1)
    assert [search(fresh).status_code for _ in range(2)] == [200, 429]
    fresh.clear_faults()
    assert search(fresh).status_code == 200


# -- tokens -----------------------------------------------------------------------------------------------

def token_call(t, path, **query):
    q = {"app_key": t.app_key, "app_secret": t.app_secret, **query}
    return requests.get(t.auth_url + path, params=q, timeout=10)


def test_auth_code_exchange_is_single_use_and_expiry_is_absolute(fresh):
    code = fresh.issue_auth_code()
    r = token_call(fresh, "/api/v2/token/get", auth_code=code, grant_type="authorized_code")
    data = r.json()["data"]
    assert r.json()["code"] == 0 and data["access_token"] and data["refresh_token"]
    assert abs(data["access_token_expire_in"] - (time.time() + 7 * 86400)) < 5
    assert data["refresh_token_expire_in"] > data["access_token_expire_in"]
    assert search(fresh, token=data["access_token"]).json()["code"] == 0
    again = token_call(fresh, "/api/v2/token/get", auth_code=code, grant_type="authorized_code").json()
    assert again["code"] == 36004004 and again["data"] is None
    unknown = token_call(fresh, "/api/v2/token/get", auth_code="code-never-issued", grant_type="authorized_code")
    assert unknown.json()["code"] == 36004004
    bad_grant = token_call(fresh, "/api/v2/token/get", auth_code=fresh.issue_auth_code(),
                           grant_type="authorization_code")
    assert_error(bad_grant, 400, 36009004)
    assert_error(token_call(fresh, "/api/v2/token/get", app_secret="nope", auth_code="c", grant_type="authorized_code"),
                 400, 36009004)


def test_refresh_rotates_both_tokens_with_a_grace_period_for_the_old_refresh_token(fresh):
    old_access, old_refresh = fresh.access_token, fresh.refresh_token
    first = token_call(fresh, "/api/v2/token/refresh", refresh_token=old_refresh, grant_type="refresh_token").json()
    new = first["data"]
    assert first["code"] == 0 and new["access_token"] != old_access and new["refresh_token"] != old_refresh
    assert fresh.access_token == new["access_token"]
    assert search(fresh, token=old_access).json()["code"] == 0          # old access token: until its own expiry
    assert search(fresh, token=new["access_token"]).json()["code"] == 0
    retry = token_call(fresh, "/api/v2/token/refresh", refresh_token=old_refresh, grant_type="refresh_token").json()
    assert retry["data"]["refresh_token"] == new["refresh_token"]        # within the 60 s grace: same pair
    real_clock = fresh.tokens.clock
    fresh.tokens.clock = lambda: real_clock() + 61
    late = token_call(fresh, "/api/v2/token/refresh", refresh_token=old_refresh, grant_type="refresh_token").json()
    assert late["code"] == 36004004
    assert fresh.counters()["token_refreshes"] == 2


def test_expired_token_recovers_after_a_refresh(fresh):
    fresh.expire_access_token()
    assert search(fresh).json()["code"] == 105002
    token_call(fresh, "/api/v2/token/refresh", refresh_token=fresh.refresh_token, grant_type="refresh_token")
    assert search(fresh).json()["code"] == 0


def test_short_token_ttl_expires_on_its_own():
    with TikTokStandIn(orders=10, token_ttl_seconds=1) as t:
        assert search(t).json()["code"] == 0
        time.sleep(1.1)
        assert search(t).json()["code"] == 105002


# -- sandbox controls -------------------------------------------------------------------------------------

def test_admin_routes_drive_the_same_state(fresh):
    admin = fresh.url + "/_sandbox"
    order = next(o for o in fresh.orders() if o["status"] == "AWAITING_SHIPMENT")
    r = requests.post(f"{admin}/orders/{order['id']}/status", json={"status": "CANCELLED", "cancel_reason": "Out of stock"})
    assert r.status_code == 200 and r.json()["order"]["status"] == "CANCELLED"
    assert requests.post(f"{admin}/orders/nope/status", json={"status": "CANCELLED"}).status_code == 404
    assert requests.post(f"{admin}/advance", json={"seconds": 3600}).json()["moved"] >= 0
    assert requests.post(f"{admin}/faults", json={"force_429": 1}).json()["force_429"] == 1
    assert search(fresh).status_code == 429
    assert requests.delete(f"{admin}/faults").json()["force_429"] == 0
    requests.post(f"{admin}/tokens/expire")
    assert search(fresh).json()["code"] == 105002
    counters = requests.get(f"{admin}/counters").json()
    assert counters["http_429"] == 1 and counters["requests"][SEARCH]["105002"] == 1
    truth = requests.get(f"{admin}/orders", params={"ids": order["id"]}).json()["orders"]
    assert truth[0]["cancel_reason"] == "Out of stock"
    requests.post(f"{admin}/reset")
    assert search(fresh).json()["code"] == 0 and fresh.counters()["http_429"] == 0
    assert {o["id"]: o for o in fresh.orders()}[order["id"]]["status"] == "AWAITING_SHIPMENT"
    assert json.loads(requests.get(f"{admin}/settings").text)["TIKTOK_SHOP_CIPHER"] == fresh.shop_cipher


def test_cli_prints_the_client_settings_and_serves_them():
    proc = subprocess.Popen([sys.executable, "-m", "sandbox.tiktok", "--port", "0", "--orders", "150", "--seed", "3"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        settings = dict(proc.stdout.readline().strip().split("=", 1) for _ in range(7))
        assert set(settings) == {"TIKTOK_API_BASE_URL", "TIKTOK_AUTH_BASE_URL", "TIKTOK_APP_KEY", "TIKTOK_APP_SECRET",
                                 "TIKTOK_ACCESS_TOKEN", "TIKTOK_REFRESH_TOKEN", "TIKTOK_SHOP_CIPHER"}

        class Remote:      # enough of a stand-in for ``call``
            url, app_key, app_secret = (settings[k] for k in ("TIKTOK_API_BASE_URL", "TIKTOK_APP_KEY",
                                                               "TIKTOK_APP_SECRET"))
            access_token, shop_cipher = settings["TIKTOK_ACCESS_TOKEN"], settings["TIKTOK_SHOP_CIPHER"]

        answer = search(Remote).json()
        assert answer["code"] == 0 and answer["data"]["total_count"] == 150
    finally:
        proc.terminate()
        proc.wait(timeout=10)
