"""Values the client takes and returns. Plain dataclasses; the wire format lives in ``schemas``.

Reprs mask e-mail addresses and phone numbers, so a profile or an event can be
logged or put in an exception without leaking a buyer's contact details.
"""

from __future__ import annotations

from dataclasses import InitVar, dataclass, field, replace
from datetime import datetime, timezone
from decimal import Decimal
from functools import cached_property

from .masking import mask_email, mask_phone


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
    def subscription_status(self) -> str | None:
        """The seed's ``subscription_status``, derived from Klaviyo's email marketing consent.

        ``"subscribed"``, ``"unsubscribed"``, ``"never_subscribed"``, or ``"suppressed"`` (a bounce,
        spam complaint or manual suppression: Klaviyo will not email the profile whatever its
        consent). None when the profile was not read from Klaviyo with its subscriptions (the
        client asks for them, ``additional-fields[profile]=subscriptions``, on every profile read).
        """
        marketing = ((self.subscriptions or {}).get("email") or {}).get("marketing")
        if not isinstance(marketing, dict):
            return None
        consent = str(marketing.get("consent") or "NEVER_SUBSCRIBED").lower()
        if consent != "unsubscribed" and marketing.get("suppression"):
            return "suppressed"
        return consent

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
    """One event (``Placed Order``...) for one profile. ``unique_id`` makes re-sends harmless.

    The seed's spellings are accepted beside ours: ``customer_email="a@b.co"`` stands for
    ``profile=KlaviyoProfile(email="a@b.co")`` and ``timestamp=`` for ``time=``; both read
    back as ``event.customer_email`` and ``event.timestamp``. A naive ``time`` (such as
    ``datetime.utcnow()``, as the seed passes) is taken as UTC, never as local time. No time
    means Klaviyo stamps the event when it receives it.
    """

    metric_name: str
    profile: KlaviyoProfile | None = None
    properties: dict = field(default_factory=dict)
    time: datetime | None = None
    value: Decimal | float | None = None
    value_currency: str | None = None
    unique_id: str | None = None
    event_id: str | None = None
    customer_email: InitVar[str | None] = None
    timestamp: InitVar[datetime | None] = None

    def __post_init__(self, customer_email: str | None, timestamp: datetime | None) -> None:
        if timestamp is not None:
            if self.time is not None and self.time != timestamp:
                raise ValueError("give the event's time once: time or timestamp, not two different ones")
            self.time = timestamp
        self.time = as_utc(self.time)
        if customer_email is not None:
            if self.profile is None:
                self.profile = KlaviyoProfile(email=customer_email)
            elif self.profile.email is None:
                self.profile = replace(self.profile, email=customer_email)
            elif self.profile.email != customer_email:
                raise ValueError("customer_email differs from profile.email: give the buyer once")

    def __repr__(self) -> str:
        return f"KlaviyoEvent(metric_name={self.metric_name!r}, unique_id={self.unique_id!r}, profile={self.profile!r})"


# The seed's read-back names. Set after the class: the dataclass keeps each InitVar's default there.
KlaviyoEvent.customer_email = property(lambda self: self.profile.email if self.profile else None,
                                       doc="The seed's name for ``profile.email``.")
KlaviyoEvent.timestamp = property(lambda self: self.time, doc="The seed's name for ``time``.")


def as_utc(value: datetime | None) -> datetime | None:
    """``value`` as an aware datetime; a naive one is taken to be UTC (``datetime.utcnow()``)."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value


class _CountedOnDemand:
    """``profile_count`` for lists and segments, read from Klaviyo the first time it is used.

    Klaviyo gives the count only when asked (``additional-fields[list]=profile_count``,
    ``additional-fields[segment]=profile_count``), and answers those requests at 1/s and
    15/min instead of 75/s: fetching every count with every listing would make ``get_lists()``
    take a minute per 15 lists. So a list read from Klaviyo carries a loader, and the first
    read of ``profile_count`` spends one request; the value is kept. A value made by hand
    (no loader) has ``profile_count`` None.
    """

    @cached_property
    def profile_count(self) -> int | None:
        loader = self.__dict__.get("_count_loader")
        return loader() if loader else None

    def with_count(self, count: int | None = None, loader=None):
        """This value with its profile count known (``count``) or readable on demand (``loader()``)."""
        if count is not None:
            self.__dict__["profile_count"] = count  # the cached_property's slot
        if loader is not None:
            self.__dict__["_count_loader"] = loader
        return self


@dataclass(frozen=True)
class KlaviyoList(_CountedOnDemand):
    list_id: str
    name: str
    created: datetime | None = None
    updated: datetime | None = None
    opt_in_process: str | None = None


@dataclass(frozen=True)
class KlaviyoSegment(_CountedOnDemand):
    segment_id: str
    name: str
    definition: dict | None = None
    created: datetime | None = None
    updated: datetime | None = None
    is_active: bool | None = None
    is_processing: bool | None = None
    is_starred: bool | None = None

    @property
    def list_id(self) -> str:
        """The seed's name: its default "segments" were lists. Ours are real Klaviyo segments, so
        this is the segment's own id (use it with the segment calls, not the list calls)."""
        return self.segment_id


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
    profile, metric and unique_id). ``event_id`` is kept for the seed's
    ``result.event_id`` and is always None: Klaviyo gives no id at this point, and
    an id we made up would match nothing in Klaviyo. Find the stored event later
    with ``get_events`` (its ``event_id`` is Klaviyo's) or by ``unique_id``.
    """

    accepted: bool
    unique_id: str | None
    status: int
    event_id: None = None


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
