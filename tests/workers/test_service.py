"""The seed's synchronous KlaviyoSyncService, against both stand-ins, recorded in sync history."""

from __future__ import annotations

from decimal import Decimal

import pytest

from db import history
from db.engine import session_scope
from klaviyo import KlaviyoClient, KlaviyoProfile, NoRateLimit
from sandbox.klaviyo import KlaviyoStandIn
from sandbox.tiktok import TikTokStandIn
from tiktok import InvalidOrder, TikTokShopClient, parse_order
from workers.mapping import PLACED_ORDER, is_placed, order_events
from workers.service import DEFAULT_SEGMENTS, KlaviyoSyncService


@pytest.fixture
def service(migrated_database):
    with KlaviyoStandIn() as k, TikTokStandIn(orders=120, malformed_ratio=0.02, rate_limit_qps=0) as t:
        klaviyo = KlaviyoClient(k.api_key, base_url=k.url, rate_limiter=NoRateLimit())
        tiktok = TikTokShopClient(t.app_key, t.app_secret, t.access_token, t.shop_cipher, base_url=t.url,
                                  auth_base_url=t.url)
        yield KlaviyoSyncService(klaviyo=klaviyo, tiktok=tiktok), k, t


def valid_orders(t):
    return [o for o in (parse_order(r) for r in t.orders()) if not isinstance(o, InvalidOrder)]


def test_sync_customers_upserts_each_buyer_once_with_the_seeds_stats(service):
    svc, k, t = service
    buyers = {o.user_id for o in valid_orders(t) if is_placed(o)}
    profiles, stats = svc.sync_customers_from_tiktok(days_back=31)
    assert set(stats) == {"orders_fetched", "customers_found", "customers_synced", "customers_created",
                          "customers_updated", "errors"}
    assert stats["orders_fetched"] == 120 and stats["customers_found"] == len(buyers)
    assert stats["customers_synced"] == stats["customers_created"] == len(buyers) == len(profiles)
    assert len(stats["errors"]) == len(t.malformed_ids())
    again, stats = svc.sync_customers_from_tiktok(days_back=31)
    assert again == [] and stats["customers_synced"] == 0 and stats["customers_found"] == len(buyers)
    with session_scope() as s:
        runs = history.list_runs(s)
    assert [r.trigger for r in runs] == ["service", "service"] and runs[-1].status == "partial"
    assert [r.sync_type for r in runs] == ["profile_sync", "profile_sync"]  # the seed's sync types
    assert runs[-1].success_count == len(buyers) and runs[-1].failed_count == len(t.malformed_ids())


def test_sync_order_events_tracks_every_event_once_and_totals_placed_value(service):
    svc, k, t = service
    orders = valid_orders(t)
    expected = [e for o in orders for e in order_events(o)]
    placed_value = sum((e.value for e in expected if e.metric_name == PLACED_ORDER), Decimal("0"))
    events, stats = svc.sync_order_events(days_back=31)
    assert set(stats) == {"orders_fetched", "events_tracked", "total_value", "events_failed", "errors"}
    assert stats["events_tracked"] == len(expected) == len(events) and stats["events_failed"] == 0
    assert stats["total_value"] == placed_value
    assert k.summary()["events"] == len(expected)
    _, again = svc.sync_order_events(days_back=31)
    assert again["events_tracked"] == 0 and k.summary()["duplicates_dropped"]["total"] == 0


def test_sync_profiles_bulk_counts_created_updated_and_failed(service):
    svc, k, _ = service
    profiles = [{"email": f"p{i}@example.com", "first_name": f"P{i}", "vip": i % 2 == 0} for i in range(7)]
    profiles.append({"email": "not an email"})
    results, stats = svc.sync_profiles_bulk(profiles, batch_size=3)
    assert set(stats) == {"total_profiles", "profiles_created", "profiles_updated", "profiles_failed", "errors"}
    assert (stats["total_profiles"], stats["profiles_created"], stats["profiles_failed"]) == (8, 7, 1)
    assert "profiles[7]" in stats["errors"][0] and "email" in stats["errors"][0]
    _, stats = svc.sync_profiles_bulk([KlaviyoProfile(email="p0@example.com", last_name="Zero")])
    assert stats["profiles_updated"] == 1
    assert {p["properties"].get("vip") for p in k.state()["profiles"] if p["email"] == "p2@example.com"} == {True}


def test_default_segments_are_real_segments_created_once(service):
    svc, k, _ = service
    segments = svc.create_default_segments()
    assert list(segments) == ["all_customers", "new_subscribers", "vip_customers", "active_customers"]
    assert [s.name for s in segments.values()] == list(DEFAULT_SEGMENTS)
    assert all(s.definition["condition_groups"] for s in segments.values())
    assert {k: s.segment_id for k, s in svc.create_default_segments().items()} == \
        {k: s.segment_id for k, s in segments.items()}
    assert len(k.state()["segments"]) == 4
    svc.sync_customers_from_tiktok(days_back=31)
    everyone = segments["all_customers"]
    members = {p.profile_id for p in svc.klaviyo.get_segment_profiles(everyone.segment_id)}
    buyers = {p["id"] for p in k.state()["profiles"] if p["properties"].get("tiktok_order_count", 0) >= 1}
    assert members == buyers and members


def test_a_service_call_never_moves_the_scheduled_syncs_watermark(service):
    # Defect: sync_customers_from_tiktok(order_status="COMPLETED") on a fresh database set the orders
    # watermark to now with 0 events sent; the next scheduled sync then skipped every other order.
    from db.ledger import get_watermark

    svc, k, t = service
    svc.sync_customers_from_tiktok(order_status="COMPLETED", days_back=31)
    svc.sync_order_events(order_status="COMPLETED", days_back=31)
    with session_scope() as s:
        assert get_watermark(s, t.shop_cipher) is None
        assert {r.status for r in history.list_runs(s)} <= {"succeeded", "partial"}
