"""The sync as Celery tasks. Names are stable: other apps call them with ``send_task``.

    ksync.sync_shop            read the window, plan, record (single-flight per shop), dispatch
      ksync.upsert_profile       one profile      (queue ``profiles``)
      ksync.track_event          one event        (queue ``events``)
      ksync.bulk_import_profiles up to 2,500 profiles as a Klaviyo import job   (queue ``bulk``)
      ksync.bulk_create_events   up to 1,000 events in one bulk request          (queue ``bulk``)
    ksync.finish_run           roll the items up into the run, advance the watermark
    ksync.sweep                every minute: finish runs, re-send lost tasks, restart stuck runs
    ksync.retry_failed         replay a run's failed items as a new run

Arguments are ids and bounds, never credentials or objects. Every task is safe
to run twice: items are claimed before sending, and events carry a stable
``unique_id``. Waiting (for a rate-limit token, a held claim, a running bulk job)
is a ``retry`` with a countdown of at most a minute, far below the visibility
timeout, never a sleep in a worker slot.
"""

from __future__ import annotations

import logging
import random
import secrets
from datetime import timedelta

import redis
from billiard.exceptions import SoftTimeLimitExceeded
from sqlalchemy import update
from sqlalchemy.exc import InterfaceError, OperationalError

from db import history, ledger
from db.engine import session_scope
from db.models import SyncItem, SyncRun, utcnow
from settings import ConfigError, get_settings
from tiktok import InvalidOrder, TikTokAPIError

from . import clients, delivery, locks, sync
from .app import app
from .payloads import payload_hash
from .planning import EVENT, ORDER, PROFILE

log = logging.getLogger(__name__)

#: Infrastructure hiccups (database or Redis unreachable) are retried, not recorded as failures.
TRANSIENT = (OperationalError, InterfaceError, redis.ConnectionError, redis.TimeoutError)
BULK_PROFILE_CHUNK = 2500
BULK_EVENT_CHUNK = 1000
#: How often a sync that cannot read TikTok (after the client's own retries) tries again.
SYNC_READ_RETRIES = 5


def _countdown(seconds: float) -> float:
    return min(delivery.max_countdown(), seconds * random.uniform(1.0, 1.3))


def default_shop() -> str:
    shops = get_settings().shop_ciphers
    if not shops:
        raise ConfigError("TIKTOK_SHOP_CIPHER is not set; it names the shop(s) to sync")
    return shops[0]


@app.task(name="ksync.sync_shop", bind=True, max_retries=None)
def sync_shop(self, shop: str | None = None, trigger: str = "api", sync_type: str = "manual",
              days_back: float | None = None, since: str | None = None, until: str | None = None,
              dry_run: bool = False, run_id: str | None = None) -> str | None:
    """Sync one shop's window to Klaviyo. Returns the run id (None for a duplicate beat)."""
    settings = get_settings()
    shop = shop or default_shop()
    options = {k: v for k, v in (("days_back", days_back), ("since", since), ("until", until)) if v}
    run = None
    try:
        run = sync.create_or_get_run(shop=shop, sync_type=sync_type, trigger=trigger, dry_run=dry_run,
                                     options=options, run_id=run_id, settings=settings)
        if run is None:
            return None
        if run.phase == "dispatched":  # redelivered after planning: only the sending is left
            dispatch(run.id)
            sync.finish_if_done(run.id)
            return run.id
        window = sync.begin(run.id, self.request.id, settings)
        if window is None:
            return run.id
        with locks.single_flight(clients.redis_client(), shop, ttl=settings.item_lease_seconds) as heartbeat:
            orders, invalid = sync.read_window(clients.tiktok(shop), run.id, window, heartbeat)
            heartbeat()
            sync.record_plan(run.id, orders, invalid)
    except locks.Busy:
        raise self.retry(countdown=_countdown(10))
    except TRANSIENT as exc:
        raise self.retry(countdown=_countdown(5), exc=exc)
    except TikTokAPIError as exc:
        if exc.retriable and self.request.retries < SYNC_READ_RETRIES:
            raise self.retry(countdown=_countdown(30), exc=exc)
        sync.fail(run.id, exc.message)
        return run.id
    except ConfigError as exc:
        sync.fail(run.id, str(exc))
        return run.id
    except SoftTimeLimitExceeded:
        if self.request.retries < SYNC_READ_RETRIES:  # a throttled or slow TikTok may do better next time
            raise self.retry(countdown=_countdown(10))
        sync.fail(run.id, f"reading and planning the window took longer than the task time limit "
                          f"({self.soft_time_limit or app.conf.task_soft_time_limit}s), {SYNC_READ_RETRIES + 1} times")
        return run.id
    except Exception as exc:  # a bug or data we cannot store: fail the run visibly, never leave it stuck
        log.exception("sync of %s failed", shop)
        if run is not None:
            sync.fail(run.id, f"{type(exc).__name__}: {exc}")
            return run.id
        raise
    dispatch(run.id)
    sync.finish_if_done(run.id)
    return run.id


