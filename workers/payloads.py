"""Profiles and events as JSON, for the ``sync_items.payload`` column and back.

The planner freezes exactly what will be sent into the item row; the task that
sends it reads it back. Going through a schema both ways keeps the boundary
honest: money stays exact (a decimal string), times stay aware.
"""

from __future__ import annotations

import hashlib
import json

from marshmallow import EXCLUDE, Schema, fields, post_load

from klaviyo.models import KlaviyoEvent, KlaviyoProfile, ProfileLocation


class _Schema(Schema):
    class Meta:
        unknown = EXCLUDE


class LocationPayload(_Schema):
    address1 = fields.String(allow_none=True)
    address2 = fields.String(allow_none=True)
    city = fields.String(allow_none=True)
    country = fields.String(allow_none=True)
    region = fields.String(allow_none=True)
    zip = fields.String(allow_none=True)

    @post_load
    def _make(self, data, **kwargs):
        return ProfileLocation(**data)


class ProfilePayload(_Schema):
    email = fields.String(allow_none=True)
    phone_number = fields.String(allow_none=True)
    external_id = fields.String(allow_none=True)
    first_name = fields.String(allow_none=True)
    last_name = fields.String(allow_none=True)
    location = fields.Nested(LocationPayload, allow_none=True)
    properties = fields.Dict(load_default=dict)

    @post_load
    def _make(self, data, **kwargs):
        return KlaviyoProfile(**data)


class EventPayload(_Schema):
    metric_name = fields.String(required=True)
    profile = fields.Nested(ProfilePayload, required=True)
    properties = fields.Dict(load_default=dict)
    time = fields.AwareDateTime(allow_none=True)
    value = fields.Decimal(allow_none=True, as_string=True)
    value_currency = fields.String(allow_none=True)
    unique_id = fields.String(allow_none=True)

    @post_load
    def _make(self, data, **kwargs):
        return KlaviyoEvent(**data)


_PROFILE = ProfilePayload()
_EVENT = EventPayload()


def profile_payload(profile: KlaviyoProfile) -> dict:
    return _PROFILE.dump(profile)


def load_profile(payload: dict) -> KlaviyoProfile:
    return _PROFILE.load(payload)


def event_payload(event: KlaviyoEvent) -> dict:
    return _EVENT.dump(event)


def load_event(payload: dict) -> KlaviyoEvent:
    return _EVENT.load(payload)


def payload_hash(payload: dict) -> str:
    """A stable fingerprint: a profile is re-sent only when what we would send changed."""
    return hashlib.sha256(json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
