"""marshmallow schemas for Klaviyo's catalog bodies, both ways (the values are in ``catalog.py``).

Request schemas are strict, as in ``schemas.py``: ``dump`` turns a value into
the attributes the spec's ``Catalog*CreateQuery`` / ``Catalog*UpdateQuery``
take, and ``validate`` on that output refuses what Klaviyo would refuse (a
required field missing, a wrong type, ``inventory_policy`` outside 0/1/2,
``custom_metadata`` nested or over 100 KB) before a request is spent on it.
Update schemas require nothing and drop what is None, so an update sends only
what the caller set. Response schemas are lenient (unknown fields ignored).
"""

from __future__ import annotations

import json
import math
import re
from datetime import datetime

from marshmallow import EXCLUDE, Schema, ValidationError, fields, post_dump, post_load, validate

from .catalog import (CatalogCategory, CatalogItem, CatalogJob, CatalogJobError, CatalogVariant, external_id_of)

#: "custom_metadata: Flat JSON blob ... May not exceed 100kb." (spec, every catalog write)
MAX_METADATA_BYTES = 100 * 1024
#: How a job error's pointer names its row: ``/data/attributes/<items|variants|categories>/data/<n>[/...]``.
ROW_POINTER = re.compile(r"^/data/attributes/(?:items|variants|categories)/data/(\d+)(?:/(.*))?$")


class Number(fields.Field):
    """A JSON number: an int stays an int, a Decimal or float becomes a float; booleans, NaN and text are refused."""

    def _serialize(self, value, attr, obj, **kwargs):
        if value is None or isinstance(value, (bool, int)):
            return value
        try:
            return float(value)
        except (TypeError, ValueError):
            return value  # left for validation to refuse

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ValidationError("Not a valid number.")
        return value


def _flat_metadata(value: dict) -> None:
    for key, item in value.items():
        if isinstance(item, dict) or (isinstance(item, list) and any(isinstance(v, (dict, list)) for v in item)):
            raise ValidationError(f"custom_metadata must be flat; {key!r} holds an object.")
    size = len(json.dumps(value, separators=(",", ":"), default=str).encode())
    if size > MAX_METADATA_BYTES:
        raise ValidationError(f"custom_metadata is {size} bytes; Klaviyo accepts at most 100 KB.")


class _Attributes(Schema):
    @post_dump
    def _compact(self, data, **kwargs):
        return {k: v for k, v in data.items() if v is not None}


class ItemUpdateSchema(_Attributes):
    title = fields.String(allow_none=True)
    description = fields.String(allow_none=True)
    url = fields.String(allow_none=True)
    price = Number(allow_none=True)
    image_full_url = fields.String(allow_none=True)
    image_thumbnail_url = fields.String(allow_none=True)
    images = fields.List(fields.String(), allow_none=True)
    custom_metadata = fields.Dict(keys=fields.String(), allow_none=True, validate=_flat_metadata)
    published = fields.Boolean(allow_none=True)


class ItemCreateSchema(ItemUpdateSchema):
    external_id = fields.String(required=True, validate=validate.Length(min=1))
    title = fields.String(required=True)
    description = fields.String(required=True)
    url = fields.String(required=True)


class VariantUpdateSchema(ItemUpdateSchema):
    sku = fields.String(allow_none=True)
    inventory_quantity = Number(allow_none=True)
    inventory_policy = fields.Integer(strict=True, allow_none=True, validate=validate.OneOf([0, 1, 2]))


class VariantCreateSchema(VariantUpdateSchema):
    external_id = fields.String(required=True, validate=validate.Length(min=1))
    title = fields.String(required=True)
    description = fields.String(required=True)
    sku = fields.String(required=True)
    url = fields.String(required=True)
    price = Number(required=True)
    inventory_quantity = Number(required=True)


class CategoryUpdateSchema(_Attributes):
    name = fields.String(allow_none=True)


class CategoryCreateSchema(CategoryUpdateSchema):
    external_id = fields.String(required=True, validate=validate.Length(min=1))
    name = fields.String(required=True)


