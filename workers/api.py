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

from .sync import parse_time


def enqueue_sync(days_back: float | None = None, since: datetime | str | None = None,
                 until: datetime | str | None = None, dry_run: bool = False, shop: str | None = None,
                 trigger: str = "api") -> str:
    """Queue a sync of ``shop`` (default: the first configured) and return its run id."""
    from .tasks import default_shop, sync_shop

    shop = shop or default_shop()
    since_at, until_at = parse_time(since), parse_time(until)
    if since_at and until_at and since_at >= until_at:
        raise ValueError("since must be before until")
    if days_back is not None and days_back <= 0:
        raise ValueError("days_back must be positive")
    options = {"days_back": days_back, "since": since_at.isoformat() if since_at else None,
               "until": until_at.isoformat() if until_at else None}
    options = {k: v for k, v in options.items() if v is not None}
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
