"""KlaviyoClient against the Klaviyo stand-in, over real HTTP: every method, retries, validation."""

from __future__ import annotations

import time
from datetime import datetime, timezone
from decimal import Decimal

import pytest

from klaviyo import (
    KlaviyoAuthError,
    KlaviyoConflictError,
    KlaviyoClient,
    KlaviyoEvent,
    KlaviyoNotFoundError,
    KlaviyoProfile,
    KlaviyoRateLimitError,
    KlaviyoServerError,
    KlaviyoValidationError,
    NoRateLimit,
    ProfileLocation,
    RetryPolicy,
)
from sandbox.klaviyo import KlaviyoStandIn


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


def event(email="buyer@scs.tiktokw.us", unique_id="o-1", metric="Placed Order", value="12.50"):
    return KlaviyoEvent(metric_name=metric, profile=KlaviyoProfile(email=email, external_id=f"tiktok:{email}"),
                        properties={"OrderId": unique_id}, time=datetime.now(timezone.utc),
                        value=Decimal(value), value_currency="USD", unique_id=unique_id)


def ops(standin, op):
    return [r for r in standin.requests(op=op)]


def test_upsert_creates_then_updates_the_same_profile(klaviyo):
    profile = KlaviyoProfile(email="jane@example.com", external_id="tiktok:1", first_name="Jane",
                             location=ProfileLocation(city="San Jose", country="US"), properties={"tier": "gold"})
    first = klaviyo.create_or_update_profile(profile)
    assert first.created and first.profile_id and first.email == "jane@example.com"
    profile.last_name = "Doe"
    second = klaviyo.create_or_update_profile(profile)
    assert not second.created and second.profile_id == first.profile_id
    fetched = klaviyo.get_profile(first.profile_id)
    assert (fetched.first_name, fetched.last_name, fetched.location.city) == ("Jane", "Doe", "San Jose")
    assert fetched.properties["tier"] == "gold"


def test_a_duplicate_profile_conflict_is_resolved_inside_the_upsert(klaviyo):
    by_email = klaviyo.create_profile(KlaviyoProfile(email="a@example.com"))
    by_phone = klaviyo.create_profile(KlaviyoProfile(phone_number="+14155550123"))
    result = klaviyo.create_or_update_profile(KlaviyoProfile(email="a@example.com", phone_number="+14155550123",
                                                             first_name="Ann"))
    assert result.profile_id in (by_email.profile_id, by_phone.profile_id)
    assert klaviyo.get_profile(result.profile_id).first_name == "Ann"


def test_two_buyers_sharing_a_phone_stay_two_profiles(klaviyo, standin):
    first = klaviyo.create_or_update_profile(KlaviyoProfile(email="a@scs.tiktokw.us", external_id="tiktok:A",
                                                            phone_number="+13055550163"))
    second = klaviyo.create_or_update_profile(KlaviyoProfile(email="b@scs.tiktokw.us", external_id="tiktok:B",
                                                             phone_number="+13055550163"))
    assert first.profile_id != second.profile_id
    people = {p["external_id"]: p for p in standin.state()["profiles"]}
    assert people["tiktok:A"]["email"] == "a@scs.tiktokw.us" and people["tiktok:A"]["phone_number"] == "+13055550163"
    assert people["tiktok:B"]["email"] == "b@scs.tiktokw.us" and people["tiktok:B"]["phone_number"] is None


def test_a_conflict_with_somebody_elses_profile_is_raised_not_merged(klaviyo, standin):
    klaviyo.create_profile(KlaviyoProfile(email="shared@example.com", external_id="shopify:1"))
    with pytest.raises(KlaviyoConflictError) as caught:
        klaviyo.create_or_update_profile(KlaviyoProfile(email="shared@example.com", external_id="tiktok:9"))
    assert caught.value.duplicate_profile_id
    assert [p["external_id"] for p in standin.state()["profiles"]] == ["shopify:1"]


def test_search_profiles_by_each_identifier(klaviyo):
    made = klaviyo.create_or_update_profile(KlaviyoProfile(email="s@example.com", phone_number="+14155550124",
                                                           external_id="tiktok:s"))
    for kwargs in ({"email": "s@example.com"}, {"phone_number": "+14155550124"}, {"external_id": "tiktok:s"}):
        assert [p.profile_id for p in klaviyo.search_profiles(**kwargs)] == [made.profile_id]
    assert klaviyo.search_profiles(email="nobody@example.com") == []


