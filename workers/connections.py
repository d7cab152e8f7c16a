"""Connections as the engine uses them: options, the environment's implicit connection, and a
per-connection context (its Klaviyo and TikTok clients, its limiters) loaded by id in each task.

Tasks carry a connection id and a run id, never credentials; ``context(id)`` turns the id into
clients, decrypting the secrets from the database (``db/secrets.py``). Contexts are cached per
process for ``CONTEXT_TTL_SECONDS``, so a task costs no extra query, and a key change, a pause or
a share change reaches every worker within that time.

The environment keeps working: when ``TIKTOK_*`` and ``KLAVIYO_API_KEY`` are set, each shop cipher
of ``TIKTOK_SHOP_CIPHER`` is an implicit connection (``default``, ``default-2``, ...) kept in step
with the environment (``ensure_env_connections``).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from db import connections as store
from db import ledger
from db.engine import session_scope
from db.models import Connection, TikTokAuthorization, utcnow
from klaviyo import KlaviyoClient
from logs import register_secret
from settings import ConfigError, Settings, get_settings
from tiktok import TikTokShopClient, TokenPair

from . import clients
from .mapping import RELAY_EMAIL_MODES
from .ratelimit import LayeredLimiter, RedisRateLimiter, TikTokLimiter, klaviyo_limits

log = logging.getLogger(__name__)

#: How long a worker process reuses a connection's context before reading the row again.
CONTEXT_TTL_SECONDS = 30
#: The environment's implicit connections share one authorization: the token pair of TIKTOK_*.
ENV_AUTHORIZATION = "env"


@dataclass(frozen=True)
class Options:
    """What a connection may change about its syncs; unset values fall back to the settings.

    - ``sync_interval_seconds``: its incremental sync period;
    - ``customer_list``: a Klaviyo list every buyer is added to (add-to-list: consent untouched);
    - ``rate_limit_share``: the share (0-1] of its Klaviyo account's limits it may use, so a
      second integration or another connection on the same account keeps the rest;
    - ``relay_email``: TikTok's relay e-mail as the profile's e-mail (``identity``), as a
      property only (``property``), or not at all (``skip``).
    """

    sync_interval_seconds: int
    customer_list: str
    rate_limit_share: float = 1.0
    relay_email: str = "identity"

    @classmethod
    def of(cls, raw: dict | None, settings: Settings) -> "Options":
        raw = raw or {}
        options = cls(sync_interval_seconds=int(raw.get("sync_interval_seconds") or settings.sync_interval_seconds),
                      customer_list=str(raw.get("customer_list") if raw.get("customer_list") is not None
                                        else settings.customer_list_name),
                      rate_limit_share=float(raw.get("rate_limit_share") or 1.0),
                      relay_email=str(raw.get("relay_email") or "identity"))
        options.check()
        return options

    def check(self) -> None:
        if self.sync_interval_seconds < 1:
            raise ConfigError(f"sync_interval_seconds must be at least 1, got {self.sync_interval_seconds}")
        if not 0 < self.rate_limit_share <= 1:
            raise ConfigError(f"rate_limit_share must be more than 0 and at most 1, got {self.rate_limit_share}")
        if self.relay_email not in RELAY_EMAIL_MODES:
            raise ConfigError(f"relay_email must be one of {', '.join(RELAY_EMAIL_MODES)}, got {self.relay_email!r}")


# The environment's implicit connections ----------------------------------------------------------


def env_connection_ids(settings: Settings) -> list[str]:
    return ["default" if i == 0 else f"default-{i + 1}" for i in range(len(settings.shop_ciphers))]


def is_env_connection(connection_id: str) -> bool:
    """``default``, ``default-2``, ...: made from the environment, so its key is KLAVIYO_API_KEY
    (a connection someone named ``default-eu`` is not)."""
    return re.fullmatch(r"default(-[0-9]+)?", connection_id) is not None


def env_describes(settings: Settings) -> list[str]:
    """The connections the environment describes now: none unless its Klaviyo key, the TikTok app,
    a token and a cipher are all set. Once they are unset, the connections they made stay in the
    table as they are (a way to move from the environment to the table)."""
    if not (settings.klaviyo_api_key and settings.tiktok_app_key and settings.tiktok_app_secret
            and settings.shop_ciphers and settings.tiktok_access_token):
        return []
    return env_connection_ids(settings)


def ensure_env_connections(settings: Settings | None = None) -> list[str]:
    """Create or update the connections the environment describes; returns their ids.

    The environment is their source of truth: a changed Klaviyo key or cipher is taken over,
    and a changed TikTok token pair in the environment (the operator authorized again) replaces
    the stored one and lifts ``needs_reauth``. Tokens TikTok rotated since are kept otherwise.
    """
    settings = settings or get_settings()
    ids = env_describes(settings)
    if not ids:
        return []
    seeded = hashlib.sha256(f"{settings.tiktok_access_token}\0{settings.tiktok_refresh_token}".encode()).hexdigest()[:16]
    with session_scope() as session:
        authorization = session.get(TikTokAuthorization, ENV_AUTHORIZATION)
        if authorization is None or any((c.options or {}).get("env_tokens") != seeded
                                        for c in store.of_authorization(session, ENV_AUTHORIZATION)):
            authorization = store.upsert_authorization(
                session, app_key=settings.tiktok_app_key, open_id=None, access_token=settings.tiktok_access_token,
                refresh_token=settings.tiktok_refresh_token or None, authorization_id=ENV_AUTHORIZATION)
            for connection in store.of_authorization(session, ENV_AUTHORIZATION):
                if connection.status == "needs_reauth":
                    store.set_status(session, connection.id, "active", "re-authorized in the environment")
        for connection_id, cipher in zip(ids, settings.shop_ciphers):
            connection = store.get(session, connection_id)
            if connection is None:
                connection = store.add(session, connection_id=connection_id, authorization=authorization,
                                       shop_cipher=cipher, klaviyo_api_key=settings.klaviyo_api_key, source="env")
                connection.next_reconcile_at = next_reconcile(settings)
            elif connection.source == "env":
                if connection.klaviyo_api_key != settings.klaviyo_api_key:
                    connection.klaviyo_api_key, connection.klaviyo_account_id = settings.klaviyo_api_key, None
                if connection.shop_cipher != cipher:
                    connection.shop_cipher, connection.shop_id, connection.shop_name = cipher, "", ""
            if connection.source == "env" and (connection.options or {}).get("env_tokens") != seeded:
                connection.options = dict(connection.options or {}, env_tokens=seeded)
    return ids


def next_reconcile(settings: Settings, now: datetime | None = None) -> datetime:
    """The next daily reconciliation: KSYNC_RECONCILE_HOUR_UTC, 7 minutes past."""
    now = now or utcnow()
    at = now.replace(hour=settings.reconcile_hour_utc, minute=7, second=0, microsecond=0)
    return at if at > now else at + timedelta(days=1)


# Tokens ------------------------------------------------------------------------------------------


class DatabaseTokenStore:
    """A seller's TikTok token pair in ``tiktok_authorizations`` (encrypted), so every worker uses
    the newest one; refreshes are serialised per authorization by a Redis lock."""

    def __init__(self, authorization_id: str, redis_client, lock_timeout: float = 30):
        self.authorization_id = authorization_id
        self.redis = redis_client
        self.lock_timeout = lock_timeout

    def __repr__(self) -> str:
        return f"DatabaseTokenStore(authorization_id={self.authorization_id!r})"

    def load(self) -> TokenPair | None:
        with session_scope() as session:
            row = session.get(TikTokAuthorization, self.authorization_id)
            if row is None or not row.access_token:
                return None
            return TokenPair(row.access_token, row.refresh_token, row.access_expires_at, row.refresh_expires_at)

    def save(self, pair: TokenPair) -> None:
        with session_scope() as session:
            row = session.get(TikTokAuthorization, self.authorization_id)
            row.access_token, row.refresh_token = pair.access_token, pair.refresh_token
            row.access_expires_at, row.refresh_expires_at = pair.access_expires_at, pair.refresh_expires_at
            row.updated_at = utcnow()

    @contextlib.contextmanager
    def lock(self):
        lock = self.redis.lock(f"ksync:lock:tiktok-refresh:{self.authorization_id}", timeout=self.lock_timeout,
                               blocking_timeout=self.lock_timeout)
        if not lock.acquire():
            raise TimeoutError("could not take the TikTok token refresh lock")
        try:
            yield
        finally:
            with contextlib.suppress(Exception):
                lock.release()


# Contexts ----------------------------------------------------------------------------------------


@dataclass
class Context:
    """Everything a task needs to act for one connection. No secret in its repr."""

    id: str
    shop: str
    shop_id: str
    shop_name: str
    account: str
    authorization_id: str
    status: str
    status_reason: str | None
    options: Options
    klaviyo: KlaviyoClient
    tiktok: TikTokShopClient
    loaded_at: float

    def __repr__(self) -> str:
        return f"Context(id={self.id!r}, shop={self.shop!r}, account={self.account!r}, status={self.status!r})"

    def close(self) -> None:
        for client in (self.klaviyo, self.tiktok):
            with contextlib.suppress(Exception):
                client.close()


_contexts: dict[tuple[int, str], Context] = {}
_lock = threading.Lock()


def context(connection_id: str, fresh: bool = False) -> Context:
    """The connection's context, reused for ``CONTEXT_TTL_SECONDS`` in this process."""
    key = (os.getpid(), connection_id)
    with _lock:
        found = _contexts.get(key)
        if found is not None and not fresh and time.monotonic() - found.loaded_at < CONTEXT_TTL_SECONDS:
            return found
    built = _build(connection_id)
    with _lock:
        old = _contexts.pop(key, None)
        _contexts[key] = built
    if old is not None:
        old.close()
    return built


