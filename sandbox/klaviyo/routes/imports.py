"""Profile bulk import jobs: submit, poll, read import errors (lifecycle in jobs.py)."""

from __future__ import annotations

from flask import request

from .. import jobs, resources
from ..errors import invalid, not_found
from ..filters import matches, parse_filter
from ..ids import ulid
from ..model import ImportJob
from ..validate import member, obj, relationship_ids, resource
from ..web import account, body, check_include, now, paged, respond, root, sandbox, self_link, sort_param, store

MAX_IMPORT_PROFILES = 10_000
PROFILES = "/data/attributes/profiles"


def bulk_import_profiles():
    data = resource(body(), "profile-bulk-import-job")
    attributes = obj(member(data, "attributes", "/data"), "/data/attributes")
    rows = member(obj(member(attributes, "profiles", "/data/attributes"), PROFILES), "data", PROFILES)
    if not isinstance(rows, list) or not rows:
        raise invalid("At least one profile is required.", f"{PROFILES}/data")
    if len(rows) > MAX_IMPORT_PROFILES:
        raise invalid(f"At most {MAX_IMPORT_PROFILES} profiles may be imported per job; got {len(rows)}.",
                      f"{PROFILES}/data")
    list_ids = relationship_ids(data, "lists", "list", many=True)
    with store().lock:
        for i, list_id in enumerate(list_ids):
            if list_id not in store().lists:
                raise invalid(f"A list with id {list_id} does not exist.", f"/data/relationships/lists/data/{i}/id")
        job = ImportJob(id=ulid(now()), seq=store().next_seq(), created=now(),
                        stage_seconds=sandbox().job_stage_seconds, rows=rows, list_ids=list_ids,
                        outcome=sandbox().faults.job_outcome(now(), request.get_data(as_text=True),
                                                            account=account().id))
        store().jobs[job.id] = job
        store().pending_imports.append(job.id)
        jobs.settle(store(), now())  # a zero-length stage completes at once
        data = resources.import_job(job, root(), now())
    return respond({"data": data, "links": {"self": data["links"]["self"]}}, 202)


def _job_or_404(job_id: str) -> ImportJob:
    job = store().jobs.get(job_id)
    if not isinstance(job, ImportJob):
        raise not_found(f"A profile bulk import job with id {job_id} does not exist.")
    return job


def get_bulk_import_profiles_job(job_id):
    include = check_include({"lists"})
    with store().lock:
        job = _job_or_404(job_id)
        document = {"data": resources.import_job(job, root(), now()), "links": self_link()}
        if include:
            document["included"] = [resources.klaviyo_list(store().lists[i], root())
                                    for i in job.list_ids if i in store().lists]
    return respond(document)


def get_bulk_import_profiles_jobs():
    terms = parse_filter(request.args.get("filter"), {"status": {"any", "equals"}})
    order = sort_param({"created_at"}, "created_at")
    sign = -1 if order.startswith("-") else 1
    key = lambda j: (sign * j.created, sign * j.seq)  # noqa: E731
    with store().lock:
        found = [j for j in store().jobs.values() if isinstance(j, ImportJob)
                 and matches(terms, lambda f, j=j: jobs.status(j, now()))]
        found.sort(key=key)
        return respond(paged(found, key, 20, 100, lambda j: resources.import_job(j, root(), now())))


def get_errors_for_bulk_import_profiles_job(id):
    with store().lock:
        errors = _job_or_404(id).errors
        return respond(paged(errors, lambda e: (e.seq,), 20, 100, resources.import_error))


ROUTES = [
    ("POST", "/profile-bulk-import-jobs", bulk_import_profiles),
    ("GET", "/profile-bulk-import-jobs", get_bulk_import_profiles_jobs),
    ("GET", "/profile-bulk-import-jobs/<job_id>", get_bulk_import_profiles_job),
    ("GET", "/profile-bulk-import-jobs/<id>/import-errors", get_errors_for_bulk_import_profiles_job),
]
