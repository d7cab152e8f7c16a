"""Sync runs and their items: creation, claims, outcomes and the roll-up.

Counters are never incremented: a run's counters are *computed* from its item
rows when it finishes, so retries, redelivered tasks and killed workers can
never make them disagree. Items are claimed with a lease before anything is
sent: a second copy of a task (redelivery, duplicate enqueue) finds the claim
and backs off instead of sending twice.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Iterable, Sequence

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from .models import FINAL_RUN_STATUSES, OPEN_ITEM_STATUSES, SyncItem, SyncRun, utcnow

#: Failed items copied into ``sync_runs.error_details`` (the rest are in sync_items).
ERROR_DETAILS_LIMIT = 50


def new_run_id() -> str:
    return str(uuid.uuid4())


def create_run(session: Session, *, shop: str, sync_type: str, trigger: str, dry_run: bool = False,
               window_start: datetime | None = None, window_end: datetime | None = None,
               period_key: str | None = None, parent_run_id: str | None = None, options: dict | None = None,
               run_id: str | None = None) -> SyncRun:
    run = SyncRun(id=run_id or new_run_id(), shop=shop, sync_type=sync_type, trigger=trigger, dry_run=dry_run,
                  window_start=window_start, window_end=window_end, period_key=period_key,
                  parent_run_id=parent_run_id, options=options or {}, status="queued", phase="queued",
                  orders_read=0, orders_invalid=0, items_total=0, records_synced=0, success_count=0, failed_count=0)
    session.add(run)
    session.flush()
    return run


def start_run(session: Session, run: SyncRun, task_id: str | None) -> None:
    run.status = "running"
    run.phase = "reading"
    run.celery_task_id = task_id
    run.started_at = run.started_at or utcnow()


def insert_items(session: Session, run_id: str, rows: Iterable[dict]) -> None:
    """Insert item rows, skipping any (run, kind, key) already there (a re-run of planning)."""
    rows = [dict(r, run_id=run_id) for r in rows]
    if not rows:
        return
    now = utcnow()
    for row in rows:  # a multi-row INSERT needs the same columns in every row
        row.setdefault("status", "pending")
        row.setdefault("attempts", 0)
        row.setdefault("payload", None)
        row.setdefault("error", None)
        row.setdefault("external_ref", None)
        row.setdefault("created_at", now)
        row.setdefault("updated_at", now)
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    # executemany: SQLAlchemy batches it ("insertmanyvalues"), far cheaper than one giant VALUES list
    session.execute(insert(SyncItem).on_conflict_do_nothing(index_elements=["run_id", "kind", "key"]), rows)


def item_ids(session: Session, run_id: str, kind: str | None = None, statuses: Sequence[str] = ("pending",)) -> list[int]:
    query = select(SyncItem.id).where(SyncItem.run_id == run_id, SyncItem.status.in_(statuses))
    if kind:
        query = query.where(SyncItem.kind == kind)
    return list(session.scalars(query.order_by(SyncItem.id)))


def claim_items(session: Session, ids: Sequence[int], owner: str, lease_seconds: float) -> tuple[list[SyncItem], datetime | None]:
    """Take the items no one else holds. ``owner`` is unique to this execution (task id plus a
    nonce), so a redelivered copy of the same task is a different owner and backs off.

    Returns the claimed items and, if some are held by a live claim, when the earliest of
    those leases runs out (so the caller can come back then)."""
    now = utcnow()
    stale = now - timedelta(seconds=lease_seconds)
    claimable = or_(SyncItem.status == "pending", and_(SyncItem.status == "sending", SyncItem.claimed_at < stale))
    claim = (update(SyncItem).where(SyncItem.id.in_(ids), claimable)
             .values(status="sending", claimed_by=owner, claimed_at=now, attempts=SyncItem.attempts + 1, updated_at=now))
    if session.get_bind().dialect.update_returning:  # PostgreSQL, SQLite >= 3.35: one statement
        claimed = sorted(session.scalars(claim.returning(SyncItem).execution_options(populate_existing=True)),
                         key=lambda item: item.id)
    else:
        session.execute(claim.execution_options(synchronize_session=False))
        claimed = list(session.scalars(select(SyncItem).where(SyncItem.id.in_(ids), SyncItem.claimed_by == owner,
                                                              SyncItem.status == "sending").order_by(SyncItem.id)
                                       .execution_options(populate_existing=True)))
    if len(claimed) == len(set(ids)):
        return claimed, None
    held = list(session.scalars(select(SyncItem.claimed_at).where(
        SyncItem.id.in_(ids), SyncItem.status == "sending", SyncItem.claimed_by != owner)))
    lease_ends = min(held) + timedelta(seconds=lease_seconds) if held else None
    return claimed, lease_ends


def _owned(ids: Sequence[int], owner: str):
    return and_(SyncItem.id.in_(ids), SyncItem.status == "sending", SyncItem.claimed_by == owner)


def succeed_items(session: Session, ids: Sequence[int], owner: str) -> int:
    result = session.execute(update(SyncItem).where(_owned(ids, owner))
                             .values(status="succeeded", error=None, claimed_by=None, updated_at=utcnow())
                             .execution_options(synchronize_session=False))
    return result.rowcount


def fail_items(session: Session, ids: Sequence[int], owner: str, error: str) -> int:
    result = session.execute(update(SyncItem).where(_owned(ids, owner))
                             .values(status="failed", error=error[:4000], claimed_by=None, updated_at=utcnow())
                             .execution_options(synchronize_session=False))
    return result.rowcount


def release_items(session: Session, ids: Sequence[int], owner: str, error: str | None = None,
                  sent: bool = False) -> int:
    """Hand items back for a later try. ``sent=False`` gives back the attempt (nothing went out)."""
    values = {"status": "pending", "claimed_by": None, "updated_at": utcnow(), "error": error[:4000] if error else None}
    if not sent:
        values["attempts"] = SyncItem.attempts - 1
    result = session.execute(update(SyncItem).where(_owned(ids, owner)).values(**values)
                             .execution_options(synchronize_session=False))
    return result.rowcount


def settle_import_job(session: Session, job_id: str, failed: dict[int, str], requeued: Sequence[int]) -> list[SyncItem]:
    """Record a finished bulk import job in three statements, whatever its size: the rows it
    refused fail with their errors, ``requeued`` go back to pending, the rest succeed.
    Returns the items that succeeded."""
    now = utcnow()
    in_job = and_(SyncItem.external_ref == job_id, SyncItem.status == "sending")
    for item_id, error in failed.items():
        session.execute(update(SyncItem).where(in_job, SyncItem.id == item_id)
                        .values(status="failed", error=error[:4000], claimed_by=None, updated_at=now)
                        .execution_options(synchronize_session=False))
    if requeued:
        session.execute(update(SyncItem).where(in_job, SyncItem.id.in_(requeued))
                        .values(status="pending", external_ref=None, claimed_by=None, updated_at=now)
                        .execution_options(synchronize_session=False))
    succeeded = list(session.scalars(select(SyncItem).where(in_job)))
    session.execute(update(SyncItem).where(in_job)
                    .values(status="succeeded", error=None, claimed_by=None, updated_at=now)
                    .execution_options(synchronize_session=False))
    return succeeded


def set_external_ref(session: Session, ids: Sequence[int], owner: str, ref: str) -> None:
    session.execute(update(SyncItem).where(_owned(ids, owner)).values(external_ref=ref, updated_at=utcnow())
                    .execution_options(synchronize_session=False))


def has_open_items(session: Session, run_id: str) -> bool:
    """Whether any item of the run is still pending or sending (an index probe, whatever the run's size)."""
    return session.scalar(select(SyncItem.id).where(SyncItem.run_id == run_id,
                                                    SyncItem.status.in_(OPEN_ITEM_STATUSES)).limit(1)) is not None


def item_counts(session: Session, run_id: str) -> dict[tuple[str, str], int]:
    """``{(kind, status): n}`` for a run: the live progress and the final roll-up."""
    rows = session.execute(select(SyncItem.kind, SyncItem.status, func.count())
                           .where(SyncItem.run_id == run_id).group_by(SyncItem.kind, SyncItem.status))
    return {(kind, status): n for kind, status, n in rows}


def finalize_if_done(session: Session, run_id: str) -> SyncRun | None:
    """Finish the run if it is dispatched and none of its items is open. Idempotent: only the
    caller whose UPDATE flips the status gets the run back (to advance the watermark)."""
    if has_open_items(session, run_id):  # the common case, and a cheap index probe: check it first
        return None
    run = session.get(SyncRun, run_id)
    if run is None or run.status != "running" or run.phase != "dispatched":
        return None
    counts = item_counts(session, run_id)
    succeeded = sum(n for (_, status), n in counts.items() if status == "succeeded")
    failed = sum(n for (_, status), n in counts.items() if status == "failed")
    status = "failed" if failed and not succeeded else ("partial" if failed else "succeeded")
    failures = session.execute(select(SyncItem.kind, SyncItem.key, SyncItem.error)
                               .where(SyncItem.run_id == run_id, SyncItem.status == "failed")
                               .order_by(SyncItem.id).limit(ERROR_DETAILS_LIMIT))
    details = [{"kind": k, "key": key, "error": e} for k, key, e in failures]
    now = utcnow()
    duration = (now - run.started_at).total_seconds() if run.started_at else None
    result = session.execute(update(SyncRun).where(SyncRun.id == run_id, SyncRun.status == "running")
                             .values(status=status, phase="finished", success_count=succeeded, failed_count=failed,
                                     records_synced=succeeded, finished_at=now, duration_seconds=duration,
                                     error_details=details or None, updated_at=now)
                             .execution_options(synchronize_session=False))
    if result.rowcount != 1:
        return None
    session.refresh(run)
    return run


def fail_run(session: Session, run: SyncRun, error: str) -> None:
    """A run that could not even read its window (bad credentials, TikTok down past retries)."""
    now = utcnow()
    run.status = "failed"
    run.phase = "finished"
    run.finished_at = now
    run.duration_seconds = (now - run.started_at).total_seconds() if run.started_at else None
    run.error_details = [{"kind": "run", "key": run.shop, "error": error[:4000]}]


def get_run(session: Session, run_id: str) -> SyncRun | None:
    run = session.get(SyncRun, run_id)
    if run is None and len(run_id) >= 4:
        matches = list(session.scalars(select(SyncRun).where(SyncRun.id.like(f"{run_id}%")).limit(2)))
        run = matches[0] if len(matches) == 1 else None
    return run


def list_runs(session: Session, limit: int = 20, shop: str | None = None) -> list[SyncRun]:
    query = select(SyncRun).order_by(SyncRun.created_at.desc()).limit(limit)
    if shop:
        query = query.where(SyncRun.shop == shop)
    return list(session.scalars(query))


def failed_items(session: Session, run_id: str) -> list[SyncItem]:
    return list(session.scalars(select(SyncItem).where(SyncItem.run_id == run_id, SyncItem.status == "failed")
                                .order_by(SyncItem.id)))


def stale_items(session: Session, older_than: datetime, limit: int = 5000) -> list[SyncItem]:
    """Open items of running runs untouched since ``older_than``: their task message may be lost."""
    return list(session.scalars(
        select(SyncItem).join(SyncRun, SyncRun.id == SyncItem.run_id)
        .where(SyncRun.status == "running", SyncRun.phase == "dispatched",
               SyncItem.status.in_(OPEN_ITEM_STATUSES), SyncItem.updated_at < older_than)
        .order_by(SyncItem.id).limit(limit)))


def runs_in(session: Session, statuses: Sequence[str], phase: str | None = None) -> list[SyncRun]:
    query = select(SyncRun).where(SyncRun.status.in_(statuses))
    if phase:
        query = query.where(SyncRun.phase == phase)
    return list(session.scalars(query))


def is_final(run: SyncRun) -> bool:
    return run.status in FINAL_RUN_STATUSES
