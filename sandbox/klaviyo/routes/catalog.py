"""Catalog items, variants and categories one at a time, their listings, and back-in-stock subscriptions.

Rules in catalog.py, body checks in catalog_input.py, shapes in
catalog_resources.py; the bulk jobs are in catalog_bulk.py. Listings take the
spec's filters (``any(ids,[...])``, ``equals(category.id,...)``,
``equals(item.id,...)``, ``equals(sku,...)``, ``contains(title,...)``,
``contains(name,...)``, ``equals(published,...)``), ``sort=created|-created``
and ``page[size]`` 1 to 100 (default 100).
"""

from __future__ import annotations

from flask import request

from .. import catalog_input, catalog_resources, events, profiles, resources
from ..errors import invalid
from ..filters import matches, parse_filter
from ..validate import EventInput, member, obj, profile_ref, relationship_ids, resource
from ..web import body, catalog, check_include, empty, now, paged, respond, root, self_link, sort_param, sparse_fields, store

ITEM_FILTERS = {"ids": {"any"}, "category.id": {"equals"}, "title": {"contains"}, "published": {"equals"}}
VARIANT_FILTERS = {"ids": {"any"}, "item.id": {"equals"}, "sku": {"equals"}, "title": {"contains"},
                   "published": {"equals"}}
CATEGORY_FILTERS = {"ids": {"any"}, "item.id": {"equals"}, "name": {"contains"}}
CHANNELS = {"EMAIL", "SMS", "PUSH", "WHATSAPP"}
#: The metric a back-in-stock subscription records (Klaviyo's help: the only trigger of a back-in-stock flow).
BIS_METRIC = "Subscribed to Back in Stock"


def _document(data: dict, status: int = 200, links: dict | None = None):
    return respond({"data": data, "links": links or {"self": data["links"]["self"]}}, status)


def _listing(candidates, terms, value_of, render):
    """Filter ``candidates`` by ``terms``, sort by ``created``, render one page."""
    order = sort_param({"created"}, "created")
    sign = -1 if order.startswith("-") else 1
    key = lambda r: (sign * r.created, sign * r.seq)  # noqa: E731
    found = sorted((r for r in candidates if matches(terms, lambda f, r=r: value_of(r, f))), key=key)
    fields = sparse_fields()
    return paged(found, key, 100, 100, lambda r: resources.sparse(render(r, root()), fields))


def _narrowed(terms, field: str, index: dict, table: dict):
    """Candidates of a listing: all of ``table``, or those ``index[value]`` holds when ``equals(field, value)``
    is asked; the remaining terms are matched one by one."""
    for term in terms:
        if term.field == field:
            if not isinstance(term.value, str):
                raise invalid(f"Invalid filter provided: '{field}' takes a string.", parameter="filter")
            rest = [t for t in terms if t is not term]
            return [table[i] for i in index.get(term.value, {}) if i in table], rest
    return list(table.values()), terms


# -- items -----------------------------------------------------------------------------------------------

def _item_value(item, field):
    return item.id if field == "ids" else item.attributes.get(field)


def get_catalog_items():
    terms = parse_filter(request.args.get("filter"), ITEM_FILTERS)
    include = check_include({"variants"})
    with store().lock:
        candidates, terms = _narrowed(terms, "category.id", catalog().category_items, catalog().items)
        document = _listing(candidates, terms, _item_value, catalog_resources.item)
        if include:
            document["included"] = _variants_of([d["id"] for d in document["data"]])
    return respond(document)


def _variants_of(item_ids: list[str]) -> list[dict]:
    return [catalog_resources.variant(catalog().variants[v], root())
            for i in item_ids for v in catalog().item_variants.get(i, {})]


def get_catalog_item(id):
    include = check_include({"variants"})
    with store().lock:
        data = resources.sparse(catalog_resources.item(catalog().item(id), root()), sparse_fields())
        document = {"data": data, "links": self_link()}
        if include:
            document["included"] = _variants_of([id])
    return respond(document)


def create_catalog_item():
    row = catalog_input.item_create(resource(body(), "catalog-item"))
    with store().lock:
        item = catalog().create_item(row.external_id, row.attributes, row.related, now())
        return _document(catalog_resources.item(item, root()), 201)


def update_catalog_item(id):
    row = catalog_input.item_update(resource(body(), "catalog-item"), url_id=id)
    with store().lock:
        item = catalog().update_item(id, row.attributes, row.related, now())
        return _document(catalog_resources.item(item, root()))


def delete_catalog_item(id):
    with store().lock:
        catalog().delete_item(id)
    return empty(204)


# -- variants --------------------------------------------------------------------------------------------

def _variant_value(variant, field):
    return variant.id if field == "ids" else variant.attributes.get(field)


def get_catalog_variants():
    terms = parse_filter(request.args.get("filter"), VARIANT_FILTERS)
    with store().lock:
        candidates, terms = _narrowed(terms, "item.id", catalog().item_variants, catalog().variants)
        return respond(_listing(candidates, terms, _variant_value, catalog_resources.variant))


def get_variants_for_catalog_item(id):
    terms = parse_filter(request.args.get("filter"), VARIANT_FILTERS)
    with store().lock:
        catalog().item(id)
        elsewhere = any(t.field == "item.id" and t.value != id for t in terms)
        candidates = [] if elsewhere else [catalog().variants[v] for v in catalog().item_variants.get(id, {})]
        terms = [t for t in terms if t.field != "item.id"]
        return respond(_listing(candidates, terms, _variant_value, catalog_resources.variant))


