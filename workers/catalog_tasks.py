"""The catalog as Celery tasks (registered through ``workers.tasks``, which imports this module).

    ksync.dispatch_catalog  beat, every KSYNC_SWEEP_SECONDS: per active connection, a catalog sync
                            every ``sync_interval_seconds`` and a stock poll every KSYNC_STOCK_POLL_SECONDS
    ksync.sync_catalog      read a connection's products window, plan against catalog_entries, send
                            the bulk catalog jobs, finish the run, move the ``products`` watermark
    ksync.poll_stock        Inventory Search for the connection's catalog products (or the products
                            named), stock-only variant updates for what changed
    ksync.replay_catalog    ``retry_failed`` of a catalog run: read the failed products again and send

Errors follow the pipeline's rules: a 429, 5xx or network error (TikTok's or Klaviyo's) is a task
retry, never a recorded failure; a 401/403 stops the run with one reason and leaves the watermark;
a row Klaviyo refuses is a failed item naming the record and field (``ksync retry-failed``).
One catalog read per connection at a time (a Redis lock); a stock poll takes the same lock, so a
poll never races a sync writing the same variants.
"""

from __future__ import annotations

import logging

from billiard.exceptions import SoftTimeLimitExceeded
from celery.exceptions import Retry

from db import history
from db.engine import session_scope
from db.models import SyncRun
from klaviyo import KlaviyoAPIError, RateLimitTimeout
from settings import get_settings
from tiktok import TikTokAPIError, TikTokReauthorizationRequired

from . import catalog, clients, connections, delivery, locks, sync
from .app import app
from .catalog_send import VARIANT_KIND, record_plan, send_plan
from .schedules import period_key

log = logging.getLogger(__name__)

#: How often a catalog task retries a TikTok or Klaviyo answer that says "try again" (or running
#: out of time: each try resumes after the batches that landed).
CATALOG_RETRIES = 5
#: A catalog read calls Get Product per changed product and waits on bulk jobs: longer than a send
#: task's limit (celeryconfig), still well inside the visibility timeout so the broker never hands
#: the message to a second worker while the first still runs.
CATALOG_TIME_LIMIT = max(60, min(900, get_settings().visibility_timeout_seconds - 60))


def _countdown(seconds: float) -> float:
    from .tasks import _countdown as countdown

    return countdown(seconds)


def _fail(task, run_id: str | None, connection_id: str, exc: Exception, settings,
          kwargs: dict | None = None) -> str | None:
    """Retry (with ``kwargs``, e.g. naming the run it created; else as sent), or stop the run with
    one reason (see the module docstring)."""
    from .tasks import TRANSIENT, reauth_reason, tiktok_reason

    if isinstance(exc, locks.Busy):
        raise task.retry(countdown=_countdown(10), kwargs=kwargs)
    if isinstance(exc, (*TRANSIENT, RateLimitTimeout, TimeoutError)):
        raise task.retry(countdown=_countdown(5), exc=exc, kwargs=kwargs)
    if isinstance(exc, SoftTimeLimitExceeded):
        if task.request.retries < CATALOG_RETRIES:
            raise task.retry(countdown=_countdown(5), kwargs=kwargs)
        exc = TimeoutError(f"the catalog task ran out of time ({CATALOG_TIME_LIMIT} s) {CATALOG_RETRIES + 1} times")
    if isinstance(exc, TikTokReauthorizationRequired):
        reason = reauth_reason(connection_id, exc)
        connections.needs_reauth(connection_id, reason)
    elif isinstance(exc, TikTokAPIError):
        if exc.retriable and task.request.retries < CATALOG_RETRIES:
            raise task.retry(countdown=_countdown(getattr(exc, "retry_after", None) or 30), exc=exc, kwargs=kwargs)
        reason = tiktok_reason(exc)
    elif isinstance(exc, KlaviyoAPIError):
        verdict = delivery.judge(exc, task.request.retries + 1, settings, connection_id)
        if verdict.action == delivery.RETRY:
            raise task.retry(countdown=_countdown(verdict.retry_in or 5), exc=exc, kwargs=kwargs)
        reason = verdict.error or exc.message
    elif isinstance(exc, TimeoutError):
        reason = str(exc)
    else:
        log.exception("catalog task of %s failed", connection_id)
        reason = f"{type(exc).__name__}: {exc}"
    if run_id:
        sync.stop(run_id, reason)
    return run_id


@app.task(name="ksync.sync_catalog", bind=True, max_retries=None, time_limit=CATALOG_TIME_LIMIT,
          soft_time_limit=CATALOG_TIME_LIMIT - 10)
