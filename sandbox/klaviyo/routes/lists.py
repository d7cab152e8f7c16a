"""Lists and their members. Membership changes never touch consent."""

from __future__ import annotations

from flask import request

from .. import resources
from ..errors import invalid, not_found
from ..filters import matches, parse_filter
from ..paging import descending_text
from ..validate import member, obj, optional_text, resource
from ..web import body, csv_param, empty, now, paged, respond, root, self_link, sort_param, sparse_fields, store
from .profiles import lowercase_emails

MAX_MEMBERS_PER_CALL = 1000
OPT_IN_PROCESSES = ("single_opt_in", "double_opt_in")

FILTERS = {"name": {"any", "equals"}, "id": {"any", "equals"}, "created": {"greater-than"},
           "updated": {"greater-than"}}
MEMBER_FILTERS = {"email": {"any", "equals"}, "phone_number": {"any", "equals"}, "push_token": {"any", "equals"},
                  "_kx": {"equals"}, "joined_group_at": {"greater-or-equal", "greater-than", "less-or-equal", "less-than"}}


#: Sort keys shared by lists and segments.
GROUP_SORT_KEYS = {
    "created": lambda g: (g.created, g.seq), "-created": lambda g: (-g.created, -g.seq),
    "updated": lambda g: (g.updated, g.seq), "-updated": lambda g: (-g.updated, -g.seq),
    "name": lambda g: (g.name, g.seq), "-name": lambda g: (*descending_text(g.name), -g.seq),
    "id": lambda g: (g.id,), "-id": lambda g: descending_text(g.id),
}


def group_value(group, field: str):
    return getattr(group, field, None)


def member_value(profile, joined: float, field: str):
    if field == "joined_group_at":
        return joined
    if field == "profile_id":
        return profile.id
    return profile.fields.get(field)


def members_document(pairs: list, filters: dict):
    """Page of ``(profile, joined_group_at)`` pairs as list/segment member resources."""
    terms = lowercase_emails(parse_filter(request.args.get("filter"), filters))
    order = sort_param({"joined_group_at"}, "joined_group_at")
    subscriptions = "subscriptions" in csv_param("additional-fields[profile]")
    fields = sparse_fields()
    found = [(p, j) for p, j in pairs if matches(terms, lambda f, p=p, j=j: member_value(p, j, f))]
    sign = -1 if order.startswith("-") else 1
    key = lambda pair: (sign * pair[1], sign * pair[0].seq)  # noqa: E731
    found.sort(key=key)
    return paged(found, key, 20, 100,
                 lambda pair: resources.sparse(resources.profile(pair[0], root(), subscriptions, joined=pair[1]), fields))


def get_lists():
    terms = parse_filter(request.args.get("filter"), FILTERS)
    key = GROUP_SORT_KEYS[sort_param({"created", "updated", "name", "id"}, "created")]
    with store().lock:
        found = sorted((k for k in store().lists.values() if matches(terms, lambda f, k=k: group_value(k, f))), key=key)
        return respond(paged(found, key, 10, 10, lambda k: resources.klaviyo_list(k, root())))


def create_list():
    data = resource(body(), "list")
    attributes = obj(member(data, "attributes", "/data"), "/data/attributes")
    name = optional_text(member(attributes, "name", "/data/attributes"), "/data/attributes/name")
    if not name.strip():
        raise invalid("A list name may not be blank.", "/data/attributes/name")
    opt_in = attributes.get("opt_in_process") or "single_opt_in"
    if opt_in not in OPT_IN_PROCESSES:
        raise invalid(f"opt_in_process must be one of {', '.join(OPT_IN_PROCESSES)}.", "/data/attributes/opt_in_process")
    with store().lock:
        klist = store().new_list(name, opt_in, now())
        data = resources.klaviyo_list(klist, root())
    return respond({"data": data, "links": {"self": data["links"]["self"]}}, 201)


def _list_or_404(list_id: str):
    klist = store().lists.get(list_id)
    if klist is None:
        raise not_found(f"A list with id {list_id} does not exist.")
    return klist


def get_list(id):
    counted = "profile_count" in csv_param("additional-fields[list]")
    with store().lock:
        data = resources.klaviyo_list(_list_or_404(id), root(), profile_count=counted)
    return respond({"data": data, "links": self_link()})


def delete_list(id):
    """``DELETE /api/lists/{id}``: 204; its members stay as profiles, the list is gone."""
    with store().lock:
        _list_or_404(id)
        del store().lists[id]
    return empty(204)


def get_profiles_for_list(id):
    with store().lock:
        klist = _list_or_404(id)
        pairs = [(store().profiles[pid], joined) for pid, joined in klist.members.items() if pid in store().profiles]
        return respond(members_document(pairs, MEMBER_FILTERS))


def _member_ids() -> list[str]:
    """The ``{"data": [{"type": "profile", "id": ...}]}`` body of the relationship endpoints."""
    rows = member(obj(body(), "/"), "data", "")
    if not isinstance(rows, list) or not rows:
        raise invalid("At least one profile is required.", "/data")
    if len(rows) > MAX_MEMBERS_PER_CALL:
        raise invalid(f"At most {MAX_MEMBERS_PER_CALL} profiles may be sent per request.", "/data")
    ids = []
    for i, row in enumerate(rows):
        if obj(row, f"/data/{i}").get("type") != "profile":
            raise invalid("The resource type must be 'profile'.", f"/data/{i}/type")
        if not isinstance(row.get("id"), str):
            raise invalid("'id' is a required field.", f"/data/{i}/id")
        ids.append(row["id"])
    unknown = next((i for i, pid in enumerate(ids) if pid not in store().profiles), None)
    if unknown is not None:
        raise invalid(f"A profile with id {ids[unknown]} does not exist.", f"/data/{unknown}/id")
    return ids


def add_profiles_to_list(id):
    with store().lock:
        klist = _list_or_404(id)
        for pid in _member_ids():
            store().join_list(klist, pid, now())
    return empty(204)


def remove_profiles_from_list(id):
    with store().lock:
        klist = _list_or_404(id)
        for pid in _member_ids():
            klist.members.pop(pid, None)
        klist.updated = now()
    return empty(204)


ROUTES = [
    ("GET", "/lists", get_lists),
    ("POST", "/lists", create_list),
    ("GET", "/lists/<id>", get_list),
    ("DELETE", "/lists/<id>", delete_list),
    ("GET", "/lists/<id>/profiles", get_profiles_for_list),
    ("POST", "/lists/<id>/relationships/profiles", add_profiles_to_list),
    ("DELETE", "/lists/<id>/relationships/profiles", remove_profiles_from_list),
]
