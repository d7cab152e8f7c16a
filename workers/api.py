"""Enqueue syncs from another application (or the CLI) without waiting for them.

    from workers.api import enqueue_sync
    run_id = enqueue_sync(days_back=7)          # returns at once; follow it with `ksync show RUN`

The run row is written before the task is sent, so the id can be shown and
polled immediately. Apps that do not import ksync can send the same task by
name: ``celery.send_task("ksync.sync_shop", kwargs={"days_back": 7})``.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from db import history
from db.engine import session_scope
from settings import get_settings

from .sync import WindowError, window_options

__all__ = ["enqueue_sync", "enqueue_catalog_sync", "retry_failed", "WindowError"]


def enqueue_sync(days_back: float | None = None, since: datetime | str | None = None,
                 until: datetime | str | None = None, dry_run: bool = False, shop: str | None = None,
                 trigger: str = "api", connection: str | None = None) -> str:
    """Queue a sync of a connection (``connection``, or the one of ``shop``, or the only one) and
    return its run id.

    Raises ``WindowError`` (a ``ValueError`` naming the option) for a window that cannot be read:
    an unreadable time, ``days_back`` of zero or less, ``since`` not before ``until``, or an
    ``until`` later than now minus the lag (KSYNC_LAG_SECONDS); and ``LookupError`` when the
    connection is unknown or not named among several."""
    from .sync import resolve_connection
    from .tasks import enqueue

    options = window_options(days_back, since, until, settings=get_settings())
    connection_id = resolve_connection(connection, shop)
    return enqueue(connection_id, sync_type="manual", trigger=trigger, options=options, dry_run=dry_run)


def enqueue_catalog_sync(connection: str | None = None, trigger: str = "api") -> str:
    """Queue a catalog sync of a connection (the one named, or the only one); returns its run id."""
    from .catalog import CATALOG, create_run
    from .catalog_tasks import sync_catalog
    from .sync import resolve_connection

    connection_id = resolve_connection(connection)
    run_id = create_run(connection_id, CATALOG, trigger)
    sync_catalog.apply_async(kwargs={"connection": connection_id, "trigger": trigger, "run_id": run_id})
    return run_id


def lane_for(connection_id: str, sync_type: str, options: dict, settings) -> str:
    """``backfill`` for a window longer than KSYNC_BACKFILL_AFTER_SECONDS (a day: far more than an
    incremental window, interval plus lookback, and far less than a first sync's 30 days; so a
    first sync, a reconciliation, a long manual window), else ``sync``: see workers/tasks.py."""
    from db.ledger import get_watermark
    from db.models import utcnow

    from .sync import parse_time
    now = utcnow()
    if sync_type == "reconcile":
        return "backfill"
    if options.get("days_back"):
        start = now - timedelta(days=float(options["days_back"]))
    elif options.get("since"):
        start = parse_time(options["since"])
    else:
        with session_scope() as session:
            watermark = get_watermark(session, connection_id)
        start = (watermark - timedelta(seconds=settings.lookback_seconds)) if watermark else \
            now - timedelta(days=settings.first_run_days)
    end = parse_time(options.get("until")) or now
    return "backfill" if (end - start).total_seconds() > settings.backfill_after_seconds else "sync"


def retry_failed(run_id: str, trigger: str = "cli", connection: str | None = None) -> str:
    """Queue a new run that replays ``run_id``'s failed items, for the run's connection (or
    ``connection``, for a run from before connections); returns the new run's id."""
    from .tasks import retry_failed as retry_task

    with session_scope() as session:
        parent = history.get_run(session, run_id)
        if parent is None:
            raise LookupError(f"no run {run_id}")
        run = history.create_run(session, shop=parent.shop, sync_type="retry", trigger=trigger,
                                 dry_run=False, parent_run_id=parent.id)
        run.connection_id, run.account = parent.connection_id or connection, parent.account
        new_id, parent_id = run.id, parent.id
    retry_task.apply_async((parent_id, new_id))
    return new_id
