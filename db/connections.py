"""Connections and TikTok authorizations in the database: add, find, change status, claim due syncs.

A connection is a TikTok shop joined to a Klaviyo account (Hightouch, Census and Klaviyo's own
integrations all make this the unit). Its TikTok tokens live on the seller's authorization,
shared by the seller's shops: TikTok rotates both tokens on refresh, so one copy per seller.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Sequence

from sqlalchemy import column, or_, select, update
from sqlalchemy import table as sa_table
from sqlalchemy.orm import Session

from .models import CONNECTION_STATUSES, Connection, SyncRun, TikTokAuthorization, utcnow

#: A connection id: lower-case letters, digits and dashes, as it appears in commands and logs.
SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")


class ConnectionError_(LookupError):
    """No such connection, or a command that needs one was not told which. The message lists them."""


class SetupError(ValueError):
    """A connection cannot be added or authorized as asked (``workers/authorize.py``). The message
    says why and what to do."""


def check_slug(connection_id: str) -> str:
    if not SLUG.match(connection_id or ""):
        raise ValueError(f"connection id {connection_id!r} must be 1-63 lower-case letters, digits or dashes "
                         "(starting with a letter or digit)")
    return connection_id


def get(session: Session, connection_id: str) -> Connection | None:
    return session.get(Connection, connection_id)


def all_connections(session: Session) -> list[Connection]:
    return list(session.scalars(select(Connection).order_by(Connection.id)))


def resolve(session: Session, connection_id: str | None = None) -> Connection:
    """The connection named, or the only one there is; otherwise an error that lists them."""
    if connection_id:
        found = get(session, connection_id)
        if found is None:
            raise ConnectionError_(f"no connection {connection_id!r}; {_listing(session)}")
        return found
    every = all_connections(session)
    if len(every) == 1:
        return every[0]
    if not every:
        raise ConnectionError_("no connection yet: set TIKTOK_* and KLAVIYO_API_KEY in the environment, "
                               "or add one with `ksync connections add`")
    raise ConnectionError_(f"several connections: say which with --connection ID; {_listing(session)}")


def _listing(session: Session) -> str:
    ids = [c.id for c in all_connections(session)]
    return f"there are: {', '.join(ids)}" if ids else "there are none"


def by_shop(session: Session, shop: str) -> list[Connection]:
    """Connections of a shop, by its id or its cipher (a webhook names the shop id)."""
    return list(session.scalars(select(Connection).where(or_(Connection.shop_id == shop,
                                                             Connection.shop_cipher == shop))))


def of_authorization(session: Session, authorization_id: str) -> list[Connection]:
    return list(session.scalars(select(Connection).where(Connection.authorization_id == authorization_id)))


def upsert_authorization(session: Session, *, app_key: str, open_id: str | None, access_token: str | None,
                         refresh_token: str | None, access_expires_at: int | None = None,
                         refresh_expires_at: int | None = None, seller_name: str = "", region: str = "",
                         granted_scopes: list | None = None, authorization_id: str | None = None) -> TikTokAuthorization:
    """The seller's authorization (found by ``open_id`` for this app, or by id), with these tokens."""
    found = session.get(TikTokAuthorization, authorization_id) if authorization_id else None
    if found is None and open_id:
        found = session.scalar(select(TikTokAuthorization).where(TikTokAuthorization.app_key == app_key,
                                                                 TikTokAuthorization.open_id == open_id))
    if found is None:
        found = TikTokAuthorization(id=authorization_id or str(uuid.uuid4()), app_key=app_key, open_id=open_id,
                                    created_at=utcnow())
        session.add(found)
    found.access_token, found.refresh_token = access_token, refresh_token
    found.access_expires_at, found.refresh_expires_at = access_expires_at, refresh_expires_at
    found.seller_name, found.region = seller_name or found.seller_name or "", region or found.region or ""
    found.granted_scopes = granted_scopes if granted_scopes is not None else found.granted_scopes
    found.updated_at = utcnow()
    session.flush()
    return found


def add(session: Session, *, connection_id: str, authorization: TikTokAuthorization, shop_cipher: str,
        klaviyo_api_key: str, shop_id: str = "", shop_name: str = "", shop_region: str = "",
        options: dict | None = None, source: str = "table") -> Connection:
    check_slug(connection_id)
    if get(session, connection_id) is not None:
        raise ValueError(f"connection {connection_id!r} already exists")
    now = utcnow()
    connection = Connection(id=connection_id, authorization_id=authorization.id, shop_id=shop_id,
                            shop_cipher=shop_cipher, shop_name=shop_name, shop_region=shop_region,
                            klaviyo_api_key=klaviyo_api_key, options=dict(options or {}), status="active",
                            status_changed_at=now, source=source, next_sync_at=now, created_at=now, updated_at=now)
    session.add(connection)
    session.flush()
    return connection


