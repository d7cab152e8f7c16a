"""The stand-in's records: plain dataclasses the store keeps and the serialisers render.

Times are epoch seconds. ``seq`` is a global insertion counter: it orders
collections and makes every pagination key unique.
"""

from __future__ import annotations

from dataclasses import dataclass, field

#: Identifiers: a profile must have at least one, and no two profiles share a value.
IDENTIFIERS = ("email", "phone_number", "external_id")

#: Plain string attributes of a profile, in the spec's order.
TEXT_FIELDS = ("email", "phone_number", "external_id", "first_name", "last_name", "organization", "locale", "title",
               "image")

LOCATION_FIELDS = ("address1", "address2", "city", "country", "latitude", "longitude", "region", "zip", "timezone",
                   "ip")


@dataclass
class Consent:
    """One channel's marketing consent, as ``subscriptions.<channel>.marketing`` shows it."""

    status: str = "NEVER_SUBSCRIBED"
    timestamp: float | None = None
    method: str | None = None
    method_detail: str | None = None
    last_updated: float | None = None


@dataclass
class Profile:
    id: str
    seq: int
    created: float
    updated: float
    fields: dict = field(default_factory=lambda: dict.fromkeys(TEXT_FIELDS))
    location: dict = field(default_factory=lambda: dict.fromkeys(LOCATION_FIELDS))
    properties: dict = field(default_factory=dict)
    last_event_date: float | None = None
    email_marketing: Consent = field(default_factory=Consent)
    sms_marketing: Consent = field(default_factory=Consent)
    #: Email suppressions: [{"reason": "UNSUBSCRIBE"|"USER_SUPPRESSED"|..., "timestamp": epoch}]
    suppressions: list = field(default_factory=list)
    #: Per-list unsubscribes: [{"list_id": ..., "reason": "UNSUBSCRIBE", "timestamp": epoch}]
    list_suppressions: list = field(default_factory=list)

    def identifiers(self) -> dict:
        return {name: self.fields[name] for name in IDENTIFIERS if self.fields[name] is not None}


@dataclass
class Metric:
    id: str
    name: str
    created: float


@dataclass
class Event:
    id: str
    seq: int
    profile_id: str
    metric_id: str
    time: float
    properties: dict
    value: float | None = None
    value_currency: str | None = None
    unique_id: str | None = None
    backfill: bool = False
    received: float = 0.0


@dataclass
class KList:
    id: str
    seq: int
    name: str
    created: float
    updated: float
    opt_in_process: str = "single_opt_in"
    #: profile id -> joined_group_at, in joining order
    members: dict = field(default_factory=dict)


@dataclass
class Segment:
    id: str
    seq: int
    name: str
    definition: dict
    created: float
    updated: float
    is_starred: bool = False
    is_active: bool = True


@dataclass
class ImportError_:
    """One failed row of a bulk profile import (``import-error`` resource)."""

    id: str
    seq: int
    code: str
    title: str
    detail: str
    pointer: str
    original_payload: dict


@dataclass
class ImportJob:
    """A profile-bulk-import-job. Its status follows from the clock (see jobs.py)."""

    id: str
    seq: int
    created: float
    stage_seconds: float
    rows: list
    list_ids: list
    applied: bool = False
    completed_count: int = 0
    failed_count: int = 0
    errors: list = field(default_factory=list)
    profile_ids: list = field(default_factory=list)
    #: An injected ending (faults.py ``job_outcome``): cancelled, short or orphan_error.
    outcome: str | None = None


@dataclass
class SuppressionJob:
    """A profile-suppression-bulk-create/delete-job; applied at once, so always complete."""

    id: str
    seq: int
    kind: str
    created: float
    total_count: int
    completed_count: int
    skipped_count: int
    list_id: str | None = None
    segment_id: str | None = None
