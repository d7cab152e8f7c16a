"""Authorization codes: the seller's consent link, the code exchange, and putting the new tokens to use.

``ksync connections authorize`` calls these, and so can a web OAuth callback: nothing here
prompts or prints. A code is spent by its exchange, so whatever can be checked without it (the
connection id, the Klaviyo key) is checked first, and once a code is spent its tokens are always
saved, even when the connection it was meant for cannot be made: ``add ID --shop CIPHER`` uses
them later. The checks and the insert are ``connection_setup.py``'s.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import select

from db import connections as store
from db import secrets
from db.connections import SetupError
from db.engine import session_scope
from db.models import TikTokAuthorization
from settings import Settings, get_settings
from tiktok import Shop, TikTokAPIError, TikTokReauthorizationRequired, TokenGrant, authorization_url

from .connection_setup import (RESERVED_ID, Picker, _insert, _options, _reactivate, _tiktok_failed, check_new_id,
                               choose_shop, klaviyo_account, require_secret_key, tiktok_client)
from .connections import ENV_AUTHORIZATION, is_env_connection

@dataclass(frozen=True)
class Authorized:
    """What an authorization code brought: the seller, their shops, the connections it created
    or re-authorized (a ``needs_reauth`` one is active again), and the shops still without one."""

    authorization_id: str
    seller_name: str
    shops: tuple[Shop, ...]
    created: tuple[str, ...]
    reauthorized: tuple[str, ...]
    #: Those of ``reauthorized`` that were ``needs_reauth``.
    reactivated: tuple[str, ...]
    unconnected: tuple[Shop, ...]

    @property
    def connection_ids(self) -> list[str]:
        return [*self.created, *self.reauthorized]


def consent_url(state: str, region: str = "ROW", settings: Settings | None = None) -> str:
    """Where the seller authorizes the app: the service-id page (``TIKTOK_SERVICE_ID``), or
    without one the legacy app-key page."""
    settings = settings or get_settings()
    settings.require("TIKTOK_APP_KEY")
    return authorization_url(settings.tiktok_service_id or None, state, region, app_key=settings.tiktok_app_key,
                             base_url=settings.tiktok_consent_base_url or None)


# Authorization codes -----------------------------------------------------------------------------


def authorize_with_code(code: str, connection_id: str | None = None, klaviyo_api_key: str | None = None, *,
                        shop: str | None = None, options: dict | None = None, settings: Settings | None = None,
                        pick: Picker | None = None) -> Authorized:
    """Exchange the consent redirect's ``code`` (``/api/v2/token/get``) and put the seller's new
    token pair to use: every connection on one of the seller's shops is re-authorized (active
    again if it needed it); ``connection_id``, when new, is created for ``shop`` (or the seller's
    only shop without a connection) with ``klaviyo_api_key``; with a key and no id, one connection
    per shop still without one, named after the shop."""
    settings = settings or get_settings()
    secrets.configure(settings.secret_keys, settings.tiktok_app_secret)  # a malformed key: SecretKeyError
    with session_scope() as session:
        existing = store.get(session, connection_id) if connection_id else None
        stored = any(not is_env_connection(c.id) for c in store.all_connections(session))
    creating = bool(klaviyo_api_key) and existing is None
    if creating or stored or settings.secret_keys:
        require_secret_key(settings)
    # else only the environment's connections, re-authorized: their tokens, as ever, under the key
    # derived from the app secret (what needs KSYNC_SECRET_KEY is a stored Klaviyo key)
    if connection_id and existing is None:
        check_new_id(connection_id)
        if not klaviyo_api_key:
            raise SetupError(f"connection {connection_id!r} does not exist yet: give its Klaviyo key to create it "
                             "(KSYNC_NEW_KLAVIYO_API_KEY or --klaviyo-key-file)")
    options = _options(options, settings) if creating else {}
    account = klaviyo_account(klaviyo_api_key, settings) if creating else None
    grant, shops = exchange(code, settings)
    with session_scope() as session:
        authorization_id, reauthorized, reactivated = _adopt_grant(session, settings, grant, shops)
    if existing is not None and existing.shop_cipher not in {s.cipher for s in shops}:
        raise SetupError(f"the seller who consented ({grant.seller_name or grant.open_id}) does not own connection "
                         f"{existing.id}'s shop {existing.shop_cipher}; their authorization is saved for their shops: "
                         + ", ".join(f"{s.name} ({s.cipher})" for s in shops))
    created = []
    with session_scope() as session:
        authorization = session.get(TikTokAuthorization, authorization_id)
        connected = {c.shop_cipher for c in store.all_connections(session)}
        if creating and connection_id:
            targets = [(connection_id, choose_shop(shops, shop, connected, pick))]
        elif creating:
            targets = _named_after_shops(session, [s for s in shops if s.cipher not in connected])
        else:
            targets = []
        for new_id, chosen in targets:
            _insert(session, new_id, authorization, chosen, klaviyo_api_key, account, options)
            created.append(new_id)
        connected |= {s.cipher for _, s in targets}
    return Authorized(authorization_id, grant.seller_name, tuple(shops), tuple(created), tuple(reauthorized),
                      tuple(reactivated), tuple(s for s in shops if s.cipher not in connected))


def exchange(code: str, settings: Settings) -> tuple[TokenGrant, list[Shop]]:
    """The grant for ``code`` and the shops it covers."""
    client = tiktok_client(settings)
    try:
        with client:
            grant = client.exchange_auth_code(code.strip())
            shops = client.get_authorized_shops()
    except TikTokReauthorizationRequired as exc:
        raise SetupError(f"TikTok refused the authorization code ({exc.code}: {exc.message}): a code works once, "
                         "within 30 minutes; have the seller authorize again (`ksync connections authorize`)") from None
    except TikTokAPIError as exc:
        raise _tiktok_failed(exc, settings, "the authorization code") from None
    return grant, shops


def _adopt_grant(session, settings: Settings, grant: TokenGrant, shops: list[Shop]) -> tuple[str, list[str], list[str]]:
    """Save the grant as the seller's one authorization, and move every connection on one of the
    seller's shops onto it. The row kept: the one already known by the seller's ``open_id``, else
    the one those connections use (the environment's, or one made from pasted tokens), else a new
    one. Rows left without a connection are deleted (the environment's is kept: it is rebuilt
    from the environment anyway). Returns the row's id, the connections moved onto it, and
    those of them that were ``needs_reauth`` and are active again."""
    ciphers = {s.cipher for s in shops}
    covered = [c for c in store.all_connections(session) if c.shop_cipher in ciphers]
    row = session.scalar(select(TikTokAuthorization).where(TikTokAuthorization.app_key == settings.tiktok_app_key,
                                                           TikTokAuthorization.open_id == grant.open_id))
    if row is None:
        used = [session.get(TikTokAuthorization, c.authorization_id) for c in covered]
        row = (next((a for a in used if a.id == ENV_AUTHORIZATION), None)
               or next((a for a in used if a.open_id is None), None))
    row = store.upsert_authorization(
        session, app_key=settings.tiktok_app_key, open_id=grant.open_id, access_token=grant.access_token,
        refresh_token=grant.refresh_token, access_expires_at=grant.access_token_expires_at,
        refresh_expires_at=grant.refresh_token_expires_at, seller_name=grant.seller_name,
        region=grant.seller_base_region, granted_scopes=list(grant.granted_scopes),
        authorization_id=row.id if row else None)
    row.open_id = grant.open_id
    left = {c.authorization_id for c in covered} - {row.id, ENV_AUTHORIZATION}
    for connection in covered:
        connection.authorization_id = row.id
    session.flush()
    for old in left:
        if not store.of_authorization(session, old):
            session.delete(session.get(TikTokAuthorization, old))
    return row.id, [c.id for c in covered], _reactivate(session, covered)


def _named_after_shops(session, shops: list[Shop]) -> list[tuple[str, Shop]]:
    """An id per shop from its name (``glow-us``), made unique."""
    taken = {c.id for c in store.all_connections(session)}
    named = []
    for shop in shops:
        base = re.sub(r"[^a-z0-9]+", "-", (shop.name or shop.cipher).lower()).strip("-")[:40] or "shop"
        base = f"{base}-shop" if RESERVED_ID.match(base) else base
        candidate, n = base, 1
        while candidate in taken:
            n += 1
            candidate = f"{base}-{n}"
        taken.add(candidate)
        named.append((candidate, shop))
    return named
