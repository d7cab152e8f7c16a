"""Sync history, orders ledger, delivered events, buyer profiles, watermarks.

Revision ID: 0001
Revises:
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op

from db.models import BigId, UTCDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sync_runs",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("shop", sa.String(128), nullable=False),
        sa.Column("sync_type", sa.String(32), nullable=False),
        sa.Column("direction", sa.String(32), nullable=False),
        sa.Column("trigger", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("phase", sa.String(16), nullable=False),
        sa.Column("dry_run", sa.Boolean(), nullable=False),
        sa.Column("window_start", UTCDateTime()),
        sa.Column("window_end", UTCDateTime()),
        sa.Column("period_key", sa.String(64)),
        sa.Column("parent_run_id", sa.String(36)),
        sa.Column("celery_task_id", sa.String(64)),
        sa.Column("orders_read", sa.Integer(), nullable=False),
        sa.Column("orders_invalid", sa.Integer(), nullable=False),
        sa.Column("items_total", sa.Integer(), nullable=False),
        sa.Column("records_synced", sa.Integer(), nullable=False),
        sa.Column("success_count", sa.Integer(), nullable=False),
        sa.Column("failed_count", sa.Integer(), nullable=False),
        sa.Column("duration_seconds", sa.Float()),
        sa.Column("error_details", sa.JSON()),
        sa.Column("options", sa.JSON()),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("started_at", UTCDateTime()),
        sa.Column("finished_at", UTCDateTime()),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.UniqueConstraint("shop", "sync_type", "period_key", name="uq_sync_runs_period"),
    )
    op.create_index("ix_sync_runs_shop_status", "sync_runs", ["shop", "status"])
    op.create_index("ix_sync_runs_created_at", "sync_runs", ["created_at"])
    op.create_table(
        "sync_items",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.String(36), sa.ForeignKey("sync_runs.id", ondelete="CASCADE"), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text()),
        sa.Column("payload", sa.JSON()),
        sa.Column("external_ref", sa.String(64)),
        sa.Column("claimed_by", sa.String(64)),
        sa.Column("claimed_at", UTCDateTime()),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.UniqueConstraint("run_id", "kind", "key", name="uq_sync_items_run_kind_key"),
    )
    op.create_index("ix_sync_items_run_status", "sync_items", ["run_id", "status"])
    op.create_index("ix_sync_items_kind_key_status", "sync_items", ["kind", "key", "status"])
    op.create_table(
        "orders",
        sa.Column("order_id", sa.String(64), primary_key=True),
        sa.Column("shop", sa.String(128), nullable=False),
        sa.Column("user_id", sa.String(64), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("placed", sa.Boolean(), nullable=False),
        sa.Column("total_amount", sa.Numeric(20, 4), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("create_time", UTCDateTime(), nullable=False),
        sa.Column("update_time", UTCDateTime(), nullable=False),
        sa.Column("paid_time", UTCDateTime()),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("first_seen_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_orders_shop_user", "orders", ["shop", "user_id"])
    op.create_table(
        "delivered_events",
        sa.Column("event_key", sa.String(255), primary_key=True),
        sa.Column("shop", sa.String(128), nullable=False),
        sa.Column("run_id", sa.String(36), nullable=False),
        sa.Column("delivered_at", UTCDateTime(), nullable=False),
    )
    op.create_table(
        "buyer_profiles",
        sa.Column("external_id", sa.String(255), primary_key=True),
        sa.Column("shop", sa.String(128), nullable=False),
        sa.Column("klaviyo_profile_id", sa.String(64)),
        sa.Column("payload_hash", sa.String(64), nullable=False),
        sa.Column("run_id", sa.String(36), nullable=False),
        sa.Column("synced_at", UTCDateTime(), nullable=False),
    )
    op.create_table(
        "sync_state",
        sa.Column("shop", sa.String(128), primary_key=True),
        sa.Column("stream", sa.String(32), primary_key=True),
        sa.Column("watermark", UTCDateTime()),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
    )


def downgrade() -> None:
    for table in ("sync_state", "buyer_profiles", "delivered_events", "orders", "sync_items", "sync_runs"):
        op.drop_table(table)