# Responses -------------------------------------------------------------------------------------


def _dt(value) -> datetime | None:
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")) if value else None
    except ValueError:
        return None


class _Resource(Schema):
    class Meta:
        unknown = EXCLUDE

    id = fields.String(required=True)
    attributes = fields.Dict(load_default=dict)
    relationships = fields.Dict(load_default=dict)


def _common(a: dict, resource_id: str) -> dict:
    return {"external_id": a.get("external_id") or external_id_of(resource_id), "title": a.get("title"),
            "description": a.get("description"), "url": a.get("url"), "price": a.get("price"),
            "image_full_url": a.get("image_full_url"), "image_thumbnail_url": a.get("image_thumbnail_url"),
            "images": a.get("images"), "custom_metadata": a.get("custom_metadata"), "published": a.get("published"),
            "created": _dt(a.get("created")), "updated": _dt(a.get("updated"))}


class ItemResourceSchema(_Resource):
    @post_load
    def _make(self, data, **kwargs) -> CatalogItem:
        return CatalogItem(**_common(data["attributes"], data["id"]))


class VariantResourceSchema(_Resource):
    @post_load
    def _make(self, data, **kwargs) -> CatalogVariant:
        a = data["attributes"]
        item = ((data["relationships"].get("item") or {}).get("data") or {}).get("id")
        return CatalogVariant(**_common(a, data["id"]), item_external_id=external_id_of(item) if item else None,
                              sku=a.get("sku"), inventory_quantity=a.get("inventory_quantity"),
                              inventory_policy=a.get("inventory_policy"))


class CategoryResourceSchema(_Resource):
    @post_load
    def _make(self, data, **kwargs) -> CatalogCategory:
        a = data["attributes"]
        return CatalogCategory(external_id=a.get("external_id") or external_id_of(data["id"]), name=a.get("name"),
                               updated=_dt(a.get("updated")))


def job_error(raw: dict) -> CatalogJobError:
    """A job's error entry, with the row and field its pointer names (if it names one)."""
    pointer = (raw.get("source") or {}).get("pointer") if isinstance(raw.get("source"), dict) else None
    match = ROW_POINTER.match(pointer or "")
    position = int(match.group(1)) if match else None
    rest = (match.group(2) or "") if match else ""
    field = rest.removeprefix("attributes/").replace("/", ".") or None
    return CatalogJobError(code=raw.get("code"), title=raw.get("title"), detail=raw.get("detail"), pointer=pointer,
                           position=position, field=field)


class JobResourceSchema(_Resource):
    type = fields.String(required=True)

    @post_load
    def _make(self, data, **kwargs) -> CatalogJob:
        a = data["attributes"]
        linked = next((r.get("data") for r in data["relationships"].values()
                       if isinstance(r, dict) and isinstance(r.get("data"), list)), [])
        return CatalogJob(
            job_id=data["id"], job_type=data["type"], status=a.get("status") or "queued",
            total_count=a.get("total_count") or 0, completed_count=a.get("completed_count") or 0,
            failed_count=a.get("failed_count") or 0, created_at=_dt(a.get("created_at")),
            completed_at=_dt(a.get("completed_at")), expires_at=_dt(a.get("expires_at")),
            errors=tuple(job_error(e) for e in a.get("errors") or [] if isinstance(e, dict)),
            resource_ids=tuple(r["id"] for r in linked if isinstance(r, dict) and isinstance(r.get("id"), str)))


#: One instance of each schema: building a schema costs far more than using it.
ITEM_CREATE = ItemCreateSchema()
ITEM_UPDATE = ItemUpdateSchema()
VARIANT_CREATE = VariantCreateSchema()
VARIANT_UPDATE = VariantUpdateSchema()
CATEGORY_CREATE = CategoryCreateSchema()
CATEGORY_UPDATE = CategoryUpdateSchema()
ITEM_RESOURCE = ItemResourceSchema()
VARIANT_RESOURCE = VariantResourceSchema()
CATEGORY_RESOURCE = CategoryResourceSchema()
JOB_RESOURCE = JobResourceSchema()
