"""Request-body checks with Klaviyo's answers: 400 ``invalid`` with a JSON pointer to the field.

Pure functions: they read parsed JSON and return normalised values (or raise
ApiError); none touches the store. Pointers are absolute, so the bulk endpoints
pass a prefix such as ``/data/attributes/events-bulk-create/data/3/attributes``.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

from .errors import invalid
from .model import IDENTIFIERS, LOCATION_FIELDS, TEXT_FIELDS
from .times import parse_iso

EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
E164 = re.compile(r"^\+[1-9]\d{6,14}$")

#: Profile attributes each operation accepts (from the spec's request schemas).
CREATE_ATTRIBUTES = frozenset(TEXT_FIELDS + ("location", "properties"))
UPSERT_ATTRIBUTES = CREATE_ATTRIBUTES | {"_kx"}
EVENT_PROFILE_ATTRIBUTES = UPSERT_ATTRIBUTES | {"anonymous_id", "meta"}

MAX_PROPERTIES = 400            #: keys in an event's ``properties``
MAX_METRIC_NAME = 127           #: characters ("less than 128")
MAX_STRING_BYTES = 100 * 1024   #: any string inside properties
MAX_ARRAY_ITEMS = 4000
MAX_NESTING = 10
EARLIEST_EVENT = 946684800.0    #: 2000-01-01T00:00:00Z
YEAR_SECONDS = 365 * 86400


@dataclass
class ProfileRef:
    """Who an event (or a consent row) is about: an optional id plus normalised attributes."""

    id: str | None
    attributes: dict
    meta: dict | None = None
    pointer: str = "/data"

    def identifiers(self) -> dict:
        return {k: self.attributes[k] for k in IDENTIFIERS if self.attributes.get(k) is not None}


@dataclass
class EventInput:
    metric_name: str
    properties: dict
    time: float
    profile: ProfileRef
    value: float | None = None
    value_currency: str | None = None
    unique_id: str | None = None
    backfill: bool = False
    pointer: str = "/data/attributes"


def obj(value, pointer: str, what: str = "object") -> dict:
    if not isinstance(value, dict):
        raise invalid(f"Expected an {what} at '{pointer}'.", pointer)
    return value


def member(parent: dict, key: str, pointer: str) -> object:
    """``parent[key]``, which must be present."""
    if key not in parent or parent[key] is None:
        raise invalid(f"'{key}' is a required field.", f"{pointer}/{key}")
    return parent[key]


def dig(value, pointer: str, *keys):
    """``value[k1][k2]...``; None when a level is absent or null, 400 when a present level is not an object."""
    for key in keys:
        if value is None:
            return None
        value = obj(value, pointer).get(key)
        pointer = f"{pointer}/{key}"
    return value


def relationship_ids(data: dict, name: str, kind: str, many: bool) -> list[str]:
    """Ids in ``data.relationships.<name>.data`` (one linkage object, or a list when ``many``)."""
    at = f"/data/relationships/{name}/data"
    linkage = dig(data, "/data", "relationships", name, "data")
    if linkage is None:
        return []
    if many and not isinstance(linkage, list):
        raise invalid("Expected a list of resource identifiers.", at)
    ids = []
    for i, item in enumerate(linkage if many else [linkage]):
        here = f"{at}/{i}" if many else at
        if obj(item, here).get("type") != kind:
            raise invalid(f"The resource type must be '{kind}'.", f"{here}/type")
        if not isinstance(item.get("id"), str):
            raise invalid("'id' is a required field.", f"{here}/id")
        ids.append(item["id"])
    return ids


def resource(body, expected_type: str, pointer: str = "/data") -> dict:
    """``body["data"]`` as a resource object of ``expected_type``."""
    data = obj(member(obj(body, "/"), "data", ""), pointer)
    if data.get("type") != expected_type:
        raise invalid(f"The resource type must be '{expected_type}'.", f"{pointer}/type")
    return data


def optional_text(value, pointer: str) -> str | None:
    if value is not None and not isinstance(value, str):
        raise invalid("Expected a string.", pointer)
    return value


def email(value, pointer: str) -> str | None:
    value = optional_text(value, pointer)
    if value is not None and not EMAIL.match(value.strip()):
        raise invalid(f"Invalid email address: '{value}'.", pointer)
    return value.strip().lower() if value is not None else None


def phone_number(value, pointer: str) -> str | None:
    value = optional_text(value, pointer)
    if value is not None and not E164.match(value):
        raise invalid(f"Invalid phone number format (Example of a valid format: +12345678901): '{value}'.", pointer)
    return value


def json_value(value, pointer: str, depth: int = 0) -> None:
    """Klaviyo's limits on custom data: nesting, array length, string size."""
    if depth > MAX_NESTING:
        raise invalid(f"Objects may be nested at most {MAX_NESTING} levels deep.", pointer)
    if isinstance(value, str):
        # Encoding is only needed past 25,600 characters: UTF-8 takes at most 4 bytes a character.
        if len(value) > MAX_STRING_BYTES // 4 and len(value.encode()) > MAX_STRING_BYTES:
            raise invalid("String values must be at most 100 KB.", pointer)
    elif isinstance(value, dict):
        for key, item in value.items():
            json_value(item, f"{pointer}/{key}", depth + 1)
    elif isinstance(value, list):
        if len(value) > MAX_ARRAY_ITEMS:
            raise invalid(f"Arrays may hold at most {MAX_ARRAY_ITEMS} items.", pointer)
        for i, item in enumerate(value):
            json_value(item, f"{pointer}/{i}", depth + 1)


