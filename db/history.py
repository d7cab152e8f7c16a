"""Sync runs and their items: creation, claims, outcomes, stopping, the roll-up and the sweeper's queries.

Counters are never incremented: a run's counters are *computed* from its item
rows when it finishes, so retries, redelivered tasks and killed workers can
never make them disagree. Items are claimed with a short lease before anything
is sent, renewed while the task lives (``workers/leases.py``): a second copy of
a task (redelivery, duplicate enqueue) finds the claim and backs off instead of
sending twice, and work held by a dead worker is free again once its lease lapses.

An item ends in one of three ways, by the Singer split of errors:

- ``succeeded``;
- ``failed``: skippable, the record's own data was refused (listed, replayable with
  ``ksync retry-failed``; the watermark may pass it);
- ``unsent``: not delivered for a cause that is not the record's (the run stopped on a
  fatal error, or a transient cause outlasted the attempts). Not a record failure; the
  run ends ``failed`` and the watermark stays, so the next sync sends it.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Iterable, Sequence

from sqlalchemy import and_, case, func, or_, select, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from .models import FINAL_RUN_STATUSES, OPEN_ITEM_STATUSES, SyncItem, SyncRun, utcnow

#: Failed and unsent items copied into ``sync_runs.error_details`` (the rest are in sync_items).
ERROR_DETAILS_LIMIT = 50
#: Run phases, in order: queued -> reading -> planned (items recorded) -> dispatched (their tasks
#: sent) -> finished. A run finishes only once dispatched; a redelivered sync task resumes from the
#: phase it finds.
PHASES = ("queued", "reading", "planned", "dispatched", "finished")


def new_run_id() -> str:
    return str(uuid.uuid4())


def create_run(session: Session, *, shop: str, sync_type: str, trigger: str, dry_run: bool = False,
               window_start: datetime | None = None, window_end: datetime | None = None,
               period_key: str | None = None, parent_run_id: str | None = None, options: dict | None = None,
               run_id: str | None = None) -> SyncRun:
    run = SyncRun(id=run_id or new_run_id(), shop=shop, sync_type=sync_type, trigger=trigger, dry_run=dry_run,
                  window_start=window_start, window_end=window_end, period_key=period_key,
                  parent_run_id=parent_run_id, options=options or {}, status="queued", phase="queued",
                  orders_read=0, orders_invalid=0, items_total=0, records_synced=0, success_count=0, failed_count=0,
                  unsent_count=0)
    session.add(run)
    session.flush()
    return run


def start_run(session: Session, run: SyncRun, task_id: str | None) -> None:
    run.status = "running"
    if run.phase == "queued":
        run.phase = "reading"
    run.celery_task_id = task_id
    run.started_at = run.started_at or utcnow()
    run.updated_at = utcnow()


def insert_items(session: Session, run_id: str, rows: Iterable[dict], returning: bool = False) -> list[int]:
    """Insert item rows, skipping any (run, kind, key) already there (a re-run of planning). With
    ``returning``, the ids of the rows this call inserted (a streaming run dispatches just those)."""
    rows = [dict(r, run_id=run_id) for r in rows]
    if not rows:
        return []
    now = utcnow()
    for row in rows:  # a multi-row INSERT needs the same columns in every row
        row.setdefault("status", "pending")
        row.setdefault("attempts", 0)
        row.setdefault("payload", None)
        row.setdefault("error", None)
        row.setdefault("external_ref", None)
        row.setdefault("fingerprint", None)
        row.setdefault("created_at", now)
        row.setdefault("updated_at", now)
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    # executemany: SQLAlchemy batches it ("insertmanyvalues"), far cheaper than one giant VALUES list
    stmt = insert(SyncItem).on_conflict_do_nothing(index_elements=["run_id", "kind", "key"])
    if returning:
        return list(session.scalars(stmt.returning(SyncItem.id), rows))
    session.execute(stmt, rows)
    return []


def item_ids(session: Session, run_id: str, kind: str | None = None, statuses: Sequence[str] = ("pending",)) -> list[int]:
    query = select(SyncItem.id).where(SyncItem.run_id == run_id, SyncItem.status.in_(statuses))
    if kind:
        query = query.where(SyncItem.kind == kind)
    return list(session.scalars(query.order_by(SyncItem.id)))


# Claims and leases -------------------------------------------------------------------------------


def _lapsed(now: datetime):
    return or_(SyncItem.lease_until.is_(None), SyncItem.lease_until < now)


def claim_items(session: Session, ids: Sequence[int], owner: str, lease_seconds: float) -> tuple[list[SyncItem], datetime | None]:
    """Take the items no one else holds, each with a lease of ``lease_seconds``. ``owner`` is unique
    to this execution (task id plus a nonce), so a redelivered copy of the same task is a different
    owner and backs off. Items of a bulk job in flight (``external_ref``) belong to that job.

    Returns the claimed items and, if some are held by a live claim, when the earliest of
    those leases runs out (so the caller can come back then)."""
    now = utcnow()
    claimable = or_(SyncItem.status == "pending",
                    and_(SyncItem.status == "sending", SyncItem.external_ref.is_(None), _lapsed(now)))
    claim = (update(SyncItem).where(SyncItem.id.in_(ids), claimable)
             .values(status="sending", claimed_by=owner, claimed_at=now, attempts=SyncItem.attempts + 1,
                     lease_until=now + timedelta(seconds=lease_seconds), updated_at=now))
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
    held = list(session.scalars(select(SyncItem.lease_until).where(
        SyncItem.id.in_(ids), SyncItem.status == "sending", SyncItem.claimed_by != owner,
        SyncItem.lease_until.is_not(None))))
    return claimed, (min(held) if held else None)


def _owned(ids: Sequence[int], owner: str):
    return and_(SyncItem.id.in_(ids), SyncItem.status == "sending", SyncItem.claimed_by == owner)


def renew_leases(session: Session, ids: Sequence[int], owner: str, lease_seconds: float) -> int:
    """The heartbeat of a live task: its claims last another ``lease_seconds``."""
    result = session.execute(update(SyncItem).where(_owned(ids, owner))
                             .values(lease_until=utcnow() + timedelta(seconds=lease_seconds))
                             .execution_options(synchronize_session=False))
    return result.rowcount


def set_external_ref(session: Session, ids: Sequence[int], owner: str, ref: str) -> None:
    session.execute(update(SyncItem).where(_owned(ids, owner)).values(external_ref=ref, updated_at=utcnow())
                    .execution_options(synchronize_session=False))


def extend_job_lease(session: Session, job_id: str, until: datetime) -> None:
    """A bulk job still running: its items are held (by the job's poller) until ``until``."""
    session.execute(update(SyncItem).where(SyncItem.external_ref == job_id, SyncItem.status == "sending")
                    .values(lease_until=until, updated_at=utcnow()).execution_options(synchronize_session=False))


# Outcomes ----------------------------------------------------------------------------------------


def succeed_items(session: Session, ids: Sequence[int], owner: str) -> int:
    """Record the owner's items as delivered. An item the run marked ``unsent`` while this task was
    sending it (the run stopped meanwhile) is recorded too: it did go out."""
    done = dict(status="succeeded", error=None, claimed_by=None, lease_until=None, updated_at=utcnow())
    count = session.execute(update(SyncItem).where(_owned(ids, owner)).values(**done)
                            .execution_options(synchronize_session=False)).rowcount
    if count < len(ids):
        late = session.execute(update(SyncItem).where(SyncItem.id.in_(ids), SyncItem.status == "unsent",
                                                      SyncItem.claimed_by == owner).values(**done)
                               .execution_options(synchronize_session=False)).rowcount
        if late:
            refresh_counters(session, session.scalar(select(SyncItem.run_id).where(SyncItem.id == ids[0])))
        count += late
    return count


def fail_items(session: Session, ids: Sequence[int], owner: str, error: str, fingerprint: str | None = None) -> int:
    """Record a record failure (skippable: the record's own data). ``fingerprint`` (a hash of what
    was sent, for one item) lets later runs recognise the same failure and report it once."""
    values = dict(status="failed", error=error[:4000], claimed_by=None, lease_until=None, updated_at=utcnow())
    if fingerprint is not None:
        values["fingerprint"] = fingerprint
    result = session.execute(update(SyncItem).where(_owned(ids, owner)).values(**values)
                             .execution_options(synchronize_session=False))
    return result.rowcount


def unsend_items(session: Session, ids: Sequence[int], owner: str, error: str) -> int:
    """The items were not delivered for a cause that is not theirs (a transient cause outlasted the
    attempts): ``unsent``, not failed. The run will end ``failed`` and hold the watermark."""
    result = session.execute(update(SyncItem).where(_owned(ids, owner))
                             .values(status="unsent", error=error[:4000], lease_until=None, updated_at=utcnow())
                             .execution_options(synchronize_session=False))
    return result.rowcount


def release_items(session: Session, ids: Sequence[int], owner: str, error: str | None = None,
                  sent: bool = False, due_by: datetime | None = None) -> int:
    """Hand items back for a later try. ``sent=False`` gives back the attempt (nothing went out).
    ``due_by``: when the retry that will take them up should have done so; past it (the worker
    holding that retry died) the sweeper sends their task again."""
    values = {"status": "pending", "claimed_by": None, "updated_at": utcnow(), "lease_until": due_by,
              "error": error[:4000] if error else None}
    if not sent:
        values["attempts"] = SyncItem.attempts - 1
    result = session.execute(update(SyncItem).where(_owned(ids, owner)).values(**values)
                             .execution_options(synchronize_session=False))
    return result.rowcount


def settle_import_job(session: Session, job_id: str, failed: dict[int, str], requeued: Sequence[int],
                      fingerprints: dict[int, str] | None = None, unsent: Sequence[int] = (),
                      unsent_error: str = "") -> list[SyncItem]:
    """Record a finished bulk import job in a few statements, whatever its size: the rows it refused
    fail with their errors, ``requeued`` go back to pending (to be sent again), ``unsent`` ran out of
    attempts, the rest succeed. Returns the items that succeeded."""
    now = utcnow()
    in_job = and_(SyncItem.external_ref == job_id, SyncItem.status == "sending")
    if unsent:
        session.execute(update(SyncItem).where(in_job, SyncItem.id.in_(unsent))
                        .values(status="unsent", error=unsent_error[:4000], lease_until=None, updated_at=now)
                        .execution_options(synchronize_session=False))
    for item_id, error in failed.items():
        session.execute(update(SyncItem).where(in_job, SyncItem.id == item_id)
                        .values(status="failed", error=error[:4000], claimed_by=None, lease_until=None,
                                fingerprint=(fingerprints or {}).get(item_id), updated_at=now)
                        .execution_options(synchronize_session=False))
    if requeued:
        session.execute(update(SyncItem).where(in_job, SyncItem.id.in_(requeued))
                        .values(status="pending", external_ref=None, claimed_by=None, lease_until=None, updated_at=now)
                        .execution_options(synchronize_session=False))
    succeeded = list(session.scalars(select(SyncItem).where(in_job)))
    session.execute(update(SyncItem).where(in_job)
                    .values(status="succeeded", error=None, claimed_by=None, lease_until=None, updated_at=now)
                    .execution_options(synchronize_session=False))
    return succeeded


# The roll-up -------------------------------------------------------------------------------------


def has_open_items(session: Session, run_id: str) -> bool:
    """Whether any item of the run is still pending or sending (an index probe, whatever the run's size)."""
    return session.scalar(select(SyncItem.id).where(SyncItem.run_id == run_id,
                                                    SyncItem.status.in_(OPEN_ITEM_STATUSES)).limit(1)) is not None


def superseded_profiles(session: Session, run_id: str, items: Sequence[SyncItem]) -> list[int]:
    """Those of the run's profile items that a later plan of the same profile for the same Klaviyo
    account replaces: planned after ours (a higher id), it is open or already delivered. Profile
    totals come from the ledger at planning time, so of two runs planning one buyer (two shops
    feeding one account) the later saw more; the earlier, retried past the later's send (a 429, a
    dead worker), must not overwrite it with older totals."""
    keys = {item.key: item.id for item in items if item.kind == "profile"}
    if not keys:
        return []
    account = func.coalesce(session.scalar(select(SyncRun.account).where(SyncRun.id == run_id)), "")
    rows = session.execute(
        select(SyncItem.key, func.max(SyncItem.id)).join(SyncRun, SyncRun.id == SyncItem.run_id)
        .where(SyncItem.kind == "profile", SyncItem.key.in_(list(keys)), func.coalesce(SyncRun.account, "") == account,
               SyncItem.status.in_((*OPEN_ITEM_STATUSES, "succeeded")))
        .group_by(SyncItem.key))
    return sorted(keys[key] for key, newest in rows if newest > keys[key])


def item_counts(session: Session, run_id: str) -> dict[tuple[str, str], int]:
    """``{(kind, status): n}`` for a run: the live progress and the final roll-up."""
    rows = session.execute(select(SyncItem.kind, SyncItem.status, func.count())
                           .where(SyncItem.run_id == run_id).group_by(SyncItem.kind, SyncItem.status))
    return {(kind, status): n for kind, status, n in rows}


def _outcome(counts: dict[tuple[str, str], int]) -> tuple[int, int, int]:
    def total(status: str) -> int:
        return sum(n for (_, s), n in counts.items() if s == status)

    return total("succeeded"), total("failed"), total("unsent")


def _failure_details(session: Session, run_id: str) -> list[dict] | None:
    rows = session.execute(select(SyncItem.kind, SyncItem.key, SyncItem.status, SyncItem.error)
                           .where(SyncItem.run_id == run_id, SyncItem.status.in_(("failed", "unsent")))
                           .order_by(SyncItem.id).limit(ERROR_DETAILS_LIMIT))
    return [{"kind": k, "key": key, "status": st, "error": e} for k, key, st, e in rows] or None


def _unsent_reason(session: Session, run_id: str, unsent: int) -> str:
    last = session.scalar(select(SyncItem.error).where(SyncItem.run_id == run_id, SyncItem.status == "unsent",
                                                       SyncItem.error.is_not(None))
                          .order_by(SyncItem.id.desc()).limit(1))
    return (f"{unsent} record{'s' if unsent != 1 else ''} could not be sent ({last or 'no reason recorded'}); "
            "the watermark stays, so the next sync sends them")


def finalize_if_done(session: Session, run_id: str) -> SyncRun | None:
    """Finish the run if it is dispatched and none of its items is open. Idempotent: only the
    caller whose UPDATE flips the status gets the run back (to advance the watermark).

    ``succeeded`` when every record went out; ``partial`` when some failed for their own data
    (skippable: listed and replayable); ``failed`` when some could not be sent for another cause
    (``unsent``): the run says why, and the watermark stays."""
    if has_open_items(session, run_id):  # the common case, and a cheap index probe: check it first
        return None
    run = session.get(SyncRun, run_id)
    if run is None or run.status != "running" or run.phase != "dispatched":
        return None
    succeeded, failed, unsent = _outcome(item_counts(session, run_id))
    status = "failed" if unsent else ("partial" if failed else "succeeded")
    now = utcnow()
    duration = (now - run.started_at).total_seconds() if run.started_at else None
    result = session.execute(update(SyncRun).where(SyncRun.id == run_id, SyncRun.status == "running")
                             .values(status=status, phase="finished", success_count=succeeded, failed_count=failed,
                                     unsent_count=unsent, records_synced=succeeded, finished_at=now,
                                     duration_seconds=duration,
                                     error=_unsent_reason(session, run_id, unsent) if unsent else None,
                                     error_details=_failure_details(session, run_id), updated_at=now)
                             .execution_options(synchronize_session=False))
    if result.rowcount != 1:
        return None
    session.refresh(run)
    return run


def refresh_counters(session: Session, run_id: str) -> None:
    """Recompute a run's counters from its items (a stopped run, or a late outcome after it stopped)."""
    succeeded, failed, unsent = _outcome(item_counts(session, run_id))
    session.execute(update(SyncRun).where(SyncRun.id == run_id)
                    .values(success_count=succeeded, failed_count=failed, unsent_count=unsent,
                            records_synced=succeeded, error_details=_failure_details(session, run_id))
                    .execution_options(synchronize_session=False))


def stop_run(session: Session, run_id: str, error: str) -> bool:
    """Stop a run for a fatal cause (a revoked key, a token that cannot be refreshed, a configuration
    error): ``failed`` with one reason; every record it has not delivered becomes ``unsent`` (not a
    record failure), and the tasks still queued for them find nothing to claim. The watermark does
    not move. True if this call stopped it (several tasks may hit the same 401 at once)."""
    now = utcnow()
    result = session.execute(update(SyncRun).where(SyncRun.id == run_id, SyncRun.status.in_(("queued", "running")))
                             .values(status="failed", phase="finished", error=error[:4000], finished_at=now,
                                     updated_at=now)
                             .execution_options(synchronize_session=False))
    if result.rowcount != 1:
        return False
    session.execute(update(SyncItem).where(SyncItem.run_id == run_id, SyncItem.status.in_(OPEN_ITEM_STATUSES))
                    .values(status="unsent", error=f"not sent: the run stopped ({error[:300]})", lease_until=None,
                            updated_at=now)
                    .execution_options(synchronize_session=False))
    run = session.get(SyncRun, run_id)
    session.refresh(run)
    if run.started_at:
        run.duration_seconds = (now - run.started_at).total_seconds()
    refresh_counters(session, run_id)
    return True


# Reading history ---------------------------------------------------------------------------------


def get_run(session: Session, run_id: str) -> SyncRun | None:
    run = session.get(SyncRun, run_id)
    if run is None and len(run_id) >= 4:
        matches = list(session.scalars(select(SyncRun).where(SyncRun.id.like(f"{run_id}%")).limit(2)))
        run = matches[0] if len(matches) == 1 else None
    return run


def list_runs(session: Session, limit: int = 20, shop: str | None = None,
              connection_id: str | None = None) -> list[SyncRun]:
    query = select(SyncRun).order_by(SyncRun.created_at.desc()).limit(limit)
    if shop:
        query = query.where(SyncRun.shop == shop)
    if connection_id:
        query = query.where(SyncRun.connection_id == connection_id)
    return list(session.scalars(query))


def failed_items(session: Session, run_id: str) -> list[SyncItem]:
    return list(session.scalars(select(SyncItem).where(SyncItem.run_id == run_id, SyncItem.status == "failed")
                                .order_by(SyncItem.id)))


def reported_failures(session: Session, kind_keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], frozenset[str]]:
    """``(kind, key) -> fingerprints`` of record failures already on file for these records."""
    from .ledger import chunks

    found: dict[tuple[str, str], set[str]] = {}
    for chunk in chunks(sorted(set(kind_keys))):
        rows = session.execute(select(SyncItem.kind, SyncItem.key, SyncItem.fingerprint).where(
            SyncItem.status == "failed", SyncItem.fingerprint.is_not(None),
            tuple_(SyncItem.kind, SyncItem.key).in_(chunk)))
        for kind, key, fingerprint in rows:
            found.setdefault((kind, key), set()).add(fingerprint)
    return {k: frozenset(v) for k, v in found.items()}


