"""Sync history and the state the pipeline keeps, as SQLAlchemy 2 models.

Portable SQL only (no PostgreSQL-only types): the same tables run on SQLite,
the embedded default, and on PostgreSQL in production.

- ``sync_runs``: one row per sync, with the seed's ``KlaviyoSyncHistory`` fields.
- ``sync_items``: one row per record outcome, unique per (run, kind, key), so a
  redelivered task can never count twice; the run's counters are computed from
  these rows, never incremented.
- ``orders``: our ledger of TikTok orders (latest state wins), from which buyer
  order counts and lifetime value are computed, so re-syncs never double count.
- ``delivered_events`` / ``buyer_profiles``: what Klaviyo has confirmed, so a
  re-sync spends no rate-limit budget on work already done.
- ``sync_state``: the watermark per connection and stream.
- ``connections``: a TikTok shop joined to a Klaviyo account, the unit of everything above;
  ``tiktok_authorizations``: a seller's token pair, shared by that seller's shops. Secrets are
  stored encrypted (``db/secrets.py``).

The ledger, delivered events and profile fingerprints are keyed by Klaviyo account: a buyer of
two shops feeding one account has one profile with totals over both; two accounts never mix.
"""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.types import TypeDecorator
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from .secrets import EncryptedText

#: Integer primary keys autoincrement on SQLite only as INTEGER, on PostgreSQL as BIGINT.
BigId = BigInteger().with_variant(Integer(), "sqlite")

