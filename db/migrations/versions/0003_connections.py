"""Connections: TikTok authorizations and connections (secrets encrypted); runs, watermarks, the
ledger, delivered events and profile fingerprints scoped by connection and Klaviyo account.

Existing rows keep working: their ``account`` is "" and their watermark is keyed by the shop
cipher until the implicit environment connection adopts them (``workers/connections.py``,
on first use, once it knows its Klaviyo account).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

from db.models import UTCDateTime
from db.secrets import EncryptedText

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tiktok_authorizations",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("app_key", sa.String(128), nullable=False),
        sa.Column("open_id", sa.String(128)),
        sa.Column("seller_name", sa.String(255), nullable=False),
        sa.Column("region", sa.String(16), nullable=False),
        sa.Column("access_token", EncryptedText()),
        sa.Column("refresh_token", EncryptedText()),
        sa.Column("access_expires_at", sa.BigInteger()),
        sa.Column("refresh_expires_at", sa.BigInteger()),
        sa.Column("granted_scopes", sa.JSON()),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
    )
    op.create_table(
        "connections",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("authorization_id", sa.String(64), sa.ForeignKey("tiktok_authorizations.id"), nullable=False),
        sa.Column("shop_id", sa.String(64), nullable=False),
        sa.Column("shop_cipher", sa.String(128), nullable=False),
        sa.Column("shop_name", sa.String(255), nullable=False),
        sa.Column("shop_region", sa.String(16), nullable=False),
        sa.Column("klaviyo_api_key", EncryptedText()),
        sa.Column("klaviyo_account_id", sa.String(64)),
        sa.Column("options", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("status_reason", sa.Text()),
        sa.Column("status_changed_at", UTCDateTime(), nullable=False),
        sa.Column("source", sa.String(8), nullable=False),
        sa.Column("next_sync_at", UTCDateTime()),
        sa.Column("next_reconcile_at", UTCDateTime()),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
    )
    with op.batch_alter_table("sync_runs") as batch:
        batch.add_column(sa.Column("connection_id", sa.String(64)))
        batch.add_column(sa.Column("account", sa.String(64)))
        batch.drop_constraint("uq_sync_runs_period", type_="unique")
        batch.create_unique_constraint("uq_sync_runs_period", ["connection_id", "sync_type", "period_key"])
        batch.create_index("ix_sync_runs_connection_status", ["connection_id", "status"])
    with op.batch_alter_table("orders") as batch:
        batch.add_column(sa.Column("account", sa.String(64), nullable=False, server_default=""))
        batch.add_column(sa.Column("connection_id", sa.String(64)))
        batch.drop_index("ix_orders_shop_user")
        batch.create_index("ix_orders_account_user", ["account", "user_id"])
    _replace_primary_key("orders", ["account", "order_id"])
    for table, key in (("delivered_events", "event_key"), ("buyer_profiles", "external_id")):
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("account", sa.String(64), nullable=False, server_default=""))
        _replace_primary_key(table, ["account", key])
    with op.batch_alter_table("sync_state") as batch:
        batch.alter_column("shop", new_column_name="connection_id", type_=sa.String(64), existing_nullable=False)


def _replace_primary_key(table: str, columns: list[str]) -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.drop_constraint(f"{table}_pkey", table, type_="primary")
        op.create_primary_key(f"{table}_pkey", table, columns)
    else:  # SQLite cannot alter a key: the table is copied (db/migrations/env.py turns foreign keys off first)
        with op.batch_alter_table(table, recreate="always") as batch:
            batch.create_primary_key(f"{table}_pkey", columns)


def downgrade() -> None:
    raise NotImplementedError("0003 rewrites keys; restore a backup to go back")