def dispatch(run_id: str) -> int:
    """Send a task for every pending item: one per record, or bulk chunks for a large window."""
    settings = get_settings()
    with session_scope() as session:
        profiles = history.item_ids(session, run_id, PROFILE)
        events = history.item_ids(session, run_id, EVENT)
    bulk = len(profiles) + len(events) > settings.bulk_threshold
    with app.producer_or_acquire() as producer:
        if bulk:
            for start in range(0, len(profiles), BULK_PROFILE_CHUNK):
                bulk_import_profiles.apply_async((run_id, profiles[start:start + BULK_PROFILE_CHUNK]), producer=producer)
            for start in range(0, len(events), BULK_EVENT_CHUNK):
                bulk_create_events.apply_async((run_id, events[start:start + BULK_EVENT_CHUNK]), producer=producer)
        else:
            for item_id in profiles:
                upsert_profile.apply_async((run_id, item_id), producer=producer)
            for item_id in events:
                track_event.apply_async((run_id, item_id), producer=producer)
    log.info("dispatched %d profiles and %d events%s", len(profiles), len(events), " in bulk" if bulk else "")
    return len(profiles) + len(events)


def _deliver(task, sender, run_id: str, target) -> None:
    owner = f"{task.request.id}:{secrets.token_hex(4)}"
    try:
        outcome = sender(run_id, target, owner, get_settings())
    except TRANSIENT as exc:
        raise task.retry(countdown=_countdown(5), exc=exc)
    for item_id in outcome.resend_single:
        upsert_profile.apply_async((run_id, item_id))
    if outcome.retry_in is not None:
        raise task.retry(countdown=outcome.retry_in)


@app.task(name="ksync.upsert_profile", bind=True, max_retries=None)
def upsert_profile(self, run_id: str, item_id: int) -> None:
    _deliver(self, delivery.send_profile, run_id, item_id)


@app.task(name="ksync.track_event", bind=True, max_retries=None)
def track_event(self, run_id: str, item_id: int) -> None:
    _deliver(self, delivery.send_event, run_id, item_id)


@app.task(name="ksync.bulk_import_profiles", bind=True, max_retries=None)
def bulk_import_profiles(self, run_id: str, item_ids: list[int]) -> None:
    _deliver(self, delivery.send_profile_batch, run_id, item_ids)


@app.task(name="ksync.bulk_create_events", bind=True, max_retries=None)
def bulk_create_events(self, run_id: str, item_ids: list[int]) -> None:
    _deliver(self, delivery.send_event_batch, run_id, item_ids)


@app.task(name="ksync.finish_run", bind=True, max_retries=None)
def finish_run(self, run_id: str) -> str | None:
    try:
        run = sync.finish_if_done(run_id)
    except TRANSIENT as exc:
        raise self.retry(countdown=_countdown(5), exc=exc)
    return run.status if run else None


