"""KlaviyoClient.get_accounts against a stand-in serving two accounts: the id a shared limiter is keyed by."""

from __future__ import annotations

import time

import pytest

from klaviyo import AccountAddress, KlaviyoAccount, KlaviyoClient, NoRateLimit
from sandbox.klaviyo import KlaviyoStandIn

ACCOUNTS = {"AbC123": ("pk_shop_a", "pk_shop_a_backup"),
            "XyZ789": {"api_keys": ("pk_shop_b",), "timezone": "Europe/Paris", "preferred_currency": "EUR",
                       "contact_information": {"organization_name": "Boutique B"}}}


@pytest.fixture(scope="module")
def standin():
    with KlaviyoStandIn(accounts=ACCOUNTS) as k:  # unscaled limits: get_accounts is 1/s, 15/m
        yield k


def client(standin, key) -> KlaviyoClient:
    return KlaviyoClient(key, base_url=standin.url, rate_limiter=NoRateLimit())


def test_get_accounts_returns_the_keys_account_as_a_value(standin):
    (account,) = client(standin, "pk_shop_b").get_accounts()
    assert isinstance(account, KlaviyoAccount)
    assert (account.account_id, account.public_api_key, account.timezone, account.preferred_currency) == \
        ("XyZ789", "XyZ789", "Europe/Paris", "EUR")
    assert account.organization_name == "Boutique B" and isinstance(account.street_address, AccountAddress)
    assert account.test_account is False and account.locale == "en-US"


def test_every_key_of_an_account_reports_the_same_account_id(standin):
    ids = {key: client(standin, key).get_accounts()[0].account_id
           for key in ("pk_shop_a", "pk_shop_a_backup", "pk_shop_b")}
    assert ids == {"pk_shop_a": "AbC123", "pk_shop_a_backup": "AbC123", "pk_shop_b": "XyZ789"}


def test_a_second_call_within_the_second_waits_out_the_429(standin):
    a = client(standin, "pk_shop_a")
    time.sleep(1 - time.time() % 1 + 0.02)  # both calls in one fresh second
    started = time.monotonic()
    assert a.get_accounts()[0].account_id == a.get_accounts()[0].account_id == "AbC123"
    assert time.monotonic() - started < 3
    assert [r["status"] for r in standin.account("AbC123").requests("get_accounts")][-3:] == [200, 429, 200]


def test_an_account_shows_no_key_in_its_repr(standin):
    (account,) = client(standin, "pk_shop_a").get_accounts()
    assert "pk_" not in repr(account) and "AbC123" in repr(account)
