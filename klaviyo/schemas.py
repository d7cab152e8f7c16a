"""marshmallow schemas for Klaviyo's JSON:API bodies, both ways.

Request schemas are strict: ``dump`` turns our dataclasses into the attributes
Klaviyo expects, and ``validate`` on that output refuses what Klaviyo would
refuse (malformed e-mail, phone not E.164, no identifier, out-of-range time)
*before* a request is spent on it. Response schemas are lenient
(``unknown = EXCLUDE``, everything optional) because Klaviyo adds fields over
time and a new field must not break a sync.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import phonenumbers
from marshmallow import EXCLUDE, Schema, ValidationError, fields, post_dump, post_load, validate, validates_schema

from .models import (
    BulkImportJob,
    KlaviyoEvent,
    KlaviyoList,
    KlaviyoProfile,
    KlaviyoSegment,
    ProfileImportError,
    ProfileLocation,
    as_utc,
)

#: Klaviyo refuses event times before 2000 and more than a year ahead.
EARLIEST_EVENT_TIME = datetime(2000, 1, 1, tzinfo=timezone.utc)
MAX_METRIC_NAME_LENGTH = 127
MAX_EVENT_PROPERTIES = 400
E164_RE = re.compile(r"^\+[1-9]\d{6,14}\Z")


def validate_e164(value: str) -> None:
    """A phone number must be E.164 (``+14155550123``) and a number that can exist."""
    if not isinstance(value, str) or not E164_RE.match(value):
        raise ValidationError("Not an E.164 phone number (expected + and 7 to 15 digits).")
    try:
        parsed = phonenumbers.parse(value, None)
    except phonenumbers.NumberParseException:
        raise ValidationError("Not a valid phone number.") from None
    if not phonenumbers.is_valid_number(parsed):
        raise ValidationError("Not a valid phone number for its country code.")


def _drop_none(data: dict) -> dict:
    return {k: v for k, v in data.items() if v is not None and v != {}}


# Requests --------------------------------------------------------------------------------------


class LocationSchema(Schema):
    """A profile's location, both ways: dumped without empty fields, loaded into ``ProfileLocation``."""

    class Meta:
        unknown = EXCLUDE

    address1 = fields.String(allow_none=True)
    address2 = fields.String(allow_none=True)
    city = fields.String(allow_none=True)
    country = fields.String(allow_none=True)
    region = fields.String(allow_none=True)
    zip = fields.String(allow_none=True)
    timezone = fields.String(allow_none=True)
    latitude = fields.Raw(allow_none=True)
    longitude = fields.Raw(allow_none=True)
    ip = fields.String(allow_none=True)

    @post_dump
    def _compact(self, data, **kwargs):
        return _drop_none(data)

    @post_load
    def _make(self, data, **kwargs):
        return ProfileLocation(**data)


class ProfileAttributesSchema(Schema):
    """Attributes of a profile we send (create, upsert, bulk import, event profiles)."""

    email = fields.Email(allow_none=True)
    phone_number = fields.String(allow_none=True, validate=validate_e164)
    external_id = fields.String(allow_none=True, validate=validate.Length(min=1, max=255))
    first_name = fields.String(allow_none=True)
    last_name = fields.String(allow_none=True)
    organization = fields.String(allow_none=True)
    title = fields.String(allow_none=True)
    image = fields.String(allow_none=True)
    locale = fields.String(allow_none=True)
    location = fields.Nested(LocationSchema, allow_none=True)
    properties = fields.Dict(keys=fields.String(), values=fields.Raw(allow_none=True))

    @validates_schema
    def _has_identifier(self, data, **kwargs):
        if not any(data.get(k) for k in ("email", "phone_number", "external_id")):
            raise ValidationError("A profile needs at least one of email, phone_number or external_id.", "email")

    @post_dump
    def _compact(self, data, **kwargs):
        return _drop_none(data)


def _event_time(value: datetime) -> None:
    if value < EARLIEST_EVENT_TIME or value > datetime.now(timezone.utc) + timedelta(days=365):
        raise ValidationError("Event time must be between 2000-01-01 and one year from now.")