RUN_STATUSES = ("queued", "running", "succeeded", "partial", "failed", "skipped")
FINAL_RUN_STATUSES = ("succeeded", "partial", "failed", "skipped")
#: ``failed`` is a record failure (skippable: the record's own data; listed and replayable).
#: ``unsent`` is a record the run did not deliver for a cause that is not the record's: the run
#: stopped (a fatal error) or a transient cause outlasted the attempts. It is not a record
#: failure, and it holds the watermark back: the next sync sends it.
ITEM_STATUSES = ("pending", "sending", "succeeded", "failed", "skipped", "unsent")
OPEN_ITEM_STATUSES = ("pending", "sending")
#: Sync types whose window is the shop's stream of orders read in full, so a finished run may move
#: the watermark. A seed-service call (status filter, profiles only) or a retry of failures never does.
WATERMARK_SYNC_TYPES = ("incremental", "reconcile", "manual")


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class UTCDateTime(TypeDecorator):
    """Timezone-aware UTC datetimes on every backend (SQLite would hand back naive ones)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime given to the database; use aware UTC datetimes")
        return value.astimezone(timezone.utc) if value is not None else None

    def process_result_value(self, value, dialect):
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UTCDateTime()}


CONNECTION_STATUSES = ("active", "paused", "needs_reauth")


class TikTokAuthorization(Base):
    """One seller's authorization of our TikTok app: the token pair every shop of that seller uses.
    TikTok rotates both tokens on refresh, so they live once, not per shop."""

    __tablename__ = "tiktok_authorizations"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    app_key: Mapped[str] = mapped_column(String(128))
    open_id: Mapped[str | None] = mapped_column(String(128))
    seller_name: Mapped[str] = mapped_column(String(255), default="")
    region: Mapped[str] = mapped_column(String(16), default="")
    access_token: Mapped[str | None] = mapped_column(EncryptedText)
    refresh_token: Mapped[str | None] = mapped_column(EncryptedText)
    #: Absolute unix seconds, as TikTok gives them.
    access_expires_at: Mapped[int | None] = mapped_column(BigInteger)
    refresh_expires_at: Mapped[int | None] = mapped_column(BigInteger)
    granted_scopes: Mapped[list | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    def __repr__(self) -> str:
        return f"TikTokAuthorization(id={self.id!r}, seller_name={self.seller_name!r})"


class Connection(Base):
    """A TikTok shop joined to a Klaviyo account: the tenant. ``id`` is a short slug."""

    __tablename__ = "connections"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    authorization_id: Mapped[str] = mapped_column(ForeignKey("tiktok_authorizations.id"))
    shop_id: Mapped[str] = mapped_column(String(64), default="")
    shop_cipher: Mapped[str] = mapped_column(String(128))
    shop_name: Mapped[str] = mapped_column(String(255), default="")
    shop_region: Mapped[str] = mapped_column(String(16), default="")
    klaviyo_api_key: Mapped[str | None] = mapped_column(EncryptedText)
    #: Klaviyo's account id for the key (``GET /api/accounts``): the limiter's and the ledger's grain.
    klaviyo_account_id: Mapped[str | None] = mapped_column(String(64))
    #: sync_interval_seconds, customer_list, rate_limit_share, relay_email (see workers/connections.py).
    options: Mapped[dict] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(16), default="active")
    status_reason: Mapped[str | None] = mapped_column(Text)
    status_changed_at: Mapped[datetime] = mapped_column(default=utcnow)
    #: ``env`` for the implicit connections the environment describes, ``table`` for added ones.
    source: Mapped[str] = mapped_column(String(8), default="table")
    next_sync_at: Mapped[datetime | None]
    next_reconcile_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    def __repr__(self) -> str:
        return f"Connection(id={self.id!r}, shop_cipher={self.shop_cipher!r}, status={self.status!r})"


class SyncRun(Base):
    __tablename__ = "sync_runs"
    __table_args__ = (
        UniqueConstraint("connection_id", "sync_type", "period_key", name="uq_sync_runs_period"),
        Index("ix_sync_runs_shop_status", "shop", "status"),
        Index("ix_sync_runs_connection_status", "connection_id", "status"),
        Index("ix_sync_runs_created_at", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    connection_id: Mapped[str | None] = mapped_column(String(64))
    #: The Klaviyo account the run writes to (scopes "in flight elsewhere" checks).
    account: Mapped[str | None] = mapped_column(String(64))
    shop: Mapped[str] = mapped_column(String(128), default="")
    sync_type: Mapped[str] = mapped_column(String(32))
    direction: Mapped[str] = mapped_column(String(32), default="tiktok_to_klaviyo")
    trigger: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default="queued")
    #: queued -> reading -> dispatched -> finished; a run may only finish once dispatched.
    phase: Mapped[str] = mapped_column(String(16), default="queued")
    dry_run: Mapped[bool] = mapped_column(Boolean, default=False)
    window_start: Mapped[datetime | None]
    window_end: Mapped[datetime | None]
    period_key: Mapped[str | None] = mapped_column(String(64))
    parent_run_id: Mapped[str | None] = mapped_column(String(36))
    celery_task_id: Mapped[str | None] = mapped_column(String(64))
    orders_read: Mapped[int] = mapped_column(Integer, default=0)
    orders_invalid: Mapped[int] = mapped_column(Integer, default=0)
    items_total: Mapped[int] = mapped_column(Integer, default=0)
    records_synced: Mapped[int] = mapped_column(Integer, default=0)
    success_count: Mapped[int] = mapped_column(Integer, default=0)
    failed_count: Mapped[int] = mapped_column(Integer, default=0)
    duration_seconds: Mapped[float | None] = mapped_column(Float)
    #: Records not delivered for a cause that is not theirs (see ``unsent``); 0 in a finished, clean run.
    unsent_count: Mapped[int] = mapped_column(Integer, default=0)
    #: Why the run stopped (status ``failed``), in one line a person can act on.
    error: Mapped[str | None] = mapped_column(Text)
    error_details: Mapped[dict | list | None] = mapped_column(JSON)
    options: Mapped[dict | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class SyncItem(Base):
    __tablename__ = "sync_items"
    __table_args__ = (
        UniqueConstraint("run_id", "kind", "key", name="uq_sync_items_run_kind_key"),
        Index("ix_sync_items_run_status", "run_id", "status"),
        Index("ix_sync_items_kind_key_status", "kind", "key", "status"),
        Index("ix_sync_items_run_updated", "run_id", "updated_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("sync_runs.id", ondelete="CASCADE"))
    #: order (a TikTok record we could not read), profile, or event.
    kind: Mapped[str] = mapped_column(String(16))
    #: order id; profile external id; event "<metric>|<unique_id>".
    key: Mapped[str] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    #: What is (or, in a dry run, would be) sent to Klaviyo, frozen at planning time.
    payload: Mapped[dict | None] = mapped_column(JSON)
    #: Bulk import job id while a bulk job is in flight.
    external_ref: Mapped[str | None] = mapped_column(String(64))
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    claimed_at: Mapped[datetime | None]
    #: Whoever holds the item (a running task that renews it, a retry waiting on a worker, a bulk
    #: job being polled) touches it again before this; once it passes, the holder is presumed gone
    #: and the sweeper sends the item's task again. None: never held (only just dispatched).
    lease_until: Mapped[datetime | None]
    #: Fingerprint of what was planned (payload hash, or the raw order's): a record failure seen
    #: again unchanged is reported once, not in every later run.
    fingerprint: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class LedgerOrder(Base):
    __tablename__ = "orders"
    __table_args__ = (Index("ix_orders_account_user", "account", "user_id"),)

    account: Mapped[str] = mapped_column(String(64), primary_key=True)
    order_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    shop: Mapped[str] = mapped_column(String(128))
    connection_id: Mapped[str | None] = mapped_column(String(64))
    user_id: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(32))
    placed: Mapped[bool] = mapped_column(Boolean, default=False)
    total_amount: Mapped[Decimal] = mapped_column(Numeric(20, 4))
    currency: Mapped[str] = mapped_column(String(3))
    create_time: Mapped[datetime]
    update_time: Mapped[datetime]
    paid_time: Mapped[datetime | None]
    payload: Mapped[dict] = mapped_column(JSON)
    first_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Refund(Base):
    """A TikTok return or refund as we last read it, per Klaviyo account. ``refunded`` once the money
    went back (a completed refund, or a replacement settled by a refund); ``amount`` is what was
    refunded. ``unique_id`` is fixed the first time a Refunded Order is planned for it (see
    workers/refund_mapping.py): the first refund of an order shares the order's id."""

    __tablename__ = "refunds"
    __table_args__ = (Index("ix_refunds_account_order", "account", "order_id"),)

    account: Mapped[str] = mapped_column(String(64), primary_key=True)
    return_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    order_id: Mapped[str] = mapped_column(String(64))
    connection_id: Mapped[str | None] = mapped_column(String(64))
    shop: Mapped[str] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(64))
    return_type: Mapped[str] = mapped_column(String(32))
    refunded: Mapped[bool] = mapped_column(Boolean, default=False)
    amount: Mapped[Decimal] = mapped_column(Numeric(20, 4))
    currency: Mapped[str] = mapped_column(String(3))
    update_time: Mapped[datetime]
    unique_id: Mapped[str | None] = mapped_column(String(160))
    payload: Mapped[dict] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class DeliveredEvent(Base):
    __tablename__ = "delivered_events"

    account: Mapped[str] = mapped_column(String(64), primary_key=True)
    event_key: Mapped[str] = mapped_column(String(255), primary_key=True)
    shop: Mapped[str] = mapped_column(String(128))
    run_id: Mapped[str] = mapped_column(String(36))
    delivered_at: Mapped[datetime] = mapped_column(default=utcnow)


