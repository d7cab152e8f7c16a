"""The sync as Celery tasks. Names are stable: other apps call them with ``send_task``.

    ksync.dispatch_due         beat, every KSYNC_SWEEP_SECONDS: enqueue the connections that are due
    ksync.sync_shop            read a connection's window, plan and record as it streams, dispatch
    ksync.sync_orders          webhooks: fetch the orders noted for a connection (queue ``realtime``)
      ksync.upsert_profile       one profile      (queue ``profiles``)
      ksync.track_event          one event        (queue ``events``)
      ksync.bulk_import_profiles up to 2,500 profiles as a Klaviyo import job   (queue ``bulk``)
      ksync.bulk_create_events   up to 1,000 events in one bulk request          (queue ``bulk``)
    ksync.finish_run           roll the items up into the run, advance the watermark
    ksync.sweep                finish runs, re-send lost tasks, restart stuck runs
    ksync.retry_failed         replay a run's failed items as a new run (a catalog run's: replay_catalog)
    ksync.dispatch_catalog, ksync.sync_catalog, ksync.poll_stock, ksync.replay_catalog:
                               the product catalog and its stock (workers/catalog_tasks.py)

Arguments are ids and bounds (a connection id, a run id), never credentials or objects. Every
task is safe to run twice: items are claimed before sending, and events carry a stable
``unique_id``. Waiting (for a rate-limit token, a held claim, a running bulk job) is a ``retry``
with a countdown of at most a minute, far below the visibility timeout, never a sleep in a
worker slot.

Fairness: a backfill (a window longer than KSYNC_BACKFILL_AFTER_SECONDS, a day: a connection's first sync,
a reconciliation, a long manual window) runs in the ``backfill`` lane: its sync task and every
send task it dispatches go to the ``backfill`` queue. Workers listen to every queue, and kombu
serves a worker's queues round-robin, so one connection's 100,000-order backfill takes its turn
beside the other connections' incremental syncs instead of ahead of them.
"""

from __future__ import annotations

import logging
import random
import secrets
from datetime import datetime, timedelta, timezone

import redis
from billiard.exceptions import SoftTimeLimitExceeded
from sqlalchemy.exc import InterfaceError, OperationalError

from db import connections as store
from db import history
from db.engine import session_scope
from db.models import SyncRun, utcnow
from klaviyo import KlaviyoAPIError, RateLimitTimeout
from settings import ConfigError, get_settings
from tiktok import InvalidOrder, TikTokAPIError, TikTokAuthError, TikTokReauthorizationRequired, TikTokSignatureError

from . import catalog, clients, connections, delivery, locks, reading, realtime, sync
from .app import app
from .planning import EVENT, PROFILE

log = logging.getLogger(__name__)

#: Infrastructure hiccups (database or Redis unreachable) are retried, not recorded as failures.
TRANSIENT = (OperationalError, InterfaceError, redis.ConnectionError, redis.TimeoutError)
#: Realtime runs (one per coalesced webhook fetch: thousands a day) that succeeded are deleted after
#: this many days; their records stay in the ledger and delivered events, and other runs are kept.
REALTIME_RUNS_KEPT_DAYS = 7
BULK_PROFILE_CHUNK = 2500
BULK_EVENT_CHUNK = 1000
#: How often a sync that cannot read TikTok (after the client's own retries) tries again.
SYNC_READ_RETRIES = 5


def _countdown(seconds: float) -> float:
    return min(delivery.max_countdown(), seconds * random.uniform(1.0, 1.3))


def lane_of(options: dict | None) -> str:
    return (options or {}).get("lane") or "sync"


def _queue(lane: str, default: str | None = None) -> dict:
    """apply_async options sending a task to its lane's queue (the default routes for ``sync``)."""
    if lane in ("backfill", "realtime"):
        return {"queue": lane}
    return {"queue": default} if default else {}


