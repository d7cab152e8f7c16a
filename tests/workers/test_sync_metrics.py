"""Run and record outcomes as Prometheus metrics, read from a real sync history at scrape time.

The collector keeps no count of its own, so two collectors (two exporter processes, or
an exporter restarted) read the same numbers, and a stack's prefork workers are all
counted: the records they settled in different processes are rows in one table.
"""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime, timedelta, timezone

import requests
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import update

from db import history, ledger
from db.engine import session_scope
from db.models import SyncItem, SyncRun
from sandbox.redis import free_port
from sandbox.stack import ROOT
from settings import reset_settings_cache
from tests.cli.support import ksync
from tests.support import wait_for_run
from tests.test_flower import wait_until
from workers.api import enqueue_sync
from workers.sync_metrics import SyncCollector

NOW = datetime.now(timezone.utc)


def scrape(collector) -> dict[tuple[str, frozenset], float]:
    """``{(sample name, labels): value}`` as Prometheus would read the exposition."""
    registry = CollectorRegistry()
    registry.register(collector)
    text = generate_latest(registry).decode()
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(samples, name, **labels) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def run_with(shop, status, items, sync_type="manual", finished=NOW) -> str:
    with session_scope() as session:
        run = history.create_run(session, shop=shop, sync_type=sync_type, trigger="beat")
        history.insert_items(session, run.id, [{"kind": kind, "key": f"{kind}-{i}", "status": item_status}
                                               for i, (kind, item_status) in enumerate(items)])
        run.status = status
        run.phase = "finished" if status in ("succeeded", "partial", "failed", "skipped") else "dispatched"
        run.finished_at = finished if run.phase == "finished" else None
        return run.id


def test_runs_and_records_are_counted_by_whatever_status_they_hold(migrated_database):
    run_with("shop-a", "succeeded", [("event", "succeeded")] * 3 + [("profile", "succeeded")] * 2)
    run_with("shop-a", "partial", [("event", "succeeded"), ("event", "failed"), ("order", "failed")])
    run_with("shop-a", "failed", [("event", "unsent")] * 4 + [("profile", "failed")])  # a status added later
    run_with("shop-b", "running", [("event", "pending")] * 2 + [("event", "sending"), ("event", "succeeded")])
    samples = scrape(SyncCollector())

    assert value(samples, "ksync_metrics_up") == 1
    assert value(samples, "ksync_runs_total", connection="shop-a", sync_type="manual", status="succeeded") == 1
    assert value(samples, "ksync_runs_total", connection="shop-a", sync_type="manual", status="failed") == 1
    assert value(samples, "ksync_runs_open", connection="shop-b", sync_type="manual", status="running") == 1
    assert value(samples, "ksync_records_total", connection="shop-a", kind="event", status="succeeded") == 4
    assert value(samples, "ksync_records_total", connection="shop-a", kind="event", status="unsent") == 4
    assert value(samples, "ksync_records_total", connection="shop-a", kind="order", status="failed") == 1
    assert value(samples, "ksync_records_total", connection="shop-b", kind="event", status="succeeded") == 1
    assert value(samples, "ksync_records_open", connection="shop-b", kind="event", status="pending") == 2
    assert value(samples, "ksync_records_open", connection="shop-b", kind="event", status="sending") == 1
    finished = value(samples, "ksync_run_last_finished_timestamp_seconds", connection="shop-a", sync_type="manual",
                     status="failed")
    assert abs(finished - NOW.timestamp()) < 1


def test_a_finished_run_is_counted_once_and_a_running_one_at_every_scrape(migrated_database):
    collector = SyncCollector()
    done = run_with("shop-a", "succeeded", [("event", "succeeded")] * 2)
    running = run_with("shop-a", "running", [("event", "pending")] * 3)
    first = scrape(collector)
    assert value(first, "ksync_records_open", connection="shop-a", kind="event", status="pending") == 3

    with session_scope() as session:  # the running run settles; the finished one is not read again
        session.execute(update(SyncItem).where(SyncItem.run_id == running).values(status="succeeded"))
        session.get(SyncRun, running).status = "succeeded"
        session.execute(update(SyncItem).where(SyncItem.run_id == done)
                        .values(status="failed"))  # never happens to a finished run: proves it is not re-read
    second = scrape(collector)
    assert value(second, "ksync_records_total", connection="shop-a", kind="event", status="succeeded") == 5
    assert value(second, "ksync_records_open", connection="shop-a", kind="event", status="pending") is None
    assert value(scrape(SyncCollector()), "ksync_records_total", connection="shop-a", kind="event", status="failed") == 2


