"""The seed's spellings on our client, against the Klaviyo stand-in over real HTTP.

The seed README's users write ``KlaviyoEvent(customer_email=..., timestamp=...)``,
read ``result.event_id``, ``len(events)``, ``events[:5]``, ``event.timestamp``,
``email_list.profile_count``, ``segment.list_id`` and ``profile.subscription_status``.
Each test pins one of those names beside ours.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from klaviyo import KlaviyoClient, KlaviyoEvent, KlaviyoProfile, KlaviyoValidationError, NoRateLimit
from sandbox.klaviyo import KlaviyoStandIn
from settings import reset_settings_cache


@pytest.fixture(scope="module")
def standin():
    with KlaviyoStandIn() as k:
        yield k


@pytest.fixture
def klaviyo(standin):
    standin.reset(reset_config=True)
    client = KlaviyoClient(standin.api_key, base_url=standin.url, rate_limiter=NoRateLimit())
    yield client
    client.close()


def calls(standin, op):
    return len(standin.requests(op=op))


# -- events ----------------------------------------------------------------------------------------


def test_an_event_takes_the_seeds_customer_email_and_timestamp_beside_profile_and_time():
    when = datetime(2026, 3, 1, 12, 30, tzinfo=timezone.utc)
    seed = KlaviyoEvent(metric_name="Placed Order", customer_email="jane@example.com", properties={"a": 1},
                        timestamp=when)
    ours = KlaviyoEvent(metric_name="Placed Order", profile=KlaviyoProfile(email="jane@example.com"),
                        properties={"a": 1}, time=when)
    assert seed == ours
    assert (seed.customer_email, seed.timestamp) == ("jane@example.com", when)


def test_a_naive_event_time_is_taken_as_utc():
    event = KlaviyoEvent(metric_name="Signed Up", customer_email="a@example.com",
                         timestamp=datetime(2026, 3, 1, 12, 30))
    assert event.time == datetime(2026, 3, 1, 12, 30, tzinfo=timezone.utc)
    event.time = datetime(2026, 3, 2, 8, 0)  # assigned later: still sent as UTC, not refused
    assert KlaviyoClient._event_attributes(event)["time"].startswith("2026-03-02T08:00:00")


def test_an_email_that_contradicts_the_profile_is_refused():
    with pytest.raises(ValueError, match="customer_email"):
        KlaviyoEvent(metric_name="X", customer_email="a@example.com", profile=KlaviyoProfile(email="b@example.com"))


def test_an_event_with_neither_profile_nor_customer_email_is_a_validation_error_before_sending(klaviyo, standin):
    with pytest.raises(KlaviyoValidationError) as caught:
        klaviyo.track_event(KlaviyoEvent(metric_name="Placed Order"))
    assert caught.value.field == "profile"
    assert calls(standin, "create_event") == 0


def test_track_event_accepts_the_seeds_event_and_has_no_event_id_since_klaviyo_answers_202_without_one(klaviyo,
                                                                                                      standin):
    result = klaviyo.track_event(KlaviyoEvent(metric_name="Placed Order", customer_email="jane@example.com",
                                              properties={"order_id": "ORD-1"},
                                              timestamp=datetime.now(timezone.utc).replace(tzinfo=None)))
    assert result.accepted and result.status == 202
    assert result.event_id is None
    (stored,) = standin.state()["events"]
    assert stored["properties"]["order_id"] == "ORD-1"


def test_get_events_is_a_list_that_reads_its_pages_only_as_far_as_asked(klaviyo, standin):
    start = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(hours=1)
    for i in range(5):
        klaviyo.track_event(KlaviyoEvent(metric_name="Viewed Product", customer_email="v@example.com",
                                         properties={"i": i}, time=start + timedelta(minutes=i), unique_id=f"v{i}"))
    (profile,) = klaviyo.search_profiles(email="v@example.com")
    before = calls(standin, "get_events")

    events = klaviyo.get_events(profile_id=profile.profile_id, page_size=2)
    assert calls(standin, "get_events") == before  # nothing read yet
    newest = events[0]
    assert calls(standin, "get_events") == before + 1  # one page
    assert [e.properties["i"] for e in events[:2]] == [4, 3]
    assert calls(standin, "get_events") == before + 1
    assert len(events) == 5 and calls(standin, "get_events") == before + 3
    assert [e.properties["i"] for e in events] == [4, 3, 2, 1, 0]
    assert events[-1].properties["i"] == 0 and bool(events)
    assert calls(standin, "get_events") == before + 3  # read once, kept
    assert newest.metric_name == "Viewed Product" and newest.timestamp == newest.time == start + timedelta(minutes=4)


def test_an_empty_result_is_falsy_and_has_length_zero(klaviyo):
    events = klaviyo.get_events(profile_id="01NOSUCHPROFILE0000000000A")
    assert not events and len(events) == 0 and events[:5] == []


# -- lists and segments ----------------------------------------------------------------------------


def test_a_lists_profile_count_is_read_from_klaviyo_the_first_time_it_is_used(klaviyo, standin):
    vip = klaviyo.get_or_create_list("VIP Customers")
    klaviyo.get_or_create_list("Newsletter")
    for email in ("a@example.com", "b@example.com"):
        klaviyo.add_profile_to_list(vip.list_id, email=email)

    lists = {x.name: x for x in klaviyo.get_lists()}
    assert calls(standin, "get_list") == 0  # Klaviyo allows 1/s with profile_count: only on demand
    assert (lists["VIP Customers"].profile_count, lists["Newsletter"].profile_count) == (2, 0)
    assert lists["VIP Customers"].profile_count == 2
    assert calls(standin, "get_list") == 2
    assert klaviyo.get_list(vip.list_id, profile_count=True).profile_count == 2


def test_a_segments_profile_count_and_the_seeds_list_id(klaviyo, standin):
    klaviyo.create_or_update_profile(KlaviyoProfile(email="big@example.com", properties={"spent": 900}))
    klaviyo.create_or_update_profile(KlaviyoProfile(email="small@example.com", properties={"spent": 5}))
    segment = klaviyo.create_segment("Big spenders", {"condition_groups": [{"conditions": [{
        "type": "profile-property", "property": "properties['spent']",
        "filter": {"type": "numeric", "operator": "greater-than", "value": 100}}]}]})
    (listed,) = klaviyo.get_segments()
    assert listed.list_id == listed.segment_id == segment.segment_id
    assert listed.profile_count == 1
    assert klaviyo.get_segment(segment.segment_id, profile_count=True).profile_count == 1
    assert calls(standin, "get_segment") == 2


# -- profiles --------------------------------------------------------------------------------------


def test_a_profiles_subscription_status_comes_from_its_email_consent(klaviyo):
    fresh = klaviyo.create_or_update_profile(KlaviyoProfile(email="new@example.com")).profile_id
    assert klaviyo.get_profile(fresh).subscription_status == "never_subscribed"

    klaviyo.subscribe_profiles([KlaviyoProfile(email="in@example.com")])
    (subscribed,) = klaviyo.search_profiles(email="in@example.com")
    assert subscribed.subscription_status == "subscribed"

    klaviyo.unsubscribe_profiles([KlaviyoProfile(email="in@example.com")])
    assert klaviyo.get_profile(subscribed.profile_id).subscription_status == "unsubscribed"
    assert KlaviyoProfile(email="x@example.com").subscription_status is None  # not read from Klaviyo


# -- configuration ---------------------------------------------------------------------------------


def test_the_constructor_reads_klaviyo_api_base_url_as_the_seed_expects(standin, monkeypatch):
    monkeypatch.setenv("KLAVIYO_API_BASE_URL", standin.url)
    reset_settings_cache()
    try:
        client = KlaviyoClient(api_key=standin.api_key)
        assert client.base_url == standin.url
        assert KlaviyoClient(api_key=standin.api_key, base_url="https://a.klaviyo.com/api").base_url == \
            "https://a.klaviyo.com/api"
    finally:
        monkeypatch.delenv("KLAVIYO_API_BASE_URL")
        reset_settings_cache()
