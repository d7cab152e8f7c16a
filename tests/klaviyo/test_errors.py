"""Klaviyo errors a person can act on: which host did not answer, what is wrong with the base
URL, which identifier is malformed. None of them ever shows the API key."""

from __future__ import annotations

import socket

import pytest

from klaviyo import (
    KlaviyoClient,
    KlaviyoConfigError,
    KlaviyoNetworkError,
    KlaviyoNotFoundError,
    KlaviyoValidationError,
    NoRateLimit,
    RetryPolicy,
)
from sandbox.klaviyo import KlaviyoStandIn
from sandbox.redis import free_port
from settings import Settings
from workers.clients import klaviyo_from_settings

KEY = "pk_secret_0123456789abcdef"
NO_RETRIES = RetryPolicy(max_429=0, max_5xx=0, max_network=0)


@pytest.fixture(scope="module")
def standin():
    with KlaviyoStandIn(api_keys=(KEY,)) as k:
        yield k


def test_a_refused_connection_names_the_host_and_port_and_never_the_key():
    port = free_port()
    client = KlaviyoClient(KEY, base_url=f"http://127.0.0.1:{port}/api", rate_limiter=NoRateLimit(),
                           retry=NO_RETRIES)
    with pytest.raises(KlaviyoNetworkError) as caught:
        client.get_profile("01ABC")
    message = str(caught.value)
    assert f"could not reach 127.0.0.1:{port}" in message and "refused" in message.lower(), message
    assert KEY not in message and KEY not in repr(caught.value)


def test_a_host_that_never_answers_is_named_with_the_timeout():
    with socket.socket() as silent:  # accepts connections (backlog) and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        client = KlaviyoClient(KEY, base_url=f"http://127.0.0.1:{port}/api", rate_limiter=NoRateLimit(),
                               retry=NO_RETRIES, timeout=0.5)
        with pytest.raises(KlaviyoNetworkError) as caught:
            client.get_profile("01ABC")
    assert f"no answer from 127.0.0.1:{port} within 0.5s" in str(caught.value)


def test_a_base_url_without_api_gets_a_hint(standin):
    client = KlaviyoClient(KEY, base_url=standin.root_url, rate_limiter=NoRateLimit(), retry=NO_RETRIES)
    with pytest.raises(KlaviyoNotFoundError) as caught:
        client.get_profile("01ABC")
    assert "does not end in /api" in str(caught.value) and "https://a.klaviyo.com/api" in str(caught.value)
    right = KlaviyoClient(KEY, base_url=standin.url, rate_limiter=NoRateLimit(), retry=NO_RETRIES)
    with pytest.raises(KlaviyoNotFoundError) as caught:
        right.get_profile("01ABC")
    assert "/api" not in str(caught.value)  # a real 404 gets no hint


@pytest.mark.parametrize("url", ["a.klaviyo.com/api", "127.0.0.1:8025/api", "ftp://a.klaviyo.com/api", "https:///api"])
def test_a_base_url_without_a_scheme_is_a_configuration_error_raised_at_once(url):
    with pytest.raises(KlaviyoConfigError) as caught:
        KlaviyoClient(KEY, base_url=url, rate_limiter=NoRateLimit())
    message = str(caught.value)
    assert "KLAVIYO_API_BASE_URL" in message and "https://a.klaviyo.com/api" in message
    assert not caught.value.retriable and "\n" not in message


def test_a_scheme_less_base_url_in_the_settings_fails_before_any_request():
    settings = Settings(klaviyo_api_key=KEY, klaviyo_api_base_url="a.klaviyo.com/api")
    slept = []
    with pytest.raises(KlaviyoConfigError):
        klaviyo_from_settings(settings, sleep=slept.append)
    assert slept == []


@pytest.mark.parametrize("criteria, field", [
    ({"email": "not-an-email"}, "email"),
    ({"phone_number": "4155550123"}, "phone_number"),
    ({"external_id": "x" * 300}, "external_id"),
])
def test_search_profiles_refuses_a_malformed_identifier_before_any_request(standin, criteria, field):
    standin.reset(reset_config=True)
    client = KlaviyoClient(KEY, base_url=standin.url, rate_limiter=NoRateLimit())
    with pytest.raises(KlaviyoValidationError) as caught:
        client.search_profiles(**criteria)
    assert caught.value.field == field and str(caught.value).startswith(f"{field}: ")
    assert standin.requests(op="get_profiles") == []
