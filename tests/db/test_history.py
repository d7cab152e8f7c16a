"""Sync history on a real database: migrations, claims, roll-up, watermark, per-period dedupe."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import update

from db import history, ledger
from db.engine import get_engine, session_scope
from db.migrate import head_revision, upgrade
from db.models import Base, SyncItem, SyncRun
from settings import Settings, reset_settings_cache

T = datetime(2026, 11, 1, tzinfo=timezone.utc)


def test_migrations_build_exactly_the_models_schema(migrated_database):
    with get_engine(migrated_database).connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert diff == []
    assert upgrade(migrated_database) == head_revision()  # a second upgrade is a no-op


def make_run(session, **kw) -> SyncRun:
    defaults = dict(shop="shop-1", sync_type="manual", trigger="api")
    return history.create_run(session, **(defaults | kw))


def add_items(session, run, n, kind="event"):
    history.insert_items(session, run.id, [{"kind": kind, "key": f"k{i}", "payload": {"i": i}} for i in range(n)])
    return history.item_ids(session, run.id, kind)


def test_items_are_unique_per_run_kind_and_key(migrated_database):
    with session_scope() as s:
        run = make_run(s)
        add_items(s, run, 3)
        add_items(s, run, 3)
        assert len(history.item_ids(s, run.id, "event")) == 3


def test_a_claimed_item_is_not_claimed_again_until_its_lease_runs_out(migrated_database):
    with session_scope() as s:
        run = make_run(s)
        ids = add_items(s, run, 2)
    with session_scope() as s:
        mine, held = history.claim_items(s, ids, "task-a:1", lease_seconds=60)
        assert [i.id for i in mine] == ids and held is None
    with session_scope() as s:
        theirs, held = history.claim_items(s, ids, "task-a:2", lease_seconds=60)  # a redelivered copy
        assert theirs == [] and held is not None
    with session_scope() as s:
        s.execute(update(SyncItem).values(lease_until=datetime.now(timezone.utc) - timedelta(seconds=1)))
    with session_scope() as s:
        stolen, _ = history.claim_items(s, ids, "task-b:1", lease_seconds=60)
        assert [i.id for i in stolen] == ids and all(i.attempts == 2 for i in stolen)
    with session_scope() as s:
        assert history.succeed_items(s, ids, "task-a:1") == 0  # the old owner's late answer changes nothing
        assert history.succeed_items(s, ids, "task-b:1") == 2


def test_released_items_give_back_the_attempt_when_nothing_was_sent(migrated_database):
    with session_scope() as s:
        run = make_run(s)
        ids = add_items(s, run, 1)
    with session_scope() as s:
        history.claim_items(s, ids, "t:1", 60)
        history.release_items(s, ids, "t:1", sent=False)
        history.claim_items(s, ids, "t:2", 60)
        history.release_items(s, ids, "t:2", error="503", sent=True)
    with session_scope() as s:
        item = s.get(SyncItem, ids[0])
        assert (item.status, item.attempts, item.error) == ("pending", 1, "503")


def test_a_run_finishes_only_once_dispatched_and_every_item_is_final(migrated_database):
    with session_scope() as s:
        run = make_run(s)
        history.start_run(s, run, "t")
        ids = add_items(s, run, 3)
        run_id = run.id
    with session_scope() as s:
        assert history.finalize_if_done(s, run_id) is None  # not dispatched yet
        s.get(SyncRun, run_id).phase = "dispatched"
    with session_scope() as s:
        history.claim_items(s, ids, "t:1", 60)
        history.succeed_items(s, ids[:2], "t:1")
        assert history.finalize_if_done(s, run_id) is None  # one item still open
        history.fail_items(s, ids[2:], "t:1", "Klaviyo create_event answered 400 invalid: bad")
    with session_scope() as s:
        finished = history.finalize_if_done(s, run_id)
        assert (finished.status, finished.success_count, finished.failed_count) == ("partial", 2, 1)
        assert finished.records_synced == 2 and finished.error_details[0]["error"].endswith("bad")
    with session_scope() as s:
        assert history.finalize_if_done(s, run_id) is None  # exactly one caller finishes a run


@pytest.mark.parametrize("succeeded, failed, unsent, status", [
    (2, 0, 0, "succeeded"), (1, 1, 0, "partial"), (0, 2, 0, "partial"), (0, 0, 0, "succeeded"),
    (1, 1, 1, "failed"), (2, 0, 1, "failed")])
def test_final_status_follows_the_items(migrated_database, succeeded, failed, unsent, status):
    # Record failures (skippable) make a run partial; a record not sent for another cause fails it.
    with session_scope() as s:
        run = make_run(s)
        history.start_run(s, run, "t")
        run.phase = "dispatched"
        ids = add_items(s, run, succeeded + failed + unsent)
        history.claim_items(s, ids, "o", 60)
        history.succeed_items(s, ids[:succeeded], "o")
        history.fail_items(s, ids[succeeded:succeeded + failed], "o", "x")
        history.unsend_items(s, ids[succeeded + failed:], "o", "still failing after 5 attempts: 503")
        finished = history.finalize_if_done(s, run.id)
        assert finished.status == status and finished.unsent_count == unsent
        assert (finished.error is not None) == bool(unsent)
        if unsent:
            assert "503" in finished.error and "next sync" in finished.error


def test_a_stopped_run_is_failed_with_its_reason_and_its_open_records_unsent(migrated_database):
    with session_scope() as s:
        run = make_run(s)
        history.start_run(s, run, "t")
        run.phase = "dispatched"
        ids = add_items(s, run, 4)
        history.claim_items(s, ids[:2], "o", 60)
        history.succeed_items(s, ids[:1], "o")
        run_id = run.id
    with session_scope() as s:
        assert history.stop_run(s, run_id, "Klaviyo rejected the private key (401): check KLAVIYO_API_KEY")
        assert not history.stop_run(s, run_id, "again")  # several tasks meet the same 401: one stops it
    with session_scope() as s:
        run = s.get(SyncRun, run_id)
        assert (run.status, run.phase, run.success_count, run.failed_count, run.unsent_count) == \
            ("failed", "finished", 1, 0, 3)
        assert run.error.startswith("Klaviyo rejected the private key (401)")
        assert history.claim_items(s, ids[2:], "late-task", 60) == ([], None)  # queued tasks find nothing
    with session_scope() as s:
        assert history.succeed_items(s, ids[1:2], "o") == 1  # in flight when it stopped: it did go out
    with session_scope() as s:
        run = s.get(SyncRun, run_id)
        assert (run.success_count, run.unsent_count) == (2, 2)


def finished_run(s, start, end, **kw):
    run = make_run(s, **kw)
    run.window_start, run.window_end = start, end
    run.status, run.phase = "succeeded", "finished"
    return run


def test_the_watermark_advances_to_the_window_end_of_a_finished_run(migrated_database):
    with session_scope() as s:
        run = finished_run(s, T, T + timedelta(hours=1))
        assert ledger.advance_watermark(s, run) == T + timedelta(hours=1)


def test_the_watermark_never_passes_a_run_that_is_still_open(migrated_database):
    with session_scope() as s:
        ledger.set_watermark(s, "shop-1", T)
        open_run = make_run(s)
        open_run.window_start, open_run.window_end = T - timedelta(minutes=30), T + timedelta(minutes=10)
        open_run.status, open_run.phase = "running", "dispatched"
        later = finished_run(s, T - timedelta(minutes=5), T + timedelta(minutes=20))
        s.flush()
        assert ledger.advance_watermark(s, later) == T  # held: the open run still has work from T-30min on
        open_run.status = "succeeded"
        s.flush()
        assert ledger.advance_watermark(s, later) == T + timedelta(minutes=20)


def test_a_window_that_does_not_reach_the_watermark_does_not_move_it(migrated_database):
    with session_scope() as s:
        ledger.set_watermark(s, "shop-1", T)
        gap = finished_run(s, T + timedelta(hours=1), T + timedelta(hours=2))
        assert ledger.advance_watermark(s, gap) == T


@pytest.mark.parametrize("change", [
    dict(status="failed"), dict(unsent_count=3), dict(sync_type="retry"), dict(sync_type="customers"),
    dict(sync_type="profile_sync"), dict(dry_run=True)], ids=lambda c: next(iter(c.items()))[0] + "=" +
    str(next(iter(c.values()))))
def test_only_a_full_read_that_sent_everything_moves_the_watermark(migrated_database, change):
    # Defect: a failed run (revoked key) and a seed-service call (a status filter) moved the watermark.
    with session_scope() as s:
        ledger.set_watermark(s, "shop-1", T)
        run = finished_run(s, T - timedelta(minutes=30), T + timedelta(hours=1))
        for key, value in change.items():
            setattr(run, key, value)
        s.flush()
        assert ledger.advance_watermark(s, run) == T
        assert ledger.get_watermark(s, "shop-1") == T


def test_a_partial_run_moves_the_watermark_past_its_listed_record_failures(migrated_database):
    with session_scope() as s:
        ledger.set_watermark(s, "shop-1", T)
        run = finished_run(s, T - timedelta(minutes=30), T + timedelta(hours=1))
        run.status, run.failed_count = "partial", 2
        assert ledger.advance_watermark(s, run) == T + timedelta(hours=1)


def test_the_sweeper_takes_items_whose_lease_lapsed_once_per_staleness_period(migrated_database):
    now = datetime.now(timezone.utc)
    with session_scope() as s:
        run = make_run(s)
        history.start_run(s, run, "t")
        run.phase = "dispatched"
        ids = add_items(s, run, 3)
        history.claim_items(s, ids, "dead-worker:1", 30)
        s.execute(update(SyncItem).where(SyncItem.id == ids[0]).values(lease_until=now - timedelta(seconds=1)))
    with session_scope() as s:
        taken = history.take_lost_items(s, now, stale_seconds=60)
        assert [i.id for i in taken] == [ids[0]] and taken[0].status == "pending" and taken[0].claimed_by is None
    with session_scope() as s:
        assert history.take_lost_items(s, now + timedelta(seconds=30), stale_seconds=60) == []  # once per period
        live, _ = history.claim_items(s, ids[:1], "new-worker:1", 30)
        assert [i.id for i in live] == ids[:1]  # the re-sent task takes it at once


def test_items_never_taken_up_are_re_sent_only_when_their_run_stopped_moving(migrated_database):
    now = datetime.now(timezone.utc)
    with session_scope() as s:
        run = make_run(s)
        history.start_run(s, run, "t")
        run.phase = "dispatched"
        ids = add_items(s, run, 2)
        s.execute(update(SyncItem).values(updated_at=now - timedelta(seconds=90)))
        s.execute(update(SyncItem).where(SyncItem.id == ids[1]).values(updated_at=now - timedelta(seconds=5)))
    with session_scope() as s:
        assert history.take_lost_items(s, now, stale_seconds=60) == []  # the run is moving: a long queue
    with session_scope() as s:
        s.execute(update(SyncItem).where(SyncItem.id == ids[1]).values(updated_at=now - timedelta(seconds=61)))
    with session_scope() as s:
        assert sorted(i.id for i in history.take_lost_items(s, now, stale_seconds=60)) == ids


def test_a_stuck_run_is_taken_for_a_restart_once_per_staleness_period(migrated_database):
    # Defect: the sweeper re-sent sync_shop for every stuck run on every sweep.
    now = datetime.now(timezone.utc)
    with session_scope() as s:
        run = make_run(s)
        history.start_run(s, run, "t")
        run.updated_at = now - timedelta(seconds=120)
        run_id = run.id
    taken = []
    for _ in range(5):
        with session_scope() as s:
            taken += [r.id for r in history.take_stuck_runs(s, datetime.now(timezone.utc) - timedelta(seconds=60))]
    assert taken == [run_id]


def test_record_failures_on_file_are_found_by_record_and_fingerprint(migrated_database):
    with session_scope() as s:
        run = make_run(s)
        ids = add_items(s, run, 2)
        history.claim_items(s, ids, "o", 60)
        history.fail_items(s, ids[:1], "o", "400 invalid", fingerprint="abc")
        history.fail_items(s, ids[1:], "o", "400 invalid")
        found = history.reported_failures(s, [("event", "k0"), ("event", "k1"), ("event", "k9")])
        assert found == {("event", "k0"): frozenset({"abc"})}


def test_a_dry_run_never_moves_the_watermark(migrated_database):
    with session_scope() as s:
        run = finished_run(s, T, T + timedelta(hours=1), dry_run=True)
        assert ledger.advance_watermark(s, run) is None
        assert ledger.get_watermark(s, "shop-1") is None


def test_a_second_beat_firing_in_the_same_period_is_dropped(migrated_database, monkeypatch):
    from tests.support import add_connection
    from workers.sync import create_or_get_run

    monkeypatch.setenv("TIKTOK_APP_SECRET", "an-app-secret-for-the-keyring")
    reset_settings_cache()
    add_connection("s", "pk_s", shop_cipher="cipher-s")
    add_connection("t", "pk_t", shop_cipher="cipher-t")
    settings = Settings(sync_interval_seconds=600)

    def make(connection_id, trigger="beat"):
        return create_or_get_run(connection_id=connection_id, sync_type="incremental", trigger=trigger, dry_run=False,
                                 options={}, run_id=None, settings=settings)

    first, second, other_connection = make("s"), make("s"), make("t")
    on_demand = [make("s", "api") for _ in range(2)]
    assert first is not None and second is None and other_connection is not None
    assert all(run is not None for run in on_demand)


def _failed_in(session, account, connection_id, key="buyer-1", kind="profile"):
    run = make_run(session)
    run.account, run.connection_id = account, connection_id
    history.insert_items(session, run.id, [{"kind": kind, "key": key, "payload": {}}])
    ids = history.item_ids(session, run.id, kind)
    history.claim_items(session, ids, "o", 60)
    history.fail_items(session, ids, "o", f"400 invalid in {account}")
    return run, ids


def test_a_failure_in_one_account_is_not_made_good_by_the_same_record_in_another(migrated_database):
    """A buyer of two shops feeding two Klaviyo accounts: their profile failed in account A and
    succeeded in B. A still needs attention; B's success and delivery vouch only for B."""
    with session_scope() as s:
        _failed_in(s, "acct-a", "shop-a")
        run_b, _ = _failed_in(s, "acct-b", "shop-b")
        replay = make_run(s)
        replay.account, replay.connection_id = "acct-b", "shop-b"
        history.insert_items(s, replay.id, [{"kind": "profile", "key": "buyer-1", "payload": {}}])
        ids = history.item_ids(s, replay.id, "profile")
        history.claim_items(s, ids, "o", 60)
        history.succeed_items(s, ids, "o")  # replayed and made good in B only
        _failed_in(s, "acct-b", "shop-b", key="order-9", kind="event")
        ledger.mark_delivered(s, "acct-a", "shop-a", run_b.id, ["order-9"])  # delivered to A, not B
    with session_scope() as s:
        items, total = history.outstanding_failures(s)
        assert total == 2
        assert sorted((i.key, i.error) for i in items) == [("buyer-1", "400 invalid in acct-a"),
                                                            ("order-9", "400 invalid in acct-b")]