def forget(connection_id: str | None = None) -> None:
    """Drop cached contexts (all, or one connection's), e.g. after its key changed."""
    with _lock:
        for key in [k for k in _contexts if connection_id is None or k[1] == connection_id]:
            _contexts.pop(key).close()


def _build(connection_id: str) -> Context:
    settings = get_settings()
    with session_scope() as session:
        row = store.get(session, connection_id)
        if row is None:
            raise store.ConnectionError_(f"no connection {connection_id!r}")
        values = _values(row)
    options = Options.of(values["options"], settings)
    register_secret(values["klaviyo_api_key"])
    account = values["klaviyo_account_id"] or klaviyo_account_id(connection_id, values["klaviyo_api_key"], settings)
    redis_client = clients.redis_client()
    limiter = klaviyo_limiter(redis_client, account, connection_id, options.rate_limit_share, settings)
    klaviyo = KlaviyoClient(values["klaviyo_api_key"], base_url=settings.klaviyo_api_base_url,
                            revision=settings.klaviyo_revision, rate_limiter=limiter, retry=clients.TASK_RETRY_POLICY,
                            limiter_timeout=settings.limiter_max_block_seconds, timeout=clients.TASK_HTTP_TIMEOUT)
    tiktok = TikTokShopClient(settings.tiktok_app_key, settings.tiktok_app_secret, shop_cipher=values["shop_cipher"],
                              base_url=settings.tiktok_api_base_url, auth_base_url=settings.tiktok_auth_base_url,
                              token_store=DatabaseTokenStore(values["authorization_id"], redis_client),
                              retry=clients.TASK_TIKTOK_RETRY, timeout=clients.TASK_HTTP_TIMEOUT,
                              on_secret=register_secret,
                              rate_limiter=TikTokLimiter(redis_client, settings.tiktok_app_key, values["shop_cipher"]),
                              limiter_timeout=settings.limiter_max_block_seconds)
    return Context(id=connection_id, shop=values["shop_cipher"], shop_id=values["shop_id"],
                   shop_name=values["shop_name"] or values["shop_cipher"], account=account,
                   authorization_id=values["authorization_id"], status=values["status"],
                   status_reason=values["status_reason"], options=options,
                   klaviyo=klaviyo, tiktok=tiktok, loaded_at=time.monotonic())