def outstanding_failures(session: Session, limit: int | None = 50,
                         connection_id: str | None = None) -> tuple[list[SyncItem], int]:
    """Record failures not made good since, newest first, one per record (its latest failure), and
    how many there are: no later item of the same record in the same Klaviyo account succeeded, no
    event of it was delivered to that account, and no order of it was read cleanly into that
    account's ledger since. Accounts never vouch for each other: a buyer of two shops feeding two
    accounts who failed in one still needs attention there. ``connection_id`` keeps that
    connection's runs only."""
    from sqlalchemy.orm import aliased

    from .models import DeliveredEvent, LedgerOrder

    later, later_run = aliased(SyncItem), aliased(SyncRun)
    account = func.coalesce(SyncRun.account, "")
    newest = (select(func.max(later.id)).join(later_run, later_run.id == later.run_id)
              .where(later.kind == SyncItem.kind, later.key == SyncItem.key,
                     later.status.in_(("failed", "succeeded")), func.coalesce(later_run.account, "") == account)
              .scalar_subquery())
    query = select(SyncItem).join(SyncRun, SyncRun.id == SyncItem.run_id).where(
        SyncItem.status == "failed", SyncItem.id == newest,
        ~select(DeliveredEvent.event_key).where(DeliveredEvent.account == account,
                                                DeliveredEvent.event_key == SyncItem.key).exists(),
        ~select(LedgerOrder.order_id).where(SyncItem.kind == "order", LedgerOrder.account == account,
                                            LedgerOrder.order_id == SyncItem.key,
                                            LedgerOrder.updated_at > SyncItem.updated_at).exists())
    if connection_id is not None:
        query = query.where(SyncRun.connection_id == connection_id)
    total = session.scalar(select(func.count()).select_from(query.subquery()))
    ordered = query.order_by(SyncItem.id.desc())
    return list(session.scalars(ordered if limit is None else ordered.limit(limit))), total


