"""Keyset pages over sorted rows, for the searches that are not orders (returns, cancellations, products).

Rows are ``(sort value, id, record)`` sorted ascending. A page token is the
orders' opaque token (``paging``) holding the last (value, id) served and a
fingerprint of the search, so a token from another search is refused. Unlike
order search there is no snapshot: each page is evaluated against the current
state, so a record updated while paging by ``update_time`` ascending moves
behind the cursor and is served again later (at least once, never skipped).
"""

from __future__ import annotations

import bisect

from . import paging
from .store import PageTokenError


def page(rows: list[tuple[int, str, dict]], page_size: int, token: str | None, fingerprint: bytes, key: bytes,
         descending: bool = False) -> tuple[list[dict], str, int]:
    """One page: (records, next_page_token or "" on the last page, total_count)."""
    after = None
    if token:
        try:
            position = paging.decode(token, key)
        except ValueError as exc:
            raise PageTokenError(str(exc)) from exc
        if position.fingerprint != fingerprint:
            raise PageTokenError("page_token belongs to another search")
        after = (position.value, position.order_id)
    keys = [(r[0], r[1]) for r in rows]
    if not descending:
        start = 0 if after is None else bisect.bisect_right(keys, after)
        chosen, more = rows[start:start + page_size], start + page_size < len(rows)
    else:
        end = len(rows) if after is None else bisect.bisect_left(keys, after)
        chosen, more = rows[max(0, end - page_size):end][::-1], end - page_size > 0
    next_token = ""
    if more and chosen:
        next_token = paging.encode(paging.Position(0, chosen[-1][0], chosen[-1][1], fingerprint), key)
    return [r[2] for r in chosen], next_token, len(rows)
