"""Profiles and events as JSON, for the ``sync_items.payload`` column and back.

The planner freezes exactly what will be sent into the item row; the task that
sends it reads it back. Going through a schema both ways keeps the boundary
honest: money stays exact (a decimal string), times stay aware.
"""

from __future__ import annotations

import hashlib
import json

from marshmallow import EXCLUDE, Schema, fields, post_load

from klaviyo.models import KlaviyoEvent, KlaviyoProfile
from klaviyo.schemas import PROFILE_ATTRIBUTES, profile_from_attributes


class _Schema(Schema):
    class Meta:
        unknown = EXCLUDE


def profile_payload(profile: KlaviyoProfile) -> dict:
    """Exactly the profile attributes Klaviyo is sent (the client's own request schema)."""
    return PROFILE_ATTRIBUTES.dump(profile)


def load_profile(payload: dict) -> KlaviyoProfile:
    return profile_from_attributes(payload)


class EventPayload(_Schema):
    metric_name = fields.String(required=True)
    profile = fields.Function(lambda event: profile_payload(event.profile), deserialize=load_profile, required=True)
    properties = fields.Dict(load_default=dict)
    time = fields.AwareDateTime(allow_none=True)
    value = fields.Decimal(allow_none=True, as_string=True)
    value_currency = fields.String(allow_none=True)
    unique_id = fields.String(allow_none=True)

    @post_load
    def _make(self, data, **kwargs):
        return KlaviyoEvent(**data)


_EVENT = EventPayload()


def event_payload(event: KlaviyoEvent) -> dict:
    return _EVENT.dump(event)


def load_event(payload: dict) -> KlaviyoEvent:
    return _EVENT.load(payload)


def payload_hash(payload: dict) -> str:
    """A stable fingerprint: a profile is re-sent only when what we would send changed."""
    return hashlib.sha256(json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
