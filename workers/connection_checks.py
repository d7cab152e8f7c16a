"""Is a connection able to sync? One cheap read against each API, each answer one line.

``ksync connections test`` prints these lines and ``ksync doctor`` prints them for every
connection; a web page could show them too. Each line says precisely what is wrong and what to
do: a key Klaviyo rejects (401) or that lacks a scope (403), a TikTok token that expired and
could not be refreshed (the connection, and every other one of that seller, then goes
``needs_reauth``, as a sync would), a shop cipher the seller's authorization does not cover,
an API that does not answer. No message carries a secret: they are built from status codes,
TikTok's codes and our own words.

The reads are those the engine makes first: ``GET /api/accounts`` (what the limiter and the
ledger are keyed by) and ``GET /authorization/202309/shops`` (what ``ensure_shop_info`` reads),
without retries and with a short timeout. The Klaviyo read goes through the account's
``get_accounts`` bucket (1/s, 15/min) when Redis is at hand, so checks never steal budget a
sync is using.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field

from db import connections as store
from db.engine import session_scope
from db.secrets import SecretKeyError
from klaviyo import (KlaviyoAPIError, KlaviyoAuthError, KlaviyoClient, KlaviyoNetworkError, KlaviyoRateLimitError,
                     NoRateLimit, RateLimitTimeout, RetryPolicy)
from logs import register_secret
from settings import Settings, get_settings
from tiktok import (TikTokAPIError, TikTokNetworkError, TikTokReauthorizationRequired, TikTokRetryPolicy,
                    TikTokShopClient, TikTokSignatureError)

log = logging.getLogger(__name__)

#: Seconds per request: a check answers quickly or says the API is unreachable.
CHECK_TIMEOUT = 10
#: Seconds a check waits for the account's get_accounts budget before saying it is in use.
CHECK_LIMITER_WAIT = 5
#: One wait on a 429: ``GET /api/accounts`` allows 1/s per account, and two connections on one
#: account (whose account is not known yet, so not yet one limiter bucket) may ask in the same second.
CHECK_RETRY = RetryPolicy(max_429=1, max_5xx=0, max_network=0)
NO_TIKTOK_RETRIES = TikTokRetryPolicy(max_rate_limited=0, max_server=0, max_network=0)


@dataclass(frozen=True)
class Check:
    """One API's answer for one connection. ``detail``: what was found (ok) or what to do (not ok)."""

    connection: str
    api: str
    ok: bool
    detail: str


@dataclass(frozen=True)
class Target:
    """What the checks need from the connection row (the key decrypted: never in ``repr``)."""

    id: str
    source: str
    klaviyo_api_key: str = field(repr=False)
    klaviyo_account_id: str | None
    shop_cipher: str
    authorization_id: str


def check_connection(connection_id: str, redis_client=None, settings: Settings | None = None) -> list[Check]:
    """The Klaviyo and the TikTok check of one connection. Without ``redis_client`` the TikTok check
    is skipped (the token refresh lock is in Redis) and Klaviyo is asked without the shared limiter."""
    settings = settings or get_settings()
    try:
        target = load(connection_id)
    except SecretKeyError as exc:
        return [Check(connection_id, api, False, str(exc)) for api in ("klaviyo", "tiktok")]
    tiktok = (check_tiktok(target, redis_client, settings) if redis_client is not None else
              Check(target.id, "tiktok", False, "skipped: the token pair's refresh lock is in Redis, which must answer first"))
    return [check_klaviyo(target, redis_client, settings), tiktok]


def load(connection_id: str) -> Target:
    with session_scope() as session:
        row = store.resolve(session, connection_id)
        return Target(row.id, row.source, row.klaviyo_api_key or "", row.klaviyo_account_id, row.shop_cipher,
                      row.authorization_id)


# Klaviyo -----------------------------------------------------------------------------------------


def check_klaviyo(target: Target, redis_client, settings: Settings) -> Check:
    """``GET /api/accounts`` with the connection's key: the key works, and it is the account the
    connection's ledger and limiter are keyed by."""
    register_secret(target.klaviyo_api_key)
    try:
        with KlaviyoClient(target.klaviyo_api_key, base_url=settings.klaviyo_api_base_url,
                           revision=settings.klaviyo_revision, rate_limiter=_accounts_limiter(target, redis_client),
                           retry=CHECK_RETRY, timeout=CHECK_TIMEOUT, limiter_timeout=CHECK_LIMITER_WAIT) as client:
            accounts = client.get_accounts()
    except (KlaviyoAPIError, RateLimitTimeout) as exc:
        holder, fix = _klaviyo_fix(target)
        return Check(target.id, "klaviyo", False, klaviyo_problem(exc, settings.klaviyo_api_base_url, holder, fix))
    if not accounts:
        return Check(target.id, "klaviyo", False, "Klaviyo answered no account for the key")
    account = accounts[0]
    if target.klaviyo_account_id and account.account_id != target.klaviyo_account_id:
        return Check(target.id, "klaviyo", False,
                     f"the key belongs to Klaviyo account {account.account_id}, but connection {target.id} has synced "
                     f"to account {target.klaviyo_account_id}: add a new connection for the other account instead")
    name = f" ({account.organization_name})" if account.organization_name else ""
    return Check(target.id, "klaviyo", True, f"account {account.account_id}{name} accepted the key")