def is_final(run: SyncRun) -> bool:
    return run.status in FINAL_RUN_STATUSES


# The sweeper's queries ---------------------------------------------------------------------------


def last_progress(session: Session, run_id: str) -> datetime | None:
    """When any of the run's items last changed (an index probe)."""
    return session.scalar(select(func.max(SyncItem.updated_at)).where(SyncItem.run_id == run_id))


def take_lost_items(session: Session, now: datetime, stale_seconds: float, limit: int = 5000) -> list[SyncItem]:
    """Open items of dispatched runs whose task is presumed lost, taken for a re-send:

    - held items whose lease lapsed: a running task stopped renewing it (its worker died), a retry
      was not taken up by its due time, or a bulk job stopped being polled;
    - items never held, of a run none of whose items moved for ``stale_seconds``: their message was
      lost (Redis restarted without persistence, or a worker died holding it unstarted).

    Each item returned is marked in the same statement that takes it (``lease_until`` = now +
    ``stale_seconds``; a lapsed claim goes back to pending), so that two sweepers never both take it
    and it is re-sent at most once per ``stale_seconds``."""
    stale_before = now - timedelta(seconds=stale_seconds)
    runs = list(session.scalars(select(SyncRun.id).where(SyncRun.status == "running", SyncRun.phase == "dispatched")))
    ids: list[int] = []
    lapsed = and_(SyncItem.lease_until.is_not(None), SyncItem.lease_until < now)
    for run_id in runs:
        condition = lapsed
        progress = last_progress(session, run_id)
        if progress is not None and progress < stale_before:
            condition = or_(lapsed, and_(SyncItem.lease_until.is_(None), SyncItem.updated_at < stale_before))
        ids += session.scalars(select(SyncItem.id).where(SyncItem.run_id == run_id,
                                                         SyncItem.status.in_(OPEN_ITEM_STATUSES), condition)
                               .order_by(SyncItem.id).limit(limit - len(ids)))
        if len(ids) >= limit:
            break
    if not ids:
        return []
    orphaned = and_(SyncItem.status == "sending", SyncItem.external_ref.is_(None))
    take = (update(SyncItem)
            .where(SyncItem.id.in_(ids), SyncItem.status.in_(OPEN_ITEM_STATUSES), _lapsed(now))
            .values(lease_until=now + timedelta(seconds=stale_seconds), updated_at=now,
                    status=case((orphaned, "pending"), else_=SyncItem.status),
                    claimed_by=case((orphaned, None), else_=SyncItem.claimed_by)))
    return sorted(session.scalars(take.returning(SyncItem).execution_options(populate_existing=True)),
                  key=lambda item: item.id)


