"""Klaviyo catalog values: items, variants, categories, bulk jobs and their per-row errors.

Plain dataclasses; the wire format lives in ``catalog_schemas``. Everything is
addressed by the *external* id (the TikTok product or SKU id): Klaviyo's id is
derived from it, ``$custom:::$default:::<external_id>`` (``catalog_id``), the
only integration and catalog type Klaviyo supports. One external id is
therefore one resource, which is what makes a repeated create harmless: it
can fail, it cannot make a second item.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

CATALOG_ID_PREFIX = "$custom:::$default:::"


def catalog_id(external_id: str) -> str:
    """Klaviyo's id of the catalog item, variant or category with this external id."""
    return CATALOG_ID_PREFIX + external_id


def external_id_of(resource_id: str) -> str:
    """The external id inside a catalog id (an id of another shape is returned as it is)."""
    return resource_id[len(CATALOG_ID_PREFIX):] if resource_id.startswith(CATALOG_ID_PREFIX) else resource_id


@dataclass
class CatalogItem:
    """A product. On create, title, description and url are required; on update, None means "leave as is"."""

    external_id: str
    title: str | None = None
    description: str | None = None
    url: str | None = None
    #: What e-mails display for the item; Klaviyo advises updating the variants' prices with it.
    price: Decimal | float | None = None
    image_full_url: str | None = None
    image_thumbnail_url: str | None = None
    images: list[str] | None = None
    #: A flat object, at most 100 KB of JSON.
    custom_metadata: dict | None = None
    published: bool | None = None
    #: External ids of the item's categories; None leaves them as they are (on update).
    category_ids: list[str] | None = None
    created: datetime | None = None
    updated: datetime | None = None

    @property
    def id(self) -> str:
        return catalog_id(self.external_id)


@dataclass
class CatalogVariant:
    """A SKU of an item. On create, everything but the images, metadata and policy is required."""

    external_id: str
    #: The item's external id: required on create; a variant never moves to another item.
    item_external_id: str | None = None
    title: str | None = None
    description: str | None = None
    sku: str | None = None
    price: Decimal | float | None = None
    #: Stock: a change from ≤ 0 to > 0 is a restock (what back-in-stock subscribers wait for).
    inventory_quantity: int | float | None = None
    #: 1 hides the variant from product feeds and blocks while out of stock; 0 or 2 shows it anyway.
    inventory_policy: int | None = None
    url: str | None = None
    image_full_url: str | None = None
    image_thumbnail_url: str | None = None
    images: list[str] | None = None
    custom_metadata: dict | None = None
    published: bool | None = None
    created: datetime | None = None
    updated: datetime | None = None

    @property
    def id(self) -> str:
        return catalog_id(self.external_id)


@dataclass
class CatalogCategory:
    external_id: str
    name: str | None = None
    updated: datetime | None = None

    @property
    def id(self) -> str:
        return catalog_id(self.external_id)


@dataclass(frozen=True)
class CatalogJobError:
    """One entry of a job's ``errors``; ``position`` is the row in the job the pointer names, if it names one."""

    code: str | None
    title: str | None
    detail: str | None
    pointer: str | None
    position: int | None = None
    field: str | None = None


@dataclass(frozen=True)
class CatalogRowError:
    """A row a bulk job did not apply, mapped back to the list the caller gave.

    ``index`` is the row's position in that list (None when Klaviyo's error names
    no row). ``settled`` marks a failure whose intended end state holds anyway: a
    create of an id that already exists, a delete of one already gone (both
    follow from a retried or overlapping job, and need no action).
    """

    index: int | None
    external_id: str | None
    code: str | None
    detail: str | None
    field: str | None = None
    action: str | None = None

    @property
    def settled(self) -> bool:
        if self.action == "create":
            return self.code == "conflict" or "already exists" in (self.detail or "")
        if self.action == "delete":
            return self.code == "not_found" or "does not exist" in (self.detail or "")
        return False


@dataclass(frozen=True)
class CatalogJob:
    """A catalog bulk job as Klaviyo reports it, plus which rows of the caller's list it carries.

    ``external_ids`` are the rows sent, in job order, and ``rows`` their positions
    in the caller's list; both are ours, not Klaviyo's, so a task that polls a job
    later keeps them (e.g. rebuilds ``CatalogJob(job_id, job_type, "queued",
    external_ids=..., rows=...)``).
    """

    job_id: str
    job_type: str
    status: str
    total_count: int = 0
    completed_count: int = 0
    failed_count: int = 0
    created_at: datetime | None = None
    completed_at: datetime | None = None
    expires_at: datetime | None = None
    errors: tuple[CatalogJobError, ...] = ()
    #: Ids of the resources the job created, updated or deleted (its relationships), once it is done.
    resource_ids: tuple[str, ...] = ()
    external_ids: tuple[str, ...] = ()
    rows: tuple[int, ...] = ()

    @property
    def done(self) -> bool:
        return self.status in ("complete", "cancelled")

    @property
    def action(self) -> str:
        """create, update or delete (from ``catalog-item-bulk-create-job``)."""
        return self.job_type.rsplit("-", 2)[-2]

    def row_errors(self) -> list[CatalogRowError]:
        """The rows this job did not apply (meaningful once ``done``).

        Klaviyo's errors name a row through their pointer; a row sent that is
        neither among the job's resources nor named by an error (a cancelled
        job, or counts that do not add up) is reported with code ``missing``.
        An error naming no row is reported with ``index=None``.
        """
        found, named = [], set()
        for error in self.errors:
            position = error.position
            if position is not None and self.external_ids and position >= len(self.external_ids):
                position = None  # a row we did not send: it names none of ours
            if position is not None:
                named.add(position)
            found.append(CatalogRowError(
                index=self.rows[position] if position is not None and position < len(self.rows) else position,
                external_id=self.external_ids[position] if position is not None and position < len(
                    self.external_ids) else None,
                code=error.code, detail=error.detail, field=error.field, action=self.action))
        if self.done:
            applied = set(self.resource_ids)
            for position, external_id in enumerate(self.external_ids):
                if position not in named and catalog_id(external_id) not in applied:
                    found.append(CatalogRowError(
                        index=self.rows[position] if position < len(self.rows) else position,
                        external_id=external_id, code="missing" if self.status == "complete" else self.status,
                        detail=f"the job {self.status} without applying this row", action=self.action))
        return found


@dataclass(frozen=True)
class CatalogSubmission:
    """What a bulk call sent: one job per chunk of at most 100 rows, and (for creates) the rows not sent
    because their ids already existed, by position in the caller's list."""

    jobs: tuple[CatalogJob, ...] = ()
    already_present: tuple[int, ...] = ()

    @property
    def done(self) -> bool:
        return all(job.done for job in self.jobs)

    def row_errors(self) -> list[CatalogRowError]:
        return [error for job in self.jobs for error in job.row_errors()]
