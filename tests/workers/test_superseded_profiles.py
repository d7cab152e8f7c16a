"""A profile planned earlier is not sent over a later plan of the same buyer (same Klaviyo account).

Database-backed; the connection's clients are an object that fails the test if it is used at all.
"""
from __future__ import annotations

import pytest

from db import history
from db.engine import session_scope
from db.models import SyncItem
from settings import Settings
from workers import delivery


class NoClients:
    """The run's connection context: any use of it means a request was on its way."""

    def __getattr__(self, name):
        raise AssertionError(f"the connection's clients used ({name}) for a profile a later plan replaces")


def planned_profile(account: str) -> tuple[str, int]:
    with session_scope() as s:
        run = history.create_run(s, shop="shop-1", sync_type="manual", trigger="api")
        run.account, run.connection_id, run.status = account, "c1", "running"
        history.insert_items(s, run.id, [{"kind": "profile", "key": "buyer-1", "payload": {"external_id": "buyer-1"}}])
        return run.id, history.item_ids(s, run.id, "profile")[0]


@pytest.mark.parametrize("path", ["single", "bulk"])
def test_an_earlier_plan_of_a_profile_is_recorded_without_a_request_once_a_later_one_exists(migrated_database, path):
    early_run, early_item = planned_profile("acct-a")
    planned_profile("acct-a")  # a later run (another shop of the account) planned the same buyer again
    delivery.bind(early_run, NoClients())
    try:
        if path == "single":
            delivery.send_profile(early_run, early_item, "owner", Settings())
        else:
            delivery.send_profile_batch(early_run, [early_item], "owner", Settings())
    finally:
        delivery.unbind(early_run)
    with session_scope() as s:
        assert s.get(SyncItem, early_item).status == "succeeded"