@app.task(name="ksync.sweep", bind=True, max_retries=0)
def sweep(self) -> dict:
    """Finish runs whose last task died, re-send tasks for items nobody touched in a while
    (their message was lost, e.g. a Redis restart without AOF), and restart stuck runs."""
    settings = get_settings()
    stale_before = utcnow() - timedelta(seconds=settings.stale_item_seconds)
    with session_scope() as session:
        dispatched = [r.id for r in history.runs_in(session, ["running"], phase="dispatched")]
        stuck = [r.id for r in history.runs_in(session, ["queued", "running"])
                 if r.phase in ("queued", "reading") and r.updated_at < stale_before]
    finished = sum(1 for run_id in dispatched if sync.finish_if_done(run_id))
    resent = resend_stale_items(stale_before)
    for run_id in stuck:
        sync_shop.apply_async(kwargs={"run_id": run_id})
    summary = {"finished": finished, "resent_items": resent, "restarted_runs": len(stuck)}
    if any(summary.values()):
        log.info("sweep: %s", summary)
    return summary


def resend_stale_items(stale_before) -> int:
    with session_scope() as session:
        items = history.stale_items(session, stale_before)
        bulk_runs = {r.id for r in session.query(SyncRun).filter(
            SyncRun.id.in_({i.run_id for i in items}), SyncRun.items_total > get_settings().bulk_threshold)}
        jobs: dict[tuple[str, str], list[int]] = {}
        for item in items:
            if item.external_ref:
                jobs.setdefault((item.run_id, item.external_ref), []).append(item.id)
            elif item.run_id in bulk_runs:
                jobs.setdefault((item.run_id, item.kind), []).append(item.id)
            elif item.kind == PROFILE:
                upsert_profile.apply_async((item.run_id, item.id))
            elif item.kind == EVENT:
                track_event.apply_async((item.run_id, item.id))
        for (run_id, kind_or_ref), ids in jobs.items():
            task = bulk_create_events if kind_or_ref == EVENT else bulk_import_profiles
            chunk = BULK_EVENT_CHUNK if kind_or_ref == EVENT else BULK_PROFILE_CHUNK
            for start in range(0, len(ids), chunk):
                task.apply_async((run_id, ids[start:start + chunk]))
        if items:
            session.execute(update(SyncItem).where(SyncItem.id.in_([i.id for i in items]))
                            .values(updated_at=utcnow()).execution_options(synchronize_session=False))
    return len(items)


@app.task(name="ksync.retry_failed", bind=True, max_retries=None)
def retry_failed(self, parent_run_id: str, run_id: str) -> str:
    """Replay the failed items of ``parent_run_id`` as run ``run_id``: records Klaviyo refused
    are sent again as planned; orders we could not read are fetched again from TikTok."""
    try:
        with session_scope() as session:
            run = session.get(SyncRun, run_id)
            if run is None or run.phase != "queued":
                return run_id
            history.start_run(session, run, self.request.id)
            failed = history.failed_items(session, parent_run_id)
            shop = run.shop
            # what a later run delivered meanwhile is not sent again: events Klaviyo confirmed,
            # profiles whose latest sent payload is this one
            delivered = ledger.delivered_keys(session, [i.key for i in failed if i.kind == EVENT])
            current = ledger.profile_hashes(session, [i.key for i in failed if i.kind == PROFILE])
            replay = [{"kind": i.kind, "key": i.key, "payload": i.payload} for i in failed
                      if (i.kind == EVENT and i.key not in delivered)
                      or (i.kind == PROFILE and current.get(i.key) != payload_hash(i.payload))]
            order_ids = [i.key for i in failed if i.kind == ORDER]
        orders, invalid = [], []
        for order in clients.tiktok(shop).get_orders(order_ids) if order_ids else []:
            (invalid if isinstance(order, InvalidOrder) else orders).append(order)
        sync.record_plan(run_id, orders, invalid, extra_items=replay)
    except TRANSIENT as exc:
        raise self.retry(countdown=_countdown(5), exc=exc)
    except TikTokAPIError as exc:
        sync.fail(run_id, exc.message)
        return run_id
    dispatch(run_id)
    sync.finish_if_done(run_id)
    return run_id
