"""Poison records and a second beat started by mistake."""

from __future__ import annotations

import time
from collections import Counter

from sqlalchemy import select

from db import history
from db.engine import session_scope
from db.models import SyncRun
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


def test_poison_records_fail_after_their_attempts_and_replay_once_the_cause_is_gone(fault_stack):
    stack = fault_stack(orders=80, workers=2, extra_env={"KSYNC_BULK_THRESHOLD": "100000", "KSYNC_MAX_ATTEMPTS": "3"})
    flaky, refused = placed_order_ids(stack, 2)
    stack.klaviyo.set_faults(error_rate=1.0, error_statuses=[500], match=flaky, ops=["create_event"])

    run = wait_for_run(enqueue_sync(days_back=31), timeout=300)
    assert run.status == "partial"
    with session_scope() as session:
        failed = history.failed_items(session, run.id)
    assert failed and all(flaky in item.key for item in failed)
    assert all(item.attempts == 3 and "gave up after 3 attempts" in item.error and "500" in item.error
               for item in failed)

    stack.klaviyo.set_faults(reject_rate=1.0, match=refused, ops=["create_event"])
    stack.tiktok.set_status(refused, "CANCELLED", cancel_reason="poison")
    second = wait_for_run(enqueue_sync(days_back=31), timeout=300)
    with session_scope() as session:
        refused_items = [i for i in history.failed_items(session, second.id) if refused in i.key]
    assert refused_items and all(i.attempts == 1 and "400 invalid" in i.error for i in refused_items)

    stack.klaviyo.clear_faults()
    replay = wait_for_run(retry_failed(run.id), timeout=300)
    assert replay.status == "succeeded" and replay.success_count == 0  # the second run delivered those already
    replay_refused = wait_for_run(retry_failed(second.id), timeout=300)
    assert replay_refused.status == "succeeded" and replay_refused.success_count == len(refused_items)
    result = verify(stack, replay_refused.id, "poison records (500 until attempts run out; a 400), then retry-failed", 1)
    assert result.clean and result.lost_events == 0
    assert result.duplicated == 0  # replays skip what another run already delivered


def test_two_beats_started_by_mistake_still_make_one_sync_per_shop_per_period(fault_stack):
    stack = fault_stack(orders=60, workers=2, extra_env={"KSYNC_SYNC_INTERVAL_SECONDS": "10"})
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
        fired = sum(beat.log_path.read_text().count("Scheduler: Sending due task ksync.incremental")
                    for beat in stack.beats)
    per_period = Counter(r.period_key for r in runs)
    assert len(per_period) >= 3, per_period
    assert set(per_period.values()) == {1}, per_period
    assert fired >= 2 * len(per_period) - 1  # both beats really fired
    record(FaultResult(fault="two beats started by mistake", seed=1, orders=60, records=len(runs),
                       expected_events=0, lost_events=0, lost_profiles=0, duplicated=0,
                       stored_twice=0, run_status="succeeded", recovered_in=None, counters_agree=True,
                       watermark_ok=True, notes={"inject": f"{fired} beat firings, {len(runs)} runs, one per period",
                                                 "database": "PostgreSQL" if stack.database_url.startswith("postgres")
                                                 else "SQLite",
                                                 "periods": len(per_period), "beat_firings": fired,
                                                 "runs": len(runs), "seconds": round(time.monotonic() - started)}))
