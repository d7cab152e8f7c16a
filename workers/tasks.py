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
from sqlalchemy.exc import InterfaceError, OperationalError

from db import history
from db.engine import session_scope
from db.models import SyncRun, utcnow
from settings import ConfigError, get_settings
from tiktok import TikTokAPIError, TikTokAuthError, TikTokSignatureError

from . import clients, delivery, locks, sync
from .app import app
from .planning import EVENT, PROFILE

log = logging.getLogger(__name__)

#: Infrastructure hiccups (database or Redis unreachable) are retried, not recorded as failures.
TRANSIENT = (OperationalError, InterfaceError, redis.ConnectionError, redis.TimeoutError)
BULK_PROFILE_CHUNK = 2500
BULK_EVENT_CHUNK = 1000
#: How often a sync that cannot read TikTok (after the client's own retries) tries again.
SYNC_READ_RETRIES = 5


def _countdown(seconds: float) -> float:
    return min(delivery.max_countdown(), seconds * random.uniform(1.0, 1.3))


@app.task(name="ksync.sync_shop", bind=True, max_retries=None)
def sync_shop(self, shop: str | None = None, trigger: str = "api", sync_type: str = "manual",
              days_back: float | None = None, since: str | None = None, until: str | None = None,
              dry_run: bool = False, run_id: str | None = None) -> str | None:
    """Sync one shop's window to Klaviyo. Returns the run id (None for a duplicate beat).

    Resumable: a redelivered copy (or one the sweeper sends for a stuck run) picks the run up
    at the phase it finds: reads again, dispatches what was planned, or only checks the finish."""
    settings = get_settings()
    options = {k: v for k, v in (("days_back", days_back), ("since", since), ("until", until)) if v}
    run = None
    try:
        run = sync.create_or_get_run(shop=shop, sync_type=sync_type,
                                     trigger=trigger, dry_run=dry_run, options=options, run_id=run_id, settings=settings)
        if run is None:
            return None
        if run.sync_type == "retry":  # a retry run sent here by mistake: it has its own task
            retry_failed.apply_async((run.parent_run_id, run.id))
            return run.id
        window = sync.begin(run.id, self.request.id, settings)
        if window is not None:
            with locks.single_flight(clients.redis_client(), run.shop, ttl=settings.item_lease_seconds) as heartbeat:
                orders, invalid = sync.read_window(clients.tiktok(run.shop), run.id, window, heartbeat)
                heartbeat()
                sync.record_plan(run.id, orders, invalid)
    except locks.Busy:
        raise self.retry(countdown=_countdown(10))
    except TRANSIENT as exc:
        raise self.retry(countdown=_countdown(5), exc=exc)
    except TikTokAPIError as exc:
        if exc.retriable and self.request.retries < SYNC_READ_RETRIES:
            wait = getattr(exc, "retry_after", None) or 30
            raise self.retry(countdown=_countdown(wait), exc=exc)
        sync.stop(run.id, tiktok_reason(exc))
        return run.id
    except (ConfigError, sync.WindowError) as exc:
        if run is None:
            raise
        sync.stop(run.id, str(exc))
        return run.id
    except SoftTimeLimitExceeded:
        if self.request.retries < SYNC_READ_RETRIES:  # a throttled or slow TikTok may do better next time
            raise self.retry(countdown=_countdown(10))
        sync.stop(run.id, f"reading and planning the window took longer than the task time limit "
                          f"({self.soft_time_limit or app.conf.task_soft_time_limit}s), {SYNC_READ_RETRIES + 1} times")
        return run.id
    except Exception as exc:  # a bug or data we cannot store: stop the run visibly, never leave it stuck
        log.exception("sync of %s failed", shop)
        if run is not None:
            sync.stop(run.id, f"{type(exc).__name__}: {exc}")
            return run.id
        raise
    dispatch(run.id)
    sync.finish_if_done(run.id)
    return run.id


def tiktok_reason(exc: TikTokAPIError) -> str:
    """The one line a person needs when the run cannot read TikTok."""
    if exc.retriable:
        return f"TikTok kept failing ({exc.message}) after {SYNC_READ_RETRIES + 1} tries; the next sync tries again"
    if isinstance(exc, TikTokSignatureError):
        return f"TikTok rejected our signature ({exc.message}): check TIKTOK_APP_SECRET"
    if isinstance(exc, TikTokAuthError):
        return (f"TikTok refused the seller's authorization ({exc.message}): refresh or re-authorize "
                "(TIKTOK_ACCESS_TOKEN / TIKTOK_REFRESH_TOKEN)")
    return exc.message


