"""Profile bulk import jobs: accepted at once, processed a little later.

A job is ``queued`` for ``stage_seconds`` after it is created, ``processing``
for the next ``stage_seconds``, then ``complete``. Nothing runs in the
background: every request (and every in-process ``state()``) first calls
``settle()``, which applies the jobs whose completion time has passed, so
the outcome is the same as a worker would give, and tests stay deterministic.

Applying a job upserts each valid row with the rules of ``POST /api/profile-import``
and adds it to the job's lists; a row that fails becomes an ``import-error``
whose pointer names the row (``/data/attributes/profiles/data/<i>/attributes/email``).
"""

from __future__ import annotations

import json

from .errors import ApiError, invalid
from .ids import ulid
from .model import ImportError_, ImportJob
from .profiles import upsert
from .store import Store
from .validate import UPSERT_ATTRIBUTES, obj, optional_text, profile_attributes, profile_meta, require_identifier

MAX_PROFILE_BYTES = 100 * 1024  #: per row, as for single profile writes
#: How long a finished job stays readable, reported as ``expires_at``.
RETENTION_SECONDS = 7 * 86400


def status(job: ImportJob, now: float) -> str:
    if now < job.created + job.stage_seconds:
        return "queued"
    if now < job.created + 2 * job.stage_seconds:
        return "processing"
    return "cancelled" if job.outcome == "cancelled" else "complete"


def started_at(job: ImportJob, now: float) -> float | None:
    return job.created + job.stage_seconds if status(job, now) != "queued" else None


def completed_at(job: ImportJob) -> float:
    return job.created + 2 * job.stage_seconds


def settle(store: Store, now: float) -> None:
    """Apply every job whose completion time has passed. Caller holds ``store.lock``."""
    if not store.pending_imports:
        return
    for job_id in list(store.pending_imports):
        job = store.jobs[job_id]
        if completed_at(job) <= now:
            apply(store, job)
            store.pending_imports.remove(job_id)


def apply(store: Store, job: ImportJob) -> None:
    when = completed_at(job)
    if job.outcome == "cancelled":
        job.applied = True
        return
    rows = job.rows[: len(job.rows) // 2] if job.outcome == "short" else job.rows
    for i, row in enumerate(rows):
        pointer = f"/data/attributes/profiles/data/{i}"
        if i == 0 and job.outcome == "orphan_error":
            job.errors.append(ImportError_(id=ulid(when), seq=store.next_seq(), code="invalid", title="Invalid input.",
                                           detail="The row could not be imported (injected fault).", pointer=None,
                                           original_payload={"email": "someone-else@example.invalid"}))
            job.failed_count += 1
            continue
        try:
            profile = _import_row(store, row, pointer, when)
        except ApiError as error:
            original = row.get("attributes") if isinstance(row, dict) and isinstance(row.get("attributes"), dict) else row
            job.errors.append(ImportError_(id=ulid(when), seq=store.next_seq(), code=error.code, title=error.title,
                                           detail=error.detail, pointer=error.source.get("pointer") or pointer,
                                           original_payload=original if isinstance(original, dict) else {"row": original}))
            job.failed_count += 1
            continue
        for list_id in job.list_ids:
            if list_id in store.lists:
                store.join_list(store.lists[list_id], profile.id, when)
        job.profile_ids.append(profile.id)
        job.completed_count += 1
    job.applied = True


def _import_row(store: Store, row, pointer: str, now: float):
    row = obj(row, pointer)
    if row.get("type") != "profile":
        raise invalid("The resource type must be 'profile'.", f"{pointer}/type")
    if len(json.dumps(row)) > MAX_PROFILE_BYTES:
        raise invalid("A profile may be at most 100 KB.", pointer)
    pid = optional_text(row.get("id"), f"{pointer}/id")
    attributes = profile_attributes(row.get("attributes") or {}, f"{pointer}/attributes", UPSERT_ATTRIBUTES)
    require_identifier(attributes, f"{pointer}/attributes", pid)
    meta = profile_meta(row.get("meta"), f"{pointer}/meta")
    profile, _ = upsert(store, pid, attributes, meta, now, pointer)
    return profile
