"""Send planned items to Klaviyo: one profile, one event, or a bulk batch of either.

Every send follows the same steps:

1. claim the item(s) (a short lease, renewed while the task lives; a second copy of the task
   backs off);
2. if Redis holds the "sent" marker, the send already happened (the database failed right after
   it): record the success without sending again;
3. send through the client (rate limiter inside);
4. record the outcome by what the error means (the Singer split, see ``judge``): delivered;
   retriable (released for a retry whose countdown the caller applies; after the attempts run
   out, ``unsent``, never a record failure); fatal (the whole run stops, ``failed`` with one
   reason, the watermark stays); skippable (a record failure naming the record and its field).

Functions return an ``Outcome``; the Celery task turns ``retry_in`` into
``self.retry(countdown=...)``, so nothing here sleeps in a worker slot.
"""

from __future__ import annotations

import logging
import random
import re
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Sequence

import redis
from billiard.exceptions import SoftTimeLimitExceeded
from sqlalchemy import select
from sqlalchemy.exc import InterfaceError, OperationalError

from db import history, ledger
from db.engine import session_scope
from db.models import SyncItem, SyncRun, utcnow
from klaviyo import (
    KlaviyoAPIError,
    KlaviyoAuthError,
    KlaviyoNotFoundError,
    KlaviyoRateLimitError,
    KlaviyoValidationError,
    RateLimitTimeout,
)
from klaviyo.models import BulkImportJob
from settings import ConfigError, Settings

from . import clients, leases
from .connections import is_env_connection
from .payloads import load_event, load_profile, payload_hash
from .sync import finish_if_done, stop

log = logging.getLogger(__name__)

#: Longest countdown a retry asks for; also kept under a third of the visibility timeout (see max_countdown).
MAX_COUNTDOWN = 60
SENT_MARKER_TTL = 7 * 24 * 3600
#: How long one task polls a bulk import job before handing over to a later retry.
BULK_POLL_SECONDS = 8
#: Import errors with this code are profile conflicts: two profiles hold our identifiers.
CONFLICT_CODE = "duplicate_profile"
#: A job's conflicted rows are imported once more without their phone number (the identifier
#: households share, the usual cause), in a job whose reference starts with this; the rows that
#: conflict even then go to the single-record upsert, which resolves the rest. One bulk job instead
#: of two single upserts a row: at 100,000 orders 1,500 rows conflicted, and the single upserts'
#: 750-a-minute limit kept a backfill waiting four minutes after its last event.
WITHOUT_PHONE = "np:"


@dataclass(frozen=True)
class Outcome:
    """``retry_in`` set: come back after that many seconds. Else the work is done (or not ours).

    ``resend_single`` lists items handed back from a bulk job that need the per-record
    path (a profile conflict the single upsert knows how to resolve).
    """

    retry_in: float | None = None
    reason: str = ""
    resend_single: tuple[int, ...] = ()
    #: What Klaviyo answered for a single profile upsert (the seed's service reports it).
    result: object = None


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


def _marker(run_id: str, item_id: int, step: str = "sent") -> str:
    return f"ksync:{step}:{run_id}:{item_id}"


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


# What an error means -----------------------------------------------------------------------------

RETRY, STOP, UNSEND, FAIL = "retry", "stop", "unsend", "fail"
#: Infrastructure the task itself needs: unreachable means "try again", never a record failure.
INFRASTRUCTURE = (redis.RedisError, OperationalError, InterfaceError)


@dataclass(frozen=True)
class Verdict:
    """``action``: RETRY (in ``retry_in`` s), STOP (the run: fatal), UNSEND (a transient cause
    outlasted the attempts), or FAIL (this record: skippable). ``error`` says why in one line."""

    action: str
    error: str | None = None
    retry_in: float | None = None
    counts_as_attempt: bool = True


