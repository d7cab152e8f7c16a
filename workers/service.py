"""The seed's synchronous service, kept: sync from a script or a shell, without workers.

    service = KlaviyoSyncService()
    profiles, stats = service.sync_customers_from_tiktok(days_back=7)
    events, stats = service.sync_order_events(order_status="COMPLETED", days_back=7)

It uses the same mapping, ledger and sync history as the Celery pipeline: every
call is a run in ``ksync history`` (trigger ``service``; sync types as the seed named
them: ``profile_sync``, ``event_sync``, ``bulk_profile_sync``), every record an item,
and events Klaviyo already confirmed are not sent again. For anything larger
than a quick script, queue a sync instead (``ksync sync`` or ``enqueue_sync``):
the pipeline spreads the work over workers and the bulk endpoints.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone
from decimal import Decimal

from db import history, ledger
from db.engine import session_scope
from klaviyo import (
    KlaviyoAPIError,
    KlaviyoClient,
    KlaviyoEvent,
    KlaviyoProfile,
    KlaviyoSegment,
    LocalTokenBucket,
    ProfileLocation,
    ProfileUpsertResult,
)
from settings import Settings, get_settings
from tiktok import InvalidOrder, Order, TikTokShopClient

from .mapping import PLACED_ORDER
from .payloads import load_event, load_profile, payload_hash
from .planning import ORDER, PROFILE, plan_window
from .sync import finish_if_done, invalid_key, known_state

log = logging.getLogger(__name__)

#: The seed's four default segments, as Klaviyo segment definitions over the properties ksync sets.
VIP_LIFETIME_VALUE = 500
ACTIVE_WITHIN_DAYS = 90
NEW_SUBSCRIBER_DAYS = 30


def _property(name: str, filter_: dict) -> dict:
    return {"type": "profile-property", "property": f"properties['{name}']", "filter": filter_}


DEFAULT_SEGMENTS = {
    "All Customers": [_property("tiktok_order_count",
                                {"type": "numeric", "operator": "greater-than-or-equal", "value": 1})],
    "New Subscribers": [{"type": "profile-marketing-consent", "consent": {
        "channel": "email", "can_receive_marketing": True,
        "consent_status": {"subscription": "subscribed", "filters": [{"field": "status_date", "filter": {
            "type": "date", "operator": "in-the-last", "quantity": NEW_SUBSCRIBER_DAYS, "unit": "day"}}]}}}],
    "VIP Customers": [_property("tiktok_lifetime_value",
                                {"type": "numeric", "operator": "greater-than-or-equal", "value": VIP_LIFETIME_VALUE})],
    "Active Customers": [_property("tiktok_last_order_at",
                                   {"type": "date", "operator": "in-the-last", "quantity": ACTIVE_WITHIN_DAYS,
                                    "unit": "day"})],
}


def _default_limiter(settings: Settings):
    """The fleet-wide limiter when Redis answers (so a script and the workers share one budget)."""
    from sandbox.redis import redis_reachable

    if redis_reachable(settings.redis_url):
        import redis

        from .ratelimit import RedisRateLimiter

        return RedisRateLimiter.for_klaviyo(redis.Redis.from_url(settings.redis_url), settings.klaviyo_api_key)
    return LocalTokenBucket()


class KlaviyoSyncService:
    def __init__(self, api_key: str | None = None, klaviyo: KlaviyoClient | None = None,
                 tiktok: TikTokShopClient | None = None, settings: Settings | None = None, shop: str | None = None):
        self.settings = settings or get_settings()
        if klaviyo is None:
            key = api_key or self.settings.klaviyo_api_key
            klaviyo = KlaviyoClient(key, base_url=self.settings.klaviyo_api_base_url,
                                    revision=self.settings.klaviyo_revision, rate_limiter=_default_limiter(self.settings))
        self.klaviyo = klaviyo
        self._tiktok = tiktok
        self.shop = shop or (tiktok.shop_cipher if tiktok else None) or (self.settings.shop_ciphers or ("",))[0]

    @property
    def tiktok(self) -> TikTokShopClient:
        if self._tiktok is None:
            from .clients import tiktok_from_settings

            self._tiktok = tiktok_from_settings(self.settings, shop_cipher=self.shop)
        return self._tiktok

    # The seed's API ------------------------------------------------------------------------------

    def sync_customers_from_tiktok(self, order_status: str | None = None,
                                   days_back: float = 30) -> tuple[list[KlaviyoProfile], dict]:
        """Upsert one profile per buyer of a placed order in the last ``days_back`` days."""
        run_id, orders, invalid = self._read("profile_sync", order_status, days_back)
        with session_scope() as session:
            plan = plan_window(orders, known_state(session, self.shop, run_id, orders))
        found = len(plan.profiles) + plan.unchanged_profiles + plan.in_flight_elsewhere
        stats = {"orders_fetched": len(orders) + len(invalid), "customers_found": found,
                 "customers_synced": 0, "customers_created": 0, "customers_updated": 0, "errors": []}
        profiles, outcomes = [], []
        for item in plan.profiles:
            try:
                result: ProfileUpsertResult = self.klaviyo.create_or_update_profile(load_profile(item.payload))
            except KlaviyoAPIError as exc:
                stats["errors"].append(f"{item.key}: {exc.message}")
                outcomes.append((item, exc.message))
                continue
            profiles.append(result.profile)
            stats["customers_synced"] += 1
            stats["customers_created" if result.created else "customers_updated"] += 1
            outcomes.append((item, None))
            with session_scope() as session:
                ledger.record_profiles(session, self.shop, run_id,
                                       [(item.key, result.profile_id, payload_hash(item.payload))])
        self._finish(run_id, outcomes, invalid, stats)
        return profiles, stats

    def sync_order_events(self, order_status: str | None = None, days_back: float = 30) -> tuple[list[KlaviyoEvent], dict]:
        """Track the order events of the last ``days_back`` days that Klaviyo has not confirmed yet."""
        run_id, orders, invalid = self._read("event_sync", order_status, days_back)
        with session_scope() as session:
            plan = plan_window(orders, known_state(session, self.shop, run_id, orders))
        stats = {"orders_fetched": len(orders) + len(invalid), "events_tracked": 0, "total_value": Decimal("0"),
                 "events_failed": 0, "errors": []}
        events, outcomes = [], []
        for item in plan.events:
            event = load_event(item.payload)
            try:
                self.klaviyo.track_event(event)
            except KlaviyoAPIError as exc:
                stats["events_failed"] += 1
                stats["errors"].append(f"{item.key}: {exc.message}")
                outcomes.append((item, exc.message))
                continue
            events.append(event)
            stats["events_tracked"] += 1
            if event.metric_name == PLACED_ORDER and event.value is not None:
                stats["total_value"] += Decimal(str(event.value))
            outcomes.append((item, None))
            with session_scope() as session:
                ledger.mark_delivered(session, self.shop, run_id, [item.key])
        self._finish(run_id, outcomes, invalid, stats)
        return events, stats

    def sync_profiles_bulk(self, profiles: list[KlaviyoProfile | dict], batch_size: int = 100) -> tuple[list, dict]:
        """Upsert profiles given by the caller, ``batch_size`` at a time (a batch per log line)."""
        run_id = self._start("bulk_profile_sync", None, None)
        stats = {"total_profiles": len(profiles), "profiles_created": 0, "profiles_updated": 0, "profiles_failed": 0,
                 "errors": []}
        results, rows = [], []
        for start in range(0, len(profiles), batch_size):
            for index, raw in enumerate(profiles[start:start + batch_size], start=start):
                profile = raw if isinstance(raw, KlaviyoProfile) else _profile_from_dict(raw)
                key = profile.external_id or profile.email or profile.phone_number or f"#{index}"
                try:
                    result = self.klaviyo.create_or_update_profile(profile)
                except KlaviyoAPIError as exc:
                    stats["profiles_failed"] += 1
                    stats["errors"].append(f"profiles[{index}] ({key}): {exc.message}")
                    rows.append({"kind": PROFILE, "key": f"{index}:{key}", "status": "failed", "error": exc.message})
                    continue
                results.append(result)
                stats["profiles_created" if result.created else "profiles_updated"] += 1
                rows.append({"kind": PROFILE, "key": f"{index}:{key}", "status": "succeeded"})
            log.info("bulk profile sync: %d of %d done", min(start + batch_size, len(profiles)), len(profiles))
        self._close(run_id, rows, stats)
        return results, stats

    def create_default_segments(self) -> dict[str, KlaviyoSegment]:
        """All Customers, New Subscribers, VIP Customers and Active Customers, as real Klaviyo segments,
        keyed as the seed's were (``all_customers``...; ``segment.list_id`` is the segment's id).

        Idempotent: a segment that already exists under the same name is returned as it is.
        """
        existing = {s.name: s for s in self.klaviyo.get_segments()}
        segments = {}
        for name, conditions in DEFAULT_SEGMENTS.items():
            segment = existing.get(name) or self.klaviyo.create_segment(
                name, {"condition_groups": [{"conditions": conditions}]})
            segments[name.lower().replace(" ", "_")] = segment
        return segments

    # Sync history --------------------------------------------------------------------------------

    def _start(self, sync_type: str, since: datetime | None, until: datetime | None) -> str:
        with session_scope() as session:
            run = history.create_run(session, shop=self.shop, sync_type=sync_type, trigger="service",
                                     window_start=since, window_end=until)
            history.start_run(session, run, None)
            return run.id

    def _read(self, sync_type: str, order_status: str | None, days_back: float) -> tuple[str, list[Order], list]:
        until = datetime.now(timezone.utc)
        since = until - timedelta(days=days_back)
        run_id = self._start(sync_type, since, until)
        orders, invalid = [], []
        for order in self.tiktok.search_orders(since, until, order_status=order_status):
            (invalid if isinstance(order, InvalidOrder) else orders).append(order)
        with session_scope() as session:
            ledger.upsert_orders(session, self.shop, orders)
        return run_id, orders, invalid

    def _finish(self, run_id: str, outcomes, invalid, stats: dict) -> None:
        rows = [{"kind": item.kind, "key": item.key, "payload": item.payload,
                 "status": "failed" if error else "succeeded", "error": error} for item, error in outcomes]
        rows += [{"kind": ORDER, "key": invalid_key(bad), "status": "failed", "error": bad.error} for bad in invalid]
        stats["errors"].extend(bad.error for bad in invalid)
        self._close(run_id, rows, stats)

    def _close(self, run_id: str, rows: list[dict], stats: dict) -> None:
        with session_scope() as session:
            history.insert_items(session, run_id, rows)
            run = history.get_run(session, run_id)
            run.phase = "dispatched"
            run.items_total = len(rows)
            run.options = {"stats": {k: (str(v) if isinstance(v, Decimal) else v) for k, v in stats.items()
                                     if k != "errors"}}
        finish_if_done(run_id)


def _profile_from_dict(data: dict) -> KlaviyoProfile:
    data = dict(data)
    location = data.pop("location", None)
    known = {f for f in KlaviyoProfile.__dataclass_fields__}
    extra = {k: data.pop(k) for k in list(data) if k not in known}
    profile = KlaviyoProfile(**data)
    if location:
        profile.location = location if isinstance(location, ProfileLocation) else ProfileLocation(**location)
    profile.properties = {**profile.properties, **extra}
    return profile
