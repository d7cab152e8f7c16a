"""Profiles: create, update, upsert, get one, list with filters."""

from __future__ import annotations

from flask import request

from .. import profiles, resources
from ..errors import invalid, not_found
from ..filters import Term, matches, parse_filter
from ..paging import descending_text
from ..validate import (CREATE_ATTRIBUTES, UPSERT_ATTRIBUTES, member, optional_text, profile_attributes,
                        profile_meta, require_identifier, resource)
from ..web import body, csv_param, now, paged, respond, root, self_link, sort_param, sparse_fields, store

MAX_PROFILE_PAYLOAD = 100 * 1024  #: bytes per profile write (the spec's "100KB per payload")

FILTERS = {"id": {"equals", "any"}, "email": {"equals", "any"}, "phone_number": {"equals", "any"},
           "external_id": {"equals", "any"}, "_kx": {"equals"}, "created": {"greater-than", "less-than"},
           "updated": {"greater-than", "less-than"}}

SORT_KEYS = {
    "id": lambda p: (p.id,), "-id": lambda p: (*descending_text(p.id), -p.seq),
    "created": lambda p: (p.created, p.seq), "-created": lambda p: (-p.created, -p.seq),
    "updated": lambda p: (p.updated, p.seq), "-updated": lambda p: (-p.updated, -p.seq),
    "email": lambda p: (p.fields["email"] or "", p.seq),
    "-email": lambda p: (*descending_text(p.fields["email"]), -p.seq),
}


def _check_size() -> None:
    if (request.content_length or 0) > MAX_PROFILE_PAYLOAD:
        raise invalid("Profile payloads may be at most 100 KB.", "/data")


def _document(profile, status: int = 200, subscriptions: bool = False):
    data = resources.profile(profile, root(), subscriptions=subscriptions)
    return respond({"data": data, "links": {"self": data["links"]["self"]}}, status)


def create_profile():
    _check_size()
    data = resource(body(), "profile")
    attributes = profile_attributes(member(data, "attributes", "/data"), "/data/attributes", CREATE_ATTRIBUTES)
    require_identifier(attributes, "/data/attributes")
    with store().lock:
        profile = profiles.create(store(), attributes, now())
        return _document(profile, 201)


def update_profile(id):
    _check_size()
    data = resource(body(), "profile")
    if data.get("id") != id:
        raise invalid("The id in the body must match the id in the URL.", "/data/id")
    attributes = profile_attributes(member(data, "attributes", "/data"), "/data/attributes", CREATE_ATTRIBUTES)
    meta = profile_meta(data.get("meta"), "/data/meta")
    with store().lock:
        profile = profiles.update(store(), id, attributes, meta, now())
        return _document(profile)


def create_or_update_profile():
    _check_size()
    data = resource(body(), "profile")
    attributes = profile_attributes(member(data, "attributes", "/data"), "/data/attributes", UPSERT_ATTRIBUTES)
    pid = optional_text(data.get("id"), "/data/id")
    require_identifier(attributes, "/data/attributes", pid)
    meta = profile_meta(data.get("meta"), "/data/meta")
    with store().lock:
        profile, created = profiles.upsert(store(), pid, attributes, meta, now())
        return _document(profile, 201 if created else 200)


def get_profile(id):
    subscriptions = "subscriptions" in csv_param("additional-fields[profile]")
    with store().lock:
        profile = store().profiles.get(id)
        if profile is None:
            raise not_found(f"A profile with id {id} does not exist.")
        data = resources.sparse(resources.profile(profile, root(), subscriptions=subscriptions), sparse_fields())
    return respond({"data": data, "links": self_link()})


def _profile_value(profile, field: str):
    if field == "id":
        return profile.id
    if field in ("created", "updated"):
        return getattr(profile, field)
    return profile.fields.get(field)


def lowercase_emails(terms: list[Term]) -> list[Term]:
    """Emails match case-insensitively, so compare lower-cased filter values."""
    def lower(v):
        return [lower(x) for x in v] if isinstance(v, list) else (v.lower() if isinstance(v, str) else v)
    return [Term(t.op, t.field, lower(t.value)) if t.field == "email" else t for t in terms]


def get_profiles():
    terms = lowercase_emails(parse_filter(request.args.get("filter"), FILTERS))
    key = SORT_KEYS[sort_param({"id", "created", "updated", "email"}, "created")]
    subscriptions = "subscriptions" in csv_param("additional-fields[profile]")
    fields = sparse_fields()
    with store().lock:
        found = [p for p in store().profiles.values() if matches(terms, lambda f, p=p: _profile_value(p, f))]
        found.sort(key=key)
        document = paged(found, key, 20, 100,
                         lambda p: resources.sparse(resources.profile(p, root(), subscriptions=subscriptions), fields))
    return respond(document)


ROUTES = [
    ("POST", "/profiles", create_profile),
    ("GET", "/profiles", get_profiles),
    ("GET", "/profiles/<id>", get_profile),
    ("PATCH", "/profiles/<id>", update_profile),
    ("POST", "/profile-import", create_or_update_profile),
]