def auth_reason(exc: KlaviyoAuthError, connection_id: str | None = None) -> str:
    """The one line a person needs when Klaviyo refuses the key: the environment's connections name
    KLAVIYO_API_KEY, the others the connection to fix."""
    where = ("KLAVIYO_API_KEY" if not connection_id or is_env_connection(connection_id)
             else f"connection {connection_id}'s key (`ksync connections test {connection_id}`)")
    if exc.status == 403:
        return (f"Klaviyo refused the private key a scope it needs (403: {exc.message}): give {where} the "
                "profiles, events, lists, segments, subscriptions, catalogs and data-privacy scopes")
    return f"Klaviyo rejected the private key ({exc.status or 401}): check {where}"


def judge(exc: BaseException, attempts: int, settings: Settings, connection_id: str | None = None) -> Verdict:
    """Retriable, fatal or skippable? (Singer's split: ``RetriableAPIError``, ``FatalAPIError``,
    skippable records.) Nothing transient is ever recorded as a record failure."""
    if isinstance(exc, RateLimitTimeout):
        return Verdict(RETRY, retry_in=_jitter(exc.retry_in), counts_as_attempt=False)
    if isinstance(exc, KlaviyoRateLimitError):
        return Verdict(RETRY, retry_in=_jitter(exc.retry_after), counts_as_attempt=False)
    if isinstance(exc, INFRASTRUCTURE):
        return Verdict(RETRY, retry_in=_jitter(5), counts_as_attempt=False)
    if isinstance(exc, SoftTimeLimitExceeded):  # slow, not wrong: the request may have gone out
        return Verdict(RETRY, error="the task ran out of time (soft time limit)", retry_in=_jitter(5))
    if isinstance(exc, KlaviyoAuthError):
        return Verdict(STOP, error=auth_reason(exc, connection_id))
    if isinstance(exc, ConfigError):
        return Verdict(STOP, error=str(exc))
    if isinstance(exc, KlaviyoAPIError) and exc.retriable:
        if attempts >= settings.max_attempts:
            return Verdict(UNSEND, error=f"still failing after {attempts} attempts: {exc.message}")
        return Verdict(RETRY, error=exc.message, retry_in=_backoff(attempts))
    if isinstance(exc, KlaviyoAPIError):
        return Verdict(FAIL, error=exc.message)
    return Verdict(FAIL, error=f"{type(exc).__name__}: {exc}")


def _settle(run_id: str, items: Sequence[SyncItem], owner: str, exc: BaseException, settings: Settings) -> Outcome:
    ids = [i.id for i in items]
    verdict = judge(exc, max(i.attempts for i in items), settings, _scope(run_id).connection_id)
    if verdict.action == STOP:
        log.error("run stopped: %s", verdict.error)
        stop(run_id, verdict.error)
        return DONE
    with session_scope() as session:
        if verdict.action == FAIL:
            fingerprint = payload_hash(items[0].payload) if len(items) == 1 and items[0].payload else None
            history.fail_items(session, ids, owner, verdict.error, fingerprint)
        elif verdict.action == UNSEND:
            history.unsend_items(session, ids, owner, verdict.error)
        else:
            due = utcnow() + timedelta(seconds=verdict.retry_in + settings.item_lease_seconds)
            history.release_items(session, ids, owner, error=verdict.error, sent=verdict.counts_as_attempt,
                                  due_by=due)
    if verdict.action == RETRY:
        return Outcome(retry_in=verdict.retry_in, reason=type(exc).__name__)
    log.warning("item(s) %s %s: %s", ids[:5], "failed" if verdict.action == FAIL else "not sent", verdict.error)
    finish_if_done(run_id)
    return DONE


@dataclass(frozen=True)
class RunScope:
    """Who a run acts for: its connection, the Klaviyo account it writes to, its shop (cipher)."""

    connection_id: str
    account: str
    shop: str
    #: For a realtime run: when its first notification was received (the latency histogram's start).
    received_at: float | None = None


_scopes: dict[str, RunScope] = {}


def _scope(run_id: str) -> RunScope:
    """A run's scope never changes once it is sending: look it up once per process."""
    if run_id not in _scopes:
        with session_scope() as session:
            run = session.get(SyncRun, run_id)
            _scopes[run_id] = RunScope(run.connection_id or "", run.account or "", run.shop,
                                       (run.options or {}).get("received_at"))
    return _scopes[run_id]