def test_unknown_profile_raises_not_found(klaviyo):
    with pytest.raises(KlaviyoNotFoundError):
        klaviyo.get_profile("01NOSUCHPROFILE0000000000A")


def test_track_event_is_accepted_with_the_unique_id_we_sent_and_repeats_are_dropped(klaviyo, standin):
    result = klaviyo.track_event(event())
    assert result.accepted and result.unique_id == "o-1" and result.status == 202
    klaviyo.track_event(event())
    summary = standin.summary()
    assert summary["events_by_metric"]["Placed Order"] == 1
    assert summary["duplicates_dropped"]["total"] == 1


def test_get_events_follows_pagination_to_the_end(klaviyo):
    for i in range(230):
        klaviyo.track_event(event(unique_id=f"o-{i}"))
    profile_id = klaviyo.search_profiles(email="buyer@scs.tiktokw.us")[0].profile_id
    events = list(klaviyo.get_events(profile_id=profile_id, page_size=100))
    assert len(events) == 230
    assert {e.metric_name for e in events} == {"Placed Order"}
    assert {e.unique_id for e in events} == {f"o-{i}" for i in range(230)}


def test_lists_page_to_the_end_and_get_or_create_is_idempotent(klaviyo):
    for i in range(23):
        klaviyo.create_list(f"List {i}")
    assert len(list(klaviyo.get_lists())) == 23
    first = klaviyo.get_or_create_list("TikTok Shop Customers")
    again = klaviyo.get_or_create_list("TikTok Shop Customers")
    assert first.list_id == again.list_id
    assert len(list(klaviyo.get_lists())) == 24


def test_a_create_answered_5xx_after_klaviyo_made_the_list_is_not_repeated_blindly(standin):
    # Defect: 5xx answers were retried for non-idempotent calls; a list made before the 5xx was made twice.
    standin.reset(reset_config=True)
    standin.set_faults(error_rate=1.0, error_after_commit=True, error_statuses=[503], ops=["create_list"], seed=1)
    client = KlaviyoClient(standin.api_key, base_url=standin.url, rate_limiter=NoRateLimit(), sleep=lambda s: None)
    made = client.get_or_create_list("TikTok Shop Customers")
    assert [k["name"] for k in standin.state()["lists"]] == ["TikTok Shop Customers"]
    assert made.list_id == standin.state()["lists"][0]["id"]
    assert [r["status"] for r in ops(standin, "create_list")] == [503]


def test_retry_after_as_an_http_date_is_read_as_seconds_from_now():
    from email.utils import format_datetime

    import requests

    from klaviyo.transport import _retry_after

    response = requests.Response()
    response.headers["Retry-After"] = format_datetime(datetime.now(timezone.utc).replace(microsecond=0)
                                                      + __import__("datetime").timedelta(seconds=40), usegmt=True)
    assert 35 <= _retry_after(response) <= 40
    response.headers["Retry-After"] = "7"
    assert _retry_after(response) == 7
    response.headers["Retry-After"] = "soon"
    assert _retry_after(response) == 1.0


def test_list_membership_by_email_and_by_id_in_chunks_of_1000(klaviyo, standin):
    target = klaviyo.get_or_create_list("Buyers")
    job = klaviyo.bulk_import_profiles([KlaviyoProfile(external_id=f"tiktok:{i}") for i in range(1500)])
    assert klaviyo.wait_for_bulk_import(job.job_id, timeout=30, poll=0.2).status == "complete"
    ids = [p["id"] for p in standin.state()["profiles"]]
    assert klaviyo.add_profiles_to_list(target.list_id, ids) == 1500
    assert len(ops(standin, "add_profiles_to_list")) == 2
    klaviyo.add_profile_to_list(target.list_id, email="member@example.com")
    members = list(klaviyo.get_list_profiles(target.list_id))
    assert len(members) == 1501
    klaviyo.remove_profile_from_list(target.list_id, members[0].profile_id)
    assert len(list(klaviyo.get_list_profiles(target.list_id))) == 1500


