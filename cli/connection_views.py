"""What ``ksync connections list`` and ``show`` print, as JSON-ready dicts: never a secret.

The secret columns are not even loaded (``defer``): listing works while a key is being
rotated, and nothing here could print what it never read.
"""

from __future__ import annotations

from dataclasses import asdict, fields

from sqlalchemy import select
from sqlalchemy.orm import defer

from db import connections as store
from db import ledger
from db.engine import session_scope
from db.models import Connection, TikTokAuthorization
from settings import get_settings


def _iso(value) -> str | None:
    return value.isoformat() if value else None


def _connections(session, connection_id: str | None = None) -> list[Connection]:
    query = select(Connection).options(defer(Connection.klaviyo_api_key)).order_by(Connection.id)
    if connection_id:
        query = query.where(Connection.id == connection_id)
    return list(session.scalars(query))


def summaries() -> list[dict]:
    """Every connection (the environment's brought in step first), by id."""
    from workers.connections import ensure_env_connections

    ensure_env_connections()
    with session_scope() as session:
        rows = _connections(session)
        runs = store.last_runs(session, [r.id for r in rows])
        return [_summary(session, row, runs.get(row.id)) for row in rows]


def _summary(session, row: Connection, run) -> dict:
    return {
        "id": row.id, "source": row.source, "status": row.status, "status_reason": row.status_reason,
        "shop": {"cipher": row.shop_cipher, "id": row.shop_id, "name": row.shop_name, "region": row.shop_region},
        "klaviyo_account": row.klaviyo_account_id,
        "last_run": None if run is None else {
            "id": run.id, "status": run.status, "sync_type": run.sync_type, "created_at": _iso(run.created_at),
            "finished_at": _iso(run.finished_at), "error": run.error},
        "watermark": _iso(ledger.get_watermark(session, row.id)),
        "next_sync_at": _iso(row.next_sync_at) if row.status == "active" else None,
        "next_reconcile_at": _iso(row.next_reconcile_at) if row.status == "active" else None,
    }


def detail(connection_id: str) -> dict:
    """One connection: its summary, options (as set, and in effect), the seller's authorization
    (who, until when, which scopes; not the tokens) and its timestamps."""
    from workers.connections import Options

    with session_scope() as session:
        [row] = _connections(session, connection_id)
        run = store.last_runs(session, [row.id]).get(row.id)
        authorization = session.scalar(select(TikTokAuthorization).options(
            defer(TikTokAuthorization.access_token), defer(TikTokAuthorization.refresh_token))
            .where(TikTokAuthorization.id == row.authorization_id))
        known = {f.name for f in fields(Options)}
        data = _summary(session, row, run) | {
            "status_changed_at": _iso(row.status_changed_at),
            "options": {k: v for k, v in (row.options or {}).items() if k in known},
            "options_in_effect": asdict(Options.of(row.options, get_settings())),
            "authorization": None if authorization is None else {
                "id": authorization.id, "seller_name": authorization.seller_name, "region": authorization.region,
                "open_id": authorization.open_id,
                "access_token_expires_at": _unix(authorization.access_expires_at),
                "refresh_token_expires_at": _unix(authorization.refresh_expires_at),
                "granted_scopes": authorization.granted_scopes or [],
                "shared_with": list(session.scalars(
                    select(Connection.id).where(Connection.authorization_id == authorization.id, Connection.id != row.id)
                    .order_by(Connection.id)))},
            "created_at": _iso(row.created_at), "updated_at": _iso(row.updated_at),
        }
    return data


def _unix(seconds: int | None) -> str | None:
    from datetime import datetime, timezone

    return datetime.fromtimestamp(seconds, tz=timezone.utc).isoformat() if seconds else None