def set_status(session: Session, connection_id: str, status: str, reason: str | None = None) -> Connection:
    if status not in CONNECTION_STATUSES:
        raise ValueError(f"status must be one of {', '.join(CONNECTION_STATUSES)}")
    connection = get(session, connection_id)
    if connection is None:
        raise ConnectionError_(f"no connection {connection_id!r}; {_listing(session)}")
    if connection.status != status or connection.status_reason != reason:
        connection.status, connection.status_reason, connection.status_changed_at = status, reason, utcnow()
        if status == "active":
            connection.next_sync_at = utcnow()  # a resumed connection syncs at the next dispatch
        connection.updated_at = utcnow()
    return connection


def needs_reauth(session: Session, authorization_id: str, reason: str) -> list[str]:
    """Every connection of a seller whose authorization ended: fatal for them, not for the others."""
    ids = [c.id for c in of_authorization(session, authorization_id)]
    for connection_id in ids:
        set_status(session, connection_id, "needs_reauth", reason)
    return ids


def remove(session: Session, connection_id: str) -> None:
    """Delete the connection (its runs, ledger and watermark stay as history); an authorization
    no other connection uses goes with it."""
    connection = get(session, connection_id)
    if connection is None:
        raise ConnectionError_(f"no connection {connection_id!r}; {_listing(session)}")
    authorization_id = connection.authorization_id
    session.delete(connection)
    session.flush()
    if not of_authorization(session, authorization_id):
        session.delete(session.get(TikTokAuthorization, authorization_id))


def take_due(session: Session, now: datetime, default_interval: int) -> list[tuple[str, str]]:
    """Active connections whose next incremental (or daily reconcile) sync is due, each taken with
    a conditional UPDATE of its next due time, so two dispatchers never both enqueue it.
    Returns ``(connection id, sync type)`` pairs."""
    due: list[tuple[str, str]] = []
    for connection in session.scalars(select(Connection).where(Connection.status == "active")):
        interval = int((connection.options or {}).get("sync_interval_seconds") or default_interval)
        if connection.next_sync_at is None or connection.next_sync_at <= now:
            following = _aligned_after(now, interval)
            if _take(session, connection.id, Connection.next_sync_at, connection.next_sync_at, following):
                due.append((connection.id, "incremental"))
        if connection.next_reconcile_at is not None and connection.next_reconcile_at <= now:
            if _take(session, connection.id, Connection.next_reconcile_at, connection.next_reconcile_at,
                     connection.next_reconcile_at + timedelta(days=1)):
                due.append((connection.id, "reconcile"))
    return due


def _take(session: Session, connection_id: str, column, seen, following) -> bool:
    condition = column.is_(None) if seen is None else column == seen
    result = session.execute(update(Connection).where(Connection.id == connection_id, condition)
                             .values({column.key: following}).execution_options(synchronize_session=False))
    return result.rowcount == 1


def _aligned_after(now: datetime, interval: int) -> datetime:
    """The next multiple of ``interval`` seconds since the epoch: every dispatcher computes the same."""
    seconds = now.timestamp()
    return datetime.fromtimestamp((int(seconds // interval) + 1) * interval, tz=now.tzinfo)


def last_runs(session: Session, ids: Sequence[str]) -> dict[str, SyncRun]:
    """Each connection's most recent run."""
    result: dict[str, SyncRun] = {}
    for connection_id in ids:
        run = session.scalar(select(SyncRun).where(SyncRun.connection_id == connection_id)
                             .order_by(SyncRun.created_at.desc()).limit(1))
        if run is not None:
            result[connection_id] = run
    return result


# Key rotation ------------------------------------------------------------------------------------

#: Every encrypted column: (table, its key column, the secret columns).
SECRET_COLUMNS = (("connections", "id", ("klaviyo_api_key",)),
                  ("tiktok_authorizations", "id", ("access_token", "refresh_token")))


@dataclass(frozen=True)
class Rotation:
    """What ``rotate_secrets`` did: secrets re-encrypted under the first key, secrets already under
    it (left alone), and secrets no key decrypts (``table.column:id``; then nothing was changed)."""

    rotated: int
    current: int
    unreadable: tuple[str, ...]


def rotate_secrets(session: Session) -> Rotation:
    """Re-encrypt every stored secret under the keyring's first key (``MultiFernet.rotate``).

    The stored tokens are read and written as they are (a lightweight ``table()``, not the models,
    whose ``EncryptedText`` would decrypt on read and encrypt again on write). Idempotent: a secret
    already under the first key is not touched. If any secret cannot be decrypted by any key, none
    is rewritten: the caller reports which, and the key that would read them is still needed."""
    from . import secrets

    plan, current, unreadable = [], 0, []
    for table_name, key_name, columns in SECRET_COLUMNS:
        table = sa_table(table_name, column(key_name), *(column(c) for c in columns))
        for row in session.execute(select(table)).mappings():
            for name in columns:
                token = row[name]
                if not token:
                    continue
                if secrets.is_current(token):
                    current += 1
                    continue
                try:
                    plan.append((table, key_name, row[key_name], name, secrets.rotate(token)))
                except secrets.SecretKeyError:
                    unreadable.append(f"{table_name}.{name}:{row[key_name]}")
    if not unreadable:
        for table, key_name, key, name, token in plan:
            session.execute(update(table).where(table.c[key_name] == key).values({name: token}))
    return Rotation(rotated=0 if unreadable else len(plan), current=current, unreadable=tuple(unreadable))