def profile_attributes(raw, pointer: str, allowed=CREATE_ATTRIBUTES) -> dict:
    """Check and normalise the profile attributes present in ``raw`` (absent keys stay absent)."""
    raw = obj(raw, pointer)
    out = {}
    for key, value in raw.items():
        at = f"{pointer}/{key}"
        if key not in allowed:
            raise invalid(f"'{key}' is not a valid field for the resource 'profile'.", at)
        if key == "email":
            out[key] = email(value, at)
        elif key == "phone_number":
            out[key] = phone_number(value, at)
        elif key == "location":
            out[key] = None if value is None else _location(value, at)
        elif key == "properties":
            if value is not None:
                json_value(obj(value, at), at)
            out[key] = value
        elif key == "meta":
            out[key] = profile_meta(value, at)
        else:
            out[key] = optional_text(value, at)
    return out


def profile_meta(raw, pointer: str) -> dict | None:
    """``meta`` of a profile write: ``patch_properties`` with append/unappend objects and unset key(s)."""
    if raw is None:
        return None
    patch = obj(raw, pointer).get("patch_properties")
    if patch is not None:
        at = f"{pointer}/patch_properties"
        for name in ("append", "unappend"):
            if obj(patch, at).get(name) is not None:
                obj(patch[name], f"{at}/{name}")
        unset = patch.get("unset")
        if unset is not None and not isinstance(unset, str) and not (
                isinstance(unset, list) and all(isinstance(k, str) for k in unset)):
            raise invalid("'unset' must be a property name or a list of them.", f"{at}/unset")
    return raw


def _location(raw, pointer: str) -> dict:
    out = {}
    for key, value in obj(raw, pointer).items():
        if key not in LOCATION_FIELDS:
            raise invalid(f"'{key}' is not a valid field for 'location'.", f"{pointer}/{key}")
        if key in ("latitude", "longitude"):
            if value is not None and (isinstance(value, bool) or not isinstance(value, (str, int, float))):
                raise invalid("Expected a string or a number.", f"{pointer}/{key}")
            out[key] = value
        else:
            out[key] = optional_text(value, f"{pointer}/{key}")
    return out


def require_identifier(attributes: dict, pointer: str, profile_id: str | None = None) -> None:
    """A profile needs an email, a phone number or an external id (or, for references, an id)."""
    if profile_id is None and not any(attributes.get(k) is not None for k in IDENTIFIERS):
        raise invalid("A profile must have at least one of email, phone_number or external_id.", pointer)


def profile_ref(raw, pointer: str, allowed=EVENT_PROFILE_ATTRIBUTES) -> ProfileRef:
    """``{"data": {"type": "profile", "id"?, "attributes": {...}, "meta"?}}`` at ``pointer``."""
    data = obj(member(obj(raw, pointer), "data", pointer), f"{pointer}/data")
    if data.get("type") != "profile":
        raise invalid("The resource type must be 'profile'.", f"{pointer}/data/type")
    pid = optional_text(data.get("id"), f"{pointer}/data/id")
    attributes = profile_attributes(data.get("attributes") or {}, f"{pointer}/data/attributes", allowed)
    meta = attributes.pop("meta", None) or profile_meta(data.get("meta"), f"{pointer}/data/meta")  # 2026-10-15 moved it
    require_identifier(attributes, f"{pointer}/data/attributes", pid)
    return ProfileRef(pid, attributes, meta, f"{pointer}/data")


def event_input(attributes, pointer: str, now: float | None = None, profile: ProfileRef | None = None) -> EventInput:
    """One event's ``attributes`` (EventCreateQueryV2, or a bulk entry when ``profile`` is given)."""
    now = time.time() if now is None else now
    attrs = obj(attributes, pointer)
    metric = obj(member(attrs, "metric", pointer), f"{pointer}/metric")
    metric_data = obj(member(metric, "data", f"{pointer}/metric"), f"{pointer}/metric/data")
    if metric_data.get("type") != "metric":
        raise invalid("The resource type must be 'metric'.", f"{pointer}/metric/data/type")
    metric_attrs = obj(member(metric_data, "attributes", f"{pointer}/metric/data"), f"{pointer}/metric/data/attributes")
    name = member(metric_attrs, "name", f"{pointer}/metric/data/attributes")
    if not isinstance(name, str) or not name.strip() or len(name) > MAX_METRIC_NAME:
        raise invalid("Metric name must be a non-empty string of fewer than 128 characters.",
                      f"{pointer}/metric/data/attributes/name")
    properties = obj(member(attrs, "properties", pointer), f"{pointer}/properties")
    if len(properties) > MAX_PROPERTIES:
        raise invalid(f"Events may have at most {MAX_PROPERTIES} properties.", f"{pointer}/properties")
    json_value(properties, f"{pointer}/properties")
    when = now
    if attrs.get("time") is not None:
        try:
            when = parse_iso(attrs["time"])
        except (ValueError, TypeError):
            raise invalid(f"'{attrs['time']}' is not a valid ISO 8601 date-time.", f"{pointer}/time") from None
        if not EARLIEST_EVENT <= when <= now + YEAR_SECONDS:
            raise invalid("Event time must be after 2000-01-01 and at most one year in the future.", f"{pointer}/time")
    value = attrs.get("value")
    if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
        raise invalid("'value' must be a number.", f"{pointer}/value")
    backfill = attrs.get("backfill")
    if backfill is not None and not isinstance(backfill, bool):
        raise invalid("'backfill' must be a boolean.", f"{pointer}/backfill")
    if profile is None:
        profile = profile_ref(member(attrs, "profile", pointer), f"{pointer}/profile")
    return EventInput(
        metric_name=name, properties=properties, time=when, profile=profile, value=value,
        value_currency=optional_text(attrs.get("value_currency"), f"{pointer}/value_currency"),
        unique_id=optional_text(attrs.get("unique_id"), f"{pointer}/unique_id"),
        backfill=bool(backfill), pointer=pointer,
    )
