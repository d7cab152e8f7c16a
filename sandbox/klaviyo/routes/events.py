"""Events: create one, create in bulk, get one, list with filters and includes."""

from __future__ import annotations

from flask import request

from .. import events, resources
from ..errors import invalid, not_found
from ..filters import matches, parse_filter
from ..validate import event_input, member, obj, profile_ref, resource
from ..web import body, check_include, counters, empty, now, paged, respond, root, self_link, sort_param, store

MAX_BULK_EVENTS = 1000
BULK = "/data/attributes/events-bulk-create"

FILTERS = {"metric_id": {"equals"}, "profile_id": {"equals"}, "profile": {"has"}, "metric": {"has"},
           "datetime": {"greater-or-equal", "greater-than", "less-or-equal", "less-than"},
           "timestamp": {"greater-or-equal", "greater-than", "less-or-equal", "less-than"}}
INCLUDES = {"metric", "profile", "attributions"}

SORT_KEYS = {"datetime": lambda e: (e.time, e.seq), "-datetime": lambda e: (-e.time, -e.seq)}
SORT_KEYS.update({"timestamp": SORT_KEYS["datetime"], "-timestamp": SORT_KEYS["-datetime"]})


def create_event():
    data = resource(body(), "event")
    item = event_input(member(data, "attributes", "/data"), "/data/attributes", now())
    with store().lock:
        _, dropped = events.record(store(), [item], now())
    if dropped:
        counters().duplicate("create_event", dropped)
    return empty(202)


def bulk_create_events():
    data = resource(body(), "event-bulk-create-job")
    attributes = obj(member(data, "attributes", "/data"), "/data/attributes")
    entries = member(obj(member(attributes, "events-bulk-create", "/data/attributes"), BULK), "data", BULK)
    if not isinstance(entries, list) or not entries:
        raise invalid("At least one entry is required.", f"{BULK}/data")
    total = sum(_event_count(entry) for entry in entries)
    if total > MAX_BULK_EVENTS:
        raise invalid(f"At most {MAX_BULK_EVENTS} events may be sent per request; got {total}.", f"{BULK}/data")
    inputs = []
    for i, entry in enumerate(entries):
        at = f"{BULK}/data/{i}"
        if obj(entry, at).get("type") != "event-bulk-create":
            raise invalid("The resource type must be 'event-bulk-create'.", f"{at}/type")
        entry_attributes = obj(member(entry, "attributes", at), f"{at}/attributes")
        ref = profile_ref(member(entry_attributes, "profile", f"{at}/attributes"), f"{at}/attributes/profile")
        listed = member(obj(member(entry_attributes, "events", f"{at}/attributes"), f"{at}/attributes/events"), "data",
                        f"{at}/attributes/events")
        if not isinstance(listed, list) or not listed:
            raise invalid("At least one event is required.", f"{at}/attributes/events/data")
        for j, raw in enumerate(listed):
            ep = f"{at}/attributes/events/data/{j}"
            if obj(raw, ep).get("type") != "event":
                raise invalid("The resource type must be 'event'.", f"{ep}/type")
            item = event_input(member(raw, "attributes", ep), f"{ep}/attributes", now(), profile=ref)
            item.backfill = item.backfill or bool(entry_attributes.get("backfill"))
            inputs.append(item)
    with store().lock:
        events.reject_repeated_unique_ids(store(), inputs)
        _, dropped = events.record(store(), inputs, now())
    if dropped:
        counters().duplicate("bulk_create_events", dropped)
    return empty(202)


def _event_count(entry) -> int:
    """Events in one bulk entry, counted before validation (a malformed entry counts 0)."""
    for key in ("attributes", "events", "data"):
        entry = entry.get(key) if isinstance(entry, dict) else None
    return len(entry) if isinstance(entry, list) else 0


def _included(page_events, include: list[str]) -> list:
    out, seen = [], set()
    for event in page_events:
        if "metric" in include and ("metric", event.metric_id) not in seen:
            seen.add(("metric", event.metric_id))
            out.append(resources.metric(store().metrics[event.metric_id], root()))
        if "profile" in include and ("profile", event.profile_id) not in seen and event.profile_id in store().profiles:
            seen.add(("profile", event.profile_id))
            out.append(resources.profile(store().profiles[event.profile_id], root()))
    return out


def get_event(id):
    include = check_include(INCLUDES)
    with store().lock:
        event = store().events.get(id)
        if event is None:
            raise not_found(f"An event with id {id} does not exist.")
        document = {"data": resources.event(event, root()), "links": self_link()}
        if include:
            document["included"] = _included([event], include)
    return respond(document)


def _event_value(event, field: str):
    if field in ("metric_id", "metric"):
        return event.metric_id
    if field in ("profile_id", "profile"):
        return event.profile_id
    return event.time  # datetime (parsed to epoch by the filter parser) and timestamp


def get_events():
    terms = parse_filter(request.args.get("filter"), FILTERS)
    key = SORT_KEYS[sort_param({"datetime", "timestamp"}, "datetime")]
    include = check_include(INCLUDES)
    with store().lock:
        index = store().events.keys()
        for term in terms:  # narrow with an index when the filter names a profile or metric
            if term.op == "equals" and term.field == "profile_id":
                index = store().events_by_profile.get(term.value, [])
            elif term.op == "equals" and term.field == "metric_id" and len(index) > len(store().events_by_metric.get(term.value, [])):
                index = store().events_by_metric.get(term.value, [])
        found = [e for e in (store().events[i] for i in index) if matches(terms, lambda f, e=e: _event_value(e, f))]
        found.sort(key=key)
        document = paged(found, key, 200, 1000, lambda e: resources.event(e, root()))
        if include:
            page_events = [store().events[d["id"]] for d in document["data"]]
            document["included"] = _included(page_events, include)
    return respond(document)


ROUTES = [
    ("POST", "/events", create_event),
    ("GET", "/events", get_events),
    ("GET", "/events/<id>", get_event),
    ("POST", "/event-bulk-create-jobs", bulk_create_events),
]