def take_stuck_runs(session: Session, stale_before: datetime) -> list[SyncRun]:
    """Runs that stopped moving before their items were dispatched (their sync task is lost), each
    taken by a conditional UPDATE of ``updated_at``: restarted once per staleness period, never by
    two sweepers at once and not on every sweep."""
    now = utcnow()
    candidates = list(session.scalars(select(SyncRun.id).where(
        SyncRun.status.in_(("queued", "running")), SyncRun.phase.in_(("queued", "reading", "planned")),
        SyncRun.updated_at < stale_before)))
    taken = []
    for run_id in candidates:
        result = session.execute(update(SyncRun).where(SyncRun.id == run_id, SyncRun.updated_at < stale_before,
                                                       SyncRun.status.in_(("queued", "running")))
                                 .values(updated_at=now).execution_options(synchronize_session=False))
        if result.rowcount == 1:
            taken.append(session.get(SyncRun, run_id))
    return taken


def prune_runs(session: Session, sync_type: str, finished_before: datetime, limit: int = 1000) -> int:
    """Delete up to ``limit`` succeeded runs of ``sync_type`` finished before ``finished_before`` (their
    items go with them: ON DELETE CASCADE, and explicitly for SQLite without foreign keys)."""
    from sqlalchemy import delete

    ids = list(session.scalars(select(SyncRun.id).where(SyncRun.sync_type == sync_type, SyncRun.status == "succeeded",
                                                        SyncRun.finished_at < finished_before).limit(limit)))
    if ids:
        session.execute(delete(SyncItem).where(SyncItem.run_id.in_(ids)))
        session.execute(delete(SyncRun).where(SyncRun.id.in_(ids)))
    return len(ids)


def runs_in(session: Session, statuses: Sequence[str], phase: str | None = None) -> list[SyncRun]:
    query = select(SyncRun).where(SyncRun.status.in_(statuses))
    if phase:
        query = query.where(SyncRun.phase == phase)
    return list(session.scalars(query))
