"""Catalog: what each Klaviyo account's catalog holds (items, variants, categories ksync wrote).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

from db.models import UTCDateTime

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "catalog_entries",
        sa.Column("account", sa.String(64), primary_key=True),
        sa.Column("kind", sa.String(16), primary_key=True),
        sa.Column("external_id", sa.String(64), primary_key=True),
        sa.Column("connection_id", sa.String(64)),
        sa.Column("product_id", sa.String(64), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("inventory_quantity", sa.Integer()),
        sa.Column("published", sa.Boolean(), nullable=False),
        sa.Column("details", sa.JSON()),
        sa.Column("run_id", sa.String(36)),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_catalog_entries_account_product", "catalog_entries", ["account", "product_id"])


def downgrade() -> None:
    op.drop_table("catalog_entries")
