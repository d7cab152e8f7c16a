"""Consent, suppression and data-privacy deletion (rules in consent.py)."""

from __future__ import annotations

from .. import consent, resources, segments
from ..errors import invalid, not_found
from ..ids import ulid
from ..model import SuppressionJob
from ..validate import email, member, obj, optional_text, phone_number, resource
from ..web import body, empty, now, respond, root, store


def _list_or_404(list_id: str | None):
    if list_id is None:
        return None
    klist = store().lists.get(list_id)
    if klist is None:
        raise not_found(f"A list with id {list_id} does not exist.")
    return klist


def bulk_subscribe_profiles():
    rows, list_id, source = consent.parse_subscriptions(body(), "profile-subscription-bulk-create-job", "SUBSCRIBED", now())
    with store().lock:
        consent.subscribe(store(), rows, _list_or_404(list_id), source, now())
    return empty(202)


def bulk_unsubscribe_profiles():
    rows, list_id, _ = consent.parse_subscriptions(body(), "profile-subscription-bulk-delete-job", "UNSUBSCRIBED", now())
    with store().lock:
        consent.unsubscribe(store(), rows, _list_or_404(list_id), now())
    return empty(202)


def _suppression_targets(emails: list[str], list_id, segment_id, creating: bool) -> list:
    """Profiles a suppression job acts on: the emails' profiles (created when suppressing), or a group's members."""
    if list_id:
        return [store().profiles[p] for p in _list_or_404(list_id).members if p in store().profiles]
    if segment_id:
        segment = store().segments.get(segment_id)
        if segment is None:
            raise not_found(f"A segment with id {segment_id} does not exist.")
        return segments.members(store(), segment, now())
    profiles = []
    for address in emails:
        pid = store().owner("email", address)
        if pid is not None:
            profiles.append(store().profiles[pid])
        elif creating:  # suppressing an unknown email creates the profile
            profile = store().new_profile(now())
            store().set_identifier(profile, "email", address)
            profiles.append(profile)
    return profiles


def _suppression_job(kind: str):
    emails, list_id, segment_id = consent.parse_suppression_emails(body(), kind)
    creating = kind.endswith("create-job")
    with store().lock:
        profiles = _suppression_targets(emails, list_id, segment_id, creating)
        changed = consent.suppress(profiles, now()) if creating else consent.unsuppress(profiles, now())
        total = len(emails) or len(profiles)
        job = SuppressionJob(id=ulid(now()), seq=store().next_seq(), kind=kind, created=now(), total_count=total,
                             completed_count=changed, skipped_count=total - changed, list_id=list_id,
                             segment_id=segment_id)
        store().jobs[job.id] = job
        data = resources.suppression_job(job, root())
    return respond({"data": data, "links": {"self": data["links"]["self"]}}, 202)


def bulk_suppress_profiles():
    return _suppression_job("profile-suppression-bulk-create-job")


def bulk_unsuppress_profiles():
    return _suppression_job("profile-suppression-bulk-delete-job")


def request_profile_deletion():
    """Delete the profile named by exactly one of id, email or phone_number (at once, not later)."""
    data = resource(body(), "data-privacy-deletion-job")
    attributes = obj(member(data, "attributes", "/data"), "/data/attributes")
    at = "/data/attributes/profile/data"
    target = obj(member(obj(member(attributes, "profile", "/data/attributes"), "/data/attributes/profile"), "data",
                        "/data/attributes/profile"), at)
    given = {"id": optional_text(target.get("id"), f"{at}/id")}
    target_attributes = obj(target.get("attributes") or {}, f"{at}/attributes")
    given["email"] = email(target_attributes.get("email"), f"{at}/attributes/email")
    given["phone_number"] = phone_number(target_attributes.get("phone_number"), f"{at}/attributes/phone_number")
    given = {k: v for k, v in given.items() if v is not None}
    if len(given) != 1:
        raise invalid("Provide exactly one of id, email or phone_number.", at)
    (field, value), = given.items()
    with store().lock:
        pid = value if field == "id" else store().owner(field, value)
        if pid is not None:
            store().delete_profile(pid)
    return empty(202)


ROUTES = [
    ("POST", "/profile-subscription-bulk-create-jobs", bulk_subscribe_profiles),
    ("POST", "/profile-subscription-bulk-delete-jobs", bulk_unsubscribe_profiles),
    ("POST", "/profile-suppression-bulk-create-jobs", bulk_suppress_profiles),
    ("POST", "/profile-suppression-bulk-delete-jobs", bulk_unsuppress_profiles),
    ("POST", "/data-privacy-deletion-jobs", request_profile_deletion),
]
