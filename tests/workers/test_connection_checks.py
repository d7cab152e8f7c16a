"""The one-line answers of a connection check, for the failures the stand-ins cannot produce
(a key without a scope, a 5xx) and the wording each source of credentials gets. Pure: the checks
against real stand-ins are in tests/cli/test_connections.py and tests/cli/test_doctor.py."""

from __future__ import annotations

import pytest

from klaviyo import KlaviyoAuthError, KlaviyoNetworkError, KlaviyoRateLimitError, KlaviyoServerError, RateLimitTimeout
from tiktok import TikTokAuthError, TikTokNetworkError, TikTokServerError, TikTokSignatureError
from workers.connection_checks import Target, _klaviyo_fix, klaviyo_problem, tiktok_problem

BASE = "https://a.klaviyo.com/api"
ENV = Target("default", "env", "pk_secret_0123456789", None, "ROW_cipher", "env")
TABLE = Target("glow-us", "table", "pk_secret_0123456789", "AbC123", "ROW_cipher", "auth-1")


def problem(exc, target=TABLE) -> str:
    return klaviyo_problem(exc, BASE, *_klaviyo_fix(target))


@pytest.mark.parametrize("exc, target, expected", [
    (KlaviyoAuthError("denied", status=403), TABLE,
     "Klaviyo refused a scope (403): give connection glow-us's key the accounts:read scope (and those a sync writes with)"),
    (KlaviyoAuthError("denied", status=403), ENV,
     "Klaviyo refused a scope (403): give KLAVIYO_API_KEY the accounts:read scope (and those a sync writes with)"),
    (KlaviyoAuthError("bad key", status=401), ENV, "Klaviyo refused the key (401): check KLAVIYO_API_KEY and its scopes"),
    (KlaviyoAuthError("bad key", status=401), TABLE,
     "Klaviyo refused the key (401): connection glow-us's key was revoked or mistyped; remove the connection and add "
     "it again with a new key (its history and watermark are kept)"),
    (KlaviyoNetworkError("connection refused"), TABLE, f"Klaviyo unreachable at {BASE} (connection refused)"),
    (KlaviyoRateLimitError("throttled", retry_after=3.2, status=429), TABLE,
     "Klaviyo throttled the check (429); try again in 3 s"),
    (KlaviyoServerError("Klaviyo answered 503", status=503), TABLE, "Klaviyo answered 503: Klaviyo answered 503"),
    (RateLimitTimeout("get_accounts", 5.0, 40.0), TABLE,
     "skipped: the account's get_accounts budget (1/s, 15/min) is in use; try again in 40 s"),
])
def test_each_klaviyo_failure_is_one_line_that_says_what_to_do(exc, target, expected):
    assert problem(exc, target) == expected
    assert target.klaviyo_api_key not in problem(exc, target)


@pytest.mark.parametrize("exc, expected", [
    (TikTokSignatureError("sign mismatch", code=106001, status=401),
     "TikTok refused the request signature (106001): check TIKTOK_APP_SECRET (and TIKTOK_APP_KEY)"),
    (TikTokAuthError("Invalid credentials.", code=36009004, status=401),
     "TikTok refused the seller's access token (36009004: Invalid credentials.): the seller must authorize the app "
     "again: `ksync connections authorize glow-us`"),
    (TikTokNetworkError("timed out"), "TikTok unreachable at https://open-api.tiktokglobalshop.com (timed out)"),
    (TikTokServerError("internal error", code=36009003, status=500), "TikTok answered 36009003: internal error"),
])
def test_each_tiktok_failure_is_one_line_that_says_what_to_do(exc, expected):
    assert tiktok_problem(exc, "https://open-api.tiktokglobalshop.com", "glow-us") == expected