class UTCDateTime(fields.AwareDateTime):
    """An aware datetime that sends a naive one as UTC, as ``KlaviyoEvent`` documents, rather than
    refusing it: the seed's users pass ``datetime.utcnow()``, which is naive."""

    def _serialize(self, value, attr, obj, **kwargs):
        return super()._serialize(as_utc(value), attr, obj, **kwargs)


class EventAttributesSchema(Schema):
    """Attributes of ``POST /api/events`` (and of each event in a bulk create)."""

    properties = fields.Dict(required=True, validate=validate.Length(max=MAX_EVENT_PROPERTIES))
    time = UTCDateTime(allow_none=True, validate=_event_time, format="iso")
    value = fields.Float(allow_none=True, allow_nan=False)
    value_currency = fields.String(allow_none=True, validate=validate.Regexp(r"^[A-Z]{3}\Z"))
    unique_id = fields.String(allow_none=True, validate=validate.Length(min=1, max=255))
    metric = fields.Method("_dump_metric", deserialize="_load_metric", required=True)
    profile = fields.Method("_dump_profile", deserialize="_load_profile", required=True)

    def _dump_metric(self, event: KlaviyoEvent) -> dict:
        return {"data": {"type": "metric", "attributes": {"name": event.metric_name}}}

    def _load_metric(self, value) -> dict:
        try:
            name = value["data"]["attributes"]["name"]
        except (KeyError, TypeError):
            raise ValidationError("A metric name is required.") from None
        if not isinstance(name, str) or not name.strip() or len(name) > MAX_METRIC_NAME_LENGTH:
            raise ValidationError(f"Metric name must be 1 to {MAX_METRIC_NAME_LENGTH} characters.")
        return value

    def _dump_profile(self, event: KlaviyoEvent) -> dict:
        data = {"type": "profile", "attributes": PROFILE_ATTRIBUTES.dump(event.profile)}
        if event.profile.profile_id:
            data["id"] = event.profile.profile_id
        return {"data": data}

    def _load_profile(self, value) -> dict:
        try:
            attributes = value["data"]["attributes"]
        except (KeyError, TypeError):
            raise ValidationError("A profile is required.") from None
        if value["data"].get("id"):
            return value
        PROFILE_ATTRIBUTES.load(attributes)  # ValidationError nests under "profile"
        return value

    @post_dump
    def _compact(self, data, **kwargs):
        return _drop_none(data) | {"properties": data.get("properties") or {}}


# Responses -------------------------------------------------------------------------------------


class _Lenient(Schema):
    class Meta:
        unknown = EXCLUDE


class ProfileOutAttributesSchema(_Lenient):
    email = fields.String(allow_none=True)
    phone_number = fields.String(allow_none=True)
    external_id = fields.String(allow_none=True)
    first_name = fields.String(allow_none=True)
    last_name = fields.String(allow_none=True)
    organization = fields.String(allow_none=True)
    title = fields.String(allow_none=True)
    image = fields.String(allow_none=True)
    locale = fields.String(allow_none=True)
    location = fields.Nested(LocationSchema, allow_none=True)
    properties = fields.Dict(allow_none=True)
    created = fields.DateTime(allow_none=True)
    updated = fields.DateTime(allow_none=True)
    subscriptions = fields.Dict(allow_none=True)


class ProfileResourceSchema(_Lenient):
    id = fields.String(required=True)
    type = fields.String(validate=validate.Equal("profile"))
    attributes = fields.Nested(ProfileOutAttributesSchema, load_default=dict)

    @post_load
    def _make(self, data, **kwargs) -> KlaviyoProfile:
        return _profile(data["attributes"], profile_id=data["id"])


def _profile(attributes: dict, profile_id: str | None = None) -> KlaviyoProfile:
    return KlaviyoProfile(profile_id=profile_id, **(dict(attributes) | {"properties": attributes.get("properties") or {}}))


def profile_from_attributes(attributes: dict) -> KlaviyoProfile:
    """A profile from JSON:API attributes (Klaviyo's answer, or attributes we stored to send later)."""
    return _profile(PROFILE_OUT_ATTRIBUTES.load(attributes))


