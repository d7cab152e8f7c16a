"""Never skip work: each test pins one way a sync used to lose, delay or overwrite records.

Real workers, real Redis and database, both stand-ins; the defect each test pins is named in
its comment, and each failed before its fix.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import update

from db import history
from db.engine import session_scope
from db.ledger import get_watermark
from db.models import SyncRun
from settings import Settings
from tests.support import expected_from, klaviyo_events, valid_orders, wait_for_run
from workers.api import enqueue_sync, retry_failed
from workers.mapping import PAID_STATUSES, buyer_stats, external_id, is_placed, ledger_entry

PER_RECORD = {"KSYNC_BULK_THRESHOLD": "100000"}


def profiles_by_external_id(stack) -> dict[str, dict]:
    return {p["external_id"]: p for p in stack.klaviyo.state()["profiles"] if p.get("external_id")}


def test_an_until_past_now_minus_the_lag_is_refused_and_capped_when_sent_as_a_task(make_stack):
    # Defect: `--until <30 days from now>` moved the watermark 30 days into the future; the next
    # incremental syncs read empty windows and 356 new events never left.
    make_stack(orders=30, workers=1, extra_env={"KSYNC_LAG_SECONDS": "60"})
    future = datetime.now(timezone.utc) + timedelta(days=30)
    with pytest.raises(ValueError, match="--until"):  # a WindowError
        enqueue_sync(days_back=30, until=future)

    from workers.tasks import sync_shop

    run_id = history.new_run_id()
    sync_shop.apply_async(kwargs={"days_back": 30, "until": future.isoformat(), "run_id": run_id})
    run = wait_for_run(run_id)
    limit = datetime.now(timezone.utc) - timedelta(seconds=59)
    assert run.status == "succeeded" and run.window_end <= limit
    with session_scope() as session:
        assert get_watermark(session, "default") <= limit


def test_a_send_cut_off_by_the_soft_time_limit_is_retried_not_failed(make_stack):
    # Defect: SoftTimeLimitExceeded inside a send became a permanent record failure.
    # A visibility timeout of 30 s makes the send tasks' soft limit 5 s; Klaviyo answers in 7 s.
    stack = make_stack(orders=12, workers=1, extra_env={**PER_RECORD, "KSYNC_VISIBILITY_TIMEOUT": "30"})
    expected_events, _ = expected_from(stack)
    stack.klaviyo.set_faults(latency_ms=7000, ops=["create_event"], duration=12)
    run = wait_for_run(enqueue_sync(days_back=31), timeout=300)
    assert (run.status, run.failed_count) == ("succeeded", 0), run.error_details
    assert set(klaviyo_events(stack)) == set(expected_events)
    assert stack.klaviyo.summary()["faults_injected"]["total"] > 0


def test_a_sends_worst_case_fits_inside_the_tasks_soft_time_limit():
    # Budget: five requests (a profile conflict resolved in full, then a list add), each waiting its
    # longest for a rate-limit token and then timing out, end before the soft limit fires.
    import celeryconfig
    from workers.clients import send_budget_seconds

    assert send_budget_seconds(Settings()) < celeryconfig.TASK_SOFT_TIME_LIMIT_SECONDS


@pytest.mark.parametrize("outcome", ["cancelled", "short", "orphan_error"])
def test_every_row_of_a_profile_import_job_is_accounted_for(make_stack, outcome):
    # Defect: a cancelled job counted as success; rows absent from the error list were marked
    # succeeded without checking completed + failed == rows; errors matching no row were dropped.
    stack = make_stack(orders=250, workers=1, extra_env={"KSYNC_BULK_THRESHOLD": "10"})
    _, expected_profiles = expected_from(stack)
    stack.klaviyo.set_faults(job_outcome=outcome, job_outcome_jobs=1, ops=["bulk_import_profiles"])
    run = wait_for_run(enqueue_sync(days_back=31))
    assert run.status == "succeeded", run.error or run.error_details
    assert set(profiles_by_external_id(stack)) == set(expected_profiles)
    assert len([j for j in stack.klaviyo.state()["jobs"] if j["type"] == "profile-bulk-import-job"]) >= 2


def test_a_replay_sends_the_latest_profile_never_the_payload_that_failed(make_stack):
    # Defect: `retry-failed` replayed the payload frozen when the profile failed, over newer data.
    stack = make_stack(orders=120, workers=1, extra_env=PER_RECORD)
    orders = valid_orders(stack)
    by_buyer: dict[str, list] = {}
    for order in orders:
        by_buyer.setdefault(order.user_id, []).append(order)
    buyer, to_cancel = next((user, o) for user, os_ in by_buyer.items() for o in os_
                            if o.status in PAID_STATUSES and o.paid_time)
    key = external_id(buyer)
    stack.klaviyo.set_faults(reject_rate=1.0, match=key, ops=["create_or_update_profile"])
    first = wait_for_run(enqueue_sync(days_back=31))
    assert first.status == "partial"
    with session_scope() as session:
        assert [i.key for i in history.failed_items(session, first.id)] == [key]

    stack.klaviyo.clear_faults()
    stack.tiktok.set_status(to_cancel.id, "CANCELLED", cancel_reason="changed my mind")
    second = wait_for_run(enqueue_sync(days_back=31))
    assert second.status == "succeeded"
    now_valid = [o for o in valid_orders(stack) if o.user_id == buyer]
    current = buyer_stats(ledger_entry(o) for o in now_valid).order_count
    assert profiles_by_external_id(stack)[key]["properties"]["tiktok_order_count"] == current

    replay = wait_for_run(retry_failed(first.id))
    assert replay.status == "succeeded"
    assert profiles_by_external_id(stack)[key]["properties"]["tiktok_order_count"] == current


def test_a_retry_whose_worker_died_after_it_started_still_replays_the_failures(make_stack):
    # Defect: a redelivered retry_failed task found its run already started and returned at once;
    # the run stayed `running` and nothing was replayed.
    from workers.tasks import retry_failed as retry_task

    stack = make_stack(orders=60, workers=1, extra_env=PER_RECORD)
    order = next(o for o in valid_orders(stack) if is_placed(o))
    stack.klaviyo.set_faults(reject_rate=1.0, match=order.id, ops=["create_event"])
    first = wait_for_run(enqueue_sync(days_back=31))
    assert first.status == "partial" and first.failed_count >= 2
    stack.klaviyo.clear_faults()

    with session_scope() as session:  # what the dead worker left: the retry run committed as started
        run = history.create_run(session, shop=first.shop, sync_type="retry", trigger="cli",
                                 parent_run_id=first.id)
        run.connection_id, run.account = first.connection_id, first.account
        history.start_run(session, run, "a-task-whose-worker-died")
        retry_id = run.id
    retry_task.apply_async((first.id, retry_id))  # its message, redelivered
    replay = wait_for_run(retry_id, timeout=90)
    assert (replay.status, replay.success_count) == ("succeeded", first.failed_count)
    assert all(k in klaviyo_events(stack) for k in [f"Placed Order|{order.id}"])


def test_sweeping_a_stuck_run_many_times_sends_its_task_once(make_stack, redis_client):
    # Defect: the sweeper re-sent sync_shop for a stuck run on every sweep (5 sweeps, 5 messages,
    # each re-dispatching every pending item).
    from workers.tasks import sweep

    stack = make_stack(orders=5, workers=0)
    with session_scope() as session:
        run = history.create_run(session, shop=stack.tiktok.shop_cipher, sync_type="manual", trigger="api")
        history.start_run(session, run, "a-task-whose-worker-died")
        run_id = run.id
    with session_scope() as session:
        session.execute(update(SyncRun).where(SyncRun.id == run_id)
                        .values(updated_at=datetime.now(timezone.utc) - timedelta(minutes=10)))
    for _ in range(5):
        sweep.run()
    assert redis_client.llen("sync") == 1


def test_a_failed_list_add_is_retried_without_upserting_the_profile_again(make_stack):
    # Risk closed: an upsert followed by a failed list add repeated the upsert on every retry.
    stack = make_stack(orders=40, workers=1, extra_env={**PER_RECORD, "KSYNC_CUSTOMER_LIST": "TikTok Shop Customers"})
    _, expected_profiles = expected_from(stack)
    stack.klaviyo.set_faults(error_rate=1.0, error_statuses=[503], ops=["add_profiles_to_list"], duration=3)
    run = wait_for_run(enqueue_sync(days_back=31))
    assert run.status == "succeeded", run.error_details
    requests = stack.klaviyo.summary()["requests"]
    assert sum(requests["create_or_update_profile"].values()) == len(expected_profiles)
    assert requests["add_profiles_to_list"].get("503", 0) > 0
    [customers] = [k for k in stack.klaviyo.state()["lists"] if k["name"] == "TikTok Shop Customers"]
    assert len(customers["members"]) == len(expected_profiles)


def test_a_deleted_customer_list_is_made_again_instead_of_failing_every_profile(make_stack):
    # Risk closed: a list id cached for 24 h kept failing every profile after the list was deleted.
    stack = make_stack(orders=80, workers=1, extra_env={**PER_RECORD, "KSYNC_CUSTOMER_LIST": "TikTok Shop Customers"})
    assert wait_for_run(enqueue_sync(days_back=31)).status == "succeeded"
    [old] = stack.klaviyo.state()["lists"]
    import requests

    requests.delete(f"{stack.klaviyo.url}/lists/{old['id']}", timeout=10, headers={
        "Authorization": f"Klaviyo-API-Key {stack.klaviyo.api_key}", "revision": "2026-07-15"}).raise_for_status()
    changed = [o for o in valid_orders(stack) if o.status in PAID_STATUSES][:3]
    for order in changed:
        stack.tiktok.set_status(order.id, "CANCELLED", cancel_reason="list test")
    second = wait_for_run(enqueue_sync(days_back=31))
    assert (second.status, second.failed_count) == ("succeeded", 0), second.error_details
    [new] = stack.klaviyo.state()["lists"]
    assert new["id"] != old["id"] and new["name"] == "TikTok Shop Customers"
    assert len(new["members"]) == len({o.user_id for o in changed})


def test_profiles_whose_phone_someone_else_holds_are_imported_in_bulk_without_it(make_stack):
    # Defect: every conflicted row of a bulk import went to the single upsert (two requests a row,
    # at 750 a minute): 1,500 conflicts at 100,000 orders held a backfill four minutes past its events.
    from klaviyo import KlaviyoClient, KlaviyoProfile
    from workers.planning import KnownState, plan_window

    stack = make_stack(orders=250, workers=1, extra_env={"KSYNC_BULK_THRESHOLD": "10"})
    _, expected_profiles = expected_from(stack)
    planned = plan_window(valid_orders(stack), KnownState(), with_events=False).profiles
    taken = {p.key: p.payload["phone_number"] for p in planned if p.payload.get("phone_number")}
    taken = dict(sorted(taken.items())[:5])
    assert len(taken) == 5
    someone_else = KlaviyoClient(stack.klaviyo.api_key, base_url=stack.klaviyo.url)
    for n, phone in enumerate(taken.values()):
        someone_else.create_profile(KlaviyoProfile(email=f"neighbour{n}@example.com", phone_number=phone))
    started = stack.klaviyo.requests()[-1]["t"]

    run = wait_for_run(enqueue_sync(days_back=31))
    assert (run.status, run.failed_count) == ("succeeded", 0), run.error or run.error_details
    profiles = profiles_by_external_id(stack)
    assert set(profiles) == set(expected_profiles)
    assert all(not profiles[key].get("phone_number") for key in taken)  # never merged with the neighbour
    assert stack.klaviyo.requests(op="create_or_update_profile", since=started) == []  # no single upserts
    jobs = [j for j in stack.klaviyo.state()["jobs"] if j["type"] == "profile-bulk-import-job"]
    assert len(jobs) >= 2