def _delivered(run_id: str, n: int) -> None:
    """A realtime run's records reached Klaviyo: into the queue-to-Klaviyo latency histogram."""
    received_at = _scope(run_id).received_at
    if received_at and n:
        from . import realtime

        try:
            realtime.observe_latency(clients.redis_client(), realtime.now() - received_at, n)
        except redis.RedisError:
            pass


_bound: dict[str, object] = {}


def bind(run_id: str, ctx) -> None:
    """Send this run's items with ``ctx``'s clients (the seed's service drives the engine inline
    with clients it was given) instead of its connection's."""
    _bound[run_id] = ctx


def unbind(run_id: str) -> None:
    _bound.pop(run_id, None)


def _context(run_id: str):
    if run_id in _bound:
        return _bound[run_id]
    from .connections import context

    return context(_scope(run_id).connection_id)


def _claim(run_id: str, ids: Sequence[int], owner: str, settings: Settings) -> tuple[list[SyncItem], str, Outcome]:
    """Claim what is free; the Outcome says when to come back for items another task holds."""
    with session_scope() as session:
        claimed, lease_ends = history.claim_items(session, ids, owner, settings.item_lease_seconds)
    shop = _scope(run_id).shop if claimed else ""
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
            with leases.held(owner, [item.id], settings.item_lease_seconds):
                _context(run_id).klaviyo.track_event(load_event(item.payload))
        except Exception as exc:  # judged: retry later, stop the run, or fail the record
            return _settle(run_id, [item], owner, exc, settings)
        _set_markers(run_id, [item.id])
    with session_scope() as session:
        history.succeed_items(session, [item.id], owner)
        ledger.mark_delivered(session, _scope(run_id).account, shop, run_id, [item.key])
    _delivered(run_id, 1)
    finish_if_done(run_id)
    return DONE


def send_profile(run_id: str, item_id: int, owner: str, settings: Settings) -> Outcome:
    """Upsert one profile, then (with KSYNC_CUSTOMER_LIST) add it to the list. The upsert is
    remembered in Redis, so a retry after a failed list add does not upsert again."""
    claimed, shop, outcome = _claim(run_id, [item_id], owner, settings)
    if not claimed:
        return outcome
    item = claimed[0]
    if not _drop_superseded(run_id, claimed, owner):
        return DONE
    profile_id = result = None
    if not _already_sent(run_id, [item]):
        try:
            with leases.held(owner, [item.id], settings.item_lease_seconds):
                profile_id, result = _upsert_once(run_id, item)
                ctx = _context(run_id)
                list_id = customer_list_id(ctx)
                if list_id:
                    _add_to_list(ctx, list_id, profile_id)
        except _ListGone:
            with session_scope() as session:  # counted as an attempt: the upsert did happen
                history.release_items(session, [item.id], owner, sent=True)
            return Outcome(retry_in=0.5, reason="customer list gone")
        except Exception as exc:
            return _settle(run_id, [item], owner, exc, settings)
        _set_markers(run_id, [item.id])
    with session_scope() as session:
        history.succeed_items(session, [item.id], owner)
        ledger.record_profiles(session, _scope(run_id).account, shop, run_id,
                               [(item.key, profile_id, payload_hash(item.payload))])
    _delivered(run_id, 1)
    finish_if_done(run_id)
    return Outcome(result=result)


def _drop_superseded(run_id: str, claimed: list[SyncItem], owner: str) -> list[SyncItem]:
    """The claimed profiles still worth sending. One a later plan replaces (``superseded_profiles``)
    is recorded as succeeded without a request: the later item carries it, newer."""
    with session_scope() as session:
        dropped = set(history.superseded_profiles(session, run_id, claimed))
        if dropped:
            history.succeed_items(session, sorted(dropped), owner)
    if dropped:
        log.info("run %s: %d profile(s) left to a later plan of the same buyer", run_id, len(dropped))
        finish_if_done(run_id)
    return [item for item in claimed if item.id not in dropped]


