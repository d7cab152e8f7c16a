"""KlaviyoClient: the dozen Klaviyo operations ksync uses, one method each.

Each method validates its input with the marshmallow schemas (a malformed
e-mail, a phone that is not E.164, a missing identifier or an oversized batch
raises ``KlaviyoValidationError`` naming the field, before any request), builds
the JSON:API body, and reads the answer back into ``klaviyo.models`` values. The
HTTP mechanics (pooled session, rate limiter, retry budgets, error mapping,
pagination) live in ``transport.py``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
import time
from typing import Iterable, Iterator

import requests
from marshmallow import ValidationError

from .exceptions import (
    KlaviyoAuthError,
    KlaviyoConflictError,
    KlaviyoNetworkError,
    KlaviyoServerError,
    KlaviyoValidationError,
)
from .limits import LocalTokenBucket, RateLimiter
from .results import Results
from .models import (
    AcceptedJob,
    BulkEventsResult,
    BulkImportJob,
    EventResult,
    KlaviyoEvent,
    KlaviyoList,
    KlaviyoProfile,
    KlaviyoSegment,
    ProfileImportError,
    ProfileUpsertResult,
)
from .schemas import (
    BULK_IMPORT_JOB,
    EVENT_ATTRIBUTES,
    EVENT_RESOURCE,
    IMPORT_ERROR,
    LIST_RESOURCE,
    PROFILE_ATTRIBUTES,
    PROFILE_RESOURCE,
    SEGMENT_RESOURCE,
    first_error,
)
from .transport import RetryPolicy, Transport
from .accounts import ACCOUNT_RESOURCE, KlaviyoAccount
from . import catalog_bulk
from .catalog import CatalogCategory, CatalogItem, CatalogJob, CatalogSubmission, CatalogVariant, catalog_id
from .catalog_bulk import JOB_KINDS, KINDS, Kind, Row
from .catalog_schemas import JOB_RESOURCE, ROW_POINTER
from .exceptions import KlaviyoNotFoundError

log = logging.getLogger(__name__)


DEFAULT_BASE_URL = "https://a.klaviyo.com/api"
#: The API revision this client is written against (the checked-in spec's).
REVISION = "2026-07-15"
#: Size limits Klaviyo states in prose (the spec has no maxItems); checked before sending.
MAX_LIST_MEMBERS_PER_CALL = 1000
MAX_BULK_IMPORT_PROFILES = 10_000
MAX_BULK_EVENTS = 1000
MAX_SUBSCRIBE_PROFILES = 1000
MAX_UNSUBSCRIBE_PROFILES = 100
MAX_PROFILE_BYTES = 100 * 1024
#: Asked with every profile read: ``subscription_status`` comes from it, and it costs no extra rate limit.
PROFILE_FIELDS = {"additional-fields[profile]": "subscriptions"}
BULK_EVENT_POINTER = re.compile(r"/events-bulk-create/data/(\d+)/attributes/events/data/(\d+)")
BULK_PROFILE_POINTER = re.compile(r"/profiles/data/(\d+)")


class KlaviyoClient:
    """Klaviyo's REST API for ksync.

    Parameters:
        api_key(str): a private API key (``pk_...``).
        base_url(str): ``https://a.klaviyo.com/api``, or a stand-in's URL. Default: ``KLAVIYO_API_BASE_URL``
            from the environment (the seed sets it and then calls the constructor), else Klaviyo's.
        revision(str): the ``revision`` header sent with every request; default ``KLAVIYO_REVISION`` or ours.
        timeout(float): seconds per HTTP request.
        rate_limiter: ``acquire(bucket, timeout)`` / ``cool_down(bucket, s)``; default a per-process bucket.
        retry(RetryPolicy): retry budgets per kind of failure.
        limiter_timeout(float | None): how long to wait for a token before ``RateLimitTimeout``.
    """

    def __init__(self, api_key: str, base_url: str | None = None, revision: str | None = None,
                 timeout: float = 30, rate_limiter: RateLimiter | None = None, retry: RetryPolicy | None = None,
                 limiter_timeout: float | None = None, pool_size: int = 10, sleep=time.sleep):
        if not api_key:
            raise KlaviyoAuthError("No Klaviyo API key: set KLAVIYO_API_KEY")
        base_url = base_url or os.environ.get("KLAVIYO_API_BASE_URL") or DEFAULT_BASE_URL
        revision = revision or os.environ.get("KLAVIYO_REVISION") or REVISION
        self.revision = revision
        self._sleep = sleep
        self.http = Transport(api_key, base_url, revision, timeout,
                              rate_limiter if rate_limiter is not None else LocalTokenBucket(),
                              retry or RetryPolicy(), limiter_timeout, pool_size, sleep)

    @property
    def base_url(self) -> str:
        return self.http.base_url

    @property
    def rate_limiter(self) -> RateLimiter:
        return self.http.rate_limiter

    @classmethod
    def from_env(cls, environ=None, **kwargs) -> "KlaviyoClient":
        """A client from ``KLAVIYO_API_KEY``, ``KLAVIYO_API_BASE_URL`` and ``KLAVIYO_REVISION`` (a
        mapping, default the process environment); keyword arguments win."""
        env = os.environ if environ is None else environ
        kwargs.setdefault("base_url", env.get("KLAVIYO_API_BASE_URL") or DEFAULT_BASE_URL)
        kwargs.setdefault("revision", env.get("KLAVIYO_REVISION") or REVISION)
        return cls(env.get("KLAVIYO_API_KEY", ""), **kwargs)

    def __repr__(self) -> str:
        return f"KlaviyoClient(base_url={self.base_url!r}, revision={self.revision!r})"

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> "KlaviyoClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # Profiles ----------------------------------------------------------------------------------

    def create_or_update_profile(self, profile: KlaviyoProfile) -> ProfileUpsertResult:
        """Upsert through ``POST /api/profile-import`` (201 created, 200 updated).

        A 409 ``duplicate_profile`` means the identifiers belong to two different
        profiles. It is resolved here, without ever merging two people: first the
        phone number (the identifier households share) is left out; if the conflict
        remains, the upsert goes to the profile Klaviyo names, but only when that
        profile's e-mail and external id do not contradict ours. Otherwise the
        ``KlaviyoConflictError`` is raised for the caller to record.
        """
        attributes = self._profile_attributes(profile)
        data = {"type": "profile", "attributes": attributes}
        if profile.profile_id:
            data["id"] = profile.profile_id
        try:
            response = self.http.request("create_or_update_profile", "POST", "/profile-import", body={"data": data})
        except KlaviyoConflictError as conflict:
            response = self._resolve_duplicate(data, conflict)
        return self._upsert_result(response)

    def _resolve_duplicate(self, data: dict, conflict: KlaviyoConflictError) -> requests.Response:
        attributes = data["attributes"]
        if "phone_number" in attributes:
            without_phone = dict(data, attributes={k: v for k, v in attributes.items() if k != "phone_number"})
            log.info("profile conflict: upserting without phone_number")
            try:
                return self.http.request("create_or_update_profile", "POST", "/profile-import", body={"data": without_phone})
            except KlaviyoConflictError as again:
                conflict, data = again, without_phone
        if not conflict.duplicate_profile_id or data.get("id") == conflict.duplicate_profile_id:
            raise conflict
        existing = self.get_profile(conflict.duplicate_profile_id)
        ours = data["attributes"]
        if any(getattr(existing, k) and ours.get(k) and getattr(existing, k) != ours[k] for k in ("email", "external_id")):
            raise conflict  # that profile is somebody else: never merge two people
        target = dict(data, id=conflict.duplicate_profile_id)
        return self.http.request("create_or_update_profile", "POST", "/profile-import", body={"data": target})

    def _upsert_result(self, response: requests.Response) -> ProfileUpsertResult:
        profile = self._load(PROFILE_RESOURCE, self.http.json(response).get("data"), "profile")
        return ProfileUpsertResult(profile_id=profile.profile_id, email=profile.email,
                                   created=response.status_code == 201, profile=profile)

    def create_profile(self, profile: KlaviyoProfile) -> KlaviyoProfile:
        """``POST /api/profiles``; a taken identifier raises ``KlaviyoConflictError``."""
        body = {"data": {"type": "profile", "attributes": self._profile_attributes(profile)}}
        response = self.http.request("create_profile", "POST", "/profiles", body=body, idempotent=False)
        return self._load(PROFILE_RESOURCE, self.http.json(response).get("data"), "profile")

    def update_profile(self, profile: KlaviyoProfile) -> KlaviyoProfile:
        """``PATCH /api/profiles/{id}``: fields left None are not sent, so they stay as they are."""
        if not profile.profile_id:
            raise KlaviyoValidationError("update_profile needs profile.profile_id", field="profile_id")
        body = {"data": {"type": "profile", "id": profile.profile_id, "attributes": self._profile_attributes(profile)}}
        response = self.http.request("update_profile", "PATCH", f"/profiles/{profile.profile_id}", body=body)
        return self._load(PROFILE_RESOURCE, self.http.json(response).get("data"), "profile")

    def get_profile(self, profile_id: str) -> KlaviyoProfile:
        response = self.http.request("get_profile", "GET", f"/profiles/{profile_id}", params=dict(PROFILE_FIELDS))
        return self._load(PROFILE_RESOURCE, self.http.json(response).get("data"), "profile")

    def search_profiles(self, email: str | None = None, phone_number: str | None = None,
                        external_id: str | None = None) -> list[KlaviyoProfile]:
        """Profiles matching every identifier given (identifiers are unique, so 0 or 1 usually).

        A malformed identifier (``email="not-an-email"``) raises ``KlaviyoValidationError`` naming
        it before any request, as every other call does: Klaviyo would only answer "none found".
        """
        given = [(k, v) for k, v in (("email", email), ("phone_number", phone_number), ("external_id", external_id)) if v]
        if not given:
            raise KlaviyoValidationError("search_profiles needs email, phone_number or external_id", field="email")
        self._check_attributes(dict(given), "")
        clauses = [f"equals({k},{json.dumps(v)})" for k, v in given]
        expression = clauses[0] if len(clauses) == 1 else f"and({','.join(clauses)})"
        params = {"filter": expression, "page[size]": 100, **PROFILE_FIELDS}
        return [self._load(PROFILE_RESOURCE, r, "profile")
                for r, _ in self.http.paginate("get_profiles", "/profiles", params)]

    # Events ------------------------------------------------------------------------------------

    def track_event(self, event: KlaviyoEvent) -> EventResult:
        """``POST /api/events``. Klaviyo answers 202 with no body: queued, not yet processed.

        Klaviyo keeps only the first event per (profile, metric, unique_id), so a
        retried or re-sent event with the same ``unique_id`` is harmless.
        """
        attributes = self._event_attributes(event)
        response = self.http.request("create_event", "POST", "/events", body={"data": {"type": "event", "attributes": attributes}},
                                 expect=(202,))
        return EventResult(accepted=True, unique_id=event.unique_id, status=response.status_code)

    def get_events(self, profile_id: str | None = None, metric_id: str | None = None,
                   page_size: int = 200) -> Results[KlaviyoEvent]:
        """Every event (newest first) of a profile and/or metric, as a list (``len``, ``[:5]``) that
        reads its pages only as far as it is used (see ``Results``)."""
        clauses = [f"equals({k},{json.dumps(v)})" for k, v in (("profile_id", profile_id), ("metric_id", metric_id)) if v]
        params = {"page[size]": page_size, "sort": "-datetime", "include": "metric"}
        if clauses:
            params["filter"] = clauses[0] if len(clauses) == 1 else f"and({','.join(clauses)})"
        return Results(self._events(params))

    def _events(self, params: dict) -> Iterator[KlaviyoEvent]:
        for resource, included in self.http.paginate("get_events", "/events", params):
            event = self._load(EVENT_RESOURCE, resource, "event")
            metric = included.get(("metric", event.metric_name))
            if metric:
                event.metric_name = (metric.get("attributes") or {}).get("name") or event.metric_name
            yield event

    def bulk_create_events(self, events: list[KlaviyoEvent]) -> BulkEventsResult:
        """``POST /api/event-bulk-create-jobs``: up to 1,000 events in one request, grouped by profile.

        Klaviyo fails the *whole* request if a unique_id repeats for the same
        profile and metric inside it, so that is refused here first, naming the event.
        """
        if len(events) > MAX_BULK_EVENTS:
            raise KlaviyoValidationError(f"at most {MAX_BULK_EVENTS} events per bulk request, got {len(events)}", field="events")
        groups: dict[tuple, dict] = {}
        group_number: dict[tuple, int] = {}
        positions: dict[tuple[int, int], int] = {}  # (group, event in group) -> index in ``events``
        seen: dict[tuple, int] = {}
        for index, event in enumerate(events):
            try:
                attributes = self._event_attributes(event, field_prefix=f"events[{index}]")
            except KlaviyoValidationError as exc:
                exc.index = index
                raise
            profile = attributes.pop("profile")["data"]
            key = tuple(sorted(event.profile.identifiers.items())) or (("id", event.profile.profile_id),)
            if event.unique_id:
                dedupe = (key, event.metric_name, event.unique_id)
                if dedupe in seen:
                    raise KlaviyoValidationError(
                        f"events[{index}] repeats unique_id {event.unique_id!r} of events[{seen[dedupe]}] "
                        "for the same profile and metric", field=f"events[{index}].unique_id", index=index)
                seen[dedupe] = index
            if key not in groups:
                group_number[key] = len(groups)
                groups[key] = {"type": "event-bulk-create", "attributes": {"profile": {"data": profile}, "events": {"data": []}}}
            in_group = groups[key]["attributes"]["events"]["data"]
            positions[(group_number[key], len(in_group))] = index
            in_group.append({"type": "event", "attributes": attributes})
        body = {"data": {"type": "event-bulk-create-job", "attributes": {
            "events-bulk-create": {"data": list(groups.values())}}}}
        try:
            response = self.http.request("bulk_create_events", "POST", "/event-bulk-create-jobs", body=body, expect=(202,))
        except KlaviyoValidationError as exc:
            match = BULK_EVENT_POINTER.search(exc.pointer or "")
            if match:
                exc.index = positions.get((int(match.group(1)), int(match.group(2))))
            raise
        return BulkEventsResult(accepted=True, event_count=len(events), profile_count=len(groups),
                                status=response.status_code)

    # Lists -------------------------------------------------------------------------------------

    def get_lists(self, name: str | None = None) -> Results[KlaviyoList]:
        """Every list (or those called ``name``). Each one's ``profile_count`` is read the first time
        it is used: one ``get_list`` request each, at Klaviyo's 1/s for counts (see ``KlaviyoList``)."""
        params = {"filter": f"equals(name,{json.dumps(name)})"} if name else {}
        return Results(self._load(LIST_RESOURCE, resource, "list").with_count(loader=self._list_count(resource.get("id")))
                       for resource, _ in self.http.paginate("get_lists", "/lists", params))

    def get_list(self, list_id: str, profile_count: bool = False) -> KlaviyoList:
        """One list; with ``profile_count`` Klaviyo counts its members (that request is limited to 1/s)."""
        params = {"additional-fields[list]": "profile_count"} if profile_count else None
        response = self.http.request("get_list", "GET", f"/lists/{list_id}", params=params)
        klist = self._load(LIST_RESOURCE, self.http.json(response).get("data"), "list")
        return klist if profile_count else klist.with_count(loader=self._list_count(list_id))

    def _list_count(self, list_id):
        return lambda: self.get_list(list_id, profile_count=True).profile_count

    def create_list(self, name: str) -> KlaviyoList:
        body = {"data": {"type": "list", "attributes": {"name": name}}}
        response = self.http.request("create_list", "POST", "/lists", body=body, idempotent=False)
        return self._load(LIST_RESOURCE, self.http.json(response).get("data"), "list")

    def get_or_create_list(self, name: str, attempts: int = 3) -> KlaviyoList:
        """The list called ``name``, created if missing. Klaviyo allows duplicate names, so look first,
        and look again before each new try: a create that failed with a 5xx or no answer may
        have made the list all the same, and a blind retry would make a second one."""
        for attempt in range(1, attempts + 1):
            for existing in self.get_lists(name=name):
                if existing.name == name:
                    return existing
            try:
                return self.create_list(name)
            except (KlaviyoServerError, KlaviyoNetworkError):
                if attempt == attempts:
                    raise
                self._sleep(min(8.0, 0.5 * 2 ** attempt))
        raise AssertionError("unreachable")

    def add_profile_to_list(self, list_id: str, email: str | None = None, profile_id: str | None = None) -> None:
        """Add one profile (by id, or by e-mail, upserting it first). Consent is left as it is."""
        if not profile_id:
            if not email:
                raise KlaviyoValidationError("add_profile_to_list needs email or profile_id", field="email")
            profile_id = self.create_or_update_profile(KlaviyoProfile(email=email)).profile_id
        self.add_profiles_to_list(list_id, [profile_id])

    def add_profiles_to_list(self, list_id: str, profile_ids: Iterable[str]) -> int:
        """Add profiles by id, 1,000 per request. Returns how many ids were sent."""
        return self._list_relationship("add_profiles_to_list", "POST", list_id, profile_ids)

    def remove_profile_from_list(self, list_id: str, profile_id: str) -> None:
        """Remove a profile from a list. This does not unsubscribe it."""
        self._list_relationship("remove_profiles_from_list", "DELETE", list_id, [profile_id])

    def _list_relationship(self, operation: str, method: str, list_id: str, profile_ids: Iterable[str]) -> int:
        ids = list(dict.fromkeys(profile_ids))
        for start in range(0, len(ids), MAX_LIST_MEMBERS_PER_CALL):
            chunk = ids[start:start + MAX_LIST_MEMBERS_PER_CALL]
            body = {"data": [{"type": "profile", "id": pid} for pid in chunk]}
            self.http.request(operation, method, f"/lists/{list_id}/relationships/profiles", body=body)
        return len(ids)

    def get_list_profiles(self, list_id: str) -> Results[KlaviyoProfile]:
        params = {"page[size]": 100, **PROFILE_FIELDS}
        return Results(self._load(PROFILE_RESOURCE, resource, "profile")
                       for resource, _ in self.http.paginate("get_profiles_for_list", f"/lists/{list_id}/profiles", params))

    # Segments ----------------------------------------------------------------------------------

    def get_segments(self) -> Results[KlaviyoSegment]:
        """Every segment; each one's ``profile_count`` is read the first time it is used (as for lists)."""
        return Results(self._load(SEGMENT_RESOURCE, resource, "segment").with_count(
            loader=self._segment_count(resource.get("id"))) for resource, _ in self.http.paginate("get_segments", "/segments", {}))

    def get_segment(self, segment_id: str, profile_count: bool = False) -> KlaviyoSegment:
        """One segment; with ``profile_count`` Klaviyo counts its members (limited to 1/s)."""
        params = {"additional-fields[segment]": "profile_count"} if profile_count else None
        response = self.http.request("get_segment", "GET", f"/segments/{segment_id}", params=params)
        segment = self._load(SEGMENT_RESOURCE, self.http.json(response).get("data"), "segment")
        return segment if profile_count else segment.with_count(loader=self._segment_count(segment_id))

    def _segment_count(self, segment_id):
        return lambda: self.get_segment(segment_id, profile_count=True).profile_count

    def create_segment(self, name: str, definition: dict) -> KlaviyoSegment:
        """``POST /api/segments``. ``definition`` is ``{"condition_groups": [...]}`` as in the spec."""
        if not isinstance(definition, dict) or not isinstance(definition.get("condition_groups"), list):
            raise KlaviyoValidationError("segment definition needs a condition_groups list", field="definition")
        body = {"data": {"type": "segment", "attributes": {"name": name, "definition": definition}}}
        response = self.http.request("create_segment", "POST", "/segments", body=body, idempotent=False)
        return self._load(SEGMENT_RESOURCE, self.http.json(response).get("data"), "segment")

    def get_segment_profiles(self, segment_id: str) -> Results[KlaviyoProfile]:
        params = {"page[size]": 100, **PROFILE_FIELDS}
        return Results(self._load(PROFILE_RESOURCE, resource, "profile") for resource, _ in
                       self.http.paginate("get_profiles_for_segment", f"/segments/{segment_id}/profiles", params))

    # Consent and privacy -----------------------------------------------------------------------

    def subscribe_profiles(self, profiles: list[KlaviyoProfile], list_id: str | None = None,
                           channels: tuple[str, ...] = ("email",), custom_source: str | None = None) -> AcceptedJob:
        """Record marketing consent the *merchant* holds (≤ 1,000 profiles).

        Careful: Klaviyo's bulk subscribe also lifts UNSUBSCRIBE, SPAM_REPORT and
        USER_SUPPRESSED suppressions. ksync never calls this for TikTok buyers,
        who gave no consent.
        """
        return self._consent_job("bulk_subscribe_profiles", "profile-subscription-bulk-create-job",
                                 "/profile-subscription-bulk-create-jobs", profiles, list_id, channels,
                                 "SUBSCRIBED", MAX_SUBSCRIBE_PROFILES, custom_source)

    def unsubscribe_profiles(self, profiles: list[KlaviyoProfile], list_id: str | None = None,
                             channels: tuple[str, ...] = ("email",)) -> AcceptedJob:
        """Withdraw marketing consent (≤ 100). Without ``list_id`` the unsubscribe is account-wide."""
        return self._consent_job("bulk_unsubscribe_profiles", "profile-subscription-bulk-delete-job",
                                 "/profile-subscription-bulk-delete-jobs", profiles, list_id, channels,
                                 "UNSUBSCRIBED", MAX_UNSUBSCRIBE_PROFILES, None)

    def _consent_job(self, operation, job_type, path, profiles, list_id, channels, consent, limit, custom_source):
        if not profiles:
            raise KlaviyoValidationError("no profiles given", field="profiles")
        if len(profiles) > limit:
            raise KlaviyoValidationError(f"at most {limit} profiles per request, got {len(profiles)}", field="profiles")
        rows = []
        for index, profile in enumerate(profiles):
            attributes = {}
            subscriptions = {}
            if "email" in channels and profile.email:
                attributes["email"] = profile.email
                subscriptions["email"] = {"marketing": {"consent": consent}}
            if "sms" in channels and profile.phone_number:
                attributes["phone_number"] = profile.phone_number
                subscriptions["sms"] = {"marketing": {"consent": consent}}
            if not subscriptions:
                raise KlaviyoValidationError(f"profiles[{index}] has no identifier for channels {channels}",
                                             field=f"profiles[{index}].email")
            self._check_attributes(attributes, f"profiles[{index}]")
            rows.append({"type": "profile", "attributes": attributes | {"subscriptions": subscriptions}})
        attributes = {"profiles": {"data": rows}}
        if custom_source and consent == "SUBSCRIBED":
            attributes["custom_source"] = custom_source
        data = {"type": job_type, "attributes": attributes}
        if list_id:
            data["relationships"] = {"list": {"data": {"type": "list", "id": list_id}}}
        response = self.http.request(operation, "POST", path, body={"data": data}, expect=(202,))
        return AcceptedJob(operation=operation, count=len(rows), status=response.status_code)

    def request_profile_deletion(self, email: str | None = None, phone_number: str | None = None,
                                 profile_id: str | None = None) -> AcceptedJob:
        """Ask Klaviyo to delete a person and their data (GDPR/CCPA). Exactly one identifier."""
        given = [(k, v) for k, v in (("email", email), ("phone_number", phone_number), ("profile_id", profile_id)) if v]
        if len(given) != 1:
            raise KlaviyoValidationError("request_profile_deletion needs exactly one of email, phone_number, profile_id",
                                         field="email")
        profile = {"type": "profile"}
        if profile_id:
            profile["id"] = profile_id
        else:
            self._check_attributes(dict(given), "profile")
            profile["attributes"] = dict(given)
        body = {"data": {"type": "data-privacy-deletion-job", "attributes": {"profile": {"data": profile}}}}
        response = self.http.request("request_profile_deletion", "POST", "/data-privacy-deletion-jobs", body=body,
                                 expect=(202,))
        return AcceptedJob(operation="request_profile_deletion", count=1, status=response.status_code)

    # Bulk profile import -----------------------------------------------------------------------

    def bulk_import_profiles(self, profiles: list[KlaviyoProfile], list_ids: Iterable[str] = ()) -> BulkImportJob:
        """Start a bulk import job (≤ 10,000 profiles). Poll it with ``wait_for_bulk_import``."""
        if not profiles:
            raise KlaviyoValidationError("no profiles given", field="profiles")
        if len(profiles) > MAX_BULK_IMPORT_PROFILES:
            raise KlaviyoValidationError(
                f"at most {MAX_BULK_IMPORT_PROFILES} profiles per import job, got {len(profiles)}", field="profiles")
        rows = []
        for index, profile in enumerate(profiles):
            try:
                rows.append({"type": "profile", "attributes": self._profile_attributes(profile, f"profiles[{index}]")})
            except KlaviyoValidationError as exc:
                exc.index = index
                raise
        data = {"type": "profile-bulk-import-job", "attributes": {"profiles": {"data": rows}}}
        list_ids = list(list_ids)
        if list_ids:
            data["relationships"] = {"lists": {"data": [{"type": "list", "id": lid} for lid in list_ids]}}
        try:
            response = self.http.request("bulk_import_profiles", "POST", "/profile-bulk-import-jobs", body={"data": data},
                                     idempotent=False)
        except KlaviyoValidationError as exc:
            match = BULK_PROFILE_POINTER.search(exc.pointer or "")
            if match:
                exc.index = int(match.group(1))
            raise
        return self._load(BULK_IMPORT_JOB, self.http.json(response).get("data"), "profile-bulk-import-job")

    def get_bulk_import_job(self, job_id: str) -> BulkImportJob:
        response = self.http.request("get_bulk_import_profiles_job", "GET", f"/profile-bulk-import-jobs/{job_id}")
        return self._load(BULK_IMPORT_JOB, self.http.json(response).get("data"), "profile-bulk-import-job")

    def get_bulk_import_errors(self, job_id: str) -> Iterator[ProfileImportError]:
        path = f"/profile-bulk-import-jobs/{job_id}/import-errors"
        for resource, _ in self.http.paginate("get_errors_for_bulk_import_profiles_job", path, {"page[size]": 100}):
            yield self._load(IMPORT_ERROR, resource, "import-error")

    def wait_for_bulk_import(self, job_id: str, timeout: float = 300, poll: float = 1.0) -> BulkImportJob:
        """Poll until the job is complete or cancelled; returns its last state even on timeout."""
        deadline = time.monotonic() + timeout
        job = self.get_bulk_import_job(job_id)
        while not job.done and time.monotonic() < deadline:
            self._sleep(poll)
            job = self.get_bulk_import_job(job_id)
        return job

    # Accounts and catalog ----------------------------------------------------------------------
    # Values in accounts.py and catalog.py, wire format in catalog_schemas.py, bodies and job sizes in
    # catalog_bulk.py. Everything is addressed by external id (the TikTok product or SKU id).

    def get_accounts(self) -> list[KlaviyoAccount]:
        """The account this key belongs to (Klaviyo answers exactly one); limited to 1/s and 15/m.

        Every private key of an account counts against the same rate limits, so its
        ``account_id``, not the key, is what a shared limiter should be keyed by.
        """
        return [self._load(ACCOUNT_RESOURCE, found, "account")
                for found, _ in self.http.paginate("get_accounts", "/accounts", {})]

    def get_catalog_item(self, external_id: str) -> CatalogItem:
        return self._catalog_get(KINDS["item"], external_id)

    def create_catalog_item(self, item: CatalogItem, attempts: int = 3) -> CatalogItem:
        """``POST /api/catalog-items``; an item that already exists raises ``KlaviyoConflictError``.
        Never repeated blindly after a 5xx or no answer: see ``_catalog_create``."""
        return self._catalog_create(KINDS["item"], item, attempts)

    def update_catalog_item(self, item: CatalogItem) -> CatalogItem:
        """``PATCH``: attributes left None are not sent; ``category_ids`` replaces the categories when given."""
        return self._catalog_update(KINDS["item"], item)

    def delete_catalog_item(self, external_id: str) -> bool:
        """Delete an item (Klaviyo deletes its variants with it). False when it was already gone."""
        return self._catalog_delete(KINDS["item"], external_id)

    def get_catalog_items(self, external_ids: Iterable[str] | None = None, category_external_id: str | None = None,
                          title_contains: str | None = None, published: bool | None = None) -> Iterator[CatalogItem]:
        """Items matching every filter given, oldest first, following pages (100 ids per query)."""
        clauses = _clauses(("category.id", "equals", category_external_id and catalog_id(category_external_id)),
                           ("title", "contains", title_contains), ("published", "equals", published))
        return self._catalog_list(KINDS["item"], clauses, external_ids)

    def get_catalog_variant(self, external_id: str) -> CatalogVariant:
        return self._catalog_get(KINDS["variant"], external_id)

    def create_catalog_variant(self, variant: CatalogVariant, attempts: int = 3) -> CatalogVariant:
        """``POST /api/catalog-variants`` for an existing item (``item_external_id``); as ``create_catalog_item``."""
        return self._catalog_create(KINDS["variant"], variant, attempts)

    def update_catalog_variant(self, variant: CatalogVariant) -> CatalogVariant:
        """``PATCH``: attributes left None are not sent. Stock going from ≤ 0 to > 0 is a restock."""
        return self._catalog_update(KINDS["variant"], variant)

    def delete_catalog_variant(self, external_id: str) -> bool:
        return self._catalog_delete(KINDS["variant"], external_id)

    def get_catalog_variants(self, item_external_id: str | None = None, external_ids: Iterable[str] | None = None,
                             sku: str | None = None, title_contains: str | None = None,
                             published: bool | None = None) -> Iterator[CatalogVariant]:
        clauses = _clauses(("item.id", "equals", item_external_id and catalog_id(item_external_id)),
                           ("sku", "equals", sku), ("title", "contains", title_contains),
                           ("published", "equals", published))
        return self._catalog_list(KINDS["variant"], clauses, external_ids)

    def get_catalog_category(self, external_id: str) -> CatalogCategory:
        return self._catalog_get(KINDS["category"], external_id)

    def create_catalog_category(self, category: CatalogCategory, attempts: int = 3) -> CatalogCategory:
        return self._catalog_create(KINDS["category"], category, attempts)

    def update_catalog_category(self, category: CatalogCategory) -> CatalogCategory:
        return self._catalog_update(KINDS["category"], category)

    def delete_catalog_category(self, external_id: str) -> bool:
        """Delete a category; its items stay (and lose it). False when it was already gone."""
        return self._catalog_delete(KINDS["category"], external_id)

    def get_catalog_categories(self, external_ids: Iterable[str] | None = None, item_external_id: str | None = None,
                               name_contains: str | None = None) -> Iterator[CatalogCategory]:
        clauses = _clauses(("item.id", "equals", item_external_id and catalog_id(item_external_id)),
                           ("name", "contains", name_contains))
        return self._catalog_list(KINDS["category"], clauses, external_ids)

    def bulk_create_catalog_items(self, items: list[CatalogItem], attempts: int = 3) -> CatalogSubmission:
        """Create items in jobs of ≤ 100 (and ≤ 5 MB), skipping those that already exist (``already_present``).

        Every row is validated first (``KlaviyoValidationError`` names ``items[i].<field>`` and
        sets ``index``). Poll with ``wait_for_catalog_jobs``; create items before their variants.
        """
        return self._bulk(KINDS["item"], "create", items, attempts)

    def bulk_update_catalog_items(self, items: list[CatalogItem]) -> CatalogSubmission:
        return self._bulk(KINDS["item"], "update", items)

    def bulk_delete_catalog_items(self, external_ids: list[str]) -> CatalogSubmission:
        return self._bulk(KINDS["item"], "delete", external_ids)

    def bulk_create_catalog_variants(self, variants: list[CatalogVariant], attempts: int = 3) -> CatalogSubmission:
        """As ``bulk_create_catalog_items``; the items must exist (a variant of a missing item fails its row)."""
        return self._bulk(KINDS["variant"], "create", variants, attempts)

    def bulk_update_catalog_variants(self, variants: list[CatalogVariant]) -> CatalogSubmission:
        """The way to push stock: set ``inventory_quantity`` (and leave the rest None)."""
        return self._bulk(KINDS["variant"], "update", variants)

    def bulk_delete_catalog_variants(self, external_ids: list[str]) -> CatalogSubmission:
        return self._bulk(KINDS["variant"], "delete", external_ids)

    def bulk_create_catalog_categories(self, categories: list[CatalogCategory], attempts: int = 3) -> CatalogSubmission:
        return self._bulk(KINDS["category"], "create", categories, attempts)

    def get_catalog_job(self, job: CatalogJob) -> CatalogJob:
        """The job's current state, keeping which rows of the caller's list it carries."""
        if job.job_type not in JOB_KINDS:
            raise KlaviyoValidationError(f"{job.job_type!r} is not a catalog bulk job type", field="job_type")
        kind, action = JOB_KINDS[job.job_type]
        response = self.http.request(kind.get_job_op(action), "GET", f"{kind.job_path(action)}/{job.job_id}")
        fresh = self._load(JOB_RESOURCE, self.http.json(response).get("data"), job.job_type)
        return dataclasses.replace(fresh, external_ids=job.external_ids, rows=job.rows)

    def wait_for_catalog_job(self, job: CatalogJob, timeout: float = 300, poll: float = 1.0,
                             max_poll: float = 10.0) -> CatalogJob:
        """Poll until complete or cancelled, backing off from ``poll`` to ``max_poll`` seconds (reading a
        create or update job is limited like submitting one, 75/s); returns the last state even on timeout."""
        deadline = time.monotonic() + timeout
        while not job.done and time.monotonic() < deadline:
            self._sleep(min(poll, max(0.0, deadline - time.monotonic())))
            poll = min(max_poll, poll * 1.5)
            job = self.get_catalog_job(job)
        return job

    def wait_for_catalog_jobs(self, submission: CatalogSubmission, timeout: float = 300,
                              poll: float = 1.0) -> CatalogSubmission:
        deadline = time.monotonic() + timeout
        done = tuple(self.wait_for_catalog_job(job, max(0.0, deadline - time.monotonic()), poll)
                     for job in submission.jobs)
        return dataclasses.replace(submission, jobs=done)

    def _catalog_get(self, kind: Kind, external_id: str):
        path = f"/{kind.collection}/{catalog_bulk.path_id(external_id)}"
        response = self.http.request(kind.op("get"), "GET", path)
        return self._load(kind.resource, self.http.json(response).get("data"), kind.type)

    def _catalog_create(self, kind: Kind, value, attempts: int):
        """Create one resource; a create is not idempotent, so an unanswered one is never repeated blindly.

        After a 5xx or no answer (the transport does not retry those for a create)
        the client waits, then *looks*: if the resource exists now, our try made it
        and it is returned; only otherwise is the create sent again. A 409 on a
        later try means the same. A 409 on the first try means it existed before
        we started: ``KlaviyoConflictError`` is raised for the caller to update instead.
        """
        data = catalog_bulk.resource(kind, "create", value)
        path = f"/{kind.collection}"
        for attempt in range(1, attempts + 1):
            try:
                response = self.http.request(kind.op("create"), "POST", path, body={"data": data}, idempotent=False,
                                             expect=(201,))
                return self._load(kind.resource, self.http.json(response).get("data"), kind.type)
            except KlaviyoConflictError:
                if attempt == 1:
                    raise
                return self._catalog_get(kind, value.external_id)
            except (KlaviyoServerError, KlaviyoNetworkError):
                if attempt == attempts:
                    raise
                self._sleep(min(8.0, 0.5 * 2 ** attempt))
                try:
                    return self._catalog_get(kind, value.external_id)
                except KlaviyoNotFoundError:
                    continue
        raise AssertionError("unreachable")

    def _catalog_update(self, kind: Kind, value):
        body = {"data": catalog_bulk.resource(kind, "update", value)}
        path = f"/{kind.collection}/{catalog_bulk.path_id(value.external_id)}"
        response = self.http.request(kind.op("update"), "PATCH", path, body=body)
        return self._load(kind.resource, self.http.json(response).get("data"), kind.type)

    def _catalog_delete(self, kind: Kind, external_id: str) -> bool:
        """DELETE is idempotent in effect: a retried one that finds nothing left answers 404, read as "gone"."""
        try:
            path = f"/{kind.collection}/{catalog_bulk.path_id(external_id)}"
            self.http.request(kind.op("delete"), "DELETE", path, expect=(204,))
        except KlaviyoNotFoundError:
            return False
        return True

    def _catalog_list(self, kind: Kind, clauses: list[str], external_ids: Iterable[str] | None = None,
                      fields: str | None = None):
        ids = None if external_ids is None else list(dict.fromkeys(external_ids))
        groups = [None] if ids is None else [ids[i:i + 100] for i in range(0, len(ids), 100)]
        for group in groups:
            terms = clauses + ([catalog_bulk.any_ids(group)] if group is not None else [])
            params = {"page[size]": 100}
            if terms:
                params["filter"] = terms[0] if len(terms) == 1 else f"and({','.join(terms)})"
            if fields:
                params[f"fields[{kind.type}]"] = fields
            for found, _ in self.http.paginate(kind.list_op, f"/{kind.collection}", params):
                yield self._load(kind.resource, found, kind.type)

    def _bulk(self, kind: Kind, action: str, values: list, attempts: int = 3) -> CatalogSubmission:
        submitted, present = [], []
        for chunk in catalog_bulk.chunks(catalog_bulk.rows(kind, action, list(values))):
            if action == "create":
                job, skipped = self._submit_create(kind, chunk, attempts)
                present += skipped
            else:  # updates and deletes are idempotent in effect: the transport may repeat them
                job = self._submit_job(kind, action, chunk, idempotent=True)
            if job is not None:
                submitted.append(job)
        return CatalogSubmission(tuple(submitted), tuple(sorted(present)))

    def _submit_create(self, kind: Kind, chunk: list[Row], attempts: int) -> tuple[CatalogJob | None, list[int]]:
        """One create job, made safe to retry by looking before each try.

        The ids that exist already are left out (and reported): before the first
        try, those a previous run made; after a 5xx or no answer, also those our
        own unanswered job made meanwhile. If that job is still queued when we look,
        the retry overlaps it; one id is one resource, so the overlap cannot make a
        second item: the later job's rows fail with ``conflict``, which
        ``CatalogRowError.settled`` marks as needing nothing.
        """
        for attempt in range(1, attempts + 1):
            existing = {found.external_id for found in
                        self._catalog_list(kind, [], [row.external_id for row in chunk], fields="external_id")}
            todo = [row for row in chunk if row.external_id not in existing]
            skipped = [row.index for row in chunk if row.external_id in existing]
            if not todo:
                return None, skipped
            try:
                return self._submit_job(kind, "create", todo, idempotent=False), skipped
            except (KlaviyoServerError, KlaviyoNetworkError):
                if attempt == attempts:
                    raise
                self._sleep(min(8.0, 0.5 * 2 ** attempt))
        raise AssertionError("unreachable")

    def _submit_job(self, kind: Kind, action: str, chunk: list[Row], idempotent: bool) -> CatalogJob:
        try:
            body = catalog_bulk.job_body(kind, action, chunk)
            response = self.http.request(kind.submit_op(action), "POST", kind.job_path(action), body=body,
                                         expect=(202,), idempotent=idempotent)
        except KlaviyoValidationError as exc:
            match = ROW_POINTER.match(exc.pointer or "")
            if match and int(match.group(1)) < len(chunk):
                exc.index = chunk[int(match.group(1))].index
            raise
        job = self._load(JOB_RESOURCE, self.http.json(response).get("data"), kind.job_type(action))
        return dataclasses.replace(job, external_ids=tuple(row.external_id for row in chunk),
                                   rows=tuple(row.index for row in chunk))

    # Validation helpers ------------------------------------------------------------------------

    def _profile_attributes(self, profile: KlaviyoProfile, field_prefix: str = "") -> dict:
        attributes = PROFILE_ATTRIBUTES.dump(profile)
        self._check_attributes(attributes, field_prefix)
        size = len(json.dumps(attributes, default=str).encode())
        if size > MAX_PROFILE_BYTES:
            raise KlaviyoValidationError(f"profile payload is {size} bytes; Klaviyo accepts at most 100 KB",
                                         field=f"{field_prefix}.properties".lstrip("."))
        return attributes

    @staticmethod
    def _check_attributes(attributes: dict, field_prefix: str) -> None:
        errors = PROFILE_ATTRIBUTES.validate(attributes)
        if errors:
            field, message = first_error(errors)
            field = f"{field_prefix}.{field}".lstrip(".")
            raise KlaviyoValidationError(f"{field}: {message}", field=field)

    @staticmethod
    def _event_attributes(event: KlaviyoEvent, field_prefix: str = "") -> dict:
        if event.profile is None:
            field = f"{field_prefix}.profile".lstrip(".")
            raise KlaviyoValidationError(f"{field}: an event needs a profile (or the seed's customer_email)", field=field)
        schema = EVENT_ATTRIBUTES
        attributes = schema.dump(event)
        errors = schema.validate(attributes)
        if errors:
            field, message = first_error(errors)
            field = f"{field_prefix}.{field}".lstrip(".")
            raise KlaviyoValidationError(f"{field}: {message}", field=field)
        return attributes

    @staticmethod
    def _load(schema, resource, kind: str):
        if not isinstance(resource, dict):
            raise KlaviyoServerError(f"Klaviyo answered without a {kind} resource in 'data'")
        try:
            return schema.load(resource)
        except ValidationError as exc:
            field, message = first_error(exc.messages)
            raise KlaviyoServerError(f"Klaviyo sent a {kind} we could not read ({field}: {message})") from None

    # Transport ---------------------------------------------------------------------------------


def _clauses(*terms: tuple[str, str, object]) -> list[str]:
    """Klaviyo filter clauses for the terms whose value is given (``equals(sku,"A-1")``)."""
    return [f"{op}({name},{json.dumps(value)})" for name, op, value in terms if value is not None]