def test_segments_are_created_with_definitions_and_evaluate_profile_properties(klaviyo):
    klaviyo.create_or_update_profile(KlaviyoProfile(external_id="tiktok:vip", properties={"tiktok_order_count": 5}))
    klaviyo.create_or_update_profile(KlaviyoProfile(external_id="tiktok:new", properties={"tiktok_order_count": 1}))
    definition = {"condition_groups": [{"conditions": [{
        "type": "profile-property", "property": "properties['tiktok_order_count']",
        "filter": {"type": "numeric", "operator": "greater-than", "value": 3}}]}]}
    segment = klaviyo.create_segment("Repeat buyers", definition)
    assert segment.name == "Repeat buyers" and segment.definition == definition
    assert [s.segment_id for s in klaviyo.get_segments()] == [segment.segment_id]
    assert [p.external_id for p in klaviyo.get_segment_profiles(segment.segment_id)] == ["tiktok:vip"]


def test_subscribe_and_unsubscribe_change_consent(klaviyo):
    profile = KlaviyoProfile(email="optin@example.com")
    assert klaviyo.subscribe_profiles([profile]).status == 202
    found = klaviyo.search_profiles(email="optin@example.com")[0]
    assert found.profile_id
    assert klaviyo.unsubscribe_profiles([profile]).count == 1


def test_request_profile_deletion_removes_the_profile(klaviyo):
    made = klaviyo.create_or_update_profile(KlaviyoProfile(email="forget@example.com"))
    assert klaviyo.request_profile_deletion(email="forget@example.com").status == 202
    with pytest.raises(KlaviyoNotFoundError):
        klaviyo.get_profile(made.profile_id)


def test_bulk_import_job_completes_and_reports_row_errors(klaviyo):
    job = klaviyo.bulk_import_profiles([KlaviyoProfile(email=f"b{i}@example.com") for i in range(50)])
    assert job.job_id and job.status in ("queued", "processing", "complete")
    done = klaviyo.wait_for_bulk_import(job.job_id, timeout=30, poll=0.2)
    assert done.status == "complete" and done.completed_count == 50 and done.failed_count == 0
    assert list(klaviyo.get_bulk_import_errors(job.job_id)) == []


def test_bulk_create_events_sends_up_to_1000_events_grouped_by_profile(klaviyo, standin):
    events = [event(email=f"p{i % 50}@example.com", unique_id=f"o-{i}") for i in range(1000)]
    result = klaviyo.bulk_create_events(events)
    assert result.accepted and result.event_count == 1000 and result.profile_count == 50
    assert standin.summary()["events_by_metric"]["Placed Order"] == 1000


def test_bulk_duplicate_unique_id_is_refused_before_sending(klaviyo, standin):
    with pytest.raises(KlaviyoValidationError) as caught:
        klaviyo.bulk_create_events([event(unique_id="same"), event(unique_id="same")])
    assert caught.value.index == 1 and caught.value.field == "events[1].unique_id"
    assert ops(standin, "bulk_create_events") == []


@pytest.mark.parametrize("profile, field", [
    (KlaviyoProfile(email="not-an-email"), "email"),
    (KlaviyoProfile(phone_number="4155550123"), "phone_number"),
    (KlaviyoProfile(phone_number="+1415555012"), "phone_number"),
    (KlaviyoProfile(first_name="No identifier"), "email"),
    (KlaviyoProfile(external_id="x", properties={"blob": "x" * 120_000}), "properties"),
])
def test_bad_profiles_are_refused_before_any_request_naming_the_field(klaviyo, standin, profile, field):
    with pytest.raises(KlaviyoValidationError) as caught:
        klaviyo.create_or_update_profile(profile)
    assert caught.value.field == field
    assert ops(standin, "create_or_update_profile") == []


def test_bad_events_are_refused_before_any_request(klaviyo, standin):
    old = event()
    old.time = datetime(1999, 12, 31, tzinfo=timezone.utc)
    with pytest.raises(KlaviyoValidationError) as caught:
        klaviyo.track_event(old)
    assert caught.value.field == "time"
    with pytest.raises(KlaviyoValidationError) as caught:
        klaviyo.track_event(KlaviyoEvent(metric_name="", profile=KlaviyoProfile(email="a@b.co")))
    assert caught.value.field == "metric"
    assert ops(standin, "create_event") == []