class ListResourceSchema(_Lenient):
    id = fields.String(required=True)
    attributes = fields.Dict(load_default=dict)

    @post_load
    def _make(self, data, **kwargs) -> KlaviyoList:
        a = data["attributes"]
        return KlaviyoList(list_id=data["id"], name=a.get("name") or "", created=_dt(a.get("created")),
                           updated=_dt(a.get("updated")), opt_in_process=a.get("opt_in_process")
                           ).with_count(_count(a.get("profile_count")))


class SegmentResourceSchema(_Lenient):
    id = fields.String(required=True)
    attributes = fields.Dict(load_default=dict)

    @post_load
    def _make(self, data, **kwargs) -> KlaviyoSegment:
        a = data["attributes"]
        return KlaviyoSegment(segment_id=data["id"], name=a.get("name") or "", definition=a.get("definition"),
                              created=_dt(a.get("created")), updated=_dt(a.get("updated")),
                              is_active=a.get("is_active"), is_processing=a.get("is_processing"),
                              is_starred=a.get("is_starred")).with_count(_count(a.get("profile_count")))


class EventResourceSchema(_Lenient):
    """An event as ``GET /api/events`` returns it; value and unique_id come back inside properties."""

    id = fields.String(required=True)
    attributes = fields.Dict(load_default=dict)
    relationships = fields.Dict(load_default=dict)

    @post_load
    def _make(self, data, **kwargs) -> KlaviyoEvent:
        a, rel = data["attributes"], data["relationships"]
        props = dict(a.get("event_properties") or {})
        profile_id = ((rel.get("profile") or {}).get("data") or {}).get("id")
        metric_id = ((rel.get("metric") or {}).get("data") or {}).get("id")
        return KlaviyoEvent(
            metric_name=metric_id or "",
            profile=KlaviyoProfile(profile_id=profile_id),
            properties=props,
            time=_dt(a.get("datetime")),
            value=props.get("$value"),
            unique_id=props.get("$event_id"),
            event_id=data["id"],
        )


class BulkImportJobSchema(_Lenient):
    id = fields.String(required=True)
    attributes = fields.Dict(load_default=dict)

    @post_load
    def _make(self, data, **kwargs) -> BulkImportJob:
        a = data["attributes"]
        return BulkImportJob(
            job_id=data["id"], status=a.get("status") or "queued",
            total_count=a.get("total_count") or 0, completed_count=a.get("completed_count") or 0,
            failed_count=a.get("failed_count") or 0, created_at=_dt(a.get("created_at")),
            started_at=_dt(a.get("started_at")), completed_at=_dt(a.get("completed_at")),
            expires_at=_dt(a.get("expires_at")),
        )


class ImportErrorSchema(_Lenient):
    attributes = fields.Dict(load_default=dict)

    @post_load
    def _make(self, data, **kwargs) -> ProfileImportError:
        a = data["attributes"]
        source = a.get("source") or {}
        return ProfileImportError(code=a.get("code"), title=a.get("title"), detail=a.get("detail"),
                                  pointer=source.get("pointer"), original_payload=a.get("original_payload"))


#: One instance of each schema: building a schema costs far more than using it.
PROFILE_ATTRIBUTES = ProfileAttributesSchema()
EVENT_ATTRIBUTES = EventAttributesSchema()
PROFILE_RESOURCE = ProfileResourceSchema()
PROFILE_OUT_ATTRIBUTES = ProfileOutAttributesSchema()
LIST_RESOURCE = ListResourceSchema()
SEGMENT_RESOURCE = SegmentResourceSchema()
EVENT_RESOURCE = EventResourceSchema()
BULK_IMPORT_JOB = BulkImportJobSchema()
IMPORT_ERROR = ImportErrorSchema()


def _count(value) -> int | None:
    """``profile_count`` as Klaviyo sent it (only when asked for), or None."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _dt(value) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None


def first_error(messages, prefix: str = "") -> tuple[str, str]:
    """Flatten marshmallow's nested messages to the first ``(field path, message)``."""
    if isinstance(messages, dict):
        for key, value in messages.items():
            path = f"{prefix}.{key}" if prefix and key != "_schema" else (prefix or str(key))
            if isinstance(key, int):
                path = f"{prefix}[{key}]"
            return first_error(value, path)
    if isinstance(messages, list) and messages:
        if isinstance(messages[0], (dict, list)):
            return first_error(messages[0], prefix)
        return prefix, str(messages[0])
    return prefix, str(messages)
