"""Which key a person is told to fix when Klaviyo refuses one (pure: no services)."""
from klaviyo import KlaviyoAuthError
from workers.delivery import auth_reason


def test_the_environments_connections_name_klaviyo_api_key():
    for connection_id in (None, "default", "default-2", "default-12"):
        assert "check KLAVIYO_API_KEY" in auth_reason(KlaviyoAuthError("bad key", status=401), connection_id)


def test_a_stored_connection_whose_name_starts_with_default_is_named_itself():
    reason = auth_reason(KlaviyoAuthError("bad key", status=401), "default-eu")
    assert "KLAVIYO_API_KEY" not in reason
    assert "connection default-eu's key (`ksync connections test default-eu`)" in reason


def test_a_missing_scope_says_which_scopes_to_give_the_connections_key():
    reason = auth_reason(KlaviyoAuthError("missing scope", status=403), "shop-us")
    assert reason.startswith("Klaviyo refused the private key a scope it needs (403: missing scope)")
    assert "connection shop-us's key" in reason and "catalogs" in reason
