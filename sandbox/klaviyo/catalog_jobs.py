"""Catalog bulk jobs: create, update and delete of items, variants and categories (nine job types).

A job is accepted at once (202) and runs later, with the lifecycle of the
profile import jobs (jobs.py): ``queued`` for ``stage_seconds``, ``processing``
for the next ``stage_seconds``, then ``complete``, applied lazily by ``settle()``
on the next request. Its rows apply one by one, in order, with the rules of a
single request (catalog.py); a row that fails becomes an entry of the job's
``errors`` (``APIJobErrorPayload``) whose pointer names the row, e.g.
``/data/attributes/variants/data/3/relationships/item/data/id``, and its id is
left out of the job's relationships. The spec does not say how Klaviyo's
pointers name a row [INF]; clients should also compare the relationships with
what they sent.

Limits (each bulk job's description in the spec): at most 100 rows per job
(catalog_input.py), 5 MB per payload (the app's gate), and 500 jobs in progress
per account. Over the last one the answer is a 429 whose ``Retry-After`` runs
until the oldest job in progress completes [INF: the spec states the limit, not
the answer; a 429 tells a client to wait and try again, which is what helps].
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from . import jobs
from .catalog import Catalog
from .catalog_input import Row
from .errors import ApiError
from .ids import request_uuid, ulid

#: "The maximum number of jobs in progress at one time is 500." (each bulk job's description)
MAX_OPEN_JOBS = 500
KEYS = {"item": "items", "variant": "variants", "category": "categories"}


@dataclass(frozen=True)
class JobType:
    name: str      # catalog-item-bulk-create-job
    kind: str      # item | variant | category
    action: str    # create | update | delete
    path: str      # catalog-item-bulk-create-jobs
    key: str       # items | variants | categories


JOB_TYPES = {t.name: t for t in (
    JobType(f"catalog-{kind}-bulk-{action}-job", kind, action, f"catalog-{kind}-bulk-{action}-jobs", KEYS[kind])
    for kind in KEYS for action in ("create", "update", "delete"))}


@dataclass
class JobError:
    id: str
    code: str
    title: str
    detail: str
    pointer: str | None


@dataclass
class CatalogJob:
    id: str
    seq: int
    job_type: JobType
    created: float
    stage_seconds: float
    rows: list
    #: An injected ending (faults.py ``job_outcome``): cancelled, short or orphan_error.
    outcome: str | None = None
    #: Row positions an injected fault (``fail_rows``) makes fail.
    failing: frozenset = frozenset()
    applied: bool = False
    completed_count: int = 0
    failed_count: int = 0
    errors: list = field(default_factory=list)
    resource_ids: list = field(default_factory=list)


def retry_after(catalog: Catalog, now: float) -> int:
    """Whole seconds until the oldest job in progress completes (at least 1)."""
    soonest = min(jobs.completed_at(catalog.jobs[j]) for j in catalog.pending)
    return max(1, math.ceil(soonest - now))


def submit(catalog: Catalog, job_type: JobType, rows: list[Row], now: float, stage_seconds: float,
           outcome: str | None = None, failing: frozenset = frozenset()) -> CatalogJob:
    job = CatalogJob(ulid(now), catalog.next_seq(), job_type, now, stage_seconds, rows, outcome, failing)
    catalog.jobs[job.id] = job
    catalog.pending.append(job.id)
    settle(catalog, now)  # a zero-length stage completes at once
    return job


def settle(catalog: Catalog, now: float) -> None:
    """Apply every job whose completion time has passed. Caller holds the account's lock."""
    if not catalog.pending:
        return
    for job_id in list(catalog.pending):
        job = catalog.jobs[job_id]
        if jobs.completed_at(job) <= now:
            apply(catalog, job)
            catalog.pending.remove(job_id)


def apply(catalog: Catalog, job: CatalogJob) -> None:
    when = jobs.completed_at(job)
    job.applied = True
    if job.outcome == "cancelled":
        return
    rows = job.rows[: len(job.rows) // 2] if job.outcome == "short" else job.rows
    root = f"/data/attributes/{job.job_type.key}/data"
    for i, row in enumerate(rows):
        try:
            if i == 0 and job.outcome == "orphan_error":
                raise ApiError(400, "invalid", "Invalid input.", "The row could not be processed (injected fault).",
                               pointer=None)
            if i in job.failing:
                raise ApiError(400, "invalid", "Invalid input.", "This row was refused (injected fault).",
                               pointer="/data/attributes")
            job.resource_ids.append(_apply_row(catalog, job.job_type, row, when))
            job.completed_count += 1
        except ApiError as error:
            pointer = None if job.outcome == "orphan_error" and i == 0 else \
                f"{root}/{i}" + (error.source.get("pointer") or "/data")[len("/data"):].rstrip("/")
            job.errors.append(JobError(request_uuid(), error.code, error.title, error.detail, pointer))
            job.failed_count += 1


def _apply_row(catalog: Catalog, job_type: JobType, row: Row, when: float) -> str:
    kind, action = job_type.kind, job_type.action
    if action == "delete":
        {"item": catalog.delete_item, "variant": catalog.delete_variant, "category": catalog.delete_category}[kind](row.id)
        return row.id
    if kind == "item":
        if action == "create":
            return catalog.create_item(row.external_id, row.attributes, row.related, when).id
        return catalog.update_item(row.id, row.attributes, row.related, when).id
    if kind == "variant":
        if action == "create":
            return catalog.create_variant(row.external_id, row.related[0], row.attributes, when).id
        return catalog.update_variant(row.id, row.attributes, when).id
    if action == "create":
        return catalog.create_category(row.external_id, row.attributes["name"], row.related, when).id
    return catalog.update_category(row.id, row.attributes.get("name"), row.related, when).id