def test_outstanding_failures_of_one_connection_leave_the_others_out(migrated_database):
    with session_scope() as s:
        _failed_in(s, "acct-a", "shop-a")
        _failed_in(s, "acct-a", "shop-c", key="buyer-2")
    with session_scope() as s:
        items, total = history.outstanding_failures(s, limit=10, connection_id="shop-c")
        assert total == 1 and [i.key for i in items] == ["buyer-2"]


def test_a_profile_planned_again_later_for_the_same_account_supersedes_the_earlier_one(migrated_database):
    """Two shops feeding one account: the later plan of a shared buyer saw both shops' orders. The
    earlier item, retried after the later one went out, must not overwrite it with older totals;
    the same buyer in another account, or a later plan that stopped unsent, replaces nothing."""
    def planned(s, account, key="buyer-1"):
        run = make_run(s)
        run.account = account
        history.insert_items(s, run.id, [{"kind": "profile", "key": key, "payload": {}}])
        return run, history.item_ids(s, run.id, "profile")

    with session_scope() as s:
        early, early_ids = planned(s, "acct-a")
        _, other_ids = planned(s, "acct-a", key="buyer-2")
        _, elsewhere_ids = planned(s, "acct-b")
        later, later_ids = planned(s, "acct-a")
        items = s.query(SyncItem).filter(SyncItem.id.in_(early_ids + other_ids)).all()
        assert history.superseded_profiles(s, early.id, items) == early_ids
        history.claim_items(s, later_ids, "o", 60)
        history.succeed_items(s, later_ids, "o")
        assert history.superseded_profiles(s, early.id, items) == early_ids  # delivered already: still newer
        b_items = s.query(SyncItem).filter(SyncItem.id.in_(elsewhere_ids)).all()
        assert history.superseded_profiles(s, b_items[0].run_id, b_items) == []
        stopped, _ = planned(s, "acct-a", key="buyer-2")
        s.flush()
        history.stop_run(s, stopped.id, "Klaviyo rejected the private key")  # its buyer-2 item: unsent
        assert history.superseded_profiles(s, early.id, items) == early_ids


