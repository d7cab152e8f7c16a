"""Send planned items to Klaviyo: one profile, one event, or a bulk batch of either.

Every send follows the same steps:

1. claim the item(s) (a lease; a second copy of the task backs off);
2. if Redis holds the "sent" marker, the send already happened (the database
   failed right after it): record the success without sending again;
3. send through the client (rate limiter inside);
4. record the outcome: succeeded, failed with a readable error, or released for
   a retry whose countdown the caller applies.

Functions return an ``Outcome``; the Celery task turns ``retry_in`` into
``self.retry(countdown=...)``, so nothing here sleeps in a worker slot.
"""

from __future__ import annotations

import logging
import random
import re
from dataclasses import dataclass
from typing import Sequence

import redis
from sqlalchemy import select

from db import history, ledger
from db.engine import session_scope
from db.models import SyncItem, SyncRun, utcnow
from klaviyo import (
    KlaviyoAPIError,
    KlaviyoAuthError,
    KlaviyoRateLimitError,
    KlaviyoValidationError,
    RateLimitTimeout,
)
from settings import Settings

from . import clients
from .payloads import load_event, load_profile, payload_hash
from .sync import finish_if_done

log = logging.getLogger(__name__)

#: Longest countdown a retry asks for; also kept under a third of the visibility timeout (see max_countdown).
MAX_COUNTDOWN = 60
SENT_MARKER_TTL = 7 * 24 * 3600
#: How long one task polls a bulk import job before handing over to a later retry.
BULK_POLL_SECONDS = 8
#: Import errors with this code go to the single-record upsert, which resolves profile conflicts.
CONFLICT_CODE = "duplicate_profile"


@dataclass(frozen=True)
class Outcome:
    """``retry_in`` set: come back after that many seconds. Else the work is done (or not ours).

    ``resend_single`` lists items handed back from a bulk job that need the per-record
    path (a profile conflict the single upsert knows how to resolve).
    """

    retry_in: float | None = None
    reason: str = ""
    resend_single: tuple[int, ...] = ()


DONE = Outcome()


def max_countdown() -> float:
    """A countdown longer than the broker's visibility timeout is redelivered again and again;
    stay far below it (a third), and never above a minute."""
    from settings import get_settings

    return min(MAX_COUNTDOWN, get_settings().visibility_timeout_seconds / 3)


def _jitter(seconds: float) -> float:
    return min(max_countdown(), max(0.5, seconds) * random.uniform(1.0, 1.2))


def _backoff(attempts: int) -> float:
    return _jitter(2 ** max(attempts, 1))


def _marker(run_id: str, item_id: int) -> str:
    return f"ksync:sent:{run_id}:{item_id}"


def _set_markers(run_id: str, ids: Sequence[int]) -> None:
    try:
        pipe = clients.redis_client().pipeline()
        for item_id in ids:
            pipe.set(_marker(run_id, item_id), 1, ex=SENT_MARKER_TTL)
        pipe.execute()
    except redis.RedisError:
        log.warning("could not set sent markers in Redis; a database failure now would mean a re-send "
                    "(Klaviyo drops it by unique_id)")


def _already_sent(run_id: str, items: Sequence[SyncItem]) -> set[int]:
    """Items whose send already happened (an earlier attempt died before recording it).
    A first attempt cannot have been sent before, so it costs no Redis call."""
    ids = [i.id for i in items if i.attempts > 1]
    if not ids:
        return set()
    try:
        values = clients.redis_client().mget([_marker(run_id, i) for i in ids])
    except redis.RedisError:
        return set()
    return {item_id for item_id, value in zip(ids, values) if value}


@dataclass(frozen=True)
class Verdict:
    retry_in: float | None
    error: str | None
    counts_as_attempt: bool


def judge(exc: Exception, attempts: int, settings: Settings) -> Verdict:
    """Retry later, or fail the record with a readable error?"""
    if isinstance(exc, RateLimitTimeout):
        return Verdict(_jitter(exc.retry_in), None, counts_as_attempt=False)
    if isinstance(exc, KlaviyoRateLimitError):
        return Verdict(_jitter(exc.retry_after), None, counts_as_attempt=False)
    if isinstance(exc, redis.RedisError):
        return Verdict(_jitter(5), None, counts_as_attempt=False)
    if isinstance(exc, KlaviyoAuthError):
        return Verdict(None, f"Klaviyo refused the API key: {exc.message}", counts_as_attempt=True)
    if isinstance(exc, KlaviyoAPIError) and exc.retriable:
        if attempts >= settings.max_attempts:
            return Verdict(None, f"gave up after {attempts} attempts: {exc.message}", counts_as_attempt=True)
        return Verdict(_backoff(attempts), exc.message, counts_as_attempt=True)
    if isinstance(exc, KlaviyoAPIError):
        return Verdict(None, exc.message, counts_as_attempt=True)
    return Verdict(None, f"{type(exc).__name__}: {exc}", counts_as_attempt=True)


