"""The nine catalog bulk job types: submit (202 + a queued job), read one, list (lifecycle in catalog_jobs.py).

Every job type has the same three operations, so the views are made from
``catalog_jobs.JOB_TYPES``; each is named after the spec's operationId for its
method and path (taken from ``klaviyo/ratelimits.json``, which is generated from
the spec), which the app uses as the rate-limit and fault key.
"""

from __future__ import annotations

from flask import g, request

from klaviyo.limits import operation_limits

from .. import catalog_input, catalog_jobs, catalog_resources, jobs
from ..catalog_jobs import JobType
from ..errors import not_found, throttled
from ..filters import matches, parse_filter
from ..validate import resource
from ..web import account, body, catalog, check_include, now, paged, respond, root, sandbox, self_link, store

RENDER = {"item": catalog_resources.item, "variant": catalog_resources.variant,
          "category": catalog_resources.category}
TABLES = {"item": "items", "variant": "variants", "category": "categories"}


def _submit(job_type: JobType):
    data = resource(body(), job_type.name)
    rows = catalog_input.job_rows(data, job_type.kind, job_type.action, job_type.key)
    box = sandbox()
    failing = box.faults.failing_rows(now(), data["attributes"][job_type.key]["data"], g.op, account().id)
    outcome = box.faults.job_outcome(now(), request.get_data(as_text=True), g.op, account().id)
    with store().lock:
        if len(catalog().pending) >= box.max_open_catalog_jobs:
            raise throttled(catalog_jobs.retry_after(catalog(), now()))
        job = catalog_jobs.submit(catalog(), job_type, rows, now(), box.job_stage_seconds, outcome, failing)
        data = catalog_resources.job(job, root(), now())
    return respond({"data": data, "links": {"self": data["links"]["self"]}}, 202)


def _job_or_404(job_type: JobType, job_id: str):
    job = catalog().jobs.get(job_id)
    if job is None or job.job_type is not job_type:
        raise not_found(f"A {job_type.name} with id {job_id} does not exist.")
    return job


def _get(job_type: JobType, job_id: str):
    includable = {job_type.key} if job_type.kind != "category" and job_type.action != "delete" else set()
    include = check_include(includable)
    with store().lock:
        job = _job_or_404(job_type, job_id)
        document = {"data": catalog_resources.job(job, root(), now()), "links": self_link()}
        if include:
            table = getattr(catalog(), TABLES[job_type.kind])
            done = [r["id"] for r in document["data"]["relationships"][job_type.key]["data"]]
            document["included"] = [RENDER[job_type.kind](table[rid], root()) for rid in done if rid in table]
    return respond(document)


def _list(job_type: JobType):
    terms = parse_filter(request.args.get("filter"), {"status": {"equals"}})
    key = lambda j: (j.created, j.seq)  # noqa: E731
    with store().lock:
        found = [j for j in catalog().jobs.values() if j.job_type is job_type
                 and matches(terms, lambda f, j=j: jobs.status(j, now()))]
        found.sort(key=key)
        return respond(paged(found, key, 100, 100, lambda j: catalog_resources.job(j, root(), now())))


def _routes() -> list:
    operation_ids = {(limit.method, limit.path): op for op, limit in operation_limits().items()}
    routes = []
    for job_type in catalog_jobs.JOB_TYPES.values():
        path = f"/{job_type.path}"
        for method, route, make in (("POST", path, lambda t: lambda: _submit(t)),
                                    ("GET", path, lambda t: lambda: _list(t)),
                                    ("GET", f"{path}/<job_id>", lambda t: lambda job_id: _get(t, job_id))):
            view = make(job_type)
            view.__name__ = operation_ids[(method, "/api" + route.replace("<job_id>", "{job_id}"))]
            routes.append((method, route, view))
    return routes


ROUTES = _routes()