def klaviyo_problem(exc: BaseException, base_url: str, holder: str, fix_401: str) -> str:
    """The one line for a failed Klaviyo read: ``holder`` names where the key lives (to give it a
    scope), ``fix_401`` what to do about a rejected one."""
    if isinstance(exc, RateLimitTimeout):
        return (f"skipped: the account's get_accounts budget (1/s, 15/min) is in use; try again in "
                f"{max(1, round(exc.retry_in))} s")
    if isinstance(exc, KlaviyoAuthError) and exc.status == 403:
        return f"Klaviyo refused a scope (403): give {holder} the accounts:read scope (and those a sync writes with)"
    if isinstance(exc, KlaviyoAuthError):
        return f"Klaviyo refused the key ({exc.status or 401}): {fix_401}"
    if isinstance(exc, KlaviyoNetworkError):
        return f"Klaviyo unreachable at {base_url} ({exc.message})"
    if isinstance(exc, KlaviyoRateLimitError):
        return f"Klaviyo throttled the check (429); try again in {max(1, round(exc.retry_after))} s"
    return f"Klaviyo answered {exc.status or 'nothing usable'}: {exc.message}"


def _klaviyo_fix(target: Target) -> tuple[str, str]:
    if target.source == "env":
        return "KLAVIYO_API_KEY", "check KLAVIYO_API_KEY and its scopes"
    return (f"connection {target.id}'s key", f"connection {target.id}'s key was revoked or mistyped; remove the "
            "connection and add it again with a new key (its history and watermark are kept)")


def _accounts_limiter(target: Target, redis_client):
    if redis_client is None:
        return NoRateLimit()
    from .ratelimit import RedisRateLimiter, klaviyo_limits

    account = target.klaviyo_account_id or "key-" + hashlib.sha256(target.klaviyo_api_key.encode()).hexdigest()[:12]
    return RedisRateLimiter(redis_client, {"get_accounts": klaviyo_limits()["get_accounts"]}, account=account)


# TikTok ------------------------------------------------------------------------------------------


def check_tiktok(target: Target, redis_client, settings: Settings) -> Check:
    """The shops the seller's authorization covers, with the stored token pair (refreshed and saved
    if it expired, as a worker would): the token works and the connection's shop is among them."""
    from .connections import DatabaseTokenStore

    try:
        client = TikTokShopClient(settings.tiktok_app_key, settings.tiktok_app_secret, base_url=settings.tiktok_api_base_url,
                                  auth_base_url=settings.tiktok_auth_base_url,
                                  token_store=DatabaseTokenStore(target.authorization_id, redis_client),
                                  retry=NO_TIKTOK_RETRIES, timeout=CHECK_TIMEOUT, on_secret=register_secret)
        with client:
            shops = client.get_authorized_shops()
    except TikTokReauthorizationRequired as exc:
        ids = mark_needs_reauth(target, f"TikTok refused the refresh token: {exc.message}")
        return Check(target.id, "tiktok", False, reauth_problem(exc, target.id, ids))
    except TikTokAPIError as exc:
        return Check(target.id, "tiktok", False, tiktok_problem(exc, settings.tiktok_api_base_url, target.id))
    except SecretKeyError as exc:
        return Check(target.id, "tiktok", False, str(exc))
    except TimeoutError:
        return Check(target.id, "tiktok", False, "another process holds the seller's token refresh lock; try again")
    found = next((s for s in shops if s.cipher == target.shop_cipher), None)
    if found is None:
        covered = ", ".join(f"{s.name} ({s.cipher})" for s in shops) or "no shop"
        where = "TIKTOK_SHOP_CIPHER" if target.source == "env" else f"connection {target.id}"
        return Check(target.id, "tiktok", False, f"shop cipher {target.shop_cipher} is unknown to the seller's "
                                                 f"authorization, which covers {covered}: check {where}")
    return Check(target.id, "tiktok", True, f"{found.name} ({found.cipher}) authorized")


def mark_needs_reauth(target: Target, reason: str) -> list[str]:
    """As a sync would: every connection of the seller goes ``needs_reauth`` (their syncs are
    skipped until the seller authorizes again). Logged at INFO: the check's line says it."""
    from .connections import forget

    with session_scope() as session:
        ids = sorted(store.needs_reauth(session, target.authorization_id, reason))
    for connection_id in ids:
        forget(connection_id)
    log.info("connections %s need the seller to authorize again: %s", ", ".join(ids), reason)
    return ids or [target.id]


def reauth_problem(exc: TikTokReauthorizationRequired, connection_id: str, ids: list[str]) -> str:
    return (f"the TikTok access token expired and the refresh failed ({exc.message}): connection(s) "
            f"{', '.join(ids)} now need the seller to authorize again: `ksync connections authorize {connection_id}`")


def tiktok_problem(exc: TikTokAPIError, base_url: str, connection_id: str | None = None) -> str:
    """The one line for a failed TikTok check (re-authorization has its own, ``reauth_problem``)."""
    if isinstance(exc, TikTokSignatureError):
        return "TikTok refused the request signature (106001): check TIKTOK_APP_SECRET (and TIKTOK_APP_KEY)"
    if isinstance(exc, TikTokNetworkError):
        return f"TikTok unreachable at {base_url} ({exc.message})"
    if exc.status in (401, 403) or exc.code == 105002:
        return (f"TikTok refused the seller's access token ({exc.code}: {exc.message}): the seller must authorize "
                f"the app again: `ksync connections authorize{' ' + connection_id if connection_id else ''}`")
    return f"TikTok answered {exc.code or exc.status}: {exc.message}"