def sync_catalog(self, connection: str | None = None, trigger: str = "api", run_id: str | None = None) -> str | None:
    """Bring the connection's Klaviyo catalog in step with its TikTok products. Returns the run id."""
    settings = get_settings()
    if run_id is None:
        run_id = catalog.create_run(sync.resolve_connection(connection), catalog.CATALOG, trigger)
    with session_scope() as session:
        run = session.get(SyncRun, run_id)
        connection = run.connection_id
    try:
        ctx = connections.context(connection)
        if ctx.status != "active":
            sync.skip(run_id, f"connection {ctx.id} is {ctx.status}")
            return run_id
        window = catalog.begin(run_id, self.request.id, ctx.account, settings)
        if window is None:
            return run_id
        connections.ensure_shop_info(ctx)
        with locks.single_flight(clients.redis_client(), f"catalog:{ctx.id}",
                                 ttl=max(settings.item_lease_seconds, 300)) as heartbeat:
            catalog.sync(ctx, run_id, window, settings, heartbeat=heartbeat)
    except Exception as exc:  # noqa: BLE001 - every cause is judged in _fail
        return _fail(self, run_id, connection, exc, settings,
                     kwargs={"connection": connection, "trigger": trigger, "run_id": run_id})
    catalog.finish(run_id)
    return run_id


@app.task(name="ksync.replay_catalog", bind=True, max_retries=None, time_limit=CATALOG_TIME_LIMIT,
          soft_time_limit=CATALOG_TIME_LIMIT - 10)
def replay_catalog(self, parent_run_id: str, run_id: str) -> str:
    """``ksync retry-failed`` of a catalog or stock run: the failed products, read again and planned
    against what the catalog holds now (a replay never moves the watermark)."""
    settings = get_settings()
    with session_scope() as session:
        run = session.get(SyncRun, run_id)
        if run is None or history.is_final(run):
            return run_id
        connection = run.connection_id
    try:
        ctx = connections.context(connection)
        with session_scope() as session:
            run = session.get(SyncRun, run_id)
            history.start_run(session, run, self.request.id)
            run.account = ctx.account
        products = catalog.failed_products(parent_run_id)
        with locks.single_flight(clients.redis_client(), f"catalog:{ctx.id}", ttl=300) as heartbeat:
            catalog.sync(ctx, run_id, None, settings, product_ids=products, heartbeat=heartbeat)
    except Exception as exc:  # noqa: BLE001
        return _fail(self, run_id, connection, exc, settings)
    catalog.finish(run_id)
    return run_id


@app.task(name="ksync.poll_stock", bind=True, max_retries=None)
def poll_stock(self, connection: str, product_ids: list[str] | None = None, trigger: str = "beat",
               run_id: str | None = None) -> str | None:
    """Push the stock of the connection's catalog variants that changed (a restock is a change from
    0 to more). A run is recorded only when something changed."""
    settings = get_settings()
    try:
        ctx = connections.context(connection)
        if ctx.status != "active":
            return None
        with locks.single_flight(clients.redis_client(), f"catalog:{ctx.id}", ttl=120):
            plan, restocked = catalog.poll_stock(ctx, product_ids)
            if plan.empty:
                return None
            run_id = run_id or catalog.create_run(ctx.id, catalog.STOCK, trigger)
            catalog.begin(run_id, self.request.id, ctx.account, settings)
            record_plan(run_id, plan)
            send_plan(ctx.klaviyo, run_id, ctx.account, ctx.id, plan)
    except Exception as exc:  # noqa: BLE001
        try:
            return _fail(self, run_id, connection, exc, settings)
        except Retry:  # the retry polls afresh (and records its own run)
            if run_id:
                sync.stop(run_id, f"retried by the poll's next attempt ({type(exc).__name__})")
            raise
    if restocked:
        log.info("restocked in %s: %s", ctx.id, ", ".join(restocked[:20]))
    catalog.finish(run_id)
    return run_id


@app.task(name="ksync.dispatch_catalog", bind=True, max_retries=0)
def dispatch_catalog(self) -> list[str]:
    """Enqueue each active connection's catalog sync once per ``sync_interval_seconds`` and its stock
    poll once per KSYNC_STOCK_POLL_SECONDS. A catalog run is unique per (connection, period); a
    stock poll is taken per period with a Redis key, so two beats never double either."""
    from db.models import Connection

    settings = get_settings()
    redis_client = clients.redis_client()
    with session_scope() as session:
        active = [(c.id, int((c.options or {}).get("sync_interval_seconds") or settings.sync_interval_seconds))
                  for c in session.query(Connection).filter(Connection.status == "active")]
    sent = []
    for connection_id, interval in active:
        run_id = catalog.create_run(connection_id, catalog.CATALOG, "beat", period=period_key(interval))
        if run_id:
            sync_catalog.apply_async(kwargs={"connection": connection_id, "trigger": "beat", "run_id": run_id})
            sent.append(f"{connection_id}:catalog")
        poll = max(1, settings.stock_poll_seconds)
        if redis_client.set(f"ksync:stock_poll:{connection_id}:{period_key(poll)}", "1", nx=True, ex=poll * 2):
            poll_stock.apply_async(kwargs={"connection": connection_id})
            sent.append(f"{connection_id}:stock")
    return sent


def poll_after_orders(connection: str, product_ids: set[str]) -> None:
    """After a webhook's order sync: poll the stock of the products those orders name (a sale or a
    cancellation moves stock), if the catalog holds them."""
    if product_ids:
        poll_stock.apply_async(kwargs={"connection": connection, "product_ids": sorted(product_ids),
                                       "trigger": "webhook"})


__all__ = ["sync_catalog", "replay_catalog", "poll_stock", "dispatch_catalog", "poll_after_orders", "VARIANT_KIND"]