@app.task(name="ksync.sync_shop", bind=True, max_retries=None)
def sync_shop(self, connection: str | None = None, trigger: str = "api", sync_type: str = "manual",
              days_back: float | None = None, since: str | None = None, until: str | None = None,
              dry_run: bool = False, run_id: str | None = None, shop: str | None = None) -> str | None:
    """Sync one connection's window to Klaviyo. Returns the run id (None for a duplicate beat).

    ``connection`` names it (``shop``, a cipher or shop id, is still accepted; with neither, the
    only connection). Resumable: a redelivered copy (or one the sweeper sends for a stuck run)
    picks the run up at the phase it finds: reads again, dispatches what was planned, or only
    checks the finish."""
    settings = get_settings()
    options = {k: v for k, v in (("days_back", days_back), ("since", since), ("until", until)) if v}
    run = None
    try:
        run = sync.create_or_get_run(connection_id=connection, shop=shop, sync_type=sync_type, trigger=trigger,
                                     dry_run=dry_run, options=options, run_id=run_id, settings=settings)
        if run is None:
            return None
        if run.sync_type == "retry":  # a retry run sent here by mistake: it has its own task
            retry_failed.apply_async((run.parent_run_id, run.id))
            return run.id
        ctx = connections.context(run.connection_id, fresh=run.phase == "queued")
        if ctx.status != "active":
            sync.skip(run.id, f"connection {ctx.id} is {ctx.status}" + (f": {ctx.status_reason}"
                                                                         if ctx.status_reason else ""))
            return run.id
        window = sync.begin(run.id, self.request.id, settings, ctx.account)
        if window is not None:
            connections.ensure_shop_info(ctx)
            dispatcher = Dispatcher(run.id, lane_of(run.options), settings.bulk_threshold)
            with locks.single_flight(clients.redis_client(), f"connection:{ctx.id}",
                                     ttl=settings.item_lease_seconds) as heartbeat:
                dispatcher.resume()
                reading.stream_window(ctx, run.id, window, heartbeat, dispatcher.add)
                dispatcher.close()
            sync.mark_dispatched(run.id)
    except locks.Busy:
        raise self.retry(countdown=_countdown(10))
    except (*TRANSIENT, RateLimitTimeout) as exc:
        raise self.retry(countdown=_countdown(5), exc=exc)
    except TikTokReauthorizationRequired as exc:
        reason = reauth_reason(run.connection_id, exc)
        connections.needs_reauth(run.connection_id, reason)
        sync.stop(run.id, reason)
        return run.id
    except TikTokAPIError as exc:
        if exc.retriable and self.request.retries < SYNC_READ_RETRIES:
            wait = getattr(exc, "retry_after", None) or 30
            raise self.retry(countdown=_countdown(wait), exc=exc)
        sync.stop(run.id, tiktok_reason(exc))
        return run.id
    except KlaviyoAPIError as exc:  # asking Klaviyo which account the key belongs to
        verdict = delivery.judge(exc, 1, settings)
        if verdict.action == delivery.RETRY and self.request.retries < SYNC_READ_RETRIES:
            raise self.retry(countdown=_countdown(verdict.retry_in or 5), exc=exc)
        sync.stop(run.id, delivery.auth_reason(exc, run.connection_id) if verdict.action == delivery.STOP
                  else f"Klaviyo could not be asked for the key's account: {exc.message}")
        return run.id
    except (ConfigError, sync.WindowError, store.ConnectionError_) as exc:
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
        log.exception("sync of %s failed", connection or shop)
        if run is not None:
            sync.stop(run.id, f"{type(exc).__name__}: {exc}")
            return run.id
        raise
    dispatch(run.id)  # a run an earlier attempt left planned: send what is pending
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


def reauth_reason(connection: str, exc: TikTokAPIError) -> str:
    return (f"TikTok refused the seller's refresh token ({exc.message}): the seller must authorize the app "
            f"again (`ksync connections authorize {connection}`, or new TIKTOK_* tokens for the environment's)")


