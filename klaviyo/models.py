"""Values the client takes and returns. Plain dataclasses; the wire format lives in ``schemas``.

Reprs mask e-mail addresses and phone numbers, so a profile or an event can be
logged or put in an exception without leaking a buyer's contact details.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from logs import mask_email, mask_phone


@dataclass(frozen=True)
class ProfileLocation:
    address1: str | None = None
    address2: str | None = None
    city: str | None = None
    country: str | None = None
    region: str | None = None
    zip: str | None = None
    timezone: str | None = None
    latitude: str | float | None = None
    longitude: str | float | None = None
    ip: str | None = None

    def __repr__(self) -> str:
        return f"ProfileLocation(city={self.city!r}, region={self.region!r}, country={self.country!r})"


@dataclass
class KlaviyoProfile:
    """A Klaviyo profile. At least one identifier is required: email, phone_number or external_id."""

    email: str | None = None
    phone_number: str | None = None
    external_id: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    organization: str | None = None
    title: str | None = None
    image: str | None = None
    locale: str | None = None
    location: ProfileLocation | None = None
    properties: dict = field(default_factory=dict)
    profile_id: str | None = None
    created: datetime | None = None
    updated: datetime | None = None
    subscriptions: dict | None = None

    @property
    def identifiers(self) -> dict:
        """The identifying attributes that are set (email, phone_number, external_id)."""
        return {k: v for k, v in (("email", self.email), ("phone_number", self.phone_number),
                                  ("external_id", self.external_id)) if v}

    def __repr__(self) -> str:
        return (f"KlaviyoProfile(profile_id={self.profile_id!r}, email={mask_email(self.email)!r}, "
                f"phone_number={mask_phone(self.phone_number)!r}, external_id={self.external_id!r})")


@dataclass
class KlaviyoEvent:
    """One event (``Placed Order``...) for one profile. ``unique_id`` makes re-sends harmless."""

    metric_name: str
    profile: KlaviyoProfile
    properties: dict = field(default_factory=dict)
    time: datetime | None = None
    value: Decimal | float | None = None
    value_currency: str | None = None
    unique_id: str | None = None
    event_id: str | None = None

    def __repr__(self) -> str:
        return f"KlaviyoEvent(metric_name={self.metric_name!r}, unique_id={self.unique_id!r}, profile={self.profile!r})"


@dataclass(frozen=True)
class KlaviyoList:
    list_id: str
    name: str
    created: datetime | None = None
    updated: datetime | None = None
    opt_in_process: str | None = None


@dataclass(frozen=True)
class KlaviyoSegment:
    segment_id: str
    name: str
    definition: dict | None = None
    created: datetime | None = None
    updated: datetime | None = None
    is_active: bool | None = None
    is_processing: bool | None = None
    is_starred: bool | None = None


# Results ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProfileUpsertResult:
    """What ``create_or_update_profile`` learned: Klaviyo answers 201 when it created the profile."""

    profile_id: str
    email: str | None
    created: bool
    profile: KlaviyoProfile

    def __repr__(self) -> str:
        return f"ProfileUpsertResult(profile_id={self.profile_id!r}, email={mask_email(self.email)!r}, created={self.created})"


@dataclass(frozen=True)
class EventResult:
    """``POST /api/events`` answers 202 with no body: accepted for processing, no id yet.

    ``unique_id`` is the one we sent (Klaviyo keeps only the first event per
    profile, metric and unique_id).
    """

    accepted: bool
    unique_id: str | None
    status: int


@dataclass(frozen=True)
class BulkEventsResult:
    """``POST /api/event-bulk-create-jobs`` answers 202 with no body and no job id to poll."""

    accepted: bool
    event_count: int
    profile_count: int
    status: int


@dataclass(frozen=True)
class AcceptedJob:
    """A 202 for a job Klaviyo runs later (subscribe, unsubscribe, deletion)."""

    operation: str
    count: int
    status: int
    job_id: str | None = None


@dataclass(frozen=True)
class BulkImportJob:
    job_id: str
    status: str
    total_count: int = 0
    completed_count: int = 0
    failed_count: int = 0
    created_at: datetime | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    expires_at: datetime | None = None

    @property
    def done(self) -> bool:
        return self.status in ("complete", "cancelled")


@dataclass(frozen=True)
class ProfileImportError:
    """One row a bulk import job refused; ``original_payload`` is the row as we sent it."""

    code: str | None
    title: str | None
    detail: str | None
    pointer: str | None
    original_payload: dict | None