def _upsert_once(run_id: str, item: SyncItem):
    """(profile id, Klaviyo's answer or None when an earlier attempt already upserted it)."""
    marker = _marker(run_id, item.id, "upserted")
    cache = clients.redis_client()
    known = cache.get(marker) if item.attempts > 1 else None
    if known:
        return known.decode(), None
    result = _context(run_id).klaviyo.create_or_update_profile(load_profile(item.payload))
    cache.set(marker, result.profile_id, ex=SENT_MARKER_TTL)
    return result.profile_id, result


class _ListGone(Exception):
    """The cached customer list no longer exists in Klaviyo (deleted): the cache is dropped."""


def _list_cache_key(ctx) -> str:
    return f"ksync:klaviyo:list:{ctx.account}:{ctx.options.customer_list}"


def _add_to_list(ctx, list_id: str, profile_id: str) -> None:
    try:
        ctx.klaviyo.add_profiles_to_list(list_id, [profile_id])
    except KlaviyoNotFoundError:
        clients.redis_client().delete(_list_cache_key(ctx))
        raise _ListGone() from None


def customer_list_id(ctx) -> str | None:
    """The connection's optional customer list (KSYNC_CUSTOMER_LIST, or its own), looked up once and
    cached in Redis for a day per Klaviyo account; the cache is dropped when Klaviyo says the
    list no longer exists.

    Membership goes through add-to-list, which leaves consent alone: TikTok buyers are
    never subscribed to marketing.
    """
    if not ctx.options.customer_list:
        return None
    cache = clients.redis_client()
    cached = cache.get(_list_cache_key(ctx))
    if cached:
        return cached.decode()
    list_id = ctx.klaviyo.get_or_create_list(ctx.options.customer_list).list_id
    cache.set(_list_cache_key(ctx), list_id, ex=24 * 3600)
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
    with leases.held(owner, [i.id for i in claimed], settings.item_lease_seconds):
        while pending:
            try:
                _context(run_id).klaviyo.bulk_create_events([load_event(i.payload) for i in pending])
            except KlaviyoValidationError as exc:
                index = exc.index  # the refused event's position in the request
                if index is None:
                    return _settle(run_id, pending, owner, exc, settings)
                bad = pending.pop(index)
                with session_scope() as session:
                    history.fail_items(session, [bad.id], owner, exc.message, payload_hash(bad.payload))
                continue
            except Exception as exc:
                return _settle(run_id, pending, owner, exc, settings)
            _set_markers(run_id, [i.id for i in pending])
            done |= {i.id for i in pending}
            pending = []
    sent = [i for i in claimed if i.id in done]
    with session_scope() as session:
        history.succeed_items(session, [i.id for i in sent], owner)
        ledger.mark_delivered(session, _scope(run_id).account, shop, run_id, [i.key for i in sent])
    _delivered(run_id, len(sent))
    finish_if_done(run_id)
    return outcome if outcome.retry_in else DONE


def send_profile_batch(run_id: str, item_ids: Sequence[int], owner: str, settings: Settings) -> Outcome:
    """Up to 10,000 profiles as one Klaviyo bulk import job, polled to the end; rows the job
    reports as import errors are failed with Klaviyo's detail, the others succeed."""
    ref = _job_of(item_ids)
    if ref is None:
        claimed, shop, outcome = _claim(run_id, item_ids, owner, settings)
        if not claimed:
            return outcome
        claimed = _drop_superseded(run_id, claimed, owner)
        if not claimed:
            return DONE
        ref, outcome = _start_import_job(run_id, claimed, owner, settings)
        if ref is None:
            return outcome
    return _finish_import_job(run_id, ref, owner, settings)


def _import_without_phone(run_id: str, item_ids: Sequence[int], owner: str, settings: Settings) -> Outcome:
    """Import the conflicted rows ``item_ids`` (pending again) once more, without their phone numbers."""
    claimed, _, outcome = _claim(run_id, item_ids, owner, settings)
    if not claimed:
        return outcome
    ref, outcome = _start_import_job(run_id, claimed, owner, settings, without_phone=True)
    if ref is None:
        return outcome
    return _job_pending(ref, _jitter(1), "conflicts imported again without phone numbers", settings)