class BuyerProfile(Base):
    __tablename__ = "buyer_profiles"

    account: Mapped[str] = mapped_column(String(64), primary_key=True)
    external_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    shop: Mapped[str] = mapped_column(String(128))
    klaviyo_profile_id: Mapped[str | None] = mapped_column(String(64))
    payload_hash: Mapped[str] = mapped_column(String(64))
    run_id: Mapped[str] = mapped_column(String(36))
    synced_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class SyncState(Base):
    """The watermark per connection and stream."""

    __tablename__ = "sync_state"

    connection_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    stream: Mapped[str] = mapped_column(String(32), primary_key=True)
    watermark: Mapped[datetime | None]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


KlaviyoSyncHistory = SyncRun  #: the seed's name for a sync run (same table, same columns)


class CatalogEntry(Base):
    """What one Klaviyo account's catalog holds, as ksync last wrote it: an item per TikTok product,
    a variant per SKU, a category per category id. ``fingerprint`` hashes what was sent with the
    stock left out, and ``inventory_quantity`` is kept beside it, so an unchanged product is not
    sent again and a stock change alone is a stock-only update. ``details`` (items only) holds the
    order-event fields taken from the catalog (URL, image, categories, brand)."""

    __tablename__ = "catalog_entries"
    __table_args__ = (Index("ix_catalog_entries_account_product", "account", "product_id"),)

    account: Mapped[str] = mapped_column(String(64), primary_key=True)
    #: item, variant or category.
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    external_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    connection_id: Mapped[str | None] = mapped_column(String(64))
    #: The TikTok product of an item or variant (its own id for an item); empty for a category.
    product_id: Mapped[str] = mapped_column(String(64), default="")
    fingerprint: Mapped[str] = mapped_column(String(64))
    inventory_quantity: Mapped[int | None] = mapped_column(Integer)
    published: Mapped[bool] = mapped_column(Boolean, default=True)
    details: Mapped[dict | None] = mapped_column(JSON)
    run_id: Mapped[str | None] = mapped_column(String(36))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