class Dispatcher:
    """Sends the tasks for a run's items as they are recorded: one task per record for a small
    window, full bulk chunks (1,000 events, 2,500 profiles) once the run has more records than
    KSYNC_BULK_THRESHOLD, so Klaviyo's bulk requests leave full. Holds ids only."""

    def __init__(self, run_id: str, lane: str, threshold: int):
        self.run_id, self.lane, self.threshold = run_id, lane, threshold
        self.pending: dict[str, list[int]] = {PROFILE: [], EVENT: []}
        self.bulk = False
        self.sent = 0

    def resume(self) -> None:
        """A redelivered read: the items an earlier attempt recorded may never have been sent."""
        with session_scope() as session:
            for kind in (PROFILE, EVENT):
                self.pending[kind] += history.item_ids(session, self.run_id, kind)

    def add(self, kind: str, ids: list[int]) -> None:
        self.pending[kind] += ids
        if not self.bulk and sum(map(len, self.pending.values())) > self.threshold:
            self.bulk = True
        if self.bulk:
            self._flush(full_only=True)

    def close(self) -> None:
        self._flush(full_only=False)

    def _flush(self, full_only: bool) -> None:
        with app.producer_or_acquire() as producer:
            if self.bulk:
                for kind, task, size in ((PROFILE, bulk_import_profiles, BULK_PROFILE_CHUNK),
                                         (EVENT, bulk_create_events, BULK_EVENT_CHUNK)):
                    ids = self.pending[kind]
                    while len(ids) >= size or (ids and not full_only):
                        chunk, ids = ids[:size], ids[size:]
                        task.apply_async((self.run_id, chunk), producer=producer, **_queue(self.lane))
                        self.sent += len(chunk)
                    self.pending[kind] = ids
            elif not full_only:
                for kind, task in ((PROFILE, upsert_profile), (EVENT, track_event)):
                    for item_id in self.pending[kind]:
                        task.apply_async((self.run_id, item_id), producer=producer, **_queue(self.lane))
                    self.sent += len(self.pending[kind])
                    self.pending[kind] = []


def dispatch(run_id: str) -> int:
    """Send the tasks of every pending item of a planned run (planned in one go, as a retry is, or
    left planned by an attempt that died before sending), then mark it dispatched. A run already
    dispatched is left alone: its items' tasks are out, and the sweeper looks after lost ones."""
    settings = get_settings()
    with session_scope() as session:
        run = session.get(SyncRun, run_id)
        if run is None or run.phase != "planned":
            return 0
        lane = lane_of(run.options)
    dispatcher = Dispatcher(run_id, lane, settings.bulk_threshold)
    dispatcher.resume()
    dispatcher.bulk = sum(map(len, dispatcher.pending.values())) > settings.bulk_threshold
    dispatcher.close()
    sync.mark_dispatched(run_id)
    log.info("dispatched %d records%s", dispatcher.sent, " in bulk" if dispatcher.bulk else "")
    return dispatcher.sent


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