def test_two_collectors_read_the_same_numbers(migrated_database):
    run_with("shop-a", "partial", [("event", "succeeded"), ("event", "failed")])
    run_with("shop-a", "running", [("profile", "sending")])
    a, b = scrape(SyncCollector()), scrape(SyncCollector())
    assert {k: v for k, v in a.items() if "watermark_age" not in k[0]} == \
        {k: v for k, v in b.items() if "watermark_age" not in k[0]}


def test_watermark_age_per_connection_not_paused_and_the_interval_it_is_measured_against(migrated_database,
                                                                                       monkeypatch):
    from db import connections
    from tests.support import add_connection

    monkeypatch.setenv("KSYNC_SECRET_KEY", "sMGqBzq7TTWvSs-KjiKb5MN8GcdYYe0Q_5w7ID3v4lI=")
    reset_settings_cache()
    add_connection("conn-a", "pk_a_0123456789", "shop-a")
    add_connection("conn-b", "pk_b_0123456789", "shop-b")
    with session_scope() as session:
        connections.set_status(session, "conn-b", "paused", "holiday")
        for connection_id in ("conn-a", "conn-b", "removed-c"):
            ledger.set_watermark(session, connection_id, NOW - timedelta(minutes=25))
    samples = scrape(SyncCollector(sync_interval_seconds=600, clock=lambda: NOW.timestamp()))
    assert value(samples, "ksync_watermark_age_seconds", connection="conn-a", shop="shop-a", stream="orders") == 1500
    assert value(samples, "ksync_watermark_timestamp_seconds", connection="conn-a", shop="shop-a",
                 stream="orders") == (NOW - timedelta(minutes=25)).timestamp()
    assert [k for k in samples if k[0] == "ksync_watermark_age_seconds"] == [
        ("ksync_watermark_age_seconds", frozenset({("connection", "conn-a"), ("shop", "shop-a"), ("stream", "orders")}))]
    assert value(samples, "ksync_sync_interval_seconds") == 600
    reset_settings_cache()


def test_an_unreachable_database_is_a_zero_not_a_failed_scrape(monkeypatch):
    from contextlib import contextmanager

    @contextmanager
    def broken():
        raise ConnectionError("database down")
        yield

    samples = scrape(SyncCollector(session_scope=broken, sync_interval_seconds=600))
    assert samples == {("ksync_metrics_up", frozenset()): 0}


def test_the_exporter_serves_the_stacks_numbers_from_every_worker_process(make_stack):
    """Two workers with two prefork children each settle the records; one exporter, in another
    process, counts every one of them, printed once or served over HTTP."""
    stack = make_stack(orders=80, workers=2, malformed_ratio=0.03, extra_env={"KSYNC_BULK_THRESHOLD": "100000"})
    run = wait_for_run(enqueue_sync(days_back=31))
    with session_scope() as session:
        counts = history.item_counts(session, run.id)
    printed = ksync("metrics", env=stack.env)
    assert printed.returncode == 0, printed.stderr
    samples = {(s.name, frozenset(s.labels.items())): s.value
               for f in text_string_to_metric_families(printed.stdout) for s in f.samples}
    for (kind, status), n in counts.items():
        assert value(samples, "ksync_records_total", connection=run.connection_id or run.shop, kind=kind, status=status) == n
    assert value(samples, "ksync_runs_total", connection=run.connection_id or run.shop, sync_type="manual", status=run.status) == 1
    assert any(name == "ksync_ratelimit_grants_total" for name, _ in samples)
    assert stack.env["KLAVIYO_API_KEY"] not in printed.stdout

    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "cli.main", "metrics", "--bind", f"127.0.0.1:{port}"],
                              cwd=ROOT, env=stack.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        def served():
            try:
                return requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
            except requests.RequestException:
                return None

        body = wait_until(served, 30)
    finally:
        server.terminate()
        server.wait(10)
    over_http = {(s.name, frozenset(s.labels.items())): s.value
                 for f in text_string_to_metric_families(body) for s in f.samples}
    assert {k: v for k, v in over_http.items() if k[0].startswith("ksync_records")} == \
        {k: v for k, v in samples.items() if k[0].startswith("ksync_records")}