def _settle(run_id: str, ids: Sequence[int], owner: str, exc: Exception, attempts: int, settings: Settings) -> Outcome:
    verdict = judge(exc, attempts, settings)
    with session_scope() as session:
        if verdict.retry_in is None:
            history.fail_items(session, ids, owner, verdict.error or str(exc))
        else:
            history.release_items(session, ids, owner, error=verdict.error, sent=verdict.counts_as_attempt)
    if verdict.retry_in is None:
        log.warning("item(s) %s failed: %s", list(ids)[:5], verdict.error)
        finish_if_done(run_id)
        return DONE
    return Outcome(retry_in=verdict.retry_in, reason=type(exc).__name__)


_shops: dict[str, str] = {}


def _shop_of(session, run_id: str) -> str:
    """A run's shop never changes: look it up once per process."""
    if run_id not in _shops:
        _shops[run_id] = session.get(SyncRun, run_id).shop
    return _shops[run_id]


def _claim(run_id: str, ids: Sequence[int], owner: str, settings: Settings) -> tuple[list[SyncItem], str, Outcome]:
    """Claim what is free; the Outcome says when to come back for items another task holds."""
    with session_scope() as session:
        claimed, lease_ends = history.claim_items(session, ids, owner, settings.item_lease_seconds)
        shop = _shop_of(session, run_id) if claimed else ""
    if lease_ends is None:
        return claimed, shop, DONE
    return claimed, shop, Outcome(retry_in=_jitter((lease_ends - utcnow()).total_seconds() + 1), reason="held")


# Single records ----------------------------------------------------------------------------------


def send_event(run_id: str, item_id: int, owner: str, settings: Settings) -> Outcome:
    claimed, shop, outcome = _claim(run_id, [item_id], owner, settings)
    if not claimed:
        return outcome
    item = claimed[0]
    if not _already_sent(run_id, [item]):
        try:
            clients.klaviyo().track_event(load_event(item.payload))
        except Exception as exc:  # judged: retry later or fail with a readable error
            return _settle(run_id, [item.id], owner, exc, item.attempts, settings)
        _set_markers(run_id, [item.id])
    with session_scope() as session:
        history.succeed_items(session, [item.id], owner)
        ledger.mark_delivered(session, shop, run_id, [item.key])
    finish_if_done(run_id)
    return DONE


def send_profile(run_id: str, item_id: int, owner: str, settings: Settings) -> Outcome:
    claimed, shop, outcome = _claim(run_id, [item_id], owner, settings)
    if not claimed:
        return outcome
    item = claimed[0]
    profile_id = None
    if not _already_sent(run_id, [item]):
        try:
            result = clients.klaviyo().create_or_update_profile(load_profile(item.payload))
            profile_id = result.profile_id
            list_id = customer_list_id(settings)
            if list_id:
                clients.klaviyo().add_profiles_to_list(list_id, [profile_id])
        except Exception as exc:
            return _settle(run_id, [item.id], owner, exc, item.attempts, settings)
        _set_markers(run_id, [item.id])
    with session_scope() as session:
        history.succeed_items(session, [item.id], owner)
        ledger.record_profiles(session, shop, run_id, [(item.key, profile_id, payload_hash(item.payload))])
    finish_if_done(run_id)
    return DONE


def customer_list_id(settings: Settings) -> str | None:
    """The optional "TikTok Shop Customers" list (KSYNC_CUSTOMER_LIST), looked up once and cached in Redis.

    Membership goes through add-to-list, which leaves consent alone: TikTok buyers are
    never subscribed to marketing.
    """
    if not settings.customer_list_name:
        return None
    cache = clients.redis_client()
    key = f"ksync:klaviyo:list:{settings.customer_list_name}"
    cached = cache.get(key)
    if cached:
        return cached.decode()
    list_id = clients.klaviyo().get_or_create_list(settings.customer_list_name).list_id
    cache.set(key, list_id, ex=24 * 3600)
    return list_id


# Bulk batches ------------------------------------------------------------------------------------


def send_event_batch(run_id: str, item_ids: Sequence[int], owner: str, settings: Settings) -> Outcome:
    """Up to 1,000 events in one bulk request. A record Klaviyo (or our validation) refuses is
    failed with its error and the rest are sent again without it."""
    claimed, shop, outcome = _claim(run_id, item_ids, owner, settings)
    if not claimed:
        return outcome
    done = _already_sent(run_id, claimed)
    pending = [i for i in claimed if i.id not in done]
    while pending:
        try:
            clients.klaviyo().bulk_create_events([load_event(i.payload) for i in pending])
        except KlaviyoValidationError as exc:
            index = exc.index  # the refused event's position in the request
            if index is None:
                return _settle(run_id, [i.id for i in pending], owner, exc, max(i.attempts for i in pending), settings)
            bad = pending.pop(index)
            with session_scope() as session:
                history.fail_items(session, [bad.id], owner, exc.message)
            continue
        except Exception as exc:
            return _settle(run_id, [i.id for i in pending], owner, exc, max(i.attempts for i in pending), settings)
        _set_markers(run_id, [i.id for i in pending])
        done |= {i.id for i in pending}
        pending = []
    sent = [i for i in claimed if i.id in done]
    with session_scope() as session:
        history.succeed_items(session, [i.id for i in sent], owner)
        ledger.mark_delivered(session, shop, run_id, [i.key for i in sent])
    finish_if_done(run_id)
    return outcome if outcome.retry_in else DONE


