"""Catalog request bodies: checked as the spec's request schemas say, with Klaviyo's 400 and a pointer.

Pure functions over parsed JSON (none touches a store). Every resource parses
into a ``Row``; a bulk job parses each of its rows with the same function and a
pointer rooted at the row (``/data/attributes/items/data/3``), so a malformed
row fails the whole request naming its field, before any job is created.

Schema sources: ``CatalogItemCreateQuery``, ``CatalogItemUpdateQuery``,
``CatalogVariantCreateQuery``, ``CatalogVariantUpdateQuery``,
``CatalogCategoryCreateQuery``, ``CatalogCategoryUpdateQuery`` and the nine
``Catalog*JobCreateQuery`` of the 2026-07-15 spec.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

from .errors import ApiError, invalid
from .validate import member, obj, relationship_ids

#: Per bulk job: "Accepts up to 100 catalog items per request" (each bulk job's description).
MAX_JOB_ROWS = 100
#: ``custom_metadata``: "Flat JSON blob ... May not exceed 100kb".
MAX_METADATA_BYTES = 100 * 1024


@dataclass
class Row:
    """One resource of a catalog write, normalised."""

    kind: str                      # item | variant | category
    id: str | None                 # compound id (update, delete)
    external_id: str | None        # create only
    attributes: dict
    related: list | None = None    # category ids (item), item ids (category), [item id] (variant); None = untouched


def _text(value, pointer):
    if not isinstance(value, str):
        raise invalid("Expected a string.", pointer)
    return value


def _number(value, pointer):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise invalid("Expected a number.", pointer)
    return value


def _boolean(value, pointer):
    if not isinstance(value, bool):
        raise invalid("Expected a boolean.", pointer)
    return value


def _strings(value, pointer):
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise invalid("Expected a list of strings.", pointer)
    return value


def _policy(value, pointer):
    if isinstance(value, bool) or value not in (0, 1, 2):
        raise invalid("inventory_policy must be one of 0, 1, 2.", pointer)
    return value


def _metadata(value, pointer):
    """A flat object: no object inside (our reading of "flat"), and at most 100 KB of JSON."""
    obj(value, pointer)
    for key, item in value.items():
        if isinstance(item, dict) or (isinstance(item, list) and any(isinstance(v, (dict, list)) for v in item)):
            raise invalid("custom_metadata must be a flat object.", f"{pointer}/{key}")
    if len(json.dumps(value, separators=(",", ":")).encode()) > MAX_METADATA_BYTES:
        raise invalid("custom_metadata may not exceed 100kb.", pointer)
    return value


ITEM_ATTRIBUTES = {"title": _text, "description": _text, "url": _text, "price": _number, "image_full_url": _text,
                   "image_thumbnail_url": _text, "images": _strings, "custom_metadata": _metadata,
                   "published": _boolean}
VARIANT_ATTRIBUTES = {**ITEM_ATTRIBUTES, "sku": _text, "inventory_quantity": _number, "inventory_policy": _policy}
CATEGORY_ATTRIBUTES = {"name": _text}
REQUIRED = {"item": ("title", "description", "url"),
            "variant": ("title", "description", "sku", "inventory_quantity", "price", "url"),
            "category": ("name",)}
ALLOWED = {"item": ITEM_ATTRIBUTES, "variant": VARIANT_ATTRIBUTES, "category": CATEGORY_ATTRIBUTES}
#: Attributes only a create takes (a PATCH naming one is refused, as an unknown field).
CREATE_ONLY = ("external_id", "integration_type", "catalog_type")


def _resource(data, kind: str, pointer: str) -> dict:
    data = obj(data, pointer)
    if data.get("type") != f"catalog-{kind}":
        raise invalid(f"The resource type must be 'catalog-{kind}'.", f"{pointer}/type")
    return data


def _attributes(raw, kind: str, pointer: str, create: bool) -> dict:
    out = {}
    for name, value in obj(raw, pointer).items():
        at = f"{pointer}/{name}"
        if create and name in CREATE_ONLY:
            continue
        if name not in ALLOWED[kind]:
            raise invalid(f"'{name}' is not a valid field for the resource 'catalog-{kind}'.", at)
        out[name] = None if value is None else ALLOWED[kind][name](value, at)
    if create:
        for name in REQUIRED[kind]:
            if out.get(name) is None:
                raise invalid(f"'{name}' is a required field.", f"{pointer}/{name}")
    return out


def _create(data, kind: str, pointer: str) -> tuple[str, dict]:
    data = _resource(data, kind, pointer)
    raw = obj(member(data, "attributes", pointer), f"{pointer}/attributes")
    external_id = _text(member(raw, "external_id", f"{pointer}/attributes"), f"{pointer}/attributes/external_id")
    if not external_id.strip():
        raise invalid("external_id may not be blank.", f"{pointer}/attributes/external_id")
    for name, allowed in (("integration_type", "$custom"), ("catalog_type", "$default")):
        if raw.get(name) not in (None, allowed):
            raise invalid(f"Only '{allowed}' is supported for {name}.", f"{pointer}/attributes/{name}")
    return external_id, _attributes(raw, kind, f"{pointer}/attributes", create=True)


def _update(data, kind: str, pointer: str, url_id: str | None) -> tuple[str, dict]:
    data = _resource(data, kind, pointer)
    rid = _text(member(data, "id", pointer), f"{pointer}/id")
    if url_id is not None and rid != url_id:
        raise invalid("The id in the body must match the id in the URL.", f"{pointer}/id")
    raw = obj(member(data, "attributes", pointer), f"{pointer}/attributes")
    return rid, _attributes(raw, kind, f"{pointer}/attributes", create=False)


def _related(data: dict, name: str, kind: str, pointer: str, many: bool) -> list | None:
    """Ids of a relationship, re-rooted at ``pointer``; None when the relationship is absent."""
    if not isinstance((data.get("relationships") or {}).get(name), dict):
        return None
    try:
        return relationship_ids(data, name, kind, many)
    except ApiError as error:  # validate.py's pointers start at /data
        pointer_at = error.source.get("pointer")
        if pointer_at:
            error.source["pointer"] = pointer + pointer_at[len("/data"):]
        raise


def item_create(data, pointer: str = "/data") -> Row:
    external_id, attributes = _create(data, "item", pointer)
    return Row("item", None, external_id, attributes, _related(data, "categories", "catalog-category", pointer, True) or [])


def item_update(data, pointer: str = "/data", url_id: str | None = None) -> Row:
    rid, attributes = _update(data, "item", pointer, url_id)
    return Row("item", rid, None, attributes, _related(data, "categories", "catalog-category", pointer, True))


def variant_create(data, pointer: str = "/data") -> Row:
    external_id, attributes = _create(data, "variant", pointer)
    item = _related(data, "item", "catalog-item", pointer, False)
    if not item:
        raise invalid("'item' is a required relationship.", f"{pointer}/relationships/item")
    return Row("variant", None, external_id, attributes, item)


def variant_update(data, pointer: str = "/data", url_id: str | None = None) -> Row:
    if isinstance(data, dict) and data.get("relationships"):
        raise invalid("A variant's item cannot be changed.", f"{pointer}/relationships")
    rid, attributes = _update(data, "variant", pointer, url_id)
    return Row("variant", rid, None, attributes)


def category_create(data, pointer: str = "/data") -> Row:
    external_id, attributes = _create(data, "category", pointer)
    return Row("category", None, external_id, attributes, _related(data, "items", "catalog-item", pointer, True) or [])


def category_update(data, pointer: str = "/data", url_id: str | None = None) -> Row:
    rid, attributes = _update(data, "category", pointer, url_id)
    return Row("category", rid, None, attributes, _related(data, "items", "catalog-item", pointer, True))


def reference(data, kind: str, pointer: str) -> Row:
    """``{"type": "catalog-<kind>", "id": ...}`` of a delete job."""
    data = _resource(data, kind, pointer)
    return Row(kind, _text(member(data, "id", pointer), f"{pointer}/id"), None, {})


PARSERS = {("item", "create"): item_create, ("item", "update"): item_update,
           ("variant", "create"): variant_create, ("variant", "update"): variant_update,
           ("category", "create"): category_create, ("category", "update"): category_update}


def job_rows(data: dict, kind: str, action: str, key: str) -> list[Row]:
    """The rows of a bulk job body (``data`` already checked for its job type): 1 to 100, each well-formed."""
    attributes = obj(member(data, "attributes", "/data"), "/data/attributes")
    at = f"/data/attributes/{key}"
    rows = member(obj(member(attributes, key, "/data/attributes"), at), "data", at)
    if not isinstance(rows, list) or not rows:
        raise invalid(f"At least one catalog {kind} is required.", f"{at}/data")
    if len(rows) > MAX_JOB_ROWS:
        raise invalid(f"At most {MAX_JOB_ROWS} catalog {kind}s may be sent per job; got {len(rows)}.", f"{at}/data")
    if action == "delete":
        return [reference(row, kind, f"{at}/data/{i}") for i, row in enumerate(rows)]
    return [PARSERS[(kind, action)](row, f"{at}/data/{i}") for i, row in enumerate(rows)]
