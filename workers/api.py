"""Enqueue syncs from another application (or the CLI) without waiting for them.

    from workers.api import enqueue_sync
    run_id = enqueue_sync(days_back=7)          # returns at once; follow it with `ksync show RUN`

The run row is written before the task is sent, so the id can be shown and
polled immediately. Apps that do not import ksync can send the same task by
name: ``celery.send_task("ksync.sync_shop", kwargs={"days_back": 7})``.
"""

from __future__ import annotations

from datetime import datetime

from db import history
from db.engine import session_scope
from settings import get_settings

from .sync import WindowError, window_options

__all__ = ["enqueue_sync", "retry_failed", "WindowError"]


def enqueue_sync(days_back: float | None = None, since: datetime | str | None = None,
                 until: datetime | str | None = None, dry_run: bool = False, shop: str | None = None,
                 trigger: str = "api") -> str:
    """Queue a sync of ``shop`` (default: the first configured) and return its run id.

    Raises ``WindowError`` (a ``ValueError`` naming the option) for a window that cannot be read:
    an unreadable time, ``days_back`` of zero or less, ``since`` not before ``until``, or an
    ``until`` later than now minus the lag (KSYNC_LAG_SECONDS)."""
    from .sync import default_shop
    from .tasks import sync_shop

    options = window_options(days_back, since, until, settings=get_settings())
    shop = shop or default_shop()
    with session_scope() as session:
        run = history.create_run(session, shop=shop, sync_type="manual", trigger=trigger, dry_run=dry_run,
                                 options=options)
        run_id = run.id
    sync_shop.apply_async(kwargs={"shop": shop, "trigger": trigger, "dry_run": dry_run, "run_id": run_id, **options})
    return run_id


def retry_failed(run_id: str, trigger: str = "cli") -> str:
    """Queue a new run that replays ``run_id``'s failed items; returns the new run's id."""
    from .tasks import retry_failed as retry_task

    with session_scope() as session:
        parent = history.get_run(session, run_id)
        if parent is None:
            raise LookupError(f"no run {run_id}")
        run = history.create_run(session, shop=parent.shop, sync_type="retry", trigger=trigger,
                                 dry_run=False, parent_run_id=parent.id)
        new_id, parent_id = run.id, parent.id
    retry_task.apply_async((parent_id, new_id))
    return new_id