def _values(row: Connection) -> dict:
    return {name: getattr(row, name) for name in (
        "shop_cipher", "shop_id", "shop_name", "klaviyo_api_key", "klaviyo_account_id", "authorization_id",
        "status", "status_reason", "options")}


def klaviyo_limiter(redis_client, account: str, connection_id: str, share: float, settings: Settings):
    """The account's buckets (KSYNC_RATE_LIMIT_SCALE of Klaviyo's limits), shared by every
    connection writing to that account; below a share of 1, the connection's own cap first."""
    outer = RedisRateLimiter(redis_client, klaviyo_limits(settings.rate_limit_scale), account=account)
    if share >= 1:
        return outer
    inner = RedisRateLimiter(redis_client, klaviyo_limits(settings.rate_limit_scale * share),
                             account=f"{account}:{connection_id}")
    return LayeredLimiter(inner, outer)


def klaviyo_account_id(connection_id: str, api_key: str, settings: Settings) -> str:
    """Ask Klaviyo which account the key belongs to (``GET /api/accounts``, 1/s and 15/m) and keep
    the answer on the connection; rows written before connections existed are adopted then."""
    limiter = RedisRateLimiter(clients.redis_client(), {"get_accounts": klaviyo_limits()["get_accounts"]},
                               account="key-" + hashlib.sha256(api_key.encode()).hexdigest()[:12])
    with KlaviyoClient(api_key, base_url=settings.klaviyo_api_base_url, revision=settings.klaviyo_revision,
                       rate_limiter=limiter, timeout=clients.TASK_HTTP_TIMEOUT,
                       limiter_timeout=settings.limiter_max_block_seconds) as client:
        [account] = client.get_accounts()[:1]
    with session_scope() as session:
        row = store.get(session, connection_id)
        row.klaviyo_account_id = account.account_id
        if row.source == "env":
            moved = ledger.adopt_unscoped_rows(session, account.account_id, connection_id, row.shop_cipher)
            if moved:
                log.info("connection %s adopted %d rows written before connections", connection_id, moved)
    return account.account_id