def _start_import_job(run_id: str, claimed: list[SyncItem], owner: str, settings: Settings,
                      without_phone: bool = False) -> tuple[str | None, Outcome]:
    """Send the claimed profiles as one import job and mark them with its reference (prefixed
    ``WITHOUT_PHONE`` when their phone numbers are left out): ``(ref, DONE)``. If Klaviyo refuses
    the job: ``(None, what to do)``, a refused row failed on its own and the rest released."""
    claimed.sort(key=lambda i: i.id)  # job rows in id order: import errors point at row indexes
    profiles = [load_profile(i.payload) for i in claimed]
    if without_phone:
        profiles = [replace(p, phone_number=None) for p in profiles]
    try:
        with leases.held(owner, [i.id for i in claimed], settings.item_lease_seconds):
            ctx = _context(run_id)
            list_id = customer_list_id(ctx)
            job = ctx.klaviyo.bulk_import_profiles(profiles, list_ids=[list_id] if list_id else ())
    except KlaviyoValidationError as exc:
        if (exc.pointer or "").startswith("/data/relationships/lists"):  # the cached list was deleted
            clients.redis_client().delete(_list_cache_key(_context(run_id)))
            with session_scope() as session:
                history.release_items(session, [i.id for i in claimed], owner, sent=False)
            return None, Outcome(retry_in=0.5, reason="customer list gone")
        index = exc.index  # the refused row's position in the job
        if index is None:
            return None, _settle(run_id, claimed, owner, exc, settings)
        with session_scope() as session:
            history.fail_items(session, [claimed[index].id], owner, exc.message, payload_hash(claimed[index].payload))
            history.release_items(session, [i.id for i in claimed if i is not claimed[index]], owner)
        return None, Outcome(retry_in=0.5, reason="invalid row removed")
    except Exception as exc:
        return None, _settle(run_id, claimed, owner, exc, settings)
    ref = (WITHOUT_PHONE if without_phone else "") + job.job_id
    with session_scope() as session:
        history.set_external_ref(session, [i.id for i in claimed], owner, ref)
    return ref, DONE


def _job_of(item_ids: Sequence[int]) -> str | None:
    with session_scope() as session:
        refs = set(session.scalars(select(SyncItem.external_ref).where(
            SyncItem.id.in_(item_ids), SyncItem.status == "sending", SyncItem.external_ref.is_not(None))))
    return next(iter(refs), None)


def _finish_import_job(run_id: str, ref: str, owner: str, settings: Settings) -> Outcome:
    """Poll the job briefly; when it ends, account for every row (see ``account_for_rows``).
    ``ref`` is what the rows' ``external_ref`` holds: the job id, prefixed for a job of conflicts
    imported again without phone numbers."""
    client = _context(run_id).klaviyo
    job_id = ref.removeprefix(WITHOUT_PHONE)
    try:
        job = client.wait_for_bulk_import(job_id, timeout=BULK_POLL_SECONDS, poll=0.5)
        errors = list(client.get_bulk_import_errors(job_id)) if job.done and job.failed_count else []
    except Exception as exc:
        verdict = judge(exc, 0, settings, _scope(run_id).connection_id)
        if verdict.action == STOP:
            stop(run_id, verdict.error)
            return DONE
        return _job_pending(ref, verdict.retry_in or _jitter(5), type(exc).__name__, settings)
    if not job.done:
        return _job_pending(ref, _jitter(3), "job running", settings)
    with session_scope() as session:
        items = list(session.scalars(select(SyncItem).where(SyncItem.external_ref == ref,
                                                            SyncItem.status == "sending").order_by(SyncItem.id)))
        rows = account_for_rows(items, job, errors)
        fingerprints = {i.id: payload_hash(i.payload) for i in items if i.id in rows.failed}
        attempts = {i.id: i.attempts for i in items}
        spent = [i for i in rows.resend if attempts[i] >= settings.max_attempts]
        succeeded = history.settle_import_job(
            session, ref, rows.failed, [*rows.conflicts, *(i for i in rows.resend if i not in spent)], fingerprints,
            unsent=spent, unsent_error=f"still unaccounted for after {settings.max_attempts} import jobs: {rows.why}")
        rows = RowAccount(rows.failed, rows.conflicts, [i for i in rows.resend if i not in spent], rows.why)
        ledger.record_profiles(session, _scope(run_id).account, _scope(run_id).shop, run_id,
                               [(i.key, None, payload_hash(i.payload)) for i in succeeded])
    if rows.resend:  # the conflicts, pending again, go with them into the next job
        log.warning("bulk import job %s: %s; %d row(s) sent again", job_id, rows.why, len(rows.resend))
        return Outcome(retry_in=_jitter(1), reason=rows.why)
    with_phone = [] if ref.startswith(WITHOUT_PHONE) else _with_phone_number(items, rows.conflicts)
    single = tuple(i for i in rows.conflicts if i not in with_phone)
    if with_phone:
        outcome = _import_without_phone(run_id, with_phone, owner, settings)
        return replace(outcome, resend_single=single)
    finish_if_done(run_id)
    return Outcome(resend_single=single) if single else DONE