def get_catalog_variant(id):
    with store().lock:
        data = resources.sparse(catalog_resources.variant(catalog().variant(id), root()), sparse_fields())
    return respond({"data": data, "links": self_link()})


def create_catalog_variant():
    row = catalog_input.variant_create(resource(body(), "catalog-variant"))
    with store().lock:
        variant = catalog().create_variant(row.external_id, row.related[0], row.attributes, now())
        return _document(catalog_resources.variant(variant, root()), 201)


def update_catalog_variant(id):
    row = catalog_input.variant_update(resource(body(), "catalog-variant"), url_id=id)
    with store().lock:
        variant = catalog().update_variant(id, row.attributes, now())
        return _document(catalog_resources.variant(variant, root()))


def delete_catalog_variant(id):
    with store().lock:
        catalog().delete_variant(id)
    return empty(204)


# -- categories ------------------------------------------------------------------------------------------

def _category_value(category, field):
    return category.id if field == "ids" else category.name


def get_catalog_categories():
    terms = parse_filter(request.args.get("filter"), CATEGORY_FILTERS)
    with store().lock:
        items = catalog().items
        index = {t.value: dict.fromkeys(items[t.value].category_ids) for t in terms
                 if t.field == "item.id" and t.value in items}
        candidates, terms = _narrowed(terms, "item.id", index, catalog().categories)
        return respond(_listing(candidates, terms, _category_value, catalog_resources.category))


def get_catalog_category(id):
    with store().lock:
        data = resources.sparse(catalog_resources.category(catalog().category(id), root()), sparse_fields())
    return respond({"data": data, "links": self_link()})


def create_catalog_category():
    row = catalog_input.category_create(resource(body(), "catalog-category"))
    with store().lock:
        category = catalog().create_category(row.external_id, row.attributes["name"], row.related, now())
        return _document(catalog_resources.category(category, root()), 201)


def update_catalog_category(id):
    row = catalog_input.category_update(resource(body(), "catalog-category"), url_id=id)
    with store().lock:
        category = catalog().update_category(id, row.attributes.get("name"), row.related, now())
        return _document(catalog_resources.category(category, root()))


def delete_catalog_category(id):
    with store().lock:
        catalog().delete_category(id)
    return empty(204)


# -- back in stock ---------------------------------------------------------------------------------------

def create_back_in_stock_subscription():
    """A profile (found or created as for events) waits for a variant; 202 with no body, as Klaviyo answers."""
    data = resource(body(), "back-in-stock-subscription")
    attributes = obj(member(data, "attributes", "/data"), "/data/attributes")
    channels = member(attributes, "channels", "/data/attributes")
    if not isinstance(channels, list) or not channels or any(c not in CHANNELS for c in channels):
        raise invalid(f"channels must be a non-empty list of {', '.join(sorted(CHANNELS))}.",
                      "/data/attributes/channels")
    profile = obj(member(attributes, "profile", "/data/attributes"), "/data/attributes/profile")
    inner = obj(member(profile, "data", "/data/attributes/profile"), "/data/attributes/profile/data")
    given = dict(obj(inner.get("attributes") or {}, "/data/attributes/profile/data/attributes"))
    inner = {**inner, "id": inner.get("id") or given.pop("id", None), "attributes": given}
    ref = profile_ref({"data": inner}, "/data/attributes/profile",
                      allowed=frozenset({"email", "phone_number", "external_id"}))
    (variant_id,) = relationship_ids(data, "variant", "catalog-variant", many=False) or [None]
    if variant_id is None:
        raise invalid("'variant' is a required relationship.", "/data/relationships/variant")
    with store().lock:
        if variant_id not in catalog().variants:
            raise invalid(f"A catalog variant with id {variant_id} does not exist.",
                          "/data/relationships/variant/data/id")
        profiles.require_known(store(), [ref])
        person = profiles.resolve(store(), ref, now())
        catalog().subscribe(person.id, variant_id, channels, now())
        subscribed = EventInput(metric_name=BIS_METRIC, properties={"VariantId": variant_id, "Channels": channels},
                                time=now(), profile=ref)
        events.record(store(), [subscribed], now())
    return empty(202)


ROUTES = [
    ("GET", "/catalog-items", get_catalog_items),
    ("POST", "/catalog-items", create_catalog_item),
    ("GET", "/catalog-items/<id>", get_catalog_item),
    ("PATCH", "/catalog-items/<id>", update_catalog_item),
    ("DELETE", "/catalog-items/<id>", delete_catalog_item),
    ("GET", "/catalog-items/<id>/variants", get_variants_for_catalog_item),
    ("GET", "/catalog-variants", get_catalog_variants),
    ("POST", "/catalog-variants", create_catalog_variant),
    ("GET", "/catalog-variants/<id>", get_catalog_variant),
    ("PATCH", "/catalog-variants/<id>", update_catalog_variant),
    ("DELETE", "/catalog-variants/<id>", delete_catalog_variant),
    ("GET", "/catalog-categories", get_catalog_categories),
    ("POST", "/catalog-categories", create_catalog_category),
    ("GET", "/catalog-categories/<id>", get_catalog_category),
    ("PATCH", "/catalog-categories/<id>", update_catalog_category),
    ("DELETE", "/catalog-categories/<id>", delete_catalog_category),
    ("POST", "/back-in-stock-subscriptions", create_back_in_stock_subscription),
]
