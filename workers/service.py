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

import time
from dataclasses import dataclass

from sqlalchemy import update

from db import history
from db.engine import session_scope
from db.models import SyncItem
from klaviyo import (
    KlaviyoAPIError,
    KlaviyoClient,
    KlaviyoEvent,
    KlaviyoProfile,
    KlaviyoSegment,
    LocalTokenBucket,
    ProfileLocation,
)
from settings import Settings, get_settings
from tiktok import InvalidOrder, TikTokShopClient

from . import delivery
from .mapping import PLACED_ORDER
from .payloads import load_event
from .planning import EVENT, PROFILE
from .sync import finish_if_done, record_plan

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


def _shared_limiter(settings: Settings, account: str):
    """The fleet-wide limiter of the Klaviyo account when Redis answers, so a script and the workers
    share one budget; None otherwise (the client keeps its per-process bucket)."""
    import redis

    from .ratelimit import RedisRateLimiter, klaviyo_limits

    client = redis.Redis.from_url(settings.redis_url, socket_connect_timeout=1)
    try:
        client.ping()
    except redis.RedisError:
        return None
    return RedisRateLimiter(client, klaviyo_limits(settings.rate_limit_scale), account=account)


class KlaviyoSyncService:
    def __init__(self, api_key: str | None = None, klaviyo: KlaviyoClient | None = None,
                 tiktok: TikTokShopClient | None = None, settings: Settings | None = None, shop: str | None = None):
        self.settings = settings or get_settings()
        self._own_klaviyo = klaviyo is None
        if klaviyo is None:
            key = api_key or self.settings.klaviyo_api_key
            klaviyo = KlaviyoClient(key, base_url=self.settings.klaviyo_api_base_url,
                                    revision=self.settings.klaviyo_revision, rate_limiter=LocalTokenBucket())
        self.klaviyo = klaviyo
        self._ctx = None
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
        run_id, plan, invalid = self._plan("profile_sync", order_status, days_back, PROFILE)
        found = len(plan.profiles) + plan.unchanged_profiles + plan.in_flight_elsewhere
        stats = {"orders_fetched": len(plan.orders) + len(invalid), "customers_found": found,
                 "customers_synced": 0, "customers_created": 0, "customers_updated": 0, "errors": []}
        profiles = []
        for item, outcome, error in self._send(run_id, PROFILE):
            if error:
                stats["errors"].append(f"{item.key}: {error}")
                continue
            stats["customers_synced"] += 1
            if outcome.result is not None:
                profiles.append(outcome.result.profile)
                stats["customers_created" if outcome.result.created else "customers_updated"] += 1
        stats["errors"].extend(bad.error for bad in invalid)
        self._close(run_id, [], stats)
        return profiles, stats

    def sync_order_events(self, order_status: str | None = None, days_back: float = 30) -> tuple[list[KlaviyoEvent], dict]:
        """Track the order events of the last ``days_back`` days that Klaviyo has not confirmed yet."""
        run_id, plan, invalid = self._plan("event_sync", order_status, days_back, EVENT)
        stats = {"orders_fetched": len(plan.orders) + len(invalid), "events_tracked": 0, "total_value": Decimal("0"),
                 "events_failed": 0, "errors": []}
        events = []
        for item, outcome, error in self._send(run_id, EVENT):
            if error:
                stats["events_failed"] += 1
                stats["errors"].append(f"{item.key}: {error}")
                continue
            event = load_event(item.payload)
            events.append(event)
            stats["events_tracked"] += 1
            if event.metric_name == PLACED_ORDER and event.value is not None:
                stats["total_value"] += Decimal(str(event.value))
        stats["errors"].extend(bad.error for bad in invalid)
        self._close(run_id, [], stats)
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

    # The engine, driven inline ------------------------------------------------------------------

    def _context(self):
        """What the engine's delivery needs for this service's runs: its own clients."""
        if self._ctx is None:
            from .connections import Options

            account = self.klaviyo.get_accounts()[0].account_id
            shared = _shared_limiter(self.settings, account) if self._own_klaviyo else None
            if shared is not None:
                self.klaviyo.http.rate_limiter = shared
            self._ctx = ServiceContext(id="", shop=self.shop, shop_name=self.shop, account=account,
                                       options=Options.of({}, self.settings), klaviyo=self.klaviyo, tiktok=self.tiktok)
        return self._ctx

    def _start(self, sync_type: str, since: datetime | None, until: datetime | None) -> str:
        ctx = self._context()
        with session_scope() as session:
            run = history.create_run(session, shop=self.shop, sync_type=sync_type, trigger="service",
                                     window_start=since, window_end=until)
            history.start_run(session, run, None)
            run.account = ctx.account
            run_id = run.id
        delivery.bind(run_id, ctx)
        return run_id

    def _plan(self, sync_type: str, order_status: str | None, days_back: float, kind: str):
        """Read the window (with the seed's status filter), then plan and record it with the engine;
        only ``kind`` items are kept. Such a run never moves the scheduled sync's watermark."""
        until = datetime.now(timezone.utc)
        since = until - timedelta(days=days_back)
        run_id = self._start(sync_type, since, until)
        orders, invalid = [], []
        for order in self.tiktok.search_orders(since, until, order_status=order_status):
            (invalid if isinstance(order, InvalidOrder) else orders).append(order)
        plan = record_plan(run_id, orders, invalid, shop_names={self.shop: self.shop})
        with session_scope() as session:
            session.execute(update(SyncItem).where(SyncItem.run_id == run_id, SyncItem.kind.in_((PROFILE, EVENT)),
                                                   SyncItem.kind != kind, SyncItem.status == "pending")
                            .values(status="skipped").execution_options(synchronize_session=False))
        return run_id, plan, invalid

    def _send(self, run_id: str, kind: str):
        """Send the run's pending ``kind`` items one by one through the engine's delivery (claims,
        the error split, the ledger), waiting out retries inline: this is a script, not a worker.
        Yields (item, outcome, error or None) for each."""
        send = delivery.send_profile if kind == PROFILE else delivery.send_event
        with session_scope() as session:
            ids = history.item_ids(session, run_id, kind)
        for item_id in ids:
            while True:
                outcome = send(run_id, item_id, f"service:{run_id}:{item_id}:{time.monotonic_ns()}", self.settings)
                if outcome.retry_in is None:
                    break
                time.sleep(min(outcome.retry_in, 60))
            with session_scope() as session:
                item = session.get(SyncItem, item_id)
            yield item, outcome, (item.error if item.status in ("failed", "unsent") else None)

    def _close(self, run_id: str, rows: list[dict], stats: dict) -> None:
        with session_scope() as session:
            history.insert_items(session, run_id, rows)
            run = history.get_run(session, run_id)
            run.phase = "dispatched"
            run.items_total = sum(history.item_counts(session, run_id).values())
            run.options = (run.options or {}) | {"stats": {k: (str(v) if isinstance(v, Decimal) else v)
                                                           for k, v in stats.items() if k != "errors"}}
        finish_if_done(run_id)
        delivery.unbind(run_id)


@dataclass
class ServiceContext:
    """The service's stand-in for a connection's context: its own clients, no connection row."""

    id: str
    shop: str
    shop_name: str
    account: str
    options: object
    klaviyo: KlaviyoClient
    tiktok: TikTokShopClient
    status: str = "active"


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
