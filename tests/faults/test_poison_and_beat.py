"""Poison records and a second beat started by mistake."""

from __future__ import annotations

import time
from collections import Counter

from sqlalchemy import select

from db import history
from db.engine import session_scope
from db.ledger import get_watermark
from db.models import SyncItem, SyncRun
from tests.faults.harness import FaultResult, record, verify
from tests.support import wait_for_run
from tiktok import InvalidOrder, parse_order
from workers.api import enqueue_sync, retry_failed
from workers.mapping import is_placed


def placed_order_ids(stack, n):
    ids = []
    for raw in stack.tiktok.orders():
        order = parse_order(raw)
        if not isinstance(order, InvalidOrder) and is_placed(order):
            ids.append(order.id)
    return ids[:n]


def test_records_klaviyo_keeps_failing_are_not_sent_hold_the_watermark_and_the_next_sync_sends_them(fault_stack):
    # A 500 is transient: never a record failure. After its attempts it is `unsent`, the run fails
    # with the reason, the watermark stays, and the next sync (not retry-failed) sends it. A 400 is the
    # record's own: a failure, replayed by retry-failed once the cause is gone.
    stack = fault_stack(orders=80, workers=2, extra_env={"KSYNC_BULK_THRESHOLD": "100000", "KSYNC_MAX_ATTEMPTS": "3"})
    flaky, refused = placed_order_ids(stack, 2)
    stack.klaviyo.set_faults(error_rate=1.0, error_statuses=[500], match=flaky, ops=["create_event"])

    run = wait_for_run(enqueue_sync(days_back=31), timeout=300)
    assert (run.status, run.failed_count) == ("failed", 0) and run.unsent_count > 0
    assert "could not be sent" in run.error and "500" in run.error and "next sync" in run.error
    with session_scope() as session:
        unsent = list(session.scalars(select(SyncItem).where(SyncItem.run_id == run.id, SyncItem.status == "unsent")))
        assert get_watermark(session, "default") is None
    assert unsent and all(flaky in item.key and item.attempts == 3 for item in unsent)

    stack.klaviyo.set_faults(reject_rate=1.0, match=refused, ops=["create_event"])
    stack.tiktok.set_status(refused, "CANCELLED", cancel_reason="poison")
    second = wait_for_run(enqueue_sync(days_back=31), timeout=300)
    assert second.status == "partial"
    with session_scope() as session:
        refused_items = [i for i in history.failed_items(session, second.id) if refused in i.key]
    assert refused_items and all(i.attempts == 1 and "400 invalid" in i.error for i in refused_items)
    assert all(f"{item.key}" in landed_keys(stack) for item in unsent)  # the next sync sent them

    stack.klaviyo.clear_faults()
    replay_refused = wait_for_run(retry_failed(second.id), timeout=300)
    assert replay_refused.status == "succeeded" and replay_refused.success_count == len(refused_items)
    result = verify(stack, replay_refused.id, "records Klaviyo keeps failing (500 until attempts run out: not sent, "
                                              "the next sync sends them; a 400: retry-failed)", 1)
    assert result.clean and result.lost_events == 0
    assert result.duplicated == 0  # replays skip what another run already delivered


def landed_keys(stack) -> set[str]:
    return {f"{e['metric']}|{e['unique_id']}" for e in stack.klaviyo.state()["events"]}


def test_two_beats_started_by_mistake_still_make_one_sync_per_connection_per_period(fault_stack):
    # Both beats send dispatch_due every 2 s; the due connection is taken by one of them per period.
    stack = fault_stack(orders=60, workers=2, extra_env={"KSYNC_SYNC_INTERVAL_SECONDS": "10",
                                                         "KSYNC_SWEEP_SECONDS": "2"})
    stack.add_beat("beat-a")
    stack.add_beat("beat-b")
    started = time.monotonic()
    time.sleep(36)
    for beat in stack.beats:
        beat.stop()
    time.sleep(5)
    with session_scope() as session:
        runs = list(session.scalars(select(SyncRun).where(SyncRun.trigger == "beat",
                                                          SyncRun.sync_type == "incremental")))
        fired = sum(beat.log_path.read_text().count("Scheduler: Sending due task ksync.dispatch_due")
                    for beat in stack.beats)
    per_period = Counter(r.period_key for r in runs)
    assert len(per_period) >= 3, per_period
    assert set(per_period.values()) == {1}, per_period
    assert fired >= 2 * len(per_period)  # both beats really fired, several times a period
    record(FaultResult(fault="two beats started by mistake", seed=1, orders=60, records=len(runs),
                       expected_events=0, lost_events=0, lost_profiles=0, duplicated=0,
                       stored_twice=0, run_status="succeeded", recovered_in=None, counters_agree=True,
                       watermark_ok=True, notes={"inject": f"{fired} beat firings, {len(runs)} runs, one per period",
                                                 "database": "PostgreSQL" if stack.database_url.startswith("postgres")
                                                 else "SQLite",
                                                 "periods": len(per_period), "beat_firings": fired,
                                                 "runs": len(runs), "seconds": round(time.monotonic() - started)}))