def dispatch(run_id: str) -> int:
    """Send a task for every pending item of a planned run: one per record, or bulk chunks for a
    large window; then mark it dispatched. A run already dispatched (a redelivered sync task)
    is left alone: its items' tasks are out, and the sweeper looks after lost ones."""
    settings = get_settings()
    with session_scope() as session:
        run = session.get(SyncRun, run_id)
        if run is None or run.phase != "planned":
            return 0
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
    sync.mark_dispatched(run_id)
    log.info("dispatched %d profiles and %d events%s", len(profiles), len(events), " in bulk" if bulk else "")
    return len(profiles) + len(events)


def _deliver(task, sender, run_id: str, target) -> None:
    owner = f"{task.request.id}:{secrets.token_hex(4)}"
    try:
        outcome = sender(run_id, target, owner, get_settings())
    except TRANSIENT as exc:
        raise task.retry(countdown=_countdown(5), exc=exc)
    except SoftTimeLimitExceeded:  # out of time outside a send (the sends judge it themselves)
        raise task.retry(countdown=_countdown(5))
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
    """Finish runs whose last task died, re-send the tasks of items whose holder is gone (a lapsed
    lease) or whose message was lost, and restart runs stuck before dispatch: each once per
    staleness period (KSYNC_STALE_ITEM_SECONDS), however often the sweep runs."""
    settings = get_settings()
    now = utcnow()
    with session_scope() as session:
        dispatched = [r.id for r in history.runs_in(session, ["running"], phase="dispatched")]
    finished = sum(1 for run_id in dispatched if sync.finish_if_done(run_id))
    resent = resend_lost_items(now, settings)
    with session_scope() as session:
        stuck = [(r.id, r.sync_type, r.parent_run_id)
                 for r in history.take_stuck_runs(session, now - timedelta(seconds=settings.stale_item_seconds))
                 if r.trigger != "service"]
    for run_id, sync_type, parent_run_id in stuck:
        if sync_type == "retry":
            retry_failed.apply_async((parent_run_id, run_id))
        else:
            sync_shop.apply_async(kwargs={"run_id": run_id})
    summary = {"finished": finished, "resent_items": resent, "restarted_runs": len(stuck)}
    if any(summary.values()):
        log.info("sweep: %s", summary)
    return summary


def resend_lost_items(now, settings) -> int:
    with session_scope() as session:
        items = history.take_lost_items(session, now, settings.stale_item_seconds)
        if not items:
            return 0
        bulk_runs = {r.id for r in session.query(SyncRun).filter(
            SyncRun.id.in_({i.run_id for i in items}), SyncRun.items_total > settings.bulk_threshold)}
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
        events = kind_or_ref == EVENT
        task, chunk = (bulk_create_events, BULK_EVENT_CHUNK) if events else (bulk_import_profiles, BULK_PROFILE_CHUNK)
        for start in range(0, len(ids), chunk):
            task.apply_async((run_id, ids[start:start + chunk]))
    return len(items)


@app.task(name="ksync.retry_failed", bind=True, max_retries=None)
def retry_failed(self, parent_run_id: str, run_id: str) -> str:
    """Replay the failed records of ``parent_run_id`` as run ``run_id``, re-planned from the
    current ledger: a replay sends the latest profile and events, never an older payload, and
    nothing a later run delivered meanwhile. Orders we could not read are fetched from TikTok
    again. Resumable like ``sync_shop``: a redelivered copy picks the run up where it stopped."""
    try:
        with session_scope() as session:
            run = session.get(SyncRun, run_id)
            if run is None or history.is_final(run):
                return run_id
            replanning = run.phase in ("queued", "reading")
            if replanning:
                history.start_run(session, run, self.request.id)
                shop = run.shop
                failed = [(i.kind, i.key) for i in history.failed_items(session, parent_run_id)]
        if replanning:
            sync.replan_failures(run_id, shop, failed, clients.tiktok(shop))
    except TRANSIENT as exc:
        raise self.retry(countdown=_countdown(5), exc=exc)
    except TikTokAPIError as exc:
        if exc.retriable and self.request.retries < SYNC_READ_RETRIES:
            raise self.retry(countdown=_countdown(getattr(exc, "retry_after", None) or 30), exc=exc)
        sync.stop(run_id, tiktok_reason(exc))
        return run_id
    dispatch(run_id)
    sync.finish_if_done(run_id)
    return run_id
