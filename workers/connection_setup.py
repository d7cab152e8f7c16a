"""Adding a connection: everything checked before anything is saved, nothing printed or asked.

``ksync connections add`` calls ``add_connection``, and so can a web page: a choice only a
person can make (which of several shops) is asked through the ``pick`` callback; without one,
the error lists the choices. The Klaviyo key is checked by asking Klaviyo for its account
(``GET /api/accounts``: the account is what the limiter and the ledger are keyed by), the TikTok
tokens by listing the shops they cover. Authorization codes are ``authorize.py``'s.

A seller's token pair is kept once (``tiktok_authorizations``), shared by the seller's shops:
TikTok rotates both tokens on every refresh, so two copies would strand one another.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

from sqlalchemy import select

from db import connections as store
from db import secrets
from db.connections import SetupError
from db.engine import session_scope
from db.models import TikTokAuthorization
from klaviyo import KlaviyoAPIError, KlaviyoClient, RateLimitTimeout
from logs import register_secret
from settings import ConfigError, Settings, get_settings
from tiktok import (MemoryTokenStore, Shop, TikTokAPIError, TikTokReauthorizationRequired, TikTokRetryPolicy,
                    TikTokShopClient, TokenPair)

from . import clients
from .connection_checks import CHECK_RETRY, CHECK_TIMEOUT, klaviyo_problem, tiktok_problem
from .connections import DatabaseTokenStore, Options, forget

RESERVED_ID = re.compile(r"^default(-\d+)?$")
SETUP_RETRY = TikTokRetryPolicy(max_rate_limited=2, max_server=1, max_network=1, backoff_base=0.5, max_wait=5)


@dataclass(frozen=True)
class Added:
    connection_id: str
    shop: Shop
    account_id: str


Picker = Callable[[list[Shop]], "Shop | None"]


def require_secret_key(settings: Settings) -> None:
    """Connections added here keep their secrets under ``KSYNC_SECRET_KEY``, never under the key
    derived from the app secret (anyone holding the app secret could read them)."""
    if not settings.secret_keys:
        raise SetupError("KSYNC_SECRET_KEY is not set: connections keep their Klaviyo key and TikTok tokens encrypted "
                         "under it; make one with `ksync connections generate-key` and set it here and on every worker")
    secrets.configure(settings.secret_keys, settings.tiktok_app_secret)  # a malformed key: SecretKeyError


# Checking before saving --------------------------------------------------------------------------


def check_new_id(connection_id: str) -> None:
    try:
        store.check_slug(connection_id)
    except ValueError as exc:
        raise SetupError(str(exc)) from None
    if RESERVED_ID.match(connection_id):
        raise SetupError(f"connection id {connection_id!r} is reserved for the environment's connections "
                         "(TIKTOK_SHOP_CIPHER); choose another")
    with session_scope() as session:
        if store.get(session, connection_id) is not None:
            raise SetupError(f"connection {connection_id!r} already exists (`ksync connections show {connection_id}`)")


def klaviyo_account(api_key: str, settings: Settings) -> str:
    """The account id of ``api_key``: proof the key works, and what the connection is keyed by."""
    register_secret(api_key)
    try:
        with KlaviyoClient(api_key, base_url=settings.klaviyo_api_base_url, revision=settings.klaviyo_revision,
                           retry=CHECK_RETRY, timeout=CHECK_TIMEOUT) as client:
            accounts = client.get_accounts()
    except (KlaviyoAPIError, RateLimitTimeout) as exc:
        raise SetupError(klaviyo_problem(exc, settings.klaviyo_api_base_url, holder="the key",
                                         fix_401="is it a private key (pk_...) that was not revoked?")) from None
    if not accounts:
        raise SetupError("Klaviyo answered no account for the key")
    return accounts[0].account_id


def tiktok_client(settings: Settings, pair: TokenPair | None = None, token_store=None) -> TikTokShopClient:
    settings.require("TIKTOK_APP_KEY", "TIKTOK_APP_SECRET")
    return TikTokShopClient(settings.tiktok_app_key, settings.tiktok_app_secret,
                            base_url=settings.tiktok_api_base_url, auth_base_url=settings.tiktok_auth_base_url,
                            token_store=token_store or MemoryTokenStore(pair), retry=SETUP_RETRY,
                            timeout=CHECK_TIMEOUT, on_secret=register_secret)


def _tiktok_failed(exc: TikTokAPIError, settings: Settings, what: str) -> SetupError:
    if isinstance(exc, TikTokReauthorizationRequired):
        return SetupError(f"TikTok refused {what} ({exc.code}: {exc.message}): have the seller authorize the app "
                          "again (`ksync connections authorize`)")
    return SetupError(tiktok_problem(exc, settings.tiktok_api_base_url))


def choose_shop(shops: list[Shop], wanted: str | None, connected: set[str], pick: Picker | None) -> Shop:
    """The shop named (cipher or id), else the only one without a connection, else ``pick``'s
    (which returns None when it cannot ask)."""
    listing = ", ".join(f"{s.name} ({s.cipher})" for s in shops) or "none"
    if wanted:
        found = next((s for s in shops if wanted in (s.cipher, s.id)), None)
        if found is None:
            raise SetupError(f"shop {wanted} is not among the seller's authorized shops: {listing}")
        return found
    free = [s for s in shops if s.cipher not in connected]
    if not free:
        raise SetupError(f"every shop of the seller has a connection already ({listing}); to connect one to "
                         "another Klaviyo account too, name it with --shop CIPHER")
    if len(free) == 1:
        return free[0]
    chosen = pick(free) if pick is not None else None  # a picker may decline (no terminal to ask on)
    if chosen is None:
        raise SetupError(f"the seller has several shops; say which with --shop CIPHER: {listing}")
    return chosen


# Adding ------------------------------------------------------------------------------------------


def add_connection(connection_id: str, *, klaviyo_api_key: str, shop: str | None = None,
                   tokens: TokenPair | None = None, options: dict | None = None, settings: Settings | None = None,
                   pick: Picker | None = None) -> Added:
    """Add a connection with the seller's ``tokens``, or (without them) with the tokens ksync
    already keeps for the seller whose authorization covers ``shop``."""
    settings = settings or get_settings()
    require_secret_key(settings)
    check_new_id(connection_id)
    options = _options(options, settings)
    account = klaviyo_account(klaviyo_api_key, settings)
    if tokens is not None:
        client = tiktok_client(settings, tokens)
        try:
            with client:
                shops = client.get_authorized_shops()
        except TikTokAPIError as exc:
            raise _tiktok_failed(exc, settings, "the seller's tokens") from None
        pair, authorization_id = client.token_store.load(), None
    else:
        authorization_id, shops = _stored_authorization(shop, settings)
        pair = None
    with session_scope() as session:
        chosen = choose_shop(shops, shop, {c.shop_cipher for c in store.all_connections(session)}, pick)
        if pair is not None:
            authorization_id = _authorization_for_tokens(session, settings, pair, shops)
        authorization = session.get(TikTokAuthorization, authorization_id)
        _insert(session, connection_id, authorization, chosen, klaviyo_api_key, account, options)
    return Added(connection_id, chosen, account)


def _options(raw: dict | None, settings: Settings) -> dict:
    raw = {k: v for k, v in (raw or {}).items() if v is not None}
    try:
        Options.of(raw, settings)
    except ConfigError as exc:
        raise SetupError(str(exc)) from None
    return raw


def _insert(session, connection_id, authorization, shop: Shop, key: str, account: str, options: dict) -> None:
    row = store.add(session, connection_id=connection_id, authorization=authorization, shop_cipher=shop.cipher,
                    klaviyo_api_key=key, shop_id=shop.id, shop_name=shop.name, shop_region=shop.region,
                    options=options)
    row.klaviyo_account_id = account


def _stored_authorization(shop: str | None, settings: Settings) -> tuple[str, list[Shop]]:
    """The stored authorization covering ``shop`` (one shops read per seller ksync knows), or the
    only one there is when no shop is named."""
    with session_scope() as session:
        ids = list(session.scalars(select(TikTokAuthorization.id)
                                   .where(TikTokAuthorization.app_key == settings.tiktok_app_key)))
    covering = []
    for authorization_id in ids:
        try:
            with tiktok_client(settings, token_store=DatabaseTokenStore(authorization_id, clients.redis_client())) as c:
                shops = c.get_authorized_shops()
        except (TikTokAPIError, secrets.SecretKeyError, TimeoutError):
            continue  # a seller whose tokens no longer work cannot be the one
        if shop is None or any(shop in (s.cipher, s.id) for s in shops):
            covering.append((authorization_id, shops))
    if len(covering) == 1:
        return covering[0]
    if not covering:
        raise SetupError((f"no seller authorization ksync keeps covers shop {shop}" if shop else
                          "ksync keeps no seller authorization yet") + ": give the seller's tokens "
                         "(KSYNC_NEW_TIKTOK_ACCESS_TOKEN and KSYNC_NEW_TIKTOK_REFRESH_TOKEN, or the token files) "
                         "or an authorization code (--auth-code; `ksync connections authorize` prints the link)")
    raise SetupError("several sellers are authorized: say which shop with --shop CIPHER")


def _authorization_for_tokens(session, settings: Settings, pair: TokenPair, shops: list[Shop]) -> str:
    """Given tokens join the authorization ksync keeps for the same seller (one of whose shops has
    a connection already). Its stored pair is the newest ksync has (it refreshes and rotates it),
    so it is kept, unless that seller's connections need re-authorization: then the given pair,
    which TikTok has just accepted, replaces it and they are active again."""
    ciphers = {s.cipher for s in shops}
    siblings = [c for c in store.all_connections(session) if c.shop_cipher in ciphers]
    if siblings:
        authorization_id = siblings[0].authorization_id
        if any(c.status == "needs_reauth" for c in siblings):
            _save_pair(session, authorization_id, pair)
            _reactivate(session, [c for c in siblings if c.authorization_id == authorization_id])
        return authorization_id
    row = store.upsert_authorization(session, app_key=settings.tiktok_app_key, open_id=None,
                                     access_token=pair.access_token, refresh_token=pair.refresh_token,
                                     access_expires_at=pair.access_expires_at,
                                     refresh_expires_at=pair.refresh_expires_at)
    return row.id


def _save_pair(session, authorization_id: str, pair: TokenPair) -> None:
    row = session.get(TikTokAuthorization, authorization_id)
    row.access_token, row.refresh_token = pair.access_token, pair.refresh_token
    row.access_expires_at, row.refresh_expires_at = pair.access_expires_at, pair.refresh_expires_at


def _reactivate(session, connections) -> list[str]:
    ids = []
    for connection in connections:
        if connection.status == "needs_reauth":
            store.set_status(session, connection.id, "active", "re-authorized by the seller")
            ids.append(connection.id)
        forget(connection.id)
    return ids
