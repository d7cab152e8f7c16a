"""Cursor pagination as Klaviyo does it: ``page[size]``, opaque ``page[cursor]``, ``links.next``.

Cursors are keyset cursors: base64url of ``{"a": key, "s": sort}`` (the page
after the item with sort key ``key``) or ``{"b": ...}`` (the page before it).
Keys are unique (they end with the item's insertion sequence), so an item
created while a client pages through a collection never shifts or repeats what
it has seen. A cursor only works with the sort it was made for.

The official SDK, given a full ``links.next`` URL, sends the cursor with a
leading ``=`` (``page[cursor]==abc``); we strip it. It only extracts the cursor
from ``https://`` URLs, so against this (http) server it sends the whole URL as
the cursor; we accept that too and read its ``page[cursor]``.
"""

from __future__ import annotations

import base64
import binascii
import json
from urllib.parse import unquote, urlencode

from .errors import invalid

INVALID_CURSOR = "Invalid cursor provided."


def page_size(args, default: int, maximum: int) -> int:
    """``page[size]`` from the query ``args``; 400 outside 1..maximum."""
    raw = args.get("page[size]")
    if raw is None or raw == "":
        return default
    try:
        size = int(raw)
    except ValueError:
        raise invalid(f"'{raw}' is not a valid integer.", parameter="page[size]") from None
    if size < 1 or size > maximum:
        raise invalid(f"Page size must be an integer between 1 and {maximum}.", parameter="page[size]")
    return size


def encode_cursor(direction: str, key, sort: str = "") -> str:
    raw = json.dumps({direction: list(key), "s": sort}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(raw: str | None, sort: str = ""):
    """``(direction, key)`` from a cursor, or None when there is none; 400 when it is garbage."""
    if raw is None or raw == "":
        return None
    for marker in ("page[cursor]=", "page%5Bcursor%5D="):
        if marker in raw:
            raw = unquote(raw.split(marker)[-1].split("&")[0])
    text = raw.lstrip("=")
    try:
        payload = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
        if payload.pop("s", None) != sort:
            raise ValueError
        (direction, key), = payload.items()
        if direction not in ("a", "b") or not isinstance(key, list):
            raise ValueError
        return direction, tuple(key)
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError):
        raise invalid(INVALID_CURSOR, pointer="/data/") from None


def paginate(items: list, key, size: int, cursor_text: str | None, sort: str = ""):
    """Slice ``items`` (already in presentation order, ``key(item)`` increasing) into one page.

    Returns ``(page, next_cursor, prev_cursor)``; a cursor is None at either end.
    """
    cursor = decode_cursor(cursor_text, sort)
    keys = [key(item) for item in items]
    if cursor is None:
        start = 0
    elif cursor[0] == "a":
        start = next((i for i, k in enumerate(keys) if _after(k, cursor[1])), len(items))
    else:
        end = next((i for i, k in enumerate(keys) if not _after(cursor[1], k)), len(items))
        start = max(0, end - size)
    page = items[start:start + size]
    next_cursor = encode_cursor("a", keys[start + size - 1], sort) if start + size < len(items) else None
    prev_cursor = encode_cursor("b", keys[start], sort) if start > 0 and page else None
    return page, next_cursor, prev_cursor


def _after(key, anchor) -> bool:
    """``key`` comes strictly after ``anchor`` (lists compare element-wise, like tuples)."""
    try:
        return list(key) > list(anchor)
    except TypeError:
        raise invalid(INVALID_CURSOR, pointer="/data/") from None


def descending_text(text: str | None) -> tuple:
    """A flat key that sorts strings in reverse (for ``sort=-email``-style keys)."""
    return tuple(-ord(c) for c in (text or "")) + (1,)


def collection_links(base_url: str, args, next_cursor: str | None, prev_cursor: str | None) -> dict:
    """``links`` of a collection: ``self`` always, ``next``/``prev`` as full URLs when there is one."""
    params = [(k, v) for k, vs in args.lists() for v in vs if k != "page[cursor]"]

    def url(cursor):
        query = urlencode(params + ([("page[cursor]", cursor)] if cursor else []))
        return base_url + ("?" + query if query else "")

    links = {"self": url(args.get("page[cursor]"))}
    if next_cursor:
        links["next"] = url(next_cursor)
    if prev_cursor:
        links["prev"] = url(prev_cursor)
    return links
