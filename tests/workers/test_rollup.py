"""A run's roll-up when its last items settle at the same moment, on a real database and a real
Klaviyo stand-in, through the same ``delivery`` functions the Celery tasks call."""

from __future__ import annotations

import threading
from datetime import datetime, timezone
from decimal import Decimal

import pytest
from sqlalchemy import event

from db import history, secrets
from db.engine import get_engine, session_scope
from db.models import SyncRun
from klaviyo.models import KlaviyoEvent, KlaviyoProfile
from sandbox.klaviyo import KlaviyoStandIn
from settings import get_settings, reset_settings_cache
from workers import clients, delivery
from workers.payloads import event_payload
from tests.support import add_connection


@pytest.fixture
def klaviyo(migrated_database, redis_url, monkeypatch):
    with KlaviyoStandIn(rate_limit_scale=100) as standin:
        monkeypatch.setenv("KLAVIYO_API_BASE_URL", standin.url)
        monkeypatch.setenv("TIKTOK_APP_KEY", "ksync-app")
        monkeypatch.setenv("TIKTOK_APP_SECRET", "an-app-secret-for-the-keyring")
        monkeypatch.setenv("REDIS_URL", redis_url)
        reset_settings_cache()
        clients.reset()
        secrets.reset()
        add_connection("shop-1", standin.api_key)
        yield standin
    clients.reset()
    reset_settings_cache()


def dispatched_run_with_events(n: int) -> tuple[str, list[int]]:
    with session_scope() as s:
        run = history.create_run(s, shop="shop-1", sync_type="manual", trigger="api")
        run.connection_id = "shop-1"
        history.start_run(s, run, "test")
        run.phase = "dispatched"
        events = [KlaviyoEvent(metric_name="Placed Order", profile=KlaviyoProfile(email=f"buyer{i}@example.com"),
                               time=datetime(2026, 11, 1, tzinfo=timezone.utc), value=Decimal("9.99"),
                               value_currency="USD", unique_id=f"o{i}") for i in range(n)]
        history.insert_items(s, run.id, [{"kind": "event", "key": f"Placed Order|o{i}", "payload": event_payload(e)}
                                         for i, e in enumerate(events)])
        return run.id, history.item_ids(s, run.id, "event")


def test_a_run_whose_last_two_events_settle_at_the_same_moment_still_finishes(klaviyo, migrated_database):
    if not migrated_database.startswith("postgresql"):
        pytest.skip("SQLite lets one writer in at a time, so two outcomes cannot be in flight together")
    run_id, (first, second) = dispatched_run_with_events(2)

    # Hold each task's outcome transaction (its items marked succeeded) just before COMMIT until
    # the other's is there too: both are written, neither is visible to the other.
    both_written = threading.Barrier(2, timeout=20)
    wrote_outcome = threading.local()

    def note_outcome(conn, cursor, statement, parameters, context, executemany):
        if statement.startswith("UPDATE sync_items") and "succeeded" in str(parameters):
            wrote_outcome.flag = True

    def hold_commit(conn):
        if getattr(wrote_outcome, "flag", False):
            wrote_outcome.flag = False
            both_written.wait()

    engine = get_engine(migrated_database)
    event.listen(engine, "after_cursor_execute", note_outcome)
    event.listen(engine, "commit", hold_commit)
    outcomes, errors = {}, []

    def task(item_id: int) -> None:
        try:
            outcomes[item_id] = delivery.send_event(run_id, item_id, f"task-{item_id}:1", get_settings())
        except BaseException as exc:  # reported below, with the thread's own error
            errors.append(exc)

    threads = [threading.Thread(target=task, args=(item_id,)) for item_id in (first, second)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    finally:
        event.remove(engine, "after_cursor_execute", note_outcome)
        event.remove(engine, "commit", hold_commit)

    assert not errors, errors
    assert outcomes == {first: delivery.DONE, second: delivery.DONE}
    assert len(klaviyo.state()["events"]) == 2
    with session_scope() as s:
        run = s.get(SyncRun, run_id)
        assert (run.status, run.success_count, run.failed_count) == ("succeeded", 2, 0)
