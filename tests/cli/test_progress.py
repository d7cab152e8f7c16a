"""The live progress of ``sync --wait``: succeeded and failed records apart, read from sync history."""

from __future__ import annotations

import re

from rich.console import Console

from db import history
from db.engine import session_scope


def make_run(items: list[tuple[str, str]], status: str, dry_run: bool = False) -> str:
    """A finished run with ``(kind, status)`` items, as the workers would leave it."""
    with session_scope() as session:
        run = history.create_run(session, shop="ROW_shop", sync_type="manual", trigger="cli", dry_run=dry_run)
        history.insert_items(session, run.id, [{"kind": kind, "key": f"{kind}-{i}", "status": item_status,
                                                "error": "Klaviyo refused the API key" if item_status == "failed"
                                                else None} for i, (kind, item_status) in enumerate(items)])
        run.status, run.phase, run.orders_read = status, "finished", 40
        return run.id


def followed(run_id: str) -> str:
    from cli.progress import follow

    console = Console(record=True, width=120, force_terminal=False)
    follow(run_id, console, poll=0.01)
    return console.export_text()


def bar(text: str, label: str) -> str:
    return re.search(rf"^{label}\s.*$", text, re.M).group(0)


def test_a_run_whose_every_record_failed_shows_none_synced(migrated_database):
    text = followed(make_run([("profile", "failed")] * 3 + [("event", "failed")] * 5, "failed"))
    assert re.search(r"0/5\s+0%", bar(text, "events synced")), text
    assert re.search(r"0/3\s+0%", bar(text, "profiles synced")), text
    assert re.search(r"5/5\s+100%", bar(text, "events failed")) and re.search(r"3/3", bar(text, "profiles failed"))


def test_succeeded_and_failed_records_are_counted_apart(migrated_database):
    items = [("profile", "succeeded")] * 4 + [("event", "succeeded")] * 7 + [("event", "failed")] * 2 + \
        [("order", "failed")]
    text = followed(make_run(items, "partial"))
    assert re.search(r"7/9\s+78%", bar(text, "events synced")), text
    assert re.search(r"4/4\s+100%", bar(text, "profiles synced")), text
    assert re.search(r"\b2\b", bar(text, "events failed")) and re.search(r"\b1\b", bar(text, "orders invalid")), text


def test_a_dry_run_shows_what_would_be_sent(migrated_database):
    text = followed(make_run([("profile", "skipped")] * 2 + [("event", "skipped")] * 3, "succeeded", dry_run=True))
    assert re.search(r"3/3", bar(text, "events planned")) and re.search(r"2/2", bar(text, "profiles planned")), text