def send_profile_batch(run_id: str, item_ids: Sequence[int], owner: str, settings: Settings) -> Outcome:
    """Up to 10,000 profiles as one Klaviyo bulk import job, polled to the end; rows the job
    reports as import errors are failed with Klaviyo's detail, the others succeed."""
    job_id = _job_of(item_ids)
    if job_id is None:
        claimed, shop, outcome = _claim(run_id, item_ids, owner, settings)
        if not claimed:
            return outcome
        claimed.sort(key=lambda i: i.id)  # job rows in id order: import errors point at row indexes
        profiles = [load_profile(i.payload) for i in claimed]
        list_id = customer_list_id(settings)
        try:
            job = clients.klaviyo().bulk_import_profiles(profiles, list_ids=[list_id] if list_id else ())
        except KlaviyoValidationError as exc:
            index = exc.index  # the refused row's position in the job
            if index is None:
                return _settle(run_id, [i.id for i in claimed], owner, exc, claimed[0].attempts, settings)
            with session_scope() as session:
                history.fail_items(session, [claimed[index].id], owner, exc.message)
                history.release_items(session, [i.id for i in claimed if i is not claimed[index]], owner)
            return Outcome(retry_in=0.5, reason="invalid row removed")
        except Exception as exc:
            return _settle(run_id, [i.id for i in claimed], owner, exc, claimed[0].attempts, settings)
        job_id = job.job_id
        with session_scope() as session:
            history.set_external_ref(session, [i.id for i in claimed], owner, job_id)
    return _finish_import_job(run_id, job_id, settings)


def _job_of(item_ids: Sequence[int]) -> str | None:
    with session_scope() as session:
        refs = set(session.scalars(select(SyncItem.external_ref).where(
            SyncItem.id.in_(item_ids), SyncItem.status == "sending", SyncItem.external_ref.is_not(None))))
    return next(iter(refs), None)


def _finish_import_job(run_id: str, job_id: str, settings: Settings) -> Outcome:
    """Poll the job briefly; when complete, map its import errors back to our rows."""
    client = clients.klaviyo()
    try:
        job = client.wait_for_bulk_import(job_id, timeout=BULK_POLL_SECONDS, poll=0.5)
    except Exception as exc:
        verdict = judge(exc, 0, settings)
        return Outcome(retry_in=verdict.retry_in or _jitter(5), reason=type(exc).__name__)
    if not job.done:
        return Outcome(retry_in=_jitter(3), reason="job running")
    try:
        errors = list(client.get_bulk_import_errors(job_id)) if job.failed_count else []
    except Exception as exc:
        return Outcome(retry_in=judge(exc, 0, settings).retry_in or _jitter(5), reason=type(exc).__name__)
    with session_scope() as session:
        items = list(session.scalars(select(SyncItem).where(SyncItem.external_ref == job_id,
                                                            SyncItem.status == "sending").order_by(SyncItem.id)))
        errors_by_item = _rows_with_errors(items, errors)
        conflicts = [i for i, error in errors_by_item.items() if CONFLICT_CODE in error]
        failed = {i: error for i, error in errors_by_item.items() if i not in conflicts}
        succeeded = history.settle_import_job(session, job_id, failed, conflicts)
        ledger.record_profiles(session, _shop_of(session, run_id), run_id,
                               [(i.key, None, payload_hash(i.payload)) for i in succeeded])
    finish_if_done(run_id)
    return Outcome(resend_single=tuple(conflicts)) if conflicts else DONE


def _rows_with_errors(items: list[SyncItem], errors) -> dict[int, str]:
    """Import errors point at rows (``/data/attributes/profiles/data/<i>/...``) in the order we
    sent them (item id order); fall back to matching the original payload's identifiers."""
    failed: dict[int, str] = {}
    by_identifier = {}
    for item in items:
        for field in ("external_id", "email", "phone_number"):
            if item.payload.get(field):
                by_identifier.setdefault((field, item.payload[field]), item)
    for error in errors:
        message = f"Klaviyo import error {error.code or ''}: {error.detail or error.title}".strip()
        match = re.search(r"/profiles/data/(\d+)", error.pointer or "")
        target = items[int(match.group(1))] if match and int(match.group(1)) < len(items) else None
        if target is None and error.original_payload:
            for field in ("external_id", "email", "phone_number"):
                target = by_identifier.get((field, error.original_payload.get(field)))
                if target:
                    break
        if target is not None:
            failed[target.id] = message
    return failed

