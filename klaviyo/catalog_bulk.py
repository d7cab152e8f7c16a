"""What the catalog calls share: the three resource kinds, validated bodies, and bulk jobs cut to size.

Kept apart from ``client.py`` so the client's catalog section stays a list of
one-line operations. Nothing here sends a request.

Bulk job limits, from each bulk job's description in the spec: at most 100 rows
per job and 5 MB per payload (and 500 jobs in progress per account, which the
server enforces and answers with a wait).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Iterator
from urllib.parse import quote

from marshmallow import Schema

from .catalog import catalog_id
from .catalog_schemas import (CATEGORY_CREATE, CATEGORY_RESOURCE, CATEGORY_UPDATE, ITEM_CREATE, ITEM_RESOURCE,
                              ITEM_UPDATE, VARIANT_CREATE, VARIANT_RESOURCE, VARIANT_UPDATE)
from .exceptions import KlaviyoValidationError
from .schemas import first_error

#: "Accepts up to 100 catalog items per request." (every catalog bulk job)
MAX_JOB_ROWS = 100
#: "The maximum allowed payload size is 5MB", less room for the job's own envelope.
MAX_JOB_BYTES = 5 * 1024 * 1024 - 16 * 1024


@dataclass(frozen=True)
class Kind:
    """One catalog resource kind and the names Klaviyo uses for it."""

    name: str             # item
    plural: str           # items: the bulk jobs' attribute, the rows' field prefix
    collection: str       # catalog-items: the path
    create: Schema
    update: Schema
    resource: Schema

    @property
    def type(self) -> str:
        return f"catalog-{self.name}"

    def op(self, verb: str) -> str:
        """operationId of a single-resource call: get_catalog_item, create_catalog_variant..."""
        return f"{verb}_{self.type.replace('-', '_')}"

    @property
    def list_op(self) -> str:
        return {"item": "get_catalog_items", "variant": "get_catalog_variants",
                "category": "get_catalog_categories"}[self.name]

    def job_type(self, action: str) -> str:
        return f"catalog-{self.name}-bulk-{action}-job"

    def job_path(self, action: str) -> str:
        return f"/catalog-{self.name}-bulk-{action}-jobs"

    def submit_op(self, action: str) -> str:
        return f"bulk_{action}_catalog_{self.plural}"

    def get_job_op(self, action: str) -> str:
        """The spec's names are irregular: get_bulk_create_catalog_items_job but get_bulk_create_variants_job."""
        noun = "catalog_items" if self.name == "item" else self.plural
        return f"get_bulk_{action}_{noun}_job"


KINDS = {"item": Kind("item", "items", "catalog-items", ITEM_CREATE, ITEM_UPDATE, ITEM_RESOURCE),
         "variant": Kind("variant", "variants", "catalog-variants", VARIANT_CREATE, VARIANT_UPDATE, VARIANT_RESOURCE),
         "category": Kind("category", "categories", "catalog-categories", CATEGORY_CREATE, CATEGORY_UPDATE,
                          CATEGORY_RESOURCE)}
JOB_KINDS = {kind.job_type(action): (kind, action) for kind in KINDS.values()
             for action in ("create", "update", "delete")}


@dataclass(frozen=True)
class Row:
    """One resource of a bulk call: its position in the caller's list, external id and JSON:API body."""

    index: int
    external_id: str
    resource: dict


def path_id(external_id: str) -> str:
    """The catalog id of ``external_id`` for a URL path, every reserved character percent-encoded."""
    return quote(catalog_id(external_id), safe="")


def resource(kind: Kind, action: str, value, field_prefix: str = "") -> dict:
    """The JSON:API resource object for a create, update or delete of ``value``; validated first.

    Raises ``KlaviyoValidationError`` naming the field (``variants[3].price``).
    """
    if action == "delete":
        external_id = value
        _check_external_id(external_id, field_prefix)
        return {"type": kind.type, "id": catalog_id(external_id)}
    schema = kind.create if action == "create" else kind.update
    attributes = schema.dump(value)
    errors = schema.validate(attributes)
    if errors:
        field, message = first_error(errors)
        field = f"{field_prefix}.{field}".lstrip(".")
        raise KlaviyoValidationError(f"{field}: {message}", field=field)
    data = {"type": kind.type, "attributes": attributes}
    if action == "update":
        _check_external_id(value.external_id, field_prefix)
        data = {"type": kind.type, "id": catalog_id(value.external_id), "attributes": attributes}
    relationships = _relationships(kind, action, value, field_prefix)
    if relationships:
        data["relationships"] = relationships
    return data


def _check_external_id(external_id, field_prefix: str) -> None:
    if not isinstance(external_id, str) or not external_id:
        field = f"{field_prefix}.external_id".lstrip(".")
        raise KlaviyoValidationError(f"{field}: an external id (a non-empty string) is required", field=field)


def _relationships(kind: Kind, action: str, value, field_prefix: str) -> dict:
    if kind.name == "item" and value.category_ids is not None and (value.category_ids or action == "update"):
        return {"categories": {"data": [{"type": "catalog-category", "id": catalog_id(c)} for c in value.category_ids]}}
    if kind.name == "variant" and action == "create":
        if not value.item_external_id:
            field = f"{field_prefix}.item_external_id".lstrip(".")
            raise KlaviyoValidationError(f"{field}: a variant is created for an item; name it", field=field)
        return {"item": {"data": {"type": "catalog-item", "id": catalog_id(value.item_external_id)}}}
    return {}


def rows(kind: Kind, action: str, values: list) -> list[Row]:
    """Every value as a validated ``Row``; the first bad one raises, naming its field and ``index``.

    An external id given twice is refused too: the second row could only fail (create) or race the first.
    """
    out, seen = [], {}
    for index, value in enumerate(values):
        prefix = f"{kind.plural}[{index}]"
        try:
            body = resource(kind, action, value, prefix)
        except KlaviyoValidationError as exc:
            exc.index = index
            raise
        external_id = value if action == "delete" else value.external_id
        if external_id in seen:
            raise KlaviyoValidationError(f"{prefix}.external_id repeats {kind.plural}[{seen[external_id]}]",
                                         field=f"{prefix}.external_id", index=index)
        seen[external_id] = index
        out.append(Row(index, external_id, body))
    return out


def chunks(all_rows: list[Row]) -> Iterator[list[Row]]:
    """Consecutive groups of at most 100 rows and 5 MB of JSON (one bulk job each)."""
    chunk, size = [], 0
    for row in all_rows:
        row_size = len(json.dumps(row.resource, separators=(",", ":"), default=str).encode()) + 1
        if row_size > MAX_JOB_BYTES:
            raise KlaviyoValidationError(f"row {row.index} alone is {row_size} bytes; a job takes at most 5 MB",
                                         field=str(row.index), index=row.index)
        if chunk and (len(chunk) == MAX_JOB_ROWS or size + row_size > MAX_JOB_BYTES):
            yield chunk
            chunk, size = [], 0
        chunk.append(row)
        size += row_size
    if chunk:
        yield chunk


def job_body(kind: Kind, action: str, chunk: list[Row]) -> dict:
    return {"data": {"type": kind.job_type(action),
                     "attributes": {kind.plural: {"data": [row.resource for row in chunk]}}}}


def any_ids(external_ids: list[str]) -> str:
    """``any(ids,[...])``: the filter that finds catalog resources by id."""
    return f"any(ids,[{','.join(json.dumps(catalog_id(e)) for e in external_ids)}])"