def test_a_429_is_retried_after_retry_after_and_the_wait_is_visible_at_the_stand_in(klaviyo, standin):
    standin.set_faults(force_429=2, retry_after=1, ops=["create_event"])
    started = time.time()
    klaviyo.track_event(event())
    log = ops(standin, "create_event")
    assert [r["status"] for r in log] == [429, 429, 202]
    assert log[1]["t"] - log[0]["t"] >= 1.0 and log[2]["t"] - log[1]["t"] >= 1.0
    assert time.time() - started >= 2.0


def test_429s_beyond_the_budget_raise_with_retry_after(standin):
    standin.reset(reset_config=True)
    standin.set_faults(force_429=10, retry_after=1, ops=["create_event"])
    client = KlaviyoClient(standin.api_key, base_url=standin.url, rate_limiter=NoRateLimit(),
                           retry=RetryPolicy(max_429=1), sleep=lambda s: None)
    with pytest.raises(KlaviyoRateLimitError) as caught:
        client.track_event(event())
    assert caught.value.retry_after == 1
    assert len(ops(standin, "create_event")) == 2


def test_server_errors_are_retried_with_backoff_until_they_pass(standin):
    standin.reset(reset_config=True)
    standin.set_faults(error_rate=1.0, duration=0.5, ops=["create_event"])
    client = KlaviyoClient(standin.api_key, base_url=standin.url, rate_limiter=NoRateLimit(),
                           retry=RetryPolicy(max_5xx=3), sleep=lambda s: time.sleep(max(s, 0.6)))
    assert client.track_event(event()).accepted
    statuses = [r["status"] for r in ops(standin, "create_event")]
    assert statuses[0] >= 500 and statuses[-1] == 202


def test_an_html_error_page_becomes_a_readable_server_error(standin):
    standin.reset(reset_config=True)
    standin.set_faults(malformed_rate=1.0, malformed_kind="html", ops=["get_profiles"])
    client = KlaviyoClient(standin.api_key, base_url=standin.url, rate_limiter=NoRateLimit(),
                           retry=RetryPolicy(max_5xx=0))
    with pytest.raises(KlaviyoServerError) as caught:
        client.search_profiles(email="a@example.com")
    assert "HTML" in str(caught.value)


def test_a_wrong_key_is_an_auth_error_that_never_shows_the_key(standin):
    client = KlaviyoClient("pk_wrong_secret_key_123", base_url=standin.url, rate_limiter=NoRateLimit())
    with pytest.raises(KlaviyoAuthError) as caught:
        client.get_profile("01NOSUCHPROFILE0000000000A")
    assert "pk_wrong_secret_key_123" not in str(caught.value) and "pk_wrong" not in repr(client)


def test_the_rate_limiter_is_asked_for_each_operations_bucket_and_told_about_429s(standin):
    standin.reset(reset_config=True)

    class Recorder:
        def __init__(self):
            self.acquired, self.cooled = [], []

        def acquire(self, bucket, timeout=None):
            self.acquired.append(bucket)
            return 0.0

        def cool_down(self, bucket, seconds):
            self.cooled.append((bucket, seconds))

    recorder = Recorder()
    client = KlaviyoClient(standin.api_key, base_url=standin.url, rate_limiter=recorder, sleep=lambda s: None)
    standin.set_faults(force_429=1, retry_after=2, ops=["create_event"])
    client.track_event(event())
    client.create_or_update_profile(KlaviyoProfile(email="r@example.com"))
    assert recorder.acquired == ["create_event", "create_event", "create_or_update_profile"]
    assert recorder.cooled == [("create_event", 2.0)]


def test_a_200_where_klaviyo_answers_202_is_not_taken_as_accepted(standin):
    standin.reset(reset_config=True)
    standin.set_faults(malformed_rate=1.0, malformed_kind="unexpected", ops=["create_event"], duration=0.8)
    client = KlaviyoClient(standin.api_key, base_url=standin.url, rate_limiter=NoRateLimit(),
                           retry=RetryPolicy(max_5xx=3), sleep=lambda s: time.sleep(max(s, 0.5)))
    assert client.track_event(event()).status == 202
    statuses = [r["status"] for r in ops(standin, "create_event")]
    assert statuses[0] == 200 and statuses[-1] == 202
    assert standin.summary()["events_by_metric"]["Placed Order"] == 1