@app.task(name="ksync.sync_orders", bind=True, max_retries=None)
def sync_orders(self, connection: str) -> str | None:
    """The targeted sync behind webhooks (queue ``realtime``): fetch the orders noted for the
    connection since the last fetch, with Get Order Detail, and send them through the same
    planning and ledger as the poller, as one realtime run (which never moves the watermark).
    See ``workers/realtime.py``."""
    settings = get_settings()
    redis_client = clients.redis_client()
    noted, received_at = realtime.take_orders(redis_client, connection)
    returns = realtime.take_returns(redis_client, connection)
    if not noted and not returns:
        return None
    run_id = None
    try:
        ctx = connections.context(connection)
        if ctx.status != "active":  # the scheduled syncs pick these up once it is active again
            realtime.count(redis_client, "dropped_inactive", len(noted) + len(returns))
            return None
        fresh = sync.newer_than_ledger(ctx.account, noted)
        realtime.count(redis_client, "orders_already_known", len(noted) - len(fresh))
        if not fresh and not returns:
            return None
        run = sync.create_or_get_run(connection_id=connection, sync_type="realtime", trigger="webhook", dry_run=False,
                                     options={"lane": "realtime", "received_at": received_at}, run_id=None,
                                     settings=settings)
        run_id = run.id
        sync.begin(run_id, self.request.id, settings, ctx.account)
        refund_orders = []
        if returns:
            counts = {"items": 0, "already_delivered": 0, "already_failing": 0}
            reading.read_refunds(ctx, run_id, sync.Window(datetime.fromtimestamp(0, timezone.utc), utcnow()), counts,
                                 lambda kind, ids: None, return_ids=[r for r in returns if not r.startswith("order:")])
            refund_orders = sync.stored_orders(run_id, set(returns.values()) - {""})
        fetched = ctx.tiktok.get_orders(fresh) if fresh else []
        realtime.count(redis_client, "tiktok_fetches", -(-len(fresh) // 50) + (1 if returns else 0))
        orders = [o for o in fetched if not isinstance(o, InvalidOrder)
                  and int(o.update_time.timestamp()) >= fresh.get(o.id, 0)]
        invalid = [o for o in fetched if isinstance(o, InvalidOrder)]
        sync.record_plan(run_id, orders + [o for o in refund_orders if o.id not in fresh], invalid,
                         shop_names=reading.shop_names_of(ctx))
        catalog_tasks.poll_after_orders(connection, {li.product_id for o in orders for li in o.line_items})
    except (*TRANSIENT, RateLimitTimeout, TikTokAPIError) as exc:
        if isinstance(exc, TikTokAPIError) and not exc.retriable:
            if run_id:
                sync.stop(run_id, tiktok_reason(exc))
            return run_id
        # put the notes back for the retry (or the next fetch): nothing noted is dropped
        realtime.note_orders(redis_client, connection, noted.items(), received_at or realtime.now())
        for return_id, order_id in returns.items():
            realtime.note_returns(redis_client, connection, None if return_id.startswith("order:") else return_id,
                                  order_id or None)
        if run_id:
            sync.stop(run_id, f"retried by the next fetch ({type(exc).__name__})")
        raise self.retry(countdown=_countdown(2), exc=exc)
    dispatch(run_id)
    sync.finish_if_done(run_id)
    return run_id


@app.task(name="ksync.refresh_authorization", bind=True, max_retries=5)
def refresh_authorization(self, connection: str) -> None:
    """Refresh the seller's tokens now (TikTok warned the authorization is about to expire)."""
    try:
        connections.context(connection).tiktok.refresh_access_token()
    except TikTokReauthorizationRequired as exc:
        connections.needs_reauth(connection, reauth_reason(connection, exc))
    except (*TRANSIENT, TikTokAPIError) as exc:
        raise self.retry(countdown=_countdown(60), exc=exc)


@app.task(name="ksync.dispatch_due", bind=True, max_retries=0)
def dispatch_due(self) -> list[str]:
    """Enqueue every active connection whose incremental sync (or daily reconciliation) is due.
    Connections added, paused or resumed take effect at the next call; beat never restarts."""
    settings = get_settings()
    connections.ensure_env_connections(settings)
    with session_scope() as session:
        due = store.take_due(session, utcnow(), settings.sync_interval_seconds)
    sent = []
    for connection_id, sync_type in due:
        enqueue(connection_id, sync_type=sync_type, trigger="beat")
        sent.append(f"{connection_id}:{sync_type}")
    if sent:
        log.info("due: %s", ", ".join(sent))
    return sent


def enqueue(connection_id: str, *, sync_type: str, trigger: str, options: dict | None = None,
            dry_run: bool = False) -> str | None:
    """Create the run and send its sync task on its lane; returns the run id (None when a beat
    run of this period exists)."""
    from .api import lane_for

    settings = get_settings()
    options = dict(options or {})
    run = sync.create_or_get_run(connection_id=connection_id, sync_type=sync_type, trigger=trigger, dry_run=dry_run,
                                 options=options, run_id=None, settings=settings)
    if run is None:
        return None
    lane = lane_for(connection_id, sync_type, options, settings)
    with session_scope() as session:
        row = session.get(SyncRun, run.id)
        row.options = (row.options or {}) | {"lane": lane}
    sync_shop.apply_async(kwargs={"connection": connection_id, "trigger": trigger, "sync_type": sync_type,
                                  "dry_run": dry_run, "run_id": run.id, **options}, **_queue(lane, "sync"))
    return run.id


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
        stuck = [(r.id, r.sync_type, r.parent_run_id, lane_of(r.options))
                 for r in history.take_stuck_runs(session, now - timedelta(seconds=settings.stale_item_seconds))
                 if r.trigger != "service"]
    for run_id, sync_type, parent_run_id, lane in stuck:
        if sync_type == "retry":
            retry_failed.apply_async((parent_run_id, run_id))
        elif sync_type == catalog.CATALOG:
            catalog_tasks.sync_catalog.apply_async(kwargs={"run_id": run_id})
        elif sync_type == catalog.STOCK:  # a poll that died mid-way: the next poll sends the same changes
            sync.stop(run_id, "the stock poll stopped before it finished; the next poll sends its changes")
        else:
            sync_shop.apply_async(kwargs={"run_id": run_id}, **_queue(lane, "sync"))
    with session_scope() as session:
        pruned = history.prune_runs(session, "realtime", now - timedelta(days=REALTIME_RUNS_KEPT_DAYS))
    summary = {"finished": finished, "resent_items": resent, "restarted_runs": len(stuck), "pruned_runs": pruned}
    if any(summary.values()):
        log.info("sweep: %s", summary)
    return summary


def resend_lost_items(now, settings) -> int:
    with session_scope() as session:
        items = history.take_lost_items(session, now, settings.stale_item_seconds)
        if not items:
            return 0
        runs = {r.id: r for r in session.query(SyncRun).filter(SyncRun.id.in_({i.run_id for i in items}))}
        bulk_runs = {r.id for r in runs.values() if r.items_total > settings.bulk_threshold}
        lanes = {r.id: lane_of(r.options) for r in runs.values()}
    jobs: dict[tuple[str, str], list[int]] = {}
    for item in items:
        if item.kind.startswith("catalog_"):  # a catalog run's rows are sent by its own task, never here
            continue
        if item.external_ref:
            jobs.setdefault((item.run_id, item.external_ref), []).append(item.id)
        elif item.run_id in bulk_runs:
            jobs.setdefault((item.run_id, item.kind), []).append(item.id)
        elif item.kind == PROFILE:
            upsert_profile.apply_async((item.run_id, item.id), **_queue(lanes[item.run_id]))
        elif item.kind == EVENT:
            track_event.apply_async((item.run_id, item.id), **_queue(lanes[item.run_id]))
    for (run_id, kind_or_ref), ids in jobs.items():
        events = kind_or_ref == EVENT
        task, chunk = (bulk_create_events, BULK_EVENT_CHUNK) if events else (bulk_import_profiles, BULK_PROFILE_CHUNK)
        for start in range(0, len(ids), chunk):
            task.apply_async((run_id, ids[start:start + chunk]), **_queue(lanes[run_id]))
    return len(items)


@app.task(name="ksync.retry_failed", bind=True, max_retries=None)
def retry_failed(self, parent_run_id: str, run_id: str) -> str:
    """Replay the failed records of ``parent_run_id`` as run ``run_id``, re-planned from the
    current ledger: a replay sends the latest profile and events, never an older payload, and
    nothing a later run delivered meanwhile. Orders we could not read are fetched from TikTok
    again. Resumable like ``sync_shop``: a redelivered copy picks the run up where it stopped."""
    with session_scope() as session:
        parent = session.get(SyncRun, parent_run_id)
        catalog_parent = parent is not None and parent.sync_type in catalog.CATALOG_SYNC_TYPES
    if catalog_parent:  # a catalog or stock run: its products are read again by the catalog task
        catalog_tasks.replay_catalog.apply_async((parent_run_id, run_id))
        return run_id
    try:
        with session_scope() as session:
            run = session.get(SyncRun, run_id)
            if run is None or history.is_final(run):
                return run_id
            replanning = run.phase in ("queued", "reading")
            connection_id = run.connection_id
            if replanning:
                failed = [(i.kind, i.key) for i in history.failed_items(session, parent_run_id)]
        ctx = connections.context(connection_id)
        if replanning:
            with session_scope() as session:
                run = session.get(SyncRun, run_id)
                history.start_run(session, run, self.request.id)
                run.account = ctx.account
            sync.replan_failures(run_id, failed, ctx, reading.shop_names_of(ctx))
    except (*TRANSIENT, RateLimitTimeout) as exc:
        raise self.retry(countdown=_countdown(5), exc=exc)
    except TikTokAPIError as exc:
        if exc.retriable and self.request.retries < SYNC_READ_RETRIES:
            raise self.retry(countdown=_countdown(getattr(exc, "retry_after", None) or 30), exc=exc)
        sync.stop(run_id, tiktok_reason(exc))
        return run_id
    dispatch(run_id)
    sync.finish_if_done(run_id)
    return run_id


from . import catalog_tasks  # noqa: E402  (registers the catalog tasks with the app)