def test_in_flight_sees_open_records_of_other_running_runs_of_the_same_account_only(migrated_database):
    def run_with(account, status, key, item_status="pending"):
        with session_scope() as s:
            run = make_run(s)
            run.account, run.status = account, status
            history.insert_items(s, run.id, [{"kind": "profile", "key": key, "status": item_status,
                                             "payload": {"external_id": key, "n": len(key)}}])
            return run.id

    mine = run_with("acct-a", "running", "tiktok:mine")
    run_with("acct-a", "running", "tiktok:open")
    run_with("acct-a", "running", "tiktok:sent", item_status="succeeded")
    run_with("acct-a", "succeeded", "tiktok:finished-run")
    run_with("acct-b", "running", "tiktok:other-account")
    keys = ["tiktok:mine", "tiktok:open", "tiktok:sent", "tiktok:finished-run", "tiktok:other-account"]
    with session_scope() as s:
        assert ledger.in_flight(s, "acct-a", [("profile", k) for k in keys], exclude_run=mine) == {("profile", "tiktok:open")}
        assert ledger.open_profile_payloads(s, "acct-a", keys, exclude_run=mine) == {
            "tiktok:open": {"external_id": "tiktok:open", "n": 11}}
        assert ledger.in_flight(s, "acct-c", [("profile", k) for k in keys], exclude_run=mine) == set()
