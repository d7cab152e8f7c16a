"""Never skip work: a run's stop reason and unsent records, item leases, failure fingerprints.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

from db.models import UTCDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("sync_runs") as batch:
        batch.add_column(sa.Column("unsent_count", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("error", sa.Text()))
    with op.batch_alter_table("sync_items") as batch:
        batch.add_column(sa.Column("lease_until", UTCDateTime()))
        batch.add_column(sa.Column("fingerprint", sa.String(64)))
    op.create_index("ix_sync_items_run_updated", "sync_items", ["run_id", "updated_at"])


def downgrade() -> None:
    op.drop_index("ix_sync_items_run_updated", "sync_items")
    with op.batch_alter_table("sync_items") as batch:
        batch.drop_column("fingerprint")
        batch.drop_column("lease_until")
    with op.batch_alter_table("sync_runs") as batch:
        batch.drop_column("error")
        batch.drop_column("unsent_count")
