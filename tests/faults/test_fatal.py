"""Fatal errors: the run stops with one reason, the watermark stays, and scheduled syncs alone
deliver everything once the cause is gone."""

from __future__ import annotations

import time

from sqlalchemy import select

from db.engine import session_scope
from db.ledger import get_watermark
from db.models import SyncRun
from tests.faults.harness import verify
from tests.support import valid_orders
from workers.mapping import FULFILLED_STATUSES, PAID_STATUSES


def next_scheduled_run(after: set[str], timeout: float = 120) -> SyncRun:
    """The next beat-triggered incremental run of orders not in ``after``, once it is final (beat
    also starts catalog and stock runs; those are not what this test follows)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with session_scope() as session:
            runs = list(session.scalars(select(SyncRun).where(SyncRun.trigger == "beat", SyncRun.sync_type == "incremental",
                                                                    SyncRun.id.not_in(after))
                                        .order_by(SyncRun.created_at)))
        if runs and runs[0].status in ("succeeded", "partial", "failed"):
            return runs[0]
        time.sleep(0.5)
    raise AssertionError(f"no scheduled run finished within {timeout}s")


def test_a_revoked_key_stops_the_run_holds_the_watermark_and_scheduled_syncs_alone_catch_up(fault_stack):
    # Defect: with the Klaviyo key revoked for one sync, the run ended `failed` yet the watermark moved
    # to its end; the next sync read only the last half hour, delivered a fraction of what was due,
    # and exited 0.
    stack = fault_stack(orders=500, workers=2, extra_env={"KSYNC_SYNC_INTERVAL_SECONDS": "12",
                                                          "KSYNC_FIRST_RUN_DAYS": "31"})
    stack.add_beat()
    first = next_scheduled_run(set())
    assert first.status == "succeeded", first.error
    with session_scope() as session:
        watermark = get_watermark(session, "default")
    assert watermark == first.window_end

    moving = [o for o in valid_orders(stack) if o.status in PAID_STATUSES - FULFILLED_STATUSES][:40]
    for order in moving:  # new work falls due: shipments
        stack.tiktok.set_status(order.id, "IN_TRANSIT")
    stack.klaviyo.revoke_key()
    second = next_scheduled_run({first.id})
    assert second.status == "failed" and second.failed_count == 0 and second.unsent_count > 0
    assert second.error == "Klaviyo rejected the private key (401): check KLAVIYO_API_KEY"
    with session_scope() as session:
        assert get_watermark(session, "default") == watermark

    stack.klaviyo.restore_key()
    restored = time.monotonic()
    third = next_scheduled_run({first.id, second.id})
    assert third.status == "succeeded", third.error
    result = verify(stack, third.id, "Klaviyo key revoked for one scheduled sync, then restored (beat only)", 1,
                    recovered_in=time.monotonic() - restored,
                    notes={"inject": f"key revoked: run {second.id[:8]} failed with {second.unsent_count} records "
                                     "unsent; restored; the next scheduled sync sent them"})
    assert result.clean, result
    assert result.duplicated == 0
