"""Records to JSON:API resource objects, shaped as the spec's response schemas.

``root`` is the server's root URL (``http://127.0.0.1:8025``); links are
absolute and end with ``/`` as Klaviyo's do. Attribute sets follow the
2026-07-15 response schemas (``PostProfileResponse``,
``GetEventResponseCollectionCompoundDocument``, ``PostListCreateResponse``...).
"""

from __future__ import annotations

from . import jobs
from .consent import can_receive_email, can_receive_sms
from .ids import event_uuid
from .model import Event, ImportError_, ImportJob, KList, Metric, Profile, Segment, SuppressionJob
from .times import iso

#: Klaviyo reports API-created metrics under its "API" integration.
API_INTEGRATION = {"object": "integration", "id": "0eMvjm", "key": "api", "name": "API", "category": "API"}


def _self(root: str, kind: str, rid: str) -> dict:
    return {"self": f"{root}/api/{kind}/{rid}/"}


def _related(root: str, kind: str, rid: str, name: str) -> dict:
    return {"links": {"self": f"{root}/api/{kind}/{rid}/relationships/{name}/",
                      "related": f"{root}/api/{kind}/{rid}/{name}/"}}


def profile(p: Profile, root: str, subscriptions: bool = False, joined: float | None = None) -> dict:
    attributes = {**p.fields, "created": iso(p.created), "updated": iso(p.updated),
                  "last_event_date": iso(p.last_event_date), "location": dict(p.location),
                  "properties": dict(p.properties)}
    if joined is not None:
        attributes["joined_group_at"] = iso(joined)
    if subscriptions:
        attributes["subscriptions"] = profile_subscriptions(p)
    return {"type": "profile", "id": p.id, "attributes": attributes,
            "relationships": {name: _related(root, "profiles", p.id, name) for name in ("lists", "segments")},
            "links": _self(root, "profiles", p.id)}


def profile_subscriptions(p: Profile) -> dict:
    """``attributes.subscriptions`` (``additional-fields[profile]=subscriptions``)."""
    email, sms = p.email_marketing, p.sms_marketing
    never = {"consent": "NEVER_SUBSCRIBED", "consent_timestamp": None}
    return {
        "email": {"marketing": {
            "can_receive_email_marketing": can_receive_email(p), "consent": email.status,
            "consent_timestamp": iso(email.timestamp), "last_updated": iso(email.last_updated),
            "method": email.method, "method_detail": email.method_detail, "custom_method_detail": None,
            "double_optin": None,
            "suppression": [{"reason": s["reason"], "timestamp": iso(s["timestamp"])} for s in p.suppressions],
            "list_suppressions": [{**s, "timestamp": iso(s["timestamp"])} for s in p.list_suppressions],
        }},
        "sms": {
            "marketing": {"can_receive_sms_marketing": can_receive_sms(p), "consent": sms.status,
                          "consent_timestamp": iso(sms.timestamp), "method": sms.method,
                          "method_detail": sms.method_detail, "last_updated": iso(sms.last_updated)},
            "transactional": {"can_receive_sms_transactional": False, **never, "method": None, "method_detail": None,
                              "last_updated": None},
        },
        "mobile_push": {"marketing": {"can_receive_push_marketing": False, **never}},
    }


def event(e: Event, root: str) -> dict:
    """Klaviyo mirrors ``value`` and ``unique_id`` into ``event_properties`` as ``$value`` / ``$event_id``."""
    properties = dict(e.properties)
    if e.value is not None:
        properties["$value"] = e.value
    if e.unique_id is not None:
        properties["$event_id"] = e.unique_id
    return {"type": "event", "id": e.id,
            "attributes": {"timestamp": int(e.time), "event_properties": properties, "datetime": iso(e.time),
                           "uuid": event_uuid(e.id)},
            "relationships": {
                "profile": {"data": {"type": "profile", "id": e.profile_id}, **_related(root, "events", e.id, "profile")},
                "metric": {"data": {"type": "metric", "id": e.metric_id}, **_related(root, "events", e.id, "metric")},
            },
            "links": _self(root, "events", e.id)}


