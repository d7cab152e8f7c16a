"""Catalog records to JSON:API resource objects, shaped as the spec's response schemas.

``CatalogItemResponseObjectResource``, ``CatalogVariantResponseObjectResource``,
``CatalogCategoryResponseObjectResource`` and ``Catalog*JobResponseObjectResource``
(2026-07-15). Compound ids keep their
``$`` and ``:`` in links (both are legal in a URI path); anything else unsafe is
percent-encoded.
"""

from __future__ import annotations

from urllib.parse import quote

from . import jobs
from .catalog import Category, Item, Variant
from .catalog_jobs import CatalogJob
from .times import iso

ITEM_FIELDS = ("title", "description", "price", "url", "image_full_url", "image_thumbnail_url", "images",
               "custom_metadata", "published")
VARIANT_FIELDS = ("title", "description", "sku", "inventory_policy", "inventory_quantity", "price", "url",
                  "image_full_url", "image_thumbnail_url", "images", "custom_metadata", "published")


def _path(root: str, collection: str, rid: str) -> str:
    return f"{root}/api/{collection}/{quote(rid, safe='$:')}"


def _relationship(root: str, collection: str, rid: str, name: str) -> dict:
    base = _path(root, collection, rid)
    return {"links": {"self": f"{base}/relationships/{name}/", "related": f"{base}/{name}/"}}


def item(i: Item, root: str) -> dict:
    attributes = {"external_id": i.external_id, **{name: i.attributes.get(name) for name in ITEM_FIELDS},
                  "created": iso(i.created), "updated": iso(i.updated)}
    return {"type": "catalog-item", "id": i.id, "attributes": attributes,
            "relationships": {"variants": _relationship(root, "catalog-items", i.id, "variants")},
            "links": {"self": _path(root, "catalog-items", i.id) + "/"}}


def variant(v: Variant, root: str) -> dict:
    attributes = {"external_id": v.external_id, **{name: v.attributes.get(name) for name in VARIANT_FIELDS},
                  "created": iso(v.created), "updated": iso(v.updated)}
    return {"type": "catalog-variant", "id": v.id, "attributes": attributes,
            "relationships": {"item": {"data": {"type": "catalog-item", "id": v.item_id},
                                       **_relationship(root, "catalog-variants", v.id, "item")}},
            "links": {"self": _path(root, "catalog-variants", v.id) + "/"}}


def category(c: Category, root: str) -> dict:
    return {"type": "catalog-category", "id": c.id,
            "attributes": {"external_id": c.external_id, "name": c.name, "updated": iso(c.updated)},
            "relationships": {"items": _relationship(root, "catalog-categories", c.id, "items")},
            "links": {"self": _path(root, "catalog-categories", c.id) + "/"}}


def job(j: CatalogJob, root: str, now: float) -> dict:
    status = jobs.status(j, now)
    done = status in ("complete", "cancelled")
    kind = j.job_type.kind
    base = f"{root}/api/{j.job_type.path}/{j.id}"
    return {"type": j.job_type.name, "id": j.id,
            "attributes": {"status": status, "created_at": iso(j.created), "total_count": len(j.rows),
                           "completed_count": j.completed_count if done else 0,
                           "failed_count": j.failed_count if done else 0,
                           "completed_at": iso(jobs.completed_at(j)) if done else None,
                           "errors": [{"id": e.id, "code": e.code, "title": e.title, "detail": e.detail,
                                       "source": {"pointer": e.pointer}} for e in j.errors] if done else [],
                           "expires_at": iso(jobs.completed_at(j) + jobs.RETENTION_SECONDS)},
            "relationships": {j.job_type.key: {
                "data": [{"type": f"catalog-{kind}", "id": rid} for rid in j.resource_ids] if done else [],
                "links": {"self": f"{base}/relationships/{j.job_type.key}/", "related": f"{base}/{j.job_type.key}/"}}},
            "links": {"self": f"{base}/"}}
