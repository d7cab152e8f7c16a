"""Several Klaviyo accounts in one stand-in: isolation, shared windows per account, GET /api/accounts, admin."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
import time

import pytest
import requests

from sandbox.klaviyo import KlaviyoStandIn
from sandbox.klaviyo.limits import FixedWindowLimiter, Limit
from tests.sandbox.test_klaviyo_standin import Api, at_start_of_a_second, event_body, profile_body

ACCOUNTS = {"AbC123": ("pk_a", "pk_a2"),
            "XyZ789": {"api_keys": ("pk_b",), "timezone": "Europe/Paris", "preferred_currency": "EUR",
                       "contact_information": {"organization_name": "Boutique B"}}}
ACCOUNT_ATTRIBUTES = {"test_account", "contact_information", "industry", "timezone", "preferred_currency",
                      "public_api_key", "locale"}


@pytest.fixture(scope="module")
def two_accounts():
    with KlaviyoStandIn(accounts=ACCOUNTS, rate_limit_scale=100, job_stage_seconds=0.05) as k:
        yield k


@pytest.fixture
def k(two_accounts):
    two_accounts.reset(reset_config=True)
    return two_accounts


def test_a_key_never_sees_another_accounts_data(k):
    a, a2, b = Api(k, key="pk_a"), Api(k, key="pk_a2"), Api(k, key="pk_b")
    pid = a.post("/profiles", profile_body(email="ann@example.com")).json()["data"]["id"]
    assert a.post("/events", event_body(profile={"email": "ann@example.com"}, unique_id="o1")).status_code == 202
    assert a.post("/lists", {"data": {"type": "list", "attributes": {"name": "Buyers"}}}).status_code == 201
    assert [p["id"] for p in a2.get("/profiles").json()["data"]] == [pid]  # the account's other key
    assert b.get("/profiles").json()["data"] == [] and b.get(f"/profiles/{pid}").status_code == 404
    assert b.get("/events").json()["data"] == [] and b.get("/lists").json()["data"] == []
    # The same e-mail is a different person in account B.
    assert b.post("/profiles", profile_body(email="ann@example.com")).status_code == 201
    assert (k.account("AbC123").summary()["events"], k.account("XyZ789").summary()["events"]) == (1, 0)


def test_keys_of_one_account_share_its_windows_and_another_account_has_its_own(k):
    k.set_limits({"get_lists": (1, 100, None)})
    at_start_of_a_second()
    statuses = [Api(k, key=key).get("/lists").status_code for key in ("pk_a", "pk_a2", "pk_b")]
    assert statuses == [200, 429, 200]
    assert k.account("pk_a").summary()["http_429"] == {"total": 1, "by_op": {"get_lists": 1}}
    assert k.account("pk_b").summary()["http_429"]["total"] == 0


def test_get_accounts_answers_the_keys_own_account_in_klaviyos_shape(k):
    for key, expected in (("pk_a", "AbC123"), ("pk_a2", "AbC123"), ("pk_b", "XyZ789")):
        response = Api(k, key=key).get("/accounts")
        assert response.status_code == 200
        (account,) = response.json()["data"]
        assert (account["type"], account["id"]) == ("account", expected)
        assert set(account["attributes"]) == ACCOUNT_ATTRIBUTES
        assert account["attributes"]["public_api_key"] == expected
        assert account["links"]["self"].endswith(f"/api/accounts/{expected}/")
    b = Api(k, key="pk_b").get("/accounts/XyZ789").json()["data"]["attributes"]
    assert (b["timezone"], b["preferred_currency"]) == ("Europe/Paris", "EUR")
    assert b["contact_information"]["organization_name"] == "Boutique B"
    assert set(b["contact_information"]["street_address"]) == {"address1", "address2", "city", "region", "country",
                                                               "zip"}
    assert Api(k, key="pk_b").get("/accounts/AbC123").status_code == 404


def test_get_accounts_takes_sparse_fields(k):
    response = Api(k, key="pk_a").get("/accounts", **{"fields[account]": "public_api_key,timezone"})
    assert set(response.json()["data"][0]["attributes"]) == {"public_api_key", "timezone"}


def test_get_accounts_is_limited_to_one_a_second_and_fifteen_a_minute():
    assert FixedWindowLimiter().limit_for("get_accounts") == Limit(1, 15, None)
    with KlaviyoStandIn(accounts={"AbC123": ("pk_a",), "XyZ789": ("pk_b",)}) as k:
        at_start_of_a_second()
        a = Api(k, key="pk_a")
        assert [a.get("/accounts").status_code, a.get("/accounts").status_code] == [200, 429]
        assert Api(k, key="pk_b").get("/accounts").status_code == 200


def test_the_single_account_api_addresses_the_default_account(k):
    assert k.api_key == "pk_a" and k.account().id == "AbC123"
    Api(k, key="pk_b").post("/profiles", profile_body(email="b@example.com"))
    Api(k, key="pk_a").get("/lists")
    assert k.summary()["profiles"] == 0 and k.state()["profiles"] == []
    assert [r["op"] for r in k.requests()] == ["get_lists"]
    assert [r["op"] for r in k.account("pk_b").requests()] == ["create_profile"]
    assert k.account("XyZ789").state()["profiles"][0]["email"] == "b@example.com"
    assert k.account("XyZ789").state()["account"]["id"] == "XyZ789"
    with pytest.raises(KeyError):
        k.account("nobody")


def test_resetting_one_account_keeps_the_others(k):
    for key in ("pk_a", "pk_b"):
        Api(k, key=key).post("/profiles", profile_body(email="x@example.com"))
    k.account("pk_b").reset()
    assert (k.account("pk_a").summary()["profiles"], k.account("pk_b").summary()["profiles"]) == (1, 0)
    assert k.account("pk_b").summary()["requests_total"] == 0


def test_admin_routes_take_an_account_by_id_or_key(k):
    Api(k, key="pk_b").post("/profiles", profile_body(email="x@example.com"))
    admin = k.root_url + "/_sandbox"
    assert requests.get(admin + "/summary", params={"account": "XyZ789"}, timeout=5).json()["profiles"] == 1
    assert requests.get(admin + "/summary", params={"account": "pk_b"}, timeout=5).json()["account"] == "XyZ789"
    assert requests.get(admin + "/summary", timeout=5).json()["profiles"] == 0
    assert requests.get(admin + "/state", params={"account": "XyZ789"}, timeout=5).json() == \
        k.account("XyZ789").state()
    assert requests.get(admin + "/requests", params={"account": "pk_b"}, timeout=5).json()["count"] == 1
    assert requests.get(admin + "/summary", params={"account": "nobody"}, timeout=5).status_code == 404
    listed = requests.get(admin + "/accounts", timeout=5).json()["accounts"]
    assert [(a["id"], a["keys"], a["default"]) for a in listed] == [("AbC123", 2, True), ("XyZ789", 1, False)]
    assert "pk_" not in str(listed)
    requests.post(admin + "/reset", json={"account": "XyZ789"}, timeout=5)
    assert k.account("XyZ789").summary()["profiles"] == 0


def test_revoking_one_key_leaves_the_accounts_other_keys_working(k):
    k.revoke_key("pk_a2")
    try:
        assert Api(k, key="pk_a2").get("/lists").status_code == 401
        assert Api(k, key="pk_a").get("/lists").status_code == 200
    finally:
        k.restore_key("pk_a2")
    assert Api(k, key="pk_a2").get("/lists").status_code == 200


def test_faults_can_be_aimed_at_one_account(k):
    k.set_faults(error_rate=1.0, accounts=["XyZ789"])
    assert Api(k, key="pk_b").get("/lists").status_code in (500, 503)
    assert Api(k, key="pk_a").get("/lists").status_code == 200
    assert k.account("pk_b").summary()["faults_injected"]["total"] == 1


def test_bulk_import_jobs_run_in_their_own_account(k):
    body = {"data": {"type": "profile-bulk-import-job", "attributes": {"profiles": {"data": [
        {"type": "profile", "attributes": {"email": "imp@example.com"}}]}}}}
    job = Api(k, key="pk_b").post("/profile-bulk-import-jobs", body).json()["data"]["id"]
    assert Api(k, key="pk_a").get(f"/profile-bulk-import-jobs/{job}").status_code == 404
    time.sleep(0.15)  # two stages of 0.05 s
    assert k.account("pk_b").summary()["profiles"] == 1 and k.summary()["profiles"] == 0


def test_one_accounts_id_is_stable_for_its_key_and_shaped_like_klaviyos():
    with KlaviyoStandIn(api_keys=("pk_x",)) as first, KlaviyoStandIn(api_keys=("pk_x",)) as second:
        assert first.account().id == second.account().id
        assert re.fullmatch(r"[A-Za-z0-9]{6}", first.account().id)
        assert Api(first, key="pk_x").get("/accounts").json()["data"][0]["id"] == first.account().id


@pytest.mark.parametrize("kwargs", [
    {"accounts": {"A": ("pk_1",), "B": ("pk_1",)}},
    {"accounts": {"A": ("pk_1",)}, "api_keys": ("pk_2",)},
    {"accounts": {"A": {"api_keys": ("pk_1",), "favourite_colour": "red"}}},
    {"accounts": {"A": ()}},
])
def test_an_impossible_account_configuration_is_refused(kwargs):
    with pytest.raises(ValueError):
        KlaviyoStandIn(**kwargs)


def test_module_cli_serves_several_accounts(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "sandbox.klaviyo", "--port", str(port), "--account",
                             "AbC123=pk_1,pk_1b", "--account", "XyZ789=pk_2"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert "pk_1" in proc.stdout.readline() and "XyZ789" in proc.stdout.readline()
        for _ in range(50):
            try:
                response = requests.get(f"http://127.0.0.1:{port}/api/accounts", timeout=2,
                                        headers={"Authorization": "Klaviyo-API-Key pk_2", "revision": "2026-07-15"})
                break
            except requests.ConnectionError:
                time.sleep(0.05)
        assert response.json()["data"][0]["id"] == "XyZ789"
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0