def metric(m: Metric, root: str) -> dict:
    return {"type": "metric", "id": m.id,
            "attributes": {"name": m.name, "created": iso(m.created), "updated": iso(m.created),
                           "integration": dict(API_INTEGRATION)},
            "links": _self(root, "metrics", m.id)}


def klaviyo_list(k: KList, root: str, profile_count: bool = False) -> dict:
    attributes = {"name": k.name, "created": iso(k.created), "updated": iso(k.updated),
                  "opt_in_process": k.opt_in_process}
    if profile_count:
        attributes["profile_count"] = len(k.members)
    return {"type": "list", "id": k.id, "attributes": attributes,
            "relationships": {n: _related(root, "lists", k.id, n) for n in ("profiles", "tags", "flow-triggers")},
            "links": _self(root, "lists", k.id)}


def segment(s: Segment, root: str, profile_count: int | None = None) -> dict:
    attributes = {"name": s.name, "definition": s.definition, "created": iso(s.created), "updated": iso(s.updated),
                  "is_active": s.is_active, "is_processing": False, "is_starred": s.is_starred}
    if profile_count is not None:
        attributes["profile_count"] = profile_count
    return {"type": "segment", "id": s.id, "attributes": attributes,
            "relationships": {n: _related(root, "segments", s.id, n) for n in ("profiles", "tags", "flow-triggers")},
            "links": _self(root, "segments", s.id)}


def import_job(j: ImportJob, root: str, now: float) -> dict:
    done = jobs.status(j, now) in ("complete", "cancelled")
    base = f"{root}/api/profile-bulk-import-jobs/{j.id}"
    return {"type": "profile-bulk-import-job", "id": j.id,
            "attributes": {"status": jobs.status(j, now), "created_at": iso(j.created), "total_count": len(j.rows),
                           "completed_count": j.completed_count if done else 0,
                           "failed_count": j.failed_count if done else 0,
                           "completed_at": iso(jobs.completed_at(j)) if done else None,
                           "expires_at": iso(jobs.completed_at(j) + jobs.RETENTION_SECONDS),
                           "started_at": iso(jobs.started_at(j, now))},
            "relationships": {
                "lists": {"data": [{"type": "list", "id": i} for i in j.list_ids],
                          **_related(root, "profile-bulk-import-jobs", j.id, "lists")},
                "profiles": _related(root, "profile-bulk-import-jobs", j.id, "profiles"),
                "import-errors": {"links": {"related": f"{base}/import-errors/"}},
            },
            "links": {"self": f"{base}/"}}


def import_error(e: ImportError_) -> dict:
    return {"type": "import-error", "id": e.id,
            "attributes": {"code": e.code, "title": e.title, "detail": e.detail, "source": {"pointer": e.pointer},
                           "original_payload": e.original_payload}}


def suppression_job(j: SuppressionJob, root: str) -> dict:
    path = "profile-suppression-bulk-create-jobs" if j.kind.endswith("create-job") else "profile-suppression-bulk-delete-jobs"
    relationships = {}
    if j.list_id:
        relationships["lists"] = {"data": [{"type": "list", "id": j.list_id}], **_related(root, path, j.id, "lists")}
    if j.segment_id:
        relationships["segments"] = {"data": [{"type": "segment", "id": j.segment_id}],
                                     **_related(root, path, j.id, "segments")}
    return {"type": j.kind, "id": j.id,
            "attributes": {"status": "complete", "created_at": iso(j.created), "total_count": j.total_count,
                           "completed_count": j.completed_count, "completed_at": iso(j.created),
                           "skipped_count": j.skipped_count},
            "relationships": relationships,
            "links": _self(root, path, j.id)}


def sparse(resource: dict, fields: dict[str, list[str]]) -> dict:
    """Apply ``fields[<type>]=a,b.c`` to one resource (nested names keep their top-level key)."""
    wanted = fields.get(resource["type"])
    if wanted:
        keep = {name.split(".")[0] for name in wanted}
        resource["attributes"] = {k: v for k, v in resource["attributes"].items() if k in keep}
    return resource
