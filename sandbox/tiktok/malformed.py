"""Deliberately broken orders, for testing that a sync skips bad records and keeps going.

Each kind breaks one thing a parser relies on; every malformed order keeps a
valid string ``id`` so the sync can name the record it skipped.
"""

from __future__ import annotations

#: The defects, handed out in turn so that a handful of malformed orders covers them all.
KINDS = (
    "total_amount_comma",     # payment.total_amount "12,99"
    "total_amount_text",      # payment.total_amount "abc"
    "create_time_text",       # create_time "yesterday"
    "line_items_null",        # line_items null
    "unknown_status",         # status "SHIPPED_MAYBE"
    "user_id_missing",        # no user_id
    "sku_id_missing",         # a line item without sku_id
    "sale_price_number",      # a line item sale_price as a JSON number
)


def corrupt(order: dict, kind: str) -> dict:
    """Apply defect ``kind`` to a rendered order in place and return it."""
    if kind == "total_amount_comma":
        order["payment"]["total_amount"] = order["payment"]["total_amount"].replace(".", ",") or "12,99"
        if "," not in order["payment"]["total_amount"]:
            order["payment"]["total_amount"] = "12,99"
    elif kind == "total_amount_text":
        order["payment"]["total_amount"] = "abc"
    elif kind == "create_time_text":
        order["create_time"] = "yesterday"
    elif kind == "line_items_null":
        order["line_items"] = None
    elif kind == "unknown_status":
        order["status"] = "SHIPPED_MAYBE"
    elif kind == "user_id_missing":
        order.pop("user_id", None)
    elif kind == "sku_id_missing":
        order["line_items"][0].pop("sku_id", None)
    elif kind == "sale_price_number":
        order["line_items"][0]["sale_price"] = float(order["line_items"][0]["sale_price"])
    else:
        raise ValueError(f"unknown defect {kind!r}")
    return order