def _with_phone_number(items: list[SyncItem], ids: Sequence[int]) -> list[int]:
    """Those of ``ids`` whose profile has a phone number and another identifier to go by without it."""
    wanted = set(ids)
    kept = []
    for item in items:
        if item.id in wanted:
            profile = load_profile(item.payload)
            if profile.phone_number and (profile.email or profile.external_id):
                kept.append(item.id)
    return kept


def _job_pending(job_id: str, retry_in: float, reason: str, settings: Settings) -> Outcome:
    """The job is still running (or could not be read): its rows stay held until the next poll is due."""
    with session_scope() as session:
        history.extend_job_lease(session, job_id, utcnow() + timedelta(seconds=retry_in + settings.item_lease_seconds))
    return Outcome(retry_in=retry_in, reason=reason)


@dataclass(frozen=True)
class RowAccount:
    """What a finished import job did with each of our rows: ``failed`` (item id -> Klaviyo's error),
    ``conflicts`` (to the single upsert), ``resend`` (not known to be imported: sent again), the rest
    imported. ``why`` says why rows are re-sent."""

    failed: dict[int, str]
    conflicts: list[int]
    resend: list[int]
    why: str = ""


def account_for_rows(items: list[SyncItem], job: BulkImportJob, errors: list) -> RowAccount:
    """Account for every row of a finished job; a row is taken as imported only when the job's own
    counts prove it. A cancelled job imported nothing we can count on; a job whose completed and
    failed counts do not add up to our rows, or an import error we cannot tie to a row, leaves
    every row without an error of its own unaccounted: those are sent again (a profile import
    is an upsert, so a row imported twice is harmless; a row never imported would be lost)."""
    matched, unmatched = _rows_with_errors(items, errors)
    conflicts = [i for i, error in matched.items() if CONFLICT_CODE in error]
    failed = {i: error for i, error in matched.items() if i not in conflicts}
    rest = [i.id for i in items if i.id not in matched]
    if job.status == "cancelled":
        return RowAccount({}, [], [i.id for i in items], why="the job was cancelled")
    reasons = []
    if job.completed_count + job.failed_count != len(items):
        reasons.append(f"{job.completed_count} completed + {job.failed_count} failed != {len(items)} rows")
    if unmatched:
        reasons.append(f"{unmatched} import error(s) name no row we sent")
    if len(errors) != job.failed_count:
        reasons.append(f"{len(errors)} import errors for {job.failed_count} failed rows")
    if reasons:
        return RowAccount(failed, conflicts, rest, why="; ".join(reasons))
    return RowAccount(failed, conflicts, [])


def _rows_with_errors(items: list[SyncItem], errors) -> tuple[dict[int, str], int]:
    """Import errors point at rows (``/data/attributes/profiles/data/<i>/...``) in the order we
    sent them (item id order); fall back to matching the original payload's identifiers.
    Returns the errors by item id, and how many errors matched no row."""
    failed: dict[int, str] = {}
    unmatched = 0
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
        if target is None:
            unmatched += 1
        else:
            failed[target.id] = message
    return failed, unmatched
