"""Refunds: TikTok returns and refunds as read, per Klaviyo account (profile totals net of refunds).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

from db.models import UTCDateTime

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "refunds",
        sa.Column("account", sa.String(64), primary_key=True),
        sa.Column("return_id", sa.String(64), primary_key=True),
        sa.Column("order_id", sa.String(64), nullable=False),
        sa.Column("connection_id", sa.String(64)),
        sa.Column("shop", sa.String(128), nullable=False),
        sa.Column("status", sa.String(64), nullable=False),
        sa.Column("return_type", sa.String(32), nullable=False),
        sa.Column("refunded", sa.Boolean(), nullable=False),
        sa.Column("amount", sa.Numeric(20, 4), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("update_time", UTCDateTime(), nullable=False),
        sa.Column("unique_id", sa.String(160)),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_refunds_account_order", "refunds", ["account", "order_id"])


def downgrade() -> None:
    op.drop_table("refunds")