def ensure_shop_info(ctx: Context) -> None:
    """Learn the shop's id, name and region from TikTok once (the environment gives only the
    cipher): profiles list shop names, and webhooks name the shop by id."""
    if ctx.shop_id:
        return
    shop = next((s for s in ctx.tiktok.get_authorized_shops() if s.cipher == ctx.shop), None)
    if shop is None:
        raise ConfigError(f"TikTok does not list shop cipher {ctx.shop} among the shops this authorization covers; "
                          f"check connection {ctx.id}'s cipher (TIKTOK_SHOP_CIPHER for the environment's)")
    with session_scope() as session:
        row = store.get(session, ctx.id)
        row.shop_id, row.shop_name, row.shop_region = shop.id, shop.name, shop.region
    ctx.shop_id, ctx.shop_name = shop.id, shop.name or ctx.shop


def needs_reauth(connection_id: str, reason: str) -> list[str]:
    """The seller's authorization ended: every connection on it goes ``needs_reauth`` (fatal for
    them alone); their syncs are skipped until the seller authorizes again."""
    with session_scope() as session:
        row = store.get(session, connection_id)
        ids = store.needs_reauth(session, row.authorization_id, reason) if row else []
    for other in ids:
        forget(other)
    log.error("connections %s need the seller to authorize again: %s", ", ".join(ids), reason)
    return ids


def account_limiters(settings: Settings | None = None) -> list[RedisRateLimiter]:
    """The shared limiter of every Klaviyo account a connection writes to (known accounts only:
    no Klaviyo call), for ``ksync limits`` and the metrics."""
    from sqlalchemy import select

    settings = settings or get_settings()
    with session_scope() as session:
        accounts = sorted(set(session.scalars(select(Connection.klaviyo_account_id)
                                              .where(Connection.klaviyo_account_id.is_not(None)))))
    return [RedisRateLimiter(clients.redis_client(), klaviyo_limits(settings.rate_limit_scale), account=a)
            for a in accounts]


def shop_names(account: str) -> dict[str, str]:
    """Shop cipher -> shop name, for every connection writing to ``account`` (profiles list them)."""
    from sqlalchemy import select

    with session_scope() as session:
        rows = session.execute(select(Connection.shop_cipher, Connection.shop_name)
                               .where(Connection.klaviyo_account_id == account)).all()
    return {cipher: name or cipher for cipher, name in rows}

