"""Segments: create with a definition, read, and list members evaluated live (see segments.py)."""

from __future__ import annotations

from flask import request

from .. import resources, segments
from ..errors import invalid, not_found
from ..filters import matches, parse_filter
from ..validate import member, obj, optional_text, resource
from ..web import body, csv_param, now, paged, respond, root, sort_param, store
from .lists import GROUP_SORT_KEYS, MEMBER_FILTERS, group_value, members_document

FILTERS = {"name": {"any", "equals"}, "id": {"any", "equals"}, "created": {"greater-than"},
           "updated": {"greater-than"}, "is_active": {"any", "equals"}, "is_starred": {"equals"}}
SEGMENT_MEMBER_FILTERS = {**MEMBER_FILTERS, "profile_id": {"any", "equals"}}


def _definition(raw) -> dict:
    """A ``SegmentDefinition``: non-empty condition groups of non-empty, typed conditions."""
    definition = obj(raw, "/data/attributes/definition")
    groups = member(definition, "condition_groups", "/data/attributes/definition")
    if not isinstance(groups, list) or not groups:
        raise invalid("At least one condition group is required.", "/data/attributes/definition/condition_groups")
    for g, group in enumerate(groups):
        at = f"/data/attributes/definition/condition_groups/{g}"
        conditions = member(obj(group, at), "conditions", at)
        if not isinstance(conditions, list) or not conditions:
            raise invalid("At least one condition is required.", f"{at}/conditions")
        for c, condition in enumerate(conditions):
            if not isinstance(obj(condition, f"{at}/conditions/{c}").get("type"), str):
                raise invalid("'type' is a required field.", f"{at}/conditions/{c}/type")
    return definition


def _document(segment, status: int = 200, profile_count: int | None = None):
    data = resources.segment(segment, root(), profile_count)
    document = {"data": data, "links": {"self": data["links"]["self"]}}
    notes = segments.unsupported(segment.definition)
    if notes:
        document["meta"] = {"sandbox": {"not_evaluated": notes}}
    return respond(document, status)


def create_segment():
    data = resource(body(), "segment")
    attributes = obj(member(data, "attributes", "/data"), "/data/attributes")
    name = optional_text(member(attributes, "name", "/data/attributes"), "/data/attributes/name")
    definition = _definition(member(attributes, "definition", "/data/attributes"))
    starred = attributes.get("is_starred") is True
    with store().lock:
        segment = store().new_segment(name, definition, starred, now())
        return _document(segment, 201)


def _segment_or_404(segment_id: str):
    segment = store().segments.get(segment_id)
    if segment is None:
        raise not_found(f"A segment with id {segment_id} does not exist.")
    return segment


def get_segment(id):
    counted = "profile_count" in csv_param("additional-fields[segment]")
    with store().lock:
        segment = _segment_or_404(id)
        count = len(segments.members(store(), segment, now())) if counted else None
        return _document(segment, profile_count=count)


def get_segments():
    terms = parse_filter(request.args.get("filter"), FILTERS)
    key = GROUP_SORT_KEYS[sort_param({"created", "updated", "name", "id"}, "created")]
    with store().lock:
        found = sorted((s for s in store().segments.values() if matches(terms, lambda f, s=s: group_value(s, f))),
                       key=key)
        return respond(paged(found, key, 10, 10, lambda s: resources.segment(s, root())))


def get_profiles_for_segment(id):
    with store().lock:
        segment = _segment_or_404(id)
        pairs = [(p, max(p.created, segment.created)) for p in segments.members(store(), segment, now())]
        document = members_document(pairs, SEGMENT_MEMBER_FILTERS)
    notes = segments.unsupported(segment.definition)
    if notes:
        document["meta"] = {"sandbox": {"not_evaluated": notes}}
    return respond(document)


ROUTES = [
    ("GET", "/segments", get_segments),
    ("POST", "/segments", create_segment),
    ("GET", "/segments/<id>", get_segment),
    ("GET", "/segments/<id>/profiles", get_profiles_for_segment),
]
