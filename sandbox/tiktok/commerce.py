"""The returns, cancellations, products and inventory endpoints (202309), after the common checks.

Limits enforced, per ``commerce-apis.md`` §0–§2 and §7:

- returns search: ``page_size`` 10..50 (default 10), cancellations 1..50 (default 10);
  ``sort_field`` create_time (default) | update_time, ``sort_order`` ASC (default) | DESC;
  time bounds ``[ge, lt)``; a missing bound is open.
- products search: ``page_size`` required, 1..100; no sort parameters (served by
  ``update_time`` then id, ascending: our choice); ``create_time_ge/_le`` and
  ``update_time_ge/_le`` both inclusive; ``status`` default ALL (DELETED included).
- get product: DELETED or FREEZE (or unknown) → HTTP 404 / ``PRODUCT_NOT_FOUND``.
- inventory search: ``product_ids`` ≤ 100 or ``sku_ids`` ≤ 600 (``sku_ids`` win when both
  are sent); neither → invalid param; unknown and deleted products are left out.
"""

from __future__ import annotations

import json
import re

from . import errors, paging
from .errors import ApiError
from .keyset import page
from .store import PageTokenError

RETURNS, CANCELLATIONS = "/return_refund/202309/returns/search", "/return_refund/202309/cancellations/search"
PRODUCTS, INVENTORY = "/product/202309/products/search", "/product/202309/inventory/search"
PRODUCT_DETAIL = "/product/202309/products/{product_id}"
COMMERCE_ROUTES = {RETURNS: "POST", CANCELLATIONS: "POST", PRODUCTS: "POST", INVENTORY: "POST",
                   PRODUCT_DETAIL: "GET"}
_DETAIL = re.compile(r"^/product/202309/products/([0-9]{1,32})$")
MAX_INVENTORY_PRODUCTS, MAX_INVENTORY_SKUS = 100, 600
_LISTS = {"return": ("return_ids", "order_ids", "buyer_user_ids", "return_types", "return_status"),
          "cancel": ("cancel_ids", "order_ids", "buyer_user_ids", "cancel_types", "cancel_status")}
_TIMES = ("create_time_ge", "create_time_lt", "update_time_ge", "update_time_lt")
_PRODUCT_TIMES = ("create_time_ge", "create_time_le", "update_time_ge", "update_time_le")


def route_for(path: str) -> str:
    """The route a request path belongs to (product detail paths carry the product id)."""
    return PRODUCT_DETAIL if _DETAIL.match(path) else path


def _body(raw: bytes) -> dict:
    try:
        body = json.loads(raw) if raw.strip() else {}
    except ValueError:
        raise errors.invalid_param("body is not JSON") from None
    if not isinstance(body, dict):
        raise errors.invalid_param("body must be an object")
    return body


def _ints(body: dict, names) -> dict:
    out = {}
    for name in names:
        if body.get(name) is not None:
            if isinstance(body[name], bool) or not isinstance(body[name], int):
                raise errors.invalid_param(f"{name} must be an integer")
            out[name] = body[name]
    return out


def _strings(body: dict, names) -> dict:
    out = {}
    for name in names:
        value = body.get(name)
        if value is not None:
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise errors.invalid_param(f"{name} must be a list of strings")
            out[name] = value
    return out


def _page_size(args, low: int, high: int, default: int | None) -> int:
    raw = args.get("page_size", "")
    if raw == "" and default is not None:
        return default
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise errors.invalid_param(f"page_size must be {low}..{high}")
    return int(raw)


def _paged(shop, rows, args, size: int, descending: bool, *parts) -> tuple[list[dict], str, int]:
    fingerprint = paging.fingerprint(*parts, shop.store.epoch)
    try:
        return page(rows, size, args.get("page_token") or None, fingerprint, shop.store._mac_key, descending)
    except PageTokenError as exc:
        raise errors.invalid_param(str(exc)) from exc


def commerce_endpoint(shop, path: str, args: dict, raw_body: bytes) -> dict:
    if path in (RETURNS, CANCELLATIONS):
        kind = "return" if path == RETURNS else "cancel"
        size = _page_size(args, 10 if kind == "return" else 1, 50, 10)
        sort_field = args.get("sort_field") or "create_time"
        sort_order = (args.get("sort_order") or "ASC").upper()
        if sort_field not in ("create_time", "update_time") or sort_order not in ("ASC", "DESC"):
            raise errors.invalid_param("sort_field / sort_order")
        body = _body(raw_body)
        filters = _strings(body, _LISTS[kind]) | _ints(body, _TIMES)
        rows = shop.aftersales.rows(kind, filters, sort_field)
        records, token, total = _paged(shop, rows, args, size, sort_order == "DESC", kind,
                                       sorted((k, str(v)) for k, v in filters.items()), sort_field, sort_order)
        key = "return_orders" if kind == "return" else "cancellations"
        return {key: records, "total_count": total, "next_page_token": token}
    if path == PRODUCTS:
        size = _page_size(args, 1, 100, None)
        body = _body(raw_body)
        status = body.get("status")
        if status is not None and not isinstance(status, str):
            raise errors.invalid_param("status must be a string")
        skus = _strings(body, ("seller_skus",)).get("seller_skus")
        bounds = _ints(body, _PRODUCT_TIMES)
        rows = shop.catalog.search_rows(status, set(skus) if skus else None, bounds)
        records, token, total = _paged(shop, rows, args, size, False, "products", status, sorted(skus or []),
                                       sorted(bounds.items()))
        return {"products": records, "total_count": total, "next_page_token": token}
    if path == INVENTORY:
        body = _body(raw_body)
        lists = _strings(body, ("product_ids", "sku_ids"))
        products, skus = lists.get("product_ids"), lists.get("sku_ids")
        if not products and not skus:
            raise errors.invalid_param("product_ids or sku_ids is required")
        if (skus and len(skus) > MAX_INVENTORY_SKUS) or (not skus and len(products) > MAX_INVENTORY_PRODUCTS):
            raise errors.invalid_param("at most 100 product_ids or 600 sku_ids")
        return {"inventory": shop.catalog.inventory(products, skus)}
    product_id = _DETAIL.match(path).group(1)
    detail = shop.catalog.detail(product_id)
    if detail is None:
        raise ApiError(404, errors.PRODUCT_NOT_FOUND, errors.MESSAGES["product_not_found"])
    return detail
