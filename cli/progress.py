"""Follow a run live (rich progress bars) and render runs as tables.

Progress is read from sync history, the same rows Flower-independent monitoring
would read: orders read, and per kind of record how many Klaviyo accepted and how
many failed, apart. Counting records *sent* instead made a run in which every record
failed look complete ("events sent 6479/6479 100%"). Polling the database means it
works from any machine that can reach it, not just the worker's.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from db import history
from db.engine import session_scope

FINAL = ("succeeded", "partial", "failed", "skipped")
STATUS_STYLE = {"succeeded": "green", "partial": "yellow", "failed": "red", "running": "cyan", "queued": "dim",
                "skipped": "dim"}
#: The kinds of record a run sends, as the bars name them.
SENT_KINDS = (("profile", "profiles"), ("event", "events"))


@dataclass(frozen=True)
class Snapshot:
    status: str
    phase: str
    orders_read: int
    dry_run: bool
    #: ``{(kind, status): n}`` for the run's records.
    counts: dict
    run: object

    def total(self, kind: str) -> int:
        return sum(n for (k, _), n in self.counts.items() if k == kind)

    def count(self, kind: str, status: str) -> int:
        return self.counts.get((kind, status), 0)


def snapshot(run_id: str) -> Snapshot:
    with session_scope() as session:
        run = history.get_run(session, run_id)
        if run is None:
            raise LookupError(f"no run {run_id}")
        counts = history.item_counts(session, run.id)
    return Snapshot(run.status, run.phase, run.orders_read, bool(run.dry_run), counts, run)


def follow(run_id: str, console: Console, timeout: float | None = None, poll: float = 0.5,
           stop=None) -> Snapshot:
    """Show live bars until the run is final (or ``timeout`` passes); returns the last snapshot.
    ``stop()``, checked at every poll, ends it with ``KeyboardInterrupt``.

    Per kind of record, one bar counts the records Klaviyo accepted out of those planned
    ("synced"; "planned" in a dry run, which sends nothing) and one counts the failed ones;
    orders TikTok sent that we could not read are "orders invalid".
    """
    started = time.monotonic()
    columns = (TextColumn("{task.description:<16}"), BarColumn(), MofNCompleteColumn(), TaskProgressColumn(),
               TimeElapsedColumn())
    with Progress(*columns, console=console, transient=False) as progress:
        orders = progress.add_task("orders read", total=None)
        invalid = progress.add_task("orders invalid", total=None)
        bars = {}
        while True:
            snap = snapshot(run_id)
            read_all = snap.phase in ("dispatched", "finished")
            progress.update(orders, completed=snap.orders_read, total=snap.orders_read if read_all else None)
            progress.update(invalid, completed=snap.count("order", "failed"), total=snap.orders_read or None)
            for kind, plural in SENT_KINDS:
                if kind not in bars:
                    label = "planned" if snap.dry_run else "synced"
                    bars[kind] = (progress.add_task(f"{plural} {label}", total=None),
                                  progress.add_task(f"{plural} failed", total=None))
                done_bar, failed_bar = bars[kind]
                total = snap.total(kind) or None
                done = snap.total(kind) if snap.dry_run else snap.count(kind, "succeeded")
                progress.update(done_bar, completed=done, total=total)
                progress.update(failed_bar, completed=snap.count(kind, "failed"), total=total)
            if snap.status in FINAL or (timeout and time.monotonic() - started > timeout):
                return snap
            if stop is not None and stop():
                raise KeyboardInterrupt
            time.sleep(poll)


def runs_table(runs) -> Table:
    table = Table(title="Sync history", show_lines=False)
    for column in ("run", "created (UTC)", "connection", "type", "trigger", "status", "window (UTC)", "synced",
                   "failed", "not sent", "seconds", "why it failed"):
        table.add_column(column, no_wrap=column in ("run", "created (UTC)"), overflow="fold")
    for run in runs:
        window = (f"{run.window_start:%m-%d %H:%M} → {run.window_end:%m-%d %H:%M}"
                  if run.window_start and run.window_end else "")
        style = STATUS_STYLE.get(run.status, "")
        table.add_row(run.id[:8], f"{run.created_at:%Y-%m-%d %H:%M:%S}", (run.connection_id or run.shop)[:14], run.sync_type, run.trigger,
                      f"[{style}]{run.status}[/]" if style else run.status, window, str(run.records_synced),
                      str(run.failed_count), str(run.unsent_count or ""),
                      f"{run.duration_seconds:.1f}" if run.duration_seconds is not None else "",
                      _short(run.error or ""))
    return table


def _short(text: str, width: int = 90) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def run_dict(run) -> dict:
    """The seed's KlaviyoSyncHistory fields plus ours, JSON-ready."""
    def iso(value):
        return value.isoformat() if value else None

    return {
        "id": run.id, "connection": run.connection_id, "account": run.account, "shop": run.shop, "sync_type": run.sync_type, "direction": run.direction,
        "trigger": run.trigger, "status": run.status, "phase": run.phase, "dry_run": run.dry_run,
        "window_start": iso(run.window_start), "window_end": iso(run.window_end),
        "records_synced": run.records_synced, "success_count": run.success_count, "failed_count": run.failed_count,
        "unsent_count": run.unsent_count, "error": run.error,
        "orders_read": run.orders_read, "orders_invalid": run.orders_invalid, "items_total": run.items_total,
        "duration_seconds": run.duration_seconds, "error_details": run.error_details, "created_at": iso(run.created_at),
        "started_at": iso(run.started_at), "finished_at": iso(run.finished_at), "celery_task_id": run.celery_task_id,
        "parent_run_id": run.parent_run_id, "options": run.options,
    }
